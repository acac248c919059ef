"""The lecture's step-size sweep: the loss after one gradient step of each size.

From ``W = rand(C, D) * 0.001`` (uniform, as in the lecture) and its gradient
on the training split, print the loss after ``W - t * grad`` for
``t = 1e-10 ... 1e-1`` in the lecture's format, and write a log-log figure::

    python -m experiments.step_size                      # digits, SVM
    python -m experiments.step_size --dataset=cifar10 --loss=softmax
    python -m experiments.step_size --points_per_decade=10

Files in ``--workdir``: ``config.json``, ``summary.json`` (``step_sizes``,
``losses``, ``best_step_size``, ``original_loss``, ``gradient_norm``, ...),
``metrics.csv`` (one row a step size), ``step_size.png`` (the loss after one
step, log-log) and ``step_size_decrease.png`` (the decrease beside its
first-order prediction ``t * |grad|^2``). Unset ``--reg`` and ``--init_scale``
take the preset (linopt.presets; ``--help`` shows them). In Python:
``run(linopt.configs.StepSizeConfig(...), workdir)``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common
from linopt import (
    configs,
    curvature,
    lecture,
    losses,
    plots,
    presets,
    runs,
    step_size,
)

flags.DEFINE_float("min_step_size", None, "Smallest step size.")
flags.DEFINE_float("max_step_size", None, "Largest step size.")
flags.DEFINE_integer(
    "points_per_decade", None, "Step sizes per factor of 10 (1 is the lecture's grid)."
)


def write_figures(workdir, config, sweep, step_list, loss_list, where, predicted):
    """``step_size.png`` (the loss after one step, and what the curvature
    predicts) and ``step_size_decrease.png``."""
    original = float(sweep.original_loss)
    marker = "o" if len(step_list) <= 25 else None
    t = np.asarray(step_list)
    model = original - t * predicted["gradient_norm_sq"]
    model = model + t**2 / 2 * predicted["curvature"]
    shown = model > 0  # a log axis: the model dips below 0 past its minimum
    plots.line_plot(
        workdir / "step_size.png",
        {
            "original loss L(W)": (step_list, [original] * len(step_list)),
            "loss after one step, L(W - t * grad)": (step_list, loss_list),
            "quadratic model L - t |g|^2 + t^2/2 g'Hg": (t[shown], model[shown]),
        },
        legend_outside=True,
        vlines={
            f"{label} {predicted[name]:.2g}": predicted[name]
            for name, label in (
                ("best_step", "predicted best"),
                ("crossover", "crossover"),
                ("stability_limit", "2/lambda_max"),
            )
            if predicted[name] is not None
        },
        xlabel="step size t (log scale)",
        ylabel=f"{config.loss} loss (log scale)",
        title=f"One gradient step from rand * {config.init_scale:g} ({where})",
        logx=True,
        logy=True,
        marker=marker,
    )
    # The first-order picture: for small t the loss falls by t |grad|^2.
    decrease = original - np.asarray(loss_list)
    predicted = np.asarray(step_list) * float(sweep.gradient_norm) ** 2
    plots.line_plot(
        workdir / "step_size_decrease.png",
        {
            "L(W) - L(W - t * grad) (where > 0)": (
                step_list,
                np.where(decrease > 0, decrease, np.nan),
            ),
            "t * |grad|^2 (first-order prediction)": (step_list, predicted),
        },
        xlabel="step size t (log scale)",
        ylabel="decrease of the loss (log scale)",
        title=f"Tiny steps fall linearly in t ({config.loss}, {where})",
        logx=True,
        logy=True,
        marker=marker,
    )


def run(config: configs.StepSizeConfig, workdir=None) -> dict:
    """One gradient step of each size; write every output; return the summary.

    Args:
      config: ``reg`` and ``init_scale`` left unset come from the preset table.
      workdir: the run folder (default: a new ``runs/step_size-<time>``).
    Returns:
      the summary (``summary.json``).
    """
    config, sources = presets.resolve(config)
    ds = common.load_data(config)  # num_train: the first N training examples
    path = common.start(workdir, "step_size", config, sources)
    start = time.perf_counter()

    X, y = jnp.asarray(ds.X_train), jnp.asarray(ds.y_train)
    # The only random draw of the run, so the seed's key is used as is.
    shape = (ds.num_classes, ds.dim)
    W = jax.random.uniform(jax.random.key(config.seed), shape, X.dtype)
    W = W * config.init_scale
    steps = step_size.step_sizes(
        config.min_step_size, config.max_step_size, config.points_per_decade
    )
    loss_fn = losses.get(config.loss)
    sweep = step_size.step_size_sweep(loss_fn, W, X, y, steps, config.reg)
    sweep = jax.device_get(sweep)
    # What the curvature predicts for the same step (linopt.curvature).
    key = jax.random.fold_in(jax.random.key(config.seed), 1)
    predicted = curvature.step_predictions(loss_fn, W, X, y, config.reg, key=key)
    # The SVM's data term has no curvature: its steps are then unpredicted (None).
    predicted = {
        k: float(v) if np.isfinite(v) else None for k, v in predicted._asdict().items()
    }
    wall = time.perf_counter() - start

    # Report the requested sizes in float64 (the sweep ran them in float32).
    step_list = [float(t) for t in steps]
    loss_list = [float(v) for v in sweep.losses]
    original = float(sweep.original_loss)
    best = int(sweep.best_index)
    runs.write_csv(path / "metrics.csv", {"step_size": step_list, "loss": loss_list})
    where = f"{config.dataset}, N={len(ds.y_train)}, reg={config.reg:g}"
    # The lesson needs both sides of the best step: say when the grid ends first.
    edge = {0: "smallest", len(step_list) - 1: "largest"}.get(best)
    if edge is not None:
        where += f"; best at the {edge} step tried"
    write_figures(path, config, sweep, step_list, loss_list, where, predicted)
    summary = {
        "status": "completed",
        "dataset": config.dataset,
        "loss": config.loss,
        "reg": config.reg,
        "num_train": int(len(ds.y_train)),
        "init": f"uniform[0, 1){shape} * {config.init_scale:g}, seed {config.seed}",
        "gradient": "jax.grad of the loss (the hand-derived one agrees)",
        "original_loss": original,
        "gradient_norm": float(sweep.gradient_norm),
        "step_sizes": step_list,
        "losses": loss_list,
        "best_step_size": step_list[best],
        "best_loss": loss_list[best],
        "best_at_edge": edge,  # None, "smallest" or "largest"
        # The quadratic model along -g: best |g|^2 / g^T H g, crossover twice
        # that; full-batch gradient descent is stable below 2 / lambda_max.
        "predicted": predicted,
        "lecture": {
            "original_loss": lecture.STEP_SIZE_ORIGINAL_LOSS,
            "step_sizes": list(lecture.STEP_SIZES),
            "losses": list(lecture.STEP_SIZE_LOSSES),
        },
        "wall_time_s": wall,
    }
    runs.write_json(path / "summary.json", summary)

    print(f"original loss: {original:f}")
    for t, value in zip(step_list, loss_list, strict=True):
        print(f"for step size {t:e} new loss: {value:f}")
    print(
        f"best step size {step_list[best]:g} (loss {loss_list[best]:f}, "
        f"|grad| {float(sweep.gradient_norm):g}; {config.loss}, {where}); "
        f"files in {path}"
    )
    if edge is not None:
        bound = "max_step_size larger" if edge == "largest" else "min_step_size smaller"
        print(
            f"warning: the best step size is the {edge} one tried, so the grid "
            f"does not show where the loss turns; pass --{bound}"
        )
    return summary


if __name__ == "__main__":
    common.main(configs.StepSizeConfig, run)
