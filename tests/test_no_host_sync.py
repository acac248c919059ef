"""Inside a run's loop nothing goes to the host, and new values never recompile.

For every strategy (the readable and the blocked local search, and a grid of
cells): a compiled chunk of steps runs under ``jax.transfer_guard("disallow")``
with device-resident inputs (any transfer between host and device inside it
would raise), its program holds no host callback, and calling it, or the
public function, again with a new key, learning rate, reg or step size reuses
the compiled program.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linopt import driver, strategies, sweep

try:
    from jax.extend.core import jaxprs_in_params
except ImportError:  # older jax
    from jax.core import jaxprs_in_params

C, D, N = 3, 7, 64
LENGTH = 4  # steps per chunk


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D)).astype(np.float32)
    return driver.Data(jnp.asarray(X), jnp.asarray(rng.integers(0, C, N), jnp.int32))


def _hparams(strategy, value):
    """Every traced value a strategy reads, set to ``value``."""
    return strategy.HParams(**dict.fromkeys(strategy.HParams._fields, value))


STRATEGIES = [
    strategies.RandomSearch(population=5),
    strategies.RandomLocalSearch(),  # the lecture's step
    strategies.RandomLocalSearch(block=3),  # the blocked step
    strategies.GradientDescent(),  # full batch
    strategies.GradientDescent(batch_size=8),
    strategies.GradientDescent(batch_size=8, sampling="epoch", optimizer="adam"),
]


def _chunk(strategy, grid=False):
    return functools.partial(driver.run_chunk, strategy, capacity=LENGTH, grid=grid)


def _callbacks(jaxpr):
    """Names of host-callback primitives anywhere in ``jaxpr``."""
    found = []
    for eqn in jaxpr.eqns:
        if "callback" in eqn.primitive.name:
            found.append(eqn.primitive.name)
        for sub in jaxprs_in_params(eqn.params):
            found += _callbacks(sub)
    return found


def test_the_checks_catch_a_transfer_and_a_callback():
    strategy = strategies.RandomLocalSearch()
    data, key = _data(), jax.random.key(0)
    state = strategy.init(jnp.zeros((C, D)), _hparams(strategy, 0.1), data, key)
    args = (state, jnp.bool_(False), key, data, jnp.int32(0))
    jax.block_until_ready(_chunk(strategy)(*args, jnp.int32(9)))
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match="ransfer"):
        _chunk(strategy)(*args, np.int32(9))  # a host value: a transfer

    def noisy(x):
        jax.debug.callback(print, x)
        return x

    assert _callbacks(jax.make_jaxpr(jax.jit(noisy))(1.0).jaxpr)


def _runs(strategy, data, grid):
    """Two states (new key, new values) and their keys, one run or a grid."""
    if grid:
        others = [f for f in strategy.HParams._fields if f != "learning_rate"]
        made = [
            sweep.init(
                strategy,
                data,
                seeds=seeds,
                grid={"learning_rate": [v, 2 * v]},
                hparams=dict.fromkeys(others, v),
                num_classes=C,
            )
            for seeds, v in (([0, 1], 1e-3), ([2, 3], 2e-2))
        ]
        return [m[0] for m in made], [m[1] for m in made]
    keys = [jax.random.key(seed) for seed in (0, 1)]
    params = jnp.zeros((C, D), jnp.float32)
    states = [
        strategy.init(params, _hparams(strategy, value), data, key)
        for value, key in zip((1e-3, 2e-2), keys, strict=True)
    ]
    return states, keys


@pytest.mark.parametrize(
    "strategy, grid",
    [(s, False) for s in STRATEGIES]
    + [(strategies.GradientDescent(batch_size=8), True)],
    ids=[f"{type(s).__name__}-{i}" for i, s in enumerate(STRATEGIES)] + ["grid"],
)
def test_a_chunk_runs_on_device_alone_and_compiles_once(strategy, grid):
    data = _data()
    states, keys = _runs(strategy, data, grid)
    diverged = jnp.zeros(np.shape(states[0].step), bool)
    start, later, count = jnp.int32(0), jnp.int32(LENGTH), jnp.int32(LENGTH)
    chunk = _chunk(strategy, grid)
    jax.block_until_ready(chunk(states[0], diverged, keys[0], data, start, count))
    compiled = driver.run_chunk._cache_size()

    with jax.transfer_guard("disallow"):
        out = chunk(states[1], diverged, keys[1], data, start, count)  # new values
        out = chunk(out[0], out[1], keys[0], data, later, count)  # from where it was
    jax.block_until_ready(out)
    assert driver.run_chunk._cache_size() == compiled
    assert int(jnp.min(out[0].step)) == 2 * LENGTH and not bool(jnp.any(out[1]))

    jaxpr = jax.make_jaxpr(chunk)(states[0], diverged, keys[0], data, start, count)
    assert _callbacks(jaxpr.jaxpr) == []


def _tiny():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N, D)).astype(np.float32)
    return X, rng.integers(0, C, N).astype(np.int32)


PUBLIC = [  # a notebook function, the traced value to change, its other arguments
    ("random_search", "scale", {"num_tries": 10, "population": 5}),
    ("random_local_search", "step_size", {"num_steps": 6}),  # blocked
    ("random_local_search", "step_size", {"num_steps": 6, "block": 1}),
    ("gradient_descent", "learning_rate", {"num_steps": 6}),
    ("minibatch", "learning_rate", {"num_steps": 6, "batch_size": 8}),
]


@pytest.mark.parametrize("function, name, kwargs", PUBLIC, ids=str)
def test_public_functions_do_not_recompile_for_new_values(function, name, kwargs):
    run, (X, y) = getattr(strategies, function), _tiny()
    run(X, y, key=jax.random.key(0), **{name: 1e-3}, reg=0.0, chunk_size=2, **kwargs)
    compiled = driver.run_chunk._cache_size()
    r = run(
        X, y, key=jax.random.key(5), **{name: 3e-2}, reg=0.5, chunk_size=2, **kwargs
    )
    assert driver.run_chunk._cache_size() == compiled
    assert r.status == "completed"
