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
first-order prediction ``t * |grad|^2``).
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common
from linopt import data, landscape, lecture, losses, plots, runs

LOSS = flags.DEFINE_enum(
    "loss",
    "svm",
    sorted(losses.LOSSES),
    "Loss to step on (the note does not say which).",
)
REG = flags.DEFINE_float("reg", 0.0, "L2 strength reg * sum(W**2).")
NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", None, "Use the first N training examples (default: all)."
)
INIT_SCALE = flags.DEFINE_float(
    "init_scale", 1e-3, "W = uniform[0, 1)(C, D) * init_scale, the lecture's rand."
)
MIN_STEP = flags.DEFINE_float("min_step_size", 1e-10, "Smallest step size.")
MAX_STEP = flags.DEFINE_float("max_step_size", 1e-1, "Largest step size.")
POINTS_PER_DECADE = flags.DEFINE_integer(
    "points_per_decade", 1, "Step sizes per factor of 10 (1 is the lecture's grid)."
)

MAX_POINTS = 10_000


def check_flags() -> None:
    common.check_data_flags()
    require = common.require
    require(
        NUM_EXAMPLES.value is None or NUM_EXAMPLES.value >= 1,
        f"--num_examples must be at least 1, got {NUM_EXAMPLES.value}",
    )
    require(
        math.isfinite(REG.value) and REG.value >= 0,
        f"--reg must be a finite number >= 0, got {REG.value}",
    )
    require(
        math.isfinite(INIT_SCALE.value) and INIT_SCALE.value > 0,
        f"--init_scale must be > 0, got {INIT_SCALE.value}",
    )
    require(
        math.isfinite(MIN_STEP.value) and MIN_STEP.value >= 1e-30,
        f"--min_step_size must be >= 1e-30 (float32 steps), got {MIN_STEP.value}",
    )
    require(
        math.isfinite(MAX_STEP.value) and MAX_STEP.value > MIN_STEP.value,
        f"--max_step_size ({MAX_STEP.value}) must be finite and larger than "
        f"--min_step_size ({MIN_STEP.value})",
    )
    require(
        POINTS_PER_DECADE.value >= 1,
        f"--points_per_decade must be at least 1, got {POINTS_PER_DECADE.value}",
    )
    decades = math.log10(MAX_STEP.value / MIN_STEP.value)
    require(
        decades * POINTS_PER_DECADE.value + 1 <= MAX_POINTS,
        f"--points_per_decade={POINTS_PER_DECADE.value} over {decades:.3g} "
        f"decades gives more than {MAX_POINTS} step sizes; use fewer",
    )


def main(argv):
    del argv
    check_flags()
    ds = common.load_data()
    ds = data.subset(ds, NUM_EXAMPLES.value)
    workdir = common.start_run("step_size")
    start = time.perf_counter()

    X, y = jnp.asarray(ds.X_train), jnp.asarray(ds.y_train)
    # The only random draw of the run, so the seed's key is used as is.
    shape = (ds.num_classes, ds.dim)
    W = jax.random.uniform(jax.random.key(common.SEED.value), shape, X.dtype)
    W = W * INIT_SCALE.value
    steps = landscape.step_sizes(
        MIN_STEP.value, MAX_STEP.value, POINTS_PER_DECADE.value
    )
    sweep = landscape.step_size_sweep(losses.get(LOSS.value), W, X, y, steps, REG.value)
    sweep = jax.device_get(sweep)
    wall = time.perf_counter() - start

    # Report the requested sizes in float64 (the sweep ran them in float32).
    step_list = [float(t) for t in steps]
    loss_list = [float(v) for v in sweep.losses]
    original = float(sweep.original_loss)
    best = int(np.argmin(np.where(np.isfinite(sweep.losses), sweep.losses, np.inf)))
    runs.write_csv(workdir / "metrics.csv", {"step_size": step_list, "loss": loss_list})
    where = f"{common.DATASET.value}, N={len(ds.y_train)}, reg={REG.value:g}"
    marker = "o" if len(step_list) <= 25 else None
    plots.line_plot(
        workdir / "step_size.png",
        {
            "original loss L(W)": (step_list, [original] * len(step_list)),
            "loss after one step, L(W - t * grad)": (step_list, loss_list),
        },
        xlabel="step size t (log scale)",
        ylabel=f"{LOSS.value} loss (log scale)",
        title=f"One gradient step from rand * {INIT_SCALE.value:g} ({where})",
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
        title=f"Tiny steps fall linearly in t ({LOSS.value}, {where})",
        logx=True,
        logy=True,
        marker=marker,
    )
    runs.write_json(
        workdir / "summary.json",
        {
            "status": "completed",
            "dataset": common.DATASET.value,
            "loss": LOSS.value,
            "reg": REG.value,
            "num_examples": int(len(ds.y_train)),
            "init": f"uniform[0, 1){shape} * {INIT_SCALE.value:g}, seed "
            f"{common.SEED.value}",
            "gradient": "jax.grad of the loss (the hand-derived one agrees)",
            "original_loss": original,
            "gradient_norm": float(sweep.gradient_norm),
            "step_sizes": step_list,
            "losses": loss_list,
            "best_step_size": step_list[best],
            "best_loss": loss_list[best],
            "lecture": {
                "original_loss": lecture.STEP_SIZE_ORIGINAL_LOSS,
                "step_sizes": list(lecture.STEP_SIZES),
                "losses": list(lecture.STEP_SIZE_LOSSES),
            },
            "wall_time_s": wall,
        },
    )

    print(f"original loss: {original:f}")
    for t, value in zip(step_list, loss_list, strict=True):
        print(f"for step size {t:e} new loss: {value:f}")
    print(
        f"best step size {step_list[best]:g} (loss {loss_list[best]:f}, "
        f"|grad| {float(sweep.gradient_norm):g}; {LOSS.value}, {where}); "
        f"files in {workdir}"
    )


if __name__ == "__main__":
    common.run(main)
