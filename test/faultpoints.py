"""Fault injection for test_faults.py, kept out of src/: it costs nothing
when unused. The N-th atomic write of a process (atomic._atomic: its fsync
of the complete temp file, before the rename) fails or SIGKILLs the process.

    fail_nth_write(monkeypatch, n, error)   in-process: writes n, n+1, ... raise `error`
    python faultpoints.py ARGS              runs src/main.py ARGS and SIGKILLs itself in
                                            write number $SRLAB_FAULT_KILL_ON_SAVE
"""
import os
import runpy
import stat
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / 'src'


def _on_file_fsync(action):
    """Wrap os.fsync so that action(n) runs before the n-th fsync of a regular file
    (directory fsyncs, which follow each rename, are not counted)."""
    real = os.fsync
    count = [0]

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            count[0] += 1
            action(count[0])
        return real(fd)
    return fsync


def fail_nth_write(monkeypatch, n, error):
    def action(k):
        if k >= n:
            raise error
    monkeypatch.setattr(os, 'fsync', _on_file_fsync(action))


def _kill_at(n):
    def action(k):
        if k == n:
            os.kill(os.getpid(), 9)
    return action


if __name__ == '__main__':
    os.fsync = _on_file_fsync(_kill_at(int(os.environ['SRLAB_FAULT_KILL_ON_SAVE'])))
    sys.path.insert(0, str(SRC))
    sys.argv = [str(SRC / 'main.py')] + sys.argv[1:]
    runpy.run_path(str(SRC / 'main.py'), run_name='__main__')
