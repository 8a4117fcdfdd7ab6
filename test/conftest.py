"""Shared test helpers: repository paths, running main.py in-process or as a
subprocess, and unique experiment names that are removed afterwards."""
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / 'src'
SHARED = REPO.parent / 'shared' / 'data'
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def run_main(argv, capsys=None):
    """main.main(argv) in this process -> (exit code, stdout, stderr), read
    through pytest's `capsys` when given. Option errors (SystemExit) are
    turned into their exit code."""
    import contextlib
    import io
    import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if capsys is None:
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = main.main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    if capsys is not None:
        return (code, *capsys.readouterr())
    return code, out.getvalue(), err.getvalue()


def run_cli(argv, timeout=120, cwd=SRC, env=None, launcher=()):
    """`python [launcher...] main.py argv...` in src/ -> CompletedProcess (text);
    `env` adds variables to this process's environment."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    return subprocess.run([sys.executable, *launcher, 'main.py'] + [str(a) for a in argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


class StubCkp:
    """The checkpoint interface Model uses, keeping the log lines in memory."""

    def __init__(self, d='/nonexistent'):
        self.logs = []
        self.d = str(d)

    def write_log(self, log, quiet=False):
        self.logs.append(log)

    def get_path(self, *sub):
        return str(Path(self.d, *sub))


@pytest.fixture(scope='module')
def one_thread():
    """Tiny tensors: intra-op threads only cost time (a lot on a busy machine)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def error_lines(err):
    return [ln for ln in err.splitlines() if ln.strip()]


@pytest.fixture
def exp_name():
    """A factory of unique --save names; their experiment/<name> dirs are removed at teardown."""
    names = []

    def make(tag='run'):
        name = f'pytest_{tag}_{uuid.uuid4().hex[:8]}'
        names.append(name)
        return name
    yield make
    for n in names:
        shutil.rmtree(REPO / 'experiment' / n, ignore_errors=True)


@pytest.fixture
def exp_dir():
    """Path of experiment/<name>."""
    return lambda name: REPO / 'experiment' / name


def pytest_runtest_setup(item):
    """In CI (CI=true) ../shared/data is present by contract: a test that
    would skip for want of it fails instead, so the benchmark checks always run."""
    if os.environ.get('CI') == 'true' and not (SHARED / 'benchmark' / 'Set5' / 'HR').is_dir():
        pytest.fail(f'CI=true but the shared benchmark data is missing: {SHARED}/benchmark/Set5/HR')
