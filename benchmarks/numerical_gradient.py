"""The full numerical gradient of the CIFAR-10 SVM: linopt against the lecture's loop.

    python -m benchmarks.numerical_gradient [--num_examples 500] [--repeats 3]

All 30,730 coordinates of ``W: (10, 3073)``, centered differences with
``h = 1e-5``, float64, on the first ``num_examples`` training images of
CIFAR-10 (raw pixels minus the mean image, bias column; a synthetic set of the
same shape and scale when the files are not on disk). linopt's
:func:`linopt.gradcheck.numerical_gradient` runs against the lecture's loop in
plain numpy (:func:`numpy_numerical_gradient`), interleaved; the first linopt
call compiles and its extra time is reported as ``compile_s``.

The floor is the matrix-multiply work every black-box finite difference needs,
two loss evaluations per coordinate of ``2 N D C`` FLOPs each, at the float64
rate numpy reaches on the same multiply as one of linopt's chunks
(``(N, D) @ (D, 2 * chunk * C)``) or on a wide one, whichever is faster.
The loop's own multiply, ``(N, D) @ (D, C)``, already runs at about 40% of
that rate, so ``numpy_s / floor_s`` (about 2.7 at 500 examples on two cores)
bounds what any vectorization that evaluates the loss as a black box can gain.
With few examples the copies of ``W`` dominate instead, and the loop, which
changes one number in place, wins.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from linopt import data, finite_differences, losses
from linopt.errors import LinoptError

H = 1e-5
REG = 2.5e4  # the assignment's; any value costs the same


def numpy_svm_loss(W, X, y, reg):
    """The SVM loss with linopt's layout, ``W: (C, D)``, in plain numpy."""
    rows = np.arange(X.shape[0])
    scores = X @ W.T
    margins = np.maximum(0, scores - scores[rows, y][:, None] + 1.0)
    margins[rows, y] = 0
    return margins.sum() / X.shape[0] + reg * np.sum(W * W)


def numpy_numerical_gradient(f, x, h=H):
    """The lecture's loop (CS231n's ``eval_numerical_gradient``), centered."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = f(x)
        x[ix] = old - h
        fxmh = f(x)
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        it.iternext()
    return grad


def numpy_reference(W, X, y):
    """The loop on a private copy of ``W``: the whole numpy workload."""
    return numpy_numerical_gradient(lambda w: numpy_svm_loss(w, X, y, REG), W.copy())


def load_data(num_examples, data_dir=None):
    """``(X, y, name)``: float64 CIFAR-10 rows, or synthetic ones of its shape."""
    try:
        ds = data.load("cifar10", data_dir=data_dir, download=False, dtype=np.float64)
        return ds.X_train[:num_examples], ds.y_train[:num_examples], "cifar10"
    except LinoptError:
        rng = np.random.default_rng(0)
        X = np.hstack(
            [60 * rng.standard_normal((num_examples, 3072)), np.ones((num_examples, 1))]
        )
        return X, rng.integers(0, 10, num_examples).astype(np.int32), "synthetic"


def dgemm_rate(n, d, cols, repeats=3):
    """Best float64 FLOP/s of numpy's ``(n, d) @ (d, cols)``."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((n, d)), rng.standard_normal((d, cols))
    a @ b
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n * d * cols / best


def _timed(fn, cpu_times=None):
    start, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn())
    if cpu_times is not None:  # CPU seconds: less sensitive to a shared machine
        cpu_times.append(time.process_time() - cpu)
    return time.perf_counter() - start, out


def run(num_examples=500, repeats=3, *, numpy_repeats=1, data_dir=None):
    """Time linopt and the numpy loop; one row per workload (here one).

    Args:
      num_examples: training examples in the loss.
      repeats: linopt timings (after the compiling call); the numpy loop runs
        in the first ``numpy_repeats`` of these rounds (about a minute each at
        500 examples).
    Returns:
      rows with ``workload``, ``linopt_s``, ``numpy_s``, ``ratio``
      (numpy / linopt), ``floor_s``, ``floor_ratio`` (linopt / floor),
      ``compile_s`` and how they were measured.
    """
    X, y, name = load_data(num_examples, data_dir)
    n, d, c = X.shape[0], X.shape[1], 10
    W = 1e-4 * np.random.default_rng(2).standard_normal((c, d))
    with jax.enable_x64(True):
        Xj, yj, Wj = jnp.asarray(X), jnp.asarray(y), jnp.asarray(W)

        def f(W):
            return losses.svm_loss(W, Xj, yj, REG)

        def linopt():
            return finite_differences.numerical_gradient(f, Wj, h=H)

        program = finite_differences._Program(f, Wj)
        chunk, _ = finite_differences._chunking(
            program, W.size, "centered", finite_differences.DEFAULT_MEMORY_BYTES, None
        )
        rates = [dgemm_rate(n, d, 2 * chunk * c), dgemm_rate(n, d, 5120)]
        first, _ = _timed(linopt)
        linopt_times, numpy_times, linopt_cpu, numpy_cpu, diffs = [], [], [], [], []
        for r in range(repeats):
            seconds, fast = _timed(linopt, linopt_cpu)
            linopt_times.append(seconds)
            if r < numpy_repeats:
                seconds, slow = _timed(lambda: numpy_reference(W, X, y), numpy_cpu)
                numpy_times.append(seconds)
                diffs.append(float(np.max(np.abs(np.asarray(fast) - slow))))
    rates += [dgemm_rate(n, d, 2 * chunk * c), dgemm_rate(n, d, 5120)]
    # The best rate seen, at the chunk's shape or a wide one: the machine is shared.
    rate = max(rates)
    flops = 2 * W.size * 2 * n * d * c
    linopt_s, numpy_s = min(linopt_times), min(numpy_times)
    row = {
        "workload": "numerical_gradient",
        "dataset": name,
        "num_examples": n,
        "num_coordinates": int(W.size),
        "chunk_size": chunk,
        "linopt_s": linopt_s,
        "numpy_s": numpy_s,
        "ratio": numpy_s / linopt_s,
        "floor_s": flops / rate,
        "floor_ratio": linopt_s / (flops / rate),
        "dgemm_gflops": rate / 1e9,
        "compile_s": max(0.0, first - linopt_s),
        "linopt_cpu_s": min(linopt_cpu),
        "numpy_cpu_s": min(numpy_cpu),
        "max_abs_difference": max(diffs),
        "linopt_times": linopt_times,
        "numpy_times": numpy_times,
        "load_average": os.getloadavg(),
    }
    return [row]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_examples", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--numpy_repeats", type=int, default=1)
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args(argv)
    rows = run(
        args.num_examples,
        args.repeats,
        numpy_repeats=args.numpy_repeats,
        data_dir=args.data_dir,
    )
    print(
        "| workload | data | N | coords | chunk | numpy s | linopt s "
        "| numpy/linopt | floor s | linopt/floor | compile s | max |diff| |"
    )
    print(
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |"
    )
    for r in rows:
        print(
            f"| {r['workload']} | {r['dataset']} | {r['num_examples']} "
            f"| {r['num_coordinates']} | {r['chunk_size']} | {r['numpy_s']:.2f} "
            f"| {r['linopt_s']:.2f} | {r['ratio']:.2f} | {r['floor_s']:.2f} "
            f"| {r['floor_ratio']:.2f} | {r['compile_s']:.2f} "
            f"| {r['max_abs_difference']:.1e} |"
        )
        print(
            f"(float64 dgemm {r['dgemm_gflops']:.0f} GFLOP/s; linopt runs "
            f"{', '.join(f'{t:.2f}' for t in r['linopt_times'])} s; CPU s "
            f"linopt {r['linopt_cpu_s']:.1f}, numpy {r['numpy_cpu_s']:.1f}; "
            f"load {', '.join(f'{v:.1f}' for v in r['load_average'])})"
        )


if __name__ == "__main__":
    main()
