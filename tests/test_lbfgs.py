"""L-BFGS: the certified optimum on digits is scikit-learn's, in float64; the
strategy runs on the driver, counts its line search, compiles once, and runs
through ``experiments.train``."""

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import train
from linopt import configs, data, driver, lbfgs, losses

REG = 1e-3  # digits' preset reg


@pytest.fixture(scope="module")
def digits64():
    with jax.enable_x64(True):
        ds = data.load("digits", dtype=np.float64)
        return ds, lbfgs.optimum("softmax", ds.X_train, ds.y_train, REG, tol=1e-6)


def test_the_softmax_certificate_is_reached_in_float64(digits64):
    _, opt = digits64
    assert opt.certified and opt.params.dtype == np.float64
    assert opt.grad_norm <= 1e-6 * opt.grad_norms[0]
    assert opt.grad_norms[-1] == opt.grad_norm and opt.losses[-1] == opt.loss
    assert len(opt.grad_norms) == opt.num_steps + 1 < 1000
    assert opt.num_evaluations >= opt.num_steps + 1  # W0's and the line search's
    assert np.all(np.diff(opt.losses) <= 0)  # the line search only descends


def test_the_optimum_is_scikit_learns(digits64):
    """LogisticRegression minimizes ``C sum_i CE_i + |W|^2 / 2``: divided by
    ``C N`` it is linopt's ``mean CE + reg |W|^2`` for ``C = 1 / (2 N reg)``,
    the bias column (last in X, their intercept off) regularized as linopt's."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    ds, opt = digits64
    X, y = ds.X_train, ds.y_train
    model = LogisticRegression(
        C=1 / (2 * len(y) * REG), fit_intercept=False, tol=1e-12, max_iter=100_000
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model.fit(X, y)  # multinomial: the default for lbfgs on 10 classes
    with jax.enable_x64(True):
        theirs = float(losses.softmax_loss(model.coef_, X, y, REG))
        ours = float(losses.softmax_loss(opt.params, X, y, REG))
    assert ours == pytest.approx(opt.loss, rel=1e-12)
    assert abs(opt.loss - theirs) <= 1e-6 * theirs
    np.testing.assert_allclose(opt.params, model.coef_, atol=1e-3)


def test_the_svm_gives_the_best_found():
    """The hinge is not smooth: no certificate, the lowest loss seen."""
    ds = data.make_synthetic(num_train=200, dim=8, num_classes=4, seed=1)
    opt = lbfgs.optimum("svm", ds.X_train, ds.y_train, 1e-2, max_steps=200)
    assert opt.loss == pytest.approx(np.nanmin(opt.losses))
    W = jnp.asarray(opt.params)
    assert float(losses.svm_loss(W, ds.X_train, ds.y_train, 1e-2)) == pytest.approx(
        opt.loss, rel=1e-5
    )
    assert opt.loss < 0.5 * opt.losses[0]


def test_optimum_compiles_once_for_new_reg_tol_and_start():
    ds = data.make_synthetic(num_train=100, dim=6, num_classes=3, seed=2)
    X, y = ds.X_train, ds.y_train
    lbfgs.optimum("softmax", X, y, 1e-2, max_steps=50)
    compiled = lbfgs._certify._cache_size()
    W0 = np.full((3, X.shape[1]), 0.1, np.float32)
    opt = lbfgs.optimum("softmax", X, y, 3e-1, tol=1e-4, max_steps=50, params=W0)
    assert lbfgs._certify._cache_size() == compiled
    assert opt.num_steps > 0


def test_the_strategy_counts_its_evaluations_and_compiles_once():
    ds = data.make_synthetic(num_train=300, dim=11, num_classes=4, seed=3)

    def go(reg, seed):
        return lbfgs.lbfgs(
            ds.X_train,
            ds.y_train,
            key=jax.random.key(seed),
            num_steps=30,
            reg=reg,
            chunk_size=10,
        )

    before = driver.run_chunk._cache_size()
    r = go(1e-3, 0)  # three chunks, one program
    compiled = driver.run_chunk._cache_size()
    assert compiled == before + 1
    other = go(5e-2, 1)
    assert driver.run_chunk._cache_size() == compiled
    for result in (r, other):
        assert result.status == "completed" and result.num_steps == 30
        evaluations = result.metrics["evaluations"]
        # Searching, each step evaluates; after PATIENCE steps in a row without
        # a decrease (float32's floor) it rests: the weights stay, 0 evaluations.
        rest = int(np.argmax(evaluations == 0)) if np.any(evaluations == 0) else 30
        assert np.all(evaluations[:rest] >= 1) and evaluations[0] >= 2  # W0's too
        assert np.all(evaluations[rest:] == 0)
        if rest < 30:
            last = result.losses[rest - lbfgs.PATIENCE - 1 : rest]
            assert np.all(last[1:] >= last[0])  # no decrease: why it rests
            assert np.all(result.losses[rest:] == result.losses[rest - 1])
        assert (
            result.num_loss_evals == evaluations.sum() == int(result.state.evaluations)
        )
        assert result.num_examples_evaluated == result.num_loss_evals * 300
        assert np.all(np.diff(result.losses) <= 1e-6)
    assert other.losses[-1] != r.losses[-1]


def test_float32_steps_reach_the_float64_optimum(digits64):
    ds, opt = digits64
    r = lbfgs.lbfgs(ds.X_train, ds.y_train, key=jax.random.key(0), num_steps=100)
    assert r.params.dtype == np.float32
    assert r.losses[-1] == pytest.approx(opt.loss, rel=1e-4)
    assert r.metrics["grad_norm"][-1] < 1e-3 * opt.grad_norms[0]


def test_train_runs_lbfgs_on_digits(tmp_path):
    out = tmp_path / "run"
    config = configs.TrainConfig(strategy="lbfgs", loss="softmax")
    summary = train.run(config, out)
    assert summary["status"] == "completed" and summary["test_accuracy"] >= 0.93
    assert summary["num_steps"] == 100
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["reg"] == REG
    assert saved["from_preset"]["reg"] == "digits/*/lbfgs/*"
    metrics = np.loadtxt(out / "metrics.csv", delimiter=",", skiprows=1)
    assert metrics.shape == (100, 2)
    assert (out / "loss_curve.png").stat().st_size > 0


def test_a_chunk_runs_on_device_alone():
    """No transfer between host and device inside a compiled chunk."""
    ds = data.make_synthetic(num_train=64, dim=6, num_classes=3, seed=4)
    d = driver.Data(jnp.asarray(ds.X_train), jnp.asarray(ds.y_train))
    strategy, key = lbfgs.LBFGS(), jax.random.key(0)
    state = strategy.init(jnp.zeros((3, 7)), lbfgs.LBFGSHParams(1e-2), d, key)
    args = (strategy, state, jnp.bool_(False), key, d, jnp.int32(0), jnp.int32(4))
    jax.block_until_ready(driver.run_chunk(*args, capacity=4))
    with jax.transfer_guard("disallow"):
        out = driver.run_chunk(*args, capacity=4)
        out = driver.run_chunk(strategy, out[0], *args[2:], capacity=4)
    assert int(out[0].step) == 8 and not bool(out[1])
