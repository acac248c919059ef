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
and each panel's loss min / max (its colour scale).
"""

from __future__ import annotations

import io
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from matplotlib.figure import Figure

from experiments import common
from linopt import landscape, losses, plots, runs
from linopt.errors import LinoptError

LOSS = flags.DEFINE_enum("loss", "svm", sorted(losses.LOSSES), "Loss to draw.")
REG = flags.DEFINE_float(
    "reg",
    None,
    "L2 strength of the 'with reg' panels (default per data set: "
    "digits 1, synthetic 0.1, cifar10 2.5e4, the assignment's).",
)
WEIGHTS = flags.DEFINE_string(
    "weights", None, "A (C, D) .npy to put at the centre (default: random small W)."
)
INIT_SCALE = flags.DEFINE_float(
    "init_scale", 1e-3, "Random centre W = init_scale * randn(C, D)."
)
DIRECTION_SCALE = flags.DEFINE_enum(
    "direction_scale",
    "weights",
    list(landscape.DIRECTION_SCALES),
    "none: randn entries; weights: each direction has |W|; rows: each class row "
    "has W's row norm (filter normalization).",
)
ORTHOGONALIZE = flags.DEFINE_bool("orthogonalize", True, "Make W2 orthogonal to W1.")
ALPHA_MAX = flags.DEFINE_float(
    "alpha_max",
    None,
    "Slice range [-alpha_max, alpha_max] for a and b "
    "(default: moves the training scores by 4 margins RMS along W1).",
)
LINE_POINTS = flags.DEFINE_integer("line_points", 401, "Points of the 1-D slices.")
GRID_SIZE = flags.DEFINE_integer("grid_size", 101, "Points per axis of 2-D slices.")
EXAMPLE = flags.DEFINE_integer("example", 0, "Training index of the one example.")
NUM_AVERAGE = flags.DEFINE_integer(
    "num_average", 100, "Random training examples the 'average' panels use."
)

REG_PRESETS = {"digits": 1.0, "synthetic": 0.1, "cifar10": 2.5e4}
SCORE_SPAN = 4.0  # margins moved (RMS) at the edge of the default range
MAX_POINTS = 2001


def check_flags() -> None:
    common.check_data_flags()
    require = common.require
    for flag in (LINE_POINTS, GRID_SIZE):
        require(
            3 <= flag.value <= MAX_POINTS,
            f"--{flag.name} must be between 3 and {MAX_POINTS}, got {flag.value}",
        )
    require(
        NUM_AVERAGE.value >= 1,
        f"--num_average must be at least 1, got {NUM_AVERAGE.value}",
    )
    require(EXAMPLE.value >= 0, f"--example must be >= 0, got {EXAMPLE.value}")
    require(
        REG.value is None or (math.isfinite(REG.value) and REG.value >= 0),
        f"--reg must be a finite number >= 0, got {REG.value}",
    )
    require(
        math.isfinite(INIT_SCALE.value) and INIT_SCALE.value > 0,
        f"--init_scale must be > 0, got {INIT_SCALE.value}",
    )
    require(
        ALPHA_MAX.value is None
        or (math.isfinite(ALPHA_MAX.value) and ALPHA_MAX.value > 0),
        f"--alpha_max must be > 0, got {ALPHA_MAX.value}",
    )
    require(
        WEIGHTS.value is None or os.path.isfile(WEIGHTS.value),
        f"--weights {WEIGHTS.value!r} is not a file; give a (C, D) .npy",
    )


def load_weights(path: str, shape: tuple[int, ...]) -> np.ndarray:
    """The ``(C, D)`` float32 array in ``path``; one-line errors otherwise."""
    try:
        W = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise LinoptError(f"cannot read --weights {path!r} as .npy ({e})") from None
    common.require(
        isinstance(W, np.ndarray), f"--weights {path!r} is not a single .npy array"
    )
    common.require(
        W.shape == shape,
        f"--weights {path!r} has shape {W.shape}; "
        f"this data set needs {shape} (classes, features + bias)",
    )
    common.require(bool(np.all(np.isfinite(W))), f"--weights {path!r} has nan/inf")
    return W.astype(np.float32)


def toy_figure(path, alphas, toy: landscape.HingePieces, x, w):
    """The toy's total loss (thick) over ``w0`` and each clamped piece."""
    fig = Figure(figsize=(6.8, 4.4))
    ax = fig.subplots()
    for i in range(3):
        for j in range(3):
            if j != i:
                ax.plot(
                    alphas,
                    toy.pieces[:, i, j],
                    lw=1.2,
                    ls="--",
                    label=f"max(0, w{j}·x{i} - w{i}·x{i} + 1) / 3",
                )
    ax.plot(alphas, toy.total, color="black", lw=2.6, label="total loss L (sum)")
    ax.set(
        xlabel="w0 (the one weight varied)",
        ylabel="loss",
        title=f"Toy SVM loss as clamped linear pieces: x = {tuple(x)}, y = (0, 1, 2), "
        f"w1 = {w[1]:g}, w2 = {w[2]:g}",
    )
    ax.legend(fontsize=7.5)
    ax.grid(alpha=0.3)
    plots.save_figure(fig, path)


def centre_and_directions(ds, centre_key, direction_key):
    """The centre ``W`` (random or ``--weights``), its description, directions."""
    shape = (ds.num_classes, ds.dim)
    if WEIGHTS.value is None:
        W = INIT_SCALE.value * jax.random.normal(centre_key, shape, jnp.float32)
        centre = f"{INIT_SCALE.value:g} * randn{shape}, seed {common.SEED.value}"
    else:
        W = jnp.asarray(load_weights(WEIGHTS.value, shape))
        centre = f"--weights {WEIGHTS.value}"
    directions = landscape.random_directions(
        direction_key,
        W,
        2,
        scale=DIRECTION_SCALE.value,
        orthogonalize=ORTHOGONALIZE.value,
    )
    norms = np.linalg.norm(np.asarray(directions), axis=(1, 2))
    common.require(
        bool(np.all(norms > 0)),
        f"--direction_scale={DIRECTION_SCALE.value} gives a zero direction for "
        "this W (a zero W or row); use --direction_scale=none",
    )
    return W, centre, directions


def main(argv):
    del argv
    check_flags()
    ds = common.load_data()
    num_train = len(ds.y_train)
    common.require(
        EXAMPLE.value < num_train,
        f"--example must be below the {num_train} training examples, "
        f"got {EXAMPLE.value}",
    )
    common.require(
        NUM_AVERAGE.value <= num_train,
        f"--num_average must be at most the {num_train} training examples, "
        f"got {NUM_AVERAGE.value}",
    )
    centre_key, direction_key, example_key = jax.random.split(
        jax.random.key(common.SEED.value), 3
    )
    W, centre, directions = centre_and_directions(ds, centre_key, direction_key)
    workdir = common.start_run("landscape")
    start = time.perf_counter()

    X, y = jnp.asarray(ds.X_train), jnp.asarray(ds.y_train)
    if ALPHA_MAX.value is None:
        alpha_max = SCORE_SPAN / float(landscape.score_scale(X, directions[0]))
    else:
        alpha_max = ALPHA_MAX.value
    reg = REG_PRESETS[common.DATASET.value] if REG.value is None else REG.value
    average = np.sort(
        jax.random.choice(example_key, num_train, (NUM_AVERAGE.value,), replace=False)
    )
    one = [EXAMPLE.value]
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
    loss_fn = losses.get(LOSS.value)
    line = np.linspace(-alpha_max, alpha_max, LINE_POINTS.value, dtype=np.float32)
    grid = np.linspace(-alpha_max, alpha_max, GRID_SIZE.value, dtype=np.float32)
    arrays = {"alphas_1d": line, "alphas_2d": grid}
    for name, (_, Xs, ys) in sets.items():
        for suffix, r in (("", 0.0), ("_reg", reg)):
            arrays[f"line_{name}{suffix}"] = landscape.slice_1d(
                loss_fn, W, directions[0], line, Xs, ys, r
            )
            arrays[f"grid_{name}{suffix}"] = landscape.slice_2d(
                loss_fn, W, directions, grid, grid, Xs, ys, r
            )
    centre_loss = float(jax.jit(loss_fn)(W, X, y))
    toy_W, toy_direction, toy_X, toy_y = landscape.lecture_toy()
    # Rounded: the toy's values are short decimals stored in float32.
    toy_x = [round(float(v), 6) for v in np.asarray(toy_X).ravel()]
    toy_w = [round(float(v), 6) for v in np.asarray(toy_W).ravel()]
    # The toy's w0 range: its kinks (for the lecture's values) and 1.5 beyond.
    toy_alphas = np.linspace(-3.8, 2.3, 245, dtype=np.float32)
    toy = jax.device_get(
        landscape.hinge_pieces(toy_W, toy_direction, toy_alphas, toy_X, toy_y)
    )
    arrays = {k: np.asarray(v) for k, v in arrays.items()}  # waits for the device
    wall = time.perf_counter() - start

    panels = write_figures(workdir, arrays, sets, reg, alpha_max)
    toy_figure(workdir / "toy_pieces.png", toy_alphas + toy_w[0], toy, toy_x, toy_w)
    arrays.update(
        toy_w0=toy_alphas + toy_w[0], toy_pieces=toy.pieces, toy_total=toy.total
    )
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    runs.atomic_write_bytes(workdir / "landscape.npz", buf.getvalue())
    kinks = np.sort(toy.kinks[np.isfinite(toy.kinks)]) + toy_w[0]
    runs.write_json(
        workdir / "summary.json",
        {
            "status": "completed",
            "dataset": common.DATASET.value,
            "loss": LOSS.value,
            "reg": reg,
            "centre": centre,
            "centre_loss": centre_loss,
            "direction_scale": DIRECTION_SCALE.value,
            "orthogonalize": ORTHOGONALIZE.value,
            "direction_norms": np.linalg.norm(np.asarray(directions), axis=(1, 2)),
            "alpha_range": [-alpha_max, alpha_max],
            "beta_range": [-alpha_max, alpha_max],
            "alpha_rule": "--alpha_max"
            if ALPHA_MAX.value
            else f"{SCORE_SPAN:g} / RMS of X_train @ W1.T (scores move "
            f"{SCORE_SPAN:g} margins at the edge)",
            "line_points": LINE_POINTS.value,
            "grid_size": GRID_SIZE.value,
            "examples": {
                "example": EXAMPLE.value,
                "average": average,
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
                "w0_range": [
                    round(float(a) + toy_w[0], 6) for a in toy_alphas[[0, -1]]
                ],
                "kinks_w0": [round(float(k), 6) for k in kinks],
                "min_loss": float(toy.total.min()),
            },
            "wall_time_s": wall,
        },
    )
    print(
        f"{LOSS.value} loss slices on {common.DATASET.value} around {centre} "
        f"(loss {centre_loss:.4f}), a, b in +-{alpha_max:.4g}, reg {reg:g}:"
    )
    for key, panel in panels.items():
        print(f"  {key:<16} min {panel['loss_min']:<10.4f} max {panel['loss_max']:.4f}")
    print(f"files in {workdir}")


def write_figures(workdir, arrays, sets, reg, alpha_max) -> dict:
    """The 1-D line plots and 2-D heatmaps; returns each panel's loss range."""
    panels = {}
    name = LOSS.value.upper() if LOSS.value == "svm" else LOSS.value
    for suffix, r in (("", 0.0), ("_reg", reg)):
        reg_text = "no reg" if r == 0 else f"with reg * sum(W**2), reg = {r:g}"
        curves = {
            label: (arrays["alphas_1d"], arrays[f"line_{key}{suffix}"])
            for key, (label, _, _) in sets.items()
        }
        plots.line_plot(
            workdir / f"landscape_1d{suffix}.png",
            curves,
            xlabel="a (step along the random direction W1)",
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
                xlabel="a (along W1)",
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
    common.run(main)
