"""A fast path for the lecture's random local search, tested against the readable one.

:class:`linopt.strategies.RandomLocalSearch` says what the lecture does; the
one here does the same arithmetic in the order this hardware likes, as the
profiles in ``BENCHMARKS.md`` asked for. It has the strategy shape of
:mod:`linopt.strategies` and runs on :func:`linopt.driver.run`.

:class:`BlockedRandomLocalSearch` makes the same proposals and the same
sequential accept/reject, but one matrix multiply ``[W; delta_1 .. delta_K] @
X.T`` reads ``X`` once for ``K`` proposals (the readable path reads it once per
proposal). The scores of proposal ``k`` are ``S + delta_k @ X.T``, where ``S``
holds the scores of the current weights: recomputed from ``W`` at each block,
updated on each accept.

Rounding: the sums are formed in another order, so a loss can differ from the
readable path's in its last bits (about ``1e-7`` of it). The decisions are the
readable path's unless two losses tie to within that, and the weights then
agree to float32 rounding (XLA may contract ``W + step_size * noise`` into a
fused multiply-add in one program and not in the other). A tie that close is
decided by rounding in either path.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from linopt import losses, strategies
from linopt.driver import Data, Result, run
from linopt.strategies import State


@dataclasses.dataclass(frozen=True)
class BlockedRandomLocalSearch:
    """Random local search, ``block`` proposals per step from one matrix multiply.

    ``state.step`` counts proposals (it grows by ``block`` a step), so the
    driver's ``num_steps`` is the number of proposals, a multiple of
    ``block``. Proposal ``t`` is ``W + step_size * normal(fold_in(run_key,
    t))``, as in :class:`linopt.strategies.RandomLocalSearch` run by the driver
    with ``run_key``; the driver hands a step only its first proposal's key,
    so the strategy keeps ``run_key`` in its state (``init`` takes it as
    ``hparams["run_key"]``). Metrics have shape ``(block,)``: one a proposal.
    """

    loss: str = "svm"
    block: int = 100

    def init(self, params, hparams, data):
        del data
        hparams = dict(hparams)
        run_key = jax.random.key_data(hparams.pop("run_key"))
        aux = {"loss": jnp.float32(jnp.inf), "run_key": run_key}
        return State(params, jnp.int32(0), hparams, aux)

    def step(self, state, key, data):
        del key  # proposal t draws from fold_in(run_key, t): see the class
        W, reg, step_size = (
            state.params,
            state.hparams["reg"],
            state.hparams["step_size"],
        )
        run_key = jax.random.wrap_key_data(state.aux["run_key"])
        steps = state.step + jnp.arange(self.block, dtype=state.step.dtype)
        noise = jax.vmap(
            lambda t: jax.random.normal(
                jax.random.fold_in(run_key, t), W.shape, W.dtype
            )
        )(steps)  # (K, C, D)
        C, D = W.shape
        # One pass over X scores the current W and every proposal's change.
        stacked = jnp.concatenate([W[None], step_size * noise]).reshape(-1, D)
        G = (stacked @ data.X.T).reshape(self.block + 1, C, -1)  # (K + 1, C, N)

        def loss_of(W, S):
            mean = jnp.mean(losses.per_example_class_major(self.loss, S, data.y))
            return mean + losses.l2_penalty(W, reg)

        S = G[0]
        first = jnp.isinf(state.aux["loss"])  # the first step scores the start
        current = jax.lax.cond(first, loss_of, lambda *_: state.aux["loss"], W, S)

        def propose(carry, k):
            W, S, current = carry
            # The readable path's own formula; G[k + 1] is read in place.
            proposal, S_proposal = W + step_size * noise[k], S + G[k + 1]
            proposal_loss = loss_of(proposal, S_proposal)
            accept = proposal_loss < current
            W = jnp.where(accept, proposal, W)
            S = jnp.where(accept, S_proposal, S)
            loss = jnp.where(accept, proposal_loss, current)
            metrics = {"loss": loss, "proposal_loss": proposal_loss, "accepted": accept}
            return (W, S, loss), metrics

        (W, _, loss), metrics = jax.lax.scan(
            propose, (W, S, current), jnp.arange(self.block)
        )
        aux = {"loss": loss, "run_key": state.aux["run_key"]}
        return State(W, state.step + self.block, state.hparams, aux), metrics

    def evaluations(self, num_examples: int) -> dict:
        return {
            "loss_evals": self.block,
            "grad_evals": 0,
            "examples": self.block * num_examples,
        }


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
    block: int = 100,
    **run_kwargs,
) -> Result:
    """:func:`linopt.strategies.random_local_search`, ``block`` proposals a pass.

    The same arguments, keys, proposals, decisions and result (metrics of
    shape ``(num_steps,)``, one a proposal). ``block`` is lowered to the
    largest divisor of ``num_steps`` not above it; ``chunk_size`` counts
    blocks (default: about 20 chunks a run).
    """
    block = max(b for b in range(1, min(block, num_steps) + 1) if num_steps % b == 0)
    data = Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.int32))
    init_key, run_key = jax.random.split(key)
    if params is None:
        if num_classes is None:
            num_classes = int(np.max(np.asarray(y))) + 1
        params = strategies.init_params(
            init_key, num_classes, data.X.shape[1], init_scale
        )
    strategy = BlockedRandomLocalSearch(loss, block)
    hparams = {
        "step_size": jnp.float32(step_size),
        "reg": jnp.float32(reg),
        "run_key": run_key,
    }
    state = strategy.init(jnp.asarray(params, jnp.float32), hparams, data)
    restore = run_kwargs.pop("restore", None)
    if restore is not None:  # continue a checkpointed run, as strategies does
        state, run_kwargs["history"] = restore(state, run_key)
    run_kwargs.setdefault("chunk_size", max(1, math.ceil(num_steps / block / 20)))
    result = run(strategy, state, run_key, data, num_steps=num_steps, **run_kwargs)
    per_proposal = {k: v.reshape(-1) for k, v in result.metrics.items()}
    return result._replace(metrics=per_proposal)
