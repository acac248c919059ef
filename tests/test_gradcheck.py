"""linopt.finite_differences (the engine) and linopt.gradcheck (relative error,
verdicts, the three checks)."""

import ast
import functools
import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads, check_vjp

from linopt import data, finite_differences, gradcheck, gradient_checks, losses

REG = 1e-3


def problem(seed=0, n=12, d=7, c=4, scale=None):
    """A float64 problem whose scores have about unit variance."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * 3
    X[:, -1] = 1.0
    y = rng.integers(0, c, n).astype(np.int32)
    scale = scale or 1 / np.sqrt(np.mean(np.sum(X**2, 1)))
    W = rng.standard_normal((c, d)) * scale
    return jnp.asarray(W), jnp.asarray(X), jnp.asarray(y)


def exact_problem():
    """Integer features, dyadic weights and step: every value the SVM loss
    computes is exact, so any evaluation order gives the same bits."""
    rng = np.random.default_rng(3)
    X = rng.integers(-8, 9, (16, 9)).astype(np.float64)
    y = rng.integers(0, 5, 16).astype(np.int32)
    W = rng.integers(-64, 65, (5, 9)) / 1024.0
    return jnp.asarray(W), jnp.asarray(X), jnp.asarray(y), 2.0**-17


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("method", finite_differences.METHODS)
def test_vectorized_equals_loop_to_1e12_exact_arithmetic(method):
    W, X, y, h = exact_problem()

    def f(W):
        return losses.svm_loss(W, X, y, 0.125)

    loop = finite_differences.numerical_gradient_loop(f, W, h=h, method=method)
    for chunk_size in (None, 7):  # 7 leaves a padded last chunk
        fast = finite_differences.numerical_gradient(
            f, W, h=h, method=method, chunk_size=chunk_size
        )
        assert fast.shape == W.shape and fast.dtype == jnp.float64
        np.testing.assert_allclose(fast, loop, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, method", [("svm", "centered"), ("softmax", "forward")])
def test_vectorized_matches_loop_up_to_round_off(name, method):
    # Batched and single evaluations of f may round differently (another
    # summation order); the quotients then differ by about eps * |f| / h.
    W, X, y = problem()
    h = 1e-5

    def f(W):
        return losses.get(name)(W, X, y, REG)

    fast = finite_differences.numerical_gradient(f, W, h=h, method=method, chunk_size=5)
    loop = finite_differences.numerical_gradient_loop(f, W, h=h, method=method)
    bound = 16 * np.finfo(np.float64).eps * abs(float(f(W))) / h
    np.testing.assert_allclose(fast, loop, rtol=0, atol=bound)


def test_numerical_gradient_of_a_known_function():
    x = jnp.linspace(-1.0, 2.0, 12).reshape(3, 4)

    def f(x):
        return jnp.sum(jnp.sin(x) * x**2)

    exact = jnp.cos(x) * x**2 + 2 * x * jnp.sin(x)
    np.testing.assert_allclose(
        finite_differences.numerical_gradient(f, x), exact, atol=1e-9
    )
    np.testing.assert_allclose(
        finite_differences.numerical_gradient(f, x, method="forward"), exact, atol=1e-4
    )


def test_agrees_with_jax_check_grads():
    W, X, y = problem(seed=1)

    @jax.jit
    def f(W):
        return losses.softmax_loss(W, X, y, REG)

    check_grads(f, (W,), order=1, modes=("fwd", "rev"))  # AD is right

    def numerical_vjp(W):  # our numerical gradient, offered to jax as the VJP
        g = finite_differences.numerical_gradient(f, W)
        return f(W), lambda ct: (ct * g,)

    check_vjp(f, numerical_vjp, (W,), atol=1e-7, rtol=1e-7)
    u = jax.random.normal(jax.random.key(0), (3, W.size))
    ours = finite_differences.difference_quotients(f, W, u)
    np.testing.assert_allclose(ours, u @ jax.grad(f)(W).reshape(-1), rtol=1e-7)


@pytest.mark.parametrize("name", ["svm", "softmax"])
@pytest.mark.parametrize("mode", ["full", "sparse", "directional"])
def test_correct_gradients_are_good(name, mode):
    W, X, y = problem(seed=2)

    def f(W):
        return losses.get(name)(W, X, y, REG)

    kinks = gradient_checks.svm_kinks(X, y) if name == "svm" else None
    groups = gradcheck.bias_column_groups(W.shape)
    for gradient in (jax.grad(f)(W), losses.GRADIENTS[name](W, X, y, REG)):
        result = run_check(mode, f, gradient, W, groups=groups, kinks=kinks)
        summary = gradcheck.summarize(result)
        assert summary["passed"], summary
        assert summary["max_relative_error"] <= 1e-7


def run_check(mode, f, gradient, W, **kw):
    if mode == "full":
        return gradcheck.full_check(f, gradient, W, **kw)
    check = gradcheck.sparse_check if mode == "sparse" else gradcheck.directional_check
    return check(f, gradient, W, jax.random.key(7), num_checks=4, **kw)


def missing_factor_two(W, X, y, name):
    return losses.GRADIENTS[name](W, X, y, REG) - REG * W


def bias_sign_flipped(W, X, y, name):
    g = losses.GRADIENTS[name](W, X, y, REG)
    return g.at[:, -1].multiply(-1)


@pytest.mark.parametrize("name", ["svm", "softmax"])
@pytest.mark.parametrize("bug", [missing_factor_two, bias_sign_flipped])
@pytest.mark.parametrize("mode", ["full", "sparse", "directional"])
def test_wrong_gradients_are_caught(name, bug, mode):
    W, X, y = problem(seed=4)

    def f(W):
        return losses.get(name)(W, X, y, REG)

    kinks = gradient_checks.svm_kinks(X, y) if name == "svm" else None
    result = run_check(
        mode,
        f,
        bug(W, X, y, name),
        W,
        kinks=kinks,
        groups=gradcheck.bias_column_groups(W.shape),
    )
    summary = gradcheck.summarize(result)
    assert not summary["passed"]
    assert summary["max_relative_error"] > 1e-6
    if bug is bias_sign_flipped:
        assert summary["worst"]["group"] == "bias"
        assert summary["verdict"] == "probably wrong"


def test_float32_cannot_reach_good():
    W, X, y = problem(seed=5)
    W32, X32 = W.astype(jnp.float32), X.astype(jnp.float32)

    def f(W):
        return losses.softmax_loss(W, X32, y, REG)

    with pytest.warns(gradcheck.PrecisionWarning, match="enable_x64"):
        result = gradcheck.full_check(f, jax.grad(f)(W32), W32)
    summary = gradcheck.summarize(result)
    assert result.dtype == "float32" and not summary["passed"]
    assert summary["max_relative_error"] > 1e-4  # 1e-7 is out of reach
    assert np.median(result.relative_error) > 1e-6


def test_kink_crossings_match_brute_force():
    W, X, y = problem(seed=6, n=30)
    h = 3e-2  # a wide step, so that some coordinates cross hinges
    margins = gradient_checks.svm_kinks(X, y)
    got = np.asarray(
        finite_differences.kink_crossings(margins, W, jnp.arange(W.size), h=h)
    )
    want = []
    for i in range(W.size):
        e = np.zeros(W.size)
        e[i] = h
        e = e.reshape(W.shape)
        lo, hi = np.asarray(margins(W - e)), np.asarray(margins(W + e))
        want.append(np.any((lo > 0) != (hi > 0)))
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < W.size

    def f(W):
        return losses.svm_loss(W, X, y, REG)

    result = gradcheck.full_check(f, jax.grad(f)(W), W, h=h, kinks=margins)
    summary = gradcheck.summarize(result)
    np.testing.assert_array_equal(result.kink, got)
    assert summary["num_kinks_crossed"] == got.sum()
    assert summary["max_relative_error_at_kinks"] > 1e-4  # judged apart
    assert summary["passed"]  # piecewise linear away from the kinks


def test_a_check_with_every_coordinate_at_a_kink_is_unjudged():
    x = jnp.zeros(5)

    def f(x):
        return jnp.sum(jax.nn.relu(x))

    result = gradcheck.full_check(f, jax.grad(f)(x), x, kinks=lambda x: x)
    summary = gradcheck.summarize(result)
    assert result.kink.all() and summary["num_kinks_crossed"] == 5
    assert summary["max_relative_error"] is None and not summary["passed"]
    assert summary["verdict"].startswith("unjudged")
    assert summary["max_relative_error_at_kinks"] == 1.0  # 0 against 1/2


def test_relative_error_and_verdicts():
    a = np.array([1.0, 0.0, -2.0, 1e-40, 3.0])
    n = np.array([1.1, 0.0, 2.0, 0.0, 3.0])
    err = gradcheck.relative_error(a, n)
    np.testing.assert_allclose(err, [0.1 / 1.1, 0.0, 2.0, 1e-10, 0.0])
    np.testing.assert_allclose(
        gradcheck.relative_error([1e-4], [2e-4], floor=1e-2), [1e-2]
    )
    assert gradcheck.verdict(1e-7) == "good"
    assert gradcheck.verdict(2e-7) == "acceptable only with kinks"
    assert gradcheck.verdict(1e-4) == "uncomfortable"
    assert gradcheck.verdict(1e-2) == "uncomfortable"
    assert gradcheck.verdict(2e-2) == "probably wrong"


def test_sparse_sample_is_keyed_and_covers_every_group():
    W, X, y = problem(seed=8, d=20, c=5)

    def f(W):
        return losses.softmax_loss(W, X, y, REG)

    g = jax.grad(f)(W)
    groups = gradcheck.bias_column_groups(W.shape)
    first = gradcheck.sparse_check(
        f, g, W, jax.random.key(1), num_checks=3, groups=groups
    )
    again = gradcheck.sparse_check(
        f, g, W, jax.random.key(1), num_checks=3, groups=groups
    )
    other = gradcheck.sparse_check(
        f, g, W, jax.random.key(2), num_checks=3, groups=groups
    )
    np.testing.assert_array_equal(first.index, again.index)
    assert not np.array_equal(first.index, other.index)
    assert list(first.group) == ["weights"] * 3 + ["bias"] * 3
    cols = np.unravel_index(first.index, W.shape)[1]
    assert np.all(cols[:3] < 19) and np.all(cols[3:] == 19)


def test_one_compilation_for_new_data_and_a_padded_last_chunk():
    W, X, y = problem(seed=9)
    W2, X2, y2 = problem(seed=10)
    finite_differences._batched_differences.clear_cache()
    for W_, X_, y_ in ((W, X, y), (W2, X2, y2)):

        def f(W, X=X_, y=y_):
            return losses.softmax_loss(W, X, y, REG)

        finite_differences.numerical_gradient(f, W_, chunk_size=5)  # 28 = 5 * 6 - 2
    assert finite_differences._batched_differences._cache_size() == 1


def test_chunks_follow_the_memory_budget():
    W, X, y, h = exact_problem()

    def f(W):
        return losses.svm_loss(W, X, y, 0.125)

    program = finite_differences._Program(f, W)
    assert program.bytes_per_eval >= W.nbytes + X.shape[0] * W.shape[0] * 8
    small = finite_differences._chunking(
        program, W.size, "centered", 4 * program.bytes_per_eval, None
    )
    assert small == (2, -(-W.size // 2))
    everything = finite_differences._chunking(program, W.size, "centered", 2**30, None)
    assert everything == (W.size, 1)
    tight = finite_differences.numerical_gradient(f, W, h=h, memory_bytes=1)
    np.testing.assert_array_equal(
        tight, finite_differences.numerical_gradient(f, W, h=h)
    )


def test_bad_arguments():
    W, X, y = problem()

    def f(W):
        return losses.svm_loss(W, X, y)

    with pytest.raises(ValueError, match="method"):
        finite_differences.numerical_gradient(f, W, method="backward")
    with pytest.raises(ValueError, match="positive"):
        finite_differences.numerical_gradient(f, W, h=0.0)
    with pytest.raises(ValueError, match="scalar"):
        finite_differences.numerical_gradient(lambda W: W * 2, W)
    with pytest.raises(TypeError, match="floating"):
        finite_differences.numerical_gradient(f, jnp.ones((2, 2), jnp.int32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float64: no precision warning
        gradcheck.full_check(f, jax.grad(f)(W), W)


def pixel_problem(n=20, side=16):
    """CIFAR-10's layout and scale at a quarter of its side: 3 colour planes of
    ``side x side`` 0..255 pixels, preprocessed as linopt does (train mean
    subtracted, bias column), W giving unit-variance scores. A full check
    costs the square of W's size; what it shows depends on the pixels' scale,
    not their number (at 32 x 32: worst errors 1.1e-4 in parameter units,
    2.4e-8 in feature units; at 16 x 16: 7.2e-5 and 1.7e-8)."""
    rng = np.random.default_rng(7)
    images = np.clip(rng.normal(120, 64, (n, 3 * side * side)), 0, 255)
    _, X = data.preprocess(images.astype(np.uint8), dtype=np.float64)
    y = rng.integers(0, 10, n).astype(np.int32)
    scale = 1 / np.sqrt(np.mean(np.sum(X**2, 1)))
    W = jax.random.normal(jax.random.key(2), (10, X.shape[1])) * scale
    return W, jnp.asarray(X), jnp.asarray(y)


def test_pixel_features_need_feature_units():
    # With h in W's own units, 1e-5 moves a pixel weight's scores ~60 times
    # more than the bias's: truncation (h^2 x^3) spoils the softmax check on
    # raw pixels. In feature units every coordinate gets its best step and
    # all 7,690 coordinates reach 1e-7, kinks counted apart for the SVM.
    W, X, y = pixel_problem()
    groups = gradcheck.bias_column_groups(W.shape)
    scale = gradcheck.feature_scale(X)
    assert scale.shape == (1, 769) and float(scale[0, -1]) == 1.0
    assert float(jnp.median(scale)) > 50  # pixel-sized features
    for name in ("softmax", "svm"):
        f = functools.partial(losses.get(name), X=X, y=y, reg=REG)
        kinks = gradient_checks.svm_kinks(X, y) if name == "svm" else None
        analytic = jax.grad(f)(W)
        if name == "softmax":
            plain = gradcheck.summarize(
                gradcheck.full_check(f, analytic, W, groups=groups)
            )
            assert plain["max_relative_error"] > 1e-6, plain
        units = gradcheck.in_units(scale, f, analytic, W, kinks=kinks)
        np.testing.assert_allclose(units.x / scale, W, rtol=1e-15)
        summary = gradcheck.summarize(
            gradcheck.full_check(
                units.f, units.analytic, units.x, kinks=units.kinks, groups=groups
            )
        )
        assert summary["num_checks"] == 7690
        assert summary["max_relative_error"] <= 1e-7, (name, summary)
        assert summary["max_relative_error_at_kinks"] is None or name == "svm"


def test_feature_units_still_catch_wrong_gradients():
    W, X, y = pixel_problem(n=8)

    def f(W):
        return losses.softmax_loss(W, X, y, REG)

    for bug in (missing_factor_two, bias_sign_flipped):
        units = gradcheck.in_units(
            gradcheck.feature_scale(X), f, bug(W, X, y, "softmax"), W
        )
        summary = gradcheck.summarize(
            gradcheck.sparse_check(
                units.f,
                units.analytic,
                units.x,
                jax.random.key(0),
                groups=gradcheck.bias_column_groups(W.shape),
            )
        )
        assert not summary["passed"] and summary["max_relative_error"] > 1e-6


def test_the_public_names_and_an_independent_judge():
    assert gradcheck.numerical_gradient is finite_differences.numerical_gradient
    loop = finite_differences.numerical_gradient_loop
    assert gradcheck.numerical_gradient_loop is loop
    # The judge imports nothing it checks: no loss, no model.
    for module in (gradcheck, finite_differences):
        tree = ast.parse(inspect.getsource(module))
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "linopt"
            for alias in node.names
        }
        assert imported <= {"finite_differences"}, (module.__name__, imported)
        assert "linopt.losses" not in inspect.getsource(module)
