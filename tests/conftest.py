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
