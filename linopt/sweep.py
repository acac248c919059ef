"""Whole hyperparameter grids as one compiled program.

:func:`sweep` runs one strategy (full-batch or mini-batch gradient descent,
with any optimizer and schedule) for every cell of a grid, seeds x learning
rates x regs (x any other traced hyperparameter), at once. Hyperparameters
are traced values in each cell's state, so the grid is just a batch axis: the
strategy's step is vmapped over the cells of a seed, then over the seeds, and
scanned in chunks under one jit, like :func:`linopt.driver.run`. One compile
runs the whole grid; the host hears from it once per chunk.

Cell ``(s, i, j)`` makes the run that
``strategies.minibatch(X, y, key=jax.random.key(seeds[s]), learning_rate=
grid["learning_rate"][i], reg=grid["reg"][j])`` makes: the same starting
weights and the same mini-batches (step ``t`` uses ``fold_in(run_key, t)``).
The cells of a seed share its key, so each step draws one mini-batch per seed
and multiplies it by all that seed's weights in one matrix product; that is
why the grid steps in lockstep on one step counter.

Divergence is per cell, as in the driver: a cell whose loss or weights go
non-finite keeps its last finite weights, stops, and is marked diverged; the
rest of the grid goes on.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from linopt import losses, strategies
from linopt.driver import Data, Progress, _tree_all_finite


class SweepResult(NamedTuple):
    """A grid's runs; ``G`` is the grid's shape (one length per axis)."""

    seeds: np.ndarray  # (S,)
    grid: dict  # axis name -> its values, in the order of the grid's axes
    hparams: dict  # every hyperparameter of every cell: name -> (S, *G)
    params: np.ndarray  # (S, *G, C, D): final (or last finite) weights
    losses: np.ndarray  # (S, *G, T): per-step loss, NaN after a divergence
    metrics: dict  # every per-step metric: name -> (S, *G, T, ...)
    diverged: np.ndarray  # (S, *G) bool
    steps: np.ndarray  # (S, *G) int: updates each cell made
    status: str  # "completed" or "interrupted" (of the grid as a whole)
    num_steps: int  # steps the grid ran
    wall_time_s: float  # including compilation
    compile_and_first_chunk_s: float
    state: Any  # the strategy states, leaves (S, H, ...) with H = prod(G)

    @property
    def cell_status(self) -> np.ndarray:
        """``(S, *G)`` strings: ``"diverged"`` or the grid's status."""
        return np.where(self.diverged, "diverged", self.status)


def _cell_step(strategy, state, diverged, key, t, data):
    """One step of one cell; a diverged cell keeps its state, reports NaN."""
    new, metrics = strategy.step(state, jax.random.fold_in(key, t), data)
    # The driver's test of divergence, so a cell stops where its run would.
    finite = _tree_all_finite(metrics["loss"]) & _tree_all_finite(new.params)
    keep = finite & ~diverged
    new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state)
    metrics = jax.tree.map(
        lambda m: (
            jnp.where(diverged, jnp.nan, m)
            if jnp.issubdtype(m.dtype, jnp.floating)
            else m
        ),
        metrics,
    )
    return new, diverged | ~finite, metrics


@functools.partial(jax.jit, static_argnames=("strategy", "length"))
def run_chunk(strategy, state, diverged, keys, data, start, stop, *, length: int):
    """Scan steps ``start .. start + length - 1`` of every cell; steps at or
    past ``stop`` are skipped.

    Args:
      strategy: a frozen strategy dataclass (static).
      state: the cells' states, every leaf ``(S, H, ...)``.
      diverged: ``(S, H)`` bool. keys: ``(S,)`` run keys, one per seed.
      data: ``Data(X, y)``, shared by every cell. start, stop: int32 scalars.
    Returns:
      ``(state, diverged, metrics)``, metrics ``(length, S, H, ...)``.
    """
    cells = jax.vmap(
        functools.partial(_cell_step, strategy), in_axes=(0, 0, None, None, None)
    )  # a seed's cells
    grid = jax.vmap(cells, in_axes=(0, 0, 0, None, None))  # every seed
    shapes = jax.eval_shape(grid, state, diverged, keys, start, data)[2]

    def take(carry, t):
        state, diverged, metrics = grid(*carry, keys, t, data)
        return (state, diverged), metrics

    def skip(carry, t):
        del t
        return carry, jax.tree.map(
            lambda s: (
                jnp.full(s.shape, jnp.nan, s.dtype)
                if jnp.issubdtype(s.dtype, jnp.floating)
                else jnp.zeros(s.shape, s.dtype)
            ),
            shapes,
        )

    def body(carry, t):
        return jax.lax.cond(t < stop, take, skip, carry, t)

    steps = start + jnp.arange(length, dtype=jnp.int32)
    (state, diverged), metrics = jax.lax.scan(body, (state, diverged), steps)
    return state, diverged, metrics


def init(
    strategy,
    data: Data,
    *,
    seeds: Sequence[int],
    grid: Mapping[str, Sequence[float]],
    hparams: Mapping[str, float],
    num_classes: int,
    init_scale: float = 1e-3,
):
    """Each cell's starting state and each seed's run key.

    Seed ``s`` starts from ``init_scale * randn`` drawn with the first half of
    ``split(key(s))`` and runs on the second half, as a single run does.
    Returns ``(state, keys)``: leaves ``(S, H, ...)`` and ``(S,)`` keys.
    """
    cells = np.array(list(itertools.product(*grid.values())), np.float32)
    num_cells = len(cells)
    cell_hparams = {
        name: jnp.full((num_cells,), value, jnp.float32)
        for name, value in hparams.items()
    }
    for i, name in enumerate(grid):
        cell_hparams[name] = jnp.asarray(cells[:, i])
    split = jax.vmap(jax.random.split)(
        jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.int32))
    )
    init_keys, run_keys = split[:, 0], split[:, 1]

    def seed_state(init_key):
        params = strategies.init_params(
            init_key, num_classes, data.X.shape[1], init_scale
        )
        return jax.vmap(lambda hp: strategy.init(params, hp, data))(cell_hparams)

    return jax.vmap(seed_state)(init_keys), run_keys


def sweep(
    strategy,
    X,
    y,
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
      X: ``(N, D)`` float32; y: ``(N,)`` int labels. Row-sharded arrays from
        :func:`linopt.sharding.shard_data` spread the data over devices.
      grid: hyperparameter name -> values (``learning_rate``, ``reg``,
        ``decay_rate``, ``momentum``); the cells are their product.
      seeds: one set of starting weights and mini-batches per seed.
      hparams: fixed values of the other hyperparameters.
      num_steps: updates per cell. num_classes: ``C`` (default ``max(y) + 1``).
      init_scale: starting weights ``init_scale * randn(C, D)``.
      chunk_size: steps per jitted chunk (default: about 20 chunks).
      on_chunk: called with a :class:`linopt.driver.Progress` (metrics
        ``(steps, S, H, ...)``) after each chunk; ``False`` stops the grid.
    Returns:
      a :class:`SweepResult`.
    """
    grid = {name: list(values) for name, values in grid.items()}
    if not grid or any(len(v) == 0 for v in grid.values()) or len(seeds) == 0:
        raise ValueError("a sweep needs at least one seed and one value per axis")
    data = Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.int32))
    if num_classes is None:
        num_classes = int(np.max(np.asarray(y))) + 1
    state, keys = init(
        strategy,
        data,
        seeds=seeds,
        grid=grid,
        hparams=dict(hparams or {}),
        num_classes=num_classes,
        init_scale=init_scale,
    )
    diverged = jnp.zeros(keys.shape + (state.step.shape[1],), bool)
    chunk_size = chunk_size or max(1, math.ceil(num_steps / 20))
    history, status, step = [], "completed", 0
    start = time.perf_counter()
    first_chunk_s = 0.0
    while step < num_steps:
        state, diverged, metrics = run_chunk(
            strategy,
            state,
            diverged,
            keys,
            data,
            jnp.int32(step),
            jnp.int32(num_steps),
            length=chunk_size,
        )
        metrics, all_diverged = jax.device_get((metrics, jnp.all(diverged)))
        first_chunk_s = first_chunk_s or time.perf_counter() - start
        taken = min(chunk_size, num_steps - step)
        history.append({k: v[:taken] for k, v in metrics.items()})
        step += taken
        keep_going = None
        if on_chunk is not None:
            so_far = {k: np.concatenate([h[k] for h in history]) for k in metrics}
            keep_going = on_chunk(
                Progress(
                    state=state,
                    key=keys,
                    step=step,
                    num_steps=num_steps,
                    metrics=so_far,
                    elapsed_s=time.perf_counter() - start,
                )
            )
        if all_diverged:
            break
        if keep_going is False and step < num_steps:
            status = "interrupted"
            break
    wall = time.perf_counter() - start
    return _result(
        grid, seeds, state, diverged, history, status, step, wall, first_chunk_s
    )


def _result(
    grid, seeds, state, diverged, history, status, step, wall, first_chunk_s
) -> SweepResult:
    cells = (len(seeds), *(len(v) for v in grid.values()))

    def by_cell(a):  # (S, H, ...) -> (S, *G, ...)
        a = np.asarray(a)
        return a.reshape(cells + a.shape[2:])

    metrics = {
        k: by_cell(np.moveaxis(np.concatenate([h[k] for h in history]), 0, 2))
        for k in history[0]
    }
    return SweepResult(
        seeds=np.asarray(seeds),
        grid={k: np.asarray(v) for k, v in grid.items()},
        hparams={k: by_cell(v) for k, v in state.hparams.items()},
        params=by_cell(state.params),
        losses=metrics["loss"],
        metrics=metrics,
        diverged=by_cell(diverged),
        steps=by_cell(state.step),
        status=status,
        num_steps=step,
        wall_time_s=wall,
        compile_and_first_chunk_s=first_chunk_s,
        state=state,
    )


@functools.partial(jax.jit, static_argnames="loss")
def _evaluate(params, reg, X, y, *, loss: str):
    def cell(W, r):
        return losses.LOSSES[loss](W, X, y, r), losses.accuracy(W, X, y)

    return jax.vmap(cell)(params, reg)


def evaluate(params, X, y, *, loss: str = "svm", reg=0.0) -> dict:
    """Loss (with ``reg``) and accuracy of every cell's weights on ``(X, y)``.

    Args:
      params: ``(..., C, D)`` weights, e.g. ``SweepResult.params``.
      X: ``(N, D)``; y: ``(N,)``. reg: broadcastable to ``params.shape[:-2]``.
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


def best_cell(val_accuracy, diverged) -> tuple[int, ...]:
    """The index ``(s, *g)`` of the cell to keep.

    The grid point with the highest validation accuracy averaged over seeds
    wins (a point where any seed diverged only if every point did); of its
    seeds, the one with the highest validation accuracy.
    """
    val_accuracy = np.asarray(val_accuracy, np.float64)
    diverged = np.asarray(diverged, bool)
    bad = diverged.any(axis=0)
    score = np.where(bad & ~bad.all(), -np.inf, np.nanmean(val_accuracy, axis=0))
    point = np.unravel_index(np.argmax(np.nan_to_num(score, nan=-np.inf)), score.shape)
    seeds = val_accuracy[(slice(None), *point)]
    seeds = np.where(diverged[(slice(None), *point)] & ~bad.all(), -np.inf, seeds)
    return (int(np.argmax(np.nan_to_num(seeds, nan=-np.inf))), *(int(i) for i in point))
