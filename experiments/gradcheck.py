"""Check the analytic gradients of the SVM and softmax losses (lecture, 4 and 5).

    python -m experiments.gradcheck                          # digits, both losses
    python -m experiments.gradcheck --dataset=cifar10 --mode=sparse
    python -m experiments.gradcheck --loss=svm --h=1e-6 --method=forward

``jax.grad`` of each loss is compared with linopt's own finite differences, in
float64, on a small subset of the training split (the lecture's advice: few
examples, double precision), at weights whose scores have unit standard
deviation (linopt.gradient_checks). Writes config.json, summary.json (a
``max_relative_error`` per loss), checks_<loss>.csv, relative_errors_<loss>.png,
h_sweep.csv and h_sweep.png into --workdir. Exits with status 1, naming the
loss, when a check misses its verdict (for use in CI). In Python:
``run(linopt.configs.GradcheckConfig(...), workdir)``.
"""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common
from linopt import (
    configs,
    finite_differences,
    gradcheck,
    gradient_checks,
    plots,
    presets,
    runs,
)

flags.DEFINE_float("h", None, "Finite-difference step.")
flags.DEFINE_enum(
    "method",
    None,
    list(finite_differences.METHODS),
    "Finite differences: centered (error h^2) or forward (h).",
)
flags.DEFINE_enum(
    "mode",
    None,
    list(gradient_checks.MODES),
    "Every coordinate, --num_checks sampled coordinates per parameter group "
    "(weights, bias), or --num_checks random directions per group.",
)
flags.DEFINE_integer(
    "num_checks",
    None,
    "Coordinates or directions per group (sparse, directional and the h sweep).",
)
flags.DEFINE_float(
    "weight_scale", None, "W = weight_scale * randn (default: unit-variance scores)."
)
flags.DEFINE_bool("x64", None, "Check in float64; --nox64 shows float32 fail.")
flags.DEFINE_enum(
    "units",
    None,
    ["feature", "parameter"],
    "What --h is measured in: feature (W[:, j] steps by h / rms(X[:, j]), so "
    "weights on 0..255 pixels and the bias are both checked at their best h) "
    "or parameter (every W[c, j] steps by h, the lecture's loop).",
)
flags.DEFINE_integer(
    "memory_mb",
    None,
    "Memory for one chunk of perturbed copies of W in the full check.",
)


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


def write_outputs(workdir, results: dict, h: float) -> None:
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
        hlines={
            f"good <= {gradcheck.GOOD:g}": gradcheck.GOOD,
            f"acceptable (kinks only) < {gradcheck.KINKS_ONLY:g}": gradcheck.KINKS_ONLY,
            f"probably wrong > {gradcheck.WRONG:g}": gradcheck.WRONG,
        },
        vlines={f"this check's h = {h:g}": h},
    )


def print_sweep(results: dict) -> None:
    names = list(results)
    print("\nrelative error against h (sparse sample; max / median):")
    print(f"{'h':>8} " + " ".join(f"{n:>21}" for n in names))
    for i, step in enumerate(gradient_checks.SWEEP_STEPS):
        cells = []
        for n in names:
            row = results[n][1]["h_sweep"][i]
            cells.append(
                f"{_e(row['max_relative_error'])} / {_e(row['median_relative_error'])}"
            )
        print(f"{step:8.0e} " + " ".join(cells))


def failure_hint(summary: dict, *, method: str, units: str) -> str:
    """What a failed check's own h sweep and settings suggest."""
    if summary["dtype"] != "float64":
        return "float32 cannot reach 1e-7: run without --nox64"
    if method == "forward":
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
    if units == "parameter" and best["max_relative_error"] <= gradcheck.GOOD:
        hint += "; --units=feature gives every coordinate its own best step"
    return hint


@jax.jit
def _keys(seed):
    return tuple(jax.random.split(jax.random.key(seed)))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _normal(key, shape, dtype):  # one program (eager: three, each compiled)
    return jax.random.normal(key, shape, dtype)


def run(config: configs.GradcheckConfig, workdir=None) -> dict:
    """Check the gradient of each loss; write every output; the summary.

    Args:
      config: ``reg`` left unset comes from the preset table.
      workdir: the run folder (default: a new ``runs/gradcheck-<time>``).
    Returns:
      the summary (``summary.json``): each loss's check summary under its
      name, ``passed`` and ``failed`` (the losses whose check missed "good"),
      and the settings. Failures are also named on stderr.
    """
    c, sources = presets.resolve(config)
    names = list(configs.LOSSES) if c.loss == "both" else [c.loss]
    with jax.enable_x64(c.x64):
        ds = common.load_data(c, dtype="float64" if c.x64 else "float32")
        path = common.start(workdir, "gradcheck", c, sources)  # records x64
        X = jnp.asarray(ds.X_train)  # the first num_train examples
        y = jnp.asarray(ds.y_train)
        scale = c.weight_scale or gradient_checks.default_weight_scale(X)
        key_w, key_check = _keys(c.seed)
        W = scale * _normal(key_w, (ds.num_classes, ds.dim), X.dtype)
        results = {
            name: gradient_checks.check_loss(
                name,
                W,
                X,
                y,
                reg=c.reg,
                h=c.h,
                method=c.method,
                mode=c.mode,
                num_checks=c.num_checks,
                key=key_check,
                units=c.units,
                memory_bytes=c.memory_mb * 2**20,
                bias=ds.preprocessing.bias,
            )
            for name in names
        }
    write_outputs(path, results, c.h)
    failed = [n for n, (_, s) in results.items() if not s["passed"]]
    summary = {name: s for name, (_, s) in results.items()}
    summary.update(
        status="completed",
        passed=not failed,
        failed=failed,
        dataset=c.dataset,
        num_examples=int(X.shape[0]),
        weight_scale=scale,
        x64=c.x64,
        h=c.h,
        units=c.units,
        method=c.method,
        reg=c.reg,
    )
    runs.write_json(path / "summary.json", summary)

    print(
        f"gradient check: {c.dataset}, {X.shape[0]} examples, "
        f"W {tuple(W.shape)} at scale {scale:.3g}, reg {c.reg:g}, "
        f"h {c.h:g} {c.method} in {c.units} units, "
        f"{'float64' if c.x64 else 'float32'}"
    )
    print_table([(n, s, describe(r, s, W.shape)) for n, (r, s) in results.items()])
    print_sweep(results)
    print(f"\nwrote {path}")
    for name in failed:
        s = summary[name]
        print(
            f"FAILED: {name}: max relative error {_e(s['max_relative_error'], 0, 2)} "
            f"({s['verdict']}) > {gradcheck.GOOD:g} at "
            f"{describe(results[name][0], s, W.shape)}; "
            f"{failure_hint(s, method=c.method, units=c.units)}",
            file=sys.stderr,
        )
    return summary


if __name__ == "__main__":
    common.main(
        configs.GradcheckConfig, run, exit_code=lambda s: 0 if s["passed"] else 1
    )
