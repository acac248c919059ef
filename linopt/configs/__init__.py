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

from linopt.configs.analysis import (
    GradcheckConfig,
    LandscapeConfig,
    ReproduceConfig,
    StabilityConfig,
    StepSizeConfig,
)
from linopt.configs.base import LOSSES, DataConfig
from linopt.configs.training import BatchSizeConfig, SweepConfig, TrainConfig

__all__ = [
    "LOSSES",
    "BatchSizeConfig",
    "DataConfig",
    "GradcheckConfig",
    "LandscapeConfig",
    "ReproduceConfig",
    "StabilityConfig",
    "StepSizeConfig",
    "SweepConfig",
    "TrainConfig",
]
