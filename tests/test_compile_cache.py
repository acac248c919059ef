"""The persistent compilation cache: a second run compiles nothing the first
did (each run in a fresh process, as a user's second command is)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from linopt import compile_cache

ROOT = Path(__file__).resolve().parent.parent

# Counts JAX's cache events of one in-process training run.
SCRIPT = """
import json, sys, jax
from linopt import compile_cache, configs
from experiments import train
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
compile_cache.enable()
train.run(configs.TrainConfig(num_steps=50), sys.argv[1])
print(json.dumps({n: events.count("/jax/compilation_cache/" + n)
                  for n in ("cache_hits", "cache_misses")}))
"""


def _run(workdir, env):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(workdir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_second_run_compiles_nothing_the_first_did(tmp_path):
    env = {**os.environ, compile_cache.ENV: str(tmp_path / "cache")}
    first = _run(tmp_path / "a", env)
    assert first["cache_misses"] > 0 and any((tmp_path / "cache").iterdir())
    second = _run(tmp_path / "b", env)
    assert second["cache_misses"] == 0 and second["cache_hits"] == first["cache_misses"]


def test_the_cache_can_be_turned_off_or_moved(monkeypatch, tmp_path):
    monkeypatch.setenv(compile_cache.ENV, "0")
    assert compile_cache.folder() is None and compile_cache.enable() is None
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "c"))
    assert compile_cache.folder() == tmp_path / "c"
    monkeypatch.delenv(compile_cache.ENV)
    monkeypatch.setenv("LINOPT_DATA", str(tmp_path / "data"))
    assert compile_cache.folder() == tmp_path / "data" / "jax-cache"
