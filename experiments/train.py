"""Train a linear classifier with one of the lecture's strategies.

    python -m experiments.train --strategy=minibatch            # digits, seconds
    python -m experiments.train --dataset=cifar10 --loss=softmax
    python -m experiments.train --strategy=all                  # compare them all

Hyperparameters left unset take the preset of the data set, loss and strategy
(linopt.presets; --help shows each value and its row). Writes into the
workdir config.json, summary.json (with the test confusion matrix and
per-class accuracy), metrics.csv (as the run goes), loss_curve.png,
templates.png (image data), confusion.png, params.npy and model.npz
(``linopt.load_model(path).predict(raw_rows)``). --baseline adds
scikit-learn's LogisticRegression and LinearSVC on the same split to
summary.json; --strategy=all writes one folder per strategy and a comparison,
with suboptimality.png: each strategy's L - L* against the optimum of its own
objective (float64 L-BFGS), and gradient descent's measured linear rate beside
the condition number's (summary.json: optima, gradient_descent_rate).
In Python: ``run(linopt.configs.TrainConfig(...), workdir)``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from absl import flags

from experiments import common, interrupt, progress
from linopt import (
    checkpoint,
    configs,
    evaluation,
    losses,
    metrics_file,
    model_io,
    plots,
    presets,
    runs,
    sharding,
    strategies,
    training,
)
from linopt.errors import LinoptError

flags.DEFINE_float("learning_rate", None, "Step size of the gradient updates.")
flags.DEFINE_enum(
    "sampling",
    None,
    ["replacement", "epoch"],
    "Mini-batches drawn with replacement or from a shuffle each epoch.",
)
flags.DEFINE_float(
    "search_scale", None, "Random search: tries are search_scale * randn."
)
flags.DEFINE_integer("population", None, "Random search: tries per matrix multiply.")
flags.DEFINE_float(
    "step_size", None, "Random local search: proposals W + step_size * randn."
)
flags.DEFINE_integer(
    "block", None, "Random local search: proposals scored per pass over X."
)
flags.DEFINE_integer(
    "checkpoint_every", None, "Save the whole run state every this many steps."
)
flags.DEFINE_bool("resume", None, "Continue from the checkpoint in --workdir.")
flags.DEFINE_bool(
    "baseline", None, "Also fit scikit-learn's LogisticRegression and LinearSVC."
)


def check_config(config: configs.TrainConfig, ds) -> None:
    """What a config can only be checked against once the data are loaded."""
    n = len(ds.y_train)
    sharding.check_num_devices(config.num_devices, n)  # the rows split evenly
    if config.sampling == "epoch" and config.batch_size is not None:
        if config.batch_size > n:
            raise LinoptError(
                f"batch_size={config.batch_size} exceeds the {n} training "
                "examples; lower it"
            )


def checkpointing(config: configs.TrainConfig, workdir):
    """``(save, restore, resume_at)`` for ``checkpoint_every`` and ``resume``.

    ``save(progress, log)`` syncs ``metrics.csv`` and records its size with
    the state; ``restore`` (None unless resuming) gives the saved state and
    kept history; ``resume_at`` is the size to cut ``metrics.csv`` back to.
    Checked before anything is written, so a refused resume changes nothing.
    """
    path = workdir / "checkpoint.npz"
    meta = {"config": dataclasses.asdict(config)}
    save = None
    if config.checkpoint_every:

        def save(p, log):
            info = {**meta, "step": p.step, "metrics_bytes": log.sync()}
            checkpoint.save(path, p.state, p.key, p.history.arrays(), info)

    if not config.resume:
        return save, None, None
    if not path.exists():
        raise LinoptError(
            f"resume: no {path}; run with checkpoint_every first, or drop resume"
        )
    # A resumed run may be extended (num_steps); nothing else may change.
    saved = checkpoint.read_meta(path)
    ignored = ("num_steps", "resume", "checkpoint_every", "chunk_size", "overwrite")
    differ = sorted(
        k
        for k in {*saved["config"], *meta["config"]}
        if k not in ignored and saved["config"].get(k) != meta["config"].get(k)
    )
    if differ:
        raise LinoptError(
            f"resume: {path} was saved with other {', '.join(differ)}; "
            "resume with the same values"
        )

    def restore(fresh_state, key):
        state, history, _ = checkpoint.load(path, fresh_state, key)
        return state, history

    return save, restore, saved.get("metrics_bytes")


UNITS = {"random_search": "try", "random_local_search": "proposal"}


def train_one(config, ds, workdir, stop, save, restore, resume_at) -> dict:
    """Train, evaluate, write every output of one strategy into ``workdir``.

    Every step's loss is appended to ``metrics.csv`` as each chunk ends (a
    search's step is many tries: a row each); a checkpoint is saved at each
    multiple of ``checkpoint_every`` and where the run stops.
    """
    metrics = metrics_file.MetricsFile(
        workdir / "metrics.csv", ("step", "loss"), resume_at
    )
    unit = UNITS.get(config.strategy, "step")
    with metrics, progress.bar(config.strategy, config.num_steps, unit) as bar:
        ends = []  # (steps done, seconds) at each chunk's end: loss_vs_time
        along = []  # evaluations at intervals (chunks end there)
        kept = []  # the weights there (--strategy=all: L - L* along the run)
        rows_along = training.along_run_data(ds)

        def on_chunk(p):
            units = config.num_steps / p.num_steps  # tries a search's step makes
            at = (p.step % training.evaluate_every(p.num_steps) == 0) or stop.requested
            if at or p.step == p.num_steps:
                row = training.along_run(
                    p.state.params, rows_along, config.loss, config.reg
                )
                along.append({"step": round(p.step * units), **row})
                kept.append(np.array(p.state.params))
            loss = p.chunk["loss"].reshape(len(p.chunk["loss"]), -1)
            first = (p.step - len(loss)) * loss.shape[1]  # rows written before
            rows = np.arange(first + 1, first + loss.size + 1)
            metrics.append({"step": rows, "loss": loss})
            ends.append((p.step, p.elapsed_s))
            bar(p)
            every = training.checkpoint_every(config, p.num_steps)
            if save and (p.step % every == 0 or stop.requested):
                save(p, metrics)

        result = training.train(
            config, ds, on_chunk=stop.wrap(on_chunk), restore=restore
        )
    summary = training.summarize(config, result, ds)
    summary["config"] = dataclasses.asdict(config)
    # At intervals along the run: the training loss (on the first 10,000 rows),
    # train and validation accuracy.
    summary["along_run"] = {k: [r[k] for r in along] for k in (along or [{}])[0]}
    if stop.requested:
        summary["stopped_by"] = stop.signal_name
    summary.update(
        evaluation.confusion(result.params, ds.X_test, ds.y_test, ds.class_names)
    )
    if config.baseline:
        summary["baselines"] = evaluation.baselines(ds, config.loss, config.seed)
    runs.save_array(workdir / "params.npy", result.params)
    model_io.save_model(  # applies to raw rows: the preprocessing travels with W
        workdir / "model.npz",
        params=result.params,
        preprocessing=ds.preprocessing,
        classes=np.arange(ds.num_classes),
        config=dataclasses.asdict(config),
        class_names=ds.class_names,
        image_shape=ds.image_shape,
        loss_history=result.losses,
    )
    runs.write_json(workdir / "summary.json", summary)  # before the figures
    plots.confusion_matrix(
        workdir / "confusion.png",
        summary["confusion_matrix"],
        ds.class_names,
        title=f"{config.strategy}, {config.loss} on {config.dataset} (test split)",
    )
    # The axis says which loss: on which examples, with or without reg.
    reg = f" + {config.reg:g} * sum(W**2)" if config.reg else " (no reg)"
    rows = {"minibatch": f"each step's batch of {config.batch_size}"}
    rows.update(sgd="each step's one example")
    ylabel = (
        f"{config.loss} loss{reg}\non {rows.get(config.strategy, 'the training set')}"
    )
    curve = functools.partial(plots.loss_curve, ylabel=ylabel)
    if config.strategy in strategies.SEARCHES:  # each try, the best so far, chance
        zeros = np.zeros((ds.num_classes, ds.dim), np.float32)
        chance = float(losses.LOSSES[config.loss](zeros, ds.X_train, ds.y_train, 0.0))
        points = result.metrics.get("proposal_loss")  # local search: proposals
        curve = functools.partial(plots.search_curve, chance=chance, points=points)
        curve.keywords["ylabel"] = ylabel
    curve(
        workdir / "loss_curve.png",
        result.losses,
        steps=result.loss_steps,
        title=f"{config.strategy}, {config.loss} on {config.dataset}",
        smooth=50 if config.strategy in ("minibatch", "sgd") else 0,
        xlabel=unit,
    )
    if along:
        steps = summary["along_run"]["step"]
        plots.line_plot(
            workdir / "accuracy.png",
            {
                f"{split} ({len(getattr(ds, f'y_{split}'))} examples)": (
                    steps,
                    summary["along_run"][f"{split}_accuracy"],
                )
                for split in ("train", "val")
            },
            xlabel=unit,
            ylabel="accuracy (fraction right)",
            title=f"{config.strategy}, {config.loss} on {config.dataset}: "
            "accuracy along the run",
            marker="o",
        )
    if len(ds.image_shape) >= 2:  # the weights of image data drawn as images
        plots.class_templates(
            workdir / "templates.png",
            result.params,
            ds.image_shape,
            ds.class_names,
            title=f"{config.strategy} weights",
        )
    if result.status == "diverged":
        print(
            f"warning: {config.strategy} diverged (a non-finite loss) at step "
            f"{summary['diverged_at_step']}; kept the last finite weights. Lower "
            "the learning rate or step size."
        )
    return {
        **summary,
        "losses": result.losses,
        "loss_steps": result.loss_steps,
        "chunk_ends": ends,
        "along_params": np.stack(kept) if kept else None,
    }


IN_MEMORY = ("losses", "loss_steps", "chunk_ends", "along_params")  # not saved


OPTIMUM_BUDGET_S = 120.0  # L-BFGS seconds an objective may take for L*


def compare_to_optimum(path, summary, results, per_strategy, ds) -> None:
    """``L(W_t) - L*`` of every strategy and gradient descent's linear rate:
    ``suboptimality.png``, a ``suboptimality`` column in the comparison, and
    ``optima``, ``gradient_descent_rate`` in ``summary`` (saved again)."""
    from linopt import suboptimality as sub

    n, runs_, gd = len(ds.y_train), {}, per_strategy.get("gradient_descent")
    first = next(iter(per_strategy.values()))
    full = n <= training.ALONG_RUN_ROWS  # the along-run loss is on every row
    for name, r in results.items():
        c, along = per_strategy[name], r["along_run"]
        x = np.asarray(along["step"]) * r["num_examples_evaluated"] / r["num_steps"]
        values = np.asarray(along["train_loss"]) if full else None
        runs_[name] = sub.Run(c.loss, c.reg, x, r["along_params"], values)
    g = results.get("gradient_descent")
    descent = g and sub.descent_history(
        gd, g["losses"], g["loss_steps"], g["status"], n
    )
    report, curves = sub.analyze(
        runs_, ds.X_train, ds.y_train, num_classes=ds.num_classes, descent=descent,
        key=jax.random.key(first.seed),
        time_budget_s=OPTIMUM_BUDGET_S,
    )  # fmt: skip
    summary["optima"] = report["optima"]
    summary["gradient_descent_rate"] = rate = report["gradient_descent_rate"]
    summary["suboptimality_along_run"] = report["strategies"]
    gaps = [report["strategies"][k]["suboptimality"] for k in results]
    for name, gap in zip(results, gaps, strict=True):
        summary["strategies"][name]["suboptimality"] = gap
    runs.write_json(path / "summary.json", summary)
    _add_column(path, "suboptimality", gaps)
    sub.figure(
        path / "suboptimality.png", report, curves,
        regs={k: c.reg for k, c in per_strategy.items()}, num_train=n,
        evaluated_here=not full,
        title=f"{first.loss} on {first.dataset}: suboptimality along each run",
    )  # fmt: skip
    for o in report["optima"]:
        print(
            f"L* ({o['loss']}, reg {o['reg']:g}) = {o['value']:.8g}: |grad| ratio "
            f"{o['grad_norm_ratio']:.2g}, certified {o['certified']}, "
            f"{o['num_steps']} L-BFGS steps, {o['wall_time_s']:.1f} s"
            + (" (only the best found)" if o["best_found_only"] else "")
        )
    print(
        f"gradient descent rate: predicted {rate['predicted_rate']}, measured "
        f"{rate['measured_rate']} ({rate['note']})"
    )


def _add_column(path, name: str, values) -> None:
    """Append a column to ``comparison.csv`` and ``comparison.md``."""
    rows = [r.split(",") for r in (path / "comparison.csv").read_text().splitlines()]
    columns = {h: [r[i] for r in rows[1:]] for i, h in enumerate(rows[0])}
    runs.write_csv(path / "comparison.csv", {**columns, name: values})
    lines = (path / "comparison.md").read_text().splitlines()
    cells = [f" {name} |", "---|", *(f" {v:.4g} |" for v in values)]
    text = "\n".join(line + cell for line, cell in zip(lines, cells, strict=True))
    runs.atomic_write_text(path / "comparison.md", text + "\n")


def run(config: configs.TrainConfig, workdir=None) -> dict:
    """Train ``config.strategy`` (every strategy for ``"all"``); write every output.

    Args:
      config: unset hyperparameters are filled from the preset table.
      workdir: the run folder (default: a new ``runs/train-<time>``).
    Returns:
      the summary (``summary.json``); for ``"all"``, the comparison's, with
      each strategy's summary under ``"strategies"``.
    """
    sharding.initialize_distributed()  # multi-host: see linopt.sharding
    config, sources = presets.resolve(config)
    ds = common.load_data(config)
    names = strategies.STRATEGIES if config.strategy == "all" else (config.strategy,)
    per_strategy = {
        name: presets.resolve(config, strategy=name)[0] if len(names) > 1 else config
        for name in names
    }
    for c in per_strategy.values():
        check_config(c, ds)
    path = runs.make_workdir(
        workdir, "train", overwrite=config.overwrite, resume=config.resume
    )
    folders = {n: path / n if len(names) > 1 else path for n in names}
    # Made before anything is written, so a bad resume is refused at once.
    hooks = {n: checkpointing(c, folders[n]) for n, c in per_strategy.items()}
    runs.write_config(path, config, sources)
    results = {}
    with interrupt.StopOnSignal() as stop:
        for name, c in per_strategy.items():
            folders[name].mkdir(exist_ok=True)
            results[name] = train_one(c, ds, folders[name], stop, *hooks[name])
            if stop.requested:
                break
    summary = results[names[0]]
    if len(names) > 1:
        from experiments import compare

        summary = compare.write(path, results, config.dataset)
        if stop.requested:
            summary["stopped_by"] = stop.signal_name
        else:
            compare_to_optimum(path, summary, results, per_strategy, ds)
    for name, s in results.items():
        print(
            f"{name:>20}: {s['status']}, train loss {s['train_loss']:.4f}, "
            f"val acc {s['val_accuracy']:.3f}, test acc {s['test_accuracy']:.3f}, "
            f"{s['num_loss_evals']} loss evals, {s['wall_time_s']:.1f} s"
        )
    baselines = next((s["baselines"] for s in results.values() if "baselines" in s), {})
    for name, b in baselines.items():  # scikit-learn on the same split
        print(
            f"{name:>20}: val acc {b['val_accuracy']:.3f}, test acc "
            f"{b['test_accuracy']:.3f}, {b['fit_time_s']:.1f} s (scikit-learn)"
        )
    print(f"outputs in {path}")
    return {k: v for k, v in summary.items() if k not in IN_MEMORY}


if __name__ == "__main__":
    common.main(configs.TrainConfig, run)
