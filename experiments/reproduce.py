"""Rerun the whole lecture and report it beside the lecture's own numbers.

    python -m experiments.reproduce                                  # digits
    python -m experiments.reproduce --dataset=cifar10 --data_dir=...  # the real thing

Runs every experiment of the lecture in order, in this process, each in a
subfolder of --workdir (so each keeps its own files, figures and summary),
then writes ``report.md`` (a "lecture / measured" table for every number the
lecture gives, every figure embedded by relative path) and ``summary.json``.
In Python: ``run(linopt.configs.ReproduceConfig(...))``.
"""

from __future__ import annotations

import dataclasses
import time

import jax
from absl import flags

from experiments import batch_size, common, gradcheck, landscape, step_size, train
from linopt import configs, figure_thread, lecture, losses, runs
from linopt.errors import LinoptError

flags.DEFINE_integer(
    "num_tries", None, "Tries of random search and random local search."
)

# (section, folder, experiment, its config's own fields), in the lecture's order.
EXPERIMENTS = [
    ("1. Loss landscape", "landscape", landscape, {}),
    ("2. Random search", "random_search", train, {"strategy": "random_search"}),
    (
        "3. Random local search",
        "random_local_search",
        train,
        {"strategy": "random_local_search"},
    ),
    ("4-5. Numerical vs analytic gradient", "gradcheck", gradcheck, {}),
    ("6. Step sizes (SVM)", "step_size_svm", step_size, {"loss": "svm"}),
    ("6. Step sizes (softmax)", "step_size_softmax", step_size, {"loss": "softmax"}),
    (
        "7. Gradient descent",
        "gradient_descent",
        train,
        {"strategy": "gradient_descent"},
    ),
    ("8. Mini-batch GD (SVM)", "minibatch_svm", train, {"strategy": "minibatch"}),
    (
        "8. Mini-batch GD (softmax)",
        "minibatch_softmax",
        train,
        {"strategy": "minibatch", "loss": "softmax"},
    ),
    ("8. Stochastic GD", "sgd", train, {"strategy": "sgd"}),
    ("8. How good is a mini-batch gradient?", "batch_size", batch_size, {}),
]
_CONFIGS = {
    train: configs.TrainConfig,
    gradcheck: configs.GradcheckConfig,
    landscape: configs.LandscapeConfig,
    step_size: configs.StepSizeConfig,
    batch_size: configs.BatchSizeConfig,
}


def sanity_losses(config: configs.ReproduceConfig) -> dict:
    """SVM and softmax losses at a nearly zero W: about C - 1 and ln C."""
    ds = common.load_data(config)
    W = 1e-7 * jax.random.normal(jax.random.key(config.seed), (ds.num_classes, ds.dim))
    return {
        "svm_sanity": float(losses.svm_loss(W, ds.X_train, ds.y_train)),
        "softmax_sanity": float(losses.softmax_loss(W, ds.X_train, ds.y_train)),
        "num_classes": ds.num_classes,
    }


def experiment_config(config: configs.ReproduceConfig, module, own: dict):
    """The experiment's config: the data fields of ``config``, its own fields.

    A data field left at its default keeps the experiment's own default (the
    gradient check's 20 examples, not every training example).
    """
    data = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(configs.DataConfig)
        if getattr(config, f.name) != f.default
    }
    if module is train and own["strategy"].startswith("random"):
        own = {**own, "num_steps": config.num_tries}
    return _CONFIGS[module](**data, **own)


def run_experiment(module, config, folder) -> tuple[dict, str, float]:
    """Run one experiment in process: ``(summary, status, seconds)``."""
    start = time.perf_counter()
    try:
        summary = module.run(config, folder)
        status = summary.get("status", "failed")
        if module is gradcheck and not summary.get("passed", True):
            status = "check failed"
    except LinoptError as e:
        print(f"error: {e}")
        summary, status = {}, "failed"
    return summary, status, time.perf_counter() - start


def read_summary(folder) -> dict:
    try:
        return runs.read_json(folder / "summary.json")
    except (OSError, ValueError):
        return {}


def fmt(value, digits=4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def comparison_rows(measured: dict) -> list[tuple[str, str, str]]:
    s = measured
    rows = [
        ("SVM loss at W ~ 0 (C - 1)", "9", fmt(s["sanity"]["svm_sanity"])),
        (
            "softmax loss at W ~ 0 (ln C)",
            "2.302585",
            fmt(s["sanity"]["softmax_sanity"], 7),
        ),
    ]
    for folder, label, key in [
        ("random_search", "random search, test accuracy", "15.5%"),
        ("random_local_search", "random local search, test accuracy", "21.4%"),
        ("minibatch_svm", "mini-batch SVM, test accuracy", "about 39%"),
        ("minibatch_softmax", "mini-batch softmax, test accuracy", "over 35%"),
        ("gradient_descent", "full-batch GD, test accuracy", "-"),
        ("sgd", "SGD (batch 1), test accuracy", "-"),
    ]:
        acc = s["experiments"].get(folder, {}).get("test_accuracy")
        rows.append((label, key, "-" if acc is None else f"{100 * acc:.1f}%"))
    grad = s["experiments"].get("gradcheck", {})
    for loss in ("softmax", "svm"):
        err = grad.get(loss, {}).get("max_relative_error")
        rows.append(
            (
                f"gradient check, {loss}: max relative error (off kinks)",
                "<= 1e-7 good",
                fmt(err, 3),
            )
        )
    for loss in ("svm", "softmax"):
        step = s["experiments"].get(f"step_size_{loss}", {})
        rows.append(
            (f"best step size ({loss})", "1e-6", fmt(step.get("best_step_size")))
        )
    return rows


def step_size_table(measured: dict) -> list[str]:
    svm = measured["experiments"].get("step_size_svm", {})
    soft = measured["experiments"].get("step_size_softmax", {})
    lines = [
        "| step size | lecture | measured, SVM | measured, softmax |",
        "|---|---|---|---|",
        f"| original | {lecture.STEP_SIZE_ORIGINAL_LOSS} | "
        f"{fmt(svm.get('original_loss'), 7)} | {fmt(soft.get('original_loss'), 7)} |",
    ]
    sizes = svm.get("step_sizes") or soft.get("step_sizes") or []
    for i, size in enumerate(sizes):
        on_lecture_grid = len(sizes) == len(lecture.STEP_SIZE_LOSSES)
        said = lecture.STEP_SIZE_LOSSES[i] if on_lecture_grid else ""
        a = svm.get("losses", [None] * len(sizes))[i]
        b = soft.get("losses", [None] * len(sizes))[i]
        lines.append(f"| {size:.0e} | {said} | {fmt(a, 7)} | {fmt(b, 7)} |")
    return lines


def curvature_table(measured: dict) -> list[str]:
    """What the curvature at the start predicts of the step-size table."""
    lines = [
        "| loss | lambda_max | 2 / lambda_max | predicted best step | "
        "measured best step | predicted crossover |",
        "|---|---|---|---|---|---|",
    ]
    for loss in ("svm", "softmax"):
        s = measured["experiments"].get(f"step_size_{loss}", {})
        p = s.get("predicted") or {}
        cells = [p.get(k) for k in ("lambda_max", "stability_limit", "best_step")]
        cells += [s.get("best_step_size"), p.get("crossover")]
        lines.append(f"| {loss} | " + " | ".join(fmt(c, 3) for c in cells) + " |")
    return lines + [
        "",
        "The quadratic model along the gradient: best step |g|^2 / g'Hg, back to "
        "the start at twice that; the SVM's data term has no curvature (its "
        "kinks are its difficulty), so it predicts nothing there ('-').",
    ]


def batch_size_section(measured: dict) -> list[str]:
    """The lecture's claim that a small batch's gradient is a good one, measured."""
    s = measured["experiments"].get("batch_size", {})
    if not s.get("cosine"):
        return ["(the batch-size experiment did not run)"]
    cos, sizes = s["cosine"], s["cosine"]["batch_sizes"]
    lines = [
        "The lecture: a mini-batch's gradient is a good approximation of the "
        "full one, so more, noisier steps win. Measured at the start "
        f"(B_simple = tr(Sigma) / |G|^2 = {fmt(s.get('b_simple_start'), 3)}) and "
        f"at the target loss {fmt(s.get('target_loss'))} "
        f"(B_simple = {fmt(s.get('b_simple_end'), 3)}):",
        "",
        "| batch size | steps to the target | cosine at the start (predicted / "
        "drawn) | cosine at the target (predicted / drawn) |",
        "|---|---|---|---|",
    ]
    for i, B in enumerate(sizes):
        steps = s["batch_sizes"].get(str(B), {}).get("steps")
        cells = []
        for at in ("start", "target"):
            drawn = cos[at]["measured"]
            cells.append(
                f"{cos[at]['predicted'][i]:.3f} / "
                + (f"{drawn[i]:.3f}" if i < len(drawn) else "-")
            )
        lines.append(f"| {B} | {fmt(steps, 4)} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        f"Fitted S = S_min (1 + B_crit / B): S_min {fmt(s.get('s_min'), 3)}, "
        f"E_min {fmt(s.get('e_min'), 3)}, B_crit {fmt(s.get('b_crit'), 3)}.",
    ]
    return lines


def write_report(workdir, measured: dict, config) -> None:
    lines = [
        f"# The lecture, reproduced on {config.dataset}",
        "",
        "Each experiment's files (config, summary, metrics, figures) are in the "
        "folder of its name. Numbers from `python -m experiments.reproduce "
        f"--dataset={config.dataset}`, seed {config.seed}.",
        "",
        "## Lecture / measured",
        "",
        "| quantity | lecture | measured |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in comparison_rows(measured)]
    lines += [
        "",
        "The lecture's numbers are CIFAR-10's; on another data set only "
        "their shape compares.",
        "",
        "## Step sizes",
        "",
    ]
    lines += step_size_table(measured)
    lines += ["", "## What the curvature predicts", ""]
    lines += curvature_table(measured)
    lines += ["", "## How good is a mini-batch gradient?", ""]
    lines += batch_size_section(measured)
    lines += [
        "",
        "## Experiments",
        "",
        "Seconds in the experiment itself; its figures are drawn on another "
        "thread meanwhile.",
        "",
        "| experiment | status | seconds |",
        "|---|---|---|",
    ]
    for section, folder, _, _ in EXPERIMENTS:
        info = measured["runs"].get(folder)
        if info:
            lines.append(
                f"| {section} (`{folder}/`) | {info['status']} | "
                f"{info['seconds']:.1f} |"
            )
    lines += ["", "## Figures", ""]
    for section, folder, _, _ in EXPERIMENTS:
        pngs = sorted((workdir / folder).glob("*.png"))
        if pngs:
            lines += [f"### {section}", ""]
            lines += [f"![{p.stem}]({folder}/{p.name})" for p in pngs]
            lines.append("")
    runs.atomic_write_text(workdir / "report.md", "\n".join(lines) + "\n")


def run(config: configs.ReproduceConfig, workdir=None) -> dict:
    """Every experiment of the lecture in order; ``report.md``; the summary."""
    measured = {
        "sanity": sanity_losses(config),
        "experiments": {},
        "runs": {},
        "lecture": {k: v for k, v in vars(lecture).items() if k.isupper()},
    }
    path = common.start(workdir, "reproduce", config, {})
    failed, stopped_by = [], None
    # An experiment's figures are drawn while the next one compiles; all are
    # written by the end of the block, before the report lists them.
    with figure_thread.in_background():
        for section, folder, module, own in EXPERIMENTS:
            print(f"== {section}", flush=True)
            sub = experiment_config(config, module, own)
            summary, status, seconds = run_experiment(module, sub, path / folder)
            measured["experiments"][folder] = summary
            measured["runs"][folder] = {"status": status, "seconds": seconds}
            if status not in ("completed", "diverged"):
                failed.append(folder)
            if summary.get("stopped_by"):  # interrupted: report what there is
                stopped_by = summary["stopped_by"]
                break
            runs.write_json(path / "summary.json", {"status": "running", **measured})
    status = "completed" if not failed else "failed: " + ", ".join(failed)
    summary = {"status": status, **measured}
    if stopped_by:
        summary["stopped_by"] = stopped_by
    runs.write_json(path / "summary.json", summary)
    write_report(path, measured, config)
    print(f"\nreport: {path / 'report.md'}")
    for a, b, c in comparison_rows(measured):
        print(f"  {a:<55} lecture {b:>14}   measured {c}")
    if failed:
        print(f"these experiments did not complete: {', '.join(failed)}")
    return summary


if __name__ == "__main__":
    common.main(
        configs.ReproduceConfig,
        run,
        exit_code=lambda s: 0 if s["status"] == "completed" else 1,
    )
