"""Interruption by a real signal: nothing computed is lost (a subprocess, since
only a real process shows the exit code and the signal handling)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def summary(folder):
    return json.loads((folder / "summary.json").read_text())


def start_long_run(out, *flags, wait_for="config.json"):
    """``experiments.train`` for 1e8 steps, once ``out / wait_for`` exists."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", "--num_steps=100000000", *flags]
        + [f"--workdir={out}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (out / wait_for).exists() and time.time() < deadline:
        time.sleep(0.2)
    return proc


@pytest.mark.slow
def test_sigint_leaves_valid_files_marked_interrupted(tmp_path):
    out = tmp_path / "run"
    flags = ("--chunk_size=2000", "--checkpoint_every=2000")
    proc = start_long_run(out, *flags, wait_for="checkpoint.npz")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert "Traceback" not in stderr
    s = summary(out)
    assert s["status"] == "interrupted" and 0 < s["num_steps"] < 100000000
    metrics = np.loadtxt(out / "metrics.csv", delimiter=",", skiprows=1)
    assert len(metrics) == s["num_steps"]
    assert np.load(out / "params.npy").shape == (10, 65)
    assert [p.name for p in out.glob(".*")] == [".lock"]  # no temporary files


@pytest.mark.slow
def test_a_second_sigint_exits_at_once_inside_a_chunk(tmp_path):
    out = tmp_path / "run"
    # Minutes a chunk, so the signals land inside one.
    proc = start_long_run(out, "--chunk_size=5000000")
    time.sleep(3)  # compiled and inside the first chunk
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    start = time.time()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert time.time() - start < 5, stderr
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert "SIGINT again: exiting now" in stderr and "Traceback" not in stderr
