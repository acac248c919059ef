"""Inside a run's loop nothing goes to the host, and new values never recompile.

For every strategy (readable and fast): a compiled chunk of steps runs under
``jax.transfer_guard("disallow")`` with device-resident inputs (any transfer
between host and device inside it would raise), its program holds no host
callback, and calling it, or the public function, again with a new key,
learning rate, reg or step size reuses the compiled program.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linopt import driver, fast, strategies

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


def _hparams(strategy, value, key):
    """Two settings of every traced value a strategy reads."""
    if isinstance(strategy, strategies.RandomSearch):
        values = {"scale": value, "reg": value}
    elif isinstance(strategy, strategies.GradientDescent):
        values = {"learning_rate": value, "reg": value, "momentum": value}
    else:
        values = {"step_size": value, "reg": value}
    values = {k: jnp.float32(v) for k, v in values.items()}
    if isinstance(strategy, fast.BlockedRandomLocalSearch):
        values["run_key"] = key
    return values


STRATEGIES = [
    strategies.RandomSearch(population=5),
    strategies.RandomLocalSearch(),
    strategies.GradientDescent(),  # full batch
    strategies.GradientDescent(batch_size=8),
    strategies.GradientDescent(batch_size=8, sampling="epoch", optimizer="adam"),
    fast.BlockedRandomLocalSearch(block=3),
]


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
    chunk = functools.partial(
        driver.run_chunk, strategies.RandomLocalSearch(), length=LENGTH
    )
    data = _data()
    state = strategies.RandomLocalSearch().init(
        jnp.zeros((C, D)), _hparams(strategies.RandomLocalSearch(), 0.1, None), data
    )
    key = jax.random.key(0)
    jax.block_until_ready(chunk(state, key, data, jnp.int32(9)))
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match="ransfer"):
        chunk(state, key, data, np.int32(9))  # a host value: a transfer

    def noisy(x):
        jax.debug.callback(print, x)
        return x

    assert _callbacks(jax.make_jaxpr(jax.jit(noisy))(1.0).jaxpr)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: type(s).__name__)
def test_a_chunk_runs_on_device_alone_and_compiles_once(strategy):
    data = _data()
    params = jnp.zeros((C, D), jnp.float32)
    keys = [jax.random.key(seed) for seed in (0, 1)]
    states = [
        strategy.init(params, _hparams(strategy, value, key), data)
        for value, key in zip((1e-3, 2e-2), keys, strict=True)
    ]
    stop = jnp.int32(1000)
    chunk = functools.partial(driver.run_chunk, strategy, length=LENGTH)
    jax.block_until_ready(chunk(states[0], keys[0], data, stop))  # compiles
    compiled = driver.run_chunk._cache_size()

    with jax.transfer_guard("disallow"):
        out = chunk(states[1], keys[1], data, stop)  # new key, new values
        out = chunk(out[0], keys[0], data, stop)  # and from the state it left
    jax.block_until_ready(out)
    assert driver.run_chunk._cache_size() == compiled
    assert int(out[0].step) > 0

    jaxpr = jax.make_jaxpr(chunk)(states[0], keys[0], data, stop).jaxpr
    assert _callbacks(jaxpr) == []


def _tiny():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N, D)).astype(np.float32)
    return X, rng.integers(0, C, N).astype(np.int32)


PUBLIC = [
    (strategies.random_search, "scale", dict(num_tries=10, population=5)),
    (strategies.random_local_search, "step_size", dict(num_steps=6)),
    (strategies.gradient_descent, "learning_rate", dict(num_steps=6)),
    (strategies.minibatch, "learning_rate", dict(num_steps=6, batch_size=8)),
    (fast.random_local_search, "step_size", dict(num_steps=6, block=3)),
]


@pytest.mark.parametrize(
    "run, name, kwargs",
    PUBLIC,
    ids=[f"{f.__module__}.{f.__name__}" for f, *_ in PUBLIC],
)
def test_public_functions_do_not_recompile_for_new_values(run, name, kwargs):
    X, y = _tiny()
    run(X, y, key=jax.random.key(0), **{name: 1e-3}, reg=0.0, chunk_size=2, **kwargs)
    compiled = driver.run_chunk._cache_size()
    r = run(
        X, y, key=jax.random.key(5), **{name: 3e-2}, reg=0.5, chunk_size=2, **kwargs
    )
    assert driver.run_chunk._cache_size() == compiled
    assert r.status == "completed"
