"""The Hessian's spectrum on digits in float64 (``linopt.spectrum``).

The judges are independent of Lanczos: ``jax.hessian`` (the whole matrix),
numpy's ``eigvalsh`` and traces of its powers and blocks, and the closed form
of the softmax Hessian at ``W = 0``. Stochastic estimates are held to their
own Monte Carlo error: ``Z`` standard errors, ``Z`` the normal quantile of a
two-sided 1e-4 (a correct estimate fails about once in 10,000 runs).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from linopt import curvature, data, losses, spectrum

REG = 1e-3
Z = float(scipy.stats.norm.ppf(1 - 0.5e-4))  # about 3.9


@pytest.fixture(scope="module")
def problem():
    """Digits in float64, and a softmax ``W`` after 100 steps of gradient descent."""
    with jax.enable_x64(True):
        ds = data.load("digits", dtype=np.float64)
        X, y = jnp.asarray(ds.X_train, jnp.float64), jnp.asarray(ds.y_train)
        grad = jax.grad(losses.softmax_loss)

        @jax.jit
        def descend(W):
            return jax.lax.fori_loop(
                0, 100, lambda _, W: W - 0.05 * grad(W, X, y, REG), W
            )

        W = np.asarray(descend(jnp.zeros((ds.num_classes, ds.dim), jnp.float64)))
        return np.asarray(X), np.asarray(y), W


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def exact(W, X, y, reg=REG):
    W = jnp.asarray(W)
    return np.asarray(curvature.exact_hessian(losses.softmax_loss, W, X, y, reg))


@pytest.fixture(scope="module")
def spectra(problem):
    """At the trained ``W`` and at 0: the exact eigenvalues, and one density
    each (100 probes of 80 steps, one compiled program for both)."""
    X, y, W = problem
    out = {}
    with jax.enable_x64(True):
        for name, point in (("trained", W), ("zero", np.zeros_like(W))):
            d = spectrum.spectral_density(
                losses.softmax_loss,
                point,
                X,
                y,
                REG,
                key=jax.random.key(0),
                num_probes=100,
                num_iters=80,
            )
            out[name] = np.linalg.eigvalsh(exact(point, X, y)), d
    return out


@pytest.mark.parametrize("at", ["trained", "zero"])
def test_the_moments_are_the_traces_of_powers(spectra, at):
    """``sum_j tau_j theta_j^k`` over probes estimates ``tr(H^k) / n``.

    At ``W = 0`` the Hessian has only about ``D + 1`` distinct eigenvalues, so
    each probe's Krylov space runs out before 80 steps and Lanczos restarts:
    the restart's nodes must get no weight.
    """
    eig, d = spectra[at]
    assert d.nodes.shape == d.weights.shape == (100, 80)
    weights = np.asarray(d.weights)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    for k in (1, 2):
        truth = np.mean(eig**k)
        m = spectrum.moment(d, k)
        np.testing.assert_allclose(m.estimate, np.mean(m.samples), rtol=1e-14)
        assert 0 < m.std_error < 0.1 * truth  # a test that says something
        assert abs(m.estimate - truth) <= Z * m.std_error, (k, m.estimate, truth)
    zeroth = spectrum.moment(d, 0)
    np.testing.assert_allclose(zeroth.samples, 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("at", ["trained", "zero"])
def test_the_largest_node_is_lambda_max(spectra, at):
    eig, d = spectra[at]
    np.testing.assert_allclose(np.max(d.nodes), eig[-1], rtol=1e-6)
    # Every probe's own largest node has converged, not just the best one.
    np.testing.assert_allclose(d.nodes[:, -1], eig[-1], rtol=1e-6)


def test_the_smoothed_density_is_a_density_with_the_same_mean(spectra):
    _, d = spectra["trained"]
    lo, hi = float(np.min(d.nodes)), float(np.max(d.nodes))
    sigma = 0.01 * (hi - lo)
    grid = np.linspace(lo - 10 * sigma, hi + 10 * sigma, 4001)
    rho = np.asarray(spectrum.smoothed_density(d, grid, sigma))
    assert rho.shape == grid.shape and np.all(rho >= 0)
    np.testing.assert_allclose(np.trapezoid(rho, grid), 1.0, rtol=1e-6)
    mean = np.trapezoid(rho * grid, grid)
    np.testing.assert_allclose(mean, spectrum.moment(d, 1).estimate, rtol=1e-6)
    # The default width is 1% of the nodes' range.
    default = np.asarray(spectrum.smoothed_density(d, grid))
    np.testing.assert_allclose(default, rho, rtol=1e-10, atol=1e-12)


def blocks_of(H, C, D):
    """``(C, C)`` traces and ``(C,)`` diagonal blocks' top eigenvalues of ``H``."""
    B = H.reshape(C, D, C, D)
    traces = np.einsum("cdkd->ck", B)
    tops = np.array([np.linalg.eigvalsh(B[c, :, c, :])[-1] for c in range(C)])
    return B, traces, tops


def test_class_blocks_equal_the_exact_hessians_blocks(problem):
    X, y, W = problem
    C, D = W.shape
    _, traces, tops = blocks_of(exact(W, X, y), C, D)
    b = spectrum.class_blocks(
        losses.softmax_loss, W, X, y, REG, key=jax.random.key(0), num_iters=40
    )
    np.testing.assert_allclose(b.traces, traces, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(b.top_eigenvalues, tops, rtol=1e-10)
    assert np.all(np.asarray(b.std_error) == 0)
    np.testing.assert_allclose(np.trace(b.traces), np.trace(exact(W, X, y)))
    # In batches of probes, the same.
    batched = spectrum.class_blocks(
        losses.softmax_loss,
        W,
        X,
        y,
        REG,
        key=jax.random.key(0),
        num_iters=40,
        batch_size=8,
    )
    np.testing.assert_allclose(batched.traces, traces, rtol=1e-10, atol=1e-10)


def test_the_diagonal_blocks_at_zero_are_the_closed_form(problem):
    """At ``W = 0``: ``H_{cc} = (1/C)(1 - 1/C) M + 2 reg I``, ``H_{cc'} = -M / C^2``
    (``c != c'``), ``M = X^T X / N``."""
    X, y, W = problem
    C, D = W.shape
    zero = np.zeros_like(W)
    B, traces, tops = blocks_of(exact(zero, X, y), C, D)
    M = X.T @ X / len(X)
    diagonal = (1 / C) * (1 - 1 / C) * M + 2 * REG * np.eye(D)
    for c in range(C):
        np.testing.assert_allclose(B[c, :, c, :], diagonal, rtol=0, atol=1e-12)
        np.testing.assert_allclose(B[c, :, (c + 1) % C, :], -M / C**2, atol=1e-12)
    b = spectrum.class_blocks(
        losses.softmax_loss, zero, X, y, REG, key=jax.random.key(1), num_iters=D
    )
    want = np.full((C, C), -np.trace(M) / C**2)
    np.fill_diagonal(want, np.trace(diagonal))
    np.testing.assert_allclose(b.traces, want, rtol=1e-10, atol=1e-10)
    top = (1 / C) * (1 - 1 / C) * np.linalg.eigvalsh(M)[-1] + 2 * REG
    np.testing.assert_allclose(b.top_eigenvalues, top, rtol=1e-10)
    np.testing.assert_allclose(tops, top, rtol=1e-10)


def test_hutchinson_block_traces_hold_the_exact_ones(problem):
    X, y, W = problem
    C, D = W.shape
    _, traces, tops = blocks_of(exact(W, X, y), C, D)
    b = spectrum.class_blocks(
        losses.softmax_loss,
        W,
        X,
        y,
        REG,
        key=jax.random.key(2),
        num_iters=40,
        num_probes=100,
    )
    err = np.asarray(b.std_error)
    assert np.all(err > 0)
    assert np.all(np.abs(np.asarray(b.traces) - traces) <= Z * err)
    np.testing.assert_allclose(b.top_eigenvalues, tops, rtol=1e-10)


def test_sharpness_is_top_eigenpairs_at_each_w(problem):
    X, y, W = problem
    Ws = np.stack([W, np.zeros_like(W), 0.5 * W])
    got = spectrum.sharpness(
        losses.softmax_loss, Ws, X, y, REG, key=jax.random.key(3), num_iters=30
    )
    assert got.shape == (3,)
    for W_i, value in zip(Ws, np.asarray(got), strict=True):
        pairs = curvature.top_eigenpairs(
            losses.softmax_loss, W_i, X, y, REG, key=jax.random.key(3), num_iters=30
        )
        np.testing.assert_allclose(value, pairs.eigenvalues[0], rtol=1e-12)
    np.testing.assert_allclose(
        got[0], np.linalg.eigvalsh(exact(W, X, y))[-1], rtol=1e-8
    )


def test_compiles_once_per_shape(problem):
    X, y, W = problem
    loss = losses.softmax_loss
    calls = {
        spectrum._density: lambda W, reg, key: spectrum.spectral_density(
            loss, W, X, y, reg, key=key, num_probes=4, num_iters=10
        ),
        spectrum._blocks: lambda W, reg, key: spectrum.class_blocks(
            loss, W, X, y, reg, key=key, num_iters=10, num_probes=4
        ),
        spectrum._sharpness: lambda W, reg, key: spectrum.sharpness(
            loss, jnp.stack([W, W]), X, y, reg, key=key, num_iters=10
        ),
    }
    for jitted, call in calls.items():
        jax.block_until_ready(call(W, 1e-3, jax.random.key(0)))
        before = jitted._cache_size()
        jax.block_until_ready(call(0.5 * W + 0.1, 0.25, jax.random.key(7)))
        assert jitted._cache_size() == before, jitted


def test_bad_sizes_say_what_to_do(problem):
    X, y, W = problem
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="num_iters"):
        spectrum.spectral_density(
            losses.softmax_loss, W, X, y, REG, key=key, num_iters=W.size + 1
        )
    with pytest.raises(ValueError, match="num_probes"):
        spectrum.spectral_density(
            losses.softmax_loss, W, X, y, REG, key=key, num_probes=0
        )
    with pytest.raises(ValueError, match="num_iters"):
        spectrum.class_blocks(
            losses.softmax_loss, W, X, y, REG, key=key, num_iters=W.shape[1] + 1
        )
    with pytest.raises(ValueError, match="num_probes"):
        spectrum.class_blocks(losses.softmax_loss, W, X, y, REG, key=key, num_probes=1)
