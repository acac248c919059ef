"""A 4x4 grid of (learning rate, reg) as one program vs 16 runs in a row.

    python -m benchmarks.sweep                       # CIFAR-10 from $LINOPT_DATA
    python -m benchmarks.sweep --data_dir=/root/data/cifar10 --num_steps=1500
    python -m benchmarks.sweep --dataset=cifar10_shaped   # no files: its shape

Both sides use linopt: ``linopt.sweep.sweep`` runs the 16 cells as one
compiled program; the baseline calls ``linopt.strategies.minibatch`` 16 times,
one cell after another (compiled once, then reused: only values change), as
a user would with the data set's numpy arrays (``sequential_s``: each run
copies the training set to the device and syncs once per chunk) and with the
arrays put on the device once beforehand (``sequential_on_device_s``: the
runs' compute alone). Each side is compiled by a short warm-up first, so the
figures are steady-state training time; compile times are reported beside.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from linopt import data, strategies
from linopt import sweep as sweeps

LEARNING_RATES = (1e-7, 5e-7, 1e-6, 2e-6)
REGS = (2.5e3, 5e3, 2.5e4, 5e4)
SHAPED = "cifar10_shaped"  # synthetic rows of CIFAR-10's shape (N, D, C)


def _sweep(ds, strategy, num_steps, chunk_size):
    return sweeps.sweep(
        strategy,
        ds.X_train,
        ds.y_train,
        grid={"learning_rate": LEARNING_RATES, "reg": REGS},
        num_steps=num_steps,
        num_classes=ds.num_classes,
        chunk_size=chunk_size,
    )


def _sequential(X, y, ds, num_steps, chunk_size, batch_size):
    results = []
    for lr in LEARNING_RATES:
        for reg in REGS:
            r = strategies.minibatch(
                X,
                y,
                key=jax.random.key(0),
                num_steps=num_steps,
                batch_size=batch_size,
                learning_rate=lr,
                reg=reg,
                num_classes=ds.num_classes,
                chunk_size=chunk_size,
            )
            results.append(r)
    return results


def run(
    dataset: str = "cifar10",
    data_dir=None,
    num_steps: int = 1500,
    batch_size: int = 200,
) -> list[dict]:
    """Time the 4x4 grid both ways; one row per workload.

    Returns:
      ``[{"workload": "sweep_4x4", "linopt_s", "sequential_s", "ratio", ...}]``
      where ``ratio = sequential_s / linopt_s`` (above 1: the sweep is faster).
    """
    if dataset == SHAPED:  # no files needed: CIFAR-10's sizes, synthetic rows
        ds = data.make_synthetic(49_000, 1_000, 1_000, dim=3_072, num_classes=10)
    else:
        ds = data.load(dataset, data_dir=data_dir)
    chunk_size = max(1, -(-num_steps // 20))
    strategy = strategies.GradientDescent("svm", batch_size)

    start = time.perf_counter()  # warm-up: one chunk compiles each program
    _sweep(ds, strategy, chunk_size, chunk_size)
    sweep_compile_s = time.perf_counter() - start
    start = time.perf_counter()
    strategies.minibatch(
        ds.X_train,
        ds.y_train,
        key=jax.random.key(0),
        num_steps=chunk_size,
        batch_size=batch_size,
        num_classes=ds.num_classes,
        chunk_size=chunk_size,
    )
    sequential_compile_s = time.perf_counter() - start

    start = time.perf_counter()
    grid = _sweep(ds, strategy, num_steps, chunk_size)
    linopt_s = time.perf_counter() - start
    start = time.perf_counter()
    one_by_one = _sequential(
        ds.X_train, ds.y_train, ds, num_steps, chunk_size, batch_size
    )
    sequential_s = time.perf_counter() - start
    X, y = jax.block_until_ready((jnp.asarray(ds.X_train), jnp.asarray(ds.y_train)))
    start = time.perf_counter()
    _sequential(X, y, ds, num_steps, chunk_size, batch_size)
    on_device_s = time.perf_counter() - start

    # The two must train the same models, or the timing means nothing. They
    # agree to float32 rounding (1e-7) until a rounding difference flips a
    # hinge's kink (a margin at exactly 0) or meets an unstable learning rate;
    # from there that cell's trajectory drifts. Counted over the first 100 steps.
    history = np.stack([r.losses[:100] for r in one_by_one])
    swept = grid.losses[0, ..., :100].reshape(history.shape)
    rel = np.max(np.abs(swept - history) / np.abs(history), axis=1)
    agree = int(np.sum(rel < 1e-5))
    return [
        {
            "workload": "sweep_4x4",
            "dataset": dataset,
            "num_steps": num_steps,
            "batch_size": batch_size,
            "cells": len(LEARNING_RATES) * len(REGS),
            "linopt_s": linopt_s,
            "sequential_s": sequential_s,
            "ratio": sequential_s / linopt_s,
            "sequential_on_device_s": on_device_s,
            "ratio_on_device": on_device_s / linopt_s,
            "linopt_compile_s": sweep_compile_s,
            "sequential_compile_s": sequential_compile_s,
            "cells_agreeing_to_1e-5": agree,
            "device": str(jax.devices()[0].device_kind),
        }
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", default="cifar10", choices=(*data.DATASETS, SHAPED)
    )
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--num_steps", type=int, default=1500)
    parser.add_argument("--batch_size", type=int, default=200)
    args = parser.parse_args(argv)
    for row in run(args.dataset, args.data_dir, args.num_steps, args.batch_size):
        print(
            f"{row['workload']} on {row['dataset']} ({row['cells']} cells x "
            f"{row['num_steps']} steps of {row['batch_size']}, {row['device']}): "
            f"one program {row['linopt_s']:.1f} s, 16 runs in a row "
            f"{row['sequential_s']:.1f} s, ratio {row['ratio']:.1f}x; data on "
            f"the device first: {row['sequential_on_device_s']:.1f} s, ratio "
            f"{row['ratio_on_device']:.1f}x (compile {row['linopt_compile_s']:.1f}"
            f" s vs {row['sequential_compile_s']:.1f} s; "
            f"{row['cells_agreeing_to_1e-5']} of {row['cells']} cells' first 100 "
            "losses agree to 1e-5)"
        )


if __name__ == "__main__":
    main()
