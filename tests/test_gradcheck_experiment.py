"""``python -m experiments.gradcheck``: the library path in-process, and the
command end to end as a user (or a CI job) runs it."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import gradcheck as experiment
from linopt import data, gradcheck, losses

PNG = b"\x89PNG\r\n\x1a\n"


def small_digits(n=10, dtype=np.float64):
    ds = data.load("digits", dtype=dtype)
    X, y = jnp.asarray(ds.X_train[:n]), jnp.asarray(ds.y_train[:n])
    W = experiment.default_weight_scale(X) * jax.random.normal(
        jax.random.key(0), (ds.num_classes, ds.dim), X.dtype
    )
    return W, X, y


@pytest.mark.parametrize("mode", ["full", "sparse", "directional"])
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
        _, right = experiment.check_loss("svm", W, X, y, **kw)
        wrong = losses.svm_gradient(W, X, y, 1e-3) - 1e-3 * W  # reg without its 2
        _, caught = experiment.check_loss("svm", W, X, y, gradient=wrong, **kw)
    assert right["passed"] and right["max_relative_error"] <= 1e-7
    assert not caught["passed"] and caught["max_relative_error"] > 1e-6
    sweep = right["h_sweep"]
    assert [row["h"] for row in sweep] == [float(f"1e-{k}") for k in range(1, 11)]
    # round-off takes over at small h: the error grows as h shrinks past 1e-5
    assert sweep[-1]["median_relative_error"] > 100 * sweep[4]["median_relative_error"]


def test_svm_margins_are_the_hinge_arguments():
    with jax.enable_x64(True):
        W, X, y = small_digits()
        m = np.asarray(experiment.svm_margins(X, y)(W))
        s = np.asarray(X @ W.T)
    rows = np.arange(len(y))
    want = s - s[rows, np.asarray(y)][:, None] + 1
    want[rows, np.asarray(y)] = 1.0
    np.testing.assert_allclose(m, want, atol=1e-12)
    assert (m > 0).any() and (m < 0).any()  # the default scale reaches both sides


def test_end_to_end_on_digits(run_module, tmp_path):
    out = tmp_path / "run"
    proc = run_module(
        "gradcheck", "--num_examples=8", "--num_checks=4", f"--workdir={out}"
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["passed"]
    assert summary["units"] == "feature"
    for name in ("svm", "softmax"):
        assert summary[name]["max_relative_error"] <= 1e-7
        assert summary[name]["num_checks"] == 650
        assert len(summary[name]["h_sweep"]) == 10
        assert (out / f"relative_errors_{name}.png").read_bytes()[:8] == PNG
        assert len((out / f"checks_{name}.csv").read_text().splitlines()) == 651
    assert (out / "h_sweep.png").read_bytes()[:8] == PNG
    assert len((out / "h_sweep.csv").read_text().splitlines()) == 21
    config = json.loads((out / "config.json").read_text())
    assert config["flags"]["mode"] == "full" and config["environment"]["x64"]
    assert "max rel err" in proc.stdout and "good" in proc.stdout


def test_a_failing_check_exits_nonzero_naming_the_loss(run_module, tmp_path):
    # forward differences carry O(h) error: they cannot reach 1e-7
    proc = run_module(
        "gradcheck",
        "--loss=softmax",
        "--method=forward",
        "--mode=sparse",
        "--num_examples=8",
        "--num_checks=4",
        f"--workdir={tmp_path / 'run'}",
    )
    assert proc.returncode == 1
    assert "FAILED: softmax" in proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["failed"] == ["softmax"] and "svm" not in summary


def test_float32_check_fails_with_a_warning():
    W, X, y = small_digits(dtype=np.float32)
    with pytest.warns(gradcheck.PrecisionWarning, match="float32"):
        result, summary = experiment.check_loss(
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


@pytest.mark.parametrize("flag", ["--h=0", "--num_checks=0"])
def test_bad_flags_are_one_line_errors(run_module, tmp_path, flag):
    proc = run_module("gradcheck", flag, f"--workdir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
