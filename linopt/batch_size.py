"""Steps and examples to a target loss against the batch size.

McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training") model
the steps ``S`` and examples ``E = B S`` that batch size ``B`` needs to reach
a given loss as ``(S / S_min - 1)(E / E_min - 1) = 1``, that is
``S = S_min (1 + B_crit / B)`` and ``E = E_min (1 + B / B_crit)`` with the
critical batch size ``B_crit = E_min / S_min``: below it a larger batch saves
steps at almost no cost in examples, above it it costs examples and saves few
steps. They predict ``B_crit`` from the simple noise scale ``B_simple``
(:mod:`linopt.noise`).

:func:`steps_to_target` measures ``S`` for one batch size: mini-batch descent
at a geometric ladder of constant learning rates, all of them one vmapped
program on the driver (the sweep machinery), the training loss evaluated at
geometrically spaced steps, until the first learning rate reaches the target.
The ladder grows towards larger or smaller rates while the best is at one of
its ends. :func:`fit_tradeoff` fits ``S_min`` and ``E_min`` to the measured
points. A batch size compiles its steps once; a new learning rate, reg or
ladder is a traced value and recompiles nothing.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from linopt import driver, losses, sweep
from linopt.driver import Data


def batch_sizes(num_examples: int, base: int = 4) -> tuple[int, ...]:
    """``1, base, base^2, ...`` below ``num_examples``, then ``num_examples``."""
    sizes = [base**k for k in range(64) if base**k < num_examples]
    return (*sizes, num_examples)


def eval_points(max_steps: int, per_doubling: int) -> np.ndarray:
    """The steps at which the loss is evaluated: ``round(2^(k / per_doubling))``."""
    k = np.arange(int(math.ceil(math.log2(max(max_steps, 1)) * per_doubling)) + 1)
    points = np.unique(np.round(2.0 ** (k / per_doubling)).astype(np.int64))
    return np.unique(np.append(points[points < max_steps], max_steps))


@functools.partial(jax.jit, static_argnames="loss")
def _losses(params, X, y, reg, *, loss):
    """The objective of every cell's weights, ``params: (S, H, C, D)``."""
    one = functools.partial(losses.get(loss), X=X, y=y, reg=reg)
    return jax.vmap(jax.vmap(one))(params)


def _crossing(t0, l0, t1, l1, target) -> float:
    """Where the loss crosses ``target`` between two evaluations (log-log)."""
    if l1 >= l0 or t0 <= 0:
        return float(t1)
    frac = (math.log(l0) - math.log(target)) / (math.log(l0) - math.log(max(l1, 1e-30)))
    return math.exp(math.log(t0) + min(max(frac, 0.0), 1.0) * math.log(t1 / t0))


HOPELESS = 4.0  # x the budget: where a ladder's extrapolated crossing gives up
HOPELESS_AFTER = 8  # judged from max_steps / 8 on: early on, the loss falls
# linearly in the steps (flat on log-log axes) and its pace says nothing


def _hopeless(t0, l0, t1, l1, target, max_steps) -> bool:
    """Whether no rate can reach ``target`` in ``max_steps``, even at the pace
    of its last two doublings (a power law in the steps, log-log straight).

    A constant rate's loss flattens as it goes, so that pace is optimistic;
    a margin of :data:`HOPELESS` budgets keeps a noisy pace from giving up.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pace = np.log(l0 / l1) / math.log(t1 / t0)  # the power: L ~ t^-pace
        reach = t1 * np.exp(np.log(l1 / target) / pace)
    return bool(np.all(~(pace > 0) | ~(reach <= HOPELESS * max_steps)))


class Ladder(NamedTuple):
    """One run of a learning-rate ladder at one batch size."""

    learning_rates: np.ndarray  # (L,)
    steps: np.ndarray  # (L,) interpolated steps to the target; inf: not reached
    # (within max_steps, or before the pace said it could not: _hopeless)
    final_losses: np.ndarray  # (L,) at the last evaluation; inf: diverged
    eval_steps: np.ndarray  # (K,)
    eval_losses: np.ndarray  # (K, L)
    stopped: bool  # on_chunk asked to stop


class Search(NamedTuple):
    """``steps_to_target``'s answer for one batch size."""

    batch_size: int
    steps: float  # the best learning rate's steps to the target; inf: none
    learning_rate: float  # the best learning rate (the lowest final loss if none)
    at_edge: bool  # the best is still at an end of the learning rates tried
    ladders: tuple[Ladder, ...]  # every ladder run, in order
    wall_time_s: float

    @property
    def reached(self) -> bool:
        return math.isfinite(self.steps)

    @property
    def examples(self) -> float:
        return self.batch_size * self.steps


def run_ladder(
    strategy,
    hparams: dict,
    data: Data,
    eval_rows: tuple,
    learning_rates: Sequence[float],
    *,
    target: float,
    max_steps: int,
    seed: int,
    num_classes: int,
    init_scale: float,
    per_doubling: int = 4,
    on_chunk: Callable | None = None,
) -> Ladder:
    """Every learning rate from the same start, until one reaches ``target``.

    The loss (``eval_rows = (X, y)``, the full objective with reg) is
    evaluated at :func:`eval_points`; the run stops at the first evaluation
    where a rate's loss is at most ``target``, so each rate that crossed has
    its steps interpolated and the others are ``inf`` (slower).
    """
    lrs = np.asarray(learning_rates, np.float64)
    state, keys = sweep.init(
        strategy,
        data,
        seeds=(seed,),
        grid={"learning_rate": lrs},
        hparams=hparams,
        num_classes=num_classes,
        init_scale=init_scale,
    )
    X_eval, y_eval = eval_rows
    reg = jnp.float32(hparams["reg"])

    def evaluate(state, diverged):
        values = np.asarray(
            _losses(state.params, X_eval, y_eval, reg, loss=strategy.loss)
        )
        return np.where(np.asarray(diverged) | ~np.isfinite(values), np.inf, values)[0]

    steps = np.full(len(lrs), np.inf)
    seen_steps, seen = [0], [evaluate(state, np.zeros((1, len(lrs)), bool))]
    stopped = False
    for point in eval_points(max_steps, per_doubling):
        out = driver.drive(
            strategy,
            state,
            keys,
            data,
            num_steps=int(point),
            grid=True,
            on_chunk=on_chunk,
        )
        state = out.state
        values = evaluate(state, out.diverged)
        t0, l0 = seen_steps[-1], seen[-1]
        seen_steps.append(out.num_steps)
        seen.append(values)
        crossed = values <= target
        for i in np.flatnonzero(crossed):
            steps[i] = _crossing(t0, l0[i], out.num_steps, values[i], target)
        if out.status == "interrupted":
            stopped = True
        if crossed.any() or stopped or out.status == "diverged":
            break
        back = len(seen) - 1 - 2 * per_doubling  # two doublings of steps ago
        late = out.num_steps * HOPELESS_AFTER >= max_steps  # past the first pace
        if (
            late
            and back >= 1
            and _hopeless(
                seen_steps[back],
                seen[back],
                *seen_steps[-1:],
                values,
                target,
                max_steps,
            )
        ):
            break
    return Ladder(lrs, steps, seen[-1], np.asarray(seen_steps), np.stack(seen), stopped)


def steps_to_target(
    strategy,
    hparams: dict,
    data: Data,
    eval_rows: tuple,
    *,
    center: float,
    target: float,
    max_steps: int,
    num_learning_rates: int = 6,
    factor: float = 2.0,
    max_extensions: int = 3,
    **ladder,
) -> Search:
    """The fewest steps of ``strategy``'s batch size to ``target``, over rates.

    Args:
      strategy: a ``GradientDescent`` with the batch size (constant rate).
      hparams: the other ``HParams`` values (``reg``, ...).
      data, eval_rows: the training data and the ``(X, y)`` of the evaluations.
      center: the middle of the first ladder of ``num_learning_rates`` rates
        ``factor`` apart.
      target: the training loss to reach. max_steps: the budget of steps.
      max_extensions: ladders of new rates added beyond an end while the best
        rate (fewest steps; lowest final loss if none reached) is at one.
      **ladder: ``seed``, ``num_classes``, ``init_scale``, ``per_doubling``,
        ``on_chunk`` of :func:`run_ladder`.
    """
    began = time.perf_counter()
    offsets = np.arange(num_learning_rates) - (num_learning_rates - 1) / 2
    rates = center * factor**offsets
    ladders = []
    for extension in range(max_extensions + 1):
        ladders.append(
            run_ladder(
                strategy,
                hparams,
                data,
                eval_rows,
                rates,
                target=target,
                max_steps=max_steps,
                **ladder,
            )  # fmt: skip
        )
        tried = np.concatenate([r.learning_rates for r in ladders])
        steps = np.concatenate([r.steps for r in ladders])
        final = np.concatenate([r.final_losses for r in ladders])
        # Fewest steps; among rates that never reached it, the lowest loss.
        best = int(np.lexsort((final, steps))[0])
        at_edge = tried[best] in (tried.min(), tried.max())
        if ladders[-1].stopped or not at_edge or extension == max_extensions:
            break
        step = factor ** (1 + np.arange(num_learning_rates))
        rates = tried.max() * step if tried[best] == tried.max() else tried.min() / step
    return Search(
        batch_size=int(strategy.batch_size or data.y.shape[0]),
        steps=float(steps[best]),
        learning_rate=float(tried[best]),
        at_edge=bool(at_edge),
        ladders=tuple(ladders),
        wall_time_s=time.perf_counter() - began,
    )


class Tradeoff(NamedTuple):
    """The fitted ``S = S_min + E_min / B`` (equivalently ``E = E_min + S_min B``)."""

    s_min: float
    e_min: float
    b_crit: float  # E_min / S_min (inf if S_min fits to 0)
    relative_residuals: np.ndarray  # (S_fit - S) / S at each point fitted

    def steps(self, batch_size):
        return self.s_min + self.e_min / np.asarray(batch_size, np.float64)

    def examples(self, batch_size):
        return np.asarray(batch_size, np.float64) * self.steps(batch_size)


def fit_tradeoff(batch_sizes: Sequence[float], steps: Sequence[float]) -> Tradeoff:
    """Fit ``S_min, E_min >= 0`` to measured ``(B, S)`` by relative error.

    ``S_min + E_min / B`` is linear in the two, so least squares of the
    relative residuals ``(S_min + E_min / B) / S - 1`` is one non-negative
    least-squares solve (no starting point, no iterations to tune).
    """
    B = np.asarray(batch_sizes, np.float64)
    S = np.asarray(steps, np.float64)
    keep = np.isfinite(S) & (S > 0)
    if keep.sum() < 2:
        raise ValueError(
            f"fitting S_min and E_min needs 2 batch sizes that reached the target, "
            f"got {int(keep.sum())}; raise the budget or the target"
        )
    B, S = B[keep], S[keep]
    A = np.stack([1 / S, 1 / (B * S)], axis=1)
    (s_min, e_min), _ = scipy.optimize.nnls(A, np.ones(len(S)))
    b_crit = e_min / s_min if s_min > 0 else math.inf
    fitted = s_min + e_min / B
    return Tradeoff(float(s_min), float(e_min), float(b_crit), (fitted - S) / S)
