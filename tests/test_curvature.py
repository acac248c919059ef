"""Curvature on digits in float64 (``linopt.curvature``).

The independent judges: ``jax.hessian`` (the whole matrix), numpy's
``eigvalsh`` and ``trace`` of it, and the closed forms at ``W = 0`` worked out
from ``X`` alone.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linopt import curvature, data, losses

REG = 1e-3


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


def exact(loss_fn, W, X, y, reg=REG):
    return np.asarray(curvature.exact_hessian(loss_fn, jnp.asarray(W), X, y, reg))


def test_the_trained_w_is_trained_ish(problem):
    X, y, W = problem
    assert losses.softmax_loss(W, X, y, REG) < 0.5 * np.log(
        10
    )  # below the start's ln C


@pytest.mark.parametrize("at_zero", [False, True])
def test_hvp_equals_the_exact_hessian_times_v(problem, at_zero):
    X, y, W = problem
    W = np.zeros_like(W) if at_zero else W
    H = exact(losses.softmax_loss, W, X, y)
    V = np.asarray(jax.random.normal(jax.random.key(3), W.shape, jnp.float64))
    Hv = np.asarray(curvature.hvp(losses.softmax_loss, W, V, X, y, REG))
    np.testing.assert_allclose(Hv.ravel(), H @ V.ravel(), rtol=0, atol=1e-10)
    assert np.abs(H - H.T).max() < 1e-12


def test_top_eigenpairs_equal_numpy_eigvalsh(problem):
    X, y, W = problem
    H = exact(losses.softmax_loss, W, X, y)
    want = np.linalg.eigvalsh(H)[::-1][:5]
    pairs = curvature.top_eigenpairs(
        losses.softmax_loss, W, X, y, REG, key=jax.random.key(0), k=5, num_iters=80
    )
    got = np.asarray(pairs.eigenvalues)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=0)
    # The vectors are eigenvectors of the exact Hessian, unit and orthogonal.
    V = np.asarray(pairs.eigenvectors).reshape(5, -1)
    np.testing.assert_allclose(V @ V.T, np.eye(5), atol=1e-8)
    residual = np.linalg.norm(V @ H - got[:, None] * V, axis=1)
    assert np.all(residual < 1e-6 * got[0]), residual
    np.testing.assert_allclose(
        np.asarray(pairs.residuals), residual, rtol=1e-3, atol=1e-10
    )


def test_at_zero_the_closed_forms_hold(problem):
    X, y, W = problem
    C, D = W.shape
    zero = np.zeros_like(W)
    H = exact(losses.softmax_loss, zero, X, y)
    closed = curvature.softmax_at_zero(X, C, REG, hessian=True)
    np.testing.assert_allclose(H, closed.hessian, rtol=0, atol=1e-12)
    eig = np.linalg.eigvalsh(H)
    np.testing.assert_allclose(eig[-1], closed.lambda_max, rtol=1e-12)
    np.testing.assert_allclose(np.trace(H), closed.trace, rtol=1e-12)
    # Independently: lambda_max(M) / C + 2 reg and (C-1)/C tr(M) + 2 reg C D,
    # M = X^T X / N.
    moment = X.T @ X / len(X)
    np.testing.assert_allclose(
        closed.lambda_max, np.linalg.eigvalsh(moment)[-1] / C + 2 * REG
    )
    np.testing.assert_allclose(
        closed.trace, (C - 1) / C * np.trace(moment) + 2 * REG * C * D
    )

    # Each eigenvalue of X^T X / N appears C - 1 times in H (the top one 9
    # times on digits). One Krylov sequence holds each distinct eigenvalue
    # once; it runs out after at most D + 1 products, Lanczos restarts at a
    # fresh orthogonal vector, and the next sequence finds the copies.
    assert np.allclose(eig[::-1][: C - 1], closed.lambda_max, rtol=1e-10)
    pairs = curvature.top_eigenpairs(
        losses.softmax_loss, zero, X, y, REG, key=jax.random.key(1), k=12, num_iters=150
    )
    np.testing.assert_allclose(pairs.eigenvalues[0], closed.lambda_max, rtol=1e-10)
    np.testing.assert_allclose(pairs.eigenvalues, eig[::-1][:12], rtol=1e-8)

    trace = curvature.hutchinson_trace(
        losses.softmax_loss, zero, X, y, REG, key=jax.random.key(2), num_probes=200
    )
    assert trace.low <= closed.trace <= trace.high


@pytest.mark.parametrize("at_zero", [False, True])
def test_the_hutchinson_interval_holds_the_exact_trace(problem, at_zero):
    X, y, W = problem
    W = np.zeros_like(W) if at_zero else W
    truth = np.trace(exact(losses.softmax_loss, W, X, y))
    est = curvature.hutchinson_trace(
        losses.softmax_loss, W, X, y, REG, key=jax.random.key(0), num_probes=200
    )
    assert est.low <= truth <= est.high, (est.low, truth, est.high)
    assert est.high - est.low < 0.1 * truth  # an interval that says something
    np.testing.assert_allclose(est.estimate, np.mean(est.samples))
    # Across seeds the 95% interval covers the truth about 95% of the time.
    covered = [
        bool(e.low <= truth <= e.high)
        for e in (
            curvature.hutchinson_trace(
                losses.softmax_loss, W, X, y, REG, key=jax.random.key(s), num_probes=50
            )
            for s in range(100, 160)
        )
    ]
    assert np.mean(covered) >= 0.85, np.mean(covered)


@pytest.mark.parametrize("at_zero", [True, False])
def test_step_predictions_follow_the_exact_hessian(problem, at_zero):
    X, y, W = problem
    point = np.zeros_like(W) if at_zero else W
    H = exact(losses.softmax_loss, point, X, y)
    g = np.asarray(jax.grad(losses.softmax_loss)(point, X, y, REG)).ravel()
    p = curvature.step_predictions(
        losses.softmax_loss, point, X, y, REG, key=jax.random.key(0), num_iters=60
    )
    np.testing.assert_allclose(p.gradient_norm_sq, g @ g, rtol=1e-12)
    np.testing.assert_allclose(p.curvature, g @ H @ g, rtol=1e-10)
    np.testing.assert_allclose(p.best_step, (g @ g) / (g @ H @ g), rtol=1e-10)
    np.testing.assert_allclose(p.crossover, 2 * p.best_step, rtol=1e-12)
    np.testing.assert_allclose(p.lambda_max, np.linalg.eigvalsh(H)[-1], rtol=1e-8)
    np.testing.assert_allclose(
        p.stability_limit, 2 / np.linalg.eigvalsh(H)[-1], rtol=1e-8
    )

    # The quadratic model is the loss up to O(t^3): halving t cuts its error 8x.
    def model_error(t):
        after = losses.softmax_loss(point - t * g.reshape(W.shape), X, y, REG)
        return float(after - (p.loss - t * p.gradient_norm_sq + t**2 / 2 * p.curvature))

    t = 0.02 * float(p.best_step)
    assert 7 < model_error(t) / model_error(t / 2) < 9


def test_the_svm_data_term_has_no_curvature(problem):
    """The hinge is piecewise linear: only the L2 term's 2 reg I is left."""
    X, y, W = problem
    C, D = W.shape
    H_svm = exact(losses.svm_loss, W, X, y)
    np.testing.assert_allclose(H_svm, 2 * REG * np.eye(C * D), rtol=0, atol=1e-12)
    pairs = curvature.top_eigenpairs(
        losses.svm_loss, W, X, y, REG, key=jax.random.key(0), k=1, num_iters=5
    )
    np.testing.assert_allclose(pairs.eigenvalues[0], 2 * REG, rtol=1e-10)
    # The softmax at the same W curves thousands of times more.
    H_softmax = exact(losses.softmax_loss, W, X, y)
    assert np.linalg.eigvalsh(H_softmax)[-1] > 1000 * 2 * REG


def test_compiles_once_per_shape(problem):
    X, y, W = problem
    loss = losses.softmax_loss
    calls = {
        curvature.hvp: lambda W, reg, key: curvature.hvp(loss, W, W + 1.0, X, y, reg),
        curvature._top_eigenpairs: lambda W, reg, key: curvature.top_eigenpairs(
            loss, W, X, y, reg, key=key, k=2, num_iters=10
        ),
        curvature._hutchinson: lambda W, reg, key: curvature.hutchinson_trace(
            loss, W, X, y, reg, key=key, num_probes=8
        ),
        curvature._step_predictions: lambda W, reg, key: curvature.step_predictions(
            loss, W, X, y, reg, key=key, num_iters=10
        ),
    }
    for jitted, call in calls.items():
        jax.block_until_ready(call(W, 1e-3, jax.random.key(0)))
        before = jitted._cache_size()
        jax.block_until_ready(call(0.5 * W + 0.1, 0.25, jax.random.key(7)))
        assert jitted._cache_size() == before, jitted


def test_bad_sizes_say_what_to_do(problem):
    X, y, W = problem
    with pytest.raises(ValueError, match="num_iters"):
        curvature.top_eigenpairs(
            losses.softmax_loss,
            W,
            X,
            y,
            REG,
            key=jax.random.key(0),
            num_iters=W.size + 1,
        )
    with pytest.raises(ValueError, match="k must be"):
        curvature.top_eigenpairs(
            losses.softmax_loss, W, X, y, REG, key=jax.random.key(0), k=5, num_iters=3
        )
    with pytest.raises(ValueError, match="num_probes"):
        curvature.hutchinson_trace(
            losses.softmax_loss, W, X, y, REG, key=jax.random.key(0), num_probes=1
        )


def test_the_whole_spectrum_and_a_zero_hessian(problem):
    """Edge cases of Lanczos: num_iters = W.size, and H = 0 (restart every step)."""
    X, y, W = problem
    small, Xs, ys = W[:2, :5], X[:, :5], y % 2
    H = exact(losses.softmax_loss, small, Xs, ys)
    pairs = curvature.top_eigenpairs(
        losses.softmax_loss,
        small,
        Xs,
        ys,
        REG,
        key=jax.random.key(0),
        k=10,
        num_iters=10,
    )
    np.testing.assert_allclose(
        pairs.eigenvalues, np.linalg.eigvalsh(H)[::-1], atol=1e-12
    )
    zero = curvature.top_eigenpairs(
        losses.svm_loss, W, X, y, 0.0, key=jax.random.key(0), k=3, num_iters=10
    )
    assert np.all(np.asarray(zero.eigenvalues) == 0.0)
    assert np.all(np.isfinite(np.asarray(zero.eigenvectors)))
