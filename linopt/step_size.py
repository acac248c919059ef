"""The lecture's step-size sweep: the loss after one gradient step of each size.

From ``W`` the lecture steps along the negative gradient,
``W - t * dL/dW``, with ``t = 1e-10 ... 1e-1``: the loss falls linearly for
tiny steps (by ``t |grad|^2``, the first-order prediction), has a minimum, then
grows about 10x per decade once the step overshoots (far from the minimum the
loss is asymptotically linear in ``t``).

Every step size goes through one ``vmap`` in one jitted call (in batches when
the data is large), with ``t`` and ``reg`` traced, so a new grid or strength
does not recompile.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from linopt import landscape


class StepSizeSweep(NamedTuple):
    """The loss after one step ``W - t * grad`` for each step size ``t``."""

    step_sizes: jax.Array  # (S,)
    losses: jax.Array  # (S,) loss after one step of each size
    original_loss: jax.Array  # () loss at W
    gradient_norm: jax.Array  # () Frobenius norm of the gradient at W
    best_step_size: jax.Array  # () the step with the lowest finite loss
    best_loss: jax.Array  # ()
    best_index: jax.Array  # () int: where best_step_size is in step_sizes


def step_sizes(
    min_step: float = 1e-10, max_step: float = 1e-1, points_per_decade: int = 1
) -> np.ndarray:
    """Log-spaced steps from ``min_step`` to ``max_step``, both included.

    Args:
      min_step: the smallest step, > 0.
      max_step: the largest step, > ``min_step``.
      points_per_decade: step sizes per factor of 10.
    Returns:
      ``(S,)`` float64 step sizes. The default is the lecture's
      ``10**-10 ... 10**-1`` (10 sizes).
    """
    lo, hi = np.log10(min_step), np.log10(max_step)
    num = int(round((hi - lo) * points_per_decade)) + 1
    return 10.0 ** np.linspace(lo, hi, num)


@partial(jax.jit, static_argnames=("loss_fn", "grad_fn", "batch_size"))
def step_size_sweep(
    loss_fn,
    W,
    X,
    y,
    step_sizes,
    reg=0.0,
    *,
    grad_fn=None,
    batch_size: int | None = None,
) -> StepSizeSweep:
    """The lecture's step-size experiment: ``L(W - t * dL/dW)`` for each ``t``.

    One compiled call: all step sizes go through one ``vmap`` (in batches of
    ``batch_size`` when the data is large), with ``t`` and ``reg`` traced, so
    new values of either do not recompile.

    Args:
      loss_fn: ``loss_fn(W, X, y, reg) -> scalar``, e.g. ``losses.svm_loss``.
      W: ``(C, D)`` the starting point.
      X: ``(N, D)`` examples.
      y: ``(N,) int32`` labels.
      step_sizes: ``(S,)`` positive step sizes, e.g. :func:`step_sizes`;
        computed in ``W``'s dtype.
      reg: L2 strength.
      grad_fn: gradient with ``loss_fn``'s arguments (default ``jax.grad``).
      batch_size: step sizes per ``vmap`` batch (default: all, unless one
        batch's largest intermediate would pass about 2**25 elements).
    Returns:
      :class:`StepSizeSweep`. For example
      ``step_size_sweep(losses.svm_loss, W, X, y, step_sizes()).best_step_size``.
    """
    step_sizes = jnp.asarray(step_sizes).astype(W.dtype)
    gradient = (jax.grad(loss_fn) if grad_fn is None else grad_fn)(W, X, y, reg)

    def after_step(t):
        return loss_fn(W - t * gradient, X, y, reg)

    per_point = X.shape[0] * W.shape[0] + W.size
    new_losses = landscape.map_in_batches(after_step, step_sizes, per_point, batch_size)
    # A step that diverged (inf or nan) never wins.
    best = jnp.argmin(jnp.where(jnp.isfinite(new_losses), new_losses, jnp.inf))
    return StepSizeSweep(
        step_sizes,
        new_losses,
        loss_fn(W, X, y, reg),
        jnp.linalg.norm(gradient),
        step_sizes[best],
        new_losses[best],
        best,
    )
