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


def _start(workdir, env):
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(workdir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _events(process):
    out, err = process.communicate()
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _run(workdir, env):
    return _events(_start(workdir, env))


@pytest.mark.slow
def test_a_second_run_compiles_nothing_the_first_did(tmp_path):
    env = {**os.environ, compile_cache.ENV: str(tmp_path / "cache")}
    first = _run(tmp_path / "a", env)
    assert first["cache_misses"] > 0 and any((tmp_path / "cache").iterdir())
    second = _run(tmp_path / "b", env)
    assert second["cache_misses"] == 0 and second["cache_hits"] == first["cache_misses"]


@pytest.mark.slow
def test_two_processes_share_one_cache(tmp_path):
    # Both fill the same empty folder at once (JAX writes each entry
    # atomically); each run is unharmed and a third compiles nothing.
    env = {**os.environ, compile_cache.ENV: str(tmp_path / "cache")}
    both = [_start(tmp_path / name, env) for name in ("a", "b")]
    events = [_events(p) for p in both]
    assert events[0]["cache_misses"] + events[1]["cache_misses"] > 0
    runs = [json.loads((tmp_path / n / "summary.json").read_text()) for n in "ab"]
    assert runs[0]["train_loss"] == runs[1]["train_loss"]
    assert _run(tmp_path / "c", env)["cache_misses"] == 0


def test_the_cache_can_be_turned_off_or_moved(monkeypatch, tmp_path):
    monkeypatch.setenv(compile_cache.ENV, "0")
    assert compile_cache.folder() is None and compile_cache.enable() is None
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "c"))
    assert compile_cache.folder() == tmp_path / "c"
    monkeypatch.delenv(compile_cache.ENV)
    monkeypatch.setenv("LINOPT_DATA", str(tmp_path / "data"))
    assert compile_cache.folder() == tmp_path / "data" / "jax-cache"
