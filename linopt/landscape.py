"""Loss landscapes: 1-D and 2-D slices through ``W``, and the lecture's toy.

The lecture cannot draw a loss over 30,730 weights, so it draws it along a
random line, ``L(W + a W1)``, and over a random plane,
``L(W + a W1 + b W2)``: for one example the SVM loss is piecewise linear (a
kinked valley), averaged over many it is a convex bowl. Its toy (three 1-D
examples, three classes) shows why: the loss is a sum of clamped linear
pieces. (The step along the gradient that follows is :mod:`linopt.step_size`.)

Every grid is one jitted call: the grid points are mapped with ``vmap`` in
batches (:func:`map_in_batches`), never by a Python loop, and the
coefficients and ``reg`` are traced values.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from linopt import losses
from linopt.errors import LinoptError

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


def load_weights(path, shape: tuple[int, int]) -> np.ndarray:
    """The ``(C, D)`` array in the ``.npy`` file ``path``, as float32.

    Raises:
      LinoptError: a file that is not one finite array of ``shape``; the
        message names the ``weights`` setting.
    """
    try:
        W = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise LinoptError(f"cannot read weights {path!r} as .npy ({e})") from None
    if not isinstance(W, np.ndarray):
        raise LinoptError(f"weights {path!r} is not a single .npy array")
    if W.shape != tuple(shape):
        raise LinoptError(
            f"weights {path!r} has shape {W.shape}; "
            f"this data set needs {tuple(shape)} (classes, columns of its rows)"
        )
    if not np.all(np.isfinite(W)):
        raise LinoptError(f"weights {path!r} has nan/inf")
    return W.astype(np.float32)


def centre_and_directions(
    centre_key,
    direction_key,
    shape: tuple[int, int],
    *,
    init_scale: float | None = None,
    weights=None,
    scale: str = "weights",
    orthogonalize: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """A slice's centre ``W`` and its two directions ``W1, W2``.

    Args:
      centre_key: draws the random centre ``init_scale * randn(C, D)``.
      direction_key: draws the directions (:func:`random_directions`).
      shape: ``(C, D)``.
      init_scale: the random centre's scale (when ``weights`` is None).
      weights: ``(C, D)`` the centre, e.g. trained weights (:func:`load_weights`).
      scale, orthogonalize: as :func:`random_directions`.
    Returns:
      ``(W, directions)``: ``(C, D)`` float32 and ``(2, C, D)``.
    Raises:
      LinoptError: a direction that the scaling makes zero (a zero centre
        under ``"weights"`` or ``"rows"``; a zero row only stills that row).
    """
    if weights is None:
        W = init_scale * jax.random.normal(centre_key, shape, jnp.float32)
    else:
        W = jnp.asarray(weights, jnp.float32)
    directions = random_directions(
        direction_key, W, 2, scale=scale, orthogonalize=orthogonalize
    )
    if not np.all(np.linalg.norm(np.asarray(directions), axis=(1, 2)) > 0):
        raise LinoptError(
            "direction_scale gives a zero direction: the centre W is zero; "
            "use direction_scale=none"
        )
    return W, directions


def map_in_batches(fn, xs, per_point: int, batch_size: int | None = None):
    """``vmap`` of ``fn`` over the rows of ``xs``, ``batch_size`` rows at a time.

    Args:
      fn: a function of one row of ``xs``.
      xs: ``(P, ...)`` the points.
      per_point: elements of one point's largest intermediate, which sets the
        default batch size.
      batch_size: points per ``vmap`` batch (default: as many as keep one
        batch's largest intermediate near 2**25 elements; all when they fit).
    Returns:
      ``fn``'s outputs stacked along a leading axis of ``P``.
    """
    if batch_size is None:
        batch_size = _BATCH_ELEMENTS // max(per_point, 1)
    batch_size = int(max(1, min(batch_size, xs.shape[0])))
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
        return map_in_batches(through_weights, coefficients, N * C + C * D, batch_size)
    # Scores are affine in the coefficients: X @ (W + c.D).T = S0 + c.S, so a
    # point costs N*C work instead of an (N, D) x (D, C) product.
    base = losses.scores(W, X)
    along = jnp.einsum("nd,kcd->knc", X, directions)
    return map_in_batches(through_scores, coefficients, N * C, batch_size)


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

    m0, is_correct = losses.margins(losses.scores(W, X), y, delta)
    # The margin is affine in the weights: its slope is the direction's margin
    # without the constant delta.
    slope, _ = losses.margins(losses.scores(direction, X), y, 0.0)
    other = ~is_correct
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


# The lecture toy's kinks lie in -2.3 ... 0.8: this range shows them, 1.5 beyond.
TOY_W0_RANGE = (-3.8, 2.3)


class ToySlice(NamedTuple):
    """The lecture toy's loss over its one varied weight ``w0``, in pieces."""

    w0: np.ndarray  # (A,) the values of w0
    pieces: np.ndarray  # (A, 3, 3): example i, class j's max(0, .) / 3; 0 at j == i
    total: np.ndarray  # (A,) the loss, the pieces' sum
    kinks: np.ndarray  # (K,) sorted: the w0 where a piece bends


def toy_slice(num_points: int = 245, w0_range=TOY_W0_RANGE) -> ToySlice:
    """The lecture toy (:func:`lecture_toy`) along ``w0``, as its pieces.

    Args:
      num_points: ``A``, values of ``w0`` from ``w0_range[0]`` to ``w0_range[1]``.
      w0_range: the ends of the range.
    Returns:
      :class:`ToySlice`, host arrays (float32).
    """
    W, direction, X, y = lecture_toy()
    offset = float(W[0, 0])
    alphas = np.linspace(*w0_range, num_points, dtype=np.float32) - offset
    toy = jax.device_get(hinge_pieces(W, direction, alphas, X, y))
    kinks = np.sort(toy.kinks[np.isfinite(toy.kinks)]) + offset
    return ToySlice(alphas + offset, toy.pieces, toy.total, kinks)
