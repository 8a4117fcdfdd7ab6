"""Atomic file writes: a reader sees the old file or the new one, never a
partial one. Every file srlab writes into a run (weights, the run state, logs
of numbers, results.json) goes through here."""
import os
import tempfile

import torch

from errors import SRLabError


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
    then rename over `path`. A failed write leaves the old file and raises
    SRLabError. `before_replace()` runs once the new file is complete (e.g. to
    keep the old one under another name)."""
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
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(d)
    except OSError as e:
        raise SRLabError(f'cannot write {path}: {e.strerror or e}; the previous file is kept') from e
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)


def _fsync_dir(d):
    try:
        dfd = os.open(d, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
    except OSError:
        pass


def atomic_save(obj, path, before_replace=None):
    _atomic(path, lambda f: torch.save(obj, f), before_replace)


def atomic_write_text(text, path):
    _atomic(path, lambda f: f.write(text.encode()))


def atomic_write_bytes(data, path):
    _atomic(path, lambda f: f.write(data))


def remove_stale_temps(folder):
    """Remove the temp files (.<name>.<random>.tmp) that a killed process left in `folder`."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith('.') and name.endswith('.tmp'):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass
