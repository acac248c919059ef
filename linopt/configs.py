"""One frozen, typed config per experiment, validated once, filled from presets.

Each config is a frozen dataclass: hashable, typed, ``dataclasses.replace``
for a variant, ``dataclasses.asdict`` for ``config.json``. (flax's examples use
``ml_collections.ConfigDict``; a dataclass needs no extra dependency, cannot be
mutated half-way through a run, and a misspelt field is a ``TypeError`` at
once.) ``__post_init__`` checks every value it is given and raises
``ValueError`` naming the field; the experiments turn that into one line.

A hyperparameter left ``None`` (the fields in a config's ``HYPERPARAMETERS``)
takes its value from the preset table when :func:`linopt.presets.resolve`
fills the config (``PRESET_SLOT`` names the table's strategy slot); a value
given for a setting that would do nothing (``momentum`` with plain SGD,
``population`` for mini-batch descent) is refused there, and preset values
that do not apply are dropped, so a resolved config holds exactly what the
run uses.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import ClassVar

from linopt import arrays, losses, presets
from linopt.data import DATASETS
from linopt.optimizers import OPTIMIZERS, SCHEDULES
from linopt.strategies import STRATEGIES

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
    overwrite: bool = False  # replace the run already in the workdir

    def __post_init__(self):
        if arrays.is_path(self.dataset):  # your own arrays (linopt.arrays)
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
        _require(
            self.num_val is None or self.dataset != "digits",
            "num_val changes nothing for digits (split 70/10/20); leave it unset",
        )

    def applies(self, name: str) -> bool:
        """Whether setting field ``name`` changes this run (see ``resolve``)."""
        return True


# The hyperparameters of TrainConfig (None: from the preset) and when each
# applies; the rest of a config's fields are settings with fixed defaults.
_ALWAYS = ("num_steps", "init_scale", "reg")
_APPLIES = {
    "random_search": ("num_steps", "reg", "search_scale", "population"),
    "random_local_search": (*_ALWAYS, "step_size", "block"),
    "gradient_descent": (*_ALWAYS, "learning_rate", "optimizer", "schedule"),
    "minibatch": (
        *_ALWAYS,
        "learning_rate",
        "optimizer",
        "schedule",
        "batch_size",
        "sampling",
    ),
    "sgd": (*_ALWAYS, "learning_rate", "optimizer", "schedule", "sampling"),
}


_TRAIN_HPARAMS = tuple(
    "num_steps learning_rate reg init_scale batch_size sampling optimizer "
    "schedule decay_rate decay_steps momentum search_scale population "
    "step_size block ".split()
)


@dataclasses.dataclass(frozen=True)
class TrainConfig(DataConfig):
    """``experiments.train``: one strategy (or ``"all"``) on one loss."""

    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = _TRAIN_HPARAMS
    PRESET_SLOT: ClassVar[str | None] = None

    strategy: str = "minibatch"
    loss: str = "svm"
    preset: str = "linopt"
    num_steps: int | None = None  # updates; tries for random search
    learning_rate: float | None = None
    reg: float | None = None  # loss + reg * sum(W**2)
    init_scale: float | None = None  # start from init_scale * randn(C, D)
    batch_size: int | None = None  # minibatch: examples per update
    sampling: str | None = None  # "replacement" or "epoch" (a shuffle each epoch)
    optimizer: str | None = None
    schedule: str | None = None
    decay_rate: float | None = None  # the schedule's factor per decay_steps
    decay_steps: int | None = None  # default: the run (exponential), a third (step)
    momentum: float | None = None  # momentum and nesterov only
    search_scale: float | None = None  # random search: tries search_scale * randn
    population: int | None = None  # random search: tries per matrix multiply
    step_size: float | None = None  # local search: proposals W + step_size * randn
    block: int | None = None  # local search: proposals per pass over X
    num_devices: int = 1  # devices the training examples are split over
    chunk_size: int | None = None  # driver steps a chunk (default: ~0.5 s of work)
    checkpoint_every: int | None = None  # save all every this many num_steps units
    resume: bool = False  # continue from the checkpoint in the workdir
    baseline: bool = False  # also fit scikit-learn's linear classifiers, timed

    def __post_init__(self):
        super().__post_init__()
        _one_of("strategy", self.strategy, (*STRATEGIES, "all"))
        _one_of("loss", self.loss, LOSSES)
        _one_of("preset", self.preset, presets.PRESETS)
        for name, choices in (
            ("sampling", ("replacement", "epoch")),
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
        ):
            if getattr(self, name) is not None:
                _one_of(name, getattr(self, name), choices)
        _at_least(self, 1, "num_steps", "batch_size", "decay_steps", "population")
        _at_least(self, 1, "block", "num_devices", "chunk_size", "checkpoint_every")
        _positive(self, "learning_rate", "init_scale", "search_scale", "step_size")
        _positive(self, "decay_rate")
        _non_negative(self, "reg")
        _require(
            self.momentum is None or 0 <= self.momentum < 1,
            f"momentum must be in [0, 1), got {self.momentum}",
        )

    def applies(self, name: str) -> bool:
        """Whether hyperparameter ``name`` changes this run."""
        if self.strategy == "all":
            return any(name in fields for fields in _APPLIES.values())
        if name in ("decay_rate", "decay_steps"):
            return self.schedule not in (None, "constant")
        if name == "momentum":
            return self.optimizer in ("momentum", "nesterov")
        return name in _APPLIES[self.strategy]


_SWEEP_HPARAMS = tuple(
    "learning_rates regs num_steps init_scale batch_size optimizer schedule "
    "decay_rate decay_steps momentum num_val".split()
)


@dataclasses.dataclass(frozen=True)
class SweepConfig(DataConfig):
    """``experiments.sweep``: a (learning rate x reg x seed) grid as one program.

    Cell seeds are ``seed, seed + 1, ..., seed + num_seeds - 1``.
    """

    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = _SWEEP_HPARAMS
    PRESET_SLOT: ClassVar[str | None] = "sweep"

    strategy: str = "minibatch"  # or "gradient_descent"
    loss: str = "svm"
    preset: str = "linopt"
    learning_rates: tuple[float, ...] | None = None
    regs: tuple[float, ...] | None = None
    num_seeds: int = 1
    num_steps: int | None = None
    init_scale: float | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    schedule: str | None = None
    decay_rate: float | None = None
    decay_steps: int | None = None
    momentum: float | None = None
    num_devices: int = 1
    chunk_size: int | None = None
    refit: bool = True  # retrain the best cell on train + validation for the test

    def __post_init__(self):
        super().__post_init__()
        _one_of("strategy", self.strategy, ("minibatch", "gradient_descent"))
        _one_of("loss", self.loss, LOSSES)
        _one_of("preset", self.preset, presets.PRESETS)
        for name, check, rule in (
            ("learning_rates", lambda v: v > 0, "> 0"),
            ("regs", lambda v: v >= 0, ">= 0"),
        ):
            values = getattr(self, name)
            if values is None:
                continue
            _require(len(values) > 0, f"{name} is empty; give values like 1,2")
            for v in values:
                _require(
                    math.isfinite(v) and check(v),
                    f"{name} values must be {rule}, got {v}",
                )
            _require(len(set(values)) == len(values), f"{name} repeats a value")
        _at_least(self, 1, "num_seeds", "num_steps", "batch_size", "decay_steps")
        _at_least(self, 1, "num_devices", "chunk_size")
        _require(
            self.seed + self.num_seeds <= 2**31, "seed + num_seeds must be < 2**31"
        )
        _positive(self, "init_scale", "decay_rate")
        if self.optimizer is not None:
            _one_of("optimizer", self.optimizer, OPTIMIZERS)
        if self.schedule is not None:
            _one_of("schedule", self.schedule, SCHEDULES)
        _require(
            self.momentum is None or 0 <= self.momentum < 1,
            f"momentum must be in [0, 1), got {self.momentum}",
        )

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.num_seeds))

    def applies(self, name: str) -> bool:
        if name in ("decay_rate", "decay_steps"):
            return self.schedule not in (None, "constant")
        if name == "momentum":
            return self.optimizer in ("momentum", "nesterov")
        if name == "batch_size":
            return self.strategy == "minibatch"
        return True


@dataclasses.dataclass(frozen=True)
class GradcheckConfig(DataConfig):
    """``experiments.gradcheck``: analytic against numerical gradients."""

    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ("reg",)
    PRESET_SLOT: ClassVar[str | None] = "gradcheck"

    num_train: int | None = 20  # a small dev subset: the lecture's advice
    loss: str = "both"  # "svm", "softmax" or "both"
    reg: float | None = None  # nonzero by default, so its term is checked
    h: float = 1e-5  # the finite-difference step
    method: str = "centered"  # or "forward"
    mode: str = "full"  # every coordinate, "sparse" samples, or "directional"
    num_checks: int = 20  # coordinates or directions per group (sparse, sweep)
    weight_scale: float | None = None  # W = weight_scale * randn; None: unit scores
    x64: bool = True  # float64 (False shows float32 failing)
    units: str = "feature"  # h in feature units, or "parameter" (the lecture's)
    memory_mb: int = 128  # one chunk of perturbed copies of W

    def __post_init__(self):
        super().__post_init__()
        _one_of("loss", self.loss, (*LOSSES, "both"))
        _one_of("method", self.method, ("centered", "forward"))
        _one_of("mode", self.mode, ("full", "sparse", "directional"))
        _one_of("units", self.units, ("feature", "parameter"))
        _at_least(self, 1, "num_checks", "memory_mb")
        _require(0 < self.h < 1, f"h must be in (0, 1), got {self.h}")
        _non_negative(self, "reg")
        _positive(self, "weight_scale")


@dataclasses.dataclass(frozen=True)
class LandscapeConfig(DataConfig):
    """``experiments.landscape``: 1-D and 2-D slices of the loss, and the toy."""

    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ("reg", "init_scale")
    PRESET_SLOT: ClassVar[str | None] = "landscape"

    loss: str = "svm"
    reg: float | None = None  # the 'with reg' panels' strength
    weights: str | None = None  # a (C, D) .npy at the centre; None: random small W
    init_scale: float | None = None  # random centre W = init_scale * randn
    direction_scale: str = "weights"  # "none", "weights" or "rows"
    orthogonalize: bool = True  # make W2 orthogonal to W1
    alpha_max: float | None = None  # None: moves the scores 4 margins (RMS)
    line_points: int = 401
    grid_size: int = 101
    example: int = 0  # training index of the one example
    num_average: int = 100  # random training examples of the 'average' panels

    def __post_init__(self):
        super().__post_init__()
        _one_of("loss", self.loss, LOSSES)
        _one_of("direction_scale", self.direction_scale, ("none", "weights", "rows"))
        for name in ("line_points", "grid_size"):
            value = getattr(self, name)
            _require(
                3 <= value <= 2001, f"{name} must be between 3 and 2001, got {value}"
            )
        _at_least(self, 1, "num_average")
        _at_least(self, 0, "example")
        _non_negative(self, "reg")
        _positive(self, "init_scale", "alpha_max")
        _require(
            self.weights is None or Path(self.weights).expanduser().is_file(),
            f"weights {self.weights!r} is not a file; give a (C, D) .npy",
        )

    def applies(self, name: str) -> bool:
        return name != "init_scale" or self.weights is None


@dataclasses.dataclass(frozen=True)
class StepSizeConfig(DataConfig):
    """``experiments.step_size``: the loss after one step of each size."""

    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ("reg", "init_scale")
    PRESET_SLOT: ClassVar[str | None] = "step_size"

    loss: str = "svm"
    reg: float | None = None
    init_scale: float | None = None  # W = init_scale * rand(C, D), the lecture's
    min_step_size: float = 1e-10
    max_step_size: float = 1e-1
    points_per_decade: int = 1  # 1 is the lecture's grid

    def __post_init__(self):
        super().__post_init__()
        _one_of("loss", self.loss, LOSSES)
        _at_least(self, 1, "points_per_decade")
        _non_negative(self, "reg")
        _positive(self, "init_scale")
        _require(
            math.isfinite(self.min_step_size) and self.min_step_size >= 1e-30,
            f"min_step_size must be >= 1e-30 (float32 steps), got {self.min_step_size}",
        )
        _require(
            math.isfinite(self.max_step_size)
            and self.max_step_size > self.min_step_size,
            f"max_step_size ({self.max_step_size}) must be finite and larger than "
            f"min_step_size ({self.min_step_size})",
        )
        decades = math.log10(self.max_step_size / self.min_step_size)
        _require(
            decades * self.points_per_decade + 1 <= 10_000,
            f"points_per_decade={self.points_per_decade} over {decades:.3g} "
            "decades gives more than 10000 step sizes; use fewer",
        )


@dataclasses.dataclass(frozen=True)
class ReproduceConfig(DataConfig):
    """``experiments.reproduce``: the whole lecture, beside its numbers."""

    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ()
    PRESET_SLOT: ClassVar[str | None] = None

    num_tries: int = 1000  # tries of random search and random local search

    def __post_init__(self):
        super().__post_init__()
        _at_least(self, 1, "num_tries")
