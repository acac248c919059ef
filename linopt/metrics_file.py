"""``metrics.csv`` written as a run goes: every step, a chunk at a time.

Memory holds only what :class:`linopt.chunks.History` keeps; the file holds
every step. Each chunk's rows go out in one ``write`` call on an append-only
descriptor, so a run stopped or killed between chunks leaves a file of whole
rows (a power loss may still cut the last write short). A checkpoint records
the file's size after :meth:`MetricsFile.sync`; resuming truncates the file
back to that size, so no step appears twice and none is missing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from linopt.errors import LinoptError
from linopt.runs import file_mode


def _format(values: np.ndarray) -> list[str]:
    if np.issubdtype(values.dtype, np.floating):
        return [f"{v:.9g}" for v in values.tolist()]  # float32 round-trips
    return [str(v) for v in values.astype(np.int64).tolist()]


class MetricsFile:
    """A CSV of named columns, appended to chunk by chunk.

    Args:
      path: the file.
      columns: the header's column names, in order.
      resume_at: the size (bytes) a checkpoint recorded: the file is cut back
        to it and appended to. None: a new file (an old one is replaced).
    Raises:
      LinoptError: ``resume_at`` is past the end of the file, or the file's
        header names other columns.
    """

    def __init__(self, path, columns: Sequence[str], resume_at: int | None = None):
        self.path, self.columns = Path(path), list(columns)
        header = (",".join(self.columns) + "\n").encode()
        if resume_at is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            self._fd = os.open(self.path, flags, file_mode())
            os.write(self._fd, header)
            return
        size = self.path.stat().st_size if self.path.exists() else -1
        if size < resume_at:
            raise LinoptError(
                f"{self.path} holds {max(size, 0)} bytes but the checkpoint was "
                f"saved after {resume_at}; start afresh instead of resuming"
            )
        with open(self.path, "rb") as f:
            if f.readline() != header:
                raise LinoptError(
                    f"{self.path} has other columns than this run's; start afresh"
                )
        os.truncate(self.path, resume_at)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def append(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append rows: equal-length arrays, one per column of the header."""
        text = [_format(np.asarray(columns[name]).reshape(-1)) for name in self.columns]
        data = "".join(",".join(row) + "\n" for row in zip(*text, strict=True))
        view = memoryview(data.encode())
        while view:  # one call, unless the kernel takes less
            view = view[os.write(self._fd, view) :]

    def sync(self) -> int:
        """Flush to disk; the file's size, for a checkpoint to record."""
        os.fsync(self._fd)
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def read(path) -> dict[str, np.ndarray]:
    """The columns of a metrics file, as float64 arrays (``step`` as int64)."""
    with open(path) as f:
        names = f.readline().strip().split(",")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    out = {n: table[:, i] for i, n in enumerate(names)}
    if "step" in out:
        out["step"] = out["step"].astype(np.int64)
    return out
