"""Sweep a grid of learning rates x regs x seeds as one compiled program.

    python -m experiments.sweep                                   # digits, seconds
    python -m experiments.sweep --dataset=cifar10 --data_dir=...  # 4x4, 1,500 steps
    python -m experiments.sweep --learning_rates=1e-7,5e-7 --regs=2.5e4,5e4 \
        --num_seeds=2 --optimizer=nesterov --num_devices=4

Every cell trains at once (linopt.sweep); the best cell is chosen by
validation accuracy (averaged over seeds; CIFAR-10 validates on 5,000
images), trained again on the training and validation examples (--refit,
as scikit-learn's GridSearchCV does), and only then tested; table.csv lists
every cell's train, validation and test accuracy, to see what the choice by
validation gained or gave up. Cells run with seeds --seed, --seed + 1, ...
(--num_seeds of them); the data split is --seed's. Writes config.json,
summary.json, table.csv, heatmap.png (validation accuracy), metrics.csv
(every step's loss of every cell, written as the grid runs), loss_curves.png
and the best weights params.npy into --workdir. In Python:
``run(linopt.configs.SweepConfig(...))``.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from absl import flags

from experiments import common, interrupt, progress
from linopt import configs, metrics_file, plots, presets, runs, sharding, training
from linopt import sweep as sweeps

flags.DEFINE_list(
    "learning_rates", None, "Learning rates of the grid (default: the preset's)."
)
flags.DEFINE_list("regs", None, "L2 strengths of the grid (default: the preset's).")
flags.DEFINE_bool(
    "refit", None, "Retrain the best cell on train + validation before the test."
)
flags.DEFINE_integer(
    "num_seeds", None, "Runs per grid point, seeds --seed, --seed + 1, ..."
)

CURVES = 6  # cells drawn in loss_curves.png
_REPORTED = (  # the grid's fixed settings, in summary.json
    "num_steps",
    "batch_size",
    "optimizer",
    "schedule",
    "decay_rate",
    "decay_steps",
    "momentum",
    "init_scale",
)
# SweepConfig's fields that a TrainConfig has too.
_SHARED = ("dataset", "seed", "strategy", "loss", *_REPORTED)


def write_outputs(workdir, result, cells, c, best) -> list[dict]:
    """table.csv, heatmap.png, loss_curves.png, params.npy; the table's rows."""
    lrs, regs = result.grid["learning_rate"], result.grid["reg"]
    rows = []
    for k, i, j in itertools.product(
        range(len(result.seeds)), range(len(lrs)), range(len(regs))
    ):
        rows.append(
            {
                "learning_rate": float(lrs[i]),
                "reg": float(regs[j]),
                "seed": int(result.seeds[k]),
                **{name: float(v[k, i, j]) for name, v in cells.items()},
                "steps": int(result.steps[k, i, j]),
                "status": str(result.cell_status[k, i, j]),
            }
        )
    runs.write_csv(workdir / "table.csv", {k: [r[k] for r in rows] for k in rows[0]})
    chance = 1 / result.params.shape[-2]  # one class in C
    plots.heatmap(
        workdir / "heatmap.png",
        np.nanmean(cells["val_accuracy"], axis=0),
        x=regs,
        y=lrs,
        xlabel="reg",
        ylabel="learning rate",
        title=f"validation accuracy (mean of {len(result.seeds)} seed(s)), "
        f"{c.loss} {c.optimizer} on {c.dataset}\noutlined, the best: test "
        f"{float(np.nanmean(cells['test_accuracy'][:, best[1], best[2]])):.3f} "
        "(mean of its seeds, before any refit; every cell's in table.csv)",
        colorbar_label=f"validation accuracy (from chance, {chance:.2g}, to 1)",
        annotate=True,
        vmin=chance,  # from chance: a spread of a few images looks small
        vmax=1.0,
        best="max",
    )
    # The loss of the grid points with the best validation accuracy (more
    # than a handful of curves on one figure cannot be told apart).
    mean_val = np.nanmean(cells["val_accuracy"], axis=0)
    order = np.argsort(-np.nan_to_num(mean_val, nan=-1.0), axis=None, kind="stable")
    smooth = 50 if c.batch_size else 1
    curves = {}
    for i, j in (np.unravel_index(k, mean_val.shape) for k in order[:CURVES]):
        loss, steps = np.nanmean(result.losses[:, i, j], axis=0), result.metrics["step"]
        if smooth > 1 and len(loss) > smooth:
            loss = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
            steps = steps[smooth - 1 :]
        label = f"lr {lrs[i]:g}, reg {regs[j]:g}: val {mean_val[i, j]:.3f}"
        curves[label] = (steps, loss)
    plots.line_plot(
        workdir / "loss_curves.png",
        curves,
        xlabel="step",
        ylabel=f"loss + reg * sum(W**2) of each step's "
        f"{'batch' if c.batch_size else 'training set'}"
        f"{f' (mean of {smooth})' if smooth > 1 else ''}",
        title=f"training loss of the {len(curves)} best cells by validation "
        "accuracy\n(each with its own reg, so levels differ by the penalty)",
        logy=True,
        legend_outside=True,
    )
    runs.save_array(workdir / "params.npy", result.params[best])
    return rows


def summarize(result, rows, best, test_accuracy, c, ds) -> dict:
    """summary.json: the best cell's figures, the settings and every cell."""
    status = "diverged" if result.diverged.all() else result.status
    best_row = rows[int(np.ravel_multi_index(best, result.diverged.shape))]
    return {
        "status": status,
        "test_accuracy": test_accuracy,
        "val_accuracy": best_row["val_accuracy"],
        "train_loss": best_row["train_loss"],
        "best": {k: best_row[k] for k in ("learning_rate", "reg", "seed")},
        "dataset": c.dataset,
        "loss": c.loss,
        "strategy": c.strategy,
        "settings": {k: getattr(c, k) for k in _REPORTED},
        "seeds": list(c.seeds),
        "num_cells": len(rows),
        "num_diverged": int(result.diverged.sum()),
        "num_steps": result.num_steps,
        "num_devices": c.num_devices,
        "num_train": int(len(ds.y_train)),
        "wall_time_s": result.wall_time_s,
        "compile_and_first_chunk_s": result.compile_and_first_chunk_s,
        "cells": rows,
    }


def refit(first: configs.TrainConfig, result, best, ds, num_devices: int):
    """The best cell trained again on the training and validation examples
    (as scikit-learn's ``GridSearchCV`` refits), on the sweep's devices: its
    weights and the examples it saw (a multiple of ``num_devices``)."""
    i, j = best[1:]
    cell = dataclasses.replace(
        first,
        seed=int(result.seeds[best[0]]),
        learning_rate=float(result.grid["learning_rate"][i]),
        reg=float(result.grid["reg"][j]),
        num_devices=num_devices,
    )
    n = len(ds.y_train) + len(ds.y_val)
    n -= n % num_devices  # rows split evenly over the devices
    both = ds._replace(
        X_train=np.concatenate([ds.X_train, ds.X_val])[:n],
        y_train=np.concatenate([ds.y_train, ds.y_val])[:n],
    )
    return training.train(cell, both).params, n


def run(config: configs.SweepConfig, workdir=None) -> dict:
    """Train every cell of the grid at once; write every output; the summary.

    Args:
      config: unset settings are filled from the preset table.
      workdir: the run folder (default: a new ``runs/sweep-<time>``).
    """
    sharding.initialize_distributed()  # multi-host: see linopt.sharding
    c, sources = presets.resolve(config)
    ds = common.load_data(c)
    sharding.check_num_devices(c.num_devices, len(ds.y_train))
    X, y = sharding.shard_data(ds.X_train, ds.y_train, c.num_devices)
    path = common.start(workdir, "sweep", c, sources)
    # The grid's strategy is what train would run with the grid's first cell.
    first = configs.TrainConfig(
        **{f: getattr(c, f) for f in _SHARED},
        learning_rate=c.learning_rates[0],
        reg=c.regs[0],
        sampling="replacement" if c.strategy == "minibatch" else None,
    )
    strategy, hparams, _ = training.make_strategy(first, len(ds.y_train))
    grid = {"learning_rate": c.learning_rates, "reg": c.regs}
    num_cells = len(c.seeds) * len(c.learning_rates) * len(c.regs)
    fixed = {"decay_rate": hparams.decay_rate, "momentum": hparams.momentum}
    # Every step's loss of every cell, one column a cell, as the grid runs.
    names = [
        f"loss seed {s} lr {lr:g} reg {reg:g}"
        for s, lr, reg in itertools.product(c.seeds, c.learning_rates, c.regs)
    ]
    metrics = metrics_file.MetricsFile(path / "metrics.csv", ["step", *names])
    with (
        interrupt.StopOnSignal() as stop,
        metrics,
        progress.bar(f"sweep of {num_cells} cells", c.num_steps) as bar,
    ):

        def on_chunk(p):
            loss = p.chunk["loss"].reshape(len(p.chunk["loss"]), -1)  # (steps, cells)
            columns = dict(zip(names, loss.T, strict=True))
            metrics.append(
                {"step": np.arange(p.step - len(loss), p.step) + 1, **columns}
            )
            bar(p)

        result = sweeps.sweep(
            strategy,
            X,
            y,
            grid=grid,
            seeds=c.seeds,
            hparams=fixed,
            num_steps=c.num_steps,
            num_classes=ds.num_classes,
            init_scale=c.init_scale,
            chunk_size=c.chunk_size,
            on_chunk=stop.wrap(on_chunk),
        )
    reg = result.hparams["reg"]
    val = sweeps.evaluate(result.params, ds.X_val, ds.y_val, loss=c.loss, reg=reg)
    train = sweeps.evaluate(result.params, ds.X_train, ds.y_train, loss=c.loss, reg=reg)
    # Every cell's test accuracy is reported (the table shows what the choice
    # by validation gave up or gained); only validation chooses.
    every_test = sweeps.evaluate(result.params, ds.X_test, ds.y_test, loss=c.loss)
    cells = {
        "train_accuracy": train["accuracy"],
        "val_accuracy": val["accuracy"],
        "test_accuracy": every_test["accuracy"],
        "train_loss": train["loss"],
    }
    best = sweeps.best_cell(cells["val_accuracy"], result.diverged)
    rows = write_outputs(path, result, cells, c, best)
    summary = summarize(result, rows, best, float(cells["test_accuracy"][best]), c, ds)
    if c.refit and not stop.requested and not result.diverged[best]:
        params, refit_on = refit(first, result, best, ds, c.num_devices)
        runs.save_array(path / "params.npy", params)
        refitted = sweeps.evaluate(params, ds.X_test, ds.y_test, loss=c.loss)
        summary["test_accuracy_before_refit"] = summary["test_accuracy"]
        summary["test_accuracy"] = float(refitted["accuracy"])
        summary["refit_on"] = refit_on
    if stop.requested:
        summary["stopped_by"] = stop.signal_name
    runs.write_json(path / "summary.json", summary)
    best_row = summary["best"]
    print(
        f"{num_cells} cells, {summary['num_diverged']} diverged, {summary['status']}, "
        f"{result.wall_time_s:.1f} s on {c.num_devices} device(s)"
    )
    print(
        f"best: lr {best_row['learning_rate']:g}, reg {best_row['reg']:g}, seed "
        f"{best_row['seed']}: val acc {summary['val_accuracy']:.3f}, "
        f"test acc {summary['test_accuracy']:.3f}"
        + (
            f" (refit on {summary['refit_on']} examples)"
            if "refit_on" in summary
            else ""
        )
    )
    print(f"outputs in {path}")
    return summary


if __name__ == "__main__":
    common.main(configs.SweepConfig, run)
