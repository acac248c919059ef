"""linopt against plain numpy, side by side, with the machine's floor beside both.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.run [--quick]

On synthetic CIFAR-10-shaped data (N 49,000, D 3,073, C 10), each workload's
linopt paths and the numpy reference (:mod:`linopt.reference`) run
interleaved; medians and the median per-round ratio numpy / linopt are
reported, the compiling first call kept out (``compile_s``). The floor is
the larger of the FLOPs at the measured matmul peak and one read of ``X`` at
the measured bandwidth; scaling tables follow (N and D grow). The numerical
gradient lives in :mod:`benchmarks.numerical_gradient`. The loops over tries
whose every try costs the same (numpy's searches, the readable local search)
are timed on ``subset_tries`` of them and scaled, with the time of twice as
many printed beside as the check that the scaling is linear. The full table
takes under 10 minutes on two cores, ``--quick`` under 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import timing
from linopt import losses, reference, strategies

FULL = {
    "N": 49_000,
    "D": 3_073,
    "C": 10,
    "minibatch_steps": 1500,
    "batch": 200,
    "tries": 1000,
    # The numpy searches and the readable local search are loops over tries (a
    # constant time each): timed on this many and scaled to ``tries``; the
    # linearity is measured beside.
    "subset_tries": 100,
    "numgrad_examples": 500,
    "repeats": 5,
    "slow_repeats": 3,
    "scaling_N": (1_000, 10_000, 49_000),
    "scaling_D": (769, 1_537, 3_073),
}
QUICK = {
    **FULL,
    "N": 5_000,
    "minibatch_steps": 300,
    "tries": 100,
    "subset_tries": 50,
    "numgrad_examples": 10,
    "repeats": 3,
    "slow_repeats": 1,
    "scaling_N": (1_000, 5_000),
    "scaling_D": (769,),
}
# The targets: numpy / linopt at least, and linopt / floor at most.
TARGETS = {
    "minibatch": (3.0, 2.0),
    "full_batch": (3.0, 1.5),
    "random_search": (4.0, None),
    "local_search": (4.0, None),
    "numerical_gradient": (2.5, None),
}
WORKLOADS = tuple(TARGETS)
svm_loss_and_grad = jax.jit(jax.value_and_grad(losses.svm_loss))  # full_batch's


def synthetic(n, d, c, seed=0):
    """CIFAR-10-like rows: centred pixels of scale 60, a bias 1 appended last."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, d), np.float32)
    X[:, :-1] = 60 * rng.standard_normal((n, d - 1), np.float32)
    X[:, -1] = 1
    return X, rng.integers(0, c, n).astype(np.int32)


def workloads(size, X, y, Xj, yj):
    """Each workload: linopt's fastest path, its readable path (where the fast
    one differs), the numpy reference, the FLOPs and the bytes of X read."""
    n, d, c = X.shape[0], X.shape[1], size["C"]
    steps, batch, tries = size["minibatch_steps"], size["batch"], size["tries"]
    sub = min(size["subset_tries"], tries)
    W = np.asarray(strategies.init_params(jax.random.key(1), c, d))
    Wj, WT = jnp.asarray(W), np.ascontiguousarray(W.T)
    key = jax.random.key(0)
    return {
        "minibatch": dict(  # the assignment's run: lr 1e-7, reg 2.5e4
            numpy=lambda: reference.minibatch_sgd(
                X, y, num_steps=steps, batch_size=batch
            ),
            linopt=lambda: minibatch(Xj, yj, steps, batch),
            readable=None,
            flops=steps * 4 * batch * d * c,
            bytes=steps * batch * d * 4,
        ),
        "full_batch": dict(
            numpy=lambda: reference.svm_loss_and_gradient(WT, X, y, 2.5e4),
            linopt=lambda: svm_loss_and_grad(Wj, Xj, yj, 2.5e4),
            readable=None,
            flops=4 * n * d * c,
            bytes=X.nbytes,
        ),
        "random_search": dict(
            numpy=lambda tries=tries: reference.random_search(X, y, num_tries=tries),
            subset=(sub, tries, ("numpy",)),
            linopt=lambda: (
                strategies.random_search(Xj, yj, key=key, num_tries=tries).params
            ),
            readable=None,
            flops=2 * tries * n * d * c,
            bytes=X.nbytes,
        ),
        "local_search": dict(
            numpy=lambda tries=tries: reference.random_local_search(
                X, y, num_steps=tries
            ),
            subset=(sub, tries, ("numpy", "readable")),
            linopt=lambda: (  # the blocked path: 100 proposals a pass over X
                strategies.random_local_search(Xj, yj, key=key, num_steps=tries).params
            ),
            readable=lambda tries=tries: (  # the lecture's: a proposal, a loss
                strategies.random_local_search(
                    Xj, yj, key=key, num_steps=tries, block=1
                ).params
            ),
            flops=2 * tries * n * d * c,
            bytes=X.nbytes,
        ),
    }


def minibatch(X, y, num_steps, batch_size):
    """The assignment's SVM run on linopt (public function, default chunks)."""
    return strategies.minibatch(
        X,
        y,
        key=jax.random.key(0),
        num_steps=num_steps,
        batch_size=batch_size,
        learning_rate=1e-7,
        reg=2.5e4,
    ).params


def with_floor(row, peaks):
    """``row`` with its floor at ``peaks``: FLOPs at the matrix-multiply peak or
    one pass of the bytes at the read bandwidth, whichever is longer."""
    floor_flops = row["flops"] / peaks["flops"]
    floor_bytes = row["bytes"] / peaks["bytes_per_s"]
    floor = max(floor_flops, floor_bytes)
    row = {
        **row,
        "floor_s": floor,
        "floor_flops_s": floor_flops,
        "floor_bytes_s": floor_bytes,
        "floor_ratio": row["linopt_s"] / floor,
    }
    return _judge(row)


def profile(fn, directory, top=6):
    """The ``top`` XLA ops of one traced call of ``fn``: ``(name, seconds,
    calls)``, by total time over all threads."""
    import collections
    import glob

    from jax.profiler import ProfileData

    timing.timed(fn)
    jax.profiler.start_trace(directory)
    timing.timed(fn)
    jax.profiler.stop_trace()
    path = max(
        glob.glob(f"{directory}/**/*.xplane.pb", recursive=True), key=os.path.getmtime
    )
    seconds, calls = collections.Counter(), collections.Counter()
    for plane in ProfileData.from_file(path).planes:
        for line in plane.lines:
            for event in line.events:
                if line.name != "python" and not event.name.startswith(
                    ("ThunkExecutor", "end:", "Slinky")
                ):
                    seconds[event.name] += event.duration_ns / 1e9
                    calls[event.name] += 1
    return [(name, t, calls[name]) for name, t in seconds.most_common(top)]


def measure_workload(name, spec, repeats, peaks):
    fns = {"numpy": spec["numpy"], "linopt": spec["linopt"]}
    if spec["readable"] is not None:
        fns["readable"] = spec["readable"]
    sub, full, scaled = spec.get("subset", (1, 1, ()))
    scaled = scaled if sub < full else ()
    for path in scaled:  # a loop of constant-time tries: time `sub`, scale to `full`
        fns[path] = lambda path=path: spec[path](tries=sub)
    compile_s, times = timing.interleaved(fns, repeats)
    linearity = {}
    for path in scaled:
        # The scaling's check: twice the tries take twice the time.
        double = timing.timed(lambda path=path: spec[path](tries=2 * sub))
        linearity[path] = double / statistics.median(times[path])
        times[path] = [s * full / sub for s in times[path]]
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = [a / b for a, b in zip(times["numpy"], times["linopt"], strict=True)]
    row = {
        "workload": name,
        "linopt_s": med["linopt"],
        "numpy_s": med["numpy"],
        "ratio": statistics.median(ratios),
        "readable_s": med.get("readable"),
        "compile_s": compile_s["linopt"],
        "flops": spec["flops"],
        "bytes": spec["bytes"],
        "repeats": repeats,
        "times": times,
        "subset_tries_timed": sub if scaled else None,
        "linearity": linearity,  # path -> t(2 * timed) / t(timed); 2 is linear
    }
    return with_floor(row, peaks)


def _judge(row):
    want_ratio, want_floor = TARGETS.get(row["workload"], (None, None))
    met = want_ratio is None or row["ratio"] >= want_ratio
    if want_floor is not None and row.get("floor_ratio") is not None:
        met = met and row["floor_ratio"] <= want_floor
    targets = {"target_ratio": want_ratio, "target_floor_ratio": want_floor}
    return {**row, **targets, "met": met}


def numerical_gradient_rows(size):
    """Rows of :mod:`benchmarks.numerical_gradient`, if that module is there."""
    if importlib.util.find_spec("benchmarks.numerical_gradient") is None:
        print("benchmarks/numerical_gradient.py is not there: workload skipped")
        return []
    from benchmarks import numerical_gradient

    rows = numerical_gradient.run(
        num_examples=size["numgrad_examples"], repeats=size["slow_repeats"]
    )
    return [_judge(row) for row in rows]


def scaling(size, X, y, repeats=3):
    """linopt's mini-batch run and full-batch loss + gradient as N and D grow.

    ``elements`` is the work: entries of ``X`` touched, ``N * D`` for the full
    batch and ``steps * batch * D`` for the mini-batch run (which does not
    depend on ``N``); linear scaling is a constant time per element."""
    rows = []
    shapes = [(n, X.shape[1]) for n in size["scaling_N"] if n <= X.shape[0]]
    shapes += [(X.shape[0], d) for d in size["scaling_D"] if d != X.shape[1]]
    steps, batch = size["minibatch_steps"], size["batch"]
    for n, d in shapes:
        Xj, yj = jnp.asarray(X[:n, -d:]), jnp.asarray(y[:n])
        W = strategies.init_params(jax.random.key(1), size["C"], d)
        fns = {
            "minibatch": lambda X=Xj, y=yj: minibatch(X, y, steps, batch),
            "full_batch": lambda W=W, X=Xj, y=yj: svm_loss_and_grad(W, X, y, 2.5e4),
        }
        _, times = timing.interleaved(fns, repeats)
        for name, t in times.items():
            elements = n * d if name == "full_batch" else steps * batch * d
            rows.append(
                {
                    "workload": f"scaling/{name}",
                    "N": n,
                    "D": d,
                    "elements": elements,
                    "linopt_s": statistics.median(t),
                    # no numpy side: the same keys as a workload row, empty
                    "numpy_s": None,
                    "ratio": None,
                    "floor_s": None,
                }
            )
    return rows


def print_table(rows):
    print(
        "\n| workload | numpy s | linopt s | readable s | numpy/linopt | floor s "
        "| linopt/floor | compile s | target | met |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        target = f">= {r['target_ratio']}x" if r.get("target_ratio") else ""
        if r.get("target_floor_ratio"):
            target += f", <= {r['target_floor_ratio']}x floor"
        print(
            f"| {r['workload']} | {_fmt(r['numpy_s'])} | {_fmt(r['linopt_s'])} "
            f"| {_fmt(r.get('readable_s'))} | {r['ratio']:.2f} "
            f"| {_fmt(r['floor_s'])} | {_fmt(r.get('floor_ratio'), 2)} "
            f"| {_fmt(r.get('compile_s'))} | {target} "
            f"| {'yes' if r['met'] else 'NO'} |"
        )


def print_scaling(rows):
    print("\n| workload | N | D | linopt s | elements | ns per element |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        t = r["linopt_s"]
        print(
            f"| {r['workload']} | {r['N']} | {r['D']} | {t:.4f} "
            f"| {r['elements']:.3g} | {t / r['elements'] * 1e9:.3f} |"
        )


def _fmt(value, digits=3):
    return "" if value is None else f"{value:.{digits}g}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--quick", action="store_true", help="small sizes, under 2 min")
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS) + ",scaling",
        help="comma-separated workloads (and 'scaling') to run",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="trace one linopt call a workload into DIR and "
        "print its costliest XLA ops",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=INT",
        help="override one size, e.g. --set tries=200",
    )
    args = parser.parse_args(argv)
    jax.monitoring.register_event_duration_secs_listener(timing.on_compile_event)
    size = dict(QUICK if args.quick else FULL)
    settable = sorted(k for k, v in size.items() if isinstance(v, int))
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in settable or not value.isdigit():
            parser.error(f"--set {item!r}: want KEY=INT, KEY one of {settable}")
        size[key] = int(value)
    only = set(args.only.split(","))
    info = timing.describe_machine()
    print(json.dumps(info, indent=1))
    X, y = synthetic(size["N"], size["D"], size["C"])
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    peaks = timing.measure_peaks(X, Xj)
    rows = []
    for name, spec in workloads(size, X, y, Xj, yj).items():
        if name in only:
            slow = name not in ("minibatch", "full_batch")
            repeats = size["slow_repeats" if slow else "repeats"]
            rows.append(measure_workload(name, spec, repeats, peaks))
            if args.profile:
                rows[-1]["profile"] = profile(spec["linopt"], f"{args.profile}/{name}")
                for op, seconds, calls in rows[-1]["profile"]:
                    print(f"  {op:40.40s} {seconds:9.4f} s {calls:6d} calls")
            print_table(rows[-1:])
    now = timing.measure_peaks(X, Xj)  # the best seen, before and after
    peaks = {k: max(v, now[k]) for k, v in peaks.items()}
    if "numerical_gradient" in only:
        rows += numerical_gradient_rows(size)
    del Xj, yj
    scaling_rows = scaling(size, X, y) if "scaling" in only else []
    info = {**info, "load_after": os.getloadavg(), "peaks": peaks}
    rows = [with_floor(r, peaks) if "flops" in r else r for r in rows]
    print(
        f"\nload average before {info['load_before']}, after {info['load_after']}; "
        f"peaks: {peaks['flops'] / 1e9:.0f} GFLOP/s float32, "
        f"{peaks['flops_float64'] / 1e9:.0f} GFLOP/s float64, "
        f"{peaks['bytes_per_s'] / 1e9:.1f} GB/s read"
    )
    print_table(rows)
    for r in (r for r in rows if r.get("subset_tries_timed")):
        for path, k in r["linearity"].items():
            print(
                f"{r['workload']}: {path} timed on {r['subset_tries_timed']} tries "
                f"and scaled; 2x tries took {k:.2f}x the time"
            )
    if scaling_rows:
        print_scaling(scaling_rows)
    if args.json:
        out = [{**r, "machine": info} for r in rows] + scaling_rows
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)


if __name__ == "__main__":
    main()
