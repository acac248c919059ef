"""Stop a run cleanly on SIGINT / SIGTERM, at the end of the current chunk.

The first signal asks the driver to stop after its running chunk, so the
results so far are written with status "interrupted". A second SIGINT exits
at once (status 130), even in the middle of a compiled chunk: Python runs its
signal handlers only between bytecodes, so a handler cannot act while XLA
holds the main thread; the C-level handler still writes each signal to a
wakeup pipe at once, and a watcher thread reading it exits the process.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading


class StopOnSignal:
    def __init__(self):
        self.requested = False
        self.signal_number = 0
        self._previous = {}
        self._pipe = None
        self._previous_fd = -1

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    def _handle(self, signum, frame):
        del signum, frame  # the watcher thread has seen it already

    def _watch(self, reader: socket.socket) -> None:
        while True:
            try:
                data = reader.recv(16)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum not in (signal.SIGINT, signal.SIGTERM):
                    continue
                if self.requested and signum == signal.SIGINT:
                    print(
                        "\nSIGINT again: exiting now; files already written stay, "
                        "the running chunk's results are lost",
                        file=sys.stderr,
                        flush=True,
                    )
                    os._exit(128 + signal.SIGINT)
                if not self.requested:
                    self.requested = True
                    self.signal_number = signum
                    print(
                        f"\n{signal.Signals(signum).name}: stopping after the current "
                        "chunk; results so far will be saved (SIGINT again: exit now)",
                        file=sys.stderr,
                        flush=True,
                    )

    def __enter__(self):
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._pipe = (reader, writer)
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno())
        threading.Thread(target=self._watch, args=(reader,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        reader, writer = self._pipe
        writer.close()  # the watcher reads end-of-file and returns
        reader.close()
        return False

    def wrap(self, on_chunk=None):
        """An ``on_chunk`` that returns False once a stop was requested."""

        def callback(progress):
            if on_chunk is not None:
                on_chunk(progress)
            return not self.requested

        return callback
