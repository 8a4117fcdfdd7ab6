"""--data_test video end to end through main.main.

Clips are written losslessly with the bundled ffmpeg: H.264 RGB (libx264rgb,
-crf 0) in .mkv, which decodes to exactly the RGB frames that were written
(checked in `clip`), or PNG frames folders. Outputs are read back with
imageio_ffmpeg.read_frames.
"""
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'src'))

import main  # noqa: E402
import metrics  # noqa: E402
import videotester  # noqa: E402
from data.imresize import imresize  # noqa: E402

import imageio.v3 as iio  # noqa: E402
import imageio_ffmpeg as iff  # noqa: E402

FF = iff.get_ffmpeg_exe()


def moving_square(n=30, h=64, w=96, red=True):
    """Gradient background with moving coloured squares; frame 0 pure red."""
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 128)], -1).astype(np.uint8)
    out = []
    for i in range(n):
        f = bg.copy()
        f[10:30, 2 + 2 * i:22 + 2 * i] = (220, 40, 30)
        f[40:50, 60 - i:70 - i] = (20, 60, 230)
        out.append(f)
    if red:
        out[0][:] = (255, 0, 0)
    return out


def write_video(path, frames, fps='24', extra_inputs=(), extra=()):
    h, w = frames[0].shape[:2]
    cmd = [FF, '-y', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', f'{w}x{h}',
           '-framerate', fps, '-i', '-', *extra_inputs, '-c:v', 'libx264rgb', '-crf', '0', *extra, str(path)]
    subprocess.run(cmd, input=b''.join(f.tobytes() for f in frames), check=True)
    return path


def read_video(path):
    gen = iff.read_frames(str(path))
    meta = next(gen)
    w, h = meta['size']
    return [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen], meta


def streams(path):
    err = subprocess.run([FF, '-hide_banner', '-i', str(path)], capture_output=True, text=True).stderr
    return [s for s in err.splitlines() if 'Stream #' in s]


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    frames = moving_square()
    path = write_video(tmp_path_factory.mktemp('clip') / 'clip.mkv', frames)
    got, meta = read_video(path)
    assert len(got) == 30 and all((a == b).all() for a, b in zip(got, frames))  # lossless
    return path, frames


@pytest.fixture
def run(capsys):
    saves = []

    def go(*args):
        save = f'_test_video_{os.getpid()}_{len(saves)}'
        saves.append(save)
        argv = ['--test_only', '--data_test', 'video', '--save', save, '--cpu', '--n_threads', '0', '--reset']
        try:
            code = main.main(argv + [str(a) for a in args])
        except SystemExit as e:  # a command-line mistake (exit 2)
            code = e.code
        out, err = capsys.readouterr()
        return code, REPO / 'experiment' / save, out, err

    yield go
    for s in saves:
        shutil.rmtree(REPO / 'experiment' / s, ignore_errors=True)


def test_bicubic_lossless_is_exact(clip, run):
    path, frames = clip
    code, d, out, err = run('--model', 'Bicubic', '--scale', '2', '--dir_demo', path,
                            '--video_codec', 'libx264rgb', '--video_crf', '0')
    assert code == 0, err
    got, meta = read_video(d / 'clip_x2.mp4')
    assert len(got) == 30 and meta['size'] == (192, 128) and meta['fps'] == 24
    for g, f in zip(got, frames):
        assert (g == imresize(f, 2)).all()
    assert '30 frames in' in out
    assert not [p for p in os.listdir(d) if p.endswith('.tmp')]


def test_default_h264_colours_and_scales(clip, run):
    path, frames = clip
    code, d, out, err = run('--model', 'Bicubic', '--scale', '2+3', '--dir_demo', path)
    assert code == 0, err
    for s in (2, 3):
        got, meta = read_video(d / f'clip_x{s}.mp4')
        assert len(got) == 30 and meta['size'] == (96 * s, 64 * s) and meta['fps'] == 24
        assert 'yuv420p(tv, bt709' in streams(d / f'clip_x{s}.mp4')[0]
        r, g, b = got[0].reshape(-1, 3).mean(0)
        assert r > 245 and g < 10 and b < 10  # pure red stays red
        # lossy yuv420p H.264 at CRF 18: close to the exact bicubic, not equal
        psnr = [metrics.psnr(o, imresize(f, s)) for o, f in zip(got, frames)]
        assert min(psnr) > 33, psnr


def test_edsr_batches_and_odd_size(tmp_path, run):
    frames = [f[:25, :33] for f in moving_square(n=7)]  # odd LR size, 7 frames: batches 3+3+1
    folder = tmp_path / 'frames'
    folder.mkdir()
    for i, f in enumerate(frames):
        iio.imwrite(folder / f'{i:04d}.png', f)
    code, d, out, err = run('--model', 'EDSR', '--n_resblocks', '2', '--n_feats', '8', '--scale', '3', '--pre_train',
                            'none', '--dir_demo', folder, '--video_batch', '3', '--video_fps', '12.5')
    assert code == 0, err
    got, meta = read_video(d / 'frames_x3.mp4')
    assert len(got) == 7 and meta['size'] == (100, 76) and meta['fps'] == 12.5  # 99x75 padded for yuv420p
    assert 'odd' in out


def test_video_hr_scores(tmp_path, run):
    hr = moving_square(red=False)  # a pure red frame would score PSNR inf
    lr = [imresize(f, 0.5) for f in hr]
    hr_path = write_video(tmp_path / 'hr.mkv', hr)
    folder = tmp_path / 'lr'
    folder.mkdir()
    for i, f in enumerate(lr):
        iio.imwrite(folder / f'{i:04d}.png', f)
    code, d, out, err = run('--model', 'Bicubic', '--scale', '2', '--dir_demo', folder, '--video_hr', hr_path)
    assert code == 0, err
    import json
    res = json.loads((d / 'results.json').read_text())['video']['2']
    want = [metrics.calc_metrics(imresize(a, 2), b, shave=2) for a, b in zip(lr, hr)]
    assert res['frames'] == 30 and len(res['per_frame']) == 30
    assert abs(res['psnr'] - np.mean([p for p, _ in want])) < 0.01
    assert abs(res['ssim'] - np.mean([s for _, s in want])) < 1e-4
    assert abs(res['per_frame'][5]['psnr'] - want[5][0]) < 0.01
    assert 'PSNR' in out


@pytest.mark.parametrize('audio', ['aac', 'wmav1'])  # wmav1 cannot go into MP4: re-encoded as AAC
def test_audio_and_ntsc_rate(tmp_path, run, audio):
    path = write_video(tmp_path / 'talk.mkv', moving_square(n=36), fps='30000/1001',
                       extra_inputs=['-f', 'lavfi', '-i', 'sine=frequency=440:duration=1.25'],
                       extra=['-c:a', audio])
    assert any('Audio: ' + audio in s for s in streams(path))
    code, d, out, err = run('--model', 'Bicubic', '--scale', '2', '--dir_demo', path)
    assert code == 0, err
    s = streams(d / 'talk_x2.mp4')
    assert any('Audio: aac' in x for x in s) and '29.97 fps' in s[0]
    got, meta = read_video(d / 'talk_x2.mp4')
    assert len(got) == 36


def test_exact_fps():
    assert videotester.exact_fps(29.97) == Fraction(30000, 1001)
    assert videotester.exact_fps(23.98) == Fraction(24000, 1001)
    assert videotester.exact_fps(25.0) == 25 and videotester.exact_fps(12.5) == Fraction(25, 2)


@pytest.mark.filterwarnings('ignore:skipping non-image file')
@pytest.mark.parametrize('kind', ['missing', 'empty_file', 'no_frames', 'not_video', 'audio_only', 'bad_codec',
                                  'bad_crf', 'hr_size', 'frame_size'])
def test_errors(tmp_path, run, kind, clip):
    extra = []
    path = tmp_path / 'x.mp4'
    if kind == 'empty_file':
        path.write_bytes(b'')
    elif kind == 'no_frames':
        path = tmp_path / 'frames'
        path.mkdir()
        (path / 'notes.txt').write_text('no images here')
    elif kind == 'not_video':
        path.write_bytes(b'this is not a video' * 100)
    elif kind == 'audio_only':
        path = tmp_path / 'sine.m4a'
        subprocess.run([FF, '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=duration=0.5', str(path)], check=True)
    elif kind in ('bad_codec', 'bad_crf', 'hr_size'):
        path = clip[0]
        extra = {'bad_codec': ['--video_codec', 'nosuchcodec'], 'bad_crf': ['--video_crf', '52'],
                 'hr_size': ['--video_hr', clip[0]]}[kind]
    elif kind == 'frame_size':  # fails in the reader thread after a few frames
        path = tmp_path / 'frames'
        path.mkdir()
        for i, f in enumerate(moving_square(n=9)):
            iio.imwrite(path / f'{i:02d}.png', f if i != 6 else f[:32])
    code, d, out, err = run('--model', 'Bicubic', '--scale', '2', '--dir_demo', path, '--video_batch', '2', *extra)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith('main.py: error:'), err
    named = {'bad_codec': 'clip_x2.mp4', 'bad_crf': '--video_crf', 'hr_size': 'clip.mkv',
             'frame_size': '06.png'}.get(kind, str(path))
    assert named in lines[0], lines[0]
    assert d.is_dir() != (kind in ('bad_crf', 'missing'))  # a usage error refuses the start: no run folder
    assert not [p for p in os.listdir(d) if p.endswith(('.mp4', '.tmp'))] if d.is_dir() else True
