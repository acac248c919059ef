"""Finite differences: the numerical gradient of any scalar function of one array.

The lecture's loop, one coordinate at a time (:func:`numerical_gradient_loop`,
the readable reference), and the same numbers computed fast
(:func:`numerical_gradient`): perturbed copies of ``x`` are evaluated in
chunks by ``jax.vmap`` inside one jitted ``lax.map``, so for a linear model
``f(W) = loss(X @ W.T)`` each chunk is one large matrix multiply. The same
engine gives difference quotients along any perturbations, coordinates or
unit directions (:func:`difference_quotients`), and tells which of them step
across a kink of ``f`` (:func:`kink_crossings`).

``f`` is any function: this module knows nothing of losses, so that
:mod:`linopt.gradcheck` can judge them with it independently. Differences
belong in float64 (``with jax.enable_x64(True):``): in float32 their
round-off, about ``eps * |f| / h``, is near ``1e-2 |f|`` at ``h = 1e-5``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

METHODS = ("centered", "forward")
# The budget counts every intermediate of f as if stored (XLA fuses most), so
# 128 MiB holds about 60 coordinates of the CIFAR-10 SVM at 500 examples: 30
# MiB of perturbed copies, about the last-level cache, in a multiply wide
# enough to run near peak (20.1 s for all 30,730 coordinates against 22.9 s at
# 32 MiB, 15 a chunk; 64 to 256 a chunk all within 5% of the best).
DEFAULT_MEMORY_BYTES = 128 * 2**20


class _Program:
    """``f``'s jaxpr, with closed-over arrays as arguments (never baked into
    the compiled code); programs that print alike share one compilation."""

    def __init__(self, fun: Callable, x: jax.Array):
        closed = jax.make_jaxpr(fun)(x)
        self.jaxpr, self.consts = closed.jaxpr, tuple(closed.consts)
        self._key = str(self.jaxpr)
        self.bytes_per_eval = x.nbytes + _dependent_bytes(self.jaxpr)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, _Program) and self._key == other._key

    def __call__(self, consts, x):
        return jax.core.eval_jaxpr(self.jaxpr, consts, x)[0]


def _dependent_bytes(jaxpr) -> int:
    """Bytes of every intermediate value that depends on the input, nested
    computations included (a bound on what one more evaluation in a ``vmap``
    batch holds)."""
    dependent, total = set(jaxpr.invars), 0
    for eqn in jaxpr.eqns:
        if any(not hasattr(v, "val") and v in dependent for v in eqn.invars):
            dependent.update(eqn.outvars)
            total += _nbytes(eqn.outvars) + sum(
                _nbytes(e.outvars) for sub in _subjaxprs(eqn) for e in sub.eqns
            )
    return total


def _nbytes(variables) -> int:
    return sum(math.prod(v.aval.shape) * v.aval.dtype.itemsize for v in variables)


def _subjaxprs(eqn):
    for param in eqn.params.values():
        for p in param if isinstance(param, (tuple, list)) else (param,):
            inner = getattr(p, "jaxpr", p)
            if hasattr(inner, "eqns"):
                yield inner


def _check_args(x, h, method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not h > 0:
        raise ValueError(f"step h must be positive, got {h}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"x must be a floating-point array, got {x.dtype}")
    return x


def _chunking(program, num_items, method, memory_bytes, chunk_size):
    if chunk_size is None:
        evals_per_item = 2 if method == "centered" else 1
        chunk_size = memory_bytes // (evals_per_item * program.bytes_per_eval)
    chunk_size = int(min(max(chunk_size, 1), num_items))
    num_chunks = -(-num_items // chunk_size)
    # Equal chunks of the smallest size that needs no more of them.
    return -(-num_items // num_chunks), num_chunks


@functools.partial(
    jax.jit, static_argnames=("program", "method", "reduce", "chunk_size", "num_chunks")
)
def _batched_differences(
    program, consts, x, h, items, *, method, reduce, chunk_size, num_chunks
):
    """Values at ``x + h d`` and ``x - h d`` (or ``x``) for each perturbation
    ``d``: one-hot at ``items[k]`` (ints) or the row ``items[k]`` (dense).

    ``reduce="difference"`` returns the difference quotients, ``"kinks"``
    whether any entry of the program's output changes sign between the two
    points. ``items`` is padded to whole chunks here, so the last chunk has
    the same shape as the others and nothing compiles twice.
    """
    num_items, size = items.shape[0], x.size
    pad = num_chunks * chunk_size - num_items
    items = jnp.concatenate([items, jnp.zeros((pad,) + items.shape[1:], items.dtype)])
    items = items.reshape((num_chunks, chunk_size) + items.shape[1:])
    centered = method == "centered"
    sides = 2 if centered else 1
    # Both sides of a centered difference in one batch: one matrix multiply.
    steps = jnp.repeat(jnp.array([1.0, -1.0][:sides], x.dtype), chunk_size) * h
    # The batch is the last axis: W + h d of shape (C, D, batch) makes the
    # scores of a linear model one plain (N, D) @ (D, C * batch) multiply.
    evaluate = jax.vmap(lambda z: program(consts, z.reshape(x.shape)), in_axes=1)
    column = x.reshape(-1, 1)
    base = None if centered else program(consts, x)[None]  # f(x), once

    def one_chunk(chunk):
        if chunk.ndim == 1:  # one-hot, built where it is used (never stored)
            hit = jnp.arange(size)[:, None] == jnp.tile(chunk, sides)[None, :]
            perturbed = column + jnp.where(hit, steps[None, :], 0)
        else:
            perturbed = (
                column + jnp.tile(chunk.T.astype(x.dtype), sides) * steps[None, :]
            )
        values = evaluate(perturbed)
        plus = values[:chunk_size]
        other = values[chunk_size:] if centered else base
        if reduce == "kinks":
            changed = (plus > 0) != (other > 0)
            return jnp.any(changed.reshape(chunk_size, -1), axis=1)
        return (plus - other) / (2 * h if centered else h)

    return jax.lax.map(one_chunk, items).reshape(-1)[:num_items]


def _run(fun, x, items, reduce, h, method, memory_bytes, chunk_size=None):
    x = _check_args(x, h, method)
    items = jnp.asarray(items)
    items = items.astype(x.dtype) if items.ndim == 2 else items
    program = _Program(fun, x)
    if reduce == "difference" and program.jaxpr.outvars[0].aval.shape != ():
        raise ValueError("f must return a scalar")
    size, num = _chunking(program, len(items), method, memory_bytes, chunk_size)
    return _batched_differences(
        program,
        program.consts,
        x,
        float(h),  # one weak type for every h: a new h never recompiles
        items,
        method=method,
        reduce=reduce,
        chunk_size=size,
        num_chunks=num,
    )


def numerical_gradient(
    f: Callable,
    x,
    *,
    h: float = 1e-5,
    method: str = "centered",
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    chunk_size: int | None = None,
) -> jax.Array:
    """The full finite-difference gradient of a scalar ``f`` at ``x``.

    ``centered``: ``(f(x + h e_i) - f(x - h e_i)) / 2h``, error ``O(h^2)``;
    ``forward``: ``(f(x + h e_i) - f(x)) / h``, error ``O(h)``, half the cost.
    Coordinates go through ``vmap`` in chunks sized so that one chunk's
    perturbed copies and intermediates fit ``memory_bytes``.

    Args:
      f: scalar function of one array; it may close over data, which reaches
        the compiled code as arguments (not as constants).
      x: floating-point array of any shape.
      h: the step, in ``x``'s units.
      method: ``"centered"`` or ``"forward"``.
      memory_bytes: budget for one chunk.
      chunk_size: coordinates a chunk, overriding ``memory_bytes``.
    Returns:
      array of ``x``'s shape and dtype, the numbers of
      :func:`numerical_gradient_loop` up to round-off in ``f``.
    """
    x = _check_args(x, h, method)
    return difference_quotients(
        f,
        x,
        jnp.arange(x.size),
        h=h,
        method=method,
        memory_bytes=memory_bytes,
        chunk_size=chunk_size,
    ).reshape(x.shape)


def difference_quotients(
    f: Callable,
    x,
    perturbations,
    *,
    h: float = 1e-5,
    method: str = "centered",
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    chunk_size: int | None = None,
) -> jax.Array:
    """Difference quotients of ``f`` along each perturbation.

    Args:
      f, x, h, method, memory_bytes, chunk_size: as for
        :func:`numerical_gradient`.
      perturbations: flat coordinates ``(M,)`` int (partial derivatives) or
        unit directions ``(M, x.size)`` (directional derivatives).
    Returns:
      ``(M,)`` in ``x``'s dtype.
    """
    return _run(f, x, perturbations, "difference", h, method, memory_bytes, chunk_size)


def kink_crossings(
    kinks: Callable,
    x,
    perturbations,
    *,
    h: float = 1e-5,
    method: str = "centered",
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> jax.Array:
    """Which perturbations cross a kink: some entry of ``kinks(x)`` (the
    arguments of every ``max(0, .)`` in ``f``, for the SVM its margins) changes
    sign between the two points a difference uses (``x - h d`` and ``x + h d``
    centered; ``x`` and ``x + h d`` forward).

    Args:
      kinks: function of ``x`` returning an array of hinge arguments.
      perturbations: flat coordinates ``(M,)`` or directions ``(M, x.size)``.
    Returns:
      ``(M,)`` bool.
    """
    return _run(kinks, x, perturbations, "kinks", h, method, memory_bytes)


def numerical_gradient_loop(
    f: Callable, x, *, h: float = 1e-5, method: str = "centered"
) -> np.ndarray:
    """The lecture's loop: nudge one coordinate, evaluate, restore.

    Two calls of ``f`` per coordinate: slow, and kept as the readable
    reference that :func:`numerical_gradient` must match.
    """
    x = np.array(_check_args(x, h, method))  # a private, writable copy
    f = jax.jit(f)

    def value(z):  # in x's dtype, so float32 rounds as the vectorized one does
        return np.asarray(f(z), dtype=x.dtype)

    grad = np.zeros_like(x)
    fx = value(x) if method == "forward" else None
    for ix in np.ndindex(*x.shape):
        old = x[ix]
        x[ix] = old + h
        fxph = value(x)
        if method == "centered":
            x[ix] = old - h
            grad[ix] = (fxph - value(x)) / x.dtype.type(2 * h)
        else:
            grad[ix] = (fxph - fx) / x.dtype.type(h)
        x[ix] = old
    return grad
