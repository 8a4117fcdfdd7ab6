"""SIGINT and SIGTERM during training: the handler only records the signal;
the trainer checks it between steps (and test images), saves a complete
state and raises Interrupted, which main.py turns into exit code 128 + signum."""
import signal


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class Signals:
    """install() records SIGINT/SIGTERM instead of stopping; check() raises
    Interrupted once one arrived; close() puts the previous handlers back."""

    def __init__(self):
        self.received = None
        self._old = {}

    def install(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, lambda signum, frame: setattr(self, 'received', signum))
            except ValueError:  # not the main thread
                pass

    def check(self):
        if self.received is not None:
            raise Interrupted(self.received)

    def close(self):
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}
