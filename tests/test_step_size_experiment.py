"""``experiments.step_size`` end to end, in process: ``run(config, workdir)``."""

import json
import re

import numpy as np
import pytest

from experiments import step_size
from linopt import configs

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_lecture_sweep_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    returned = step_size.run(configs.StepSizeConfig(num_train=300), out)
    summary = json.loads((out / "summary.json").read_text())
    assert returned == summary
    assert summary["status"] == "completed"
    for key in ("original_loss", "gradient_norm", "best_loss", "lecture"):
        assert key in summary
    np.testing.assert_allclose(summary["step_sizes"], 10.0 ** np.arange(-10, 0))
    losses = np.array(summary["losses"])
    assert losses.shape == (10,) and np.all(np.isfinite(losses))
    assert summary["best_step_size"] == summary["step_sizes"][int(np.argmin(losses))]
    assert summary["num_train"] == 300 and summary["loss"] == "svm"
    assert summary["reg"] == 0.0  # the step-size preset: the lecture's, no reg
    assert (out / "step_size.png").read_bytes()[:8] == PNG
    assert (out / "step_size_decrease.png").read_bytes()[:8] == PNG
    assert (out / "config.json").exists()
    assert np.loadtxt(out / "metrics.csv", delimiter=",", skiprows=1).shape == (10, 2)
    # The lecture's printout: one original line, then one line a step size.
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"original loss: \d+\.\d{6}", lines[0])
    assert lines[1].startswith("for step size 1.000000e-10 new loss: ")
    assert lines[10].startswith("for step size 1.000000e-01 new loss: ")


@pytest.mark.slow
def test_finer_grid_and_softmax(tmp_path):
    out = tmp_path / "fine"
    config = configs.StepSizeConfig(
        loss="softmax",
        reg=0.01,
        points_per_decade=3,
        num_train=200,
        min_step_size=1e-6,
        max_step_size=1.0,
    )
    summary = step_size.run(config, out)
    assert len(summary["step_sizes"]) == len(summary["losses"]) == 19
    assert summary["loss"] == "softmax" and summary["reg"] == 0.01


def test_a_best_step_at_the_grids_edge_is_said(tmp_path, capsys):
    config = configs.StepSizeConfig(loss="softmax")  # digits: the best is 1e-1
    summary = step_size.run(config, tmp_path / "edge")
    assert summary["best_at_edge"] == "largest"
    assert "pass --max_step_size larger" in capsys.readouterr().out
    wider = step_size.run(
        configs.StepSizeConfig(loss="softmax", max_step_size=100.0), tmp_path / "wide"
    )
    assert wider["best_at_edge"] is None  # the overshoot is in the grid now
    assert wider["losses"][-1] > wider["best_loss"]
    p = wider["predicted"]  # the curvature's: consistent with the measured sweep
    assert p["gradient_norm_sq"] == pytest.approx(wider["gradient_norm"] ** 2, 1e-5)
    assert p["best_step"] == pytest.approx(p["gradient_norm_sq"] / p["curvature"])
    assert p["best_step"] / 3 < wider["best_step_size"] < 3 * p["best_step"]
