"""Data parallelism: 4 forced CPU devices give the one-device results.

jax fixes the number of CPU devices when it starts, so the 4-device runs
happen in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from linopt import sharding
from linopt.errors import LinoptError

ROOT = Path(__file__).resolve().parent.parent

FOUR_DEVICES = textwrap.dedent("""
    import json, jax, numpy as np
    from linopt import data, sharding, strategies, sweep

    ds = data.make_synthetic(num_train=1000, dim=48, num_classes=5, seed=3)
    out = {"devices": jax.device_count()}
    for name, batch_size in (("minibatch", 50), ("gradient_descent", None)):
        runs = {}
        for k in (1, 4):
            X, y = sharding.shard_data(ds.X_train, ds.y_train, k)
            if k == 4:
                out["shards"] = sorted({s.data.shape[0] for s in X.addressable_shards})
                out["num_shard_devices"] = len(X.sharding.device_set)
            r = strategies.minibatch(X, y, key=jax.random.key(1), num_steps=40,
                                     batch_size=batch_size, learning_rate=1e-2,
                                     reg=1e-3, optimizer="momentum", num_classes=5,
                                     chunk_size=20)
            runs[k] = (r.losses, r.params, r.status)
        out[name] = {"loss_diff": float(np.max(np.abs(runs[1][0] - runs[4][0]))),
                     "param_diff": float(np.max(np.abs(runs[1][1] - runs[4][1]))),
                     "status": [runs[1][2], runs[4][2]], "steps": len(runs[4][0])}
    grids = {}
    for k in (1, 4):
        X, y = sharding.shard_data(ds.X_train, ds.y_train, k)
        r = sweep.sweep(strategies.GradientDescent("softmax", 40), X, y,
                        grid={"learning_rate": [1e-2, 1e-1], "reg": [0.0, 1e-2]},
                        seeds=[0, 1], num_steps=40, num_classes=5, chunk_size=20)
        grids[k] = r.losses
        if k == 4:
            out["sweep_state_devices"] = len(r.state.params.sharding.device_set)
    out["sweep_loss_diff"] = float(np.max(np.abs(grids[1] - grids[4])))
    out["sweep_shape"] = list(grids[4].shape)
    print(json.dumps(out))
""")


def _four_devices_env():
    flags = os.environ.get("XLA_FLAGS", "")
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=4".strip(),
    }


@pytest.fixture(scope="module")
def four_device_runs():
    proc = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES],
        cwd=ROOT,
        env=_four_devices_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a subprocess with four devices
def test_data_really_is_split_over_four_devices(four_device_runs):
    assert four_device_runs["devices"] == 4
    assert four_device_runs["num_shard_devices"] == 4
    assert four_device_runs["shards"] == [250]  # 1,000 rows, 250 on each
    assert four_device_runs["sweep_state_devices"] == 4


@pytest.mark.slow  # a subprocess with four devices
@pytest.mark.parametrize("strategy", ["minibatch", "gradient_descent"])
def test_four_devices_give_the_one_device_loss_history(four_device_runs, strategy):
    run = four_device_runs[strategy]
    assert run["status"] == ["completed", "completed"] and run["steps"] == 40
    assert run["loss_diff"] <= 1e-5
    assert run["param_diff"] <= 1e-5


@pytest.mark.slow  # a subprocess with four devices
def test_a_sweep_on_four_devices_equals_one(four_device_runs):
    assert four_device_runs["sweep_shape"] == [2, 2, 2, 40]
    assert four_device_runs["sweep_loss_diff"] <= 1e-5


def test_one_device_leaves_the_data_alone():
    X, y = np.zeros((6, 3), np.float32), np.zeros(6, np.int32)
    X1, y1 = sharding.shard_data(X, y, 1)
    assert X1 is X and y1 is y


@pytest.mark.parametrize(
    "num_devices, num_examples, message",
    [
        (0, None, "num_devices must be >= 1"),
        (10_000, None, "xla_force_host_platform_device_count"),
        (1, 7, None),
    ],
)
def test_device_counts_are_checked(num_devices, num_examples, message):
    if message is None:
        sharding.check_num_devices(num_devices, num_examples)
        return
    with pytest.raises(LinoptError, match=message):
        sharding.check_num_devices(num_devices, num_examples)


def test_rows_that_do_not_split_evenly_say_what_to_do(monkeypatch):
    monkeypatch.setattr(sharding.jax, "device_count", lambda: 4)
    message = "num_devices=4 does not divide the 1,258 training examples; use num_train"
    with pytest.raises(LinoptError, match=message + "=1256"):
        sharding.check_num_devices(4, 1258)


@pytest.mark.slow
@pytest.mark.skipif(
    "num_devices" not in (ROOT / "experiments/train.py").read_text(),
    reason="experiments.train has no --num_devices flag yet",
)
def test_train_on_four_devices_matches_one(run_module, tmp_path):
    summaries = {}
    for k in (1, 4):
        out = tmp_path / f"d{k}"
        proc = run_module(
            "train",
            "--num_steps=100",
            "--num_train=1256",
            f"--num_devices={k}",
            f"--workdir={out}",
            env=_four_devices_env(),
        )
        assert proc.returncode == 0, proc.stderr
        summaries[k] = json.loads((out / "summary.json").read_text())
    assert summaries[4]["train_loss"] == pytest.approx(
        summaries[1]["train_loss"], rel=1e-5
    )
    assert summaries[4]["test_accuracy"] == summaries[1]["test_accuracy"]
    losses = [
        np.loadtxt(tmp_path / f"d{k}" / "metrics.csv", delimiter=",", skiprows=1)[:, 1]
        for k in (1, 4)
    ]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5, atol=1e-6)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sweep_experiment_on_two_hosts_matches_one_device(run_module, tmp_path):
    # Two hosts on one machine: 2 processes x 2 CPU devices, jax.distributed
    # started from the environment, gloo for the collectives between them;
    # --num_devices=4 spans both, as on a real cluster.
    args = [
        "--num_steps=30",
        "--num_train=1256",
        "--learning_rates=1e-3,1e-2",
        "--regs=1e-3",
    ]
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "LINOPT_DATA": str(tmp_path),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
        "JAX_COORDINATOR_ADDRESS": f"localhost:{_free_port()}",
        "JAX_NUM_PROCESSES": "2",
    }
    command = [sys.executable, "-m", "experiments.sweep", *args, "--num_devices=4"]
    hosts = [
        subprocess.Popen(
            [*command, f"--workdir={tmp_path / f'p{i}'}"],
            cwd=ROOT,
            env={**env, "JAX_PROCESS_ID": str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (0, 1)
    ]
    one = run_module("sweep", *args, "--num_devices=1", f"--workdir={tmp_path / 'one'}")
    for host in hosts:
        _, err = host.communicate(timeout=240)
        assert host.returncode == 0, err
    assert one.returncode == 0, one.stderr
    reference = json.loads((tmp_path / "one" / "summary.json").read_text())
    for i in (0, 1):  # every host computes (and writes) the same results
        summary = json.loads((tmp_path / f"p{i}" / "summary.json").read_text())
        assert summary["num_devices"] == 4
        assert summary["test_accuracy"] == reference["test_accuracy"]
        for cell, want in zip(summary["cells"], reference["cells"], strict=True):
            assert cell["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
            assert cell["val_accuracy"] == want["val_accuracy"]
