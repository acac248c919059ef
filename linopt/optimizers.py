"""Optimizers from optax by name, with learning-rate schedules whose values
(learning rate, decay rate, momentum) are traced: a new value never recompiles.

The optimizer is built inside the jitted step from traced hyperparameters, so
a whole sweep over learning rates runs as one compiled program.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "rmsprop", "adagrad")
SCHEDULES = ("constant", "step", "exponential")


def schedule(name: str, learning_rate, *, decay_rate=1.0, decay_steps: int = 1):
    """``count -> learning rate``.

    * ``constant``: ``learning_rate``.
    * ``step``: multiplied by ``decay_rate`` every ``decay_steps`` steps.
    * ``exponential``: ``learning_rate * decay_rate ** (count / decay_steps)``.

    ``learning_rate`` and ``decay_rate`` may be traced; ``decay_steps`` is a
    Python int. (optax's own ``exponential_decay`` checks its arguments with
    Python ``if``s, so it cannot take traced values.)
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")
    if decay_steps < 1:
        raise ValueError(f"decay_steps must be >= 1, got {decay_steps}")

    def lr_at(count):
        if name == "constant":
            return learning_rate * jnp.ones_like(count, dtype=jnp.float32)
        progress = count / decay_steps
        if name == "step":
            progress = jnp.floor(progress)
        return learning_rate * jnp.power(decay_rate, progress)

    return lr_at


def direction(name: str, *, momentum=0.9) -> optax.GradientTransformation:
    """The optimizer without its learning rate (the update direction)."""
    if name == "sgd":
        return optax.identity()
    if name in ("momentum", "nesterov"):
        return optax.trace(decay=momentum, nesterov=name == "nesterov")
    if name == "adam":
        return optax.scale_by_adam()
    if name == "rmsprop":
        return optax.scale_by_rms()
    if name == "adagrad":
        return optax.scale_by_rss()
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def make(
    name: str = "sgd",
    learning_rate=1e-3,
    *,
    schedule_name: str = "constant",
    decay_rate=1.0,
    decay_steps: int = 1,
    momentum=0.9,
):
    """``optax`` transformation ``name`` scaled by ``-schedule(count)``.

    With the defaults it is plain gradient descent ``W -= lr * grad``.
    """
    lr = schedule(
        schedule_name, learning_rate, decay_rate=decay_rate, decay_steps=decay_steps
    )
    return optax.chain(
        direction(name, momentum=momentum), optax.scale_by_learning_rate(lr)
    )
