"""The configs of the experiments that look at a loss rather than train:
the gradient check, the landscape, the step sizes and the reproduction."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import ClassVar

from linopt.configs.base import (
    LOSSES,
    DataConfig,
    _at_least,
    _non_negative,
    _one_of,
    _positive,
    _require,
)


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


@dataclasses.dataclass(frozen=True)
class StabilityConfig(DataConfig):
    """``experiments.stability``: full-batch descent around ``2 / lambda_max``."""

    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ("reg", "init_scale")
    PRESET_SLOT: ClassVar[str | None] = "step_size"

    loss: str = "softmax"
    reg: float | None = None
    init_scale: float | None = None  # W = init_scale * randn(C, D), the driver's
    factors: tuple[float, ...] = (0.5, 0.9, 1.1, 1.5)  # lr = factor * 2 / lambda_max
    num_steps: int = 200
    track_every: int = 10  # lambda_max along the path every this many steps
    lanczos_iters: int = 30  # Hessian-vector products a lambda_max

    def __post_init__(self):
        super().__post_init__()
        _one_of("loss", self.loss, LOSSES)
        _at_least(self, 1, "num_steps", "track_every")
        _at_least(self, 2, "lanczos_iters")
        _non_negative(self, "reg")
        _positive(self, "init_scale")
        _require(
            0 < len(self.factors) <= 16,
            f"factors must hold 1 to 16 values, got {len(self.factors)}",
        )
        _require(
            all(math.isfinite(f) and 0 < f <= 100 for f in self.factors),
            f"factors values must be in (0, 100], got {list(self.factors)}",
        )
        _require(
            len(set(self.factors)) == len(self.factors),
            f"factors values must differ, got {list(self.factors)}",
        )
