"""The driver's host-side policy: how many steps a chunk runs, what is kept.

A stop, a progress update and a checkpoint happen only between chunks, so a
chunk must be short in wall time whatever the run's length; and a run of 10^8
steps must not keep 10^8 rows of metrics in memory.

:class:`ChunkSizer` times each chunk and sizes the next to about
:data:`CHUNK_SECONDS`. The number of steps is a traced argument of the
compiled chunk (a ``while_loop`` up to a fixed buffer), so resizing never
recompiles: a run compiles its chunk once. The first chunk runs one step
(it includes compilation), later ones grow at most :data:`MAX_GROWTH` times a
chunk until their measured time reaches the target.

:class:`History` keeps every ``stride``-th step's metrics, ``stride`` a power
of two chosen from the run's length so that at most about
:data:`KEPT_VALUES` values of each metric are kept (every step of a run of
up to a million scalar steps). The whole record of every step goes to a
file as the run goes (:mod:`linopt.metrics_file`).
"""

from __future__ import annotations

import math

import numpy as np

CHUNK_SECONDS = 0.5  # target wall time of one chunk
MAX_GROWTH = 64  # a chunk at most this many times the previous one's steps
BUFFER_VALUES = 2**22  # metric values a chunk's on-device buffer holds
MAX_CHUNK_STEPS = 2**18  # steps a chunk's buffer holds, at most
KEPT_VALUES = 2**20  # values of each metric kept in memory, about


def capacity(values_per_step: int) -> int:
    """Steps a chunk's metric buffer holds: a power of two, at most
    :data:`MAX_CHUNK_STEPS` and :data:`BUFFER_VALUES` values."""
    fit = max(1, BUFFER_VALUES // max(1, values_per_step))
    return min(MAX_CHUNK_STEPS, 2 ** int(math.log2(fit)))


class ChunkSizer:
    """Steps of the next chunk, from the measured speed of the last ones.

    Args:
      limit: steps a chunk can hold (its buffer's capacity).
      fixed: run exactly this many steps a chunk (``chunk_size`` by hand).
      seconds: the target wall time of a chunk.
    """

    def __init__(self, limit: int, fixed: int | None = None, seconds=CHUNK_SECONDS):
        self.limit, self.fixed, self.seconds = limit, fixed, seconds
        self.steps = fixed or 1
        self.steps_per_s: float | None = None  # measured on compiled chunks

    def observe(self, steps: int, seconds: float, compiled: bool) -> None:
        """Record a chunk of ``steps`` that took ``seconds``; ``compiled``: it
        included compilation, so its time says nothing of the speed."""
        if compiled or steps == 0:
            return
        self.steps_per_s = steps / max(seconds, 1e-6)
        if self.fixed is None:
            wanted = int(self.steps_per_s * self.seconds)
            self.steps = max(1, min(wanted, self.steps * MAX_GROWTH, self.limit))

    def next(self, remaining: int, every, done: int) -> int:
        """Steps of the next chunk: at most ``remaining``, and ending at the
        next multiple of ``every`` (an int or several; None ignored), where
        checkpoints and evaluations land."""
        steps = min(self.steps, remaining)
        for e in every if isinstance(every, (tuple, list)) else (every,):
            if e:
                steps = min(steps, e - done % e)
        return steps

    def seconds_left(self, remaining: int) -> float | None:
        return None if not self.steps_per_s else remaining / self.steps_per_s


def stride_for(num_steps: int, values_per_step: int) -> int:
    """Keep every this-many-th step: a power of two (so a longer resumed run's
    stride is a multiple of the shorter's)."""
    need = num_steps * max(1, values_per_step) / KEPT_VALUES
    return 1 if need <= 1 else 2 ** math.ceil(math.log2(need))


class History:
    """The per-step metrics kept in memory: every ``stride``-th step.

    Rows are kept where the 1-based step number is a multiple of ``stride``;
    ``"step"`` holds those numbers. ``restored`` (a checkpoint's history) is
    thinned to this stride.
    """

    def __init__(self, stride: int, restored: dict | None = None):
        self.stride = stride
        self._parts: dict[str, list[np.ndarray]] = {}
        if restored:
            steps = np.asarray(restored["step"])
            keep = steps % stride == 0
            for name, values in restored.items():
                self._parts[name] = [np.asarray(values)[keep]]

    def add(self, first_step: int, rows: dict) -> None:
        """Rows of driver steps ``first_step + 1, ...`` (1-based numbers)."""
        n = len(next(iter(rows.values())))
        steps = np.arange(first_step + 1, first_step + n + 1, dtype=np.int64)
        keep = steps % self.stride == 0
        for name, values in {**rows, "step": steps}.items():
            self._parts.setdefault(name, []).append(np.asarray(values)[keep])

    def arrays(self) -> dict:
        """name -> array, steps first (consolidated, so later calls are cheap)."""
        out = {}
        for name, parts in self._parts.items():
            if len(parts) > 1:
                self._parts[name] = parts = [np.concatenate(parts)]
            out[name] = parts[0] if parts else np.zeros(0)
        return out
