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
        if n == "random_search":
            losses = np.minimum.accumulate(losses)  # best so far
        evals = np.linspace(0, results[n]["num_loss_evals"], len(losses) + 1)[1:]
        wall = np.linspace(0, results[n]["wall_time_s"], len(losses) + 1)[1:]
        by_evals[n] = (evals, losses)
        by_time[n] = (wall, losses)
    plots.line_plot(
        workdir / "loss_vs_evals.png",
        by_evals,
        xlabel="loss evaluations",
        ylabel="loss (random search: best so far)",
        logx=True,
        logy=True,
        title=f"strategies on {dataset}",
    )
    plots.line_plot(
        workdir / "loss_vs_time.png",
        by_time,
        xlabel="wall time (s)",
        ylabel="loss (random search: best so far)",
        logy=True,
        title=f"strategies on {dataset}",
    )
    return summary
