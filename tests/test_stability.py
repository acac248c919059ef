"""``experiments.stability`` end to end on digits, in process: ``run(config, workdir)``.

With reg 1 the softmax minimum lies near ``W = 0`` and the Hessian there is
about the one at the start (lambda_max 19.3 against 20.0), so the quadratic
picture holds: below ``2 / lambda_max`` the loss falls, above it the run is
thrown into an oscillation (or, far above, to overflow). Without reg (the
default) the first step already leaves the sharp region around ``W = 0``, and
even 1.5x falls: the summary says so, the tests below do not rely on it.

The experiment's module is imported inside the tests: its flags join absl's
registry only when these tests run.
"""

import json

import numpy as np
import pytest

from linopt import configs, driver, errors, spectrum

PNG = b"\x89PNG\r\n\x1a\n"
FACTORS = (0.5, 0.9, 1.1, 1.5, 30.0)


@pytest.fixture(scope="module")
def experiment():
    from experiments import stability

    return stability


@pytest.fixture(scope="module")
def near_quadratic(experiment, tmp_path_factory):
    """The factors and one far above, 60 steps, lambda_max every 10."""
    out = tmp_path_factory.mktemp("stability") / "run"
    config = configs.StabilityConfig(
        reg=1.0, factors=FACTORS, num_steps=60, track_every=10
    )
    return experiment.run(config, out), out


def losses_of(out, factor):
    table = np.genfromtxt(out / "metrics.csv", delimiter=",", names=True)
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    return table["step"], table[table.dtype.names[header.index(f"loss_{factor}")]]


def test_below_the_limit_it_converges_above_it_does_not(near_quadratic):
    summary, out = near_quadratic
    runs = summary["factors"]
    lam = summary["lambda_max_start"]
    assert 15 < lam < 25  # digits, reg 1: (lambda_max(X^T X / N) / C) + 2 reg
    for factor in FACTORS:
        run = runs[str(factor)]
        assert run["learning_rate"] == pytest.approx(factor * 2 / lam, rel=1e-12)
    steps, loss = losses_of(out, 0.9)
    np.testing.assert_array_equal(steps[:10], np.arange(10))  # L(W_0), L(W_1), ...
    assert np.all(np.diff(loss[:8]) < 0), loss[:8]  # monotone over the first steps
    assert runs["0.9"]["verdict"] == "decreased"
    assert runs["0.9"]["diverged_step"] is None
    assert runs["0.9"]["final_loss"] < 0.5 * summary["initial_loss"]
    above = [runs["1.1"]["verdict"], runs["1.5"]["verdict"]]
    assert {"grew", "diverged"} & set(above), above
    assert runs["1.5"]["largest_rise"] > 0.1  # thrown well above its lowest
    # Far above, the loss overflows float32: the step is recorded, and
    # lambda_max is no longer measured.
    far = runs["30.0"]
    assert far["verdict"] == "diverged" and far["diverged_step"] is not None
    assert far["largest_rise"] > 1e6
    assert far["lambda_max_path"]["lambda_max"][-1] is None


def test_lambda_max_is_tracked_along_every_path(near_quadratic):
    summary, _ = near_quadratic
    for run in summary["factors"].values():
        path = run["lambda_max_path"]
        assert path["step"] == [0, 10, 20, 30, 40, 50, 60]
        assert path["lambda_max"][0] == summary["lambda_max_start"]
    # 0.9x settles at the minimum, whose lambda_max is below its 2 / lr.
    settled = summary["factors"]["0.9"]
    assert settled["lambda_max_final"] < settled["two_over_lr"]


def test_the_outputs_are_written(near_quadratic):
    summary, out = near_quadratic
    assert json.loads((out / "summary.json").read_text()) == summary
    config = json.loads((out / "config.json").read_text())
    assert "factors" in json.dumps(config) and "lanczos_iters" in json.dumps(config)
    for name in ("stability.png", "sharpness.png"):
        assert (out / name).read_bytes()[:8] == PNG
    sharp = np.genfromtxt(out / "sharpness.csv", delimiter=",", skip_header=1)
    assert sharp.shape == (7, 1 + len(FACTORS))
    steps, _ = losses_of(out, 0.5)
    assert len(steps) == 60


def test_the_first_loss_is_at_the_measured_start(experiment, near_quadratic):
    """lambda_max is measured at the weights the sweep starts from."""
    summary, out = near_quadratic
    for factor in FACTORS:
        _, loss = losses_of(out, factor)
        assert loss[0] == pytest.approx(summary["initial_loss"], rel=1e-6)


def test_a_new_reg_or_seed_compiles_nothing(experiment, near_quadratic, tmp_path):
    before = driver.run_chunk._cache_size(), spectrum._sharpness._cache_size()
    config = configs.StabilityConfig(
        reg=0.5, seed=3, factors=FACTORS, num_steps=20, track_every=10
    )
    summary = experiment.run(config, tmp_path / "again")
    assert summary["reg"] == 0.5
    after = driver.run_chunk._cache_size(), spectrum._sharpness._cache_size()
    assert after == before


def test_the_defaults_come_from_the_step_size_preset(experiment, tmp_path):
    summary = experiment.run(configs.StabilityConfig(num_steps=10), tmp_path / "d")
    assert summary["reg"] == 0.0 and summary["loss"] == "softmax"
    assert list(summary["factors"]) == ["0.5", "0.9", "1.1", "1.5"]
    assert "* 0.001" in summary["init"]


def test_what_cannot_run_says_why(experiment, tmp_path):
    with pytest.raises(errors.LinoptError, match="lanczos_iters is 5000"):
        experiment.run(configs.StabilityConfig(lanczos_iters=5000), tmp_path / "a")
    with pytest.raises(errors.LinoptError, match="lambda_max is 0"):
        experiment.run(configs.StabilityConfig(loss="svm"), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match=r"factors values must be in \(0, 100\]"):
        configs.StabilityConfig(factors=(0.9, -1.0))
    with pytest.raises(ValueError, match="track_every must be >= 1"):
        configs.StabilityConfig(track_every=0)


@pytest.mark.slow  # a subprocess
def test_a_bad_flag_value_is_one_line(run_module, tmp_path):
    out = tmp_path / "w"
    proc = run_module("stability", "--factors=0.9,-1", f"--workdir={out}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "--factors values must be in (0, 100]" in lines[0]
    assert not out.exists()
