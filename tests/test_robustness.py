"""Divergence, interruption and resume: nothing computed is lost."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def summary(folder):
    return json.loads((folder / "summary.json").read_text())


def test_resume_equals_uninterrupted(run_module, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    common = [
        "--strategy=minibatch",
        "--checkpoint_every=50",
        "--seed=3",
        "--optimizer=momentum",
    ]
    assert (
        run_module("train", *common, "--num_steps=200", f"--workdir={whole}").returncode
        == 0
    )
    first = run_module("train", *common, "--num_steps=100", f"--workdir={parts}")
    assert first.returncode == 0, first.stderr
    assert summary(parts)["num_steps"] == 100
    second = run_module(
        "train", *common, "--num_steps=200", "--resume", f"--workdir={parts}"
    )
    assert second.returncode == 0, second.stderr
    np.testing.assert_array_equal(
        np.load(whole / "params.npy"), np.load(parts / "params.npy")
    )
    a = np.loadtxt(whole / "metrics.csv", delimiter=",", skiprows=1)
    b = np.loadtxt(parts / "metrics.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(a, b)
    assert summary(whole)["train_loss"] == summary(parts)["train_loss"]


def test_resume_with_other_flags_is_refused(run_module, tmp_path):
    out = tmp_path / "run"
    assert (
        run_module(
            "train", "--num_steps=20", "--checkpoint_every=10", f"--workdir={out}"
        ).returncode
        == 0
    )
    proc = run_module(
        "train", "--num_steps=40", "--learning_rate=0.5", "--resume", f"--workdir={out}"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: --resume: {out}/checkpoint.npz was saved with other flags; "
        "resume with the same flags"
    ]


def test_diverging_run_ends_cleanly(run_module, tmp_path):
    out = tmp_path / "run"
    proc = run_module(
        "train",
        "--strategy=gradient_descent",
        "--learning_rate=1e12",
        "--num_steps=500",
        f"--workdir={out}",
    )
    assert proc.returncode == 0, proc.stderr
    s = summary(out)
    assert s["status"] == "diverged" and s["num_steps"] < 500
    assert "diverged" in proc.stdout
    assert np.all(np.isfinite(np.load(out / "params.npy")))


def test_sigint_leaves_valid_files_marked_interrupted(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments.train",
            "--num_steps=100000000",
            "--chunk_size=2000",
            "--checkpoint_every=2000",
            f"--workdir={out}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert "Traceback" not in stderr
    s = summary(out)
    assert s["status"] == "interrupted" and 0 < s["num_steps"] < 100000000
    metrics = np.loadtxt(out / "metrics.csv", delimiter=",", skiprows=1)
    assert len(metrics) == s["num_steps"]
    assert np.load(out / "params.npy").shape == (10, 65)
    assert not list(out.glob(".*"))  # no temporary files left behind
