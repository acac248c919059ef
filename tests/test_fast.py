"""Fast paths against the readable ones: same proposals, decisions, params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import references
from linopt import data, fast, losses, strategies


@pytest.fixture(scope="module")
def ds():
    return data.make_synthetic(
        num_train=300, num_val=10, num_test=10, dim=12, num_classes=4, seed=3
    )


LOCAL = dict(num_steps=280, step_size=0.05, init_scale=0.01, num_classes=4, reg=0.01)


@pytest.mark.parametrize("loss", ["svm", "softmax"])
@pytest.mark.parametrize("block", [1, 7, 40])
def test_blocked_local_search_makes_the_readable_decisions(ds, loss, block):
    key = jax.random.key(1)
    readable = strategies.random_local_search(
        ds.X_train, ds.y_train, key=key, loss=loss, **LOCAL
    )
    blocked = fast.random_local_search(
        ds.X_train, ds.y_train, key=key, loss=loss, block=block, **LOCAL
    )
    # Continuous data: no two losses tie to within rounding, so every
    # decision is the same; losses and weights agree to float32 rounding.
    accepted = readable.metrics["accepted"]
    assert 0 < accepted.sum() < len(accepted)
    np.testing.assert_array_equal(blocked.metrics["accepted"], accepted)
    np.testing.assert_allclose(
        blocked.metrics["proposal_loss"], readable.metrics["proposal_loss"], rtol=1e-6
    )
    np.testing.assert_allclose(blocked.losses, readable.losses, rtol=1e-6)
    np.testing.assert_allclose(blocked.params, readable.params, rtol=1e-6, atol=1e-7)
    assert blocked.num_steps == readable.num_steps == 280
    assert blocked.num_loss_evals == readable.num_loss_evals == 280
    assert blocked.losses.shape == blocked.metrics["accepted"].shape == (280,)


def test_blocked_local_search_replays_the_lectures_loop(
    ds, check_lectures_local_search
):
    key = jax.random.key(2)
    args = dict(num_steps=60, step_size=0.05, init_scale=0.01, num_classes=4)
    r = fast.random_local_search(ds.X_train, ds.y_train, key=key, block=20, **args)
    check_lectures_local_search(r, key, ds.X_train, ds.y_train, **args)


def test_blocked_local_search_does_not_depend_on_chunking(ds):
    key = jax.random.key(3)
    args = dict(key=key, num_steps=60, block=10, step_size=0.05, num_classes=4)
    one = fast.random_local_search(ds.X_train, ds.y_train, chunk_size=1, **args)
    all_ = fast.random_local_search(ds.X_train, ds.y_train, chunk_size=6, **args)
    np.testing.assert_array_equal(one.params, all_.params)
    np.testing.assert_array_equal(one.losses, all_.losses)


def test_block_is_lowered_to_a_divisor(ds):
    r = fast.random_local_search(
        ds.X_train,
        ds.y_train,
        key=jax.random.key(0),
        num_steps=28,
        block=10,
        num_classes=4,
    )
    assert r.num_steps == 28 and r.losses.shape == (28,)  # blocks of 7


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
    loss, grad = references.svm_loss_and_gradient(W.T.copy(), X, y, 0.1)
    want_loss, want_grad = jax.value_and_grad(losses.svm_loss)(
        jnp.asarray(W), jnp.asarray(X), jnp.asarray(y), 0.1
    )
    assert loss == pytest.approx(float(want_loss), rel=1e-5)
    assert references.svm_loss(W.T.copy(), X, y, 0.1) == pytest.approx(loss)
    np.testing.assert_allclose(grad.T, want_grad, rtol=1e-5, atol=1e-6)


def test_numpy_references_run_the_lectures_loops(ds):
    X, y = ds.X_train, ds.y_train
    W, history = references.minibatch_sgd(
        X,
        y,
        num_steps=200,
        batch_size=32,
        learning_rate=1e-2,
        reg=1e-3,
        num_classes=4,
    )
    assert W.shape == (ds.dim, 4) and history[-20:].mean() < history[:20].mean()
    best_W, best_loss = references.random_search(
        X, y, num_tries=20, scale=0.1, num_classes=4
    )
    assert best_loss == pytest.approx(references.svm_loss(best_W, X, y))
    W, loss = references.random_local_search(
        X, y, num_steps=50, step_size=0.05, num_classes=4
    )
    assert loss == pytest.approx(references.svm_loss(W, X, y), rel=1e-6)
