"""srlab's user-facing errors: SRLabError, which main.py prints as one line
with exit code 1, and helpers that reduce an exception to one line."""


class SRLabError(Exception):
    """A user-facing error: main.py prints it as one line and exits non-zero."""


def error_text(e):
    """'Type: first line of the message', for one-line error reports."""
    msg = str(e).strip()
    return f'{type(e).__name__}: {msg.splitlines()[0]}' if msg else type(e).__name__


def one_line(e):
    """The user-facing line of an error (also when re-raised from a loader worker)."""
    msg = str(e).strip().splitlines()
    if len(msg) > 1 and 'Traceback' in str(e):  # DataLoader worker: last line is 'Type: message'
        last = msg[-1]
        return last.split(': ', 1)[1] if ': ' in last else last
    return msg[0] if msg else type(e).__name__
