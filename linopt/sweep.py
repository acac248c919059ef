"""Whole hyperparameter grids as one compiled program, on the one driver.

:func:`sweep` runs one strategy (full-batch or mini-batch gradient descent
with any optimizer and schedule, or any other :class:`linopt.driver.Strategy`)
for every cell of a grid, seeds x learning rates x regs (x any other traced
hyperparameter), at once. Hyperparameters are traced values in each cell's
state, so the grid is just a batch axis: :func:`linopt.driver.drive` with
``grid=True`` vmaps the guarded step over the cells of a seed, then over the
seeds, and scans it in chunks under one jit, as it runs a single run. One
compile runs the whole grid; the host hears from it once per chunk.

Cell ``(s, i, j)`` makes the run that ``strategies.minibatch(X, y,
key=jax.random.key(seeds[s]), learning_rate=grid["learning_rate"][i],
reg=grid["reg"][j])`` makes: the same starting weights and the same
mini-batches (step ``t`` uses ``fold_in(run_key, t)``). The cells of a seed
share its key, so each step draws one mini-batch per seed and multiplies it by
all that seed's weights in one matrix product; that is why the grid steps in
lockstep on one step counter.

Divergence is per cell, as in a single run: a cell whose loss or weights go
non-finite keeps its last finite weights, stops, and is marked diverged; the
rest of the grid goes on.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from linopt import driver, losses
from linopt.driver import Data, Progress


class SweepResult(NamedTuple):
    """A grid's runs; ``G`` is the grid's shape (one length per axis)."""

    seeds: np.ndarray  # (S,)
    grid: dict  # axis name -> its values, in the order of the grid's axes
    hparams: dict  # every hyperparameter of every cell: name -> (S, *G)
    params: np.ndarray  # (S, *G, C, D): final (or last finite) weights
    losses: np.ndarray  # (S, *G, T): per kept step, NaN after a divergence
    metrics: dict  # name -> (S, *G, T, ...); "step": (T,) the kept steps' numbers
    diverged: np.ndarray  # (S, *G) bool
    steps: np.ndarray  # (S, *G) int: updates each cell kept
    status: str  # "completed" or "interrupted" (of the grid as a whole)
    num_steps: int  # steps the grid ran
    wall_time_s: float  # including compilation
    compile_and_first_chunk_s: float
    state: Any  # the strategy states, leaves (S, H, ...) with H = prod(G)

    @property
    def cell_status(self) -> np.ndarray:
        """``(S, *G)`` strings: ``"diverged"`` or the grid's status."""
        return np.where(self.diverged, "diverged", self.status)


def init(
    strategy: driver.Strategy,
    data: Data,
    *,
    seeds: Sequence[int],
    grid: Mapping[str, Sequence[float]],
    hparams: Mapping[str, float],
    num_classes: int,
    init_scale: float = 1e-3,
):
    """Each cell's starting state and each seed's run key.

    Args:
      strategy: the strategy of every cell.
      data: ``Data(X, y)``.
      seeds: one run per seed and cell.
      grid: hyperparameter name -> values; the cells are their product.
      hparams: the other hyperparameters' values (the rest: the defaults of
        ``strategy.HParams``).
      num_classes: ``C``.
      init_scale: starting weights ``init_scale * randn(C, D)``.
    Returns:
      ``(state, keys)``: leaves ``(S, H, ...)`` and ``(S,)`` run keys. Seed
      ``s`` starts from weights drawn with the first half of
      ``split(key(s))`` and runs on the second half, as a single run does.
    """
    unknown = set(grid) | set(hparams)
    unknown -= set(strategy.HParams._fields)
    if unknown:
        raise ValueError(
            f"{type(strategy).__name__} has no hyperparameter {sorted(unknown)}; "
            f"it has {', '.join(strategy.HParams._fields)}"
        )
    cells = np.array(list(itertools.product(*grid.values())), np.float32)
    values = {name: np.full(len(cells), v, np.float32) for name, v in hparams.items()}
    values.update({name: cells[:, i] for i, name in enumerate(grid)})
    try:
        cell_hparams = strategy.HParams(**values)
    except TypeError:
        missing = [f for f in strategy.HParams._fields if f not in values]
        raise ValueError(f"a sweep needs a value of {missing}") from None
    cell_hparams = jax.tree.map(
        lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (len(cells),)),
        cell_hparams,
    )
    seed_keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.int32))
    split = jax.vmap(jax.random.split)(seed_keys)  # (S, 2): as a single run does
    init_keys, run_keys = split[:, 0], split[:, 1]

    def seed_state(init_key, run_key):
        params = driver.init_params(init_key, num_classes, data.X.shape[1], init_scale)
        cell = functools.partial(strategy.init, params, data=data, key=run_key)
        return jax.vmap(cell)(cell_hparams)

    return jax.vmap(seed_state)(init_keys, run_keys), run_keys


def sweep(
    strategy: driver.Strategy,
    X: ArrayLike,
    y: ArrayLike,
    *,
    grid: Mapping[str, Sequence[float]],
    seeds: Sequence[int] = (0,),
    hparams: Mapping[str, float] | None = None,
    num_steps: int,
    num_classes: int | None = None,
    init_scale: float = 1e-3,
    chunk_size: int | None = None,
    on_chunk: Callable[[Progress], bool | None] | None = None,
) -> SweepResult:
    """Run ``strategy`` for every seed and every cell of ``grid`` at once.

    Args:
      strategy: e.g. ``strategies.GradientDescent("svm", batch_size=200)``.
      X: ``(N, D)`` float32 examples; row-sharded arrays from
        :func:`linopt.sharding.shard_data` spread the data over devices.
      y: ``(N,)`` int labels.
      grid: hyperparameter name -> values (any field of ``strategy.HParams``:
        ``learning_rate``, ``reg``, ``decay_rate``, ``momentum``); the cells
        are their product.
      seeds: one set of starting weights and mini-batches per seed.
      hparams: fixed values of the other hyperparameters.
      num_steps: driver steps per cell.
      num_classes: ``C`` (default ``max(y) + 1``).
      init_scale: starting weights ``init_scale * randn(C, D)``.
      chunk_size: steps per chunk (default: about half a second's worth each).
      on_chunk: called with a :class:`linopt.driver.Progress` (metrics
        ``(steps, S, H, ...)``) after each chunk; ``False`` stops the grid.
    Returns:
      a :class:`SweepResult`.
    """
    grid = {name: list(values) for name, values in grid.items()}
    if not grid or any(len(v) == 0 for v in grid.values()) or len(seeds) == 0:
        raise ValueError("a sweep needs at least one seed and one value per axis")
    data = Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.int32))
    state, keys = init(
        strategy,
        data,
        seeds=seeds,
        grid=grid,
        hparams=dict(hparams or {}),
        num_classes=num_classes or int(np.max(np.asarray(y))) + 1,
        init_scale=init_scale,
    )
    out = driver.drive(
        strategy,
        state,
        keys,
        data,
        num_steps=num_steps,
        grid=True,
        chunk_size=chunk_size,
        on_chunk=on_chunk,
    )
    shape = (len(seeds), *(len(v) for v in grid.values()))

    def by_cell(a):  # (S, H, ...) -> (S, *G, ...)
        a = np.asarray(a)
        return a.reshape(shape + a.shape[2:])

    steps = out.metrics.pop("step")  # the kept steps' numbers, 1-based
    metrics = {k: by_cell(np.moveaxis(v, 0, 2)) for k, v in out.metrics.items()}
    metrics["step"] = steps
    return SweepResult(
        seeds=np.asarray(seeds),
        grid={k: np.asarray(v) for k, v in grid.items()},
        hparams={k: by_cell(v) for k, v in out.state.hparams._asdict().items()},
        params=by_cell(out.state.params),
        losses=metrics["loss"],
        metrics=metrics,
        diverged=by_cell(out.diverged),
        steps=by_cell(out.state.step),
        # Every cell diverged: each says so; the grid itself ran to its end.
        status="completed" if out.status == "diverged" else out.status,
        num_steps=out.num_steps,
        wall_time_s=out.wall_time_s,
        compile_and_first_chunk_s=out.compile_and_first_chunk_s,
        state=out.state,
    )


@functools.partial(jax.jit, static_argnames="loss")
def _evaluate(params, reg, X, y, *, loss: str):
    def cell(W, r):
        return losses.LOSSES[loss](W, X, y, r), losses.accuracy(W, X, y)

    return jax.vmap(cell)(params, reg)


def evaluate(
    params: ArrayLike, X: ArrayLike, y: ArrayLike, *, loss: str = "svm", reg=0.0
) -> dict:
    """Loss (with ``reg``) and accuracy of every cell's weights on ``(X, y)``.

    Args:
      params: ``(..., C, D)`` weights, e.g. ``SweepResult.params``.
      X: ``(N, D)`` examples.
      y: ``(N,)`` int labels.
      loss: ``"svm"`` or ``"softmax"``.
      reg: L2 strength, broadcastable to ``params.shape[:-2]``.
    Returns:
      ``{"loss": (...), "accuracy": (...)}`` numpy arrays of the cells' shape.
    """
    params = np.asarray(params, np.float32)
    cells = params.shape[:-2]
    reg = np.broadcast_to(np.asarray(reg, np.float32), cells).reshape(-1)
    loss_value, acc = _evaluate(
        params.reshape((-1,) + params.shape[-2:]),
        reg,
        jnp.asarray(X, jnp.float32),
        jnp.asarray(y, jnp.int32),
        loss=loss,
    )
    return {
        "loss": np.asarray(loss_value).reshape(cells),
        "accuracy": np.asarray(acc).reshape(cells),
    }


def best_cell(val_accuracy: ArrayLike, diverged: ArrayLike) -> tuple[int, ...]:
    """The index ``(s, *g)`` of the cell to keep.

    The grid point with the highest validation accuracy averaged over seeds
    wins (a point where any seed diverged only if every point did); of its
    seeds, the one with the highest validation accuracy.

    Args:
      val_accuracy: ``(S, *G)`` validation accuracies.
      diverged: ``(S, *G)`` bool.
    Returns:
      the index, a tuple of ints.
    """
    val_accuracy = np.asarray(val_accuracy, np.float64)
    diverged = np.asarray(diverged, bool)
    bad = diverged.any(axis=0)
    score = np.where(bad & ~bad.all(), -np.inf, np.nanmean(val_accuracy, axis=0))
    point = np.unravel_index(np.argmax(np.nan_to_num(score, nan=-np.inf)), score.shape)
    seeds = val_accuracy[(slice(None), *point)]
    seeds = np.where(diverged[(slice(None), *point)] & ~bad.all(), -np.inf, seeds)
    return (int(np.argmax(np.nan_to_num(seeds, nan=-np.inf))), *(int(i) for i in point))
