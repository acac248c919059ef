"""linopt.noise against explicit per-example gradients and sampled batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linopt import data, losses, noise

REG = 1e-3


@pytest.fixture(scope="module")
def digits():
    ds = data.load("digits", dtype=np.float64)
    return ds.X_train, ds.y_train


def _W(seed, ds, scale=1e-2, dtype=jnp.float64):
    X, y = ds
    C = int(y.max()) + 1
    return scale * jax.random.normal(jax.random.key(seed), (C, X.shape[1]), dtype)


def _brute_force(loss, W, X, y, reg):
    """Every per-example gradient by jax.grad, then their mean and spread."""
    per_example = losses.PER_EXAMPLE[loss]

    def loss_i(W, x, label):
        return per_example(losses.scores(W, x[None]), label[None])[0]

    g = jax.vmap(jax.grad(loss_i), in_axes=(None, 0, 0))(W, X, y)  # (N, C, D)
    mean = g.mean(0, keepdims=True)
    trace = jnp.sum((g - mean) ** 2) / X.shape[0]  # population covariance
    G = mean[0] + 2 * reg * W
    return G, jnp.sum(G * G), trace


@pytest.mark.parametrize("loss", ["svm", "softmax"])
def test_trace_and_gradient_match_explicit_per_example_gradients(digits, loss):
    with jax.enable_x64(True):
        X, y = map(jnp.asarray, digits)
        W = _W(0, digits, scale=1e-1)
        # A chunk that does not divide N, so the padding is exercised.
        got = noise.gradient_noise(loss, W, X, y, REG, chunk_size=100)
        G, sq, trace = _brute_force(loss, W, X, y, REG)
        assert X.shape[0] % 100 != 0 and got.gradient.dtype == jnp.float64
        np.testing.assert_allclose(got.gradient, G, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(got.grad_sq_norm, sq, rtol=1e-10)
        np.testing.assert_allclose(got.trace_sigma, trace, rtol=1e-10)
        np.testing.assert_allclose(got.b_simple, trace / sq, rtol=1e-10)
        # And G is the gradient of linopt's own objective.
        np.testing.assert_allclose(
            got.gradient,
            jax.grad(losses.get(loss))(W, X, y, REG),
            rtol=1e-10,
            atol=1e-14,
        )


@pytest.mark.parametrize("replace", [True, False])
def test_predicted_batch_error_matches_10000_draws(digits, replace):
    with jax.enable_x64(True):
        X, y = map(jnp.asarray, digits)
        W = _W(1, digits, scale=1e-1)
        n, batch = X.shape[0], 400  # a large fraction of N: the correction is ~37%
        exact = noise.gradient_noise("softmax", W, X, y, REG)
        sampled = noise.sample_batch_errors(
            "softmax",
            W,
            X,
            y,
            REG,
            exact.gradient,
            key=jax.random.key(7),
            batch_size=batch,
            num_draws=10_000,
            replace=replace,
        )
        predicted = noise.expected_batch_error(exact, batch, replace)
        se = float(sampled.sq_error_std_error)
        assert abs(float(sampled.mean_sq_error) - float(predicted)) < 3 * se
        # The other sampling's formula is far outside: the test tells them apart.
        other = noise.expected_batch_error(exact, batch, not replace)
        assert abs(float(sampled.mean_sq_error) - float(other)) > 10 * se
        # The cosine approximation is close to the measured mean cosine.
        cos = noise.expected_batch_cosine(exact, batch, replace)
        np.testing.assert_allclose(sampled.mean_cosine, cos, rtol=2e-3)
        assert n > batch


def test_without_replacement_the_full_batch_has_no_error(digits):
    with jax.enable_x64(True):
        X, y = map(jnp.asarray, digits)
        W = _W(2, digits)
        exact = noise.gradient_noise("svm", W, X, y, REG)
        n = X.shape[0]
        assert noise.expected_batch_error(exact, n, replace=False) == 0
        sampled = noise.sample_batch_errors(
            "svm",
            W,
            X,
            y,
            REG,
            exact.gradient,
            key=jax.random.key(0),
            batch_size=n,
            num_draws=4,
            replace=False,
        )
        np.testing.assert_allclose(sampled.sq_errors, 0, atol=1e-20)
        np.testing.assert_allclose(sampled.cosines, 1, rtol=1e-12)


def test_a_new_W_reg_or_key_does_not_recompile(digits):
    X, y = map(jnp.asarray, digits)
    X = X.astype(jnp.float32)
    W0, W1 = (_W(s, digits, dtype=jnp.float32) for s in (3, 4))
    kwargs = dict(batch_size=32, num_draws=8)
    first = noise.gradient_noise("svm", W0, X, y, 1e-3)
    noise.sample_batch_errors(
        "svm", W0, X, y, 1e-3, first.gradient, key=jax.random.key(0), **kwargs
    )
    sizes = noise._gradient_noise._cache_size(), noise._sample._cache_size()
    second = noise.gradient_noise("svm", W1, X, y, 5e-3)
    noise.sample_batch_errors(
        "svm", W1, X, y, 5e-3, second.gradient, key=jax.random.key(1), **kwargs
    )
    assert (noise._gradient_noise._cache_size(), noise._sample._cache_size()) == sizes
    assert not np.allclose(first.trace_sigma, second.trace_sigma)


def test_bad_arguments_say_what_to_do(digits):
    X, y = map(jnp.asarray, digits)
    W = _W(0, digits, dtype=jnp.float32)
    with pytest.raises(ValueError, match="unknown loss"):
        noise.gradient_noise("hinge", W, X, y)
    exact = noise.gradient_noise("svm", W, X, y)
    with pytest.raises(ValueError, match="batch_size must be in"):
        noise.expected_batch_error(exact, 0)
    with pytest.raises(ValueError, match="num_draws"):
        noise.sample_batch_errors(
            "svm",
            W,
            X,
            y,
            0.0,
            exact.gradient,
            key=jax.random.key(0),
            batch_size=2,
            num_draws=1,
        )


@pytest.mark.parametrize("replace", [True, False])
def test_a_drawn_batch_is_the_one_its_key_draws_alone(replace):
    """One program draws every batch size's rows: a batch of B is the first B
    of a draw, the same rows ``randint`` / ``choice`` give for B alone."""
    key = jax.random.key(3)
    rows = noise._draw_rows(4, 50, replace, key)
    for k in range(4):
        alone = jax.random.fold_in(key, k)
        if replace:
            expected = jax.random.randint(alone, (7,), 0, 50)
        else:
            expected = jax.random.choice(alone, 50, (7,), replace=False)
        np.testing.assert_array_equal(rows[k, :7], expected)
    if not replace:
        assert all(len(set(r.tolist())) == 50 for r in np.asarray(rows))
