"""Preprocessing as a choice: center, standardize or none, with or without the
bias column; statistics from the training split only; saved with the model."""

import io
import json

import numpy as np
import pytest

import linopt
from experiments import train
from linopt import configs, data, losses, model_io

CHOICES = [(m, b) for m in data.PREPROCESSINGS for b in (True, False)]


def _splits(seed=0):
    rng = np.random.default_rng(seed)
    train_x = rng.normal(5.0, 3.0, (40, 5))
    train_x[:, 2] = 7.0  # constant on train: standard deviation 0
    return train_x, rng.normal(4.0, 2.0, (9, 5)), rng.normal(6.0, 1.0, (7, 5))


def _numpy(x, train_x, method, bias):
    """The preprocessing in plain numpy, from the training rows' statistics."""
    out = np.asarray(x, np.float64)
    if method != "none":
        out = out - train_x.mean(axis=0)
    if method == "standardize":
        std = train_x.std(axis=0)
        out = out / np.where(std == 0, 1.0, std)
    if bias:
        out = np.hstack([out, np.ones((len(out), 1))])
    return out


@pytest.mark.parametrize("method, bias", CHOICES)
def test_each_choice_equals_numpy_with_train_statistics_only(method, bias):
    train_x, val_x, test_x = _splits()
    p, *rows = data.preprocess(train_x, val_x, test_x, method=method, bias=bias)
    assert p.kind == method and p.bias == bias
    for got, x in zip(rows, (train_x, val_x, test_x), strict=True):
        assert got.dtype == np.float32 and got.shape == (len(x), 5 + bias)
        np.testing.assert_allclose(got, _numpy(x, train_x, method, bias), rtol=1e-6)
    if method == "standardize":  # the constant feature: divided by 1, not nan
        assert p.scale[2] == 1.0 and np.all(rows[0][:, 2] == 0)
        np.testing.assert_allclose(rows[0][:, [0, 1, 3, 4]].std(axis=0), 1, rtol=1e-5)


def test_data_load_keeps_what_was_applied(tmp_path):
    train_x, val_x, test_x = _splits(1)
    labels = [np.arange(len(x)) % 2 for x in (train_x, val_x, test_x)]
    np.savez(
        tmp_path / "f.npz",
        X_train=train_x, y_train=labels[0], X_val=val_x, y_val=labels[1],
        X_test=test_x, y_test=labels[2],
    )  # fmt: skip
    ds = data.load(str(tmp_path / "f.npz"), preprocess="standardize", bias=False)
    assert ds.dim == 5 and ds.preprocessing.kind == "standardize"
    np.testing.assert_allclose(ds.preprocessing.mean, train_x.mean(0))
    np.testing.assert_allclose(ds.mean_image, train_x.mean(0))
    np.testing.assert_allclose(
        ds.X_test, _numpy(test_x, train_x, "standardize", False), rtol=1e-6
    )
    default = data.load(str(tmp_path / "f.npz"))
    assert default.preprocessing.kind == data.DEFAULT_PREPROCESS == "center"
    assert default.preprocessing.bias and default.dim == 6
    with pytest.raises(linopt.errors.LinoptError, match="preprocess must be one of"):
        data.load("digits", preprocess="whiten")


def test_standardize_without_bias_trains_digits_and_config_records_both(tmp_path):
    """``python -m experiments.train --preprocess=standardize --bias=false``."""
    out = tmp_path / "run"
    config = configs.TrainConfig(preprocess="standardize", bias=False)
    summary = train.run(config, out)
    assert summary["test_accuracy"] > 0.9
    assert np.load(out / "params.npy").shape == (10, 64)  # (C, D): no bias column
    recorded = json.loads((out / "config.json").read_text())["config"]
    assert (recorded["preprocess"], recorded["bias"]) == ("standardize", False)
    assert (out / "templates.png").is_file()  # 64 weights a class: 8 x 8 images
    header, arrays = model_io.read_model(out / "model.npz")
    assert (header["preprocess"], header["bias"]) == ("standardize", False)
    assert {"mean", "scale"} <= set(arrays)


@pytest.mark.parametrize("method, bias", CHOICES)
def test_model_file_round_trip_predicts_as_the_run(tmp_path, method, bias):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    X = 50 + 20 * rng.standard_normal((300, 6)) + 30 * np.eye(3, 6)[y]
    np.savez(
        tmp_path / "f.npz",
        X_train=X[:200], y_train=y[:200], X_val=X[200:250], y_val=y[200:250],
        X_test=X[250:], y_test=y[250:],
    )  # fmt: skip
    config = configs.TrainConfig(
        dataset=str(tmp_path / "f.npz"), num_steps=50, preprocess=method, bias=bias
    )
    train.run(config, tmp_path / "run")
    W = np.load(tmp_path / "run" / "params.npy")
    assert W.shape == (3, 6 + bias)
    ds = data.load(str(tmp_path / "f.npz"), preprocess=method, bias=bias)
    in_memory = np.asarray(losses.scores(W, ds.X_test))
    model = linopt.load_model(tmp_path / "run" / "model.npz")
    assert model.preprocessing_.kind == method and model.preprocessing_.bias == bias
    np.testing.assert_allclose(
        model.decision_function(X[250:]), in_memory, rtol=1e-5, atol=1e-4
    )
    np.testing.assert_array_equal(model.predict(X[250:]), in_memory.argmax(1))
    # coef_ and intercept_ act on raw rows whatever the preprocessing.
    raw = X[250:] @ model.coef_.T + model.intercept_
    np.testing.assert_allclose(raw, in_memory, rtol=1e-4, atol=1e-3)
    again = model.save(tmp_path / "again.npz")
    np.testing.assert_array_equal(
        linopt.load_model(again).predict(X[250:]), model.predict(X[250:])
    )


def test_an_old_model_file_with_only_a_mean_still_loads(tmp_path):
    """Version 1 files: a mean, subtracted, and the bias column."""
    rng = np.random.default_rng(3)
    W, mean, x = rng.standard_normal((3, 5)), rng.standard_normal(4), rng.random((8, 4))
    header = {
        "format": "linopt.model",
        "version": 1,
        "bias": "scores = [x - mean, 1] @ W.T: ...",
        "loss": "svm",
        "class_names": ["a", "b", "c"],
        "image_shape": None,
        "config": {"dataset": "digits", "loss": "svm", "seed": 0},
    }
    buf = io.BytesIO()
    np.savez(
        buf, header=np.array(json.dumps(header)), W=W.astype(np.float32), mean=mean,
        classes=np.arange(3), loss_history=np.zeros(0),
    )  # fmt: skip
    (tmp_path / "old.npz").write_bytes(buf.getvalue())
    model = linopt.load_model(tmp_path / "old.npz")
    assert model.preprocessing_.kind == "center" and model.preprocessing_.bias
    expected = np.hstack([x - mean, np.ones((8, 1))]) @ W.T
    np.testing.assert_allclose(model.decision_function(x), expected, rtol=1e-5)


def test_a_bad_value_is_refused():
    with pytest.raises(ValueError, match="preprocess must be one of"):
        configs.TrainConfig(preprocess="whiten")
    with pytest.raises(ValueError, match="bias must be true or false"):
        configs.LandscapeConfig(bias="no")


def test_a_bad_flag_value_is_one_line_and_exit_2(run_module, tmp_path):
    out = run_module("train", "--preprocess=whiten", f"--workdir={tmp_path / 'r'}")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "whiten" in lines[0]
    assert not (tmp_path / "r").exists()


def test_the_default_is_recorded_as_center(tmp_path):
    out = tmp_path / "run"
    train.run(configs.TrainConfig(num_steps=5), out)
    recorded = json.loads((out / "config.json").read_text())["config"]
    assert (recorded["preprocess"], recorded["bias"]) == ("center", True)


def test_a_gradient_check_without_the_bias_column_checks_weights_only(tmp_path):
    from experiments import gradcheck

    config = configs.GradcheckConfig(loss="softmax", mode="sparse", bias=False)
    gradcheck.run(config, tmp_path / "check")
    rows = (tmp_path / "check" / "checks_softmax.csv").read_text().splitlines()[1:]
    assert {r.split(",")[1] for r in rows} == {"weights"}  # no "bias" column
    assert max(int(r.split(",")[0]) for r in rows) < 10 * 64  # W is (10, 64)
