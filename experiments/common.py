"""What every experiment shares: data flags, the run folder, one-line errors.

An experiment defines its own flags, then calls :func:`run` with its ``main``.
A user's mistake (bad flag, missing data, unwritable folder) ends with one line
on stderr and exit code 2 (1 for problems found in data files), never a
traceback, unless ``--debug`` asks for one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import app, flags, logging

from linopt import runs
from linopt.data import DATASETS
from linopt.errors import DataError, LinoptError

DATASET = flags.DEFINE_enum(
    "dataset",
    "digits",
    list(DATASETS),
    "Data set; digits is embedded and needs no network.",
)
DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "CIFAR-10 folder (default $LINOPT_DATA or ~/.cache/linopt)."
)
SEED = flags.DEFINE_integer("seed", 0, "Seed of every random choice of the run.")
WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output folder (default: a new runs/<experiment>-<time>)."
)
DEBUG = flags.DEFINE_bool("debug", False, "Show full tracebacks of errors.")
DOWNLOAD = flags.DEFINE_bool(
    "download", True, "Download CIFAR-10 when it is not in --data_dir."
)


class UsageError(LinoptError):
    """A flag value or combination that cannot work."""


def require(condition: bool, message: str) -> None:
    """Stop with ``message`` (one line, exit 2) unless ``condition`` holds."""
    if not condition:
        raise UsageError(message)


def check_data_flags() -> None:
    if DATA_DIR.value is not None:
        require(DATA_DIR.value.strip() != "", "--data_dir is empty; give a folder")
        path = Path(DATA_DIR.value).expanduser()
        require(
            not path.exists() or path.is_dir(),
            f"--data_dir {DATA_DIR.value!r} is a file; give a folder",
        )


def data_dir() -> str | None:
    return os.path.expanduser(DATA_DIR.value) if DATA_DIR.value else None


def load_data(dtype="float32"):
    """The --dataset, preprocessed (see linopt.data.load), in ``dtype``."""
    from linopt import data

    return data.load(
        DATASET.value,
        data_dir=data_dir(),
        seed=SEED.value,
        download=DOWNLOAD.value,
        progress=True,
        dtype=dtype,
    )


def flag_values() -> dict:
    """Every flag this program defined (not absl's own), by name."""
    values = {}
    for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
        if module.startswith("absl."):
            continue
        for flag in module_flags:
            values[flag.name] = flag.value
    return values


def start_run(experiment: str) -> Path:
    """Make the run folder and write ``config.json`` into it."""
    workdir = runs.make_workdir(WORKDIR.value, experiment)
    runs.write_config(workdir, flag_values(), SEED.value)
    return workdir


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run(main) -> None:
    """``absl.app.run(main)``, with user errors shown as one line."""

    def guarded(argv):
        logging.set_verbosity(logging.WARNING)  # jax's backend probing is noise
        if len(argv) > 1:
            fail(f"unexpected arguments {argv[1:]}; flags look like --name=value", 2)
        try:
            return main(argv)
        except LinoptError as e:
            if DEBUG.value:
                raise
            fail(str(e), 1 if isinstance(e, DataError) else 2)
        except KeyboardInterrupt:
            # Runs with chunks save their results first (experiments.interrupt);
            # a one-shot computation has nothing partial to keep.
            if DEBUG.value:
                raise
            fail("interrupted before any result was complete; nothing written", 130)

    def parse_flags(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            fail(f"{e}; see --helpfull", 2)

    app.run(guarded, flags_parser=parse_flags)
