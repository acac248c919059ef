"""Figures saved as PNG files, drawn on ``matplotlib.figure.Figure`` objects.

No pyplot and no backend switch: nothing here needs a screen, and importing
this module leaves a notebook's inline backend alone. Every function takes the
output path first and returns it. Inside
:func:`linopt.figure_thread.in_background` they draw on one worker thread
while the caller goes on.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np

from linopt.figure_thread import figure_writer
from linopt.runs import atomic_write_bytes


def _figure(**kwargs):
    """A matplotlib Figure (no pyplot); matplotlib is imported on the first
    figure, after a run's results are on disk, not when a run starts."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(fig, path):
    """Write ``fig`` as a PNG atomically; returns ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


@figure_writer
def line_plot(
    path,
    curves: Mapping[str, tuple[Sequence, Sequence]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    logy: bool = False,
    marker: str | None = None,
    hlines: Mapping[str, float] | None = None,
    vlines: Mapping[str, float] | None = None,
    legend_outside: bool = False,
    smooth: Sequence[str] = (),
):
    """One line per ``name -> (x, y)``; ``hlines`` / ``vlines``: label -> a
    reference value drawn across (a threshold, a default). ``legend_outside``:
    the legend right of the axes, where it hides no curve. ``smooth``: names
    of curves drawn without ``marker`` (a model, beside measured points)."""
    fig = _figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for name, (x, y) in curves.items():
        style = {"marker": None if name in smooth else marker, "lw": 1.4}
        ax.plot(np.asarray(x), np.asarray(y), label=name, **style)
    for label, value in (hlines or {}).items():  # labelled on the line itself
        ax.axhline(value, color="0.4", ls="dotted", lw=1.2)
        ax.text(0.99, value, label, transform=ax.get_yaxis_transform(), ha="right",
                va="bottom", fontsize=7, color="0.2", zorder=5,
                bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})  # fmt: skip
    styles = ("dashdot", "dotted", "dashed", (0, (5, 1, 1, 1, 1, 1)))
    for i, (label, value) in enumerate((vlines or {}).items()):  # told apart
        ax.axvline(value, color=f"{0.55 * i / max(1, len(vlines) - 1):.2f}",
                   ls=styles[i % len(styles)], lw=1.2, label=label)  # fmt: skip
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if len(curves) + len(vlines or {}) > 1:
        where = {"loc": "upper left", "bbox_to_anchor": (1.02, 1)}
        ax.legend(fontsize=8, **(where if legend_outside else {}))
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


MAX_POINTS = 4_000  # drawn of a loss curve (a figure is ~700 pixels wide)


@figure_writer
def loss_curve(
    path,
    losses,
    *,
    steps=None,
    title: str = "training loss",
    smooth: int = 0,
    xlabel: str = "step",
    ylabel: str = "loss",
):
    """Per-step loss, with a moving average over ``smooth`` points when > 1.

    ``steps``: the x of each loss (default 1, 2, ...; a long run keeps every
    k-th step only).
    """
    losses = np.asarray(losses, dtype=np.float64)
    steps = np.arange(1, len(losses) + 1) if steps is None else np.asarray(steps)
    curves = {"loss": (steps, losses)}
    if smooth > 1 and len(losses) > smooth:
        avg = np.convolve(losses, np.ones(smooth) / smooth, mode="valid")
        curves[f"mean of {smooth}"] = (steps[smooth - 1 :], avg)
    finite = losses[np.isfinite(losses)]
    # A log axis once the loss spans decades, so the late steps stay visible.
    logy = finite.size > 0 and finite.min() > 0 and finite.max() > 20 * finite.min()
    # A figure shows a few thousand points across; drawing a million takes
    # seconds (a Ctrl-C'd long run waits on it), so draw every k-th.
    k = max(1, -(-len(losses) // MAX_POINTS))
    curves = {name: (x[::k], y[::k]) for name, (x, y) in curves.items()}
    return line_plot(
        path, curves, xlabel=xlabel, ylabel=ylabel, title=title, logy=bool(logy)
    )


@figure_writer
def heatmap(
    path,
    values,
    *,
    x,
    y,
    xlabel: str,
    ylabel: str,
    title: str = "",
    colorbar_label: str = "",
    annotate: bool = False,
    fmt: str = "{:.3f}",
    vmin: float | None = None,
    vmax: float | None = None,
    best: str | None = None,
):
    """``values[i, j]`` at ``(x[j], y[i])``; blue is low and red is high.

    ``annotate``: a grid of cells (a sweep), each printing its value, on a
    sequential map from ``vmin`` to ``vmax`` (give the range that matters,
    e.g. chance to 1 for accuracy, so a small spread looks small);
    ``best="max"`` or ``"min"`` outlines that cell.
    """
    from matplotlib import patches

    values = np.asarray(values, dtype=np.float64)
    fig = _figure(figsize=(6.0, 5.0))
    ax = fig.subplots()
    categorical = annotate
    if categorical:
        im = ax.imshow(values, cmap="viridis", origin="lower", aspect="auto",
                       vmin=vmin, vmax=vmax)  # fmt: skip
        if best is not None and np.isfinite(values).any():
            pick = np.nanargmax if best == "max" else np.nanargmin
            i, j = np.unravel_index(pick(values), values.shape)
            ties = int(np.sum(values == values[i, j]))
            label = f"best ({best})" + (f", first of {ties} tied" if ties > 1 else "")
            box = patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red",
                                    lw=2.5, label=label)  # fmt: skip
            ax.add_patch(box)
            ax.legend(loc="upper left", bbox_to_anchor=(0, -0.2), fontsize=8)
        ax.set_xticks(range(len(x)), [f"{v:g}" for v in x], rotation=45)
        ax.set_yticks(range(len(y)), [f"{v:g}" for v in y])
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                light = im.norm(values[i, j]) > 0.5  # viridis: yellow at the top
                ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center",
                        fontsize=8, color="black" if light else "white")  # fmt: skip
    else:
        extent = (float(x[0]), float(x[-1]), float(y[0]), float(y[-1]))
        im = ax.imshow(values, cmap="jet", origin="lower", aspect="auto", extent=extent)
    fig.colorbar(im, ax=ax, label=colorbar_label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return save_figure(fig, path)


@figure_writer
def histogram(
    path, values, *, xlabel: str, title: str = "", log_x: bool = True, bins: int = 60
):
    """Histogram of positive values, on log-spaced bins when ``log_x``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    fig = _figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    if log_x:
        positive = values[values > 0]
        lo = positive.min() if positive.size else 1e-16
        hi = max(positive.max() if positive.size else 1.0, lo * 10)
        edges = np.logspace(np.log10(lo), np.log10(hi), bins)
        ax.hist(np.clip(values, lo, None), bins=edges)
        ax.set_xscale("log")
    else:
        ax.hist(values, bins=bins)
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    return save_figure(fig, path)


@figure_writer
def class_templates(path, W, image_shape, class_names, *, title: str = ""):
    """Each class's weights (the bias column dropped, if ``W`` has one: a column
    more than ``image_shape`` holds) drawn as an image.

    One scale for every class, symmetric about 0, so a template's contrast
    compares across classes and the sign is readable: grey images (``(H, W)``)
    on a diverging map with a colour bar (red adds to the class's score, blue
    takes away); colour planes (``(3, H, W)``, CIFAR-10) as RGB with 0 at
    mid-grey and +-max|W| at the ends of each channel.
    """
    W = np.asarray(W, dtype=np.float64)
    W = W[:, : int(np.prod(image_shape))]  # without the bias column, if any
    n = W.shape[0]
    cols = min(n, 10)
    rows = -(-n // cols)
    limit = max(float(np.abs(W).max()), 1e-12)
    fig = _figure(figsize=(1.3 * cols + 1.0, 1.5 * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    im = None
    for c in range(n):
        img = W[c].reshape(image_shape)
        ax = axes.ravel()[c]
        if img.ndim == 3:
            rgb = 0.5 + 0.5 * img.transpose(1, 2, 0) / limit  # 0 -> mid-grey
            ax.imshow(np.clip(rgb, 0, 1), interpolation="nearest")
        else:
            im = ax.imshow(img, cmap="RdBu_r", vmin=-limit, vmax=limit,
                           interpolation="nearest")  # fmt: skip
        ax.set_title(class_names[c], fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), label="weight (shared scale)")
    else:
        fig.text(0.5, -0.02, f"RGB: mid-grey is 0, each channel's ends ±{limit:.2g} "
                 "(one scale for all classes)", ha="center", fontsize=8)  # fmt: skip
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


@figure_writer
def confusion_matrix(path, counts, class_names, *, title: str = ""):
    """Test examples by true (rows) and predicted (columns) class.

    Colour is the fraction of each true class (a row sums to 1, so a small
    class shows as plainly as a large one) on a sequential scale from 0;
    each cell prints its count.
    """
    counts = np.asarray(counts, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    fractions = counts / np.maximum(totals, 1)
    n = len(class_names)
    size = max(4.5, 0.55 * n + 2)
    fig = _figure(figsize=(size + 1, size))
    ax = fig.subplots()
    im = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            dark = fractions[i, j] > 0.6
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")  # fmt: skip
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    right = np.diag(fractions)  # each class's accuracy, beside its name
    ax.set_yticks(
        range(n), [f"{c} ({r:.0%})" for c, r in zip(class_names, right, strict=True)]
    )
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set(xlabel="predicted class", ylabel="true class (its accuracy)")
    ax.set_title(f"{title}\n(test accuracy {accuracy:.3f}; cells: counts)".strip())
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    return save_figure(fig, path)


@figure_writer
def search_curve(
    path,
    losses,
    *,
    chance: float,
    steps=None,
    title: str = "",
    xlabel: str = "try",
    ylabel: str = "loss on the training set",
    smooth: int = 0,
    points=None,
):
    """A search's losses: each try (points), the best so far, and chance.

    ``points``: the losses drawn as dots (default ``losses``; random local
    search: each proposal's, while ``losses`` is the loss it kept).

    ``chance`` is the loss of ``W = 0`` (every score equal: ``C - 1`` for the
    SVM, ``log C`` for softmax), the line a search has to get below.
    ``smooth`` is accepted for :func:`loss_curve`'s signature and unused.
    """
    del smooth
    losses = np.asarray(losses, dtype=np.float64)
    steps = np.arange(1, len(losses) + 1) if steps is None else np.asarray(steps)
    fig = _figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    points = losses if points is None else np.asarray(points, dtype=np.float64)
    ax.plot(steps, points, ".", ms=2, alpha=0.35, color="C0", label=f"each {xlabel}")
    best = np.fmin.accumulate(np.where(np.isfinite(losses), losses, np.inf))
    ax.plot(steps, best, color="C3", lw=1.8, label="best so far")
    ax.axhline(
        chance, color="k", ls="dashed", lw=1, label=f"chance, W = 0 ({chance:.3g})"
    )
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


@figure_writer
def measured_and_predicted(
    path,
    measured: Mapping[str, tuple[Sequence, Sequence]],
    predicted: Mapping[str, tuple[Sequence, Sequence]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = True,
    logy: bool = True,
    hlines: Mapping[str, float] | None = None,
):
    """Measured curves (solid, markers) and predicted ones (dashed, no
    marker), one legend right of the axes; ``hlines``: label -> a reference
    value drawn dotted across, labelled on the line."""
    fig = _figure(figsize=(8.4, 4.6))
    ax = fig.subplots()
    for name, (x, y) in measured.items():
        ax.plot(np.asarray(x), np.asarray(y), marker="o", ms=3, lw=1.4, label=name)
    for name, (x, y) in predicted.items():
        ax.plot(np.asarray(x), np.asarray(y), ls="dashed", lw=2, color="k", label=name)
    for label, value in (hlines or {}).items():
        ax.axhline(value, color="0.4", ls="dotted", lw=1.2)
        ax.text(0.01, value, label, transform=ax.get_yaxis_transform(), ha="left",
                va="bottom", fontsize=7, color="0.2")  # fmt: skip
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
