"""A progress bar fed once per compiled chunk (never per step)."""

from __future__ import annotations

import contextlib
import sys

import numpy as np
from tqdm import tqdm


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
    ) as t:

        def on_chunk(progress):
            t.update(round(progress.step * total / progress.num_steps) - t.n)
            loss = progress.metrics.get("loss")
            if loss is not None and len(loss):
                t.set_postfix(loss=f"{float(np.ravel(loss[-1])[-1]):.4g}")

        yield on_chunk
