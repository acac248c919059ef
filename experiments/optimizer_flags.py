"""The optax optimizer flags of the experiments that train (train, sweep).

Importing this module defines them; unset ones (None) fall back to the
preset's values. ``SETTINGS`` maps each setting's name to its flag.
"""

from __future__ import annotations

from absl import flags

from experiments import common
from linopt import optimizers

OPTIMIZER = flags.DEFINE_enum(
    "optimizer",
    None,
    list(optimizers.OPTIMIZERS),
    "optax optimizer (default: the preset's).",
)
SCHEDULE = flags.DEFINE_enum(
    "schedule",
    None,
    list(optimizers.SCHEDULES),
    "Learning-rate schedule (default: the preset's).",
)
DECAY_RATE = flags.DEFINE_float("decay_rate", None, "Schedule's decay per decay_steps.")
DECAY_STEPS = flags.DEFINE_integer("decay_steps", None, "Steps per decay.")
MOMENTUM = flags.DEFINE_float("momentum", None, "Momentum / nesterov coefficient.")

SETTINGS = {
    "optimizer": OPTIMIZER,
    "schedule": SCHEDULE,
    "decay_rate": DECAY_RATE,
    "decay_steps": DECAY_STEPS,
    "momentum": MOMENTUM,
}


def validate() -> None:
    """One-line errors (exit 2) for out-of-range optimizer flags."""
    require = common.require
    require(
        DECAY_STEPS.value is None or DECAY_STEPS.value >= 1,
        f"--decay_steps must be >= 1, got {DECAY_STEPS.value}",
    )
    require(
        DECAY_RATE.value is None or DECAY_RATE.value > 0,
        f"--decay_rate must be > 0, got {DECAY_RATE.value}",
    )
    require(
        MOMENTUM.value is None or 0 <= MOMENTUM.value < 1,
        f"--momentum must be in [0, 1), got {MOMENTUM.value}",
    )
