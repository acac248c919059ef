import os
import sys
from pathlib import Path

import jax
import pytest

# Catch (N,) vs (N, 1) mistakes: implicit rank promotion is an error in tests.
jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_module(tmp_path):
    """Run ``python -m experiments.NAME`` in a subprocess; returns the result."""
    import subprocess

    def run(name, *args, timeout=300, env=None):
        full_env = {
            **os.environ,
            "LINOPT_DATA": str(tmp_path / "no-data"),
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, "-m", f"experiments.{name}", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
        )

    return run


@pytest.fixture
def check_lectures_local_search():
    """Replay the lecture's random local search in numpy (float64) on the
    proposals a linopt run with ``key`` draws (proposal ``t`` is ``W +
    step_size * normal(fold_in(run_key, t))``), and check the run's decisions,
    losses and final weights against it."""
    import numpy as np

    from linopt import reference, strategies

    def check(result, key, X, y, *, num_steps, step_size, init_scale, num_classes):
        init_key, run_key = jax.random.split(key)
        W = strategies.init_params(init_key, num_classes, X.shape[1], init_scale)
        W = np.asarray(W, np.float64)
        X = np.asarray(X, np.float64)
        best = reference.svm_loss(W.T, X, y)
        for t in range(num_steps):
            noise = jax.random.normal(jax.random.fold_in(run_key, t), W.shape)
            W_try = W + step_size * np.asarray(noise, np.float64)
            loss = reference.svm_loss(W_try.T, X, y)
            assert bool(result.metrics["accepted"][t]) == (loss < best)
            if loss < best:
                W, best = W_try, loss
            assert result.losses[t] == pytest.approx(best, rel=1e-5)
        np.testing.assert_allclose(result.params, W, rtol=1e-5, atol=1e-6)

    return check


@pytest.fixture(scope="session")
def tiny_cifar10(tmp_path_factory):
    """A small CIFAR-10 in the official binary layout: 5 x 250 training
    images (the last 1,000 become validation), 100 test images."""
    import numpy as np

    from linopt import cifar10

    root = tmp_path_factory.mktemp("cifar10")
    folder = root / cifar10.BIN_DIR
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [(b, 250) for b in cifar10.TRAIN_BATCHES] + [
        (cifar10.TEST_BATCH, 100)
    ]:
        records = rng.integers(0, 256, (n, cifar10.RECORD), dtype=np.uint8)
        records[:, 0] = rng.integers(0, 10, n)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    names = ["airplane", "automobile", "bird", "cat", "deer"]
    names += ["dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    return root
