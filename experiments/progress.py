"""A progress bar fed once per compiled chunk (never per step)."""

from __future__ import annotations

import contextlib
import sys

import numpy as np
from tqdm import tqdm

# tqdm's own rate and time left would average in the compilation of the
# first chunk; the driver's, measured on compiled chunks, go in the postfix.
_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m:02d}:{s:02d}"


def status(progress, per_step: float, unit: str) -> str:
    """``loss 2.31, 18,200 step/s, 00:05 left`` from a driver Progress."""
    parts = []
    loss = progress.chunk.get("loss")
    if loss is not None and len(loss):
        parts.append(f"loss {float(np.ravel(loss[-1])[-1]):.4g}")
    if progress.steps_per_s:
        parts.append(f"{progress.steps_per_s * per_step:,.0f} {unit}/s")
    if progress.seconds_left is not None:
        parts.append(f"{_duration(progress.seconds_left)} left")
    return ", ".join(parts)


@contextlib.contextmanager
def bar(description: str, total: int, unit: str = "step"):
    """Yield an ``on_chunk`` callback for :func:`linopt.driver.run`.

    ``total`` counts ``unit`` (steps, tries, proposals); the driver's steps
    are scaled to it (a random-search step is ``population`` tries).
    """
    with tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        bar_format=_FORMAT,
    ) as t:

        def on_chunk(progress):
            per_step = total / progress.num_steps
            t.update(round(progress.step * per_step) - t.n)
            t.set_postfix_str(status(progress, per_step, unit), refresh=True)

        yield on_chunk
