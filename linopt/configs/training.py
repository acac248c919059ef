"""The configs of the runs that train: ``experiments.train``, ``experiments.sweep``."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from linopt import presets
from linopt.configs.base import (
    LOSSES,
    DataConfig,
    _at_least,
    _non_negative,
    _one_of,
    _positive,
    _require,
)
from linopt.optimizers import OPTIMIZERS, SCHEDULES
from linopt.strategies import STRATEGIES

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
    "lbfgs": _ALWAYS,
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
class BatchSizeConfig(DataConfig):
    """``experiments.batch_size``: steps and examples to a loss, per batch size.

    The preset mini-batch run (``TrainConfig(strategy="minibatch")`` of the
    same data set, loss and preset, at a constant rate) sets the target loss,
    the reg and the first learning rates; every batch size then runs
    constant-rate SGD. The default preset is the lecture's own run (CIFAR-10:
    batch 200, rate 1e-7, reg 2.5e4, 1,500 steps).
    """

    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ()
    PRESET_SLOT: ClassVar[str | None] = None

    loss: str = "svm"
    preset: str = "assignment"
    batch_sizes: tuple[int, ...] | None = None  # default: 1, 4, 16, ... and N
    target_loss: float | None = None  # default: what the preset run reaches
    num_learning_rates: int = 4  # a ladder's rates, lr_factor apart
    lr_factor: float = 2.0
    budget: float = 4.0  # x the preset's steps and examples, per batch size
    evals_per_doubling: int = 4  # training-loss evaluations per doubling of steps
    num_draws: int = 100  # batch gradients drawn per batch size (cosines)

    def __post_init__(self):
        super().__post_init__()
        _one_of("loss", self.loss, LOSSES)
        _one_of("preset", self.preset, presets.PRESETS)
        if self.batch_sizes is not None:
            _require(len(self.batch_sizes) > 0, "batch_sizes is empty; give 1,4,16")
            _require(
                all(b >= 1 for b in self.batch_sizes),
                f"batch_sizes must be >= 1, got {self.batch_sizes}",
            )
            _require(
                len(set(self.batch_sizes)) == len(self.batch_sizes),
                "batch_sizes repeats a value",
            )
        _positive(self, "target_loss")
        _at_least(self, 2, "num_learning_rates", "num_draws")
        _at_least(self, 1, "evals_per_doubling")
        _require(
            math.isfinite(self.lr_factor) and self.lr_factor > 1,
            f"lr_factor must be a finite number > 1, got {self.lr_factor}",
        )
        _require(
            math.isfinite(self.budget) and self.budget >= 1,
            f"budget must be a finite number >= 1, got {self.budget}",
        )
