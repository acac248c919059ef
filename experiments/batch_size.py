"""How good is a mini-batch gradient? Steps and examples against batch size.

First the preset mini-batch run (``experiments.train --strategy=minibatch``
with the same data set, loss and preset): its final training loss is the
target, and the simple noise scale ``B_simple = tr(Sigma) / |G|^2`` is
measured exactly at its start, quarters and end (:mod:`linopt.noise`). Then
each batch size (1, 4, 16, ... and the whole training set) runs constant-rate
SGD at a ladder of learning rates as one program, until the first rate
reaches the target (:mod:`linopt.batch_size`); the fewest steps ``S`` and the
examples ``E = B S`` are fitted with McCandlish et al.'s
``S = S_min (1 + B_crit / B)``::

    python -m experiments.batch_size                        # digits, SVM
    python -m experiments.batch_size --dataset=cifar10 --loss=softmax

Files in ``--workdir``: ``config.json``, ``summary.json`` (``S_min``,
``E_min``, ``B_crit``, ``B_simple`` along the run and their ratio, each batch
size's steps, examples and learning rate), ``metrics.csv`` (a row a batch
size), ``steps.png`` and ``examples.png`` (log-log, the fit drawn),
``cosine.png`` (a batch gradient's cosine to the full one, predicted and
drawn) and ``noise_scale.png`` (``B_simple`` along the preset run). The
training loss is the objective with reg on the first 10,000 training rows.
In Python: ``run(linopt.configs.BatchSizeConfig(...), workdir)``.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from tqdm import tqdm

from experiments import common, interrupt
from linopt import (
    batch_size,
    configs,
    driver,
    noise,
    plots,
    presets,
    runs,
    strategies,
    training,
)
from linopt.driver import Data
from linopt.errors import LinoptError

flags.DEFINE_list("batch_sizes", None, "Batch sizes (default: 1, 4, 16, ..., N).")
flags.DEFINE_float("target_loss", None, "Training loss to reach (default: preset's).")
flags.DEFINE_integer("num_learning_rates", None, "Learning rates of a ladder.")
flags.DEFINE_float("lr_factor", None, "Ratio of neighbouring learning rates.")
flags.DEFINE_float("budget", None, "Steps and examples allowed, x the preset's.")
flags.DEFINE_integer("evals_per_doubling", None, "Loss evaluations per doubling.")
flags.DEFINE_integer("num_draws", None, "Batch gradients drawn per batch size.")

MAX_DRAWN_VALUES = 2**24  # a draw block's B x D floats (64 MB)
_DATA_FIELDS = ("dataset", "data_dir", "download", "seed", "num_train", "num_val")


def preset_run(config, ds, stop):
    """The preset mini-batch run and its weights at the start and at each of
    its evaluation points (``training.evaluate_every``)."""
    train_config, _ = presets.resolve(
        configs.TrainConfig(
            **{f: getattr(config, f) for f in _DATA_FIELDS},
            strategy="minibatch",
            loss=config.loss,
            preset=config.preset,
            schedule="constant",  # the rule of every batch size's runs
        )
    )
    n = train_config.num_steps
    every = training.evaluate_every(n)  # where the run's chunks end anyway
    marks = {*range(every, n, every), n}
    snapshots = {}

    def keep(progress):
        if progress.step in marks:
            snapshots[progress.step] = np.asarray(progress.state.params)

    # The start every ladder of linopt.batch_size shares (sweep.init's draw).
    init_key = jax.random.split(jax.random.key(train_config.seed))[0]
    W0 = driver.init_params(init_key, ds.num_classes, ds.dim, train_config.init_scale)
    result = training.train(train_config, ds, on_chunk=stop.wrap(keep), params=W0)
    return train_config, result, {0: np.asarray(W0), **snapshots}


def write_figures(path, where, searches, fit, noise_along, cosines):
    """``steps.png``, ``examples.png``, ``cosine.png``, ``noise_scale.png``."""
    reached = [s for s in searches if s.reached]
    missed = [s for s in searches if not s.reached]
    B = np.array([s.batch_size for s in reached], np.float64)
    sizes = [s.batch_size for s in searches] or [1]
    grid = np.geomspace(min(sizes), max(max(sizes), 2), 100)
    start, end = noise_along[0], noise_along[max(noise_along)]
    lines = {f"B_simple at the start {start:.3g}": start}
    lines[f"B_simple at the target {end:.3g}"] = end
    if fit is not None and math.isfinite(fit.b_crit) and fit.b_crit > 0:
        lines = {f"B_crit (fit) {fit.b_crit:.3g}": fit.b_crit, **lines}
    for name, measured, model, label in (
        ("steps", [s.steps for s in reached], "steps", "steps S to the target"),
        ("examples", [s.examples for s in reached], "examples", "examples E = B S"),
    ):
        curves = {"measured (best learning rate)": (B, measured)}
        if missed:  # drawn at the steps they ran: a lower bound
            ran = np.array([max(r.eval_steps[-1] for r in s.ladders) for s in missed])
            size = np.array([s.batch_size for s in missed], np.float64)
            curves["not reached: more than"] = (
                size,
                ran * (size if name == "examples" else 1),
            )
        if fit is not None:
            formula = {
                "steps": "S_min (1 + B_crit / B)",
                "examples": "E_min (1 + B / B_crit)",
            }
            fitted = f"fit {formula[name]}"
            curves[fitted] = (grid, getattr(fit, model)(grid))
        plots.line_plot(
            path / f"{name}.png",
            curves,
            xlabel="batch size B (examples, log scale)",
            ylabel=f"{label} (log scale)",
            title=f"{label.split(' ')[0].capitalize()} to the target loss ({where})",
            logx=True,
            logy=True,
            marker="o",
            vlines=lines,
            legend_outside=True,
            smooth=[c for c in curves if c.startswith("fit")],
        )
    sizes = cosines["batch_sizes"]
    curves = {}
    for at in ("start", "target"):
        curves[f"predicted at the {at}"] = (sizes, cosines[at]["predicted"])
        drawn = cosines[at]["measured"]
        curves[f"measured at the {at} ({cosines['num_draws']} draws)"] = (
            sizes[: len(drawn)],
            drawn,
        )
    plots.line_plot(
        path / "cosine.png",
        curves,
        xlabel="batch size B (examples, log scale)",
        ylabel="cos(batch gradient, full gradient)",
        title=f"How well a batch gradient points ({where})",
        logx=True,
        marker="o",
        legend_outside=True,
    )
    steps = list(noise_along)
    plots.line_plot(
        path / "noise_scale.png",
        {"B_simple = tr(Sigma) / |G|^2": (steps, [noise_along[s] for s in steps])},
        xlabel="step of the preset mini-batch run",
        ylabel="B_simple (examples, log scale)",
        title=f"The simple noise scale along the preset run ({where})",
        logy=True,
        marker="o",
    )


def run(config: configs.BatchSizeConfig, workdir=None) -> dict:
    """Steps to the preset's loss for each batch size; write every output.

    Returns:
      the summary (``summary.json``).
    """
    config, sources = presets.resolve(config)
    ds = common.load_data(config)
    n = len(ds.y_train)
    sizes = config.batch_sizes or batch_size.batch_sizes(n)
    if max(sizes) > n:
        raise LinoptError(
            f"batch size {max(sizes)} exceeds the {n} training examples; "
            "use smaller batch_sizes"
        )
    path = common.start(workdir, "batch_size", config, sources)
    began = time.perf_counter()
    eval_rows = training.along_run_data(ds)[:2]
    data = Data(jnp.asarray(ds.X_train), jnp.asarray(ds.y_train))
    summary = {"status": "completed", "dataset": config.dataset, "loss": config.loss}
    with interrupt.StopOnSignal() as stop:
        preset, result, snapshots = preset_run(config, ds, stop)
        reg, W_end = preset.reg, result.params
        target = config.target_loss
        if target is None:
            target = training.along_run(
                W_end, (*eval_rows, *eval_rows), config.loss, reg
            )
            target = target["train_loss"]
        # The noise scale along the preset run, exactly over every training row.
        along = {
            s: noise.gradient_noise(config.loss, jnp.asarray(W), data.X, data.y, reg)
            for s, W in sorted(snapshots.items())
        }
        searches, center, previous = [], preset.learning_rate, preset.batch_size
        examples = preset.num_steps * preset.batch_size
        bar = tqdm(sorted(sizes), desc="batch sizes", unit="B", disable=None)
        bar.write(
            f"target loss {target:.4g} (the preset run's end, or given); "
            f"B_simple {float(along[0].b_simple):.3g} at the start"
        )
        for B in bar:
            if stop.requested:
                break
            # Linear scaling from the preset's batch, then halfway from the last.
            power = 1.0 if not searches else 0.5
            center = center * (B / previous) ** power
            strategy = strategies.GradientDescent(
                config.loss, None if B == n else B, preset.sampling
            )
            max_steps = math.ceil(config.budget * max(preset.num_steps, examples / B))
            search = batch_size.steps_to_target(
                strategy, {"reg": reg}, data, eval_rows,
                center=center, target=target, max_steps=max_steps,
                num_learning_rates=config.num_learning_rates,
                factor=config.lr_factor, seed=config.seed,
                num_classes=ds.num_classes, init_scale=preset.init_scale,
                per_doubling=config.evals_per_doubling, on_chunk=stop.wrap(),
            )  # fmt: skip
            if search.ladders[-1].stopped:
                break
            searches.append(search)
            center, previous = search.learning_rate, B
            steps = f"{search.steps:,.0f} steps" if search.reached else "not reached"
            edge = " (best rate at an edge)" if search.at_edge else ""
            bar.write(
                f"B={B:>6}: {steps}, lr {search.learning_rate:.3g}{edge}, "
                f"{search.wall_time_s:.1f} s"
            )
        bar.close()
        cosines = _cosines(config, data, reg, snapshots[0], W_end, sizes, along)
        if stop.requested:
            summary.update(status="interrupted", stopped_by=stop.signal_name)
    reached = [s for s in searches if s.reached]
    fit = None
    if len(reached) >= 2:
        fit = batch_size.fit_tradeoff(
            [s.batch_size for s in reached], [s.steps for s in reached]
        )
    noise_along = {s: float(g.b_simple) for s, g in along.items()}
    b_simple_end = noise_along[max(noise_along)]
    midway = min(noise_along, key=lambda s: abs(s - preset.num_steps / 2))
    runs.write_csv(
        path / "metrics.csv",
        {
            "batch_size": [s.batch_size for s in searches],
            "steps": [s.steps for s in searches],
            "examples": [s.examples for s in searches],
            "learning_rate": [s.learning_rate for s in searches],
            "at_edge": [s.at_edge for s in searches],
            "seconds": [s.wall_time_s for s in searches],
        },
    )
    where = f"{config.dataset}, {config.loss}, reg={reg:g}"
    write_figures(path, where, searches, fit, noise_along, cosines)
    b_crit = fit.b_crit if fit else None
    summary.update(
        target_loss=float(target),
        target_from="target_loss" if config.target_loss else "the preset run's end",
        preset_run={
            f: getattr(preset, f)
            for f in ("num_steps", "batch_size", "learning_rate", "reg", "schedule")
        },
        s_min=fit.s_min if fit else None,
        e_min=fit.e_min if fit else None,
        b_crit=b_crit,
        fit_relative_residuals=fit.relative_residuals if fit else None,
        b_simple_along_preset_run=noise_along,
        b_simple_start=noise_along[0],
        b_simple_midway=noise_along[midway],
        b_simple_end=b_simple_end,
        b_crit_over_b_simple={
            at: b_crit / noise_along[s] if b_crit and noise_along[s] > 0 else None
            for at, s in (("start", 0), ("midway", midway), ("end", max(noise_along)))
        },
        batch_sizes={
            str(s.batch_size): {
                "steps": s.steps if s.reached else None,
                "examples": s.examples if s.reached else None,
                "learning_rate": s.learning_rate,
                "best_at_edge_of_rates": s.at_edge,
                "learning_rates_tried": len(s.ladders) * config.num_learning_rates,
                "seconds": s.wall_time_s,
            }
            for s in searches
        },
        cosine=cosines,
        wall_time_s=time.perf_counter() - began,
    )
    runs.write_json(path / "summary.json", summary)
    if fit:
        print(
            f"S_min {fit.s_min:,.0f}, E_min {fit.e_min:,.0f}, "
            f"B_crit {fit.b_crit:,.0f}; "
            f"B_simple {noise_along[0]:,.0f} at the start, {b_simple_end:,.0f} at the "
            f"target; files in {path}"
        )
    return summary


def _cosines(config, data, reg, W_start, W_end, sizes, along) -> dict:
    """A batch gradient's cosine to the full gradient, predicted and drawn."""
    n, dim = data.X.shape
    out = {"batch_sizes": list(sizes), "num_draws": config.num_draws}
    key = jax.random.fold_in(jax.random.key(config.seed), 2)
    for at, W in (("start", W_start), ("target", W_end)):
        full = along[0] if at == "start" else along[max(along)]
        predicted = [float(noise.expected_batch_cosine(full, B)) for B in sizes]
        measured = []
        for B in sizes:
            if B * dim > MAX_DRAWN_VALUES:  # a draw of it alone: too large to vmap
                break
            drawn = noise.sample_batch_errors(
                config.loss, jnp.asarray(W), data.X, data.y, reg, full.gradient,
                key=key, batch_size=B, num_draws=config.num_draws,
                draws_per_block=max(1, MAX_DRAWN_VALUES // (B * dim)),
            )  # fmt: skip
            measured.append(float(drawn.mean_cosine))
        out[at] = {"predicted": predicted, "measured": measured}
    return out


if __name__ == "__main__":
    common.main(configs.BatchSizeConfig, run)
