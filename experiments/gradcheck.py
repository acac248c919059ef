"""Check the analytic gradients of the SVM and softmax losses (lecture, 4 and 5).

    python -m experiments.gradcheck                          # digits, both losses
    python -m experiments.gradcheck --dataset=cifar10 --mode=sparse
    python -m experiments.gradcheck --loss=svm --h=1e-6 --method=forward

``jax.grad`` of each loss is compared with linopt's own finite differences, in
float64, on a small subset of the training split (the lecture's advice: few
examples, double precision). Writes config.json, summary.json (a
``max_relative_error`` per loss), checks_<loss>.csv, relative_errors_<loss>.png,
h_sweep.csv and h_sweep.png into --workdir. Exits with status 1, naming the
loss, when a check misses its verdict (for use in CI).

W starts at ``weight_scale * randn``; by default the scale gives the scores unit
standard deviation, so the SVM's margins ``s_j - s_y + 1`` fall on both sides
of 0 and both branches of every hinge are checked (at W near 0 every margin is
near 1 and the indicator in the SVM gradient is never exercised).
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common
from linopt import gradcheck, losses, plots, runs

LOSS = flags.DEFINE_enum("loss", "both", ["svm", "softmax", "both"], "Loss to check.")
NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", 20, "Training examples in the check (a small dev subset)."
)
REG = flags.DEFINE_float("reg", 1e-3, "L2 strength; nonzero so its term is checked.")
H = flags.DEFINE_float("h", 1e-5, "Finite-difference step.")
METHOD = flags.DEFINE_enum(
    "method",
    "centered",
    list(gradcheck.METHODS),
    "Finite differences: centered (error h^2) or forward (h).",
)
MODE = flags.DEFINE_enum(
    "mode",
    "full",
    ["full", "sparse", "directional"],
    "Every coordinate, --num_checks sampled coordinates per parameter group "
    "(weights, bias), or --num_checks random directions per group.",
)
NUM_CHECKS = flags.DEFINE_integer(
    "num_checks",
    20,
    "Coordinates or directions per group (sparse, directional and the h sweep).",
)
WEIGHT_SCALE = flags.DEFINE_float(
    "weight_scale", None, "W = weight_scale * randn (default: unit-variance scores)."
)
X64 = flags.DEFINE_bool("x64", True, "Check in float64; --nox64 shows float32 fail.")
UNITS = flags.DEFINE_enum(
    "units",
    "feature",
    ["feature", "parameter"],
    "What --h is measured in: feature (W[:, j] steps by h / rms(X[:, j]), so "
    "weights on 0..255 pixels and the bias are both checked at their best h) "
    "or parameter (every W[c, j] steps by h, the lecture's loop).",
)
MEMORY_MB = flags.DEFINE_integer(
    "memory_mb", 128, "Memory for one chunk of perturbed copies of W in the full check."
)

SWEEP_STEPS = tuple(float(f"1e-{k}") for k in range(1, 11))  # 1e-1 ... 1e-10


def svm_margins(X, y):
    """The SVM's hinge arguments ``s_j - s_y + 1`` as a function of W, shape
    ``(N, C)``; the correct class's entry is pinned at 1 (it is no hinge)."""

    def margins(W):
        s = losses.scores(W, X)
        correct = jnp.take_along_axis(s, y[:, None], axis=1)
        is_correct = jax.nn.one_hot(y, W.shape[0], dtype=bool)
        return jnp.where(is_correct, 1.0, s - correct + losses.SVM_DELTA)

    return margins


def default_weight_scale(X) -> float:
    """The scale that gives ``W x`` unit variance for the rows of ``X``."""
    return float(1.0 / np.sqrt(np.mean(np.sum(np.asarray(X, np.float64) ** 2, 1))))


def check_loss(
    name,
    W,
    X,
    y,
    *,
    reg,
    h,
    method,
    mode,
    num_checks,
    key,
    gradient=None,
    units="feature",
    memory_bytes=gradcheck.DEFAULT_MEMORY_BYTES,
):
    """Check ``gradient`` (default ``jax.grad`` of loss ``name``) at ``W``.

    ``units="feature"`` checks in :func:`linopt.gradcheck.in_units` of
    :func:`linopt.gradcheck.feature_scale` of ``X`` (partials and the worst
    check's values are then per unit of feature scale). Returns ``(result,
    summary)``: the :class:`linopt.gradcheck.CheckResult` and its summary,
    with ``h_sweep`` (the sparse sample's errors for each h in 1e-1 ... 1e-10)
    added.
    """
    loss = losses.get(name)

    def f(W):
        return loss(W, X, y, reg)

    analytic = jax.grad(f)(W) if gradient is None else gradient
    kinks = svm_margins(X, y) if name == "svm" else None
    if units == "feature":
        f, analytic, W, kinks = gradcheck.in_units(
            gradcheck.feature_scale(X), f, analytic, W, kinks=kinks
        )
    common_kw = dict(
        groups=gradcheck.bias_column_groups(W.shape),
        kinks=kinks,
        method=method,
        memory_bytes=memory_bytes,
    )
    if mode == "full":
        result = gradcheck.full_check(f, analytic, W, h=h, **common_kw)
    else:
        check = (
            gradcheck.sparse_check if mode == "sparse" else gradcheck.directional_check
        )
        result = check(f, analytic, W, key, num_checks=num_checks, h=h, **common_kw)
    summary = gradcheck.summarize(result)
    sweep = []
    for step in SWEEP_STEPS:
        s = gradcheck.summarize(
            gradcheck.sparse_check(
                f,
                analytic,
                W,
                key,
                num_checks=num_checks,
                h=float(step),
                floor=result.floor,
                **common_kw,
            )
        )
        sweep.append(
            {
                "h": float(step),
                "max_relative_error": s["max_relative_error"],
                "median_relative_error": s["median_relative_error"],
                "num_kinks_crossed": s["num_kinks_crossed"],
            }
        )
    summary["h_sweep"] = sweep
    return result, summary


def describe(result, summary, shape) -> str:
    """The worst check as ``W[c, d] (group)`` or ``direction k (group)``."""
    worst = summary["worst"]
    if worst is None:
        return "-"
    if result.mode == "directional":
        return f"direction {worst['index']} ({worst['group']})"
    c, d = np.unravel_index(worst["index"], shape)
    return f"W[{c}, {d}] ({worst['group']})"


def _e(value, width=9, digits=1) -> str:
    """A relative error in e-notation, or "-" where none was judged."""
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}e}"


def print_table(rows) -> None:
    print(
        f"{'loss':8} {'mode':11} {'checks':>7} {'max rel err':>11} "
        f"{'median':>9} {'worst':24} {'kinks':>5}  verdict"
    )
    for name, s, where in rows:
        print(
            f"{name:8} {s['mode']:11} {s['num_checks']:>7} "
            f"{_e(s['max_relative_error'], 11, 2)} "
            f"{_e(s['median_relative_error'], 9, 2)} {where:24} "
            f"{s['num_kinks_crossed']:>5}  {s['verdict']}"
        )
        if s["num_kinks_crossed"]:
            print(
                f"{'':8} at kinks (judged apart): max relative error "
                f"{s['max_relative_error_at_kinks']:.2e}, {s['verdict_at_kinks']}"
            )


def write_outputs(workdir, results: dict) -> None:
    """Per-loss CSVs and histograms, and the h sweep as a table and a figure."""
    sweep_keys = (
        "h",
        "max_relative_error",
        "median_relative_error",
        "num_kinks_crossed",
    )
    columns = {"loss": [], **{key: [] for key in sweep_keys}}
    curves = {}
    for name, (result, summary) in results.items():
        checks = {
            key: getattr(result, key)
            for key in (
                "index",
                "group",
                "analytic",
                "numerical",
                "relative_error",
                "kink",
            )
        }
        runs.write_csv(workdir / f"checks_{name}.csv", checks)
        plots.histogram(
            workdir / f"relative_errors_{name}.png",
            result.relative_error,
            xlabel="relative error (good <= 1e-7, wrong > 1e-2)",
            title=f"{name}: {summary['mode']} check, {summary['num_checks']} values",
        )
        for row in summary["h_sweep"]:
            columns["loss"].append(name)
            for key in sweep_keys:
                columns[key].append("" if row[key] is None else row[key])
        for stat in ("max", "median"):
            # log axes: an exact 0 drawn at 1e-17, a sweep point without any
            # kink-free check left out
            values = [row[f"{stat}_relative_error"] for row in summary["h_sweep"]]
            curves[f"{name} {stat}"] = (
                [row["h"] for row in summary["h_sweep"]],
                [np.nan if v is None else max(v, 1e-17) for v in values],
            )
    runs.write_csv(workdir / "h_sweep.csv", columns)
    plots.line_plot(
        workdir / "h_sweep.png",
        curves,
        xlabel="h",
        ylabel="relative error",
        logx=True,
        logy=True,
        marker="o",
        title="truncation (large h) versus round-off (small h)",
    )


def print_sweep(results: dict) -> None:
    names = list(results)
    print("\nrelative error against h (sparse sample; max / median):")
    print(f"{'h':>8} " + " ".join(f"{n:>21}" for n in names))
    for i, step in enumerate(SWEEP_STEPS):
        cells = []
        for n in names:
            row = results[n][1]["h_sweep"][i]
            cells.append(
                f"{_e(row['max_relative_error'])} / {_e(row['median_relative_error'])}"
            )
        print(f"{step:8.0e} " + " ".join(cells))


def failure_hint(summary) -> str:
    """What a failed check's own h sweep and settings suggest."""
    if summary["dtype"] != "float64":
        return "float32 cannot reach 1e-7: run without --nox64"
    if METHOD.value == "forward":
        return "forward differences err by O(h): use --method=centered"
    if summary["max_relative_error"] is None:
        return "every check crossed a kink: use a smaller --h"
    judged = [
        row for row in summary["h_sweep"] if row["max_relative_error"] is not None
    ]
    best = min(judged, key=lambda row: row["max_relative_error"])
    cause = (
        "finite-difference error (truncation at large h, round-off at small h), "
        "not the gradient, is the likely cause"
        if best["max_relative_error"] <= gradcheck.GOOD
        else "the gradient itself is the likely cause"
    )
    hint = (
        f"the h sweep's sampled coordinates do best at h={best['h']:g} "
        f"({best['max_relative_error']:.1e}), so {cause}"
    )
    if UNITS.value == "parameter" and best["max_relative_error"] <= gradcheck.GOOD:
        hint += "; --units=feature gives every coordinate its own best step"
    return hint


def validate_flags() -> None:
    require = common.require
    common.check_data_flags()
    require(
        NUM_EXAMPLES.value >= 1,
        f"--num_examples must be >= 1, got {NUM_EXAMPLES.value}",
    )
    require(0 < H.value < 1, f"--h must be in (0, 1), got {H.value}")
    require(REG.value >= 0, f"--reg must be >= 0, got {REG.value}")
    require(NUM_CHECKS.value >= 1, f"--num_checks must be >= 1, got {NUM_CHECKS.value}")
    require(
        WEIGHT_SCALE.value is None or WEIGHT_SCALE.value > 0,
        f"--weight_scale must be > 0, got {WEIGHT_SCALE.value}",
    )
    require(MEMORY_MB.value >= 1, f"--memory_mb must be >= 1, got {MEMORY_MB.value}")


def main(argv):
    del argv
    validate_flags()
    names = ["svm", "softmax"] if LOSS.value == "both" else [LOSS.value]
    dtype = np.float64 if X64.value else np.float32
    with jax.enable_x64(X64.value):
        workdir = common.start_run("gradcheck")  # inside: config records x64
        ds = common.load_data(dtype=dtype)
        X = jnp.asarray(ds.X_train[: NUM_EXAMPLES.value])
        y = jnp.asarray(ds.y_train[: NUM_EXAMPLES.value])
        scale = WEIGHT_SCALE.value or default_weight_scale(X)
        key_w, key_check = jax.random.split(jax.random.key(common.SEED.value))
        W = scale * jax.random.normal(key_w, (ds.num_classes, ds.dim), X.dtype)
        results = {
            name: check_loss(
                name,
                W,
                X,
                y,
                reg=REG.value,
                h=H.value,
                method=METHOD.value,
                mode=MODE.value,
                num_checks=NUM_CHECKS.value,
                key=key_check,
                units=UNITS.value,
                memory_bytes=MEMORY_MB.value * 2**20,
            )
            for name in names
        }
    write_outputs(workdir, results)
    failed = [n for n, (_, s) in results.items() if not s["passed"]]
    summary = {name: s for name, (_, s) in results.items()}
    summary.update(
        status="completed",
        passed=not failed,
        failed=failed,
        dataset=common.DATASET.value,
        num_examples=int(X.shape[0]),
        weight_scale=scale,
        x64=X64.value,
        h=H.value,
        units=UNITS.value,
        method=METHOD.value,
        reg=REG.value,
    )
    runs.write_json(workdir / "summary.json", summary)

    print(
        f"gradient check: {common.DATASET.value}, {X.shape[0]} examples, "
        f"W {tuple(W.shape)} at scale {scale:.3g}, reg {REG.value:g}, "
        f"h {H.value:g} {METHOD.value} in {UNITS.value} units, "
        f"{'float64' if X64.value else 'float32'}"
    )
    print_table([(n, s, describe(r, s, W.shape)) for n, (r, s) in results.items()])
    print_sweep(results)
    print(f"\nwrote {workdir}")
    for name in failed:
        s = summary[name]
        print(
            f"FAILED: {name}: max relative error {_e(s['max_relative_error'], 0, 2)} "
            f"({s['verdict']}) > {gradcheck.GOOD:g} at "
            f"{describe(results[name][0], s, W.shape)}; {failure_hint(s)}",
            file=sys.stderr,
        )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    common.run(main)
