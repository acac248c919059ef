"""The train experiment end to end, as a user runs it (subprocess)."""

import json

import numpy as np
import pytest


def test_default_run_on_digits(run_module, tmp_path):
    out = tmp_path / "run"
    proc = run_module("train", "--strategy=minibatch", f"--workdir={out}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["test_accuracy"] >= 0.90
    for key in ("val_accuracy", "train_loss", "num_loss_evals", "wall_time_s"):
        assert key in summary
    config = json.loads((out / "config.json").read_text())
    assert config["flags"]["strategy"] == "minibatch" and config["seed"] == 0
    assert {"jax", "jaxlib", "optax", "numpy", "devices", "x64"} <= set(
        config["environment"]
    )
    metrics = np.loadtxt(out / "metrics.csv", delimiter=",", skiprows=1)
    assert metrics.shape == (1500, 2)
    for png in ("loss_curve.png", "templates.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.load(out / "params.npy").shape == (10, 65)
    assert "test acc" in proc.stdout


def test_all_strategies_compared(run_module, tmp_path):
    out = tmp_path / "all"
    proc = run_module("train", "--strategy=all", "--num_steps=100", f"--workdir={out}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["strategies"]) == {
        "random_search",
        "random_local_search",
        "gradient_descent",
        "minibatch",
        "sgd",
    }
    for name, s in summary["strategies"].items():
        assert s["status"] == "completed" and s["num_loss_evals"] == 100, name
        assert (out / name / "summary.json").exists()
    for f in (
        "comparison.csv",
        "comparison.md",
        "loss_vs_evals.png",
        "loss_vs_time.png",
    ):
        assert (out / f).stat().st_size > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategy=bogus"], "strategy"),
        (["--batch_size=0"], "--batch_size must be >= 1"),
        (["--num_steps=-3"], "--num_steps must be >= 1"),
        (["--learning_rate=-1"], "--learning_rate must be > 0"),
        (["--dataset=cifar10", "--nodownload"], "cifar-10-batches-py"),
        (["stray_argument"], "unexpected arguments"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(run_module, tmp_path, args, message):
    proc = run_module("train", *args, f"--workdir={tmp_path / 'w'}", timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr
