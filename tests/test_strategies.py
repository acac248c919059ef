"""Strategies: the lecture's algorithms exactly, deterministic, compiled once;
the blocked local search against the readable one; the numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linopt import data, driver, losses, reference, strategies


@pytest.fixture(scope="module")
def ds():
    return data.make_synthetic(
        num_train=300, num_val=50, num_test=50, dim=12, num_classes=4, seed=3
    )


def test_random_search_keeps_the_best_try(ds):
    r = strategies.random_search(
        ds.X_train,
        ds.y_train,
        key=jax.random.key(0),
        num_tries=60,
        scale=0.1,
        population=16,
    )
    assert r.losses.shape == (60,)  # population 15: the largest divisor <= 16
    best = np.argmin(r.losses)
    np.testing.assert_allclose(
        reference.svm_loss(
            r.params.astype(np.float64).T, ds.X_train.astype(np.float64), ds.y_train
        ),
        r.losses[best],
        rtol=1e-5,
    )
    assert r.metrics["best_loss"][-1] == pytest.approx(r.losses.min())
    assert r.num_loss_evals == 60


def test_random_search_population_losses_are_each_tries_loss(ds):
    strategy = strategies.RandomSearch("softmax", population=5)
    params = jnp.zeros((4, ds.dim))
    data_ = driver.Data(jnp.asarray(ds.X_train), jnp.asarray(ds.y_train))
    hparams = strategies.RandomSearchHParams(scale=0.3, reg=0.01)
    state = strategy.init(params, hparams, data_, jax.random.key(0))
    assert isinstance(state, strategies.RandomSearchState)
    assert state.hparams.scale.dtype == jnp.float32
    key = jax.random.key(7)
    _, metrics = strategy.step(state, key, data_)
    tries = 0.3 * jax.random.normal(key, (5, 4, ds.dim))
    want = [losses.softmax_loss(w, ds.X_train, ds.y_train, 0.01) for w in tries]
    np.testing.assert_allclose(metrics["loss"], want, rtol=1e-5)


def test_random_local_search_is_the_lectures_algorithm(ds, check_lectures_local_search):
    key = jax.random.key(1)
    args = dict(num_steps=40, step_size=0.05, init_scale=0.01, num_classes=4)
    r = strategies.random_local_search(ds.X_train, ds.y_train, key=key, **args)
    check_lectures_local_search(r, key, ds.X_train, ds.y_train, **args)


@pytest.mark.parametrize(
    "fn, kwargs",
    [
        (strategies.gradient_descent, {"num_steps": 50}),
        (strategies.minibatch, {"num_steps": 200, "batch_size": 32}),
        (
            strategies.minibatch,
            {"num_steps": 200, "batch_size": 32, "sampling": "epoch"},
        ),
        (strategies.sgd, {"num_steps": 600}),
        (
            strategies.minibatch,
            {
                "num_steps": 200,
                "batch_size": 32,
                "optimizer": "adam",
                "schedule": "exponential",
                "decay_rate": 0.5,
                "decay_steps": 100,
            },
        ),
    ],
)
def test_gradient_strategies_lower_the_loss(ds, fn, kwargs):
    r = fn(
        ds.X_train,
        ds.y_train,
        key=jax.random.key(0),
        learning_rate=1e-2,
        reg=1e-3,
        **kwargs,
    )
    assert r.status == "completed"
    assert r.num_steps == kwargs["num_steps"] and len(r.losses) == r.num_steps
    before = losses.svm_loss(jnp.zeros_like(r.params), ds.X_train, ds.y_train)
    after = losses.svm_loss(r.params, ds.X_train, ds.y_train)
    assert after < 0.5 * before
    assert losses.accuracy(r.params, ds.X_test, ds.y_test) > 0.7


def test_gradient_descent_step_is_w_minus_lr_grad(ds):
    r = strategies.gradient_descent(
        ds.X_train,
        ds.y_train,
        key=jax.random.key(0),
        num_steps=1,
        learning_rate=0.1,
        reg=0.5,
        num_classes=4,
    )
    W0 = strategies.init_params(jax.random.split(jax.random.key(0))[0], 4, ds.dim)
    grad = losses.svm_gradient(W0, ds.X_train, ds.y_train, 0.5)
    np.testing.assert_allclose(r.params, W0 - 0.1 * grad, rtol=1e-5, atol=1e-7)


def test_epoch_sampling_visits_every_example_once_per_epoch(ds):
    strategy = strategies.GradientDescent(batch_size=30, sampling="epoch")
    data_ = driver.Data(jnp.asarray(ds.X_train), jnp.asarray(ds.y_train))
    hparams = strategies.GradientDescentHParams(learning_rate=0.0, reg=0.0)
    state = strategy.init(jnp.zeros((4, ds.dim)), hparams, data_, jax.random.key(0))
    seen = []
    for t in range(10):  # one epoch of 300 examples
        X, _, order = strategy._batch(state, jax.random.key(t), data_)
        state = state._replace(step=state.step + 1, order=order)
        seen.append(np.asarray(X))
    rows = np.concatenate(seen)
    assert len(np.unique(rows, axis=0)) == 300


def test_same_seed_same_result_and_chunking_does_not_matter(ds):
    run = lambda seed, chunk: strategies.minibatch(  # noqa: E731
        ds.X_train,
        ds.y_train,
        key=jax.random.key(seed),
        num_steps=90,
        batch_size=20,
        learning_rate=1e-2,
        reg=1e-3,
        chunk_size=chunk,
    )
    a, b, c = run(5, 10), run(5, 10), run(5, 7)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_allclose(a.params, c.params, rtol=1e-6)
    assert not np.array_equal(run(6, 10).params, a.params)


def test_new_learning_rate_reg_or_key_does_not_recompile(ds):
    def go(lr, reg, seed):
        return strategies.minibatch(
            ds.X_train,
            ds.y_train,
            key=jax.random.key(seed),
            num_steps=40,
            batch_size=16,
            learning_rate=lr,
            reg=reg,
            chunk_size=10,
        )

    go(1e-2, 1e-3, 0)
    before = driver.run_chunk._cache_size()
    go(3e-3, 5e-2, 1)
    go(1e-1, 0.0, 2)
    assert driver.run_chunk._cache_size() == before


def test_divergence_stops_with_last_finite_params(ds):
    r = strategies.gradient_descent(
        ds.X_train * 1e3,
        ds.y_train,
        key=jax.random.key(0),
        num_steps=500,
        learning_rate=1e30,
        reg=1.0,
        loss="softmax",
    )
    assert r.status == "diverged"
    assert r.num_steps < 500
    assert np.all(np.isfinite(r.params))
    assert not np.isfinite(r.losses[-1])  # the step that diverged is recorded
    assert np.all(np.isfinite(r.losses[:-1]))


def test_on_chunk_can_stop_the_run(ds):
    calls = []

    def on_chunk(progress):
        calls.append(progress.step)
        return progress.step < 20

    r = strategies.minibatch(
        ds.X_train,
        ds.y_train,
        key=jax.random.key(0),
        num_steps=100,
        batch_size=16,
        learning_rate=1e-2,
        reg=1e-3,
        chunk_size=10,
        on_chunk=on_chunk,
    )
    assert r.status == "interrupted"
    assert calls == [10, 20] and r.num_steps == 20 and len(r.losses) == 20


def test_an_epoch_smaller_than_a_batch_is_refused(ds):
    with pytest.raises(ValueError, match="cannot fill a batch of 400"):
        strategies.minibatch(
            ds.X_train,
            ds.y_train,
            key=jax.random.key(0),
            sampling="epoch",
            batch_size=400,
        )
    with pytest.raises(ValueError, match="sampling must be"):
        strategies.GradientDescent(sampling="shuffle")


def test_resume_from_a_state_equals_an_uninterrupted_run(ds):
    """The driver steps from ``state.step``: two halves give the whole run."""
    X, y = jnp.asarray(ds.X_train), jnp.asarray(ds.y_train)
    kwargs = dict(batch_size=20, learning_rate=1e-2, reg=1e-3, optimizer="momentum")
    kwargs["chunk_size"] = 10  # one compiled chunk for all three runs
    whole = strategies.minibatch(X, y, key=jax.random.key(4), num_steps=60, **kwargs)
    half = strategies.minibatch(X, y, key=jax.random.key(4), num_steps=30, **kwargs)

    def restore(fresh_state, run_key):
        assert fresh_state.step == 0
        return half.state, half.metrics

    rest = strategies.minibatch(
        X, y, key=jax.random.key(4), num_steps=60, restore=restore, **kwargs
    )
    np.testing.assert_array_equal(rest.params, whole.params)
    np.testing.assert_array_equal(rest.losses, whole.losses)
    assert rest.num_steps == 60


LOCAL = dict(num_steps=280, step_size=0.05, init_scale=0.01, num_classes=4, reg=0.01)


@pytest.fixture(scope="module")
def readable_local_search(ds):
    """The lecture's step (block=1) for both losses, shared by the tests."""
    return {
        loss: strategies.random_local_search(
            ds.X_train, ds.y_train, key=jax.random.key(1), loss=loss, block=1, **LOCAL
        )
        for loss in ("svm", "softmax")
    }


@pytest.mark.parametrize("loss", ["svm", "softmax"])
@pytest.mark.parametrize("block", [7, 40])
def test_blocked_local_search_makes_the_readable_decisions(
    ds, readable_local_search, loss, block
):
    readable = readable_local_search[loss]
    blocked = strategies.random_local_search(
        ds.X_train, ds.y_train, key=jax.random.key(1), loss=loss, block=block, **LOCAL
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
    assert isinstance(blocked.state, strategies.LocalSearchState)
    assert blocked.state.step == 280 // block and bool(blocked.state.evaluated)


def test_blocked_local_search_replays_the_lectures_loop(
    ds, check_lectures_local_search
):
    key = jax.random.key(2)
    args = dict(num_steps=60, step_size=0.05, init_scale=0.01, num_classes=4)
    r = strategies.random_local_search(
        ds.X_train, ds.y_train, key=key, block=20, **args
    )
    check_lectures_local_search(r, key, ds.X_train, ds.y_train, **args)


def test_blocked_local_search_does_not_depend_on_chunking(ds):
    key = jax.random.key(3)
    args = dict(key=key, num_steps=60, block=10, step_size=0.05, num_classes=4)
    one = strategies.random_local_search(ds.X_train, ds.y_train, chunk_size=1, **args)
    all_ = strategies.random_local_search(ds.X_train, ds.y_train, chunk_size=6, **args)
    np.testing.assert_array_equal(one.params, all_.params)
    np.testing.assert_array_equal(one.losses, all_.losses)


def test_block_is_lowered_to_a_divisor(ds):
    key = jax.random.key(0)
    r = strategies.random_local_search(
        ds.X_train, ds.y_train, key=key, num_steps=28, block=10, num_classes=4
    )
    assert r.num_steps == 28 and r.losses.shape == (28,)  # blocks of 7
    assert r.state.step == 4


def test_numpy_references_run_the_lectures_loops(ds):
    X, y = ds.X_train, ds.y_train
    W, history = reference.minibatch_sgd(
        X,
        y,
        num_steps=200,
        batch_size=32,
        learning_rate=1e-2,
        reg=1e-3,
        num_classes=4,
    )
    assert W.shape == (ds.dim, 4) and history[-20:].mean() < history[:20].mean()
    best_W, best_loss = reference.random_search(
        X, y, num_tries=20, scale=0.1, num_classes=4
    )
    assert best_loss == pytest.approx(reference.svm_loss(best_W, X, y))
    W, loss = reference.random_local_search(
        X, y, num_steps=50, step_size=0.05, num_classes=4
    )
    assert loss == pytest.approx(reference.svm_loss(W, X, y), rel=1e-6)
