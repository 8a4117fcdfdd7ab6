"""The experiment directory (checkpoint: folder, log.txt, config.txt, result
images), atomic file writes, one-line errors, timer and pixel helpers."""
import datetime
import fcntl
import os
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path

import torch

import state
from distributed import World
from metrics import calc_psnr_ssim  # noqa: F401  (re-exported: utility.calc_psnr_ssim)

REPO = Path(__file__).resolve().parents[1]


class SRLabError(Exception):
    """A user-facing error: main.py prints it as one line and exits non-zero."""


# ---- persistence -----------------------------------------------------------
class _Recording:
    """A file that remembers the first OSError of a write (torch.save turns it
    into a RuntimeError like 'unexpected pos 704 vs 598')."""

    def __init__(self, f):
        self.f = f
        self.error = None

    def write(self, b):
        try:
            return self.f.write(b)
        except OSError as e:
            if self.error is None:
                self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self.f, name)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once, at import (os.umask is process-wide, not thread-safe)


def _atomic(path, write, before_replace=None):
    """Write through `write(f)` to a temp file in the same directory, fsync,
    then rename over `path`: a reader sees the old file or the new one, never
    a partial one. A failed write leaves the old file and raises SRLabError."""
    path = str(path)
    d = os.path.dirname(path) or '.'
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=d)
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; keep what open() would give
        with os.fdopen(fd, 'wb') as f:
            rec = _Recording(f)
            try:
                write(rec)
            except RuntimeError as e:  # torch.save reports a failed write without its cause
                if rec.error is None:
                    raise
                raise rec.error from e
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:  # the new file is complete: e.g. keep the old one under another name
            before_replace()
        os.replace(tmp, path)
        tmp = None
        try:
            dfd = os.open(d, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
        except OSError:
            pass
    except OSError as e:
        raise SRLabError(f'cannot write {path}: {e.strerror or e}; the previous file is kept') from e
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)


def atomic_save(obj, path, before_replace=None):
    _atomic(path, lambda f: torch.save(obj, f), before_replace)


def atomic_write_text(text, path):
    _atomic(path, lambda f: f.write(text.encode()))


# ---- small helpers ---------------------------------------------------------
def non_finite(state):
    """Keys of a state_dict whose floating-point tensors hold NaN or inf."""
    return [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]


def check_finite(state, apath, context=''):
    """Stop before weights holding NaN or inf are saved over the last good state in `apath`."""
    bad = non_finite(state)
    if bad:
        raise SRLabError(f'weights became non-finite ({bad[0]}){context}; not saving them over the last good '
                         f'state in {apath}')


def error_text(e):
    """'Type: first line of the message', for one-line error reports."""
    msg = str(e).strip()
    return f'{type(e).__name__}: {msg.splitlines()[0]}' if msg else type(e).__name__


class Timer:
    def __init__(self):
        self.acc = 0
        self.tic()

    def tic(self):
        self.t0 = time.perf_counter()

    def toc(self, restart=False):
        diff = time.perf_counter() - self.t0
        if restart:
            self.t0 = time.perf_counter()
        return diff

    def hold(self):
        self.acc += self.toc()

    def release(self):
        ret, self.acc = self.acc, 0
        return ret

    def reset(self):
        self.acc = 0


def quantize(img, rgb_range):
    """Round to the 256 levels of an 8-bit image, on the rgb_range scale."""
    pixel_range = 255 / rgb_range
    return img.mul(pixel_range).clamp(0, 255).round().div(pixel_range)


def to_uint8(t, rgb_range):
    """CxHxW tensor on 0..rgb_range -> HxWxC uint8 array."""
    a = t.detach().float().mul(255 / rgb_range).clamp(0, 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return a[..., 0] if a.shape[2] == 1 else a


# ---- background image writer ---------------------------------------------
class ImageWriter:
    """Writes images from worker threads. The queue is bounded (the producer
    waits, nothing is dropped); a failed write is recorded and reported at
    close(); threads never die on an error, so close() cannot deadlock."""

    def __init__(self, n_threads=2, maxsize=16):
        self.q = queue.Queue(maxsize=maxsize)
        self.errors = []
        self.written = 0
        self.lock = threading.Lock()
        self.closed = False
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(max(n_threads, 1))]
        for t in self.threads:
            t.start()

    def _run(self):
        import imageio.v3 as iio
        while True:
            item = self.q.get()
            if item is None:
                self.q.task_done()
                return
            path, arr = item
            tmp = path + '.tmp.png'
            try:
                iio.imwrite(tmp, arr)
                os.replace(tmp, path)
                with self.lock:
                    self.written += 1
            except Exception as e:  # keep draining; report at close()
                with self.lock:
                    self.errors.append(f'{path}: {error_text(e)}')
                try:  # no half-written temp file left behind
                    os.remove(tmp)
                except OSError:
                    pass
            finally:
                self.q.task_done()

    def put(self, path, arr):
        if self.closed:
            raise SRLabError(f'internal: image {path} queued after the writer was closed')
        self.q.put((path, arr))

    def close(self):
        if self.closed:
            return self.written
        self.closed = True
        for _ in self.threads:
            self.q.put(None)
        for t in self.threads:
            t.join()
        if self.errors:
            raise SRLabError(f'{len(self.errors)} result image(s) could not be written, first: {self.errors[0]}')
        return self.written


# ---- experiment directory ---------------------------------------------------
def remove_stale_temps(d):
    """Remove the temp files of atomic writes (.<name>.<random>.tmp) that a
    killed process left in experiment dir `d` and its model/ folder."""
    for sub in (d, os.path.join(d, 'model')):
        if not os.path.isdir(sub):
            continue
        for name in os.listdir(sub):
            if name.startswith('.') and name.endswith('.tmp'):
                try:
                    os.remove(os.path.join(sub, name))
                except OSError:
                    pass


LOCK = '.lock'


class RunLock:
    """An exclusive lock (flock) on experiment/<name>/.lock, which --reset
    keeps while it empties the folder. The kernel releases it when the
    process ends, however it ends: a SIGKILL leaves no stale lock."""

    def __init__(self, d, name):
        os.makedirs(d, exist_ok=True)
        self.file = open(os.path.join(d, LOCK), 'a+')
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            pid = self.file.read().strip() or 'unknown'
            self.file.close()
            raise SRLabError(f'experiment/{name} is in use by process {pid} (another run writes into it); '
                             'nothing was touched: wait for that process to end or stop it') from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f'{os.getpid()}\n')
        self.file.flush()

    def release(self):
        self.file.close()


class checkpoint:
    """experiment/<save> (or experiment/<load> when continuing): the folder,
    config.txt, log.txt and the result images. Under torchrun only rank 0
    writes. Refuses to reuse a training run unless --load or --reset. A
    process that trains, resumes, resets or saves result images holds the
    run's lock (RunLock) from here to done()."""

    def __init__(self, args, root=None, world=World()):
        self.args = args
        self.main = world.main
        self.writer = None
        self.log_file = None
        self.lock = None
        self.board = None  # --tensorboard: tboard.Board on experiment/<save>/tb (rank 0)
        root = Path(root or REPO / 'experiment')
        name = args.load or args.save
        self.dir = str(root / name)
        if args.load and not os.path.isdir(self.dir):
            raise SRLabError(f'--load: no run named {args.load!r} in {root}')
        if self.main and not (args.load or args.reset or args.test_only) and state.holds_run(self.dir):
            raise SRLabError(f'--save: experiment/{name} already holds a run; continue it with '
                             f'--load {name} --resume -1, delete it with --reset, or pick another --save')
        if self.main and (not args.test_only or args.save_results or args.reset):
            self.lock = RunLock(self.dir, name)  # a refused run above took no lock: it wrote nothing
        try:
            self._check_load() if args.load else self._check_save() if self.main else None
            if self.main:
                self._open()
        except BaseException:
            self.done()
            raise

    def _open(self):
        if self.args.tensorboard:  # first: a missing package stops the run before anything is written
            import tboard
            self.board = tboard.Board(self.get_path('tb'))
        os.makedirs(self.get_path('model'), exist_ok=True)
        open_type = 'a' if os.path.exists(self.get_path('log.txt')) else 'w'
        self.log_file = open(self.get_path('log.txt'), open_type)
        now = datetime.datetime.now().strftime('%Y-%m-%d-%H:%M:%S')
        lines = [now] + [f'{k}: {v}' for k, v in sorted(self.args.flags().items())]
        with open(self.get_path('config.txt'), open_type) as f:
            f.write('\n'.join(lines) + '\n\n')

    def _check_load(self):
        if self.args.reset:
            raise SRLabError('--reset with --load would delete the run being continued; drop one of them')
        if self.main:
            remove_stale_temps(self.dir)

    def _check_save(self):
        if self.args.reset and os.path.exists(self.dir):
            for entry in os.scandir(self.dir):  # everything but the lock this process holds
                if entry.name != LOCK:
                    shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.remove(entry.path)

    def get_path(self, *subdir):
        return os.path.join(self.dir, *subdir)

    # logs
    def write_log(self, log, refresh=False, quiet=False):
        if not self.main:
            return
        if not quiet:
            print(log)
        self.log_file.write(log + '\n')
        if refresh:
            self.log_file.close()
            self.log_file = open(self.get_path('log.txt'), 'a')
        else:
            self.log_file.flush()

    def done(self):
        """Finish the result images (their errors are raised), close log.txt, release the lock."""
        try:
            self.end_background()
        finally:
            if self.log_file is not None:
                self.log_file.close()
                self.log_file = None
            if self.board is not None:
                self.board.close()
                self.board = None
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    # TensorBoard (--tensorboard; nothing without it)
    def add_scalars(self, step, values):
        if self.board is not None:
            self.board.scalars(step, values)

    def add_image(self, tag, chw, step):
        if self.board is not None:
            self.board.image(tag, chw, step)

    # result images
    def begin_background(self):
        if self.writer is None:
            self.writer = ImageWriter()

    def end_background(self):
        if self.writer is not None:
            w, self.writer = self.writer, None
            w.close()

    def save_results(self, dataset, filename, save_list, scale):
        if not self.args.save_results or not self.main:
            return
        self.begin_background()
        d = self.get_path(f'results-{dataset.name}')
        os.makedirs(d, exist_ok=True)
        for v, p in zip(save_list, ('SR', 'LR', 'HR')):
            self.writer.put(os.path.join(d, f'{filename}_x{scale}_{p}.png'), to_uint8(v[0], self.args.rgb_range))
