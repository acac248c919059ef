"""Suboptimality in ``--strategy=all``: L* by float64 L-BFGS lies below every
strategy's training loss, gradient descent's L - L* shrinks no slower than
the condition number's bound, and the figure and table carry it."""

import json

import numpy as np
import pytest

from experiments import train
from linopt import configs, presets, strategies, suboptimality


@pytest.fixture(scope="module")
def softmax_all(tmp_path_factory):
    out = tmp_path_factory.mktemp("sub") / "all"
    config = configs.TrainConfig(strategy="all", loss="softmax", num_steps=400)
    summary = train.run(config, out)
    return out, summary


def test_the_optimum_lies_below_every_final_training_loss(softmax_all):
    out, summary = softmax_all
    assert summary == json.loads((out / "summary.json").read_text())
    along = summary["suboptimality_along_run"]
    assert set(along) == set(strategies.STRATEGIES)
    for name, s in summary["strategies"].items():
        L_star = along[name]["L_star"]
        assert L_star <= s["train_loss"] + 1e-6, name
        assert s["suboptimality"] >= -1e-6, name  # float64 at the final weights
        assert s["suboptimality"] == pytest.approx(s["train_loss"] - L_star, abs=1e-5)
    certified = {(o["loss"], o["reg"]): o for o in summary["optima"]}
    assert certified[("softmax", 1e-3)]["certified"]  # reg > 0: a proven minimum
    assert certified[("softmax", 0.0)]["best_found_only"]  # the searches' no reg


def test_gradient_descent_gets_closer_at_most_at_the_predicted_rate(softmax_all):
    _, summary = softmax_all
    gap = np.asarray(summary["suboptimality_along_run"]["gradient_descent"]["gap"])
    assert np.all(gap >= 0) and gap[-1] < 0.5 * gap[0]
    assert np.all(np.diff(gap) <= 1e-6)  # full batch, small steps: every point
    rate = summary["gradient_descent_rate"]
    assert 0 < rate["predicted_rate"] < 1
    assert rate["lambda_min_lanczos"] >= rate["lambda_min_floor"] * (1 - 1e-3)
    # float32 losses are off by at most delta (linear_rate): the measured rate's
    # tolerance, tiny beside the margin here.
    assert 0 < rate["tolerance"] < 1e-5
    assert rate["measured_rate"] <= rate["predicted_rate"] + rate["tolerance"]


def test_the_figure_and_the_table_show_it(softmax_all):
    out, _ = softmax_all
    assert (out / "suboptimality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, *rows = (out / "comparison.csv").read_text().splitlines()
    assert header.endswith(",suboptimality") and len(rows) == len(strategies.STRATEGIES)
    assert (
        (out / "comparison.md").read_text().splitlines()[0].endswith(" suboptimality |")
    )


def test_the_measured_rate_of_a_quadratic_is_the_predicted_one():
    """Gradient descent on ``w^T diag(lam) w / 2``: the slowest mode's
    ``(1 - lr lam_min)**2`` is what the last half measures."""
    lam, lr = np.array([0.05, 1.0, 3.0]), 0.5
    w = np.ones(3)
    values = []
    for _ in range(100):
        values.append(0.5 * np.sum(lam * w**2))
        w = w - lr * lam * w
    eig = suboptimality.Eigenvalues(3.0, 0.0, 0.05, 0.05)
    rate = suboptimality.linear_rate(
        np.float32(values), np.arange(1, 101), np.full(100, lr), 0.0, eig,
        delta=1e-7 * values[0],
    )  # fmt: skip
    assert rate.predicted == pytest.approx(max(abs(1 - lr * 0.05), 0.5) ** 2)
    assert rate.measured == pytest.approx(rate.predicted, rel=1e-4)


def test_no_rate_is_predicted_for_the_svm():
    config, _ = presets.resolve(
        configs.TrainConfig(strategy="gradient_descent", loss="svm")
    )
    d = suboptimality.descent_history(config, [1.0], [1], "completed", 10)
    assert "not smooth" in d.not_applicable


def test_a_best_found_optimum_is_the_lowest_loss_seen_anywhere():
    """For the SVM, L* is only the best found: where a run goes lower than
    L-BFGS did (stopped early here by a loose tol), its lowest loss is L*, so
    no L - L* is negative."""
    import jax

    from linopt import data, lbfgs

    ds = data.load("digits")
    X, y = ds.X_train[:300], ds.y_train[:300]
    good = lbfgs.optimum("svm", X, y, 1e-3, max_steps=1000, num_classes=10).params
    kept = np.stack([np.zeros_like(good), np.asarray(good)])
    run = suboptimality.Run("svm", 1e-3, np.array([0, 1]), kept, None)
    report, curves = suboptimality.analyze(
        {"long": run}, X, y, num_classes=10, key=jax.random.key(0), tol=0.5
    )
    (opt,) = report["optima"]
    assert opt["best_found_only"] and "went lower" in opt["note"]
    assert opt["value"] == pytest.approx(
        suboptimality.objective("svm", 1e-3, kept[1:], X, y)[0], rel=1e-12
    )
    assert report["strategies"]["long"]["suboptimality"] == 0.0
    assert np.all(curves["long"][1] >= 0)
