"""Loss landscapes: 1-D and 2-D slices through ``W``, the toy, step sizes.

The lecture cannot draw a loss over 30,730 weights, so it draws it along a
random line, ``L(W + a W1)``, and over a random plane,
``L(W + a W1 + b W2)``: for one example the SVM loss is piecewise linear (a
kinked valley), averaged over many it is a convex bowl. Its toy (three 1-D
examples, three classes) shows why: the loss is a sum of clamped linear
pieces. Then it steps along the negative gradient with sizes ``1e-10 ...
1e-1``: the loss falls linearly for tiny steps, has a minimum, then grows
about 10x per decade.

Every grid is one jitted call: the grid points are mapped with ``vmap`` in
batches (``jax.lax.map(..., batch_size=...)``), never by a Python loop, and
the coefficients, ``reg`` and step sizes are traced values.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from linopt import losses

DIRECTION_SCALES = ("none", "weights", "rows")
# Elements of one batch's largest intermediate (about 128 MiB in float32):
# keeps a 49,000-example grid inside memory while vmapping many points at once.
_BATCH_ELEMENTS = 2**25
# The library's losses see W only through the scores X @ W.T.
_PER_EXAMPLE = {
    losses.svm_loss: losses.multiclass_hinge,
    losses.softmax_loss: losses.softmax_cross_entropy,
}


def _dot(u, v):
    return jnp.sum(u * v, axis=-1, keepdims=True)


@partial(jax.jit, static_argnames=("num_directions", "scale", "orthogonalize"))
def random_directions(
    key,
    W,
    num_directions: int = 2,
    *,
    scale: str = "weights",
    orthogonalize: bool = True,
) -> jax.Array:
    """Random directions of ``W``'s shape, drawn from ``key``.

    Args:
      key: a ``jax.random.key``.
      W: ``(C, D)`` the centre of the slice (only its shape, dtype and norms).
      num_directions: ``K``, how many directions.
      scale: ``"none"`` keeps standard-normal entries; ``"weights"`` rescales
        each direction to ``W``'s Frobenius norm (so ``a = 1`` moves as far as
        ``|W|``); ``"rows"`` rescales each class row to that row's norm in
        ``W`` (Li et al. 2018's filter normalization). A zero ``W`` (or row)
        gives a zero direction under ``"weights"`` (``"rows"``).
      orthogonalize: make direction ``k`` orthogonal to the earlier ones
        (Gram-Schmidt; per row under ``"rows"``, so scaling keeps it).
    Returns:
      ``(K, C, D)`` directions.
    """
    if scale not in DIRECTION_SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {DIRECTION_SCALES}")
    d = jax.random.normal(key, (num_directions, *W.shape), W.dtype)
    # Blocks that are orthogonalized and rescaled together: rows or the whole W.
    blocks = (
        (num_directions, W.shape[0], -1) if scale == "rows" else (num_directions, 1, -1)
    )
    d = d.reshape(blocks)
    if orthogonalize:
        rows = []
        for k in range(num_directions):  # K is 2 or 3: a static Python loop
            v = d[k]
            for u in rows:
                v = v - _dot(v, u) / _dot(u, u) * u
            rows.append(v)
        d = jnp.stack(rows)
    if scale != "none":
        target = jnp.linalg.norm(W.reshape(blocks[1:]), axis=-1, keepdims=True)
        d = d / jnp.linalg.norm(d, axis=-1, keepdims=True) * target[None]
    return d.reshape(num_directions, *W.shape)


def _batch_size(num_points: int, per_point: int, batch_size: int | None) -> int:
    if batch_size is None:
        batch_size = _BATCH_ELEMENTS // max(per_point, 1)
    return int(max(1, min(batch_size, num_points)))


def _map(fn, xs, batch_size: int):
    """``vmap`` of ``fn`` over ``xs``, ``batch_size`` points at a time."""
    if batch_size >= xs.shape[0]:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=batch_size)


_STATIC = ("loss_fn", "per_example", "batch_size")


@partial(jax.jit, static_argnames=_STATIC)
def slice_losses(
    loss_fn,
    W,
    directions,
    coefficients,
    X,
    y,
    reg=0.0,
    *,
    per_example=None,
    batch_size: int | None = None,
) -> jax.Array:
    """``loss_fn(W + sum_k c_k directions[k], X, y, reg)`` for each row ``c``.

    One compiled call; new coefficients, data or ``reg`` of the same shapes do
    not recompile.

    Args:
      loss_fn: ``loss_fn(W, X, y, reg) -> scalar``, e.g. ``losses.svm_loss``.
      W: ``(C, D)`` centre. directions: ``(K, C, D)``.
      coefficients: ``(P, K)`` one grid point a row.
      X: ``(N, D)``, y: ``(N,) int32`` the examples the loss averages over.
      reg: L2 strength (traced).
      per_example: per-example loss of the scores, ``(N, C), (N,) -> (N,)``.
        When given (and by default for ``losses.svm_loss`` and
        ``losses.softmax_loss``) the loss is taken to be
        ``mean(per_example(X @ W.T, y)) + reg * sum(W**2)`` and evaluated from
        the ``K + 1`` score matrices; same values, far less work.
      batch_size: grid points per ``vmap`` batch (default: as many as keep one
        batch's largest intermediate near 2**25 elements).
    Returns:
      ``(P,)`` losses.
    """
    if per_example is None:
        per_example = _PER_EXAMPLE.get(loss_fn)

    def through_weights(c):
        return loss_fn(W + jnp.tensordot(c, directions, axes=1), X, y, reg)

    def through_scores(c):
        s = base + jnp.tensordot(c, along, axes=1)
        penalty = losses.l2_penalty(W + jnp.tensordot(c, directions, axes=1), reg)
        return jnp.mean(per_example(s, y)) + penalty

    N, C, D = X.shape[0], W.shape[0], W.shape[1]
    if per_example is None:
        size = _batch_size(coefficients.shape[0], N * C + C * D, batch_size)
        return _map(through_weights, coefficients, size)
    # Scores are affine in the coefficients: X @ (W + c.D).T = S0 + c.S, so a
    # point costs N*C work instead of an (N, D) x (D, C) product.
    base = losses.scores(W, X)
    along = jnp.einsum("nd,kcd->knc", X, directions)
    size = _batch_size(coefficients.shape[0], N * C, batch_size)
    return _map(through_scores, coefficients, size)


@partial(jax.jit, static_argnames=_STATIC)
def slice_1d(loss_fn, W, direction, alphas, X, y, reg=0.0, **options) -> jax.Array:
    """``L(W + a W1)`` for each ``a`` in ``alphas (A,)``; returns ``(A,)``.

    ``direction`` is ``(C, D)``; ``options`` (``per_example``, ``batch_size``)
    and the other arguments as :func:`slice_losses`.
    """
    coefficients = jnp.asarray(alphas)[:, None]
    return slice_losses(loss_fn, W, direction[None], coefficients, X, y, reg, **options)


@partial(jax.jit, static_argnames=_STATIC)
def slice_2d(loss_fn, W, directions, alphas, betas, X, y, reg=0.0, **options):
    """``L(W + a W1 + b W2)`` over the grid ``alphas (A,) x betas (B,)``.

    Returns ``(B, A)``: row ``i`` is ``b = betas[i]``, column ``j`` is
    ``a = alphas[j]`` (image layout, as ``plots.heatmap`` expects).
    ``directions`` is ``(2, C, D)``; ``options`` and the other arguments as
    :func:`slice_losses`.
    """
    a, b = jnp.meshgrid(jnp.asarray(alphas), jnp.asarray(betas))
    coefficients = jnp.stack([a.ravel(), b.ravel()], axis=1)
    values = slice_losses(loss_fn, W, directions, coefficients, X, y, reg, **options)
    return values.reshape(a.shape)


@jax.jit
def score_scale(X, direction) -> jax.Array:
    """RMS over examples and classes of the scores ``X @ direction.T``.

    ``t / score_scale`` is the step along ``direction`` that moves the scores
    by ``t`` on average: a data-independent way to choose a slice's range.
    """
    return jnp.sqrt(jnp.mean(losses.scores(direction, X) ** 2))


class HingePieces(NamedTuple):
    """The SVM data loss along ``W + a * direction`` as its clamped pieces."""

    pieces: jax.Array  # (A, N, C): max(0, s_j - s_y + delta) / N; 0 at j == y_i
    total: jax.Array  # (A,): pieces summed, the mean SVM loss without reg
    kinks: jax.Array  # (N, C): the a where each piece's margin crosses 0 (inf: none)


@jax.jit
def hinge_pieces(W, direction, alphas, X, y, delta=losses.SVM_DELTA) -> HingePieces:
    """Split the SVM loss along a line into its clamped linear pieces.

    The margin of class ``j`` on example ``i`` is affine in ``a``:
    ``m_ij(a) = m_ij(0) + a g_ij``, so each piece ``max(0, m_ij(a)) / N`` is a
    clamped line with its kink at ``a = -m_ij(0) / g_ij``, and the loss is
    their sum: piecewise linear, convex, with kinks only there.

    Args:
      W, direction: ``(C, D)``. alphas: ``(A,)``. X: ``(N, D)``. y: ``(N,)``.
    Returns:
      :class:`HingePieces`.
    """

    def margins(V):
        s = losses.scores(V, X)
        return s - jnp.take_along_axis(s, y[:, None], axis=1)

    m0 = margins(W) + delta
    slope = margins(direction)
    other = ~jax.nn.one_hot(y, W.shape[0], dtype=bool)
    m = m0[None] + alphas[:, None, None] * slope[None]
    pieces = jnp.where(other[None], jax.nn.relu(m), 0.0) / X.shape[0]
    has_kink = other & (slope != 0)
    kinks = jnp.where(has_kink, -m0 / jnp.where(has_kink, slope, 1.0), jnp.inf)
    return HingePieces(pieces, pieces.sum(axis=(1, 2)), kinks)


def lecture_toy(x=(2.0, 1.0, 0.5), w=(0.0, 0.3, -0.3)):
    """The lecture's toy: three 1-D examples ``x_i`` of classes 0, 1, 2.

    ``W`` is ``(3, 1)`` (one weight ``w_j`` a class, no bias) and the slice
    along ``direction`` moves ``w_0`` only, so with the lecture's
    ``L = 1/3 sum_i sum_{j != y_i} max(0, w_j x_i - w_{y_i} x_i + 1)`` every
    piece is either constant in ``w_0`` or a clamped linear function of it.

    Returns:
      ``(W, direction, X, y)``: ``(3, 1)``, ``(3, 1)``, ``(3, 1)``, ``(3,)``.
    """
    W = np.asarray(w, np.float32)[:, None]
    X = np.asarray(x, np.float32)[:, None]
    direction = np.zeros_like(W)
    direction[0, 0] = 1.0
    return tuple(map(jnp.asarray, (W, direction, X, np.arange(3, dtype=np.int32))))


class StepSizeSweep(NamedTuple):
    """The loss after one step ``W - t * grad`` for each step size ``t``."""

    step_sizes: jax.Array  # (S,)
    losses: jax.Array  # (S,) loss after one step of each size
    original_loss: jax.Array  # () loss at W
    gradient_norm: jax.Array  # () Frobenius norm of the gradient at W
    best_step_size: jax.Array  # () the step with the lowest finite loss
    best_loss: jax.Array  # ()


def step_sizes(
    min_step: float = 1e-10, max_step: float = 1e-1, points_per_decade: int = 1
) -> np.ndarray:
    """Log-spaced steps from ``min_step`` to ``max_step``, both included.

    The default is the lecture's ``10**-10 ... 10**-1`` (10 sizes).
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
      W: ``(C, D)`` the starting point. X: ``(N, D)``. y: ``(N,) int32``.
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
    size = _batch_size(step_sizes.shape[0], per_point, batch_size)
    new_losses = _map(after_step, step_sizes, size)
    best = jnp.argmin(jnp.where(jnp.isfinite(new_losses), new_losses, jnp.inf))
    return StepSizeSweep(
        step_sizes,
        new_losses,
        loss_fn(W, X, y, reg),
        jnp.linalg.norm(gradient),
        step_sizes[best],
        new_losses[best],
    )
