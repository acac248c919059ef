"""Grids as one program: each cell equals its own run, per-cell divergence,
no recompilation, and the sweep experiment end to end."""

import jax
import numpy as np
import pytest

from linopt import data, driver, losses, strategies
from linopt import sweep as sweeps


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def _single(ds, seed, lr, reg, batch_size, num_steps, **kwargs):
    return strategies.minibatch(
        ds.X_train,
        ds.y_train,
        key=jax.random.key(seed),
        num_steps=num_steps,
        batch_size=batch_size,
        learning_rate=lr,
        reg=reg,
        num_classes=10,
        chunk_size=num_steps,
        **kwargs,
    )


@pytest.mark.parametrize(
    "batch_size, optimizer, lrs, regs",
    [
        (32, "momentum", [1e-3, 1e-2], [1e-3]),
        (None, "sgd", [1e-2], [1e-3, 1e-1]),
    ],
)
def test_every_cell_equals_its_own_run(digits, batch_size, optimizer, lrs, regs):
    seeds = [0, 5]
    strategy = strategies.GradientDescent("svm", batch_size, optimizer=optimizer)
    result = sweeps.sweep(
        strategy,
        digits.X_train,
        digits.y_train,
        grid={"learning_rate": lrs, "reg": regs},
        seeds=seeds,
        num_steps=30,
        num_classes=10,
        chunk_size=8,
    )
    assert result.params.shape == (2, len(lrs), len(regs), 10, 65)
    assert result.losses.shape == (2, len(lrs), len(regs), 30)
    assert result.status == "completed" and not result.diverged.any()
    np.testing.assert_array_equal(result.steps, 30)
    for s, seed in enumerate(seeds):
        for i, lr in enumerate(lrs):
            for j, reg in enumerate(regs):
                one = _single(
                    digits, seed, lr, reg, batch_size, 30, optimizer=optimizer
                )
                np.testing.assert_allclose(
                    result.losses[s, i, j], one.losses, rtol=1e-5, atol=1e-6
                )
                np.testing.assert_allclose(
                    result.params[s, i, j], one.params, rtol=1e-5, atol=1e-7
                )
                assert result.hparams["learning_rate"][s, i, j] == np.float32(lr)
                assert result.hparams["reg"][s, i, j] == np.float32(reg)


def test_a_diverging_cell_is_marked_and_the_rest_go_on(digits):
    # lr * reg = 1e3: each step multiplies W by about -2000, so W overflows.
    lrs, regs = [1e-3, 1.0], [1e-3, 1e3]
    strategy = strategies.GradientDescent("softmax", 32)
    result = sweeps.sweep(
        strategy,
        digits.X_train,
        digits.y_train,
        grid={"learning_rate": lrs, "reg": regs},
        num_steps=40,
        num_classes=10,
        chunk_size=16,
    )
    expected = np.array([[[False, False], [False, True]]])
    np.testing.assert_array_equal(result.diverged, expected)
    assert result.cell_status[0, 1, 1] == "diverged"
    assert result.cell_status[0, 0, 0] == "completed"
    assert np.isfinite(result.params).all()  # the last finite weights
    one = _single(digits, 0, 1.0, 1e3, 32, 40, loss="softmax")
    assert one.status == "diverged"
    assert result.steps[0, 1, 1] == one.num_steps < 40
    np.testing.assert_allclose(result.params[0, 1, 1], one.params, rtol=1e-5)
    assert np.isnan(result.losses[0, 1, 1, one.num_steps + 1 :]).all()
    assert np.isfinite(result.losses[0, 0]).all()
    # The other cells went on to the end, each as its own run.
    np.testing.assert_array_equal(result.steps[~expected], 40)
    assert result.status == "completed" and result.num_steps == 40
    other = _single(digits, 0, 1e-3, 1e-3, 32, 40, loss="softmax")
    np.testing.assert_allclose(
        result.params[0, 0, 0], other.params, rtol=1e-5, atol=1e-7
    )


def test_new_values_do_not_recompile(digits):
    strategy = strategies.GradientDescent("svm", 16)
    kwargs = {"num_steps": 10, "num_classes": 10, "chunk_size": 5}
    sweeps.sweep(
        strategy,
        digits.X_train,
        digits.y_train,
        grid={"learning_rate": [1e-3, 1e-2], "reg": [0.1]},
        **kwargs,
    )
    compiled = driver.run_chunk._cache_size()
    sweeps.sweep(
        strategy,
        digits.X_train,
        digits.y_train,
        seeds=[7],
        grid={"learning_rate": [5e-4, 2e-2], "reg": [3.0]},
        **kwargs,
    )
    assert driver.run_chunk._cache_size() == compiled


def test_any_traced_hyperparameter_is_an_axis_and_stop_is_clean(digits):
    strategy = strategies.GradientDescent("svm", 16, schedule="step", decay_steps=5)
    calls = []

    def on_chunk(progress):
        calls.append(progress.chunk["loss"].shape)
        return False

    result = sweeps.sweep(
        strategy,
        digits.X_train,
        digits.y_train,
        grid={
            "learning_rate": [1e-3, 1e-2],
            "reg": [1e-3],
            "decay_rate": [0.5, 0.9, 1.0],
        },
        num_steps=20,
        num_classes=10,
        chunk_size=5,
        on_chunk=on_chunk,
    )
    assert result.status == "interrupted" and result.num_steps == 5
    assert result.losses.shape == (1, 2, 1, 3, 5)
    assert calls == [(5, 1, 6)]  # steps first, then (seeds, cells)
    np.testing.assert_array_equal(
        result.hparams["decay_rate"][0, 1, 0], np.float32([0.5, 0.9, 1.0])
    )


def test_a_grid_names_the_strategys_hyperparameters(digits):
    strategy = strategies.GradientDescent("svm", 16)
    args = (strategy, digits.X_train, digits.y_train)
    with pytest.raises(ValueError, match="no hyperparameter.*'step_size'"):
        sweeps.sweep(*args, grid={"step_size": [1.0], "reg": [0.1]}, num_steps=2)
    with pytest.raises(ValueError, match="needs a value of.*'learning_rate'"):
        sweeps.sweep(*args, grid={"reg": [0.1]}, num_steps=2)


def test_evaluate_matches_numpy(digits):
    rng = np.random.default_rng(0)
    params = rng.standard_normal((2, 3, 10, 65)).astype(np.float32) * 0.01
    reg = np.float32([[0.0, 0.1, 1.0], [2.0, 0.5, 0.0]])
    out = sweeps.evaluate(params, digits.X_val, digits.y_val, loss="svm", reg=reg)
    X, y = digits.X_val.astype(np.float64), digits.y_val
    for index in np.ndindex(2, 3):
        W = params[index].astype(np.float64)
        s = X @ W.T
        margins = np.maximum(0, s - s[np.arange(len(y)), y][:, None] + 1)
        margins[np.arange(len(y)), y] = 0
        want = margins.sum(1).mean() + reg[index] * (W * W).sum()
        np.testing.assert_allclose(out["loss"][index], want, rtol=1e-5)
        assert out["accuracy"][index] == pytest.approx(np.mean(s.argmax(1) == y))
        assert out["loss"][index] == pytest.approx(
            float(losses.svm_loss(W.astype(np.float32), digits.X_val, y, reg[index])),
            rel=1e-5,
        )


def test_best_cell_averages_seeds_and_avoids_divergence():
    val = np.array(
        [[[0.5, 0.9], [0.6, 0.7]], [[0.5, 0.1], [0.8, 0.6]]]
    )  # (seeds, lr, reg)
    diverged = np.zeros_like(val, bool)
    assert sweeps.best_cell(val, diverged) == (1, 1, 0)  # mean 0.7, then seed 1
    diverged[0, 1, 0] = True
    assert sweeps.best_cell(val, diverged) == (0, 1, 1)
    assert sweeps.best_cell(val, np.ones_like(val, bool)) == (1, 1, 0)
