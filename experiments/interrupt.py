"""Stop a run cleanly on SIGINT / SIGTERM, at the end of the current chunk.

The first signal asks the driver to stop after its running chunk, so the
results so far are written with status "interrupted"; a second SIGINT
interrupts at once.
"""

from __future__ import annotations

import signal
import sys


class StopOnSignal:
    def __init__(self):
        self.requested = False
        self.signal_number = 0
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_number = signum
        print(
            f"\n{signal.Signals(signum).name}: stopping after the current chunk; "
            "results so far will be saved",
            file=sys.stderr,
        )

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def wrap(self, on_chunk=None):
        """An ``on_chunk`` that returns False once a stop was requested."""

        def callback(progress):
            if on_chunk is not None:
                on_chunk(progress)
            return not self.requested

        return callback
