"""The lecture's loss landscapes: 1-D and 2-D random slices, and the toy.

Draws ``L(W + a W1)`` (a line plot) and ``L(W + a W1 + b W2)`` (heatmaps, blue
low, red high) for one training example, the mean over ``--num_average``
examples and the whole training split, each without and with ``--reg``; and
the lecture's toy (three 1-D examples, three classes) as the sum of its clamped
linear pieces::

    python -m experiments.landscape                     # digits, SVM
    python -m experiments.landscape --dataset=cifar10 --grid_size=101
    python -m experiments.landscape --weights=trained_W.npy --alpha_max=1

The centre ``W`` is ``--init_scale * randn(C, D)`` (the assignment's small
random start) unless ``--weights`` gives a ``(C, D)`` ``.npy``. The directions
are random, rescaled by ``--direction_scale`` and orthogonal by default. The
range is ``a, b in [-alpha_max, alpha_max]``; by default ``alpha_max`` moves the
training scores by 4 margins (RMS) along ``W1``, so every data set shows its
kinks. ``summary.json`` records the ranges, the scaling, the examples used
and each panel's loss min / max (its colour scale). Unset ``--reg`` and
``--init_scale`` take the data set's preset (linopt.presets; ``--help`` shows
them). In Python: ``run(linopt.configs.LandscapeConfig(...), workdir)``.
"""

from __future__ import annotations

import io
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common
from linopt import configs, figure_thread, landscape, losses, plots, presets, runs
from linopt.errors import LinoptError

flags.DEFINE_string(
    "weights", None, "A (C, D) .npy to put at the centre (default: random small W)."
)
flags.DEFINE_enum(
    "direction_scale",
    None,
    list(landscape.DIRECTION_SCALES),
    "none: randn entries; weights: each direction has |W|; rows: each class row "
    "has W's row norm (filter normalization).",
)
flags.DEFINE_bool("orthogonalize", None, "Make W2 orthogonal to W1.")
flags.DEFINE_float(
    "alpha_max",
    None,
    "Slice range [-alpha_max, alpha_max] for a and b "
    "(default: moves the training scores by 4 margins RMS along W1).",
)
flags.DEFINE_integer("line_points", None, "Points of the 1-D slices.")
flags.DEFINE_integer("grid_size", None, "Points per axis of 2-D slices.")
flags.DEFINE_integer("example", None, "Training index of the one example.")
flags.DEFINE_integer(
    "num_average", None, "Random training examples the 'average' panels use."
)

SCORE_SPAN = 4.0  # margins moved (RMS) at the edge of the default range


def check_config(config: configs.LandscapeConfig, num_train: int) -> None:
    """What a config can only be checked against once the data are loaded."""
    for name, rule, fits in (
        ("example", "be below", config.example < num_train),
        ("num_average", "be at most", config.num_average <= num_train),
    ):
        if not fits:
            raise LinoptError(
                f"{name} must {rule} the {num_train} training examples, "
                f"got {getattr(config, name)}"
            )


@figure_thread.figure_writer
def toy_figure(path, toy: landscape.ToySlice, x, w):
    """The toy's total loss (thick) over ``w0`` and each clamped piece."""
    from matplotlib.figure import Figure  # on the first figure, as linopt.plots

    fig = Figure(figsize=(6.8, 4.4))
    ax = fig.subplots()
    for i in range(3):
        for j in range(3):
            if j != i:
                ax.plot(
                    toy.w0,
                    toy.pieces[:, i, j],
                    lw=1.2,
                    ls="--",
                    label=f"max(0, w{j}·x{i} - w{i}·x{i} + 1) / 3",
                )
    ax.plot(toy.w0, toy.total, color="black", lw=2.6, label="total loss L (sum)")
    ax.set(
        xlabel="w0 (the one weight varied)",
        ylabel="loss",
        title=f"Toy SVM loss as clamped linear pieces: x = {tuple(x)}, y = (0, 1, 2), "
        f"w1 = {w[1]:g}, w2 = {w[2]:g}",
    )
    ax.legend(fontsize=7.5)
    ax.grid(alpha=0.3)
    plots.save_figure(fig, path)


def slices(loss, W, directions, line, grid, sets, reg) -> dict:
    """Every panel's losses (host arrays): a line and a grid a set, each
    without and with ``reg``."""
    loss_fn = losses.get(loss)
    arrays = {"alphas_1d": line, "alphas_2d": grid}
    for name, (_, Xs, ys) in sets.items():
        for suffix, r in (("", 0.0), ("_reg", reg)):
            arrays[f"line_{name}{suffix}"] = landscape.slice_1d(
                loss_fn, W, directions[0], line, Xs, ys, r
            )
            arrays[f"grid_{name}{suffix}"] = landscape.slice_2d(
                loss_fn, W, directions, grid, grid, Xs, ys, r
            )
    return {k: np.asarray(v) for k, v in arrays.items()}  # waits for the device


def run(config: configs.LandscapeConfig, workdir=None) -> dict:
    """Draw every slice and the toy; write every output; return the summary.

    Args:
      config: ``reg`` and ``init_scale`` left unset come from the preset table.
      workdir: the run folder (default: a new ``runs/landscape-<time>``).
    Returns:
      the summary (``summary.json``).
    Raises:
      LinoptError: ``example`` or ``num_average`` beyond the training split, a
        ``weights`` file that does not fit, or a zero direction.
    """
    config, sources = presets.resolve(config)
    ds = common.load_data(config)
    num_train = len(ds.y_train)
    check_config(config, num_train)
    centre_key, direction_key, example_key = jax.random.split(
        jax.random.key(config.seed), 3
    )
    shape = (ds.num_classes, ds.dim)
    if config.weights is None:
        weights = None
        centre = f"{config.init_scale:g} * randn{shape}, seed {config.seed}"
    else:
        weights = landscape.load_weights(config.weights, shape)
        centre = f"--weights {config.weights}"
    W, directions = landscape.centre_and_directions(
        centre_key,
        direction_key,
        shape,
        init_scale=config.init_scale,
        weights=weights,
        scale=config.direction_scale,
        orthogonalize=config.orthogonalize,
    )
    path = common.start(workdir, "landscape", config, sources)
    start = time.perf_counter()

    X, y = jnp.asarray(ds.X_train), jnp.asarray(ds.y_train)
    alpha_max = config.alpha_max
    if alpha_max is None:
        alpha_max = SCORE_SPAN / float(landscape.score_scale(X, directions[0]))
    average = np.sort(
        jax.random.choice(example_key, num_train, (config.num_average,), replace=False)
    )
    one = [config.example]
    # Subsets are cut on the host: no small device ops (each would compile).
    sets = {
        "example": (f"one example (#{one[0]})", ds.X_train[one], ds.y_train[one]),
        "average": (
            f"mean of {len(average)} examples",
            ds.X_train[average],
            ds.y_train[average],
        ),
        "train": (f"training split ({num_train})", X, y),
    }
    line = np.linspace(-alpha_max, alpha_max, config.line_points, dtype=np.float32)
    grid = np.linspace(-alpha_max, alpha_max, config.grid_size, dtype=np.float32)
    arrays = slices(config.loss, W, directions, line, grid, sets, config.reg)
    centre_loss = float(jax.jit(losses.get(config.loss))(W, X, y))
    toy = landscape.toy_slice()
    wall = time.perf_counter() - start

    scale = {
        "none": "|W1| of a standard normal",
        "weights": "|W1| = |W|: a = 1 moves as far as W",
        "rows": "each row of W1 as long as W's",
    }[config.direction_scale]
    if config.alpha_max is None:  # the default range: say what it means
        scale += f"; a = {alpha_max:.3g} moves the scores {SCORE_SPAN:g} margins (RMS)"
    panels = write_figures(
        path, config.loss, arrays, sets, config.reg, alpha_max, scale
    )
    toy_W, _, toy_X, _ = landscape.lecture_toy()
    # Rounded: the toy's values are short decimals stored in float32.
    toy_x = [round(float(v), 6) for v in np.asarray(toy_X).ravel()]
    toy_w = [round(float(v), 6) for v in np.asarray(toy_W).ravel()]
    toy_figure(path / "toy_pieces.png", toy, toy_x, toy_w)
    arrays.update(toy_w0=toy.w0, toy_pieces=toy.pieces, toy_total=toy.total)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    runs.atomic_write_bytes(path / "landscape.npz", buf.getvalue())
    summary = {
        "status": "completed",
        "dataset": config.dataset,
        "loss": config.loss,
        "reg": config.reg,
        "centre": centre,
        "centre_loss": centre_loss,
        "direction_scale": config.direction_scale,
        "orthogonalize": config.orthogonalize,
        "direction_norms": np.linalg.norm(np.asarray(directions), axis=(1, 2)).tolist(),
        "alpha_range": [-alpha_max, alpha_max],
        "beta_range": [-alpha_max, alpha_max],
        "alpha_rule": "--alpha_max"
        if config.alpha_max
        else f"{SCORE_SPAN:g} / RMS of X_train @ W1.T (scores move "
        f"{SCORE_SPAN:g} margins at the edge)",
        "line_points": config.line_points,
        "grid_size": config.grid_size,
        "examples": {
            "example": config.example,
            "average": average.tolist(),
            "train": num_train,
        },
        "panels": panels,
        "colour_map": "jet (blue low, red high), each heatmap from its own "
        "loss_min to loss_max, linear",
        "toy": {
            "x": toy_x,
            "y": [0, 1, 2],
            "w": toy_w,
            "varied": "w0",
            "w0_range": [round(float(a), 6) for a in toy.w0[[0, -1]]],
            "kinks_w0": [round(float(k), 6) for k in toy.kinks],
            "min_loss": float(toy.total.min()),
        },
        "wall_time_s": wall,
    }
    runs.write_json(path / "summary.json", summary)
    print(
        f"{config.loss} loss slices on {config.dataset} around {centre} "
        f"(loss {centre_loss:.4f}), a, b in +-{alpha_max:.4g}, reg {config.reg:g}:"
    )
    for key, panel in panels.items():
        print(f"  {key:<16} min {panel['loss_min']:<10.4f} max {panel['loss_max']:.4f}")
    print(f"files in {path}")
    return summary


def write_figures(workdir, loss, arrays, sets, reg, alpha_max, scale) -> dict:
    """The 1-D line plots and 2-D heatmaps; returns each panel's loss range.

    ``scale`` says what a unit of ``a`` is, under each x axis.
    """
    panels = {}
    name = loss.upper() if loss == "svm" else loss
    for suffix, r in (("", 0.0), ("_reg", reg)):
        reg_text = "no reg" if r == 0 else f"with reg * sum(W**2), reg = {r:g}"
        curves = {
            label: (arrays["alphas_1d"], arrays[f"line_{key}{suffix}"])
            for key, (label, _, _) in sets.items()
        }
        plots.line_plot(
            workdir / f"landscape_1d{suffix}.png",
            curves,
            xlabel=f"a (step along the random direction W1)\n{scale}",
            ylabel=f"{name} loss L(W + a W1)",
            title=f"{name} loss along a random line\n{reg_text}",
        )
        for key, (label, _, _) in sets.items():
            values = arrays[f"grid_{key}{suffix}"]
            file = f"landscape_2d_{key}{suffix}.png"
            plots.heatmap(
                workdir / file,
                values,
                x=arrays["alphas_2d"],
                y=arrays["alphas_2d"],
                xlabel=f"a (along W1)\n{scale}",
                ylabel="b (along W2)",
                title=f"{name} loss L(W + a W1 + b W2)\n{label}, {reg_text}",
                colorbar_label=f"{name} loss (blue low, red high)",
            )
            for kind, v in (("1d", arrays[f"line_{key}{suffix}"]), ("2d", values)):
                panels[f"{kind}_{key}{suffix}"] = {
                    "loss_min": float(v.min()),
                    "loss_max": float(v.max()),
                    "reg": r,
                    "range": [-alpha_max, alpha_max],
                    "file": file if kind == "2d" else f"landscape_1d{suffix}.png",
                }
    return panels


if __name__ == "__main__":
    common.main(configs.LandscapeConfig, run)
