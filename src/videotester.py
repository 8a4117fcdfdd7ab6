"""VideoTester: upscales a video (--data_test video --dir_demo clip.mp4 or a
folder of frames) into experiment/<save>/<stem>_x<scale>.mp4, keeping every
frame, the frame rate and the audio; with --video_hr it also scores PSNR/SSIM.

Three threads overlap the work: a reader decodes frames into batches (bounded
queue), the main thread runs the model, a writer pipes results to an ffmpeg
encoder (bounded queue). Any thread's error sets a stop event that every
queue wait checks, so nothing blocks forever; the first error is raised.
"""
import os
import queue
import subprocess
import tempfile
import threading
import time
from fractions import Fraction

import numpy as np
import torch
from tqdm import tqdm

from errors import SRLabError
from evaluator import Evaluator, score
from data import common

RGB_CODECS = ('libx264rgb', 'png')  # encoders given rgb24; all others get yuv420p
YUV_TAGS = ('scale=out_color_matrix=bt709:out_range=tv,'
            'setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv')
DONE = object()


def ffmpeg_exe():
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def _reason(e):
    """Last non-empty line of an error (ffmpeg puts the cause there)."""
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    return lines[-1] if lines else type(e).__name__


def exact_fps(fps):
    """ffmpeg prints rates with 2 decimals: 29.97 -> 30000/1001 etc."""
    for n in (24, 30, 48, 60, 120, 240):
        if abs(fps - n / 1.001) < 0.006:
            return Fraction(n * 1000, 1001)
    return Fraction(str(round(fps, 3))).limit_denominator(1000)


class Source:
    """A video file or a folder of frames: size, fps, audio, frames()."""

    def __init__(self, path, flag, folder_fps, n_colors):
        self.path, self.flag, self.n_colors = path, flag, n_colors
        self.audio = None
        if not path or not os.path.exists(path):
            raise SRLabError(f'{flag}: no such video file or frames folder: {path}')
        self.name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        if os.path.isdir(path):
            self.files = common.list_images(path)
            if not self.files:
                raise SRLabError(f'{flag}: no image frames in folder {path}')
            self.fps = Fraction(str(folder_fps)).limit_denominator(1001)
            self.count = len(self.files)
            first = self._read_file(self.files[0])
        else:
            self.files = None
            if os.path.getsize(path) == 0:
                raise SRLabError(f'{flag}: {path} is an empty file (0 bytes)')
            import imageio_ffmpeg
            gen = imageio_ffmpeg.read_frames(path)
            try:
                meta = next(gen)
                first = next(gen, None)
            except Exception as e:
                if 'Input #0' in str(e) and ' Video: ' not in str(e):
                    raise SRLabError(f'{flag}: {path} has no video stream')
                raise SRLabError(f'{flag}: cannot read {path} as a video ({_reason(e)})')
            finally:
                gen.close()
            if first is None:
                raise SRLabError(f'{flag}: {path} has no video frames')
            self.size = meta['size']
            self.fps = exact_fps(meta['fps']) if meta['fps'] > 0 else None
            self.count = round(meta['duration'] * meta['fps']) or None  # estimate, for the progress bar
            self.audio = meta.get('audio_codec')
            first = self._frame(first)
        self.h, self.w = first.shape[:2]

    def _read_file(self, f):
        try:
            return common.read_image(f, self.n_colors)
        except common.DataError as e:
            raise SRLabError(f'{self.flag}: {e}')

    def _frame(self, buf):
        w, h = self.size
        return common.set_channel(np.frombuffer(buf, np.uint8).reshape(h, w, 3), self.n_colors)

    def frames(self):
        """Yields HxWxC uint8 frames."""
        if self.files:
            for f in self.files:
                img = self._read_file(f)
                if img.shape[:2] != (self.h, self.w):
                    raise SRLabError(f'{self.flag}: {f} is {img.shape[1]}x{img.shape[0]}, '
                                             f'the first frame is {self.w}x{self.h}')
                yield img
            return
        import imageio_ffmpeg
        gen = imageio_ffmpeg.read_frames(self.path, output_params=['-fps_mode', 'passthrough'])
        try:
            next(gen)
            for buf in gen:
                yield self._frame(buf)
        except Exception as e:
            raise SRLabError(f'{self.flag}: cannot decode {self.path} ({_reason(e)})')
        finally:
            gen.close()


class Encoder:
    """ffmpeg process that turns raw frames on its stdin into an .mp4 file."""

    def __init__(self, path, name, w, h, channels, fps, codec, crf):
        self.name = f'{name} (--video_codec {codec})'
        pix = 'rgb24' if codec in RGB_CODECS else 'yuv420p'
        cmd = [ffmpeg_exe(), '-y', '-hide_banner', '-loglevel', 'error',
               '-f', 'rawvideo', '-pix_fmt', 'rgb24' if channels == 3 else 'gray',
               '-s', f'{w}x{h}', '-framerate', str(fps), '-i', '-', '-an',
               '-c:v', codec, '-crf', str(crf), '-pix_fmt', pix]
        if pix == 'yuv420p':
            cmd += ['-vf', YUV_TAGS]
        cmd += ['-movflags', '+faststart', '-f', 'mp4', path]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log)

    def error(self, what):
        self.log.seek(0)
        msg = _reason(self.log.read().decode(errors='replace')) or f'exit code {self.proc.returncode}'
        return SRLabError(f'ffmpeg could not {what} {self.name}: {msg}')

    def write(self, frame):
        try:
            self.proc.stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, OSError):
            self.proc.wait()
            raise self.error('encode')

    def close(self):
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        if self.proc.wait() != 0:
            raise self.error('encode')

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def mux_audio(video, source, out, log):
    """Copy the source's audio next to `video` into `out`; re-encode it as
    AAC when MP4 cannot hold its codec."""
    base = [ffmpeg_exe(), '-y', '-nostdin', '-hide_banner', '-loglevel', 'error',
            '-i', video, '-i', source, '-map', '0:v', '-map', '1:a?']
    tail = ['-movflags', '+faststart', '-f', 'mp4', out]
    r = subprocess.run(base + ['-c', 'copy'] + tail, capture_output=True)
    if r.returncode == 0:
        return
    r = subprocess.run(base + ['-c:v', 'copy', '-c:a', 'aac'] + tail, capture_output=True)
    if r.returncode != 0:
        msg = _reason(r.stderr.decode(errors='replace'))
        raise SRLabError(f'ffmpeg could not add the audio of {source}: {msg}')
    log(f'Audio of {source} cannot be copied into MP4; re-encoded as AAC')


class VideoTester:
    def __init__(self, args, my_model, ckp):
        self.args = args
        self.model = my_model
        self.ckp = ckp
        self.evaluator = Evaluator(args, [], ckp)
        a = args
        if not a.video_fps > 0:
            raise SRLabError(f'--video_fps: must be positive, got {a.video_fps}')
        top = 51 if a.video_codec.startswith('libx26') else 63
        if not 0 <= a.video_crf <= top:
            raise SRLabError(f'--video_crf: must be in 0..{top} for {a.video_codec}, got {a.video_crf}')
        if a.video_batch < 1:
            raise SRLabError(f'--video_batch: must be at least 1, got {a.video_batch}')
        if not a.video_codec.strip():
            raise SRLabError('--video_codec: empty encoder name')
        if a.video_hr and len(a.scale) > 1:
            raise SRLabError('--video_hr: give a single --scale (the reference has one size)')

    @torch.no_grad()
    def test(self):
        a = self.args
        self.model.eval()
        src = Source(a.dir_demo, '--dir_demo', a.video_fps, a.n_colors)
        if src.fps is None:
            self.ckp.write_log(f'{src.path}: frame rate unknown; using --video_fps {a.video_fps}')
            src.fps = Fraction(str(a.video_fps)).limit_denominator(1001)
        hr = None
        if a.video_hr:
            hr = Source(a.video_hr, '--video_hr', a.video_fps, a.n_colors)
            s = a.scale[0]
            if (hr.w, hr.h) != (src.w * s, src.h * s):
                raise SRLabError(f'--video_hr: {hr.path} is {hr.w}x{hr.h}, but x{s} of {src.path} '
                                         f'({src.w}x{src.h}) is {src.w * s}x{src.h * s}')
        for idx_scale, scale in enumerate(a.scale):
            self.evaluator.add('video', scale, self.upscale(src, hr, idx_scale, scale))
        self.evaluator.write_results()

    def upscale(self, src, hr, idx_scale, scale):
        return Job(self, src, hr, idx_scale, scale).run()


class Job:
    """One upscaling of src at one scale: reader thread -> model (this
    thread) -> writer thread, linked by bounded queues and a stop event."""

    def __init__(self, tester, src, hr, idx_scale, scale):
        self.args, self.model, self.ckp = tester.args, tester.model, tester.ckp
        self.src, self.hr, self.idx_scale, self.scale = src, hr, idx_scale, scale
        a = self.args
        self.out_path = self.ckp.get_path(f'{src.name}_x{scale}.mp4')
        w, h = self.w, self.h = src.w * scale, src.h * scale
        self.pad_h, self.pad_w = (0, 0) if a.video_codec in RGB_CODECS else (h % 2, w % 2)
        if self.pad_h or self.pad_w:
            self.ckp.write_log(f'{w}x{h} is odd, which yuv420p cannot hold: the last row/column is repeated '
                               f'({w + self.pad_w}x{h + self.pad_h})')
        name = os.path.basename(self.out_path)
        self.tmps = [self.ckp.get_path(f'.{name}.{os.getpid()}.{i}.tmp') for i in (0, 1)]
        self.stop = threading.Event()
        self.errors = []
        self.q_in, self.q_out = queue.Queue(maxsize=3), queue.Queue(maxsize=3)
        self.n_frames, self.per_frame = 0, []
        self.model_seconds = 0.0
        self.threads = []
        self.bar = tqdm(total=src.count, desc=f'{src.name} x{scale}', unit='frame', dynamic_ncols=True,
                        leave=False, disable=None)

    def run(self):
        a = self.args
        t0 = time.perf_counter()
        self.enc = Encoder(self.tmps[0], self.out_path, self.w + self.pad_w, self.h + self.pad_h,
                           a.n_colors, self.src.fps, a.video_codec, a.video_crf)
        try:
            self.threads = [self.start(self.reader), self.start(self.writer)]
            self.model_loop()
            for t in self.threads:
                t.join()
            if self.errors:
                raise self.errors[0]
            self.save()
        finally:  # also on errors: stop the threads and ffmpeg, drop the temp files
            self.cleanup()
        return self.result(time.perf_counter() - t0)

    def put(self, q, item):
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def get(self, q):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                pass
        return None

    def start(self, fn):
        """Run fn in a daemon thread; its error stops the job."""
        def run():
            try:
                fn()
            except BaseException as e:  # reported by the main thread
                self.errors.append(e)
                self.stop.set()
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def reader(self):
        batch = []
        for f in self.src.frames():
            batch.append(f)
            if len(batch) == self.args.video_batch:
                if not self.put(self.q_in, np.stack(batch)):
                    return
                batch = []
        if batch and not self.put(self.q_in, np.stack(batch)):
            return
        self.put(self.q_in, DONE)

    def model_loop(self):
        dtype = next(iter(self.model.parameters()), torch.empty(0)).dtype
        dev = self.model.device
        while True:
            batch = self.get(self.q_in)
            if batch is None or batch is DONE:
                break
            t1 = time.perf_counter()
            sr = self.forward(batch, dtype, dev)
            self.model_seconds += time.perf_counter() - t1
            if not self.put(self.q_out, sr):
                break
        if batch is DONE:
            self.put(self.q_out, DONE)

    def forward(self, batch, dtype, dev):
        """uint8 NHWC frames -> upscaled uint8 NHWC frames."""
        a = self.args
        x = torch.from_numpy(batch).to(dev).permute(0, 3, 1, 2).to(dtype).mul_(a.rgb_range / 255)
        sr = self.model(x, self.idx_scale)
        if tuple(sr.shape[-2:]) != (self.h, self.w):
            raise SRLabError(f'--model {a.model} returned {sr.shape[-1]}x{sr.shape[-2]} '
                                     f'frames for x{self.scale}, expected {self.w}x{self.h}')
        sr = sr.float().mul(255 / a.rgb_range).clamp(0, 255).round().to(torch.uint8)
        return sr.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def writer(self):
        src, hr = self.src, self.hr
        hr_frames = hr.frames() if hr else None
        try:
            while True:
                item = self.get(self.q_out)
                if item is None:
                    return
                if item is DONE:
                    break
                for f in item:
                    self.write_frame(f, hr_frames)
            if hr_frames is not None and next(hr_frames, None) is not None:
                raise SRLabError(f'--video_hr: {hr.path} has more frames than {src.path}')
            self.enc.close()
        finally:
            if hr_frames is not None:
                hr_frames.close()

    def write_frame(self, f, hr_frames):
        if hr_frames is not None:
            g = next(hr_frames, None)
            if g is None:
                raise SRLabError(f'--video_hr: {self.hr.path} has fewer frames than {self.src.path}')
            p, s = score(_chw(f), _chw(g), self.scale, 255)
            self.per_frame.append({'psnr': p, 'ssim': s})
        if self.pad_h or self.pad_w:
            f = np.pad(f, ((0, self.pad_h), (0, self.pad_w), (0, 0)), mode='edge')
        self.enc.write(f)
        self.n_frames += 1
        self.bar.update(1)

    def save(self):
        """Move the encoded video (with the source's audio) to out_path."""
        if self.src.audio:
            mux_audio(self.tmps[0], self.src.path, self.tmps[1], self.ckp.write_log)
            os.replace(self.tmps[1], self.out_path)
        else:
            os.replace(self.tmps[0], self.out_path)

    def cleanup(self):
        self.stop.set()
        self.enc.kill()
        for t in self.threads:
            t.join()
        self.bar.close()
        for p in self.tmps:
            if os.path.exists(p):
                os.remove(p)

    def result(self, seconds):
        """Log the summary line and return the results entry."""
        src, scale, out_path = self.src, self.scale, self.out_path
        n = max(self.n_frames, 1)
        entry = {'frames': n, 'seconds_per_image': self.model_seconds / n, 'output': os.path.basename(out_path)}
        msg = f'[video x{scale}]\t{n} frames in {seconds:.2f} s ({n / seconds:.2f} fps) -> {out_path}'
        if self.hr:
            pf = self.per_frame
            entry.update(psnr=sum(e['psnr'] for e in pf) / n, ssim=sum(e['ssim'] for e in pf) / n, per_frame=pf)
            msg += f'\tPSNR: {entry["psnr"]:.2f} SSIM: {entry["ssim"]:.4f}'
        if src.audio:
            msg += f' (audio: {src.audio})'
        self.ckp.write_log(msg)
        return entry


def _chw(img):
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)
