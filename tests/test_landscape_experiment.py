"""``python -m experiments.landscape`` end to end, as a user runs it."""

import json

import numpy as np
import pytest

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ["landscape_1d.png", "landscape_1d_reg.png", "toy_pieces.png"] + [
    f"landscape_2d_{key}{suffix}.png"
    for key in ("example", "average", "train")
    for suffix in ("", "_reg")
]


@pytest.mark.slow
def test_small_grids_on_digits(run_module, tmp_path):
    out = tmp_path / "run"
    proc = run_module(
        "landscape",
        "--grid_size=9",
        "--line_points=21",
        "--num_average=20",
        "--example=5",
        f"--workdir={out}",
    )
    assert proc.returncode == 0, proc.stderr
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data[:8] == PNG and len(data) > 1000, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["grid_size"] == 9 and summary["line_points"] == 21
    assert summary["direction_scale"] == "weights" and summary["orthogonalize"]
    low, high = summary["alpha_range"]
    assert low == -high and high > 0
    assert summary["examples"]["example"] == 5
    assert len(set(summary["examples"]["average"])) == 20
    assert summary["reg"] == 1.0  # the digits preset
    assert len(summary["panels"]) == 12
    for panel in summary["panels"].values():
        assert 0 <= panel["loss_min"] <= panel["loss_max"]
    arrays = np.load(out / "landscape.npz")
    assert arrays["grid_average_reg"].shape == (9, 9)
    assert arrays["line_train"].shape == (21,)
    assert arrays["toy_pieces"].shape[1:] == (3, 3)
    assert "min" in proc.stdout and str(out) in proc.stdout


@pytest.mark.slow
def test_trained_weights_at_the_centre(run_module, tmp_path):
    W = np.random.default_rng(0).standard_normal((10, 65)).astype(np.float32)
    np.save(tmp_path / "W.npy", W)
    out = tmp_path / "run"
    proc = run_module(
        "landscape",
        f"--weights={tmp_path / 'W.npy'}",
        "--alpha_max=1",
        "--direction_scale=rows",
        "--grid_size=5",
        "--line_points=5",
        "--reg=0",
        f"--workdir={out}",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["alpha_range"] == [-1.0, 1.0] and summary["reg"] == 0.0
    assert "W.npy" in summary["centre"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--grid_size=0"], "--grid_size must be between 3 and"),
        (["--example=100000"], "--example must be below"),
    ],
)
def test_bad_flags_are_one_line_exit_2(run_module, tmp_path, args, message):
    out = tmp_path / "w"
    proc = run_module("landscape", *args, f"--workdir={out}", timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_weights_of_the_wrong_shape(run_module, tmp_path):
    np.save(tmp_path / "W.npy", np.zeros((3, 4), np.float32))
    proc = run_module(
        "landscape",
        f"--weights={tmp_path / 'W.npy'}",
        f"--workdir={tmp_path / 'w'}",
        timeout=60,
    )
    assert proc.returncode == 2 and "needs (10, 65)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
