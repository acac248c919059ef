"""L-BFGS as a strategy, full batch, and the certified optimum it finds.

:class:`LBFGS` is optax's ``lbfgs()`` (its zoom line search, strong Wolfe
conditions) on the same driver as every other strategy: one driver step is
one L-BFGS iteration. ``optax.value_and_grad_from_state`` reuses the value
and gradient the line search ended on, so an iteration costs the line
search's evaluations alone (one, when its first trial step is accepted, as
it is in most iterations) and the very first iteration one more, at the
starting weights.

The driver's :class:`linopt.driver.Cost` is a fixed count a step, so
:meth:`LBFGS.cost` is that one evaluation (a lower bound); the exact count is
the per-step metric ``evaluations`` and the state's running total,
``state.evaluations``, which :meth:`LBFGS.measured` puts into a result's
counts (:func:`lbfgs` does).

:func:`optimum` runs the same step until the gradient norm has fallen by a
factor ``tol``, in float64 when x64 is enabled: the optimum of a convex loss
(softmax plus L2), certified by its gradient.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from linopt import driver, losses, presets
from linopt.driver import Cost, Data, Result

PATIENCE = 5  # iterations without a decrease: optimum stops, a run rests


class LBFGSHParams(NamedTuple):
    reg: ArrayLike  # loss + reg * sum(W**2)


class LBFGSState(NamedTuple):
    params: jax.Array  # (C, D)
    step: jax.Array  # int32: iterations taken
    hparams: LBFGSHParams
    opt_state: optax.OptState  # optax's: the memory, the last value and gradient
    evaluations: jax.Array  # int32: loss-and-gradient evaluations so far
    flat: jax.Array  # int32: steps in a row whose line search found no decrease


@dataclasses.dataclass(frozen=True)
class LBFGS:
    """L-BFGS with optax's zoom line search, on every example each step.

    Metrics a step, at the weights it ends on: ``loss`` (with reg),
    ``grad_norm`` (``|grad L|``, the certificate of a smooth loss),
    ``evaluations`` (this step's loss-and-gradient evaluations) and
    ``step_size`` (the line search's). ``reg`` is traced in the dtype of the
    weights, so float64 weights give a float64 objective.
    """

    loss: str = "softmax"
    memory_size: int = 10  # curvature pairs kept
    HParams: ClassVar[type] = LBFGSHParams

    def _solver(self) -> optax.GradientTransformationExtraArgs:
        return optax.lbfgs(memory_size=self.memory_size)

    def init(self, params, hparams, data, key) -> LBFGSState:
        hparams = jax.tree.map(lambda v: jnp.asarray(v, params.dtype), hparams)
        # optax's fresh state holds weakly typed scalars that its update makes
        # strong: made strong here, a chunk's output state is its input's type.
        strong = lambda x: jnp.asarray(x, x.dtype)  # noqa: E731
        opt_state = jax.tree.map(strong, self._solver().init(params))
        zero = jnp.int32(0)
        return LBFGSState(params, zero, hparams, opt_state, zero, zero)

    def step(self, state: LBFGSState, key, data: Data):
        """One L-BFGS iteration; after :data:`PATIENCE` in a row without a
        decrease (the precision's floor: each would spend the line search's
        every evaluation, 20, for nothing) the weights stay and nothing is
        evaluated (``evaluations`` 0, ``step_size`` 0)."""
        resting = state.flat >= PATIENCE
        return jax.lax.cond(resting, self._rest, self._search, state, data)

    def _rest(self, state: LBFGSState, data: Data):
        value = optax.tree.get(state.opt_state, "value")
        grad = optax.tree.get(state.opt_state, "grad")
        rate = optax.tree.get(state.opt_state, "learning_rate")
        metrics = {
            "loss": value,
            "grad_norm": optax.tree.norm(grad),
            "evaluations": jnp.int32(0),
            "step_size": jnp.zeros_like(rate),
        }
        return state._replace(step=state.step + 1), metrics

    def _search(self, state: LBFGSState, data: Data):
        fn, solver = losses.LOSSES[self.loss], self._solver()
        reg, W = state.hparams.reg, state.params
        # The line search's last value and gradient, or (first step) fresh ones.
        stored = optax.tree.get(state.opt_state, "value")
        fresh = ~jnp.isfinite(stored)  # value_and_grad_from_state's own test
        value_and_grad = optax.value_and_grad_from_state(fn)
        value, grad = value_and_grad(W, data.X, data.y, reg, state=state.opt_state)
        updates, opt_state = solver.update(
            grad, state.opt_state, W, value=value, grad=grad, value_fn=fn,
            X=data.X, y=data.y, reg=reg,
        )  # fmt: skip
        params = optax.apply_updates(W, updates)
        searched = optax.tree.get(opt_state, "num_linesearch_steps")
        evaluations = (searched + fresh).astype(jnp.int32)
        metrics = {
            "loss": optax.tree.get(opt_state, "value"),
            "grad_norm": optax.tree.norm(optax.tree.get(opt_state, "grad")),
            "evaluations": evaluations,
            "step_size": optax.tree.get(opt_state, "learning_rate"),
        }
        decreased = metrics["loss"] < stored  # the first step's stored is inf
        new = LBFGSState(
            params.astype(W.dtype),
            state.step + 1,
            state.hparams,
            opt_state,
            state.evaluations + evaluations,
            jnp.where(decreased, 0, state.flat + 1).astype(jnp.int32),
        )
        return new, metrics

    def cost(self, num_examples: int) -> Cost:
        """One evaluation a step, the least a step makes; the exact count is
        ``state.evaluations`` (see :meth:`measured`)."""
        return Cost(1, 1, num_examples)

    def measured(self, result: Result) -> Result:
        """``result`` with its counts the evaluations the line search made."""
        evaluations = int(result.state.evaluations)
        per = result.num_examples_evaluated // max(1, result.num_loss_evals)
        return result._replace(
            num_loss_evals=evaluations,
            num_grad_evals=evaluations,
            num_examples_evaluated=evaluations * per,
        )


def lbfgs(
    X: ArrayLike,
    y: ArrayLike,
    *,
    key: jax.Array,
    num_steps: int = 100,
    reg: float | None = None,
    loss: str = "softmax",
    memory_size: int = 10,
    **run_kwargs,
) -> Result:
    """Full-batch L-BFGS (optax's, zoom line search) for ``num_steps`` iterations.

    Args:
      X, y, key: ``(N, D)`` float32 examples, ``(N,)`` int labels, the run's key.
      num_steps: L-BFGS iterations.
      reg: L2 strength (traced); None: the preset for ``X``.
      loss: ``"softmax"`` (smooth: what L-BFGS is for) or ``"svm"``.
      memory_size: curvature pairs kept.
      **run_kwargs: ``init_scale``, ``params``, ... of :func:`driver.start`.
    Returns:
      a :class:`linopt.driver.Result` whose counts are the evaluations made.
    """
    (reg,) = presets.for_data(X, loss, "lbfgs", reg=reg)
    strategy = LBFGS(loss, memory_size)
    run_kwargs.update(key=key, num_steps=num_steps)
    result = driver.start(strategy, LBFGSHParams(reg), X, y, **run_kwargs)
    return strategy.measured(result)


class Optimum(NamedTuple):
    params: np.ndarray  # (C, D): W*, the lowest-loss weights seen
    loss: float  # L* = L(W*), with reg
    grad_norm: float  # |grad L(W*)|
    grad_norms: np.ndarray  # |grad L| at W0 and after each step
    losses: np.ndarray  # L at W0 and after each step
    num_steps: int  # L-BFGS iterations
    num_evaluations: int  # loss-and-gradient evaluations, W0's included
    certified: bool  # |grad L(W*)| <= tol * |grad L(W0)|


def optimum(
    loss: str,
    X: ArrayLike,
    y: ArrayLike,
    reg: float,
    *,
    tol: float = 1e-6,
    max_steps: int = 1000,
    params: ArrayLike | None = None,
    num_classes: int | None = None,
    memory_size: int = 10,
) -> Optimum:
    """The minimum of ``loss + reg * sum(W**2)`` on ``(X, y)``, by L-BFGS.

    Runs until ``|grad L(W)| <= tol * |grad L(W0)|`` (the certificate), for
    at most ``max_steps`` iterations, or until :data:`PATIENCE` iterations
    in a row lower the loss no further (the precision's floor). One compiled
    program: a new ``reg``, ``tol`` or ``W0`` reuses it. Computes in float64
    when x64 is enabled (``jax.enable_x64``), else in float32.

    For ``"softmax"`` with ``reg > 0`` the loss is smooth and strictly convex,
    so a small gradient bounds the distance to the one minimum. For
    ``"svm"`` the hinge is not smooth: its gradient need not shrink near the
    minimum, so the gradient norm certifies nothing and ``certified`` is
    almost never set; the result is the best found (lowest loss seen) when
    the line search stalls, not a proven optimum.

    Args:
      loss: ``"softmax"`` or ``"svm"``.
      X, y: ``(N, D)`` examples (bias column included), ``(N,)`` int labels.
      reg: L2 strength.
      tol: the relative gradient norm to reach.
      max_steps: the most iterations (static: the history's length).
      params: ``(C, D)`` starting weights ``W0`` (default zeros).
      num_classes: ``C`` (default ``max(y) + 1``) when ``params`` is None.
      memory_size: curvature pairs kept.
    Returns:
      an :class:`Optimum`.
    """
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    data = Data(jnp.asarray(X, dtype), jnp.asarray(y, jnp.int32))
    if params is None:
        C = num_classes or int(np.max(np.asarray(y))) + 1
        params = jnp.zeros((C, data.X.shape[1]), dtype)
    strategy = LBFGS(loss, memory_size)
    state = strategy.init(jnp.asarray(params, dtype), LBFGSHParams(reg), data, None)
    out = _certify(strategy, state, data, jnp.asarray(tol, dtype), max_steps=max_steps)
    W, best, g, grad_norms, values, steps, evaluations = jax.device_get(out)
    steps = int(steps)
    grad_norms, values = grad_norms[: steps + 1], values[: steps + 1]
    return Optimum(
        params=np.asarray(W),
        loss=float(best),
        grad_norm=float(g),
        grad_norms=grad_norms,
        losses=values,
        num_steps=steps,
        num_evaluations=int(evaluations),
        certified=bool(g <= tol * grad_norms[0]),
    )


@functools.partial(jax.jit, static_argnames=("strategy", "max_steps"))
def _certify(strategy: LBFGS, state: LBFGSState, data: Data, tol, *, max_steps: int):
    """L-BFGS steps while uncertified, improving and under ``max_steps``."""
    fn = losses.LOSSES[strategy.loss]
    value0, grad0 = jax.value_and_grad(fn)(
        state.params, data.X, data.y, state.hparams.reg
    )
    g0 = optax.tree.norm(grad0)
    # The start's value and gradient, handed to the first step (evaluated once).
    opt_state = optax.tree.set(state.opt_state, value=value0, grad=grad0)
    state = state._replace(opt_state=opt_state, evaluations=jnp.int32(1))
    history = jnp.full((max_steps + 1,), jnp.nan, value0.dtype)
    norms, values = history.at[0].set(g0), history.at[0].set(value0)
    # (i, state, best W, its loss and gradient norm, norms, values, flat steps)
    carry = (jnp.int32(0), state, state.params, value0, g0, norms, values, jnp.int32(0))

    def going(carry):
        i, _, _, _, g, _, _, flat = carry
        return (i < max_steps) & (g > tol * g0) & (flat < PATIENCE)

    def body(carry):
        i, state, W, best, g, norms, values, flat = carry
        new, m = strategy.step(state, None, data)
        ok = jnp.isfinite(m["loss"]) & jnp.all(jnp.isfinite(new.params))
        better = ok & (m["loss"] < best)
        W = jnp.where(better, new.params, W)
        g = jnp.where(better, m["grad_norm"], g)
        best = jnp.where(better, m["loss"], best)
        norms, values = (
            norms.at[i + 1].set(m["grad_norm"]),
            values.at[i + 1].set(m["loss"]),
        )
        flat = jnp.where(better, 0, jnp.where(ok, flat + 1, PATIENCE))
        state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
        return i + 1, state, W, best, g, norms, values, flat

    i, state, W, best, g, norms, values, _ = jax.lax.while_loop(going, body, carry)
    return W, best, g, norms, values, i, state.evaluations
