"""Gradient checking: an analytic gradient against finite differences.

The checks compare an analytic gradient with :mod:`linopt.finite_differences`
coordinate by coordinate (:func:`full_check`), on a keyed sample of every
parameter group (:func:`sparse_check`), or along random unit directions
(:func:`directional_check`, as ``jax.test_util.check_grads`` does), and judge
the relative error with the lecture's bands (:func:`verdict`,
:func:`summarize`). :func:`in_units` measures the step in each feature's own
units, so one ``h`` suits weights on raw pixels and the bias alike.

This module imports nothing it checks: ``f`` is any scalar function of one
array and the analytic gradient arrives as an array. Checks belong in float64
(``with jax.enable_x64(True):``); in float32 the round-off of a difference
quotient, about ``eps * |f| / h = 1e-7 * |f| / 1e-5``, is near 1e-2, so no
check can reach the 1e-7 a correct gradient shows in float64.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from linopt import finite_differences

# Re-exported: the public surface names them here (design.md).
from linopt.finite_differences import numerical_gradient as numerical_gradient
from linopt.finite_differences import (
    numerical_gradient_loop as numerical_gradient_loop,
)

GOOD, KINKS_ONLY, WRONG = 1e-7, 1e-4, 1e-2  # the lecture's verdict bands
# The checks floor the relative error's denominator at FLOOR_FRACTION * |f(x)|:
# a float64 centered difference carries round-off of about eps * |f| / h
# (2e-11 |f| at h = 1e-5), so a coordinate with a gradient below 1e-3 |f| could
# never show 1e-7 however right it is. Below the floor, "good" means an absolute
# |a - n| <= 1e-10 |f|. DENOMINATOR_FLOOR is the absolute minimum (0 / 0 guard).
FLOOR_FRACTION = 1e-3
DENOMINATOR_FLOOR = 1e-30


class PrecisionWarning(UserWarning):
    """A gradient check run in a precision that cannot reach its verdicts."""


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


def bias_column_groups(shape, bias: bool = True) -> dict[str, np.ndarray]:
    """Masks of the parameter groups of ``W: (C, D)``: weights and bias column
    (the last); with ``bias=False`` (rows without the 1s), weights alone."""
    weights = np.ones(shape, dtype=bool)
    if not bias:
        return {"weights": weights}
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
    mode, f, analytic, x, perturbations, group, *, kinks=None, floor=None, **options
):
    """``perturbations``: flat coordinates ``(M,)`` or directions ``(M, x.size)``
    (numbered 0 to M - 1); ``options``: ``h``, ``method``, ``memory_bytes``."""
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
    numerical = _float64(
        finite_differences.difference_quotients(f, x, perturbations, **options)
    )
    index = perturbations if perturbations.ndim == 1 else np.arange(len(group))
    crossed = np.zeros(len(index), dtype=bool)
    if kinks is not None:
        crossed = np.asarray(
            finite_differences.kink_crossings(kinks, x, perturbations, **options)
        )
    if floor is None:
        floor = max(FLOOR_FRACTION * abs(float(jax.jit(f)(x))), DENOMINATOR_FLOOR)
    analytic = _float64(analytic)
    error = relative_error(analytic, numerical, floor=floor)
    return CheckResult(
        mode,
        np.asarray(index),
        np.asarray(group),
        analytic,
        numerical,
        error,
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
    return Rescaled(f_v, *_rescale(jnp.asarray(analytic), x, scale), kinks_v)


@jax.jit
def _rescale(analytic, x, scale):
    return analytic / scale, x * scale


@jax.jit
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
      f: scalar function of ``x``.
      analytic: its claimed gradient at ``x``, ``x``'s shape.
      x: the floating-point array to check at (float64 for a verdict).
      groups: optional ``name -> bool mask`` of parameter groups (the sparse
        and directional checks draw from each; here they label the report).
      **options: ``h``, ``method``, ``memory_bytes`` as for
        :func:`linopt.finite_differences.numerical_gradient`; ``kinks``, a
        function of ``x`` giving the arguments of the hinges in ``f``
        (:func:`linopt.finite_differences.kink_crossings`), so that the checks
        that cross one are flagged and judged apart; ``floor``, the relative
        error's smallest denominator (default ``FLOOR_FRACTION * |f(x)|``).
    Returns:
      a :class:`CheckResult`; :func:`summarize` gives its verdict.
    """
    x = jnp.asarray(x)
    names = np.empty(x.size, dtype=object)
    for name, mask in _groups(x, groups).items():
        names[mask.reshape(-1)] = name
    index = np.arange(x.size)
    flat = _float64(analytic).reshape(-1)
    return _check("full", f, flat, x, index, names.astype(str), **options)


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
        chosen = _choose(key, g, members.size, take)
        index.append(members[np.sort(np.asarray(chosen))])
        names += [name] * take
    index = np.concatenate(index)
    chosen = _float64(analytic).reshape(-1)[index]
    return _check("sparse", f, chosen, x, index, names, **options)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _choose(key, group: int, size: int, take: int) -> jax.Array:
    """``take`` of ``range(size)`` without replacement, by the group's key."""
    group_key = jax.random.fold_in(key, group)
    return jax.random.choice(group_key, size, (take,), replace=False)


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
    return _check("directional", f, analytic, x, directions, names, **options)


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
