"""Steps to a target against batch size: ``linopt.batch_size`` and the experiment."""

import json
import math
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import batch_size as experiment
from linopt import batch_size, configs, data, driver, strategies
from linopt.driver import Data

PNG = b"\x89PNG\r\n\x1a\n"


def test_fit_recovers_the_hyperbola_exactly():
    B = np.array([1, 4, 16, 64, 256, 1024])
    s_min, e_min = 120.0, 9000.0
    fit = batch_size.fit_tradeoff(B, s_min + e_min / B)
    assert fit.s_min == pytest.approx(s_min, rel=1e-9)
    assert fit.e_min == pytest.approx(e_min, rel=1e-9)
    assert fit.b_crit == pytest.approx(75.0, rel=1e-9)
    # The paper's form: (S / S_min - 1)(E / E_min - 1) = 1 at every B.
    S, E = fit.steps(B), fit.examples(B)
    np.testing.assert_allclose((S / s_min - 1) * (E / e_min - 1), 1.0, rtol=1e-9)
    # Points that never reached the target are left out; one left is too few.
    partial = batch_size.fit_tradeoff([*B, 4096], [*(s_min + e_min / B), math.inf])
    assert partial.b_crit == pytest.approx(75.0, rel=1e-9)
    with pytest.raises(ValueError, match="2 batch sizes"):
        batch_size.fit_tradeoff([1, 2], [10.0, math.inf])


def test_batch_sizes_and_evaluation_points():
    assert batch_size.batch_sizes(1258) == (1, 4, 16, 64, 256, 1024, 1258)
    assert batch_size.batch_sizes(1024) == (1, 4, 16, 64, 256, 1024)
    points = batch_size.eval_points(1000, per_doubling=4)
    assert points[0] == 1 and points[-1] == 1000 and np.all(np.diff(points) > 0)
    assert np.all(points[1:] / points[:-1] <= 2.0)  # never more than a doubling


def test_crossing_is_exact_for_a_power_law():
    # L(t) = 8 t^-1/2: log-log straight, so the interpolation is exact.
    def loss(t):
        return 8 * t**-0.5

    assert batch_size._crossing(16, loss(16), 64, loss(64), 1.25) == pytest.approx(
        (8 / 1.25) ** 2
    )


@pytest.fixture(scope="module")
def digits():
    ds = data.load("digits")
    train = Data(jnp.asarray(ds.X_train), jnp.asarray(ds.y_train))
    return ds, train, (train.X, train.y)


def test_a_ladder_stops_where_a_rate_first_reaches_the_target(digits):
    ds, train, rows = digits
    strategy = strategies.GradientDescent("svm", batch_size=16)
    ladder = batch_size.run_ladder(
        strategy, {"reg": 1e-3}, train, rows, [1e-4, 1e-3, 1e-2],
        target=0.2, max_steps=5000, seed=0, num_classes=10, init_scale=1e-3,
    )  # fmt: skip
    crossed = np.isfinite(ladder.steps)
    assert crossed.any()
    before, last = ladder.eval_losses[-2], ladder.eval_losses[-1]
    assert np.all(before > 0.2) and np.all(last[crossed] <= 0.2)
    assert np.all(last[~crossed] > 0.2)
    t0, t1 = ladder.eval_steps[-2:]
    assert np.all((t0 <= ladder.steps[crossed]) & (ladder.steps[crossed] <= t1))
    assert int(np.argmin(ladder.steps)) == 2  # the largest rate gets there first


def test_search_extends_the_rates_and_compiles_once_per_batch_size(digits):
    ds, train, rows = digits
    strategy = strategies.GradientDescent("svm", batch_size=23)  # new to jit
    before = driver.run_chunk._cache_size()
    search = batch_size.steps_to_target(
        strategy, {"reg": 1e-3}, train, rows,
        center=1e-6, target=0.2, max_steps=3000, num_learning_rates=3,
        factor=10.0, max_extensions=3,
        seed=0, num_classes=10, init_scale=1e-3,
    )  # fmt: skip
    # Started 10,000x too small: the ladder grew upwards until the best was inside.
    assert len(search.ladders) >= 2 and search.reached and not search.at_edge
    assert search.learning_rate > 1e-4
    tried = np.concatenate([r.learning_rates for r in search.ladders])
    assert tried.min() < search.learning_rate < tried.max()
    assert driver.run_chunk._cache_size() == before + 1  # every ladder, one compile


@pytest.mark.slow
def test_the_experiment_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    config = configs.BatchSizeConfig(batch_sizes=(1, 16, 256), budget=2.0)
    summary = experiment.run(config, out)
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    assert summary["target_from"] == "the preset run's end"
    assert set(summary["batch_sizes"]) == {"1", "16", "256"}
    steps = [summary["batch_sizes"][b]["steps"] for b in ("1", "16", "256")]
    assert steps[0] > steps[1] > steps[2] > 0  # larger batches, fewer steps
    assert 0 < summary["b_crit"] < math.inf and summary["s_min"] > 0
    assert summary["b_simple_start"] > 0 and summary["b_simple_end"] > 0
    cos = summary["cosine"]["start"]
    assert len(cos["predicted"]) == len(cos["measured"]) == 3
    assert np.all(np.diff(cos["predicted"]) > 0)  # more examples, truer direction
    np.testing.assert_allclose(cos["measured"], cos["predicted"], atol=0.05)
    for name in ("steps", "examples", "cosine", "noise_scale"):
        assert (out / f"{name}.png").read_bytes()[:8] == PNG
    assert "B_crit" in capsys.readouterr().out


def test_a_batch_larger_than_the_data_is_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.batch_size", "--batch_sizes=4,100000",
         f"--workdir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    n = len(data.load("digits").y_train)
    assert f"exceeds the {n} training examples" in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()  # refused before any folder was made
