"""Train a linear classifier from one resolved config, then evaluate it: what
``experiments.train`` runs and what tests call shrunk.

:func:`make_strategy` is the one way from a :class:`linopt.configs.TrainConfig`
(resolved by :func:`linopt.presets.resolve`, so every hyperparameter is set
and the ones that do not apply are None) to a strategy, its typed
hyperparameters and its number of driver steps; :func:`train` runs it on the
training split, data-parallel over ``config.num_devices``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from linopt import configs, driver, lbfgs, losses, sharding, strategies
from linopt.data import Dataset
from linopt.driver import Result

# The batch of the gradient strategies; minibatch's is config.batch_size.
_BATCH = {"gradient_descent": None, "sgd": 1}


def make_strategy(
    config: configs.TrainConfig, num_examples: int
) -> tuple[driver.Strategy, NamedTuple, int]:
    """The strategy a resolved config asks for.

    The searches take their fast paths: random search scores ``population``
    tries a matrix multiply, random local search ``block`` proposals a pass
    over ``X`` (each lowered to divide ``num_steps``).

    Args:
      config: a resolved ``TrainConfig`` of one strategy (not ``"all"``).
      num_examples: training examples ``N`` (an epoch must fill a batch).
    Returns:
      ``(strategy, hparams, num_steps)``: a :class:`linopt.driver.Strategy`,
      its ``HParams`` and the driver steps that make ``config.num_steps``
      updates, tries or proposals.
    Raises:
      ValueError: an unknown strategy, or an epoch smaller than a batch.
    """
    c = config
    if c.strategy == "random_search":
        population = strategies.largest_divisor(c.num_steps, c.population)
        strategy = strategies.RandomSearch(c.loss, population)
        hparams = strategies.RandomSearchHParams(c.search_scale, c.reg)
        return strategy, hparams, c.num_steps // population
    if c.strategy == "random_local_search":
        block = strategies.largest_divisor(c.num_steps, c.block)
        strategy = strategies.RandomLocalSearch(c.loss, block)
        hparams = strategies.LocalSearchHParams(c.step_size, c.reg)
        return strategy, hparams, c.num_steps // block
    if c.strategy == "lbfgs":  # full batch; the line search picks each step
        return lbfgs.LBFGS(c.loss), lbfgs.LBFGSHParams(c.reg), c.num_steps
    if c.strategy not in ("gradient_descent", "minibatch", "sgd"):
        raise ValueError(
            f"strategy must be one of {', '.join(strategies.STRATEGIES)}; "
            f"got {c.strategy!r}"
        )
    batch_size = _BATCH.get(c.strategy, c.batch_size)
    sampling = c.sampling or "replacement"
    if sampling == "epoch" and batch_size is not None and batch_size > num_examples:
        raise ValueError(
            f"batch_size={batch_size} exceeds the {num_examples} training "
            "examples of an epoch; lower it or sample with replacement"
        )
    strategy = strategies.GradientDescent(
        c.loss, batch_size, sampling, c.optimizer, c.schedule, c.decay_steps or 1
    )
    defaults = strategies.GradientDescentHParams._field_defaults
    hparams = strategies.GradientDescentHParams(
        c.learning_rate,
        c.reg,
        defaults["decay_rate"] if c.decay_rate is None else c.decay_rate,
        defaults["momentum"] if c.momentum is None else c.momentum,
    )
    return strategy, hparams, c.num_steps


def checkpoint_every(config: configs.TrainConfig, num_steps: int) -> int | None:
    """``config.checkpoint_every`` in driver steps, of which the run has
    ``num_steps`` (a random-search step is ``population`` tries)."""
    if not config.checkpoint_every:
        return None
    return max(1, config.checkpoint_every * num_steps // config.num_steps)


EVALUATIONS = 20  # points along a run where the weights are evaluated


def evaluate_every(num_steps: int) -> int:
    """Driver steps between evaluations along a run of ``num_steps``."""
    return max(1, -(-num_steps // EVALUATIONS))


def train(
    config: configs.TrainConfig,
    ds: Dataset,
    *,
    on_chunk: Callable[[driver.Progress], bool | None] | None = None,
    restore: Callable | None = None,
    params: ArrayLike | None = None,
) -> Result:
    """Run ``config``'s strategy on the training split of ``ds``.

    Args:
      config: a resolved ``TrainConfig`` of one strategy.
      ds: the data set; its rows split over ``config.num_devices`` devices.
      on_chunk: sees each chunk's :class:`linopt.driver.Progress`; ``False``
        stops the run.
      restore: ``(fresh_state, run_key) -> (state, history)`` resumes a run.
      params: ``(C, D)`` starting weights (default: ``init_scale * randn``
        from ``key(config.seed)``; zeros for random search).
    Returns:
      a :class:`linopt.driver.Result`, ``num_steps`` in ``config.num_steps``'
      units (tries of random search; random local search: one metric a
      proposal).
    """
    # Data parallelism: the rows split over devices; jit follows (linopt.sharding).
    X, y = sharding.shard_data(ds.X_train, ds.y_train, config.num_devices)
    strategy, hparams, num_steps = make_strategy(config, len(ds.y_train))
    result = driver.start(
        strategy,
        hparams,
        X,
        y,
        key=jax.random.key(config.seed),
        num_steps=num_steps,
        params=params,
        num_classes=ds.num_classes,
        init_scale=config.init_scale,
        restore=restore,
        chunk_size=config.chunk_size,
        every=(checkpoint_every(config, num_steps), evaluate_every(num_steps)),
        on_chunk=on_chunk,
    )
    if hasattr(strategy, "measured"):  # L-BFGS: its line search's evaluations
        result = strategy.measured(result)
    if isinstance(strategy, strategies.RandomLocalSearch):
        result = strategy.per_proposal(result)
    if isinstance(strategy, strategies.RandomSearch):  # steps counted in tries
        result = result._replace(num_steps=result.num_steps * strategy.population)
    return result


def evaluate(params: ArrayLike, ds: Dataset, loss: str, reg: float) -> dict:
    """Accuracy on each split and the full training loss (with reg).

    Args:
      params: ``(C, D)`` weights.
      ds: the data set.
      loss: ``"svm"`` or ``"softmax"``.
      reg: the L2 strength of ``train_loss``.
    Returns:
      ``train_loss``, ``train_data_loss`` (without reg) and the accuracy of
      each split, as floats.
    """
    W = np.asarray(params)
    loss_fn = jax.jit(losses.LOSSES[loss])
    return {
        "train_loss": float(loss_fn(W, ds.X_train, ds.y_train, reg)),
        "train_data_loss": float(loss_fn(W, ds.X_train, ds.y_train, 0.0)),
        "train_accuracy": float(losses.accuracy(W, ds.X_train, ds.y_train)),
        "val_accuracy": float(losses.accuracy(W, ds.X_val, ds.y_val)),
        "test_accuracy": float(losses.accuracy(W, ds.X_test, ds.y_test)),
    }


ALONG_RUN_ROWS = 10_000  # training rows evaluated along a run (all, if fewer)


def along_run_data(ds: Dataset) -> tuple:
    """The examples :func:`along_run` evaluates, on device once a run: the
    first :data:`ALONG_RUN_ROWS` training rows and the validation split
    (all 49,000 CIFAR-10 rows would cost 0.5 s an evaluation here)."""
    n = ALONG_RUN_ROWS
    return jax.device_put((ds.X_train[:n], ds.y_train[:n], ds.X_val, ds.y_val))


def along_run(params: ArrayLike, rows: tuple, loss: str, reg: float) -> dict:
    """What a run is judged by at intervals, on ``rows`` (:func:`along_run_data`):
    the training loss (with reg), train and validation accuracy (never test)."""
    values = _along_run(jnp.asarray(params), *rows, reg, loss=loss)
    names = ("train_loss", "train_accuracy", "val_accuracy")
    return dict(zip(names, map(float, jax.device_get(values)), strict=True))


@functools.partial(jax.jit, static_argnames="loss")
def _along_run(W, X, y, X_val, y_val, reg, *, loss):
    scores = X @ W.T  # one multiply for the loss and the accuracy
    data_loss = jnp.mean(losses.PER_EXAMPLE[loss](scores, y))
    full = data_loss + losses.l2_penalty(W, reg)
    train_acc = jnp.mean(jnp.argmax(scores, axis=1) == y)
    return full, train_acc, jnp.mean(jnp.argmax(X_val @ W.T, axis=1) == y_val)


def summarize(config: configs.TrainConfig, result: Result, ds: Dataset) -> dict:
    """The headline figures of a run, for ``summary.json``.

    Args:
      config: the run's resolved config.
      result: what :func:`train` returned.
      ds: the data set it ran on.
    Returns:
      a JSON-ready dict: status, evaluation, counts and timings.
    """
    return {
        "status": result.status,
        "strategy": config.strategy,
        "loss": config.loss,
        **evaluate(result.params, ds, config.loss, config.reg),
        "final_step_loss": float(result.losses[-1]) if len(result.losses) else None,
        # The first step whose loss or weights were not finite (1-based).
        "diverged_at_step": (
            result.num_steps + 1 if result.status == "diverged" else None
        ),
        "num_steps": result.num_steps,
        "num_loss_evals": result.num_loss_evals,
        "num_grad_evals": result.num_grad_evals,
        "num_examples_evaluated": result.num_examples_evaluated,
        "wall_time_s": result.wall_time_s,
        "compile_and_first_chunk_s": result.compile_and_first_chunk_s,
        "num_train": int(len(ds.y_train)),
        "num_test": int(len(ds.y_test)),
    }
