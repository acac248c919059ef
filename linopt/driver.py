"""One scanned driver for every strategy: chunks of ``lax.scan`` under jit.

A run is a few jitted chunks of ``chunk_size`` steps. Between chunks (never
between steps) the host fetches that chunk's metrics once, reports progress,
and may save a checkpoint or stop. Every chunk has the same static length, so
a run compiles once; steps past ``num_steps`` are masked out.

Inside the scan a non-finite loss or parameter stops the run: the step that
produced it is recorded, its update is dropped, so ``params`` are the last
finite ones, and the result's status is ``"diverged"``.

The key of step ``t`` is ``fold_in(key, t)``, so results do not depend on the
chunking, and a run resumed from a checkpoint equals an uninterrupted one.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Data(NamedTuple):
    X: jax.Array  # (N, D) float32
    y: jax.Array  # (N,) int32


class Result(NamedTuple):
    params: np.ndarray  # (C, D): the final (or last finite) weights
    losses: np.ndarray  # per step; per try for random search
    metrics: dict  # every per-step metric, by name
    status: str  # "completed", "diverged" or "interrupted"
    num_steps: int  # steps taken
    num_loss_evals: int
    num_grad_evals: int
    num_examples_evaluated: int  # rows of X the loss or gradient touched
    wall_time_s: float  # including compilation, see ``compile_and_first_chunk_s``
    compile_and_first_chunk_s: float
    state: Any  # the final strategy state, to continue or checkpoint


class Progress(NamedTuple):
    """What the driver tells ``on_chunk`` after each chunk."""

    state: Any
    key: jax.Array  # the run's key (for checkpoints)
    step: int  # steps done so far
    num_steps: int
    metrics: dict  # all per-step metrics so far (numpy)
    elapsed_s: float


def _tree_all_finite(tree) -> jax.Array:
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return functools.reduce(jnp.logical_and, leaves, jnp.bool_(True))


@functools.partial(jax.jit, static_argnames=("strategy", "length"))
def run_chunk(strategy, state, key, data, stop, *, length: int):
    """Scan ``length`` steps of ``strategy`` from ``state``; steps at or past
    ``stop`` (traced) are skipped. Returns ``(state, diverged, metrics)`` with
    metrics of shape ``(length, ...)`` and a boolean ``"recorded"`` mask."""
    metric_shapes = jax.eval_shape(
        lambda: strategy.step(state, jax.random.key(0), data)[1]
    )

    def skip(state):
        nan = jax.tree.map(
            lambda s: (
                jnp.full(s.shape, jnp.nan, jnp.float32)
                if jnp.issubdtype(s.dtype, jnp.floating)
                else jnp.zeros(s.shape, s.dtype)
            ),
            metric_shapes,
        )
        return state, jnp.bool_(False), nan, jnp.bool_(False)

    def take(state):
        new, metrics = strategy.step(state, jax.random.fold_in(key, state.step), data)
        finite = _tree_all_finite(metrics["loss"]) & _tree_all_finite(new.params)
        new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
        return new, ~finite, metrics, jnp.bool_(True)

    def body(carry, _):
        state, diverged = carry
        active = (state.step < stop) & ~diverged
        state, now_diverged, metrics, recorded = jax.lax.cond(active, take, skip, state)
        return (state, diverged | now_diverged), {**metrics, "recorded": recorded}

    (state, diverged), metrics = jax.lax.scan(
        body, (state, jnp.bool_(False)), length=length
    )
    return state, diverged, metrics


def run(
    strategy,
    state,
    key,
    data: Data,
    *,
    num_steps: int,
    chunk_size: int | None = None,
    on_chunk: Callable[[Progress], bool | None] | None = None,
    history: dict | None = None,
) -> Result:
    """Run ``strategy`` from ``state`` until ``state.step == num_steps``.

    Args:
      strategy: a frozen strategy dataclass (static: hashed by value).
      state: its initial state, from ``strategy.init`` or a checkpoint.
      key: the run's key; step ``t`` uses ``fold_in(key, t)``.
      data: ``Data(X, y)``, passed to jit as arguments.
      num_steps: total steps of the run (including any already in ``state``).
      chunk_size: steps per jitted chunk (default: about 20 chunks a run).
      on_chunk: called with a :class:`Progress` after each chunk; returning
        ``False`` stops the run with status ``"interrupted"``.
      history: per-step metrics of the steps already in ``state`` (resume).
    Returns:
      a :class:`Result`.
    """
    if chunk_size is None:
        chunk_size = max(1, math.ceil(num_steps / 20))
    history = {k: [np.asarray(v)] for k, v in (history or {}).items()}
    stop = jnp.int32(num_steps)
    status = "completed"
    start = time.perf_counter()
    first_chunk_s = 0.0
    step = int(state.step)
    while step < num_steps:
        state, diverged, metrics = run_chunk(
            strategy, state, key, data, stop, length=chunk_size
        )
        metrics = jax.device_get(metrics)  # the chunk's one host transfer
        if not first_chunk_s:
            first_chunk_s = time.perf_counter() - start
        recorded = metrics.pop("recorded")
        for name, values in metrics.items():
            history.setdefault(name, []).append(values[recorded])
        step = int(state.step)
        so_far = {k: np.concatenate(v) for k, v in history.items()}
        keep_going = True
        if on_chunk is not None:
            keep_going = on_chunk(
                Progress(
                    state, key, step, num_steps, so_far, time.perf_counter() - start
                )
            )
        if bool(diverged):
            status = "diverged"
            break
        if keep_going is False and step < num_steps:
            status = "interrupted"
            break
    wall = time.perf_counter() - start
    metrics = {k: np.concatenate(v) for k, v in history.items()}
    counts = strategy.evaluations(int(data.y.shape[0]))
    steps_evaluated = len(metrics["loss"])
    losses = metrics["loss"].reshape(-1)  # random search: one loss per try
    return Result(
        params=np.asarray(state.params),
        losses=losses,
        metrics=metrics,
        status=status,
        num_steps=int(state.step),
        num_loss_evals=steps_evaluated * counts["loss_evals"],
        num_grad_evals=steps_evaluated * counts["grad_evals"],
        num_examples_evaluated=steps_evaluated * counts["examples"],
        wall_time_s=wall,
        compile_and_first_chunk_s=first_chunk_s,
        state=state,
    )
