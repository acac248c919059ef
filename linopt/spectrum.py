"""The Hessian's whole spectrum, its top along a path, and its per-class blocks.

Every routine takes ``loss_fn(W, *args) -> scalar`` with the data in
``args``, as :mod:`linopt.curvature` does, and never forms the Hessian: each
is Hessian-vector products (:func:`linopt.curvature.hvp`) fed to Lanczos
(:func:`linopt.curvature.lanczos`), jitted with ``loss_fn`` and the sizes
static, so a new ``W``, ``reg`` or key does not recompile.

- :func:`spectral_density`: stochastic Lanczos quadrature (Golub and Meurant;
  Ubaru, Chen and Saad 2017; Ghorbani, Krishnan and Xiao 2019). From a
  unit probe ``v``, ``m`` Lanczos steps give a tridiagonal ``T`` whose
  eigenvalues ``theta_j`` (Ritz nodes) and squared first eigenvector
  components ``tau_j`` (weights, summing to 1) are the ``m``-point Gauss
  quadrature of ``v^T f(H) v``: exact for polynomials of degree below
  ``2m``. For Rademacher ``v / sqrt(n)``, ``E[v^T H^k v] / n = tr(H^k) / n``,
  so the nodes and weights averaged over probes are an unbiased estimate of
  the spectral density's moments; :func:`moment` gives one with its
  standard error, :func:`smoothed_density` the density on a grid.
- :func:`sharpness`: ``lambda_max`` at each of a batch of weights (a path),
  one vmapped program.
- :func:`class_blocks`: for a linear classifier ``W (C, D)``, the Hessian in
  ``W.ravel()``'s order is ``C x C`` blocks of ``D x D``; block ``(c, c')``
  maps row ``c'`` of a direction to row ``c`` of the product, so one product
  with a direction nonzero in row ``c'`` only gives column ``c'`` of blocks.
  The ``C x C`` traces (exact from ``D`` basis directions a column, or
  Hutchinson's estimate) and each diagonal block's top eigenvalue (Lanczos on
  the block-restricted product) follow.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from linopt.curvature import _check_sizes, hvp, lanczos


class Density(NamedTuple):
    """Each probe's Gauss quadrature of the Hessian's spectral density."""

    nodes: jax.Array  # (P, m) Ritz values, ascending per probe
    weights: jax.Array  # (P, m) squared first components; each row sums to 1


def spectral_density(
    loss_fn, W, *args, key, num_probes: int = 10, num_iters: int = 80, batch_size=None
) -> Density:
    """The Hessian's spectral density at ``W`` by stochastic Lanczos quadrature.

    Each probe is a Rademacher vector and ``num_iters`` Hessian-vector
    products (Lanczos with full reorthogonalization; at an invariant subspace
    it restarts, and the restart's nodes get weight 0). The probes are
    vmapped, ``batch_size`` at a time when memory is short.

    Args:
      loss_fn: ``loss_fn(W, *args) -> scalar``. W: ``(C, D)``.
      *args: the rest of ``loss_fn``'s arguments (data, reg).
      key: ``jax.random`` key of the probes.
      num_probes: independent probes, at least 1 (2 for a standard error).
      num_iters: Lanczos steps a probe, ``<= W.size``: nodes a probe.
      batch_size: probes per vmapped batch (default: all at once).
    Returns:
      :class:`Density`; the density is ``mean_p sum_j weights[p, j]
      delta(t - nodes[p, j])``.
    """
    _check_sizes(
        num_iters=(num_iters, 1, W.size),
        num_probes=(num_probes, 1, np.iinfo(np.int32).max),
    )
    return _density(loss_fn, num_probes, num_iters, batch_size, W, key, *args)


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _density(loss_fn, num_probes, m, batch_size, W, key, *args):
    def matvec(v):
        return hvp(loss_fn, W, v.reshape(W.shape), *args).ravel()

    def probe(probe_key):
        v0 = jax.random.rademacher(probe_key, (W.size,), W.dtype)
        krylov = lanczos(matvec, v0, m, key=probe_key)
        theta, S = jnp.linalg.eigh(krylov.tridiagonal())
        return Density(theta, S[0] ** 2)

    keys = jax.random.split(key, num_probes)
    return jax.lax.map(probe, keys, batch_size=batch_size or num_probes)


class Moment(NamedTuple):
    """``sum_j weights * nodes^k`` per probe, and their mean: ``tr(H^k) / n``."""

    estimate: jax.Array  # () the mean over the probes
    std_error: jax.Array  # () their standard deviation / sqrt(P); NaN for P = 1
    samples: jax.Array  # (P,) each probe's quadrature, v^T H^k v / |v|^2


def moment(density: Density, k: int) -> Moment:
    """The ``k``-th moment of the density, an estimate of ``tr(H^k) / n``.

    A probe's quadrature is exact (up to rounding) for ``k < 2 m``, so its
    only error is the probes' Monte Carlo one, which ``std_error`` measures.
    """
    samples = jnp.sum(density.weights * density.nodes**k, axis=1)
    num_probes = samples.shape[0]
    spread = jnp.std(samples, ddof=1) if num_probes > 1 else jnp.nan
    return Moment(jnp.mean(samples), spread / np.sqrt(num_probes), samples)


def smoothed_density(density: Density, grid, sigma: float | None = None):
    """The density convolved with a Gaussian of width ``sigma``, on ``grid``.

    Args:
      density: from :func:`spectral_density`.
      grid: ``(G,)`` eigenvalues to evaluate at.
      sigma: the Gaussian's standard deviation (default: 1% of the nodes'
        range); its integral over a grid that holds the nodes is about 1.
    Returns:
      ``(G,)`` the smoothed density at each grid point.
    """
    nodes, grid = jnp.ravel(density.nodes), jnp.asarray(grid, density.nodes.dtype)
    weights = jnp.ravel(density.weights) / density.weights.shape[0]
    if sigma is None:
        spread = jnp.max(nodes) - jnp.min(nodes)
        sigma = jnp.maximum(0.01 * spread, jnp.finfo(nodes.dtype).tiny)
    return _smooth(nodes, weights, grid, sigma)


@jax.jit
def _smooth(nodes, weights, grid, sigma):
    def at(t):  # 256 grid points at a time: (P m, 256) Gaussians in memory
        z = (t - nodes) / sigma
        return weights @ jnp.exp(-0.5 * z * z)

    return jax.lax.map(at, grid, batch_size=256) / (sigma * np.sqrt(2 * np.pi))


def sharpness(loss_fn, Ws, *args, key, num_iters: int = 30):
    """``lambda_max`` of the Hessian at each of ``Ws``, one vmapped Lanczos.

    Each is what :func:`linopt.curvature.top_eigenpairs` with the same key
    and ``num_iters`` gives at that ``W`` (the same start for every ``W``).

    Args:
      loss_fn: ``loss_fn(W, *args) -> scalar``.
      Ws: ``(B, C, D)`` weights, e.g. the runs of a sweep at one step.
      *args: the rest of ``loss_fn``'s arguments, shared by every ``W``.
      key: the Lanczos start.
      num_iters: Hessian-vector products a ``W``, ``<= C D``.
    Returns:
      ``(B,)`` the largest Ritz value at each ``W``.
    """
    _check_sizes(num_iters=(num_iters, 1, Ws[0].size))
    return _sharpness(loss_fn, num_iters, Ws, key, *args)


@partial(jax.jit, static_argnums=(0, 1))
def _sharpness(loss_fn, m, Ws, key, *args):
    def one(W):
        def matvec(v):
            return hvp(loss_fn, W, v.reshape(W.shape), *args).ravel()

        v0 = jax.random.normal(key, (W.size,), W.dtype)
        return jnp.linalg.eigvalsh(lanczos(matvec, v0, m, key=key).tridiagonal())[-1]

    return jax.vmap(one)(Ws)


class Blocks(NamedTuple):
    """The per-class blocks ``H_{c c'}`` (``D x D``) of a linear classifier."""

    traces: jax.Array  # (C, C) tr H_{c c'}: exact, or Hutchinson's estimate
    std_error: jax.Array  # (C, C) of the estimate; 0 when exact
    top_eigenvalues: jax.Array  # (C,) lambda_max(H_{c c}) by Lanczos


def class_blocks(
    loss_fn, W, *args, key, num_iters: int = 30, num_probes=None, batch_size=None
) -> Blocks:
    """Block traces and diagonal blocks' top eigenvalues of the Hessian at ``W``.

    A direction ``e_{c'} (x) z`` (row ``c'`` is ``z``, the rest 0) times
    ``H`` is ``H_{c c'} z`` in each row ``c``, so ``z^T H_{c c'} z`` for all
    ``c`` costs one product, and ``C`` products (vmapped) a probe ``z`` give
    every block. ``num_probes=None``: ``z`` runs over the ``D`` basis vectors
    and the traces are exact (``C D`` products, the Hessian's size, but
    never more than ``batch_size * C`` of its columns in memory); else
    ``num_probes`` Rademacher ``z`` give Hutchinson's estimate (``C``
    products a probe). Each diagonal block's top eigenvalue is ``num_iters``
    steps of Lanczos on ``v -> H_{c c} v`` (one product each), vmapped over
    ``c``.

    Args:
      loss_fn: ``loss_fn(W, *args) -> scalar``. W: ``(C, D)``.
      *args: the rest of ``loss_fn``'s arguments (data, reg).
      key: Lanczos starts (and the probes, if any).
      num_iters: Lanczos steps a diagonal block, ``<= D``.
      num_probes: None (exact traces) or at least 2.
      batch_size: probes per vmapped batch (default: all at once).
    Returns:
      :class:`Blocks`.
    """
    C, D = W.shape
    _check_sizes(num_iters=(num_iters, 1, D))
    if num_probes is not None:
        _check_sizes(num_probes=(num_probes, 2, np.iinfo(np.int32).max))
    return _blocks(loss_fn, num_iters, num_probes, batch_size, W, key, *args)


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _blocks(loss_fn, m, num_probes, batch_size, W, key, *args):
    C, D = W.shape
    probe_key, lanczos_key = jax.random.split(key)

    def column_of_blocks(z):  # (D,) -> (C, C): [c, c'] = z^T H_{c c'} z
        V = jnp.eye(C, dtype=W.dtype)[:, :, None] * z[None, None, :]  # V[c'] rows
        HV = jax.vmap(lambda V: hvp(loss_fn, W, V, *args))(V)  # (C', C, D)
        return jnp.einsum("kcd,d->ck", HV, z)

    if num_probes is None:  # z = e_d: the sum is the trace, exactly
        Z, scale = jnp.eye(D, dtype=W.dtype), D
    else:
        Z, scale = jax.random.rademacher(probe_key, (num_probes, D), W.dtype), 1
    samples = jax.lax.map(column_of_blocks, Z, batch_size=batch_size or len(Z))
    traces = scale * jnp.mean(samples, axis=0)
    if num_probes is None:
        std_error = jnp.zeros_like(traces)
    else:
        std_error = jnp.std(samples, axis=0, ddof=1) / np.sqrt(num_probes)

    def top(c, block_key):  # Lanczos on v -> H_{c c} v
        def matvec(v):
            return hvp(loss_fn, W, jnp.zeros_like(W).at[c].set(v), *args)[c]

        v0 = jax.random.normal(block_key, (D,), W.dtype)
        T = lanczos(matvec, v0, m, key=block_key).tridiagonal()
        return jnp.linalg.eigvalsh(T)[-1]

    keys = jax.random.split(lanczos_key, C)
    return Blocks(traces, std_error, jax.vmap(top)(jnp.arange(C), keys))
