"""Losses against a plain numpy implementation of the lecture's formulas, and
the numpy references (:mod:`linopt.reference`) against linopt's losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linopt import losses, reference


def numpy_svm(W, X, y, reg, delta=1.0):
    # The lecture's L_i, one example at a time.
    total = 0.0
    for i in range(X.shape[0]):
        s = W @ X[i]
        for j in range(W.shape[0]):
            if j != y[i]:
                total += max(0.0, s[j] - s[y[i]] + delta)
    return total / X.shape[0] + reg * np.sum(W * W)


def numpy_softmax(W, X, y, reg):
    s = X @ W.T
    s = s - s.max(axis=1, keepdims=True)
    log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean() + reg * np.sum(W * W)


def problem(dtype, n=40, d=17, c=5, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((c, d)).astype(dtype),
        rng.standard_normal((n, d)).astype(dtype),
        rng.integers(0, c, n).astype(np.int32),
    )


@pytest.mark.parametrize(
    "name, reference", [("svm", numpy_svm), ("softmax", numpy_softmax)]
)
def test_loss_matches_numpy_float32(name, reference):
    W, X, y = problem(np.float32)
    got = losses.LOSSES[name](W, X, y, 0.1)
    want = reference(W.astype(np.float64), X.astype(np.float64), y, 0.1)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    "name, reference", [("svm", numpy_svm), ("softmax", numpy_softmax)]
)
def test_loss_matches_numpy_float64(name, reference):
    with jax.enable_x64(True):
        W, X, y = problem(np.float64)
        got = losses.LOSSES[name](jnp.asarray(W), jnp.asarray(X), y, 0.1)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, reference(W, X, y, 0.1), rtol=1e-12)


def test_sanity_losses_with_tiny_weights():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 3073)).astype(np.float32) * 60
    y = rng.integers(0, 10, 500).astype(np.int32)
    W = 1e-7 * rng.standard_normal((10, 3073)).astype(np.float32)
    assert abs(float(losses.svm_loss(W, X, y)) - 9.0) < 0.05
    assert abs(float(losses.softmax_loss(W, X, y)) - np.log(10)) < 0.01


def test_softmax_is_stable_for_huge_scores():
    W, X, y = problem(np.float32)
    value = losses.softmax_loss(W * 1e4, X, y)
    assert np.isfinite(value)
    np.testing.assert_allclose(
        value,
        numpy_softmax(W.astype(np.float64) * 1e4, X.astype(np.float64), y, 0.0),
        rtol=1e-5,
    )


@pytest.mark.parametrize("name", ["svm", "softmax"])
def test_hand_derived_gradient_equals_jax_grad_float64(name):
    with jax.enable_x64(True):
        W, X, y = problem(np.float64)
        margins = X @ W.T - (X @ W.T)[np.arange(len(y)), y][:, None] + 1.0
        assert np.min(np.abs(margins)) > 1e-6  # away from kinks
        want = jax.grad(losses.LOSSES[name])(W, X, y, 0.3)
        got = losses.GRADIENTS[name](W, X, y, 0.3)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_svm_gradient_is_zero_at_a_tie():
    # A margin of exactly 0 has gradient 0, as in the note's strict ">".
    W = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    X = jnp.array([[1.0, 0.0]])
    y = jnp.array([0], dtype=jnp.int32)
    assert float(losses.svm_loss(W, X, y)) == 0.0
    np.testing.assert_array_equal(jax.grad(losses.svm_loss)(W, X, y), 0.0)
    np.testing.assert_array_equal(losses.svm_gradient(W, X, y), 0.0)


def test_accuracy():
    W = jnp.eye(3)
    X = jnp.eye(3)
    assert float(losses.accuracy(W, X, jnp.array([0, 1, 1]))) == pytest.approx(2 / 3)


def test_unknown_loss_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of"):
        losses.get("hinge2")


@pytest.mark.parametrize("loss", ["svm", "softmax"])
def test_class_major_losses_are_the_per_example_losses(loss):
    rng = np.random.default_rng(0)
    S = rng.standard_normal((3, 5, 40)).astype(np.float32)  # (P, C, N)
    y = rng.integers(0, 5, 40).astype(np.int32)
    got = losses.per_example_class_major(loss, S, y)
    want = [losses.PER_EXAMPLE[loss](s.T, y) for s in S]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_numpy_reference_is_linopts_loss_and_gradient():
    """The benchmark compares equal work: the references compute linopt's SVM."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 9)).astype(np.float32)
    y = rng.integers(0, 4, 64).astype(np.int32)
    W = rng.standard_normal((4, 9)).astype(np.float32)  # linopt's (C, D)
    loss, grad = reference.svm_loss_and_gradient(W.T.copy(), X, y, 0.1)
    want_loss, want_grad = jax.value_and_grad(losses.svm_loss)(
        jnp.asarray(W), jnp.asarray(X), jnp.asarray(y), 0.1
    )
    assert loss == pytest.approx(float(want_loss), rel=1e-5)
    assert reference.svm_loss(W.T.copy(), X, y, 0.1) == pytest.approx(loss)
    np.testing.assert_allclose(grad.T, want_grad, rtol=1e-5, atol=1e-6)
