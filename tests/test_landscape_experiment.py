"""``experiments.landscape`` end to end, in process: ``run(config, workdir)``."""

import json

import numpy as np
import pytest

from experiments import landscape
from linopt import configs
from linopt.errors import LinoptError

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ["landscape_1d.png", "landscape_1d_reg.png", "toy_pieces.png"] + [
    f"landscape_2d_{key}{suffix}.png"
    for key in ("example", "average", "train")
    for suffix in ("", "_reg")
]


@pytest.mark.slow
def test_small_grids_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    config = configs.LandscapeConfig(
        grid_size=9, line_points=21, num_average=20, example=5
    )
    returned = landscape.run(config, out)
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data[:8] == PNG and len(data) > 1000, name
    summary = json.loads((out / "summary.json").read_text())
    assert returned == summary
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
    np.testing.assert_allclose(summary["toy"]["kinks_w0"], [-2.3, -0.7, 0.2, 0.8])
    arrays = np.load(out / "landscape.npz")
    assert arrays["grid_average_reg"].shape == (9, 9)
    assert arrays["line_train"].shape == (21,)
    assert arrays["toy_pieces"].shape[1:] == (3, 3)
    stdout = capsys.readouterr().out
    assert "min" in stdout and str(out) in stdout


@pytest.mark.slow
def test_trained_weights_at_the_centre(tmp_path):
    W = np.random.default_rng(0).standard_normal((10, 65)).astype(np.float32)
    np.save(tmp_path / "W.npy", W)
    out = tmp_path / "run"
    config = configs.LandscapeConfig(
        weights=str(tmp_path / "W.npy"),
        alpha_max=1.0,
        direction_scale="rows",
        grid_size=5,
        line_points=5,
        reg=0.0,
    )
    summary = landscape.run(config, out)
    assert summary["alpha_range"] == [-1.0, 1.0] and summary["reg"] == 0.0
    assert "W.npy" in summary["centre"]
    assert json.loads((out / "config.json").read_text())["config"]["init_scale"] is None


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"example": 100_000}, r"example must be below the \d+ training examples"),
        ({"num_average": 100_000}, r"num_average must be at most the \d+ training"),
    ],
)
def test_beyond_the_training_split_is_refused_before_any_file(
    tmp_path, fields, message
):
    out = tmp_path / "w"
    with pytest.raises(LinoptError, match=message) as e:
        landscape.run(configs.LandscapeConfig(**fields), out)
    assert "\n" not in str(e.value)
    assert not out.exists()


def test_weights_of_the_wrong_shape(tmp_path):
    np.save(tmp_path / "W.npy", np.zeros((3, 4), np.float32))
    out = tmp_path / "w"
    config = configs.LandscapeConfig(weights=str(tmp_path / "W.npy"))
    with pytest.raises(LinoptError, match=r"needs \(10, 65\)") as e:
        landscape.run(config, out)
    assert str(e.value).startswith("weights ") and "\n" not in str(e.value)
    assert not out.exists()
