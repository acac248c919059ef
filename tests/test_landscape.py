"""Loss slices, the toy's clamped pieces, the slices' centre and the step-size sweep
(``linopt.landscape`` and ``linopt.step_size``).

References are independent: numpy SVM losses, margins worked out by hand, and
the lecture's claims about shape (piecewise linear for one example, a convex
bowl for 100, a linear fall then 10x per decade growth for step sizes).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linopt import data, landscape, losses, step_size
from linopt.errors import LinoptError


def numpy_svm(W, X, y, reg=0.0):
    """The lecture's SVM loss in float64 numpy; ``W`` may be ``(..., C, D)``."""
    W, X, y = (np.asarray(v, np.float64) for v in (W, X, y))
    s = np.einsum("nd,...cd->...nc", X, W)
    rows = np.arange(len(y))
    margins = np.maximum(0.0, s - s[..., rows, y.astype(int)][..., None] + 1.0)
    margins[..., rows, y.astype(int)] = 0.0
    return margins.sum(-1).mean(-1) + reg * np.sum(W**2, axis=(-2, -1))


def numpy_softmax(W, X, y):
    s = np.asarray(X, np.float64) @ np.asarray(W, np.float64).T
    s = s - s.max(1, keepdims=True)
    log_p = s - np.log(np.exp(s).sum(1, keepdims=True))
    return -log_p[np.arange(len(y)), np.asarray(y)].mean()


@pytest.fixture(scope="module")
def digits():
    ds = data.load("digits")
    return jnp.asarray(ds.X_train), jnp.asarray(ds.y_train)


def centre_and_directions(dim, seed=0, scale="weights"):
    centre_key, direction_key = jax.random.split(jax.random.key(seed))
    W = 0.001 * jax.random.normal(centre_key, (10, dim))
    return W, landscape.random_directions(direction_key, W, 2, scale=scale)


def cifar_like(n=400, num_classes=10, factors=16, seed=0):
    """CIFAR-10-shaped rows: 3072 pixels in 0..255, mean removed, bias appended.

    Like real images the pixels vary mostly along a few directions (factors),
    so a few hundred examples are not linearly separable by memorization.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    loadings = rng.standard_normal((factors, 3072)) * 50 / np.sqrt(factors)
    z = 0.5 * rng.standard_normal((num_classes, factors))[y]
    z = z + rng.standard_normal((n, factors))
    noise = 5 * rng.standard_normal((n, 3072))
    raw = np.clip(128 + z @ loadings + noise, 0, 255).round()
    _, X = data.preprocess(raw)
    return X, y.astype(np.int32)


@pytest.mark.parametrize("scale", ["none", "weights", "rows"])
def test_random_directions_scaled_orthogonal_deterministic(scale):
    W = jnp.arange(1.0, 31.0).reshape(3, 10)
    d = landscape.random_directions(jax.random.key(3), W, 3, scale=scale)
    assert d.shape == (3, 3, 10)
    flat = np.asarray(d, np.float64).reshape(3, -1)
    gram = flat @ flat.T
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() < 1e-5 * np.diag(gram).max()
    if scale == "weights":
        np.testing.assert_allclose(
            np.linalg.norm(flat, axis=1), np.linalg.norm(W), rtol=1e-5
        )
    if scale == "rows":
        np.testing.assert_allclose(
            np.linalg.norm(d, axis=2),
            np.broadcast_to(np.linalg.norm(W, axis=1), (3, 3)),
            rtol=1e-5,
        )
    again = landscape.random_directions(jax.random.key(3), W, 3, scale=scale)
    np.testing.assert_array_equal(d, again)
    other = landscape.random_directions(jax.random.key(4), W, 3, scale=scale)
    assert not np.allclose(d, other)


def test_slices_match_numpy_and_both_paths_agree(digits):
    X, y = digits[0][:50], digits[1][:50]
    W, d = centre_and_directions(X.shape[1])
    alphas, betas = jnp.linspace(-30, 30, 5), jnp.linspace(-20, 40, 4)
    fast = landscape.slice_2d(losses.svm_loss, W, d, alphas, betas, X, y, 0.5)
    # A wrapper is not a known library loss: it takes the per-point W path,
    # here in batches of 3 (lax.map with a remainder).
    slow = landscape.slice_2d(
        lambda *args: losses.svm_loss(*args),
        W,
        d,
        alphas,
        betas,
        X,
        y,
        0.5,
        batch_size=3,
    )
    assert fast.shape == (4, 5)  # row i is betas[i], column j is alphas[j]
    a, b = (
        np.asarray(alphas)[None, :, None, None],
        np.asarray(betas)[:, None, None, None],
    )
    expected = numpy_svm(
        np.asarray(W) + a * np.asarray(d[0]) + b * np.asarray(d[1]), X, y, 0.5
    )
    np.testing.assert_allclose(fast, expected, rtol=1e-5)
    np.testing.assert_allclose(slow, expected, rtol=1e-5)
    line = landscape.slice_1d(losses.softmax_loss, W, d[0], alphas, X, y)
    direct = [numpy_softmax(W + a * d[0], X, y) for a in np.asarray(alphas)]
    np.testing.assert_allclose(line, direct, rtol=1e-5)


def test_one_example_slice_is_piecewise_linear_with_predicted_kinks(digits):
    with jax.enable_x64(True):
        X = jnp.asarray(digits[0][3:4], jnp.float64)
        y = digits[1][3:4]
        W, d = centre_and_directions(X.shape[1], seed=1)
        W, direction = W.astype(jnp.float64), d[0].astype(jnp.float64)
        span = 4 / float(landscape.score_scale(X, direction))
        alphas = jnp.linspace(-span, span, 2001)
        values = np.asarray(
            landscape.slice_1d(losses.svm_loss, W, direction, alphas, X, y)
        )
        # Kinks by hand: margin m_j(a) = m_j(0) + a g_j crosses 0 at -m_j(0)/g_j.
        x = np.asarray(X[0], np.float64)
        s0, g = np.asarray(W) @ x, np.asarray(direction) @ x
        label = int(y[0])
        m0, slope = s0 - s0[label] + 1, g - g[label]
        kinks = np.array([-m0[j] / slope[j] for j in range(10) if j != label])
        pieces = landscape.hinge_pieces(W, direction, alphas, X, y)
        np.testing.assert_allclose(pieces.total, values, rtol=1e-12)
        np.testing.assert_allclose(
            np.sort(pieces.kinks[0][np.arange(10) != label]), np.sort(kinks), rtol=1e-10
        )
    a = np.asarray(alphas)
    second = np.abs(values[2:] - 2 * values[1:-1] + values[:-2])
    near = np.array(
        [np.any((kinks > a[k - 1]) & (kinks < a[k + 1])) for k in range(1, len(a) - 1)]
    )
    tol = 1e-9 * np.abs(values).max()
    assert np.all(second[~near] < tol)  # straight between kinks
    inside = kinks[(kinks > a[0]) & (kinks < a[-1])]
    assert len(inside) >= 2 and np.sum(second > tol) <= 2 * len(inside)
    assert np.sum(second[near] > tol) >= 1  # and it does bend at the kinks


def test_hundred_example_slice_is_a_bowl(digits):
    X, y = digits[0][:100], digits[1][:100]
    W, d = centre_and_directions(X.shape[1], seed=2)
    span = 4 / float(landscape.score_scale(X, d[0]))
    grid = np.linspace(-span, span, 41)
    values = np.asarray(
        landscape.slice_2d(losses.svm_loss, W, d, grid, grid, X, y), np.float64
    )
    tol = 1e-4 * values.max()

    def assert_convex(line):
        assert np.all(line[2:] - 2 * line[1:-1] + line[:-2] >= -tol)

    for k in range(41):
        assert_convex(values[k])
        assert_convex(values[:, k])
    assert_convex(np.diag(values))
    assert_convex(np.diag(values[::-1]))
    # Lines through the centre in other directions, evaluated exactly.
    for angle in np.linspace(0, np.pi, 7)[1:-1]:
        c = np.cos(angle) * d[0] + np.sin(angle) * d[1]
        assert_convex(np.asarray(landscape.slice_1d(losses.svm_loss, W, c, grid, X, y)))
    i, j = np.unravel_index(values.argmin(), values.shape)
    assert 0 < i < 40 and 0 < j < 40  # the bottom is inside, the rim higher
    rim = np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])
    assert rim.min() > values.min() + 0.1 * (values.max() - values.min())


def test_lecture_toy_pieces():
    W, direction, X, y = landscape.lecture_toy()
    w0 = jnp.linspace(-4.0, 3.0, 141)
    toy = landscape.hinge_pieces(W, direction, w0, X, y)
    # x = (2, 1, 0.5), w1 = 0.3, w2 = -0.3: the four pieces that move with w0
    # bend at w0 = 0.8 (i=0, j=1), 0.2 (0, 2), -0.7 (1, 0), -2.3 (2, 0).
    finite = np.sort(np.asarray(toy.kinks)[np.isfinite(toy.kinks)])
    np.testing.assert_allclose(finite, [-2.3, -0.7, 0.2, 0.8], atol=1e-6)
    constant = np.ptp(np.asarray(toy.pieces), axis=0)
    assert constant[1, 2] == 0 and constant[2, 1] == 0  # free of w0
    np.testing.assert_allclose(toy.pieces[:, 1, 2], 0.4 / 3, rtol=1e-6)
    np.testing.assert_allclose(toy.pieces[:, 2, 1], 1.3 / 3, rtol=1e-6)
    along = np.asarray(W) + np.asarray(w0)[:, None, None] * np.asarray(direction)
    np.testing.assert_allclose(toy.total, numpy_svm(along, X, y), rtol=1e-6)
    np.testing.assert_allclose(toy.pieces.sum(axis=(1, 2)), toy.total, rtol=1e-6)


def test_toy_slice_is_the_toy_over_its_kinks():
    toy = landscape.toy_slice(num_points=61)
    low, high = landscape.TOY_W0_RANGE
    assert toy.w0.shape == (61,) and toy.w0[0] == low and toy.w0[-1] == high
    np.testing.assert_allclose(toy.kinks, [-2.3, -0.7, 0.2, 0.8], atol=1e-6)
    W, direction, X, y = landscape.lecture_toy()
    along = np.asarray(W) + toy.w0[:, None, None] * np.asarray(direction)
    np.testing.assert_allclose(toy.total, numpy_svm(along, X, y), rtol=1e-6)
    assert toy.pieces.shape == (61, 3, 3)


def test_load_weights_refuses_what_does_not_fit(tmp_path):
    good = np.arange(6, dtype=np.float64).reshape(2, 3)
    np.save(tmp_path / "good.npy", good)
    W = landscape.load_weights(tmp_path / "good.npy", (2, 3))
    assert W.dtype == np.float32 and np.array_equal(W, good)
    np.save(tmp_path / "nan.npy", np.full((2, 3), np.nan))
    np.savez(tmp_path / "two.npz", a=good, b=good)
    (tmp_path / "text.npy").write_text("not an array")
    for name, message in [
        ("good.npy", r"has shape \(2, 3\); this data set needs \(3, 2\)"),
        ("nan.npy", "has nan/inf"),
        ("two.npz", "is not a single .npy array"),
        ("text.npy", "cannot read weights"),
    ]:
        shape = (3, 2) if name == "good.npy" else (2, 3)
        with pytest.raises(LinoptError, match=message):
            landscape.load_weights(tmp_path / name, shape)


def test_centre_and_directions():
    keys = jax.random.split(jax.random.key(0))
    W, d = landscape.centre_and_directions(*keys, (3, 5), init_scale=0.5)
    np.testing.assert_allclose(W, 0.5 * jax.random.normal(keys[0], (3, 5)))
    np.testing.assert_array_equal(d, landscape.random_directions(keys[1], W, 2))
    given = np.ones((3, 5), np.float32)
    W, _ = landscape.centre_and_directions(*keys, (3, 5), weights=given)
    np.testing.assert_array_equal(W, given)
    with pytest.raises(LinoptError, match="zero direction: the centre W is zero"):
        landscape.centre_and_directions(*keys, (3, 5), weights=0 * given)
    with pytest.raises(LinoptError, match="the centre W is zero"):
        landscape.centre_and_directions(*keys, (3, 5), weights=0 * given, scale="rows")
    one_zero_row = given * np.array([[1], [0], [1]], np.float32)
    _, d = landscape.centre_and_directions(
        *keys, (3, 5), weights=one_zero_row, scale="rows"
    )
    assert np.all(d[:, 1] == 0) and np.all(np.linalg.norm(d[:, 0], axis=-1) > 0)
    _, d = landscape.centre_and_directions(
        *keys, (3, 5), weights=0 * given, scale="none"
    )
    assert np.all(np.linalg.norm(d, axis=(1, 2)) > 0)


def test_step_sizes_grid():
    np.testing.assert_allclose(step_size.step_sizes(), 10.0 ** np.arange(-10, 0))
    fine = step_size.step_sizes(points_per_decade=4)
    assert len(fine) == 37 and fine[0] == pytest.approx(1e-10)
    assert fine[-1] == pytest.approx(0.1)


@pytest.mark.parametrize("loss_name", ["svm", "softmax"])
def test_step_size_sweep_on_cifar_shaped_data(loss_name):
    X, y = cifar_like()
    loss_fn = losses.get(loss_name)
    with jax.enable_x64(True):
        X, y = jnp.asarray(X, jnp.float64), jnp.asarray(y)
        W = 0.001 * jax.random.uniform(jax.random.key(0), (10, X.shape[1]), jnp.float64)
        sweep = step_size.step_size_sweep(loss_fn, W, X, y, step_size.step_sizes())
        gradient = np.asarray(losses.GRADIENTS[loss_name](W, X, y))
    np.testing.assert_allclose(
        sweep.gradient_norm, np.linalg.norm(gradient), rtol=1e-10
    )
    reference = {"svm": numpy_svm, "softmax": numpy_softmax}[loss_name]
    direct = [
        reference(np.asarray(W) - t * gradient, X, y)
        for t in np.asarray(sweep.step_sizes)
    ]
    np.testing.assert_allclose(sweep.losses, direct, rtol=1e-10)
    t, new = np.asarray(sweep.step_sizes), np.asarray(sweep.losses)
    drop = float(sweep.original_loss) - new
    # Tiny steps: the loss falls by t |g|^2, the first-order prediction.
    np.testing.assert_allclose(
        drop[:3] / (t[:3] * float(sweep.gradient_norm) ** 2), 1.0, rtol=1e-2
    )
    best = int(np.argmin(new))
    assert 0 < best < len(t) - 1 and new[best] < float(sweep.original_loss)
    assert float(sweep.best_step_size) == t[best] and int(sweep.best_index) == best
    # Past the minimum: ~10x per decade (the loss is asymptotically linear in t).
    np.testing.assert_allclose(new[-3:] / new[-4:-1], 10.0, rtol=0.1)


def test_sweep_and_slices_do_not_recompile(digits):
    X, y = digits[0][:64], digits[1][:64]
    W, d = centre_and_directions(X.shape[1])
    step_size.step_size_sweep(losses.svm_loss, W, X, y, step_size.step_sizes(), 0.0)
    landscape.slice_1d(losses.svm_loss, W, d[0], jnp.linspace(-1, 1, 9), X, y, 0.0)
    sweeps, slices = (
        step_size.step_size_sweep._cache_size(),
        landscape.slice_1d._cache_size(),
    )
    steps = step_size.step_sizes() * 3.0
    step_size.step_size_sweep(losses.svm_loss, 2 * W, X, y, steps, 0.7)
    landscape.slice_1d(losses.svm_loss, W, d[1], jnp.linspace(-5, 2, 9), X, y, 0.3)
    assert step_size.step_size_sweep._cache_size() == sweeps
    assert landscape.slice_1d._cache_size() == slices


def test_sweep_in_batches_matches_one_vmap(digits):
    X, y = digits[0][:64], digits[1][:64]
    W = 0.001 * jax.random.uniform(jax.random.key(1), (10, X.shape[1]))
    steps = step_size.step_sizes(points_per_decade=2)
    whole = step_size.step_size_sweep(losses.softmax_loss, W, X, y, steps, 0.1)
    batched = step_size.step_size_sweep(
        losses.softmax_loss, W, X, y, steps, 0.1, batch_size=4
    )
    np.testing.assert_allclose(batched.losses, whole.losses, rtol=1e-6)
    assert float(batched.best_step_size) == float(whole.best_step_size)
