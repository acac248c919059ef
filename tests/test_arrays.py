"""Your own arrays: .npz files and folders of .npy, checked before use."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import gradcheck, landscape, sweep, train
from linopt import arrays, configs, data
from linopt.errors import DataError

ROOT = Path(__file__).resolve().parent.parent


def _features(n=300, d=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, d)) + 3 * np.eye(3, d)[y]
    return X.astype(np.float32), y * 7 - 2  # labels -2, 5, 12: re-indexed


def test_npz_and_npy_folder_train_alike(tmp_path):
    X, y = _features()
    np.savez(tmp_path / "f.npz", X_train=X, y_train=y)
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "X_train.npy", X)
    np.save(tmp_path / "f" / "y_train.npy", y)
    sources = {"npz": tmp_path / "f.npz", "npy": tmp_path / "f"}
    runs = {
        kind: train.run(
            configs.TrainConfig(dataset=str(path), num_steps=300), tmp_path / kind
        )
        for kind, path in sources.items()
    }
    assert runs["npz"]["test_accuracy"] == runs["npy"]["test_accuracy"] > 0.8
    np.testing.assert_array_equal(
        np.load(tmp_path / "npz" / "params.npy"),
        np.load(tmp_path / "npy" / "params.npy"),
    )
    ds = data.load(str(tmp_path / "f.npz"))
    assert ds.class_names == ("-2", "5", "12")  # the original labels, in order
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 300
    assert (len(ds.y_val), len(ds.y_test)) == (30, 60)
    assert set(np.unique(ds.y_train)) == {0, 1, 2}


def test_given_splits_are_kept(tmp_path):
    X, y = _features()
    np.savez(
        tmp_path / "s.npz",
        X_train=X[:200],
        y_train=y[:200],
        X_val=X[200:250],
        y_val=y[200:250],
        X_test=X[250:],
        y_test=y[250:],
    )
    ds = data.load(str(tmp_path / "s.npz"))
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (200, 50, 50)
    np.testing.assert_allclose(ds.X_test[:, :-1] + ds.mean_image, X[250:], atol=1e-5)


def test_sweep_gradcheck_and_landscape_run_on_own_arrays(tmp_path):
    """Every experiment takes a feature file; no templates for features."""
    X, y = _features(n=120, d=4)
    np.savez(tmp_path / "f.npz", X_train=X, y_train=y)
    data = {"dataset": str(tmp_path / "f.npz")}
    runs = {
        "sweep": (sweep, configs.SweepConfig(**data, num_steps=20, regs=(1e-3,))),
        "gradcheck": (
            gradcheck,
            configs.GradcheckConfig(
                **data, num_train=4, mode="sparse", num_checks=4, bias=False
            ),
        ),
        "landscape": (
            landscape,
            configs.LandscapeConfig(**data, line_points=9, grid_size=5, num_average=4),
        ),
        "train": (train, configs.TrainConfig(**data, num_steps=20)),
    }
    for name, (module, config) in runs.items():
        summary = module.run(config, tmp_path / name)
        assert summary["status"] == "completed" and summary.get("passed", 1), name
        assert not list((tmp_path / name).glob("**/templates.png")), name
    assert np.load(tmp_path / "train" / "params.npy").shape == (3, 5)


class Boom:  # unpickling it would run code
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/linopt-pickle-ran"),))


BAD = {
    "lengths": (
        dict(X_train=np.zeros((5, 2)), y_train=np.zeros(4, int)),
        "must be \\(5,\\)",
    ),
    "non-finite": (
        dict(
            X_train=np.array([[0.0, 1], [2, np.nan], [3, 4], [5, 6]]),
            y_train=np.arange(4) % 2,
        ),
        "row 1, column 1",
    ),
    "strings": (
        dict(X_train=np.array([["a", "b"]] * 4), y_train=np.arange(4) % 2),
        "numeric",
    ),
    "float labels": (
        dict(X_train=np.zeros((4, 2)), y_train=np.array([0.5, 1, 0, 1])),
        "integers",
    ),
    "no labels": (dict(X_train=np.zeros((4, 2))), "no y_train"),
    "one class": (
        dict(X_train=np.zeros((20, 2)), y_train=np.zeros(20, int)),
        "one class",
    ),
    "1-d features": (dict(X_train=np.zeros(4), y_train=np.zeros(4, int)), "\\(N, D\\)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_gets_one_line(tmp_path, case):
    contents, message = BAD[case]
    np.savez(tmp_path / "bad.npz", **contents)
    with pytest.raises(DataError, match=message):
        data.load(str(tmp_path / "bad.npz"))


def test_pickled_arrays_are_refused_and_never_loaded(tmp_path):
    marker = Path("/tmp/linopt-pickle-ran")
    marker.unlink(missing_ok=True)
    objects = np.empty(4, dtype=object)
    objects[:] = [Boom()] * 4
    np.savez(tmp_path / "p.npz", X_train=np.zeros((4, 2)), y_train=objects)
    with pytest.raises(DataError, match="pickled"):
        data.load(str(tmp_path / "p.npz"))
    assert not marker.exists()


def test_truncated_and_too_large_files(tmp_path, monkeypatch):
    X, y = _features()
    np.savez(tmp_path / "t.npz", X_train=X, y_train=y)
    blob = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="unreadable or truncated"):
        data.load(str(tmp_path / "t.npz"))
    np.savez(tmp_path / "big.npz", X_train=X, y_train=y)
    monkeypatch.setattr(arrays.os, "sysconf", lambda name: 16)  # 256 bytes free
    with pytest.raises(DataError, match="GiB of memory is free"):
        data.load(str(tmp_path / "big.npz"))


def test_a_missing_path_is_a_config_error():
    with pytest.raises(ValueError, match="no such file or folder"):
        configs.TrainConfig(dataset="/no/such/features.npz")


@pytest.mark.slow
def test_the_command_line_says_one_line_and_exits_1(tmp_path):
    np.savez(tmp_path / "bad.npz", **BAD["non-finite"][0])
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.train",
            f"--dataset={tmp_path / 'bad.npz'}",
            f"--workdir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .startswith("error: X_train has 1 non-finite")
    )


def test_the_feature_files_bayes_accuracy_is_the_bayes_rules():
    from benchmarks import make_features

    X, y = make_features.make(100_000, 16, 10, 2.5, seed=3)
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((16, 10)))
    measured = np.mean(np.argmax(X @ q, axis=1) == y)  # the Bayes rule
    exact = make_features.bayes_accuracy(2.5, 10)
    assert abs(measured - exact) < 3 * np.sqrt(exact * (1 - exact) / len(y))
