"""Gradient checking: finite differences against an analytic gradient.

The lecture's numerical gradient, one coordinate at a time
(:func:`numerical_gradient_loop`, the readable reference), and the same
numbers computed fast (:func:`numerical_gradient`): perturbed copies of ``x``
are evaluated in chunks by ``jax.vmap`` inside one jitted ``lax.map``, so for a
linear model ``f(W) = loss(X @ W.T)`` each chunk is one large matrix multiply.
The checks compare an analytic gradient with it coordinate by coordinate
(:func:`full_check`), on a keyed sample of every parameter group
(:func:`sparse_check`), or along random unit directions
(:func:`directional_check`, as ``jax.test_util.check_grads`` does), and judge
the relative error with the lecture's bands.

This module imports nothing it checks: ``f`` is any scalar function of one
array and the analytic gradient arrives as an array. Checks belong in float64
(``with jax.enable_x64(True):``); in float32 the round-off of a difference
quotient, about ``eps * |f| / h = 1e-7 * |f| / 1e-5``, is near 1e-2, so no
check can reach the 1e-7 a correct gradient shows in float64.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

METHODS = ("centered", "forward")
GOOD, KINKS_ONLY, WRONG = 1e-7, 1e-4, 1e-2  # the lecture's verdict bands
# The checks floor the relative error's denominator at FLOOR_FRACTION * |f(x)|:
# a float64 centered difference carries round-off of about eps * |f| / h
# (2e-11 |f| at h = 1e-5), so a coordinate with a gradient below 1e-3 |f| could
# never show 1e-7 however right it is. Below the floor, "good" means an absolute
# |a - n| <= 1e-10 |f|. DENOMINATOR_FLOOR is the absolute minimum (0 / 0 guard).
FLOOR_FRACTION = 1e-3
DENOMINATOR_FLOOR = 1e-30
# The budget counts every intermediate of f as if stored (XLA fuses most), so
# 128 MiB holds about 60 coordinates of the CIFAR-10 SVM at 500 examples: 30
# MiB of perturbed copies, about the last-level cache, in a multiply wide
# enough to run near peak (20.1 s for all 30,730 coordinates against 22.9 s at
# 32 MiB, 15 a chunk; 64 to 256 a chunk all within 5% of the best).
DEFAULT_MEMORY_BYTES = 128 * 2**20


class PrecisionWarning(UserWarning):
    """A gradient check run in a precision that cannot reach its verdicts."""


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
def _finite_differences(
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
    return _finite_differences(
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
      h: the step. method: ``"centered"`` or ``"forward"``.
      memory_bytes: budget for one chunk; ``chunk_size`` overrides it.
    Returns:
      array of ``x``'s shape and dtype, the numbers of
      :func:`numerical_gradient_loop` up to round-off in ``f``.
    """
    x = _check_args(x, h, method)
    return finite_differences(
        f,
        x,
        jnp.arange(x.size),
        h=h,
        method=method,
        memory_bytes=memory_bytes,
        chunk_size=chunk_size,
    ).reshape(x.shape)


def finite_differences(
    f,
    x,
    perturbations,
    *,
    h=1e-5,
    method="centered",
    memory_bytes=DEFAULT_MEMORY_BYTES,
    chunk_size=None,
):
    """Difference quotients of ``f`` along each perturbation: flat coordinates
    ``(M,)`` (partial derivatives) or unit directions ``(M, x.size)``
    (directional derivatives). Returns ``(M,)``."""
    return _run(f, x, perturbations, "difference", h, method, memory_bytes, chunk_size)


def kink_crossings(
    kinks: Callable,
    x,
    perturbations,
    *,
    h=1e-5,
    method="centered",
    memory_bytes=DEFAULT_MEMORY_BYTES,
):
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


def _float64(a) -> np.ndarray:
    return np.asarray(a).astype(np.float64)  # numpy's cast: no x64 needed


def relative_error(analytic, numerical, *, floor: float = DENOMINATOR_FLOOR):
    """The lecture's ``|a - n| / max(|a|, |n|, floor)``, 0 where both are 0.

    The checks pass ``floor = FLOOR_FRACTION * |f(x)|`` (see the constants).
    Computed in float64 numpy; arrays of any matching shape.
    """
    a, n = _float64(analytic), _float64(numerical)
    denominator = np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
    return np.where((a == 0) & (n == 0), 0.0, np.abs(a - n) / denominator)


def verdict(error: float) -> str:
    """The lecture's band for a relative error."""
    if error <= GOOD:
        return "good"
    if error < KINKS_ONLY:
        return "acceptable only with kinks"
    return "uncomfortable" if error <= WRONG else "probably wrong"


def bias_column_groups(shape) -> dict[str, np.ndarray]:
    """Masks of the parameter groups of ``W: (C, D)``: weights and bias column."""
    weights = np.ones(shape, dtype=bool)
    weights[..., -1] = False
    return {"weights": weights, "bias": ~weights}


class CheckResult(NamedTuple):
    """One gradient check; arrays hold one entry per checked perturbation."""

    mode: str  # "full", "sparse" or "directional"
    index: np.ndarray  # (M,) flat coordinate, or direction number
    group: np.ndarray  # (M,) parameter group name
    analytic: np.ndarray  # (M,) analytic partial or directional derivative
    numerical: np.ndarray  # (M,) finite-difference estimate
    relative_error: np.ndarray  # (M,)
    kink: np.ndarray  # (M,) bool: a hinge changed sign within the step
    floor: float  # the relative error's smallest denominator
    dtype: str


def _check(
    mode,
    f,
    analytic,
    x,
    perturbations,
    index,
    group,
    *,
    h=1e-5,
    method="centered",
    kinks=None,
    floor=None,
    memory_bytes=DEFAULT_MEMORY_BYTES,
):
    if x.dtype != jnp.float64:
        warnings.warn(
            f"gradient check in {x.dtype}: round-off in f(x + h) - f(x - h) is "
            "about eps * |f| / h (1e-2 |f| for float32 at h = 1e-5), so even a "
            "correct gradient shows median relative errors near 1e-2 and worst "
            "ones near 1, never the 1e-7 of float64; run the check inside "
            "`with jax.enable_x64(True):` on float64 arrays",
            PrecisionWarning,
            stacklevel=3,
        )
    options = dict(h=h, method=method, memory_bytes=memory_bytes)
    numerical = _float64(finite_differences(f, x, perturbations, **options))
    crossed = np.zeros(len(index), dtype=bool)
    if kinks is not None:
        crossed = np.asarray(kink_crossings(kinks, x, perturbations, **options))
    if floor is None:
        floor = max(FLOOR_FRACTION * abs(float(f(x))), DENOMINATOR_FLOOR)
    analytic = _float64(analytic)
    return CheckResult(
        mode,
        np.asarray(index),
        np.asarray(group),
        analytic,
        numerical,
        relative_error(analytic, numerical, floor=floor),
        crossed,
        float(floor),
        str(x.dtype),
    )


class Rescaled(NamedTuple):
    """A check's inputs in other units (see :func:`in_units`)."""

    f: Callable
    analytic: jax.Array
    x: jax.Array
    kinks: Callable | None


def in_units(scale, f, analytic, x, *, kinks=None) -> Rescaled:
    """The same check with ``x`` measured as ``v = x * scale``.

    A step ``h`` in ``v`` is a step ``h / scale`` in ``x``. For a linear model
    ``f(W) = loss(X @ W.T)`` with ``scale[:, j]`` the size of feature ``j``
    (:func:`feature_scale`), every coordinate then moves the scores by about
    ``h``: a weight on a pixel of size ~60, along which ``f``'s third
    derivative is ~60^3 times the bias's, gets a step 60 times smaller, and
    one ``h`` sits between truncation (``h^2 f'''``) and round-off
    (``eps |f| / h``) for every coordinate. Relative errors do not depend on
    the units (analytic and numerical partials both scale by ``1 / scale``);
    only the error of the finite difference does.

    Returns ``(f, analytic, x, kinks)`` for any check: ``f(v) = f(v / scale)``,
    the gradient ``analytic / scale``, ``x * scale``, and ``kinks`` likewise.
    """
    x = jnp.asarray(x)
    scale = jnp.broadcast_to(jnp.asarray(scale, x.dtype), x.shape)

    def f_v(v):
        return f(v / scale)

    kinks_v = None if kinks is None else (lambda v: kinks(v / scale))
    return Rescaled(f_v, jnp.asarray(analytic) / scale, x * scale, kinks_v)


def feature_scale(X) -> jax.Array:
    """Root mean square of each column of ``X`` (1 where a column is all 0),
    shape ``(1, D)``: the units for :func:`in_units` of ``W: (C, D)``."""
    X = jnp.asarray(X)
    rms = jnp.sqrt(jnp.mean(X * X, axis=0, keepdims=True))
    return jnp.where(rms > 0, rms, jnp.ones_like(rms))


def _groups(x, groups):
    groups = {"all": True} if groups is None else groups
    return {
        name: np.broadcast_to(np.asarray(mask, dtype=bool), x.shape)
        for name, mask in groups.items()
    }


def full_check(
    f, analytic, x, *, groups: Mapping | None = None, **options
) -> CheckResult:
    """Every coordinate of ``analytic`` against its finite difference.

    Args:
      f: scalar function of ``x``. analytic: its claimed gradient at ``x``.
      groups: optional ``name -> bool mask`` of parameter groups (the sparse
        and directional checks draw from each; here they label the report).
      **options: ``h``, ``method``, ``memory_bytes`` as for
        :func:`numerical_gradient`; ``kinks``, a function of ``x`` giving the
        arguments of the hinges in ``f`` (:func:`kink_crossings`), so that the
        checks that cross one are flagged and judged apart; ``floor``, the
        relative error's smallest denominator (default
        ``FLOOR_FRACTION * |f(x)|``).
    Returns:
      a :class:`CheckResult`; :func:`summarize` gives its verdict.
    """
    x = jnp.asarray(x)
    names = np.empty(x.size, dtype=object)
    for name, mask in _groups(x, groups).items():
        names[mask.reshape(-1)] = name
    index = np.arange(x.size)
    return _check(
        "full",
        f,
        _float64(analytic).reshape(-1),
        x,
        index,
        index,
        names.astype(str),
        **options,
    )


def sparse_check(
    f, analytic, x, key, *, num_checks: int = 10, groups=None, **options
) -> CheckResult:
    """``num_checks`` coordinates of each parameter group, drawn with ``key``
    without replacement (all of a smaller group); as :func:`full_check`."""
    x = jnp.asarray(x)
    index, names = [], []
    for g, (name, mask) in enumerate(_groups(x, groups).items()):
        members = np.flatnonzero(mask)
        take = min(num_checks, members.size)
        chosen = jax.random.choice(
            jax.random.fold_in(key, g), members.size, (take,), replace=False
        )
        index.append(members[np.sort(np.asarray(chosen))])
        names += [name] * take
    index = np.concatenate(index)
    return _check(
        "sparse",
        f,
        _float64(analytic).reshape(-1)[index],
        x,
        index,
        index,
        names,
        **options,
    )


def directional_check(
    f, analytic, x, key, *, num_checks: int = 10, groups=None, **options
) -> CheckResult:
    """``<analytic, u>`` against ``(f(x + h u) - f(x - h u)) / 2h`` for
    ``num_checks`` random unit directions ``u`` in each parameter group, as
    ``jax.test_util.check_grads`` checks; one group at a time, so that a small
    group such as the bias is not drowned by a large one."""
    x = jnp.asarray(x)
    directions, names = [], []
    for g, (name, mask) in enumerate(_groups(x, groups).items()):
        u = jax.random.normal(
            jax.random.fold_in(key, g), (num_checks, x.size), x.dtype
        ) * jnp.asarray(mask.reshape(1, -1), x.dtype)
        directions.append(u / jnp.linalg.norm(u, axis=1, keepdims=True))
        names += [name] * num_checks
    directions = np.asarray(jnp.concatenate(directions))
    analytic = _float64(directions) @ _float64(analytic).reshape(-1)
    return _check(
        "directional",
        f,
        analytic,
        x,
        directions,
        np.arange(len(names)),
        names,
        **options,
    )


def summarize(result: CheckResult) -> dict:
    """Headline numbers and verdicts of a check, JSON-ready.

    ``max_relative_error`` is over the checks that cross no kink (those the
    verdict judges; None when every check crossed one, and the verdict then
    says so); the ones that cross a kink are summarized apart. ``passed`` is
    true when that maximum is ``good`` (<= 1e-7).
    """
    err, kink = result.relative_error, result.kink
    out = {
        "mode": result.mode,
        "dtype": result.dtype,
        "num_checks": int(err.size),
        "num_kinks_crossed": int(kink.sum()),
        "floor": result.floor,
        "max_relative_error": None,
        "median_relative_error": None,
        "worst": None,
        "verdict": "unjudged: every check crossed a kink",
    }
    if (~kink).any():
        worst = int(np.flatnonzero(~kink)[np.argmax(err[~kink])])
        out.update(
            max_relative_error=float(err[worst]),
            median_relative_error=float(np.median(err[~kink])),
            worst={
                "index": int(result.index[worst]),
                "group": str(result.group[worst]),
                "analytic": float(result.analytic[worst]),
                "numerical": float(result.numerical[worst]),
            },
            verdict=verdict(float(err[worst])),
        )
    at_kinks = float(err[kink].max()) if kink.any() else None
    out.update(
        max_relative_error_at_kinks=at_kinks,
        verdict_at_kinks=None if at_kinks is None else verdict(at_kinks),
        passed=out["verdict"] == "good",
    )
    return out
