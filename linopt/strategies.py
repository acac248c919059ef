"""The lecture's search strategies, all with one shape and one scanned driver.

A strategy is a frozen dataclass of static choices (loss, batch size,
optimizer) with two methods:

* ``init(params, hparams) -> State``: traced hyperparameters (learning rate,
  reg, step size) live in the state, so a new value never recompiles;
* ``step(state, key, data) -> (state, metrics)``: one step, pure JAX.

:func:`linopt.driver.run` scans ``step`` under jit. The public functions
(``random_search``, ``random_local_search``, ``gradient_descent``,
``minibatch``, ``sgd``) build a strategy and run it; each returns a
:class:`linopt.driver.Result` with the final ``params (C, D)`` and the loss
history.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from linopt import losses, optimizers
from linopt.driver import Data, Result, run


class State(NamedTuple):
    params: jax.Array  # (C, D) float32
    step: jax.Array  # int32 scalar: steps taken
    hparams: dict  # name -> float32 scalar, traced
    aux: Any  # the strategy's own state (best loss, optimizer state, ...)


def _hparams(**values) -> dict:
    return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}


@dataclasses.dataclass(frozen=True)
class RandomSearch:
    """Try ``population`` random ``W = scale * randn(C, D)`` per step; keep the best.

    Each step evaluates its whole population with one matrix multiply
    ``[W_1 ... W_P] @ X.T`` of shape ``(P * C, N)``: the multiply is the whole
    cost, and XLA's CPU kernels run this wide product about 20% faster than
    the tall ``X @ [W_1 ... W_P].T`` (BENCHMARKS.md). One step is
    ``population`` tries.
    """

    loss: str = "svm"
    population: int = 100

    def init(self, params, hparams, data):
        del data
        return State(params, jnp.int32(0), hparams, jnp.float32(jnp.inf))

    def step(self, state, key, data):
        C, D = state.params.shape
        tries = state.hparams["scale"] * jax.random.normal(
            key, (self.population, C, D), state.params.dtype
        )
        s = (tries.reshape(-1, D) @ data.X.T).reshape(self.population, C, -1)
        per_example = losses.per_example_class_major(self.loss, s, data.y)
        l2 = state.hparams["reg"] * jnp.sum(tries * tries, axis=(1, 2))
        try_losses = jnp.mean(per_example, axis=1) + l2  # (P,)
        best = jnp.argmin(try_losses)
        better = try_losses[best] < state.aux
        params = jnp.where(better, tries[best], state.params)
        best_loss = jnp.where(better, try_losses[best], state.aux)
        new = State(params, state.step + 1, state.hparams, best_loss)
        return new, {"loss": try_losses, "best_loss": best_loss}

    def evaluations(self, num_examples: int) -> dict:
        return {
            "loss_evals": self.population,
            "grad_evals": 0,
            "examples": self.population * num_examples,
        }


@dataclasses.dataclass(frozen=True)
class RandomLocalSearch:
    """Propose ``W + step_size * randn``; keep it if the loss drops.

    The lecture's accept/reject, branch-free: the choice is a ``jnp.where``.
    """

    loss: str = "svm"

    def init(self, params, hparams, data):
        del data
        return State(params, jnp.int32(0), hparams, jnp.float32(jnp.inf))

    def step(self, state, key, data):
        loss_fn = losses.LOSSES[self.loss]
        reg = state.hparams["reg"]
        # The first step also evaluates the starting point (aux is inf then);
        # afterwards aux holds the current loss, so each step costs one loss.
        current = jax.lax.cond(
            jnp.isinf(state.aux),
            lambda: loss_fn(state.params, data.X, data.y, reg),
            lambda: state.aux,
        )
        proposal = state.params + state.hparams["step_size"] * jax.random.normal(
            key, state.params.shape, state.params.dtype
        )
        proposal_loss = loss_fn(proposal, data.X, data.y, reg)
        accept = proposal_loss < current
        params = jnp.where(accept, proposal, state.params)
        loss = jnp.where(accept, proposal_loss, current)
        new = State(params, state.step + 1, state.hparams, loss)
        return new, {"loss": loss, "proposal_loss": proposal_loss, "accepted": accept}

    def evaluations(self, num_examples: int) -> dict:
        return {"loss_evals": 1, "grad_evals": 0, "examples": num_examples}


@dataclasses.dataclass(frozen=True)
class GradientDescent:
    """``W <- W - lr * grad L(W)`` through an optax optimizer.

    ``batch_size=None`` is full-batch gradient descent; otherwise each step
    uses ``batch_size`` examples, drawn with replacement (``sampling=
    "replacement"``, the assignment) or from a fresh shuffle each epoch
    (``"epoch"``). ``batch_size=1`` is stochastic gradient descent.
    """

    loss: str = "svm"
    batch_size: int | None = None
    sampling: str = "replacement"
    optimizer: str = "sgd"
    schedule: str = "constant"
    decay_steps: int = 1

    def _optimizer(self, hparams):
        return optimizers.make(
            self.optimizer,
            hparams["learning_rate"],
            schedule_name=self.schedule,
            decay_rate=hparams["decay_rate"],
            decay_steps=self.decay_steps,
            momentum=hparams["momentum"],
        )

    def init(self, params, hparams, data):
        hparams = {
            "decay_rate": jnp.float32(1.0),
            "momentum": jnp.float32(0.9),
            **hparams,
        }
        opt_state = self._optimizer(hparams).init(params)
        # "epoch" sampling keeps the epoch's shuffled order in the state (so a
        # resumed run continues the same epoch); the other modes need none.
        n = data.y.shape[0] if self.sampling == "epoch" and self.batch_size else 0
        return State(
            params,
            jnp.int32(0),
            hparams,
            {"opt": opt_state, "order": jnp.zeros((n,), jnp.int32)},
        )

    def _batch(self, state, key, data):
        order = state.aux["order"]
        if self.batch_size is None:
            return data.X, data.y, order
        if self.sampling == "replacement":
            idx = jax.random.randint(key, (self.batch_size,), 0, data.y.shape[0])
            return data.X[idx], data.y[idx], order
        per_epoch = data.y.shape[0] // self.batch_size
        position = state.step % per_epoch
        # The step key at an epoch's first step draws that epoch's order.
        order = jax.lax.cond(
            position == 0,
            lambda: jax.random.permutation(key, data.y.shape[0]).astype(jnp.int32),
            lambda: order,
        )
        idx = jax.lax.dynamic_slice(
            order, (position * self.batch_size,), (self.batch_size,)
        )
        return data.X[idx], data.y[idx], order

    def step(self, state, key, data):
        X, y, order = self._batch(state, key, data)
        loss, grad = jax.value_and_grad(losses.LOSSES[self.loss])(
            state.params, X, y, state.hparams["reg"]
        )
        updates, opt_state = self._optimizer(state.hparams).update(
            grad, state.aux["opt"], state.params
        )
        params = optax.apply_updates(state.params, updates)
        new = State(
            params, state.step + 1, state.hparams, {"opt": opt_state, "order": order}
        )
        return new, {"loss": loss}

    def evaluations(self, num_examples: int) -> dict:
        n = num_examples if self.batch_size is None else self.batch_size
        return {"loss_evals": 1, "grad_evals": 1, "examples": n}


STRATEGIES = (
    "random_search",
    "random_local_search",
    "gradient_descent",
    "minibatch",
    "sgd",
)


def init_params(key, num_classes: int, dim: int, scale=1e-3) -> jax.Array:
    """``scale * randn(C, D)``, the assignment's starting weights."""
    return scale * jax.random.normal(key, (num_classes, dim), jnp.float32)


def _data(X, y) -> Data:
    return Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.int32))


def _start(
    strategy,
    X,
    y,
    key,
    params,
    *,
    num_classes,
    init_scale,
    hparams,
    num_steps,
    run_kwargs,
) -> Result:
    data = _data(X, y)
    init_key, run_key = jax.random.split(key)
    if params is None:
        if num_classes is None:
            num_classes = int(np.max(np.asarray(y))) + 1
        params = init_params(init_key, num_classes, data.X.shape[1], init_scale)
    state = strategy.init(jnp.asarray(params, jnp.float32), _hparams(**hparams), data)
    restore = run_kwargs.pop("restore", None)
    if restore is not None:  # continue a checkpointed run: state and history
        state, run_kwargs["history"] = restore(state, run_key)
    return run(strategy, state, run_key, data, num_steps=num_steps, **run_kwargs)


def random_search(
    X,
    y,
    *,
    key,
    num_tries: int = 1000,
    scale=1e-4,
    reg=0.0,
    loss: str = "svm",
    population: int = 100,
    num_classes: int | None = None,
    **run_kwargs,
) -> Result:
    """The lecture's random search: ``num_tries`` draws of ``scale * randn``.

    Tries are evaluated ``population`` at a time (the largest divisor of
    ``num_tries`` not above it), one matrix multiply each. ``result.losses``
    has one loss per try, in order; ``result.params`` is the best try.
    """
    population = max(
        p for p in range(1, min(population, num_tries) + 1) if num_tries % p == 0
    )
    if num_classes is None:
        num_classes = int(np.max(np.asarray(y))) + 1
    params = jnp.zeros((num_classes, np.shape(X)[1]), jnp.float32)
    return _start(
        RandomSearch(loss, population),
        X,
        y,
        key,
        params,
        num_classes=num_classes,
        init_scale=0.0,
        hparams={"scale": scale, "reg": reg},
        num_steps=num_tries // population,
        run_kwargs=run_kwargs,
    )


def random_local_search(
    X,
    y,
    *,
    key,
    num_steps: int = 1000,
    step_size=1e-4,
    init_scale=1e-3,
    reg=0.0,
    loss: str = "svm",
    params=None,
    num_classes: int | None = None,
    **run_kwargs,
) -> Result:
    """The lecture's random local search from ``init_scale * randn`` (or
    ``params``): ``num_steps`` proposals ``W + step_size * randn``."""
    return _start(
        RandomLocalSearch(loss),
        X,
        y,
        key,
        params,
        num_classes=num_classes,
        init_scale=init_scale,
        hparams={"step_size": step_size, "reg": reg},
        num_steps=num_steps,
        run_kwargs=run_kwargs,
    )


def minibatch(
    X,
    y,
    *,
    key,
    num_steps: int = 1500,
    batch_size: int | None = 200,
    learning_rate=1e-7,
    reg=2.5e4,
    loss: str = "svm",
    sampling: str = "replacement",
    optimizer: str = "sgd",
    schedule: str = "constant",
    decay_rate=1.0,
    decay_steps: int = 1,
    momentum=0.9,
    init_scale=1e-3,
    params=None,
    num_classes: int | None = None,
    **run_kwargs,
) -> Result:
    """Mini-batch gradient descent; the defaults are the assignment's SVM run.

    Args:
      X: ``(N, D)`` float32. y: ``(N,)`` int labels. key: the run's key.
      num_steps: updates. batch_size: examples per update (None: all).
      learning_rate, reg, decay_rate, momentum: traced (no recompile).
      sampling: ``"replacement"`` or ``"epoch"`` (a fresh shuffle per epoch).
      optimizer, schedule, decay_steps: see :mod:`linopt.optimizers`.
      init_scale: starting weights ``init_scale * randn(C, D)`` unless ``params``.
      **run_kwargs: ``chunk_size``, ``on_chunk`` (see :func:`linopt.driver.run`),
        ``restore``: ``(fresh_state, run_key) -> (state, history)`` to resume.
    """
    if sampling not in ("replacement", "epoch"):
        raise ValueError(f"sampling must be 'replacement' or 'epoch', got {sampling!r}")
    if sampling == "epoch" and batch_size is not None and batch_size > np.shape(X)[0]:
        raise ValueError(
            f"an epoch of {np.shape(X)[0]} examples cannot fill a batch "
            f"of {batch_size}; lower batch_size or sample with replacement"
        )
    strategy = GradientDescent(
        loss, batch_size, sampling, optimizer, schedule, decay_steps
    )
    hparams = {
        "learning_rate": learning_rate,
        "reg": reg,
        "decay_rate": decay_rate,
        "momentum": momentum,
    }
    return _start(
        strategy,
        X,
        y,
        key,
        params,
        num_classes=num_classes,
        init_scale=init_scale,
        hparams=hparams,
        num_steps=num_steps,
        run_kwargs=run_kwargs,
    )


def gradient_descent(X, y, *, key, num_steps: int = 100, **kwargs) -> Result:
    """Full-batch gradient descent: :func:`minibatch` with every example."""
    return minibatch(X, y, key=key, num_steps=num_steps, batch_size=None, **kwargs)


def sgd(X, y, *, key, num_steps: int = 1500, **kwargs) -> Result:
    """Stochastic gradient descent: :func:`minibatch` with batches of one."""
    return minibatch(X, y, key=key, num_steps=num_steps, batch_size=1, **kwargs)
