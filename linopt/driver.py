"""One compiled, chunked driver for every strategy, one run or a whole grid of them.

A :class:`Strategy` is a frozen dataclass of static choices with ``init``,
``step`` and ``cost``; its hyperparameters (traced: a new value never
recompiles) and state are its own ``NamedTuple`` s, every state with
``.params`` and ``.step``. :func:`start` begins a run; :func:`run` goes on.

A run is a sequence of jitted chunks, each a ``while_loop`` of driver steps.
Between chunks (never between steps) the host fetches that chunk's metrics
once, reports progress, and may save a checkpoint or stop. A chunk's number
of steps is a traced argument, so chunks are sized by wall time (about half a
second, :mod:`linopt.chunks`) and a run still compiles once. Only every
``stride``-th step's metrics stay in memory (every step of a short run).

Each step is guarded (:func:`guarded_step`): a non-finite loss or weights
drop the update, mark the run diverged and make its later metrics NaN.

A grid (``grid=True``, :mod:`linopt.sweep`) is the same loop over states
with leading ``(S, H)`` axes, seeds by cells: the guarded step vmapped over a
seed's cells (one shared mini-batch draw and matrix product) and the seeds.

Step ``t``'s key is ``fold_in(run_key, t)``: results do not depend on the
chunking, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from linopt import chunks


class Data(NamedTuple):
    """The examples a strategy sees, passed to jit as arguments."""

    X: jax.Array  # (N, D) float32
    y: jax.Array  # (N,) int32


class Cost(NamedTuple):
    """What one driver step of a strategy evaluates."""

    loss_evals: int
    grad_evals: int
    examples: int  # rows of X the losses and gradients touch


StateT = TypeVar("StateT")
HParamsT = TypeVar("HParamsT")


class Strategy(Protocol[StateT, HParamsT]):
    """What the driver runs; ``HParams``: its hyperparameters' ``NamedTuple``
    (defaults where it has them), so a grid can be built by name."""

    HParams: type

    def init(
        self, params: jax.Array, hparams: HParamsT, data: Data, key: jax.Array
    ) -> StateT: ...

    def step(
        self, state: StateT, key: jax.Array, data: Data
    ) -> tuple[StateT, dict[str, jax.Array]]: ...

    def cost(self, num_examples: int) -> Cost: ...


class Result(NamedTuple):
    params: np.ndarray  # (C, D): the final (or last finite) weights
    losses: np.ndarray  # per kept step; per try (proposal) for the searches
    metrics: dict  # every per-step metric, by name; "step": the kept steps' numbers
    status: str  # "completed", "diverged" or "interrupted"
    num_steps: int  # steps kept (a diverged step is not)
    num_loss_evals: int
    num_grad_evals: int
    num_examples_evaluated: int  # rows of X the loss or gradient touched
    wall_time_s: float  # including compilation, see ``compile_and_first_chunk_s``
    compile_and_first_chunk_s: float
    state: Any  # the final strategy state, to continue or checkpoint

    @property
    def loss_steps(self) -> np.ndarray:
        """Each of ``losses``' 1-based number: its step, or try of a search."""
        steps = np.asarray(self.metrics["step"])
        per = len(self.losses) // max(1, len(steps))  # tries a step
        return ((steps[:, None] - 1) * per + np.arange(1, per + 1)).reshape(-1)


class Progress(NamedTuple):
    """What the driver tells ``on_chunk`` after each chunk."""

    state: Any
    key: jax.Array  # the run's key (for checkpoints); (S,) keys for a grid
    step: int  # driver steps done so far
    num_steps: int
    chunk: dict  # this chunk's per-step metrics (numpy), steps first
    history: chunks.History  # what is kept of every chunk so far
    elapsed_s: float
    steps_per_s: float | None  # measured on the compiled chunks so far
    seconds_left: float | None  # at that speed


class Outcome(NamedTuple):
    """What :func:`drive` leaves: the raw material of a Result or SweepResult."""

    state: Any
    diverged: np.ndarray  # () for one run, (S, H) for a grid
    metrics: dict  # name -> (kept steps, ...) numpy; "step": their numbers
    status: str  # "completed", "diverged" (every run) or "interrupted"
    num_steps: int  # driver steps run
    wall_time_s: float
    compile_and_first_chunk_s: float


def traced(hparams):
    """``hparams`` with every value a float32 array, traced under jit: a new
    value never recompiles (a strategy's ``init`` calls it)."""
    return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), hparams)


def _nan_where(flag, metrics):
    """``metrics`` with the floating ones NaN where ``flag`` (ints, bools kept)."""

    def one(m):
        floating = jnp.issubdtype(m.dtype, jnp.floating)
        return jnp.where(flag, jnp.nan, m) if floating else m

    return jax.tree.map(one, metrics)


def _all_finite(tree) -> jax.Array:
    inexact = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    finite = [jnp.all(jnp.isfinite(x)) for x in inexact]
    return functools.reduce(jnp.logical_and, finite, jnp.bool_(True))


def guarded_step(strategy: Strategy, state, diverged: jax.Array, key, data: Data):
    """One step of one run that never leaves a non-finite state.

    Args:
      strategy, state: the strategy to step, and its state.
      diverged: bool scalar, whether the run has already diverged.
      key, data: this step's key, ``fold_in(run_key, t)``; the examples.
    Returns:
      ``(state, diverged, metrics)``: the new state where its loss and weights
      are finite and the run had not diverged, else the old one; the updated
      flag; the step's metrics, NaN (floating ones) if the run had diverged.
    """
    new, metrics = strategy.step(state, key, data)
    finite = _all_finite(metrics["loss"]) & _all_finite(new.params)
    keep = finite & ~diverged
    new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state)
    return new, diverged | ~finite, _nan_where(diverged, metrics)


def _vmapped(strategy: Strategy, grid: bool):
    """``(state, diverged, run_keys, t, data) -> (state, diverged, metrics)``."""

    def one(state, diverged, run_key, t, data):
        key = jax.random.fold_in(run_key, t)
        return guarded_step(strategy, state, diverged, key, data)

    if not grid:
        return one
    cells = jax.vmap(one, in_axes=(0, 0, None, None, None))  # a seed's key
    return jax.vmap(cells, in_axes=(0, 0, 0, None, None))  # one key a seed


def _metric_shapes(strategy: Strategy, grid: bool, *args):
    """What one step's metrics are (shapes, dtypes), traced once per strategy
    and argument shapes: a host loop of many short drives (linopt.batch_size)
    would otherwise spend 50 ms tracing each."""
    leaves, tree = jax.tree.flatten(args)
    spec = tuple(jax.ShapeDtypeStruct(np.shape(x), x.dtype) for x in leaves)
    return _traced_metric_shapes(strategy, grid, tree, spec)


@functools.lru_cache(maxsize=64)
def _traced_metric_shapes(strategy, grid, tree, spec):
    args = jax.tree.unflatten(tree, spec)
    return jax.eval_shape(_vmapped(strategy, grid), *args)[2]


@functools.partial(jax.jit, static_argnames=("strategy", "capacity", "grid"))
def run_chunk(
    strategy, state, diverged, keys, data, start, count, *, capacity: int, grid=False
):
    """Run driver steps ``start .. start + count - 1`` in one ``while_loop``.

    ``count`` is traced, so a chunk of any length up to ``capacity`` runs the
    same compiled program; the loop ends early once every run diverged.

    Args:
      strategy: a frozen strategy dataclass (static: hashed by value).
      state: its state; leaves ``(S, H, ...)`` if ``grid``.
      diverged: bool, ``()`` or ``(S, H)``.
      keys: the run key, or ``(S,)`` run keys if ``grid``.
      data: ``Data(X, y)``.
      start: int32 scalar, the first step's index.
      count: int32 scalar, at most ``capacity``: the steps to run.
      capacity: rows of the metric buffer (static).
      grid: whether ``state`` is a grid of seeds x cells (static).
    Returns:
      ``(state, diverged, metrics, taken)``: metrics ``(capacity, ...)``, of
      which the first ``taken`` rows are the steps run.
    """
    step = _vmapped(strategy, grid)
    shapes = jax.eval_shape(step, state, diverged, keys, start, data)[2]
    buffers = jax.tree.map(lambda s: jnp.zeros((capacity, *s.shape), s.dtype), shapes)

    def active(carry):
        i, _, diverged, _ = carry
        return (i < count) & ~jnp.all(diverged)

    def body(carry):
        i, state, diverged, buffers = carry
        state, diverged, metrics = step(state, diverged, keys, start + i, data)
        buffers = jax.tree.map(lambda b, m: b.at[i].set(m), buffers, metrics)
        return i + 1, state, diverged, buffers

    carry = (jnp.int32(0), state, diverged, buffers)
    taken, state, diverged, metrics = jax.lax.while_loop(active, body, carry)
    return state, diverged, metrics, taken


def drive(
    strategy: Strategy,
    state,
    keys: jax.Array,
    data: Data,
    *,
    num_steps: int,
    grid: bool = False,
    chunk_size: int | None = None,
    every: int | tuple[int | None, ...] | None = None,
    on_chunk: Callable[[Progress], bool | None] | None = None,
    history: dict | None = None,
) -> Outcome:
    """The host loop: chunks until ``num_steps``, every run diverged, or a stop.

    Args:
      strategy: the strategy to run.
      state: its state (leaves ``(S, H, ...)`` if ``grid``); the run starts
        at step ``max(state.step)``.
      keys: the run key (``(S,)`` keys if ``grid``).
      data: ``Data(X, y)``.
      num_steps: total driver steps (including any already in ``state``).
      grid: whether ``state`` is a grid of seeds x cells.
      chunk_size: steps per chunk (default: ~0.5 s each, :mod:`linopt.chunks`).
      every: chunks also end at each multiple of this (or of each of several
        such) many steps, where checkpoints and evaluations happen.
      on_chunk: called with a :class:`Progress` after each chunk; returning
        ``False`` stops with status ``"interrupted"``.
      history: kept metrics of the steps already in ``state`` (resume).
    Returns:
      an :class:`Outcome`.
    """
    diverged = jnp.zeros(np.shape(state.step) if grid else (), bool)
    shapes = _metric_shapes(strategy, grid, state, diverged, keys, jnp.int32(0), data)
    per_step = sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))
    limit = chunks.capacity(per_step)
    if chunk_size and chunk_size > limit:
        limit = 2 ** math.ceil(math.log2(chunk_size))
    chunk = functools.partial(run_chunk, strategy, capacity=limit, grid=grid)
    sizer = chunks.ChunkSizer(limit, fixed=chunk_size)
    kept = chunks.History(chunks.stride_for(num_steps, per_step), history)
    step = int(jnp.max(state.step))
    status, first_chunk_s, compiled = "completed", 0.0, False
    start = time.perf_counter()
    while step < num_steps:
        count = sizer.next(num_steps - step, every, step)
        began = time.perf_counter()
        state, diverged, metrics, taken = chunk(
            state, diverged, keys, data, jnp.int32(step), jnp.int32(count)
        )
        # The chunk's one host transfer.
        metrics, taken, all_diverged = jax.device_get((metrics, taken, diverged.all()))
        seconds = time.perf_counter() - began
        sizer.observe(int(taken), seconds, compiled=not compiled)
        first_chunk_s, compiled = first_chunk_s or seconds, True
        rows = {name: values[:taken] for name, values in metrics.items()}
        kept.add(step, rows)
        step += int(taken)
        keep_going = None
        if on_chunk is not None:
            elapsed, left = time.perf_counter() - start, num_steps - step
            progress = (state, keys, step, num_steps, rows, kept, elapsed)
            speed = (sizer.steps_per_s, sizer.seconds_left(left))
            keep_going = on_chunk(Progress(*progress, *speed))
        if all_diverged:
            status = "diverged"
            break
        if keep_going is False and step < num_steps:
            status = "interrupted"
            break
    empty = {k: np.zeros((0, *v.shape), v.dtype) for k, v in shapes.items()}
    return Outcome(
        state=state,
        diverged=np.asarray(diverged),
        metrics={**empty, "step": np.zeros(0, np.int64), **kept.arrays()},
        status=status,
        num_steps=step,
        wall_time_s=time.perf_counter() - start,
        compile_and_first_chunk_s=first_chunk_s,
    )


def run(strategy: Strategy, state, key, data: Data, *, num_steps: int, **loop):
    """Run ``strategy`` from ``state`` until ``state.step == num_steps``.

    Args:
      strategy: a frozen strategy dataclass (static: hashed by value).
      state: its initial state, from ``strategy.init`` or a checkpoint.
      key: the run's key; step ``t`` uses ``fold_in(key, t)``.
      data: ``Data(X, y)``, passed to jit as arguments.
      num_steps: total driver steps (including any already in ``state``).
      **loop: ``chunk_size``, ``every``, ``on_chunk`` and ``history`` of
        :func:`drive`.
    Returns:
      a :class:`Result`.
    """
    out = drive(strategy, state, key, data, num_steps=num_steps, **loop)
    cost = strategy.cost(int(data.y.shape[0]))
    steps_evaluated = out.num_steps  # the diverged step's loss counts
    return Result(
        params=np.asarray(out.state.params),
        losses=out.metrics["loss"].reshape(-1),  # random search: one per try
        metrics=out.metrics,
        status=out.status,
        num_steps=int(out.state.step),
        num_loss_evals=steps_evaluated * cost.loss_evals,
        num_grad_evals=steps_evaluated * cost.grad_evals,
        num_examples_evaluated=steps_evaluated * cost.examples,
        wall_time_s=out.wall_time_s,
        compile_and_first_chunk_s=out.compile_and_first_chunk_s,
        state=out.state,
    )


@functools.partial(jax.jit, static_argnums=(1, 2))  # one program, not three
def init_params(key, num_classes: int, dim: int, scale=1e-3) -> jax.Array:
    """``scale * randn(C, D)``, the assignment's starting weights."""
    return scale * jax.random.normal(key, (num_classes, dim), jnp.float32)


def start(
    strategy: Strategy,
    hparams: NamedTuple,
    X: ArrayLike,
    y: ArrayLike,
    *,
    key: jax.Array,
    num_steps: int,
    params: ArrayLike | None = None,
    num_classes: int | None = None,
    init_scale: float | None = 1e-3,
    restore: Callable | None = None,
    **run_kwargs,
) -> Result:
    """One run of ``strategy`` from ``key``: starting weights, ``init``, :func:`run`.

    Args:
      strategy: e.g. ``strategies.GradientDescent("svm", batch_size=200)``.
      hparams: its ``HParams``, e.g. ``GradientDescentHParams(1e-7, 2.5e4)``.
      X: ``(N, D)`` float32 examples (or row-sharded: :mod:`linopt.sharding`).
      y: ``(N,)`` int labels.
      key: ``split(key)`` gives the starting weights' key and the run key.
      num_steps: driver steps.
      params: ``(C, D)`` starting weights (default: drawn from the key).
      num_classes: ``C`` (default ``max(y) + 1``).
      init_scale: starting weights ``init_scale * randn(C, D)``; None: zeros.
      restore: ``(fresh_state, run_key) -> (state, history)`` to resume a run.
      **run_kwargs: ``chunk_size``, ``every`` and ``on_chunk`` of :func:`run`.
    Returns:
      a :class:`Result`.
    """
    data = Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.int32))
    init_key, run_key = jax.random.split(key)
    if params is None:
        C = num_classes or int(np.max(np.asarray(y))) + 1
        params = jnp.zeros((C, data.X.shape[1]), jnp.float32)
        if init_scale:
            params = init_params(init_key, C, data.X.shape[1], init_scale)
    state = strategy.init(jnp.asarray(params, jnp.float32), hparams, data, run_key)
    history = None
    if restore is not None:  # continue a checkpointed run: state and history
        state, history = restore(state, run_key)
    run_kwargs.update(num_steps=num_steps, history=history)
    return run(strategy, state, run_key, data, **run_kwargs)
