"""The experiment folder (EDSR-PyTorch's utility.checkpoint): experiment/<save>
with its log.txt, config.txt, the run lock and the result images (written
by ImageWriter threads)."""
import datetime
import fcntl
import os
import queue
import shutil
import threading
import time
from pathlib import Path

import atomic
from data.common import tensor2np
from distributed import World
from errors import SRLabError, UsageError, error_text
from paths import EXPERIMENTS, holds_run


# ---- background image writer ---------------------------------------------
class ImageWriter:
    """Writes images from worker threads. The queue is bounded (the producer
    waits, nothing is dropped); a failed write is recorded and reported at
    close(); threads never die on an error, so close() cannot deadlock."""

    def __init__(self, n_threads=2, maxsize=16):
        self.q = queue.Queue(maxsize=maxsize)
        self.errors = []
        self.written, self.counted = 0, 0  # images written; of them, those drain() reported
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

    def drain(self):
        """Wait until every queued image is written or has failed; the number
        written since the last drain() (failures are kept for close())."""
        self.q.join()
        with self.lock:
            n, self.counted = self.written - self.counted, self.written
        return n

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
LOCK = '.lock'


def holder(f, wait=1.0):
    """The PID of the process holding lock file `f`: the one it wrote into
    the file (waiting up to `wait` s for a holder that has only just taken the
    lock), else the flock holder that the kernel lists in /proc/locks."""
    deadline = time.monotonic() + wait
    while True:
        f.seek(0)
        pid = f.read().strip()
        if pid or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return pid or lock_owner(os.fstat(f.fileno()).st_ino) or 'unknown'


def lock_owner(inode):
    """The PID that holds a flock on the file with this inode (Linux /proc/locks), or ''."""
    try:
        with open('/proc/locks') as f:
            for line in f:  # '1: FLOCK  ADVISORY  WRITE 4242 fd:01:123456 0 EOF'
                parts = line.split()
                if len(parts) > 5 and parts[1] == 'FLOCK' and parts[5].split(':')[-1] == str(inode):
                    return parts[4]
    except OSError:
        pass
    return ''


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
            pid = holder(self.file)
            self.file.close()
            raise SRLabError(f'experiment/{name} is in use by process {pid} (another run writes into it); '
                             'nothing was touched: wait for that process to end or stop it') from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f'{os.getpid()}\n')
        self.file.flush()

    def release(self):
        self.file.close()


def writes_outputs(args):
    """A test of images without ground truth (Demo) or of a video writes its outputs, whatever --save_results."""
    return any(d in ('Demo', 'video') for d in args.data_test)  # (canonical names: data.canonical)


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
        root = Path(root or EXPERIMENTS)
        name = args.load or args.save
        self.dir = str(root / name)
        self.created = self.main and not os.path.exists(self.dir)  # by this process: discard() may remove it
        if args.load and not os.path.isdir(self.dir):
            raise UsageError(f'--load: no run named {args.load!r} in {root}')
        if self.main and not (args.load or args.reset or args.test_only) and holds_run(self.dir):
            raise UsageError(f'--save: experiment/{name} already holds a run; continue it with '
                             f'--load {name} --resume -1, delete it with --reset, or pick another --save')
        if self.main and (not args.test_only or args.save_results or args.reset or writes_outputs(args)):
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
        os.makedirs(self.get_path('model') if not self.args.test_only else self.dir, exist_ok=True)
        open_type = 'a' if os.path.exists(self.get_path('log.txt')) else 'w'
        self.log_file = open(self.get_path('log.txt'), open_type)
        now = datetime.datetime.now().strftime('%Y-%m-%d-%H:%M:%S')
        lines = [now] + [f'{k}: {v}' for k, v in sorted(self.args.flags().items())]
        with open(self.get_path('config.txt'), open_type) as f:
            f.write('\n'.join(lines) + '\n\n')

    def discard(self):
        """A start that failed before the run began: remove the folder if this process made it."""
        self.done()
        if self.created:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _check_load(self):
        if self.args.reset:
            raise UsageError('--reset with --load would delete the run being continued; drop one of them')
        if self.main:  # temp files of atomic writes that a killed process left
            for d in (self.dir, self.get_path('model')):
                atomic.remove_stale_temps(d)

    def _check_save(self):
        if self.args.reset and os.path.exists(self.dir):
            for entry in os.scandir(self.dir):  # everything but the lock this process holds
                if entry.name != LOCK:
                    shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.remove(entry.path)

    def get_path(self, *subdir):
        return os.path.join(self.dir, *subdir)

    # logs
    def write_log(self, log, quiet=False):
        if not self.main:
            return
        if not quiet:
            print(log)
        self.log_file.write(log + '\n')
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
        """Wait for the queued result images and stop the writer (failed writes raise, in one line)."""
        if self.writer is not None:
            w, self.writer = self.writer, None
            w.close()

    def results_written(self):
        """Wait for the queued result images: how many were written since the
        last call (a failed write is reported when the run ends, see done())."""
        return self.writer.drain() if self.writer is not None else 0

    def save_results(self, dataset, filename, save_list, scale):
        """Queue results-<set>/<filename>_x<scale>_{SR,LR,HR}.png (rank 0 only)."""
        if not self.main:
            return
        self.begin_background()
        d = self.get_path(f'results-{dataset.name}')
        os.makedirs(d, exist_ok=True)
        for v, p in zip(save_list, ('SR', 'LR', 'HR')):
            self.writer.put(os.path.join(d, f'{filename}_x{scale}_{p}.png'), tensor2np(v[0], self.args.rgb_range))
