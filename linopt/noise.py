"""Gradient noise of a linear classifier: how good is a mini-batch gradient?

For ``L(W) = 1/N sum_i l_i(W) + R(W)`` with ``l_i`` the SVM or softmax loss
of example ``i`` (``linopt.losses``), the per-example gradient is an outer
product, ``g_i = c_i x_i^T`` with ``c_i = dl_i/ds_i`` (``(C,)``, the gradient
of the loss in the example's scores). So ``|g_i|^2 = |c_i|^2 |x_i|^2`` and
everything below is exact in one chunked pass over the rows, without ever
forming the ``N x C x D`` per-example gradients.

Conventions (population, over the ``N`` training rows):

- ``G = 1/N sum_i g_i + grad R``: the full gradient of the objective. The
  regularization gradient is the same for every example, so it is no noise:
  a batch gradient is ``g_B + grad R`` and its error is ``g_B - 1/N sum g_i``.
- ``Sigma = 1/N sum_i (g_i - gbar)(g_i - gbar)^T`` (``1/N``, not ``1/(N-1)``),
  so ``tr(Sigma) = 1/N sum_i |g_i|^2 - |gbar|^2``.
- ``B_simple = tr(Sigma) / |G|^2``: the simple noise scale of McCandlish et
  al. 2018, "An Empirical Model of Large-Batch Training".

A batch of ``B`` rows drawn uniformly has ``E|g_B - gbar|^2 = tr(Sigma) / B``
with replacement and ``tr(Sigma) / B * (N - B) / (N - 1)`` without (the
finite-population correction; 0 at ``B = N``). :func:`sample_batch_errors`
measures both by drawing batches, to compare.

Everything is jitted with the loss name and sizes static: a new ``W``,
``reg`` or key does not recompile.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from linopt import losses


class GradientNoise(NamedTuple):
    """The full gradient at ``W`` and the spread of the per-example ones."""

    gradient: jax.Array  # (C, D) G, the objective's full gradient (with reg)
    grad_sq_norm: jax.Array  # () |G|^2
    trace_sigma: jax.Array  # () tr(Sigma), population (1/N) covariance
    b_simple: jax.Array  # () tr(Sigma) / |G|^2
    num_examples: int  # N


def coefficients(loss: str, W, X, y) -> jax.Array:
    """``c_i = dl_i/ds_i`` for each row, ``(N, C)``: ``g_i = c_i x_i^T``.

    ``l_i`` depends on row ``i``'s scores only, so the gradient of the sum of
    the per-example losses in the scores is, row by row, each one's own.
    """
    per_example = losses.PER_EXAMPLE[loss]
    return jax.grad(lambda s: jnp.sum(per_example(s, y)))(losses.scores(W, X))


def gradient_noise(loss: str, W, X, y, reg=0.0, *, chunk_size: int = 4096):
    """``G``, ``|G|^2``, ``tr(Sigma)`` and ``B_simple`` at ``W``, exactly.

    Args:
      loss: ``"svm"`` or ``"softmax"``.
      W: ``(C, D)`` weights. X: ``(N, D)`` rows. y: ``(N,)`` labels.
      reg: L2 strength of ``reg * sum(W**2)`` (traced).
      chunk_size: rows per block of the pass (memory ``chunk_size x C``).
    Returns:
      a :class:`GradientNoise`.
    """
    losses.get(loss)  # a clear error for an unknown name
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    chunk = min(chunk_size, X.shape[0])
    return _gradient_noise(loss, chunk, W, X, y, reg)


@partial(jax.jit, static_argnums=(0, 1))
def _gradient_noise(loss, chunk, W, X, y, reg):
    n = X.shape[0]
    blocks = -(-n // chunk)
    pad = blocks * chunk - n
    # Padded rows are masked out (weight 0), so any N splits into blocks.
    Xb = jnp.pad(X, ((0, pad), (0, 0))).reshape(blocks, chunk, -1)
    yb = jnp.pad(y, (0, pad)).reshape(blocks, chunk)
    mask = (jnp.arange(blocks * chunk) < n).reshape(blocks, chunk).astype(W.dtype)

    def block(carry, rows):
        grad_sum, sq_sum = carry
        x, labels, m = rows
        c = coefficients(loss, W, x, labels) * m[:, None]
        grad_sum = grad_sum + c.T @ x
        sq_sum = sq_sum + jnp.sum(jnp.sum(c * c, 1) * jnp.sum(x * x, 1))
        return (grad_sum, sq_sum), None

    zero = (jnp.zeros_like(W), jnp.zeros((), W.dtype))
    (grad_sum, sq_sum), _ = jax.lax.scan(block, zero, (Xb, yb, mask))
    data_grad = grad_sum / n
    trace = sq_sum / n - jnp.sum(data_grad * data_grad)
    G = data_grad + 2 * reg * W  # the gradient of losses.l2_penalty
    sq_norm = jnp.sum(G * G)
    return GradientNoise(G, sq_norm, trace, trace / sq_norm, n)


def _check_batch(batch_size: int, n: int):
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] (the rows), got {batch_size}")


def expected_batch_error(noise: GradientNoise, batch_size: int, replace: bool = True):
    """``E|g_B - G|^2`` of a batch-``batch_size`` gradient, predicted.

    ``tr(Sigma) / B`` with replacement; times ``(N - B) / (N - 1)`` without.
    """
    n = noise.num_examples
    _check_batch(batch_size, n)
    error = noise.trace_sigma / batch_size
    return error if replace else error * (n - batch_size) / max(n - 1, 1)


def expected_batch_cosine(noise: GradientNoise, batch_size: int, replace: bool = True):
    """``cos(g_B, G)`` of a batch gradient, predicted: ``|G| / sqrt(|G|^2 + E|e|^2)``.

    An approximation: ``cos = (|G|^2 + e.G) / (|G| |G + e|)`` with ``E e = 0``;
    taking the mean of the numerator (``|G|^2``) and of the squared norm in
    the denominator (``|G|^2 + E|e|^2``) separately ignores the spread of
    ``|G + e|`` and ``e.G``. It is close when ``|G + e|`` varies little
    between draws (small noise against ``|G|``, or noise spread over many
    directions); compare :func:`sample_batch_errors`' measured cosines.
    """
    error = expected_batch_error(noise, batch_size, replace)
    return jnp.sqrt(noise.grad_sq_norm / (noise.grad_sq_norm + error))


class SampledBatches(NamedTuple):
    """Drawn batch gradients against ``G``: each draw's error and cosine."""

    sq_errors: jax.Array  # (num_draws,) |g_B - G|^2
    cosines: jax.Array  # (num_draws,) cos(g_B + grad R, G)
    mean_sq_error: jax.Array  # ()
    sq_error_std_error: jax.Array  # () sample std / sqrt(num_draws)
    mean_cosine: jax.Array  # ()
    cosine_std_error: jax.Array  # ()


def sample_batch_errors(
    loss: str,
    W,
    X,
    y,
    reg,
    gradient,
    *,
    key,
    batch_size: int,
    num_draws: int,
    replace: bool = True,
    draws_per_block: int = 1000,
):
    """Measure batch gradients: ``num_draws`` batches drawn uniformly.

    Args:
      loss, W, X, y, reg: as :func:`gradient_noise`.
      gradient: ``G`` (:attr:`GradientNoise.gradient` at the same ``W``).
      key: ``jax.random`` key; draw ``k`` uses ``fold_in(key, k)``. With the
        same key, a smaller batch is the first rows of a larger one's draw.
      batch_size: rows per batch. num_draws: batches drawn (memory
        ``num_draws x N`` row indices: one program serves every batch size).
      replace: draw rows with replacement (else a uniform subset of rows).
      draws_per_block: draws vmapped at once (memory ``draws x B x D``).
    Returns:
      :class:`SampledBatches`.
    """
    losses.get(loss)
    _check_batch(batch_size, X.shape[0])
    if num_draws < 2:
        raise ValueError(f"num_draws must be at least 2 for a spread, got {num_draws}")
    block = max(1, min(draws_per_block, num_draws))
    rows = _draw_rows(num_draws, X.shape[0], replace, key)
    return _sample(loss, batch_size, block, W, X, y, reg, gradient, rows)


@partial(jax.jit, static_argnums=(0, 1, 2))
def _draw_rows(num_draws, n, replace, key):
    """``(num_draws, n)`` rows, a draw a row: a batch of ``B`` is a draw's
    first ``B`` (``n`` uniform picks, or a permutation: ``B`` distinct rows).
    One program for every batch size; the picks are threefry's, which are
    the same for a prefix of a shape (partitionable), so a batch is the
    one ``randint(k, (B,))`` or ``choice(k, n, (B,), replace=False)`` gives."""

    def draw(k):
        k = jax.random.fold_in(key, k)
        if replace:
            return jax.random.randint(k, (n,), 0, n)
        return jax.random.permutation(k, n)

    return jax.vmap(draw)(jnp.arange(num_draws))


@partial(jax.jit, static_argnums=(0, 1, 2))
def _sample(loss, batch, block, W, X, y, reg, G, rows):
    num_draws = rows.shape[0]
    reg_grad = 2 * reg * W

    def draw(rows):
        x, labels = X[rows], y[rows]
        g = coefficients(loss, W, x, labels).T @ x / batch + reg_grad
        e = g - G
        cos = jnp.sum(g * G) / (jnp.linalg.norm(g) * jnp.linalg.norm(G))
        return jnp.sum(e * e), cos

    sq, cos = jax.lax.map(draw, rows[:, :batch], batch_size=block)

    def mean_and_se(v):
        return jnp.mean(v), jnp.std(v, ddof=1) / jnp.sqrt(num_draws)

    return SampledBatches(sq, cos, *mean_and_se(sq), *mean_and_se(cos))
