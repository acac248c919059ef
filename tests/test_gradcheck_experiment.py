"""The gradient check of linopt's losses (linopt.gradient_checks) and
``experiments.gradcheck.run`` end to end, in process; one subprocess for the
exit code a CI job sees."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import gradcheck as experiment
from linopt import configs, data, gradcheck, gradient_checks, losses

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = dict(num_train=8, num_checks=4)


def small_digits(n=10, dtype=np.float64):
    ds = data.load("digits", dtype=dtype)
    X, y = jnp.asarray(ds.X_train[:n]), jnp.asarray(ds.y_train[:n])
    W = gradient_checks.default_weight_scale(X) * jax.random.normal(
        jax.random.key(0), (ds.num_classes, ds.dim), X.dtype
    )
    return W, X, y


@pytest.mark.parametrize("mode", gradient_checks.MODES)
def test_check_loss_catches_a_wrong_svm_gradient(mode):
    with jax.enable_x64(True):
        W, X, y = small_digits()
        kw = dict(
            reg=1e-3,
            h=1e-5,
            method="centered",
            mode=mode,
            num_checks=5,
            key=jax.random.key(1),
        )
        _, right = gradient_checks.check_loss("svm", W, X, y, **kw)
        wrong = losses.svm_gradient(W, X, y, 1e-3) - 1e-3 * W  # reg without its 2
        _, caught = gradient_checks.check_loss("svm", W, X, y, gradient=wrong, **kw)
    assert right["passed"] and right["max_relative_error"] <= 1e-7
    assert not caught["passed"] and caught["max_relative_error"] > 1e-6
    sweep = right["h_sweep"]
    assert [row["h"] for row in sweep] == [float(f"1e-{k}") for k in range(1, 11)]
    # round-off takes over at small h: the error grows as h shrinks past 1e-5
    assert sweep[-1]["median_relative_error"] > 100 * sweep[4]["median_relative_error"]


def test_svm_kinks_are_the_hinge_arguments():
    with jax.enable_x64(True):
        W, X, y = small_digits()
        m = np.asarray(gradient_checks.svm_kinks(X, y)(W))
        s = np.asarray(X @ W.T)
    rows = np.arange(len(y))
    want = s - s[rows, np.asarray(y)][:, None] + 1
    want[rows, np.asarray(y)] = 1.0
    np.testing.assert_allclose(m, want, atol=1e-12)
    assert (m > 0).any() and (m < 0).any()  # the default scale reaches both sides


def test_float32_check_fails_with_a_warning():
    W, X, y = small_digits(dtype=np.float32)
    with pytest.warns(gradcheck.PrecisionWarning, match="float32"):
        result, summary = gradient_checks.check_loss(
            "softmax",
            W,
            X,
            y,
            reg=1e-3,
            h=1e-5,
            method="centered",
            mode="directional",
            num_checks=4,
            key=jax.random.key(1),
        )
    assert result.dtype == "float32" and not summary["passed"]
    assert summary["max_relative_error"] > 1e-5
    assert min(row["max_relative_error"] for row in summary["h_sweep"]) > 1e-7


def test_run_on_digits_writes_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    summary = experiment.run(configs.GradcheckConfig(**SMALL), out)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["passed"]
    assert summary["failed"] == [] and summary["units"] == "feature"
    assert summary["reg"] == 1e-3  # from the preset table: nonzero, so checked
    for name in ("svm", "softmax"):
        assert summary[name]["max_relative_error"] <= 1e-7
        assert summary[name]["num_checks"] == 650
        assert len(summary[name]["h_sweep"]) == 10
        assert (out / f"relative_errors_{name}.png").read_bytes()[:8] == PNG
        assert len((out / f"checks_{name}.csv").read_text().splitlines()) == 651
    assert (out / "h_sweep.png").read_bytes()[:8] == PNG
    assert len((out / "h_sweep.csv").read_text().splitlines()) == 21
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["mode"] == "full" and config["environment"]["x64"]
    printed = capsys.readouterr()
    assert "max rel err" in printed.out and "good" in printed.out
    assert "FAILED" not in printed.err


FORWARD = dict(loss="softmax", method="forward", mode="sparse", **SMALL)


def test_a_failing_check_names_the_loss(tmp_path, capsys):
    # forward differences carry O(h) error: they cannot reach 1e-7
    summary = experiment.run(configs.GradcheckConfig(**FORWARD), tmp_path / "run")
    assert not summary["passed"]
    assert summary["failed"] == ["softmax"] and "svm" not in summary
    err = capsys.readouterr().err
    assert "FAILED: softmax" in err and "--method=centered" in err


def test_parameter_units_failure_points_at_feature_units(tmp_path, capsys):
    config = configs.GradcheckConfig(
        loss="softmax", units="parameter", mode="sparse", h=1e-2, **SMALL
    )
    summary = experiment.run(config, tmp_path / "run")
    assert summary["failed"] == ["softmax"] and summary["units"] == "parameter"
    assert "--units=feature" in capsys.readouterr().err


def test_failure_hints_follow_the_settings():
    summary = {"dtype": "float64", "max_relative_error": None, "h_sweep": []}
    hint = experiment.failure_hint(summary, method="centered", units="feature")
    assert "smaller --h" in hint
    hint = experiment.failure_hint(summary, method="forward", units="feature")
    assert "--method=centered" in hint
    float32 = {**summary, "dtype": "float32"}
    assert "--nox64" in experiment.failure_hint(float32, method="x", units="x")


@pytest.mark.slow
def test_a_failing_check_exits_1(run_module, tmp_path):
    """The contract a CI job relies on: status 1, the loss named on stderr."""
    flags = [f"--{k}={v}" for k, v in FORWARD.items()]
    proc = run_module("gradcheck", *flags, f"--workdir={tmp_path / 'run'}")
    assert proc.returncode == 1
    assert "FAILED: softmax" in proc.stderr and "Traceback" not in proc.stderr
