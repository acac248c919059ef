"""The gradient check of linopt's losses: the SVM and softmax against
:mod:`linopt.gradcheck`, at weights that exercise both branches of every hinge.

:func:`check_loss` is what ``python -m experiments.gradcheck`` runs for each
loss: one check (full, sparse or directional) of ``jax.grad`` of the loss (or
of any gradient given), with the SVM's kinks judged apart, in feature units by
default, and an h sweep of the same sparse sample that shows truncation (large
``h``) giving way to round-off (small ``h``).

W should start at :func:`default_weight_scale` ``* randn``: scores of unit
standard deviation put the SVM's margins ``s_j - s_y + 1`` on both sides of 0,
so both branches of every hinge are checked (at W near 0 every margin is near
1 and the indicator in the SVM gradient is never exercised).

This module applies the judge to the losses, so, unlike
:mod:`linopt.gradcheck`, it imports them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from linopt import finite_differences, gradcheck, losses

MODES = ("full", "sparse", "directional")
SWEEP_STEPS = tuple(float(f"1e-{k}") for k in range(1, 11))  # 1e-1 ... 1e-10
_SAMPLED_CHECKS = {
    "sparse": gradcheck.sparse_check,
    "directional": gradcheck.directional_check,
}
_SWEEP_FIELDS = ("max_relative_error", "median_relative_error", "num_kinks_crossed")


def svm_kinks(X: jax.Array, y: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """The SVM's hinge arguments as a function of ``W: (C, D)``.

    Args:
      X: ``(N, D)`` examples.
      y: ``(N,)`` int labels.
    Returns:
      ``W -> (N, C)`` margins :func:`linopt.losses.margins` of the scores; the
      correct class's entry, which is no hinge, pinned at ``SVM_DELTA`` (> 0).
    """

    def kinks(W):
        margins, is_correct = losses.margins(losses.scores(W, X), y)
        return jnp.where(is_correct, losses.SVM_DELTA, margins)

    return kinks


def default_weight_scale(X) -> float:
    """The scale that gives ``W x`` unit variance for the rows of ``X: (N, D)``."""
    return float(1.0 / np.sqrt(np.mean(np.sum(np.asarray(X, np.float64) ** 2, 1))))


def h_sweep(
    f: Callable,
    analytic,
    x,
    key: jax.Array,
    *,
    num_checks: int,
    floor: float,
    steps=SWEEP_STEPS,
    **options,
) -> list[dict]:
    """The same sparse sample checked at each step ``h`` in ``steps``.

    Args:
      f, analytic, x, key, num_checks: as for :func:`linopt.gradcheck.sparse_check`.
      floor: the relative error's smallest denominator, the same at every ``h``
        (the main check's), so that the rows compare.
      steps: the values of ``h``.
      **options: ``groups``, ``kinks``, ``method``, ``memory_bytes``.
    Returns:
      one row a step: ``h``, ``max_relative_error``, ``median_relative_error``
      (None where every check crossed a kink) and ``num_kinks_crossed``.
    """
    rows = []
    for step in steps:
        checked = gradcheck.sparse_check(
            f, analytic, x, key, num_checks=num_checks, h=step, floor=floor, **options
        )
        summary = gradcheck.summarize(checked)
        rows.append({"h": float(step), **{k: summary[k] for k in _SWEEP_FIELDS}})
    return rows


def check_loss(
    name: str,
    W: jax.Array,
    X: jax.Array,
    y: jax.Array,
    *,
    reg: float,
    h: float,
    method: str,
    mode: str,
    num_checks: int,
    key: jax.Array,
    gradient=None,
    units: str = "feature",
    memory_bytes: int = finite_differences.DEFAULT_MEMORY_BYTES,
    bias: bool = True,
) -> tuple[gradcheck.CheckResult, dict]:
    """Check ``gradient`` (default ``jax.grad`` of loss ``name``) at ``W``.

    Args:
      name: ``"svm"`` or ``"softmax"``; the SVM's margins are its kinks.
      W: ``(C, D)`` weights, float64 for a verdict.
      X: ``(N, D)`` examples, ``W``'s dtype.
      y: ``(N,)`` int labels.
      reg: the L2 strength of the loss.
      h: the finite-difference step.
      method: ``"centered"`` or ``"forward"``.
      mode: ``"full"`` (every coordinate), ``"sparse"`` (``num_checks``
        coordinates a parameter group) or ``"directional"`` (``num_checks``
        random directions a group); groups are the weights and the bias column
        (if ``bias``).
      num_checks: per group, for sparse, directional and the h sweep.
      key: draws the sparse sample and the directions.
      gradient: ``(C, D)``, the gradient to check; default ``jax.grad``.
      units: ``"feature"`` checks in :func:`linopt.gradcheck.in_units` of
        :func:`linopt.gradcheck.feature_scale` of ``X`` (partials and the
        worst check's values are then per unit of feature scale);
        ``"parameter"`` steps every ``W[c, d]`` by ``h``, the lecture's loop.
      memory_bytes: the finite differences' budget for one chunk.
      bias: ``X``'s last column is the bias trick's 1s (its own group).
    Returns:
      ``(result, summary)``: the :class:`linopt.gradcheck.CheckResult` and its
      :func:`linopt.gradcheck.summarize`, with ``h_sweep`` (:func:`h_sweep`
      over :data:`SWEEP_STEPS`) added.
    """
    loss = losses.get(name)

    def f(W):
        return loss(W, X, y, reg)

    # Jitted: one program, not each of the loss's primitives compiled apart.
    analytic = jax.jit(jax.grad(f))(W) if gradient is None else gradient
    kinks = svm_kinks(X, y) if name == "svm" else None
    if units == "feature":
        f, analytic, W, kinks = gradcheck.in_units(
            gradcheck.feature_scale(X), f, analytic, W, kinks=kinks
        )
    options = dict(
        groups=gradcheck.bias_column_groups(W.shape, bias),
        kinks=kinks,
        method=method,
        memory_bytes=memory_bytes,
    )
    if mode == "full":
        result = gradcheck.full_check(f, analytic, W, h=h, **options)
    else:
        check = _SAMPLED_CHECKS[mode]
        result = check(f, analytic, W, key, num_checks=num_checks, h=h, **options)
    summary = gradcheck.summarize(result)
    summary["h_sweep"] = h_sweep(
        f, analytic, W, key, num_checks=num_checks, floor=result.floor, **options
    )
    return result, summary
