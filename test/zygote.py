"""Real main.py processes for the fault suite, without paying for Python and
torch to start in each: a server (multiprocessing's forkserver) imports torch
and srlab once, and every launch is a process forked from it that runs
main.main(argv) -- a real process, with its own PID, that SIGKILL, SIGTERM,
SIGINT and SIGSTOP reach as they reach `python main.py`.

    p = start(argv, out_path, err_path, env={...}, fsize=None, kill_on_write=None)
    p.pid, p.is_alive(), p.join(), p.exitcode   (-9 when SIGKILLed; main's exit code otherwise)

stdout and stderr go to the given files, line-buffered (the caller follows
them). `env` is added to the environment, `fsize` sets RLIMIT_FSIZE (writes
beyond it fail with EFBIG), `kill_on_write=N` SIGKILLs the process in its
N-th atomic write (faultpoints.py).
"""
import multiprocessing
import multiprocessing.forkserver
import os
import resource
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / 'src'
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

import main  # noqa: E402  (imported once, in the server)
from registry import DATASETS, LOSSES, MODELS  # noqa: E402

for _registry in (MODELS, DATASETS, LOSSES):  # the component modules too
    _registry.names()
# and what a run imports on its way (the first optimizer step imports torch._dynamo, the first
# save matplotlib, the data sets imageio and scikit-image): imports only, no computation, so
# the server starts no thread pool that a fork would break
import imageio.v3  # noqa: E402,F401
import matplotlib  # noqa: E402
import skimage  # noqa: E402,F401
import torch._dynamo  # noqa: E402,F401

matplotlib.use('Agg')
import matplotlib.backends.backend_agg  # noqa: E402,F401
import matplotlib.backends.backend_pdf  # noqa: E402,F401
import matplotlib.pyplot  # noqa: E402,F401

_CONTEXT = None
SERVER = os.getpid()  # the process that imported this module: the server, where the preload works


def _context():
    """The forkserver context, its server started with this module preloaded (the server's
    sys.path comes from PYTHONPATH: multiprocessing does not pass it on)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context('forkserver')
        _CONTEXT.set_forkserver_preload(['zygote'])
        kept = os.environ.get('PYTHONPATH')
        os.environ['PYTHONPATH'] = os.pathsep.join([str(Path(__file__).parent), str(SRC)] + ([kept] if kept else []))
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            if kept is None:
                del os.environ['PYTHONPATH']
            else:
                os.environ['PYTHONPATH'] = kept
    return _CONTEXT


def _run(argv, out, err, env, fsize, kill_on_write):
    """In the forked process: main.main(argv) as `python main.py argv` runs it."""
    assert SERVER != os.getpid(), 'zygote: the server did not preload this module'
    os.environ.update(env)
    if fsize is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    if kill_on_write is not None:
        import faultpoints
        os.fsync = faultpoints._on_file_fsync(faultpoints._kill_at(kill_on_write))
    for fd, path in ((1, out), (2, err)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    sys.stdout = open(1, 'w', buffering=1, closefd=False)
    sys.stderr = open(2, 'w', buffering=1, closefd=False)
    os.chdir(SRC)
    sys.argv = ['main.py', *argv]
    try:
        code = main.main(list(argv))
    except SystemExit as e:  # option errors
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Subprocess:
    """`python main.py argv` as a plain subprocess, behind the same interface."""

    def __init__(self, argv, out, err, env):
        with open(out, 'w') as o, open(err, 'w') as e:
            self.p = subprocess.Popen([sys.executable, 'main.py', *argv], cwd=SRC, stdout=o, stderr=e,
                                      env=dict(os.environ, PYTHONUNBUFFERED='1', **env))
        self.pid = self.p.pid

    def is_alive(self):
        return self.p.poll() is None

    @property
    def exitcode(self):
        return self.p.poll()

    def kill(self):
        self.p.kill()

    def join(self):
        self.p.wait()


def start(argv, out, err, env=None, fsize=None, kill_on_write=None, fresh=False):
    """main.py argv in a process forked from the server, or (`fresh`) in a new `python main.py`:
    a run with loader worker processes starts these much faster from a fresh interpreter."""
    if fresh:
        assert fsize is None and kill_on_write is None
        return Subprocess([str(a) for a in argv], out, err, dict(env or {}))
    p = _context().Process(target=_run, args=([str(a) for a in argv], str(out), str(err), dict(env or {}),
                                              fsize, kill_on_write))
    p.start()
    return p
