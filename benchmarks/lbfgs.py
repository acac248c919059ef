"""linopt's L-BFGS (float32, float64) and scikit-learn's, on the same softmax.

    python -m benchmarks.lbfgs --dataset=digits                 # seconds
    python -m benchmarks.lbfgs --num_train=5000 --dim=768        # small synthetic
    python -m benchmarks.lbfgs --dataset=cifar10 --data_dir=/root/data/cifar10

One objective, ``mean softmax cross-entropy + reg * sum(W**2)`` over the
training rows with linopt's bias column last (regularized too), minimized
three ways in one process, one after another:

* ``linopt_float32``, ``linopt_float64``: :func:`linopt.lbfgs.optimum`
  (optax's L-BFGS, zoom line search, memory 10) from ``W = 0`` until
  ``|grad L| <= tol * |grad L(0)|`` (or ``max_steps``, or no more decrease);
  one compiled program each, compiled by a warm-up (``tol = 1``: no step)
  whose time is ``compile_s``;
* ``sklearn``: ``LogisticRegression(solver="lbfgs", tol=tol, C=1 / (2 N reg),
  fit_intercept=False)`` on the float64 rows (scipy's L-BFGS-B, memory 10,
  stopping at ``max |projected gradient| <= tol`` of the same objective);
  its ``compile_s`` is a first fit of one iteration (imports, thread pools).

The stopping rules differ (relative 2-norm against absolute max-norm), so
every solution is judged alike: its loss and gradient norm evaluated in
float64, the gap to the lowest loss found, and the test accuracy.
``wall_s`` is the median of ``--repeats`` timed runs (compile and linopt's
copy of the rows to the device excluded);
evaluations are the loss-and-gradient calls (scikit-learn's ``nfev``, read
from scipy's result).

Defaults: CIFAR-10-shaped synthetic data (``N = 49,000``, ``D = 3,073``,
``C = 10``; ``--num_train`` and ``--dim`` shrink it); ``reg`` 100 on
CIFAR-10, else the L-BFGS preset of the data set. Timings want a quiet
machine; numpy's BLAS matters to scikit-learn (run with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
import warnings

import jax
import numpy as np

from benchmarks import timing
from linopt import data, lbfgs, losses, presets

CIFAR10_REG = 100.0
SOLVERS = ("linopt_float32", "linopt_float64", "sklearn")


def load(args) -> data.Dataset:
    """The float64 split the benchmark runs on (cast down for float32)."""
    if args.dataset == "synthetic":
        return data.make_synthetic(
            num_train=args.num_train or 49_000,
            num_val=1,
            num_test=args.num_test,
            dim=(args.dim or 3_073) - 1,  # the bias column is appended
            num_classes=args.num_classes,
            seed=args.seed,
            dtype=np.float64,
        )
    ds = data.load(
        args.dataset,
        data_dir=args.data_dir,
        seed=args.seed,
        download=False,
        dtype=np.float64,
    )
    return data.subset(ds, args.num_train)


def default_reg(dataset: str) -> float:
    if dataset == "cifar10":
        return CIFAR10_REG
    return presets.lookup(dataset, "softmax", "lbfgs")[0]["reg"]


def linopt_solver(ds, reg, tol, max_steps, x64: bool):
    """``(compile_s, run)``: the warm-up's seconds and a timed-run callable."""
    dtype = np.float64 if x64 else np.float32
    with jax.enable_x64(x64):  # on the device once, outside the timings
        X, y = jax.device_put((ds.X_train.astype(dtype), ds.y_train))
    C = ds.num_classes

    def fit(tol):
        with jax.enable_x64(x64):
            return lbfgs.optimum(
                "softmax", X, y, reg, tol=tol, max_steps=max_steps, num_classes=C
            )

    start = time.perf_counter()
    fit(1.0)  # compiles; stops before the first step
    compile_s = time.perf_counter() - start

    def run():
        opt = fit(tol)
        return opt.params, opt.num_steps, opt.num_evaluations

    return compile_s, run


@contextlib.contextmanager
def scipy_results():
    """Every ``scipy.optimize.minimize`` result while inside (scikit-learn's
    lbfgs calls it through the module, so its ``nfev`` can be read)."""
    from scipy import optimize

    original, results = optimize.minimize, []

    def recording(*args, **kwargs):
        results.append(original(*args, **kwargs))
        return results[-1]

    optimize.minimize = recording
    try:
        yield results
    finally:
        optimize.minimize = original


def sklearn_solver(ds, reg, tol, max_steps):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    X, y = ds.X_train, ds.y_train

    def fit(max_iter):
        model = LogisticRegression(
            solver="lbfgs",
            tol=tol,
            C=1.0 / (2 * len(y) * reg),
            fit_intercept=False,
            max_iter=max_iter,
        )
        with scipy_results() as results:
            model.fit(X, y)
        nfev = sum(int(r.nfev) for r in results)
        return model.coef_, int(np.max(model.n_iter_)), nfev

    start = time.perf_counter()
    with warnings.catch_warnings():  # its first call: imports, thread pools
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit(1)
    return time.perf_counter() - start, lambda: fit(max_steps)


def judge(W, ds, reg) -> dict:
    """The solution in float64: its loss, gradient norm and test accuracy."""
    with jax.enable_x64(True):
        W = np.asarray(W, np.float64)
        loss, grad = jax.value_and_grad(losses.softmax_loss)(
            W, ds.X_train, ds.y_train, reg
        )
        zero_grad = jax.grad(losses.softmax_loss)(
            np.zeros_like(W), ds.X_train, ds.y_train, reg
        )
        return {
            "loss": float(loss),
            "grad_norm": float(np.linalg.norm(grad)),
            "relative_grad_norm": float(
                np.linalg.norm(grad) / np.linalg.norm(zero_grad)
            ),
            "test_accuracy": float(losses.accuracy(W, ds.X_test, ds.y_test)),
        }


def run(args) -> list[dict]:
    ds = load(args)
    reg = default_reg(args.dataset) if args.reg is None else args.reg
    makers = {
        "linopt_float32": lambda: linopt_solver(
            ds, reg, args.tol, args.max_steps, x64=False
        ),
        "linopt_float64": lambda: linopt_solver(
            ds, reg, args.tol, args.max_steps, x64=True
        ),
        "sklearn": lambda: sklearn_solver(ds, reg, args.tol, args.max_steps),
    }
    rows = []
    for name in args.solvers.split(","):
        compile_s, fit = makers[name]()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            W, iterations, evaluations = fit()
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "solver": name,
                "wall_s": statistics.median(times),
                "compile_s": compile_s,
                "iterations": iterations,
                "evaluations": evaluations,
                **judge(W, ds, reg),
            }
        )
    best = min(r["loss"] for r in rows)
    for r in rows:
        r["loss_gap"] = (r["loss"] - best) / best
    shape = {"N": len(ds.y_train), "D": ds.X_train.shape[1], "C": ds.num_classes}
    for r in rows:
        r.update(dataset=args.dataset, reg=reg, tol=args.tol, **shape)
    return rows


def select_reg(ds, regs, tol, max_steps) -> list[dict]:
    """linopt's float32 L-BFGS at each reg; the one of best validation accuracy
    is ``chosen`` (test accuracy reported, never used to choose)."""
    compile_s, _ = linopt_solver(ds, regs[0], tol, max_steps, x64=False)
    rows = []
    for reg in regs:
        _, fit = linopt_solver(ds, reg, tol, max_steps, x64=False)
        start = time.perf_counter()
        W, iterations, _ = fit()
        rows.append(
            {
                "reg": reg,
                "wall_s": time.perf_counter() - start,
                "iterations": iterations,
                "val_accuracy": float(losses.accuracy(W, ds.X_val, ds.y_val)),
                "test_accuracy": float(losses.accuracy(W, ds.X_test, ds.y_test)),
            }
        )
    best = max(rows, key=lambda r: r["val_accuracy"])
    for r in rows:
        r["chosen"] = r is best
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", default="synthetic", choices=("synthetic", "digits", "cifar10")
    )
    parser.add_argument("--data_dir", default=None, help="CIFAR-10's folder")
    parser.add_argument(
        "--num_train", type=int, default=None, help="training rows (synthetic: 49000)"
    )
    parser.add_argument(
        "--dim", type=int, default=None, help="synthetic: D, bias included (3073)"
    )
    parser.add_argument("--num_classes", type=int, default=10, help="synthetic: C")
    parser.add_argument("--num_test", type=int, default=1000, help="synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reg", type=float, default=None, help="loss + reg * sum(W**2)"
    )
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--max_steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--solvers", default=",".join(SOLVERS))
    parser.add_argument("--json", help="write the machine and the rows to this file")
    parser.add_argument(
        "--select_regs",
        help="instead: choose reg among these (comma-separated) by validation",
    )
    args = parser.parse_args(argv)
    machine = timing.describe_machine()
    if args.select_regs:
        regs = [float(r) for r in args.select_regs.split(",")]
        print("reg  wall_s  iters  val_acc  test_acc  (linopt float32, by validation)")
        for r in select_reg(load(args), regs, args.tol, args.max_steps):
            print(
                f"{r['reg']:g}  {r['wall_s']:.2f}  {r['iterations']}  "
                f"{r['val_accuracy']:.4f}  {r['test_accuracy']:.4f}"
                + ("  <- chosen" if r["chosen"] else "")
            )
        return
    rows = run(args)
    r0 = rows[0]
    print(
        f"softmax + {r0['reg']:g} * sum(W**2) on {r0['dataset']} "
        f"(N={r0['N']}, D={r0['D']}, C={r0['C']}), tol {r0['tol']:g}, "
        f"{machine['cpu']}, {machine['devices'][0]}"
    )
    header = (
        f"{'solver':>15} {'wall_s':>8} {'compile_s':>9} {'iters':>6} {'evals':>6} "
        f"{'loss':>14} {'gap':>9} {'|grad|/|g0|':>11} {'test_acc':>8}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['solver']:>15} {r['wall_s']:8.2f} {r['compile_s']:9.2f} "
            f"{r['iterations']:6d} {r['evaluations']:6d} {r['loss']:14.10f} "
            f"{r['loss_gap']:9.2e} {r['relative_grad_norm']:11.2e} "
            f"{r['test_accuracy']:8.4f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
