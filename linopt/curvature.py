"""Curvature of a loss of ``W``: Hessian-vector products, spectra, the trace.

Every routine takes ``loss_fn(W, *args) -> scalar`` (e.g.
``losses.softmax_loss(W, X, y, reg)``) with the data in ``args``, never
closed over. The Hessian is that of ``loss_fn`` in ``W.ravel()`` (row-major,
so index ``c * D + d``), a ``(C D, C D)`` matrix that is never formed except
by :func:`exact_hessian`, for small problems and tests.

- :func:`hvp`: ``H v`` by forward-over-reverse (``jax.jvp`` of ``jax.grad``),
  about the cost of two gradients.
- :func:`lanczos`: Lanczos with full reorthogonalization on any symmetric
  ``matvec``, one ``lax.fori_loop`` of ``num_iters`` products (also the
  engine of :mod:`linopt.spectrum`).
- :func:`top_eigenpairs`: Lanczos on ``H``, then ``eigh`` of the small
  tridiagonal matrix.
- :func:`hutchinson_trace`: ``E[z^T H z]`` over vmapped Rademacher probes,
  with a 95% confidence interval from the probes' spread.
- :func:`step_predictions`: what the quadratic model says about one gradient
  step: ``L(W - t g) ~ L - t |g|^2 + t^2/2 g^T H g``.
- :func:`softmax_at_zero`: the closed forms at ``W = 0``, where every class
  probability is ``1/C``.

All are jitted with ``loss_fn`` and the sizes static, so a new ``W``, ``reg``
or key does not recompile.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats


@partial(jax.jit, static_argnums=0)
def hvp(loss_fn, W, V, *args):
    """The Hessian of ``loss_fn`` at ``W`` times ``V`` (same shape as ``W``)."""
    grad = jax.grad(loss_fn)
    return jax.jvp(lambda w: grad(w, *args), (W,), (V,))[1]


@partial(jax.jit, static_argnums=0)
def exact_hessian(loss_fn, W, *args):
    """The whole ``(W.size, W.size)`` Hessian by ``jax.hessian`` (small ``W`` only)."""
    return jax.hessian(loss_fn)(W, *args).reshape(W.size, W.size)


class Eigenpairs(NamedTuple):
    """The top-k eigenvalues (descending) and unit eigenvectors of the Hessian."""

    eigenvalues: jax.Array  # (k,)
    eigenvectors: jax.Array  # (k, C, D), eigenvectors[i] pairs with eigenvalues[i]
    residuals: jax.Array  # (k,) |H v - lambda v|, measured with one more product each


def _check_sizes(**sizes):
    for name, (value, low, high) in sizes.items():
        if not low <= value <= high:
            raise ValueError(f"{name} must be in [{low}, {high}] here, got {value}")


def top_eigenpairs(loss_fn, W, *args, key, k: int = 1, num_iters: int = 30):
    """The ``k`` largest eigenvalues of the Hessian at ``W`` and their vectors.

    Lanczos from a random start: ``num_iters`` Hessian-vector products build
    an orthonormal Krylov basis (reorthogonalized against the whole basis
    each step, so no ghost eigenvalues), whose tridiagonal projection's top
    eigenpairs (Ritz pairs) approximate the Hessian's. Extreme eigenvalues
    converge first; more iterations, tighter pairs. One Krylov sequence
    holds each distinct eigenvalue once; when it runs out (an invariant
    subspace), Lanczos restarts at a fresh orthogonal vector, so with enough
    iterations repeated eigenvalues come with their multiplicity.

    Args:
      loss_fn: ``loss_fn(W, *args) -> scalar``. W: ``(C, D)``.
      *args: the rest of ``loss_fn``'s arguments (data, reg).
      key: ``jax.random`` key for the starting vector.
      k: eigenpairs wanted, ``1 <= k <= num_iters``.
      num_iters: Hessian-vector products, ``<= W.size``.
    Returns:
      :class:`Eigenpairs`; ``residuals`` says how converged each pair is.
    """
    _check_sizes(num_iters=(num_iters, 1, W.size), k=(k, 1, num_iters))
    return _top_eigenpairs(loss_fn, k, num_iters, W, key, *args)


class Lanczos(NamedTuple):
    """A Krylov basis and the Hessian's tridiagonal projection onto it."""

    basis: jax.Array  # (m, n) orthonormal rows, the first the normalized start
    alphas: jax.Array  # (m,) the diagonal, q_i^T H q_i
    betas: jax.Array  # (m,) betas[i] couples rows i and i + 1 (0: a restart)

    def tridiagonal(self) -> jax.Array:
        """The ``(m, m)`` symmetric tridiagonal matrix ``T = Q H Q^T``."""
        off = self.betas[:-1]
        return jnp.diag(self.alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)


def lanczos(matvec, v0, num_iters: int, *, key) -> Lanczos:
    """``num_iters`` steps of Lanczos on ``matvec`` from ``v0``, traceable.

    Each step's new vector is reorthogonalized against the whole basis (twice:
    Kahan, Parlett), so no ghost eigenvalues. At a breakdown (an invariant
    subspace found) Lanczos restarts at a fresh random vector orthogonal to
    the basis, drawn with ``fold_in(key, i)``, and records a zero coupling:
    the tridiagonal matrix splits into blocks, and the start's quadrature
    weights (:mod:`linopt.spectrum`) stay on the first.

    Args:
      matvec: ``(n,) -> (n,)``, a symmetric linear map (jax-traceable).
      v0: ``(n,)`` nonzero start (normalized here); its dtype is the basis'.
      num_iters: steps, static, ``<= n``.
      key: ``jax.random`` key of the restarts.
    Returns:
      :class:`Lanczos`.
    """
    (n,), dtype, m = v0.shape, v0.dtype, num_iters

    def orthogonalize(w, Q):
        # Twice is enough (Kahan, Parlett): rows of Q not yet filled are 0.
        for _ in range(2):
            w = w - Q.T @ (Q @ w)
        return w

    # m + 1 rows: the last step's new vector has a row too, unused.
    Q = jnp.zeros((m + 1, n), dtype).at[0].set(v0 / jnp.linalg.norm(v0))

    def step(i, state):
        Q, alphas, betas = state
        w = matvec(Q[i])
        alphas = alphas.at[i].set(Q[i] @ w)
        w = orthogonalize(w, Q)
        beta = jnp.linalg.norm(w)
        # Breakdown: restart orthogonally at a fresh random vector, with a
        # zero coupling in the tridiagonal matrix.
        fresh = jax.random.normal(jax.random.fold_in(key, i), (n,), dtype)
        fresh = orthogonalize(fresh, Q)
        # |H| is about the largest Rayleigh quotient seen so far.
        scale = jnp.maximum(jnp.max(jnp.abs(alphas)), jnp.finfo(dtype).tiny)
        broke = beta <= 1e3 * jnp.finfo(dtype).eps * scale
        w = jnp.where(broke, fresh, w)
        betas = betas.at[i].set(jnp.where(broke, 0.0, beta))
        # w is 0 only at the last step when m = n, whose row goes unused.
        norm = jnp.maximum(jnp.linalg.norm(w), jnp.finfo(dtype).tiny)
        return Q.at[i + 1].set(w / norm), alphas, betas

    state = (Q, jnp.zeros(m, dtype), jnp.zeros(m, dtype))
    Q, alphas, betas = jax.lax.fori_loop(0, m, step, state)
    return Lanczos(Q[:m], alphas, betas)


@partial(jax.jit, static_argnums=(0, 1, 2))
def _top_eigenpairs(loss_fn, k, m, W, key, *args):
    def matvec(v):
        return hvp(loss_fn, W, v.reshape(W.shape), *args).ravel()

    v0 = jax.random.normal(key, (W.size,), W.dtype)
    krylov = lanczos(matvec, v0, m, key=key)
    theta, S = jnp.linalg.eigh(krylov.tridiagonal())  # ascending
    theta, S = theta[::-1][:k], S[:, ::-1][:, :k]
    vectors = S.T @ krylov.basis  # (k, n) Ritz vectors
    vectors = vectors / jnp.linalg.norm(vectors, axis=1, keepdims=True)
    Hv = jax.vmap(matvec)(vectors)
    residuals = jnp.linalg.norm(Hv - theta[:, None] * vectors, axis=1)
    return Eigenpairs(theta, vectors.reshape(k, *W.shape), residuals)


class TraceEstimate(NamedTuple):
    """Hutchinson's trace estimate with its 95% confidence interval."""

    estimate: jax.Array  # () the mean of z^T H z over the probes
    std_error: jax.Array  # () the probes' standard deviation / sqrt(num_probes)
    low: jax.Array  # () 95% interval (Student's t over the probes)
    high: jax.Array  # ()
    samples: jax.Array  # (num_probes,) each probe's z^T H z


def hutchinson_trace(loss_fn, W, *args, key, num_probes: int = 100, batch_size=None):
    """The Hessian's trace, ``E[z^T H z]`` for Rademacher ``z`` (+-1 entries).

    Each probe is one Hessian-vector product, vmapped (``batch_size`` probes at
    a time when memory is short). The probes are independent, so their spread
    gives the interval: ``mean +- t_{0.975, n-1} * std / sqrt(n)``.

    Args:
      loss_fn: ``loss_fn(W, *args) -> scalar``. W: ``(C, D)``.
      *args: the rest of ``loss_fn``'s arguments.
      key: ``jax.random`` key for the probes.
      num_probes: probes, at least 2 (the interval needs a spread).
      batch_size: probes per vmapped batch (default: all at once).
    Returns:
      :class:`TraceEstimate`.
    """
    _check_sizes(num_probes=(num_probes, 2, np.iinfo(np.int32).max))
    t = float(scipy.stats.t.ppf(0.975, num_probes - 1))
    return _hutchinson(loss_fn, num_probes, batch_size, W, key, t, *args)


@partial(jax.jit, static_argnums=(0, 1, 2))
def _hutchinson(loss_fn, num_probes, batch_size, W, key, t, *args):
    Z = jax.random.rademacher(key, (num_probes, *W.shape), W.dtype)

    def quadratic_form(z):
        return jnp.vdot(z, hvp(loss_fn, W, z, *args))

    samples = jax.lax.map(quadratic_form, Z, batch_size=batch_size or num_probes)
    mean = jnp.mean(samples)
    std_error = jnp.std(samples, ddof=1) / np.sqrt(num_probes)
    return TraceEstimate(
        mean, std_error, mean - t * std_error, mean + t * std_error, samples
    )


class StepPredictions(NamedTuple):
    """The quadratic model of one step ``W - t g`` along the gradient ``g``."""

    loss: jax.Array  # () L(W)
    gradient_norm_sq: jax.Array  # () |g|^2, the first-order slope -dL/dt at t = 0
    curvature: jax.Array  # () g^T H g, the second derivative of L(W - t g) at t = 0
    best_step: jax.Array  # () |g|^2 / g^T H g, the model's minimum
    crossover: jax.Array  # () 2 |g|^2 / g^T H g, where the model is back at L(W)
    lambda_max: jax.Array  # () the Hessian's largest eigenvalue (Lanczos)
    stability_limit: jax.Array  # () 2 / lambda_max: gradient descent diverges above it


def step_predictions(loss_fn, W, *args, key, num_iters: int = 30):
    """What the curvature predicts for one gradient step from ``W``.

    ``L(W - t g) = L - t |g|^2 + t^2/2 g^T H g + O(t^3)``: the model is
    lowest at ``t = |g|^2 / g^T H g`` and back at ``L`` at twice that. Where
    the loss stops being quadratic the real crossover moves: before the
    model's when the third derivative along ``-g`` is positive (CIFAR-10
    softmax at its start), beyond it when negative (softmax grows only
    linearly far out). Full-batch gradient descent
    on the quadratic model is stable only for ``t < 2 / lambda_max``.

    Args:
      loss_fn, W, *args: as in :func:`hvp`.
      key: the Lanczos start for ``lambda_max``.
      num_iters: Lanczos iterations for ``lambda_max``.
    Returns:
      :class:`StepPredictions`.
    """
    _check_sizes(num_iters=(num_iters, 1, W.size))
    return _step_predictions(loss_fn, num_iters, W, key, *args)


@partial(jax.jit, static_argnums=(0, 1))
def _step_predictions(loss_fn, num_iters, W, key, *args):
    loss, g = jax.value_and_grad(loss_fn)(W, *args)
    g_sq = jnp.vdot(g, g)
    curvature = jnp.vdot(g, hvp(loss_fn, W, g, *args))
    lam = _top_eigenpairs(loss_fn, 1, num_iters, W, key, *args).eigenvalues[0]
    best = g_sq / curvature
    return StepPredictions(loss, g_sq, curvature, best, 2 * best, lam, 2 / lam)


class ClosedForm(NamedTuple):
    """The softmax Hessian at ``W = 0``, from the data alone."""

    hessian: np.ndarray | None  # (C D, C D), or None when not asked for
    lambda_max: float
    trace: float


def softmax_at_zero(X, num_classes: int, reg: float = 0.0, *, hessian: bool = False):
    """The softmax loss's Hessian at ``W = 0``, in closed form (float64 numpy).

    At ``W = 0`` every probability is ``1/C``, so the Hessian of the scores is
    ``A = (I - 11^T/C) / C`` for every example, and in ``W.ravel()``'s
    row-major order ``H = A kron (X^T X / N) + 2 reg I``. ``A``'s eigenvalues
    are ``1/C`` (``C - 1`` times) and 0, so ``lambda_max = lambda_max(X^T X /
    N) / C + 2 reg`` and ``trace = (C - 1)/C trace(X^T X / N) + 2 reg C D``.

    Args:
      X: ``(N, D)`` examples. num_classes: ``C``. reg: L2 strength.
      hessian: also form the ``(C D, C D)`` matrix (small ``C D`` only).
    Returns:
      :class:`ClosedForm`.
    """
    X = np.asarray(X, np.float64)
    n, d = X.shape
    C = num_classes
    second_moment = X.T @ X / n
    top = np.linalg.eigvalsh(second_moment)[-1]
    lambda_max = top / C + 2 * reg
    trace = (C - 1) / C * np.trace(second_moment) + 2 * reg * C * d
    H = None
    if hessian:
        A = (np.eye(C) - np.ones((C, C)) / C) / C
        H = np.kron(A, second_moment) + 2 * reg * np.eye(C * d)
    return ClosedForm(H, float(lambda_max), float(trace))
