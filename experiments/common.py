"""What every experiment shares: the shared flags, flags -> config, one-line errors.

Each flag is defined once, here when two or more experiments use it, else in
its experiment's module; its name is the config field it sets. Flags default
to ``None`` ("not given"): the config's own default or the preset table fills
what is not given, so no default lives here. An experiment module is::

    FLAG = flags.DEFINE_...(...)          # its own flags, if any

    def run(config, workdir=None) -> dict:  # the experiment, as a function
        ...

    if __name__ == "__main__":
        common.main(SomeConfig, run)

A user's mistake (bad flag, missing data, unwritable folder) ends with one line
on stderr (``error: ...``) and exit code 2 (1 for problems found in data
files), never a traceback, unless ``--debug`` asks for one.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from absl import app, flags, logging

from linopt import (
    compile_cache,
    configs,
    data,
    figure_thread,
    optimizers,
    presets,
    runs,
    strategies,
)
from linopt.errors import DataError, LinoptError

# Every experiment.
flags.DEFINE_string(
    "dataset",
    None,
    f"{', '.join(data.DATASETS)} (digits, synthetic need no network), or your own "
    "arrays: a .npz file or a folder of .npy files (X_train, y_train, ...).",
)
flags.DEFINE_string(
    "data_dir", None, "CIFAR-10 folder (default $LINOPT_DATA or ~/.cache/linopt)."
)
flags.DEFINE_string(
    "workdir", None, "Output folder (default: a new runs/<experiment>-<time>)."
)
flags.DEFINE_integer("seed", None, "Seed of the data split and every random choice.")
flags.DEFINE_bool("download", None, "Download CIFAR-10 when it is not in --data_dir.")
flags.DEFINE_integer("num_train", None, "Use only this many training examples.")
flags.DEFINE_integer(
    "num_val", None, "Validation examples (cifar10: the last N training images)."
)
flags.DEFINE_bool(
    "overwrite", None, "Replace the run already in --workdir (its files deleted)."
)
flags.DEFINE_enum(
    "preprocess",
    None,
    list(data.PREPROCESSINGS),
    "center: subtract the training mean; standardize: then divide by the training "
    "standard deviation (0: by 1); none: raw rows (default: the data set's need, "
    f"{data.DEFAULT_PREPROCESS} for every one).",
)
flags.DEFINE_bool(
    "bias", None, "Append a constant 1 to every row (W is (C, D + 1)); --nobias: not."
)
DEBUG = flags.DEFINE_bool("debug", False, "Show full tracebacks of errors.")
# Two or more experiments.
flags.DEFINE_enum(
    "loss",
    None,
    [*configs.LOSSES, "both"],
    "Loss function (gradcheck: both checks both).",
)
flags.DEFINE_float("reg", None, "L2 strength: loss + reg * sum(W**2).")
flags.DEFINE_enum(
    "strategy",
    None,
    [*strategies.STRATEGIES, "all"],
    "Search strategy; train's 'all' runs and compares every one.",
)
flags.DEFINE_enum(
    "preset",
    None,
    ["linopt", "assignment"],
    "Defaults of unset hyperparameters: linopt's tuned values, or the CS231n "
    "assignment's (cifar10: lr 1e-7, reg 2.5e4, 1,500 steps of 200).",
)
flags.DEFINE_integer("num_steps", None, "Updates (tries for random search).")
flags.DEFINE_integer("batch_size", None, "Examples per mini-batch.")
flags.DEFINE_float(
    "init_scale",
    None,
    "Starting weights init_scale * randn(C, D) (step_size: * rand, the lecture's).",
)
flags.DEFINE_integer(
    "num_devices",
    None,
    "Devices the training examples are split over (data parallelism); on CPU, "
    "XLA_FLAGS=--xla_force_host_platform_device_count=N makes N.",
)
flags.DEFINE_integer(
    "chunk_size",
    None,
    "Driver steps per compiled chunk (default: about half a second's worth).",
)
flags.DEFINE_enum(
    "optimizer", None, list(optimizers.OPTIMIZERS), "optax optimizer of the updates."
)
flags.DEFINE_enum(
    "schedule", None, list(optimizers.SCHEDULES), "Learning-rate schedule."
)
flags.DEFINE_float("decay_rate", None, "The schedule's factor per decay_steps.")
flags.DEFINE_integer("decay_steps", None, "Steps per decay (default: a preset).")
flags.DEFINE_float("momentum", None, "Momentum / nesterov coefficient.")

FIRST = ("dataset", "data_dir", "workdir", "seed", "loss", "strategy")
LAST = ("download", "num_train", "num_val", "preprocess", "bias", "overwrite", "debug")
_NOT_CONFIG = ("workdir", "debug")


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def as_flags(message: str, names) -> str:
    """A library message about field ``x`` reworded about flag ``--x``."""
    alternatives = "|".join(sorted(names, key=len, reverse=True))
    # A whole word, not part of a path or a longer name ("/u/weights.npy").
    pattern = r"(?<![\w/.\-])(" + alternatives + r")(?![\w/\-]|\.\w)"
    return re.sub(pattern, r"--\1", message)


def _field_value(field: dataclasses.Field, value):
    """A flag's value as the field's type (lists of numbers become tuples)."""
    if isinstance(value, list):
        kind = int if "int" in str(field.type) else float
        try:
            return tuple(kind(v) for v in value)
        except ValueError:
            raise ValueError(
                f"{field.name} must be a comma-separated list of "
                f"{kind.__name__}s, got {','.join(value)!r}"
            ) from None
    return value


def given_flags() -> dict:
    """The flags given on the command line (not absl's own), by name."""
    return {
        name: flags.FLAGS[name].value
        for name in flags.FLAGS
        if flags.FLAGS[name].present and not _is_absl(name)
    }


def _is_absl(name: str) -> bool:
    module = flags.FLAGS.find_module_defining_flag(name) or ""
    return module.startswith("absl.")


def config_from_flags(config_type):
    """The config the command line asks for: given flags, else the config's defaults.

    Raises:
      ValueError: a flag that is not this experiment's, or a bad value (the
        config's own check).
    """
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    values = {}
    for name, value in given_flags().items():
        if name in _NOT_CONFIG:
            continue
        if name not in fields:
            raise ValueError(f"--{name} is not a flag of this experiment; see --help")
        values[name] = _field_value(fields[name], value)
    return config_type(**values)


def _help(config_type, config, sources: dict, doc: str) -> str:
    """--help: the flags that matter first, each with the value it will take."""
    fields = [f.name for f in dataclasses.fields(config_type)]
    order = [n for n in FIRST if n in fields or n in _NOT_CONFIG]
    order += [n for n in fields if n not in order and n not in LAST]
    order += [n for n in LAST if n in fields or n in _NOT_CONFIG]
    lines = [doc.strip(), "", "flags (value this run would take, and where from):"]
    given = given_flags()
    for name in order:
        value = getattr(config, name, None) if config is not None else None
        if name == "workdir":
            value = flags.FLAGS.workdir or "a new runs/<experiment>-<time>"
        if name == "debug":
            value = flags.FLAGS.debug
        if isinstance(value, tuple):
            value = ",".join(f"{v:g}" for v in value)
        origin = (
            "given"
            if name in given
            else (f"preset {sources[name]}" if name in sources else "default")
        )
        if value is None:
            value, origin = "-", "unset"
            hyper = name in config_type.HYPERPARAMETERS
            if hyper and config is not None and not config.applies(name):
                origin = "does not apply here"
        lines.append(f"  --{name}={value}  [{origin}]")
        lines.append(f"      {flags.FLAGS[name].help}")
    lines += ["", "--helpfull lists every flag, absl's included."]
    return "\n".join(lines)


def main(
    config_type,
    run: Callable,
    *,
    exit_code: Callable[[dict], int] | None = None,
) -> None:
    """The command line of one experiment: flags -> config -> ``run(config, workdir)``.

    Args:
      config_type: the experiment's config class (``linopt.configs``).
      run: the experiment, ``run(config, workdir) -> summary``.
      exit_code: the process's exit status from the summary (default 0, or
        128 + the signal for a run stopped by one).
    """
    doc = sys.modules["__main__"].__doc__ or ""
    field_names = [f.name for f in dataclasses.fields(config_type)]
    help_asked = False

    def parse_flags(argv):
        nonlocal help_asked
        helps = {"-h", "--help", "--helpshort"}
        help_asked = any(a in helps for a in argv[1:])
        argv = [a for a in argv if a not in helps]
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            fail(f"{e}; see --help", 2)

    def guarded(argv):
        logging.set_verbosity(logging.WARNING)  # jax's backend probing is noise
        if len(argv) > 1:
            fail(f"unexpected arguments {argv[1:]}; flags look like --name=value", 2)
        try:
            config = config_from_flags(config_type)
            resolved, sources = presets.resolve(config)
        except ValueError as e:
            if help_asked:
                print(_help(config_type, None, {}, doc))
                return 0
            if DEBUG.value:
                raise
            fail(as_flags(str(e), field_names), 2)
        if help_asked:
            print(_help(config_type, resolved, sources, doc))
            return 0
        compile_cache.enable()  # a second run compiles nothing the first did
        try:
            # figures drawn while JAX compiles and runs
            with figure_thread.in_background():
                summary = run(config, flags.FLAGS.workdir)
        except LinoptError as e:
            if DEBUG.value:
                raise
            fail(as_flags(str(e), field_names), 1 if isinstance(e, DataError) else 2)
        except KeyboardInterrupt:
            # Runs with chunks save their results first (experiments.interrupt);
            # a one-shot computation has nothing partial to keep.
            if DEBUG.value:
                raise
            fail("interrupted before any result was complete", 130)
        code = exit_code(summary) if exit_code is not None else 0
        if summary.get("stopped_by"):  # the shell's convention: 128 + the signal
            code = 128 + signal.Signals[summary["stopped_by"]].value
        exit_now(code)

    app.run(guarded, flags_parser=parse_flags)


def exit_now(code: int) -> None:
    """End the process once a run's files are written and closed: the exit
    handlers run and the output is flushed, but the interpreter's teardown
    (freeing every module and jax's runtime one object at a time, about 0.4 s
    of a 3 s run on digits) is skipped; the operating system frees it all."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ---------------------------------------------------------------- run helpers


def start(workdir, experiment: str, config, sources: dict) -> Path:
    """Make the run folder and write ``config.json`` (the resolved config and
    the preset row of each filled field) into it.

    Raises ``LinoptError`` for a folder that cannot be written.
    """
    path = runs.make_workdir(
        workdir,
        experiment,
        overwrite=config.overwrite,
        resume=getattr(config, "resume", False),
    )
    runs.write_config(path, config, sources)
    return path


def load_data(config, dtype="float32"):
    """The config's data set, preprocessed (see ``linopt.data.load``).

    The last two data sets loaded are kept, so experiments run one after
    another in one process (reproduce, the tests) read and preprocess once.
    """
    from linopt import data

    data_dir = str(Path(config.data_dir).expanduser()) if config.data_dir else None
    ds = _load(
        config.dataset,
        data_dir,
        config.seed,
        config.download,
        str(dtype),
        config.num_val,
        config.preprocess,
        config.bias,
    )
    return data.subset(ds, config.num_train)


@functools.lru_cache(maxsize=2)
def _load(dataset, data_dir, seed, download, dtype, num_val, preprocess, bias):
    from linopt import data

    return data.load(
        dataset,
        data_dir=data_dir,
        seed=seed,
        download=download,
        progress=True,
        dtype=dtype,
        num_val=num_val,
        preprocess=preprocess,
        bias=bias,
    )
