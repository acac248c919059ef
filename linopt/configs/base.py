"""What every config shares: the value checks and :class:`DataConfig`."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from linopt import arrays, losses
from linopt.data import DATASETS, DEFAULT_PREPROCESS, PREPROCESSINGS

LOSSES = tuple(losses.LOSSES)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _one_of(name: str, value, choices) -> None:
    _require(
        value in choices, f"{name} must be one of {', '.join(choices)}; got {value!r}"
    )


def _at_least(config, minimum, *names) -> None:
    for name in names:
        value = getattr(config, name)
        _require(
            value is None or value >= minimum,
            f"{name} must be >= {minimum}, got {value}",
        )


def _positive(config, *names, or_zero: bool = False) -> None:
    for name in names:
        value = getattr(config, name)
        _require(
            value is None
            or (math.isfinite(value) and (value > 0 or or_zero and value == 0)),
            f"{name} must be a finite number {'>=' if or_zero else '>'} 0, got {value}",
        )


def _non_negative(config, *names) -> None:
    _positive(config, *names, or_zero=True)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What every experiment has: where the examples come from, the seed, and
    whether a run folder that holds a run may be replaced."""

    dataset: str = "digits"
    data_dir: str | None = None  # cifar10: default $LINOPT_DATA, ~/.cache/linopt
    download: bool = True  # cifar10: fetch the archive when it is absent
    seed: int = 0  # the data split and every random choice of the run
    num_train: int | None = None  # use only the first this many train examples
    num_val: int | None = None  # validation examples (cifar10: 1,000 by default)
    # center, standardize or none, on train's statistics (linopt.data's
    # default: what every data set here needs). bias: append the constant 1.
    preprocess: str = DEFAULT_PREPROCESS
    bias: bool = True
    overwrite: bool = False  # replace the run already in the workdir

    def __post_init__(self):
        # Your own arrays (linopt.arrays); a data set's name is never a path.
        if self.dataset not in DATASETS and arrays.is_path(self.dataset):
            missing = f"dataset {self.dataset!r}: no such file or folder; check it"
            _require(Path(self.dataset).expanduser().exists(), missing)
        else:
            _one_of("dataset", self.dataset, DATASETS)
        if self.data_dir is not None:
            _require(self.data_dir.strip() != "", "data_dir is empty; give a folder")
            path = Path(self.data_dir).expanduser()
            _require(
                not path.exists() or path.is_dir(),
                f"data_dir {self.data_dir!r} is a file; give a folder",
            )
        _require(0 <= self.seed < 2**31, f"seed must be in [0, 2**31), got {self.seed}")
        _at_least(self, 1, "num_train", "num_val")
        _one_of("preprocess", self.preprocess, PREPROCESSINGS)
        _require(
            isinstance(self.bias, bool),
            f"bias must be true or false, got {self.bias!r}",
        )
        _require(
            self.num_val is None or self.dataset != "digits",
            "num_val changes nothing for digits (split 70/10/20); leave it unset",
        )

    def applies(self, name: str) -> bool:
        """Whether setting field ``name`` changes this run (see ``resolve``)."""
        return True
