"""Every experiment end to end, in process: ``run(config, workdir)`` on tiny
configs, as flax's ``train_test.py`` calls ``train_and_evaluate``."""

import dataclasses
import json

import numpy as np
import pytest

from experiments import gradcheck, landscape, reproduce, step_size, sweep, train
from linopt import configs, strategies


def read(folder, name="summary.json"):
    return json.loads((folder / name).read_text())


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_run_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    summary = train.run(configs.TrainConfig(), out)
    assert summary == read(out)
    assert summary["status"] == "completed" and summary["test_accuracy"] >= 0.90
    for key in ("val_accuracy", "train_loss", "num_loss_evals", "wall_time_s"):
        assert key in summary
    config = read(out, "config.json")
    assert config["config"]["strategy"] == "minibatch" and config["seed"] == 0
    assert config["config"]["learning_rate"] == 1e-3
    assert config["from_preset"]["learning_rate"] == "digits/*/minibatch/*"
    assert {"jax", "jaxlib", "optax", "numpy", "devices", "x64"} <= set(
        config["environment"]
    )
    metrics = np.loadtxt(out / "metrics.csv", delimiter=",", skiprows=1)
    assert metrics.shape == (1500, 2)
    assert is_png(out / "loss_curve.png") and is_png(out / "templates.png")
    assert np.load(out / "params.npy").shape == (10, 65)
    assert "test acc" in capsys.readouterr().out


def test_all_strategies_compared(tmp_path):
    out = tmp_path / "all"
    summary = train.run(configs.TrainConfig(strategy="all", num_steps=100), out)
    assert set(summary["strategies"]) == set(strategies.STRATEGIES)
    for name, s in summary["strategies"].items():
        assert s["status"] == "completed", name
        # 100 steps each; L-BFGS counts its line search's evaluations (it rests,
        # evaluating nothing, once it stops decreasing).
        if name == "lbfgs":
            assert 0 < s["num_loss_evals"] == s["num_grad_evals"], name
        else:
            assert s["num_loss_evals"] == 100, name
        assert read(out / name)["status"] == "completed"
    for f in (
        "comparison.csv",
        "comparison.md",
        "loss_vs_evals.png",
        "loss_vs_time.png",
        "suboptimality.png",
    ):
        assert (out / f).stat().st_size > 0
    # L - L* of each strategy's own objective (svm: L* only the best found).
    assert all("suboptimality" in s for s in summary["strategies"].values())
    assert all(o["best_found_only"] for o in summary["optima"])
    assert summary["gradient_descent_rate"]["measured_rate"] is None


def test_resume_equals_uninterrupted(tmp_path):
    base = configs.TrainConfig(checkpoint_every=50, seed=3, optimizer="momentum")
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train.run(dataclasses.replace(base, num_steps=200), whole)
    first = train.run(dataclasses.replace(base, num_steps=100), parts)
    assert first["num_steps"] == 100
    train.run(dataclasses.replace(base, num_steps=200, resume=True), parts)
    np.testing.assert_array_equal(
        np.load(whole / "params.npy"), np.load(parts / "params.npy")
    )
    a = np.loadtxt(whole / "metrics.csv", delimiter=",", skiprows=1)
    b = np.loadtxt(parts / "metrics.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(a, b)
    assert read(whole)["train_loss"] == read(parts)["train_loss"]


def test_resume_with_other_values_is_refused_naming_them(tmp_path):
    from linopt.errors import LinoptError

    out = tmp_path / "run"
    train.run(configs.TrainConfig(num_steps=20, checkpoint_every=10), out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(LinoptError, match="saved with other learning_rate; resume"):
        train.run(
            configs.TrainConfig(
                num_steps=40, checkpoint_every=10, learning_rate=0.5, resume=True
            ),
            out,
        )
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_diverging_run_ends_cleanly(tmp_path, capsys):
    out = tmp_path / "run"
    config = configs.TrainConfig(
        strategy="gradient_descent", learning_rate=1e12, num_steps=500
    )
    s = train.run(config, out)
    assert s["status"] == "diverged" and s["num_steps"] < 500
    assert "diverged" in capsys.readouterr().out
    assert np.all(np.isfinite(np.load(out / "params.npy")))
    saved = read(out)  # one type per field: a number or null, never "inf"
    assert saved["diverged_at_step"] == s["num_steps"] + 1
    assert saved["final_step_loss"] is None
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + s["diverged_at_step"]  # the diverged step's loss too


def test_sweep_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    summary = sweep.run(configs.SweepConfig(num_steps=200, num_seeds=2), out)
    assert summary["status"] == "completed" and summary["test_accuracy"] >= 0.9
    assert set(summary["best"]) == {"learning_rate", "reg", "seed"}
    assert summary["seeds"] == [0, 1]
    cells = summary["cells"]
    assert len(cells) == 32 and summary["num_cells"] == 32
    best = max(
        (c for c in cells if c["status"] == "completed"),
        key=lambda c: c["val_accuracy"],
    )
    assert summary["val_accuracy"] >= best["val_accuracy"] - 0.05
    assert {"val_accuracy", "train_loss", "status"} <= set(cells[0])
    assert {"train_accuracy", "test_accuracy"} <= set(cells[0])  # every cell's
    best_cell = next(
        c
        for c in cells
        if c["seed"] == summary["best"]["seed"]
        and all(c[k] == summary["best"][k] for k in ("learning_rate", "reg"))
    )
    assert summary["test_accuracy_before_refit"] == best_cell["test_accuracy"]
    table = (out / "table.csv").read_text().splitlines()
    assert len(table) == 33 and table[0].startswith("learning_rate,reg,seed")
    assert is_png(out / "heatmap.png") and is_png(out / "loss_curves.png")
    assert np.load(out / "params.npy").shape == (10, 65)
    assert "test acc" in capsys.readouterr().out


def test_sweep_refits_the_best_cell_on_train_and_validation(tmp_path):
    from experiments import common
    from linopt import presets, training

    config = configs.SweepConfig(num_steps=100, learning_rates=(1e-2,), regs=(1e-3,))
    summary = sweep.run(config, tmp_path / "run")
    ds = common.load_data(config)
    both = ds._replace(
        X_train=np.concatenate([ds.X_train, ds.X_val]),
        y_train=np.concatenate([ds.y_train, ds.y_val]),
    )
    cell = presets.resolve(
        configs.TrainConfig(num_steps=100, learning_rate=1e-2, reg=1e-3)
    )[0]
    expected = training.train(cell, both).params
    np.testing.assert_allclose(np.load(tmp_path / "run" / "params.npy"), expected)
    assert summary["refit_on"] == len(both.y_train)
    assert "test_accuracy_before_refit" in summary
    kept = sweep.run(dataclasses.replace(config, refit=False), tmp_path / "kept")
    assert "refit_on" not in kept and "test_accuracy_before_refit" not in kept


def test_sweep_on_more_devices_than_there_are_says_how(tmp_path):
    from linopt.errors import LinoptError

    with pytest.raises(LinoptError, match="XLA_FLAGS"):
        sweep.run(configs.SweepConfig(num_devices=64), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_sweep_seeds_follow_seed(tmp_path):
    summary = sweep.run(
        configs.SweepConfig(seed=1, num_steps=20, learning_rates=(1e-2,), regs=(1e-3,)),
        tmp_path / "run",
    )
    assert summary["best"]["seed"] == 1 and summary["seeds"] == [1]


TINY = {
    "train": lambda data: configs.TrainConfig(**data, strategy="all", num_steps=20),
    "sweep": lambda data: configs.SweepConfig(
        **data,
        num_steps=20,
        learning_rates=(1e-3, 1e-2),
        regs=(1e-3,),
        # The tiny CIFAR-10 holds 1,250 training images, not the preset's 5,000.
        num_val=250 if data["dataset"] == "cifar10" else None,
    ),
    "gradcheck": lambda data: configs.GradcheckConfig(
        **{**data, "num_train": 4}, mode="sparse", num_checks=4
    ),
    "landscape": lambda data: configs.LandscapeConfig(
        **data, line_points=9, grid_size=5, num_average=4
    ),
    "step_size": lambda data: configs.StepSizeConfig(**data),
}
MODULES = {
    "train": train,
    "sweep": sweep,
    "gradcheck": gradcheck,
    "landscape": landscape,
    "step_size": step_size,
}


@pytest.mark.parametrize(
    "dataset",
    [
        "digits",
        pytest.param("synthetic", marks=pytest.mark.slow),
        pytest.param("cifar10", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("experiment", list(TINY))
def test_every_experiment_on_every_data_set(
    experiment, dataset, tiny_cifar10, tmp_path
):
    data = {"dataset": dataset, "num_train": 100}
    if dataset == "cifar10":
        data.update(data_dir=str(tiny_cifar10), download=False)
    out = tmp_path / "run"
    summary = MODULES[experiment].run(TINY[experiment](data), out)
    assert summary["status"] in ("completed", "diverged"), summary
    assert summary == read(out)
    assert list(out.rglob("*.png"))


@pytest.mark.slow
def test_reproduce_on_synthetic(tmp_path):
    out = tmp_path / "run"
    config = configs.ReproduceConfig(dataset="synthetic", num_train=200, num_tries=100)
    summary = reproduce.run(config, out)
    assert summary["status"] == "completed", summary["runs"]
    assert set(summary["runs"]) == {folder for _, folder, _, _ in reproduce.EXPERIMENTS}
    assert "Lecture / measured" in (out / "report.md").read_text()


def test_reproduce_keeps_each_experiments_own_defaults():
    config = configs.ReproduceConfig(dataset="synthetic", num_tries=50)
    sub = {
        folder: reproduce.experiment_config(config, module, own)
        for _, folder, module, own in reproduce.EXPERIMENTS
    }
    assert sub["gradcheck"].num_train == 20  # the lecture's few examples
    assert sub["minibatch_svm"].num_train is None  # every training example
    assert sub["random_search"].num_steps == 50
    assert {c.dataset for c in sub.values()} == {"synthetic"}
    given = configs.ReproduceConfig(num_train=100)
    assert reproduce.experiment_config(given, gradcheck, {}).num_train == 100


def test_a_run_is_evaluated_along_the_way(tmp_path):
    from linopt import training

    out = tmp_path / "run"
    s = train.run(configs.TrainConfig(num_steps=400), out)
    along = read(out)["along_run"]
    assert along["step"] == list(range(20, 401, 20))  # 20 points, chunks end there
    # The last point is the final weights, evaluated independently at the end.
    assert along["train_loss"][-1] == pytest.approx(s["train_loss"], rel=1e-6)
    assert along["val_accuracy"][-1] == pytest.approx(s["val_accuracy"])
    assert "test_accuracy" not in along  # the test split is not looked at
    assert training.evaluate_every(400) == 20 and is_png(out / "accuracy.png")
