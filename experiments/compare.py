"""The comparison that ``--strategy=all`` writes: a table and two plots."""

from __future__ import annotations

import numpy as np

from linopt import plots, runs


def write(workdir, results: dict, dataset: str) -> dict:
    """``comparison.csv``, ``comparison.md``, ``summary.json``, loss against
    loss evaluations and against wall time (each strategy's per-step loss
    history). Returns the summary."""
    names = list(results)
    keys = (
        "status",
        "num_loss_evals",
        "num_grad_evals",
        "num_examples_evaluated",
        "train_loss",
        "val_accuracy",
        "test_accuracy",
        "wall_time_s",
    )
    runs.write_csv(
        workdir / "comparison.csv",
        {"strategy": names, **{k: [results[n][k] for n in names] for k in keys}},
    )
    lines = ["| strategy | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for n in names:
        cells = [
            f"{v:.4g}" if isinstance(v, float) else str(v)
            for v in (results[n][k] for k in keys)
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    runs.atomic_write_text(workdir / "comparison.md", "\n".join(lines) + "\n")
    statuses = {results[n]["status"] for n in names}
    summary = {
        "status": "interrupted" if "interrupted" in statuses else "completed",
        "dataset": dataset,
        "strategies": {n: {k: results[n][k] for k in keys} for n in names},
    }
    runs.write_json(workdir / "summary.json", summary)

    by_evals, by_time = {}, {}
    for n in names:
        losses = np.asarray(results[n]["losses"], dtype=np.float64)
        if n in ("random_search", "random_local_search"):
            losses = np.minimum.accumulate(losses)  # best so far
        (t, at_t), first = _by_time(results[n], losses)
        if n in ("minibatch", "sgd") and len(losses) > SMOOTH:
            # One batch's loss is noisy (SGD's: one example's): a moving mean.
            t, at_t = _mean(t), _mean(at_t)
        label = f"{n} (first chunk {first:.2g} s)"
        by_time[label] = (t, at_t)
        # The common yardstick: the training loss (up to 10,000 rows), at intervals.
        along = results[n]["along_run"]
        per_unit = results[n]["num_examples_evaluated"] / max(
            results[n]["num_steps"], 1
        )
        by_evals[n] = (np.asarray(along["step"]) * per_unit, along["train_loss"])
    loss_name = (
        f"loss + reg of each step's own examples\n(searches: best so far; "
        f"minibatch, sgd: mean of {SMOOTH} steps)"
    )
    plots.line_plot(
        workdir / "loss_vs_evals.png",
        by_evals,
        xlabel="examples evaluated (rows of X a loss or gradient touched)",
        ylabel="training loss + reg (first 10,000 rows), along each run",
        logx=True,
        logy=True,
        marker="o",
        title=f"strategies on {dataset}: a batch of 200 counts 200",
    )
    plots.line_plot(
        workdir / "loss_vs_time.png",
        by_time,
        xlabel="wall time after the first chunk, compile included there (s)",
        ylabel=loss_name,
        logy=True,
        title=f"strategies on {dataset}: measured per chunk, compile apart",
    )
    return summary


SMOOTH = 50


def _mean(v):
    return np.convolve(v, np.ones(SMOOTH) / SMOOTH, mode="valid")


def _by_time(result: dict, losses: np.ndarray):
    """``((seconds, losses), first_chunk_s)``: each loss at its measured time.

    Times are measured at each chunk's end and interpolated within a chunk
    (one compiled program, the same work each step); the first chunk, which
    holds the compile, is left out and its length returned.
    """
    ends = np.asarray(result.get("chunk_ends") or [(0, 0.0)], dtype=np.float64)
    steps, seconds = ends[:, 0], ends[:, 1] - ends[0, 1]
    per_step = len(losses) / max(steps[-1], 1)  # losses a step (searches: many)
    index = np.arange(1, len(losses) + 1) / per_step  # the step of each loss
    keep = index > steps[0]
    t = np.interp(index[keep], steps, seconds)
    return (t, losses[keep]), float(ends[0, 1])
