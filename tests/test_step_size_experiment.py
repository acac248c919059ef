"""``python -m experiments.step_size`` end to end, as a user runs it."""

import json
import re

import numpy as np
import pytest

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_lecture_sweep_on_digits(run_module, tmp_path):
    out = tmp_path / "run"
    proc = run_module("step_size", "--num_examples=300", f"--workdir={out}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    for key in ("original_loss", "gradient_norm", "best_loss", "lecture"):
        assert key in summary
    np.testing.assert_allclose(summary["step_sizes"], 10.0 ** np.arange(-10, 0))
    losses = np.array(summary["losses"])
    assert losses.shape == (10,) and np.all(np.isfinite(losses))
    assert summary["best_step_size"] == summary["step_sizes"][int(np.argmin(losses))]
    assert summary["num_examples"] == 300 and summary["loss"] == "svm"
    assert (out / "step_size.png").read_bytes()[:8] == PNG
    assert (out / "config.json").exists()
    assert np.loadtxt(out / "metrics.csv", delimiter=",", skiprows=1).shape == (10, 2)
    # The lecture's printout: one original line, then one line a step size.
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"original loss: \d+\.\d{6}", lines[0])
    assert lines[1].startswith("for step size 1.000000e-10 new loss: ")
    assert lines[10].startswith("for step size 1.000000e-01 new loss: ")


@pytest.mark.slow
def test_finer_grid_and_softmax(run_module, tmp_path):
    out = tmp_path / "fine"
    proc = run_module(
        "step_size",
        "--loss=softmax",
        "--reg=0.01",
        "--points_per_decade=3",
        "--num_examples=200",
        "--min_step_size=1e-6",
        "--max_step_size=1",
        f"--workdir={out}",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["step_sizes"]) == len(summary["losses"]) == 19
    assert summary["loss"] == "softmax" and summary["reg"] == 0.01


@pytest.mark.parametrize(
    "args, message",
    [
        (["--points_per_decade=0"], "--points_per_decade must be at least 1"),
        (["--max_step_size=1e-12"], "must be finite and larger than"),
    ],
)
def test_bad_flags_are_one_line_exit_2(run_module, tmp_path, args, message):
    out = tmp_path / "w"
    proc = run_module("step_size", *args, f"--workdir={out}", timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # flags are checked before any work
