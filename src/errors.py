"""srlab's user-facing errors: SRLabError, which main.py prints as one line
with exit code 1, and helpers that reduce an exception to one line."""


class SRLabError(Exception):
    """A user-facing error at run time: main.py prints it as one line and exits with 1."""


class UsageError(SRLabError):
    """A mistake in the command line found after parsing (e.g. --save names a run that exists):
    one line, exit code 2, as the parser's own errors."""


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


def did_you_mean(name, names):
    """'; did you mean X?' for the closest of `names` (case-insensitive), or ''."""
    import difflib
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(str(name).lower(), list(lower), n=1, cutoff=0.6)
    return f'; did you mean {lower[close[0]]}?' if close else ''
