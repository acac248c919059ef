"""Full-batch gradient descent around its stability limit ``2 / lambda_max``.

On a quadratic, gradient descent with learning rate ``lr`` multiplies the
error along the Hessian's top eigenvector by ``1 - lr * lambda_max`` each
step: it converges for ``lr < 2 / lambda_max`` and diverges above. This
experiment measures ``lambda_max`` at the starting weights (Lanczos,
linopt.curvature), runs full-batch gradient descent at ``factors * 2 /
lambda_max`` (all factors one vmapped program on linopt's driver, as
linopt.sweep runs a grid), and measures ``lambda_max`` along each path
every ``--track_every`` steps, beside the run's own limit ``2 / lr``::

    python -m experiments.stability                      # digits, softmax
    python -m experiments.stability --factors=0.5,0.9,1.1,1.5,3
    python -m experiments.stability --dataset=cifar10 --num_steps=100

Files in ``--workdir``: ``config.json``, ``summary.json``
(``lambda_max_start``, and per factor its ``learning_rate``, ``final_loss``,
``diverged_step`` or null, ``lambda_max_path``), ``metrics.csv`` (the loss of
``W_t`` per factor), ``sharpness.csv`` (``lambda_max`` at the tracked steps),
``stability.png`` (loss against step) and ``sharpness.png`` (``lambda_max``
along each path with its ``2 / lr``). Unset ``--reg`` and ``--init_scale``
take the step-size preset (linopt.presets; ``--help`` shows them). In Python:
``run(linopt.configs.StabilityConfig(...), workdir)``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common
from linopt import (
    configs,
    curvature,
    driver,
    figure_thread,
    losses,
    plots,
    presets,
    runs,
    spectrum,
    strategies,
    sweep,
)
from linopt.errors import LinoptError

flags.DEFINE_list(
    "factors", None, "Learning rates as multiples of 2 / lambda_max at the start."
)
flags.DEFINE_integer(
    "track_every", None, "Steps between measurements of lambda_max along each path."
)
flags.DEFINE_integer(
    "lanczos_iters", None, "Hessian-vector products (Lanczos steps) a lambda_max."
)


class Tracker:
    """``on_chunk`` of the sweep: ``lambda_max`` at every run's weights after
    each chunk (the chunks end every ``track_every`` steps); NaN for a run
    that has diverged, whose weights stopped at an earlier step."""

    def __init__(self, measure, lambda_start: float, num_runs: int):
        self.measure = measure  # (F, C, D) weights -> (F,) lambda_max
        self.steps = [0]
        self.values = [np.full(num_runs, lambda_start)]

    def __call__(self, progress: driver.Progress) -> None:
        params = progress.state.params[0]  # the one seed: (F, C, D)
        kept = np.asarray(progress.state.step)[0]
        values = np.asarray(self.measure(params), np.float64)
        self.steps.append(progress.step)
        self.values.append(np.where(kept < progress.step, np.nan, values))


GREW = 0.01  # a rise of the loss by 1% over its lowest so far: it grew
NOISE = 1e-6  # float32 rounding of a mean loss, relative: not a rise


def _largest_rise(values) -> float:
    """The largest relative rise of the loss above its lowest value so far."""
    lowest = np.minimum.accumulate(values)
    return float(np.max(values / lowest - 1))


def _number(value) -> float | None:
    """A float for the summary, None where not finite (as JSON has it)."""
    return float(value) if np.isfinite(value) else None


def _verdict(diverged: bool, rise: float) -> str:
    if diverged:
        return "diverged"
    return "grew" if rise > GREW else "decreased"


@figure_thread.figure_writer
def write_figures(path, config, summary, curves, where):
    """``stability.png`` (loss per step, one curve per factor) and
    ``sharpness.png`` (lambda_max along each path, each run's 2 / lr in its
    colour); a run's colour is the same in both."""
    from matplotlib.figure import Figure  # on the first figure, as linopt.plots

    runs_ = summary["factors"]
    limit, start = summary["stability_limit"], summary["initial_loss"]
    # A diverged run leaves the axes at the top, so the others stay readable.
    finite = np.concatenate([v for _, v in curves.values()])
    kept = [v for f, (_, v) in curves.items() if runs_[f]["diverged_step"] is None]
    top = 3 * max([start, *(np.max(v) for v in kept)])
    fig = Figure(figsize=(7.6, 4.4))
    ax = fig.subplots()
    for i, (f, run) in enumerate(runs_.items()):
        x, values = curves[f]
        outcome = run["verdict"]
        if run["diverged_step"] is not None:
            outcome = f"diverged at step {run['diverged_step']}"
        label = f"{f} x: lr {run['learning_rate']:.3g}, {outcome}"
        ax.plot(x, values, color=f"C{i}", lw=1.4, label=label)
    ax.set_yscale("log")
    ax.set_ylim(0.7 * np.min(finite), top)
    ax.set(
        xlabel="step t (full-batch gradient-descent updates)",
        ylabel=f"{config.loss} training loss L(W_t) (nats, log scale)",
        title=f"Gradient descent at multiples of 2/lambda_max ({where})",
    )
    ax.legend(
        title=f"lr = factor x 2/lambda_max, 2/lambda_max = {limit:.3g}",
        fontsize=8,
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
    )
    ax.grid(alpha=0.3)
    plots.save_figure(fig, path / "stability.png")

    fig = Figure(figsize=(7.6, 4.4))
    ax = fig.subplots()
    for i, (f, run) in enumerate(runs_.items()):
        tracked = run["lambda_max_path"]
        steps = tracked["step"]
        values = [np.nan if v is None else v for v in tracked["lambda_max"]]
        ax.plot(steps, values, color=f"C{i}", marker="o", ms=3.5, lw=1.4,
                label=f"{f} x: lambda_max(W_t)")  # fmt: skip
        ax.axhline(run["two_over_lr"], color=f"C{i}", ls="--", lw=1.1,
                   label=f"{f} x: 2/lr = {run['two_over_lr']:.3g}")  # fmt: skip
    ax.set(
        xlabel="step t (full-batch gradient-descent updates)",
        ylabel="lambda_max of the Hessian at W_t (loss / weight^2)",
        title=f"Sharpness along each path; above its 2/lr a run is unstable\n({where})",
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), ncol=1)
    ax.grid(alpha=0.3)
    plots.save_figure(fig, path / "sharpness.png")


def run(config: configs.StabilityConfig, workdir=None) -> dict:
    """Gradient descent at each factor of ``2 / lambda_max``; write every output.

    Args:
      config: ``reg`` and ``init_scale`` left unset come from the preset table.
      workdir: the run folder (default: a new ``runs/stability-<time>``).
    Returns:
      the summary (``summary.json``).
    """
    config, sources = presets.resolve(config)
    ds = common.load_data(config)
    C, D = ds.num_classes, ds.dim
    if config.lanczos_iters > C * D:
        raise LinoptError(
            f"lanczos_iters is {config.lanczos_iters}, but W has only {C * D} "
            "entries; give at most that"
        )
    if workdir:  # refuse a folder holding a run before the work, not after
        path = Path(workdir).expanduser()
        runs.check_workdir(path, overwrite=config.overwrite, resume=False)
    start = time.perf_counter()

    X, y = jnp.asarray(ds.X_train), jnp.asarray(ds.y_train)
    loss_fn, reg, iters = losses.get(config.loss), config.reg, config.lanczos_iters
    # The starting weights linopt.sweep draws for this seed (its first half).
    init_key = jax.random.split(jax.random.key(config.seed))[0]
    W0 = driver.init_params(init_key, C, D, config.init_scale)
    lanczos_key = jax.random.fold_in(jax.random.key(config.seed), 1)
    top = curvature.top_eigenpairs(
        loss_fn, W0, X, y, reg, key=lanczos_key, num_iters=iters
    )
    lambda_start = float(top.eigenvalues[0])
    if not lambda_start > 0:
        raise LinoptError(
            f"lambda_max is {lambda_start:g} at the start (the SVM's hinge has no "
            "curvature, only reg's 2 * reg); use loss softmax or a reg above 0"
        )
    # The folder is made once the run can go ahead: a refused run leaves none.
    path = common.start(workdir, "stability", config, sources)
    factors = [float(f) for f in config.factors]
    rates = [f * 2 / lambda_start for f in factors]

    def measure(params):
        return spectrum.sharpness(
            loss_fn, params, X, y, reg, key=lanczos_key, num_iters=iters
        )

    tracker = Tracker(measure, lambda_start, len(factors))
    result = sweep.sweep(
        strategies.GradientDescent(config.loss),  # full batch, plain sgd
        X,
        y,
        grid={"learning_rate": rates},
        seeds=(config.seed,),
        hparams={"reg": reg},
        num_steps=config.num_steps,
        num_classes=C,
        init_scale=config.init_scale,
        chunk_size=config.track_every,
        on_chunk=tracker,
    )
    final = sweep.evaluate(result.params[0], X, y, loss=config.loss, reg=reg)["loss"]
    initial = float(loss_fn(W0, X, y, reg))
    wall = time.perf_counter() - start

    t = np.asarray(result.metrics["step"]) - 1  # the loss at step s is L(W_{s-1})
    path_steps = np.asarray(tracker.steps)
    path_values = np.stack(tracker.values, axis=1)  # (F, tracked)
    metrics = {"step": t}
    sharpness = {"step": path_steps}
    report, curves = {}, {}
    for i, factor in enumerate(factors):
        diverged = bool(result.diverged[0, i])
        kept = int(result.steps[0, i])
        loss_t = np.asarray(result.losses[0, i], np.float64)
        metrics[f"loss_{factor}"] = loss_t
        sharpness[f"lambda_max_{factor}"] = path_values[i]
        finite = np.isfinite(loss_t)
        # The run's curve: every W_t, and the final weights' loss (a diverged
        # run's final weights are its last finite ones, already in the curve).
        x, values = t[finite], loss_t[finite]
        if not diverged:
            x, values = np.append(x, kept), np.append(values, final[i])
        curves[str(factor)] = (x, values)
        report[str(factor)] = {
            "learning_rate": rates[i],
            "two_over_lr": 2 / rates[i],
            "final_loss": _number(final[i]),  # None: inf (overflowed)
            "min_loss": float(np.min(values)),
            "diverged_step": kept + 1 if diverged else None,
            "steps_kept": kept,
            "verdict": _verdict(diverged, _largest_rise(values)),
            "largest_rise": _largest_rise(values),  # over the lowest loss so far
            "loss_rises": int(np.sum(np.diff(values) > NOISE * values[1:])),
            "final_above_start": bool(final[i] > initial),
            "lambda_max_path": {
                "step": path_steps.tolist(),
                "lambda_max": [_number(v) for v in path_values[i]],
            },
            "lambda_max_final": _number(path_values[i][-1]),
        }
    runs.write_csv(path / "metrics.csv", metrics)
    runs.write_csv(path / "sharpness.csv", sharpness)
    where = f"{config.dataset}, N={len(ds.y_train)}, reg={reg:g}"
    summary = {
        "status": "completed",
        "dataset": config.dataset,
        "loss": config.loss,
        "reg": reg,
        "num_train": int(len(ds.y_train)),
        "init": f"randn{(C, D)} * {config.init_scale:g}, seed {config.seed}",
        "num_steps": config.num_steps,
        "initial_loss": initial,
        "lambda_max_start": lambda_start,
        "lambda_max_residual": float(top.residuals[0]),  # |H v - lambda v|
        "stability_limit": 2 / lambda_start,  # 2 / lambda_max at the start
        "factors": report,
        "wall_time_s": wall,
        "compile_and_first_chunk_s": result.compile_and_first_chunk_s,
    }
    runs.write_json(path / "summary.json", summary)
    write_figures(path, config, summary, curves, where)

    print(
        f"lambda_max at the start {lambda_start:.4g} (2/lambda_max "
        f"{2 / lambda_start:.4g}; {config.loss}, {where}, loss {initial:.4f})"
    )
    for factor, r in report.items():
        end = f"diverged at step {r['diverged_step']}"
        if r["diverged_step"] is None:
            end = (
                f"{r['verdict']} (largest rise {r['largest_rise']:.2%}), loss "
                f"{r['final_loss']:.4g} after {r['steps_kept']} steps"
            )
        print(
            f"  {factor} x: lr {r['learning_rate']:.4g}: {end}; lambda_max "
            f"{lambda_start:.4g} -> {r['lambda_max_final'] or float('nan'):.4g} "
            f"(2/lr {r['two_over_lr']:.4g})"
        )
    print(f"wall time {wall:.1f} s; files in {path}")
    return summary


if __name__ == "__main__":
    common.main(configs.StabilityConfig, run)
