"""The lecture's search strategies, each a :class:`linopt.driver.Strategy`.

A strategy is a frozen dataclass of static choices with ``init(params,
hparams, data, key) -> state``, ``step(state, key, data) -> (state,
metrics)`` and ``cost(num_examples)``; ``hparams`` (its ``HParams``) live in
its typed state as traced float32 values, so a new value never recompiles.
The notebook functions (``random_search``, ``random_local_search``,
``gradient_descent``, ``minibatch``, ``sgd``) run one on the driver; a scale,
step or reg left None: the assignment's preset for ``X`` (``presets.for_data``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from linopt import driver, losses, optimizers, presets
from linopt.driver import Cost, Data, Result, init_params, traced  # noqa: F401

SEARCHES = ("random_search", "random_local_search")
STRATEGIES = (*SEARCHES, "gradient_descent", "minibatch", "sgd", "lbfgs")


class RandomSearchHParams(NamedTuple):
    scale: ArrayLike  # tries are scale * randn(C, D)
    reg: ArrayLike


class RandomSearchState(NamedTuple):
    params: jax.Array  # (C, D): the best try so far
    step: jax.Array  # int32: steps (populations) tried
    hparams: RandomSearchHParams
    best_loss: jax.Array  # the best try's loss; inf before any (the lecture's)


@dataclasses.dataclass(frozen=True)
class RandomSearch:
    """Try ``population`` random ``W = scale * randn(C, D)`` per step; keep the best.

    One multiply ``[W_1 ... W_P] @ X.T``, ``(P * C, N)``, scores a step's tries:
    it is the whole cost, and XLA's CPU kernels run it about 20% faster than
    the tall ``X @ [W_1 ... W_P].T`` (BENCHMARKS.md). Metrics: ``loss`` (one a
    try) and ``best_loss``.
    """

    loss: str = "svm"
    population: int = 100
    HParams: ClassVar[type] = RandomSearchHParams

    def init(self, params, hparams, data, key) -> RandomSearchState:
        inf = jnp.float32(jnp.inf)
        return RandomSearchState(params, jnp.int32(0), traced(hparams), inf)

    def step(self, state: RandomSearchState, key, data: Data):
        P, (C, D) = self.population, state.params.shape
        noise = jax.random.normal(key, (P, C, D), state.params.dtype)
        tries = state.hparams.scale * noise
        s = (tries.reshape(-1, D) @ data.X.T).reshape(P, C, -1)
        per_example = losses.per_example_class_major(self.loss, s, data.y)
        l2 = state.hparams.reg * jnp.sum(tries * tries, axis=(1, 2))
        try_losses = jnp.mean(per_example, axis=1) + l2  # (P,)
        best = jnp.argmin(try_losses)
        better = try_losses[best] < state.best_loss
        params = jnp.where(better, tries[best], state.params)
        best_loss = jnp.where(better, try_losses[best], state.best_loss)
        new = state._replace(params=params, step=state.step + 1, best_loss=best_loss)
        return new, {"loss": try_losses, "best_loss": best_loss}

    def cost(self, num_examples: int) -> Cost:
        return Cost(self.population, 0, self.population * num_examples)


class LocalSearchHParams(NamedTuple):
    step_size: ArrayLike  # proposals are W + step_size * randn(C, D)
    reg: ArrayLike


class LocalSearchState(NamedTuple):
    params: jax.Array  # (C, D): the current weights
    step: jax.Array  # int32: driver steps (blocks of proposals) taken
    hparams: LocalSearchHParams
    loss: jax.Array  # float32: the loss of params, once evaluated
    evaluated: jax.Array  # bool: False until the first step scores the start
    run_key: jax.Array  # uint32 key data of the run key (proposal keys)


def _decide(W, proposal, current, proposal_loss):  # the lecture's accept/reject
    accept = proposal_loss < current
    loss = jnp.where(accept, proposal_loss, current)
    metrics = {"loss": loss, "proposal_loss": proposal_loss, "accepted": accept}
    return jnp.where(accept, proposal, W), loss, metrics


@dataclasses.dataclass(frozen=True)
class RandomLocalSearch:
    """Propose ``W + step_size * randn``; keep it if the loss drops.

    Proposal ``t`` draws from ``fold_in(run_key, t)``; a step makes ``block``
    of them (``state.step`` counts blocks), the first also scoring the start.
    ``block=1`` is the lecture's step: one proposal, one loss. ``block=K``
    makes the same proposals and decisions, but one multiply ``[W; delta_1 ..
    delta_K] @ X.T`` reads ``X`` once for ``K`` of them (BENCHMARKS.md). Its
    sums run in another order: losses agree to about 1e-7, and so decisions
    unless two losses tie that closely. Metrics are ``(block,)``.
    """

    loss: str = "svm"
    block: int = 1
    HParams: ClassVar[type] = LocalSearchHParams

    def init(self, params, hparams, data, key) -> LocalSearchState:
        zero, no, run_key = jnp.float32(0), jnp.bool_(False), jax.random.key_data(key)
        return LocalSearchState(
            params, jnp.int32(0), traced(hparams), zero, no, run_key
        )

    def step(self, state: LocalSearchState, key, data: Data):
        if self.block == 1:
            W, loss, metrics = self._one(state, key, data)
        else:
            W, loss, metrics = self._blocked(state, data)
        yes = jnp.bool_(True)
        new = state._replace(params=W, step=state.step + 1, loss=loss, evaluated=yes)
        return new, metrics

    def _one(self, state, key, data):
        loss_fn = losses.LOSSES[self.loss]
        W, (step_size, reg) = state.params, state.hparams
        current = jax.lax.cond(
            state.evaluated, lambda: state.loss, lambda: loss_fn(W, data.X, data.y, reg)
        )
        proposal = W + step_size * jax.random.normal(key, W.shape, W.dtype)
        proposal_loss = loss_fn(proposal, data.X, data.y, reg)
        return _decide(W, proposal, current, proposal_loss)

    def _blocked(self, state, data):
        W, (step_size, reg) = state.params, state.hparams
        run_key = jax.random.wrap_key_data(state.run_key)
        k = jnp.arange(self.block, dtype=jnp.int32)
        t = state.step * self.block + k  # the proposals' indices in the run
        keys = jax.vmap(jax.random.fold_in, (None, 0))(run_key, t)
        noise = jax.vmap(lambda kt: jax.random.normal(kt, W.shape, W.dtype))(keys)
        C, D = W.shape
        # One pass over X scores the current W and every proposal's change.
        stacked = jnp.concatenate([W[None], step_size * noise]).reshape(-1, D)
        G = (stacked @ data.X.T).reshape(self.block + 1, C, -1)  # (K + 1, C, N)

        def loss_of(W, S):
            mean = jnp.mean(losses.per_example_class_major(self.loss, S, data.y))
            return mean + losses.l2_penalty(W, reg)

        S = G[0]
        current = jax.lax.cond(state.evaluated, lambda *_: state.loss, loss_of, W, S)

        def propose(carry, k):
            W, S, current = carry
            # The readable step's own formula; G[k + 1] is read in place.
            proposal, S_proposal = W + step_size * noise[k], S + G[k + 1]
            proposal_loss = loss_of(proposal, S_proposal)
            S = jnp.where(proposal_loss < current, S_proposal, S)
            W, loss, metrics = _decide(W, proposal, current, proposal_loss)
            return (W, S, loss), metrics

        (W, _, loss), metrics = jax.lax.scan(propose, (W, S, current), k)
        return W, loss, metrics

    def cost(self, num_examples: int) -> Cost:
        return Cost(self.block, 0, self.block * num_examples)

    def per_proposal(self, result: Result) -> Result:
        """``result`` with each metric one a proposal, ``num_steps`` in proposals."""
        metrics = {k: v.reshape(-1) for k, v in result.metrics.items()}
        first = (result.metrics["step"][:, None] - 1) * self.block  # per block
        metrics["step"] = (first + np.arange(1, self.block + 1)).reshape(-1)
        return result._replace(metrics=metrics, num_steps=result.num_steps * self.block)


class GradientDescentHParams(NamedTuple):
    learning_rate: ArrayLike
    reg: ArrayLike
    decay_rate: ArrayLike = 1.0  # the schedule's factor per decay_steps
    momentum: ArrayLike = 0.9  # optimizers momentum and nesterov only


class GradientDescentState(NamedTuple):
    params: jax.Array  # (C, D)
    step: jax.Array  # int32: updates taken
    hparams: GradientDescentHParams
    opt_state: optax.OptState
    order: jax.Array  # (N,) int32: this epoch's order ("epoch" sampling; else (0,))


@dataclasses.dataclass(frozen=True)
class GradientDescent:
    """``W <- W - lr * grad L(W)`` through an optax optimizer.

    ``batch_size=None`` is full-batch gradient descent; else each step takes
    ``batch_size`` examples, drawn with replacement (the assignment) or from a
    fresh shuffle each epoch (``sampling="epoch"``); 1 is SGD.
    """

    loss: str = "svm"
    batch_size: int | None = None
    sampling: str = "replacement"
    optimizer: str = "sgd"
    schedule: str = "constant"
    decay_steps: int = 1
    HParams: ClassVar[type] = GradientDescentHParams

    def __post_init__(self):
        if self.sampling not in ("replacement", "epoch"):
            raise ValueError(
                f"sampling must be 'replacement' or 'epoch', got {self.sampling!r}"
            )

    def _optimizer(self, hparams: GradientDescentHParams):
        return optimizers.make(
            self.optimizer,
            hparams.learning_rate,
            schedule_name=self.schedule,
            decay_rate=hparams.decay_rate,
            decay_steps=self.decay_steps,
            momentum=hparams.momentum,
        )

    def init(self, params, hparams, data, key) -> GradientDescentState:
        n, hparams = data.y.shape[0], traced(hparams)
        epochs = self.sampling == "epoch" and self.batch_size is not None
        if epochs and self.batch_size > n:
            raise ValueError(
                f"an epoch of {n} examples cannot fill a batch of "
                f"{self.batch_size}; lower batch_size or sample with replacement"
            )
        opt_state = self._optimizer(hparams).init(params)
        # The epoch's shuffled order lives in the state: a resumed run goes on.
        order = jnp.zeros((n if epochs else 0,), jnp.int32)
        return GradientDescentState(params, jnp.int32(0), hparams, opt_state, order)

    def _batch(self, state: GradientDescentState, key, data: Data):
        n, size, order = data.y.shape[0], self.batch_size, state.order
        if size is None:
            return data.X, data.y, order
        if self.sampling == "replacement":
            idx = jax.random.randint(key, (size,), 0, n)
            return data.X[idx], data.y[idx], order
        position = state.step % (n // size)
        # The step key at an epoch's first step draws that epoch's order.
        order = jax.lax.cond(
            position == 0,
            lambda: jax.random.permutation(key, n).astype(jnp.int32),
            lambda: order,
        )
        idx = jax.lax.dynamic_slice(order, (position * size,), (size,))
        return data.X[idx], data.y[idx], order

    def step(self, state: GradientDescentState, key, data: Data):
        X, y, order = self._batch(state, key, data)
        loss_and_grad = jax.value_and_grad(losses.LOSSES[self.loss])
        loss, grad = loss_and_grad(state.params, X, y, state.hparams.reg)
        optimizer = self._optimizer(state.hparams)
        updates, opt_state = optimizer.update(grad, state.opt_state, state.params)
        params, step = optax.apply_updates(state.params, updates), state.step + 1
        new = state._replace(params=params, step=step, opt_state=opt_state, order=order)
        return new, {"loss": loss}

    def cost(self, num_examples: int) -> Cost:
        n = num_examples if self.batch_size is None else self.batch_size
        return Cost(1, 1, n)


def largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of ``n`` not above ``at_most`` (population, block)."""
    return max(d for d in range(1, min(at_most, n) + 1) if n % d == 0)


def random_search(
    X: ArrayLike,
    y: ArrayLike,
    *,
    key: jax.Array,
    num_tries: int = 1000,
    scale: float | None = None,
    reg: float | None = None,
    loss: str = "svm",
    population: int = 100,
    **run_kwargs,
) -> Result:
    """The lecture's random search: ``num_tries`` draws of ``scale * randn``.

    Args:
      X, y, key: ``(N, D)`` float32 examples, ``(N,)`` int labels, the run's key.
      num_tries: random weights to try.
      scale, reg: tries are ``scale * randn(C, D)``; L2 strength (traced).
      loss: ``"svm"`` or ``"softmax"``.
      population: tries per matrix multiply (lowered to divide ``num_tries``).
      **run_kwargs: ``num_classes``, ``chunk_size``, ... of :func:`driver.start`.
    Returns:
      a Result: ``losses`` one a try, in order; ``params`` the best try.
    """
    scale, reg = presets.for_data(X, loss, "random_search", search_scale=scale, reg=reg)
    population = largest_divisor(num_tries, population)
    strategy, steps = RandomSearch(loss, population), num_tries // population
    hparams = RandomSearchHParams(scale, reg)
    run_kwargs.update(key=key, num_steps=steps, init_scale=None)
    return driver.start(strategy, hparams, X, y, **run_kwargs)


def random_local_search(
    X: ArrayLike,
    y: ArrayLike,
    *,
    key: jax.Array,
    num_steps: int = 1000,
    step_size: float | None = None,
    reg: float | None = None,
    loss: str = "svm",
    block: int = 100,
    **run_kwargs,
) -> Result:
    """The lecture's random local search: ``num_steps`` proposals.

    Args:
      X, y, key: ``(N, D)`` float32 examples, ``(N,)`` int labels, the run's key.
      num_steps: proposals ``W + step_size * randn(C, D)``.
      step_size, reg: the proposals' scale; L2 strength (traced).
      loss: ``"svm"`` or ``"softmax"``.
      block: proposals per pass over ``X``, 1 the lecture's (made to divide).
      **run_kwargs: ``init_scale``, ``params``, ... of :func:`linopt.driver.start`.
    Returns:
      a Result with metrics of shape ``(num_steps,)``, one a proposal.
    """
    step_size, reg = presets.for_data(
        X, loss, "random_local_search", step_size=step_size, reg=reg
    )
    block = largest_divisor(num_steps, block)
    strategy, steps = RandomLocalSearch(loss, block), num_steps // block
    hparams = LocalSearchHParams(step_size, reg)
    run_kwargs.update(key=key, num_steps=steps)
    return strategy.per_proposal(driver.start(strategy, hparams, X, y, **run_kwargs))


def minibatch(
    X: ArrayLike,
    y: ArrayLike,
    *,
    key: jax.Array,
    num_steps: int = 1500,
    batch_size: int | None = 200,
    learning_rate: float | None = None,
    reg: float | None = None,
    loss: str = "svm",
    sampling: str = "replacement",
    optimizer: str = "sgd",
    schedule: str = "constant",
    decay_rate: float = 1.0,
    decay_steps: int = 1,
    momentum: float = 0.9,
    **run_kwargs,
) -> Result:
    """Mini-batch gradient descent (CIFAR-10's defaults: the assignment's SVM run).

    Args:
      X, y, key: ``(N, D)`` float32 examples, ``(N,)`` int labels, the run's key.
      num_steps: updates.
      batch_size: examples per update (None: all of them).
      learning_rate, reg: the step; L2 strength (traced, as are decay_rate, momentum).
      loss: ``"svm"`` or ``"softmax"``.
      sampling: ``"replacement"`` or ``"epoch"`` (a fresh shuffle per epoch).
      optimizer, schedule, decay_rate, decay_steps (static), momentum: see
        :func:`linopt.optimizers.make`.
      **run_kwargs: ``init_scale``, ``params``, ... of :func:`driver.start`.
    Returns:
      a :class:`linopt.driver.Result`.
    """
    learning_rate, reg = presets.for_data(
        X, loss, "minibatch", learning_rate=learning_rate, reg=reg
    )
    strategy = GradientDescent(
        loss, batch_size, sampling, optimizer, schedule, decay_steps
    )
    hparams = GradientDescentHParams(learning_rate, reg, decay_rate, momentum)
    run_kwargs.update(key=key, num_steps=num_steps)
    return driver.start(strategy, hparams, X, y, **run_kwargs)


def gradient_descent(X, y, *, key, num_steps: int = 100, **kwargs) -> Result:
    """Full-batch gradient descent: :func:`minibatch` with every example."""
    return minibatch(X, y, key=key, num_steps=num_steps, batch_size=None, **kwargs)


def sgd(X, y, *, key, num_steps: int = 1500, **kwargs) -> Result:
    """Stochastic gradient descent: :func:`minibatch` with batches of one."""
    return minibatch(X, y, key=key, num_steps=num_steps, batch_size=1, **kwargs)
