"""Train a linear classifier with one of the lecture's strategies.

    python -m experiments.train --strategy=minibatch            # digits, seconds
    python -m experiments.train --dataset=cifar10 --loss=softmax
    python -m experiments.train --strategy=all                  # compare them all

Hyperparameters left unset take the preset of the data set and loss
(linopt.training.preset). Writes config.json, summary.json, metrics.csv,
loss_curve.png, templates.png and params.npy into --workdir.
"""

from __future__ import annotations

import dataclasses
import sys

from absl import flags

from experiments import common, interrupt, optimizer_flags, progress
from linopt import (
    checkpoint,
    data,
    plots,
    runs,
    sharding,
    strategies,
    training,
)

flags.adopt_module_key_flags(optimizer_flags)  # listed in --help

STRATEGY = flags.DEFINE_enum(
    "strategy",
    "minibatch",
    [*strategies.STRATEGIES, "all"],
    "Search strategy; 'all' runs and compares every one.",
)
LOSS = flags.DEFINE_enum("loss", "svm", ["svm", "softmax"], "Loss function.")
PRESET = flags.DEFINE_enum(
    "preset",
    "linopt",
    list(training.PRESETS),
    "Defaults for unset flags: linopt's tuned values, or the CS231n assignment's "
    "(cifar10: lr 1e-7, reg 2.5e4, 1,500 steps of 200).",
)
NUM_STEPS = flags.DEFINE_integer("num_steps", None, "Updates (tries for searches).")
BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Examples per mini-batch.")
LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Step size of GD updates.")
REG = flags.DEFINE_float("reg", None, "L2 strength: loss + reg * sum(W**2).")
INIT_SCALE = flags.DEFINE_float("init_scale", None, "Start from init_scale * randn.")
SEARCH_SCALE = flags.DEFINE_float(
    "search_scale", None, "Random search: tries are search_scale * randn."
)
STEP_SIZE = flags.DEFINE_float(
    "step_size", None, "Random local search: proposals W + step_size * randn."
)
POPULATION = flags.DEFINE_integer(
    "population", None, "Random search: tries per matrix multiply."
)
SAMPLING = flags.DEFINE_enum(
    "sampling",
    None,
    ["replacement", "epoch"],
    "Mini-batches drawn with replacement or per-epoch shuffles.",
)
NUM_TRAIN = flags.DEFINE_integer(
    "num_train", None, "Use only this many train examples."
)
NUM_DEVICES = flags.DEFINE_integer(
    "num_devices",
    1,
    "Devices the training examples are split over (data parallelism); on CPU, "
    "XLA_FLAGS=--xla_force_host_platform_device_count=N makes N.",
)
CHUNK_SIZE = flags.DEFINE_integer(
    "chunk_size", None, "Steps per compiled chunk (progress granularity)."
)
CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every", None, "Save the whole run state every this many steps."
)
RESUME = flags.DEFINE_bool(
    "resume", False, "Continue from the checkpoint in --workdir."
)

_HPARAM_FLAGS = {
    "num_steps": NUM_STEPS,
    "batch_size": BATCH_SIZE,
    "learning_rate": LEARNING_RATE,
    "reg": REG,
    "init_scale": INIT_SCALE,
    "search_scale": SEARCH_SCALE,
    "step_size": STEP_SIZE,
    "population": POPULATION,
    **optimizer_flags.SETTINGS,
    "sampling": SAMPLING,
    "chunk_size": CHUNK_SIZE,
}


def validate_flags() -> None:
    require = common.require
    common.check_data_flags()
    positive = ("num_steps", "batch_size", "population", "chunk_size")
    for name in positive:
        value = _HPARAM_FLAGS[name].value
        require(value is None or value >= 1, f"--{name} must be >= 1, got {value}")
    for name in ("learning_rate", "init_scale", "search_scale", "step_size"):
        value = _HPARAM_FLAGS[name].value
        require(value is None or value > 0, f"--{name} must be > 0, got {value}")
    require(REG.value is None or REG.value >= 0, f"--reg must be >= 0, got {REG.value}")
    optimizer_flags.validate()
    require(
        NUM_TRAIN.value is None or NUM_TRAIN.value >= 1,
        f"--num_train must be >= 1, got {NUM_TRAIN.value}",
    )
    sharding.check_num_devices(NUM_DEVICES.value)
    require(
        CHECKPOINT_EVERY.value is None or CHECKPOINT_EVERY.value >= 1,
        f"--checkpoint_every must be >= 1, got {CHECKPOINT_EVERY.value}",
    )
    require(
        not RESUME.value or common.WORKDIR.value,
        "--resume needs the --workdir of the run to continue",
    )


def make_config(strategy: str) -> training.TrainConfig:
    """Flags given on the command line, else the preset, else the default."""
    values = training.preset(common.DATASET.value, LOSS.value, strategy, PRESET.value)
    values.update({k: f.value for k, f in _HPARAM_FLAGS.items() if f.value is not None})
    if CHECKPOINT_EVERY.value and CHUNK_SIZE.value is None:
        values["chunk_size"] = CHECKPOINT_EVERY.value  # a checkpoint per chunk
    return training.TrainConfig(
        strategy=strategy,
        loss=LOSS.value,
        seed=common.SEED.value,
        num_devices=NUM_DEVICES.value,
        **values,
    )


def check_config(config: training.TrainConfig, ds: data.Dataset) -> None:
    n = len(ds.y_train)
    sharding.check_num_devices(config.num_devices, n)  # the rows split evenly
    if config.strategy == "minibatch" and config.sampling == "epoch":
        common.require(
            config.batch_size <= n,
            f"--batch_size={config.batch_size} "
            f"exceeds the {n} training examples; lower it",
        )


def checkpointing(config, workdir):
    """``(on_chunk, restore)`` for --checkpoint_every and --resume."""
    path = workdir / "checkpoint.npz"
    meta = {"config": dataclasses.asdict(config)}
    save = None
    if CHECKPOINT_EVERY.value:

        def save(p):
            checkpoint.save(path, p.state, p.key, p.metrics, {**meta, "step": p.step})

    restore = None
    if RESUME.value:
        common.require(
            path.exists(),
            f"--resume: no {path}; run with --checkpoint_every first, or drop --resume",
        )

        # A resumed run may be extended (num_steps); nothing else may change.
        saved = checkpoint.read_meta(path)["config"]
        common.require(
            {k: v for k, v in saved.items() if k != "num_steps"}
            == {k: v for k, v in meta["config"].items() if k != "num_steps"},
            f"--resume: {path} was saved with other flags; resume with the same flags",
        )

        def restore(fresh_state, key):
            state, history, _ = checkpoint.load(path, fresh_state, key)
            return state, history

    return save, restore


def train_one(config, ds, workdir, stop, save, restore) -> dict:
    """Train, evaluate, write every output of one strategy into ``workdir``."""
    with progress.bar(config.strategy, config.num_steps) as bar:

        def on_chunk(p):
            bar(p)
            if save is not None:
                save(p)

        result = training.train(
            config, ds, on_chunk=stop.wrap(on_chunk), restore=restore
        )
    summary = training.summarize(config, result, ds)
    summary["config"] = dataclasses.asdict(config)
    columns = {"step": range(1, len(result.losses) + 1), "loss": result.losses}
    runs.write_csv(workdir / "metrics.csv", columns)
    runs.save_array(workdir / "params.npy", result.params)
    plots.loss_curve(
        workdir / "loss_curve.png",
        result.losses,
        title=f"{config.strategy}, {config.loss} on {common.DATASET.value}",
        smooth=50 if config.strategy in ("minibatch", "sgd") else 0,
    )
    plots.class_templates(
        workdir / "templates.png",
        result.params,
        ds.image_shape,
        ds.class_names,
        title=f"{config.strategy} weights",
    )
    runs.write_json(workdir / "summary.json", summary)
    if result.status == "diverged":
        print(
            f"warning: {config.strategy} diverged (a non-finite loss) at step "
            f"{result.num_steps + 1}; kept the last finite weights. Lower the "
            "learning rate or step size."
        )
    return {**summary, "losses": result.losses}


def main(argv):
    del argv
    sharding.initialize_distributed()  # multi-host: see linopt.sharding
    validate_flags()
    ds = common.load_data()
    ds = data.subset(ds, NUM_TRAIN.value)
    names = strategies.STRATEGIES if STRATEGY.value == "all" else (STRATEGY.value,)
    configs = {name: make_config(name) for name in names}
    if STRATEGY.value == "all" and NUM_STEPS.value is None:
        configs = {
            n: dataclasses.replace(c, num_steps=1000) for n, c in configs.items()
        }
    for config in configs.values():
        check_config(config, ds)
    workdir = common.start_run("train")
    folders = {n: workdir / n if len(configs) > 1 else workdir for n in configs}
    # Made before any training, so a bad --resume is refused at once.
    hooks = {n: checkpointing(c, folders[n]) for n, c in configs.items()}
    results = {}
    with interrupt.StopOnSignal() as stop:
        for name, config in configs.items():
            folders[name].mkdir(exist_ok=True)
            results[name] = train_one(config, ds, folders[name], stop, *hooks[name])
            if stop.requested:
                break
    if len(configs) > 1:
        from experiments import compare

        compare.write(workdir, results, common.DATASET.value)
    for name, s in results.items():
        print(
            f"{name:>20}: {s['status']}, train loss {s['train_loss']:.4f}, "
            f"val acc {s['val_accuracy']:.3f}, test acc {s['test_accuracy']:.3f}, "
            f"{s['num_loss_evals']} loss evals, {s['wall_time_s']:.1f} s"
        )
    print(f"outputs in {workdir}")
    if stop.requested:
        sys.exit(128 + stop.signal_number)  # the shell's convention


if __name__ == "__main__":
    common.run(main)
