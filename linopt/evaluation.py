"""Where a trained classifier goes wrong, and scikit-learn's on the same split.

:func:`confusion` counts test predictions by (true class, predicted class)
(``np.bincount``: importing scikit-learn for it would cost a run 1.8 s) and
gives each class's accuracy (its recall); :func:`baselines` fits
scikit-learn's ``LogisticRegression`` and ``LinearSVC`` on the same
preprocessed training split, so their accuracy and time sit beside
linopt's in ``summary.json``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from jax.typing import ArrayLike

from linopt import losses
from linopt.data import Dataset


def predictions(params: ArrayLike, X: ArrayLike) -> np.ndarray:
    """The class of the highest score of each preprocessed row, ``(N,)``."""
    return np.asarray(np.argmax(np.asarray(losses.scores(params, X)), axis=1))


def confusion(params: ArrayLike, X: ArrayLike, y: ArrayLike, class_names) -> dict:
    """Counts ``[true, predicted]`` and each class's accuracy, JSON-ready.

    Args:
      params: ``(C, D)`` weights.
      X: ``(N, D)`` preprocessed rows; y: ``(N,)`` labels in ``0 .. C - 1``.
      class_names: ``C`` names, the matrix's row and column order.
    Returns:
      ``confusion_matrix`` (``C`` lists of ``C`` counts), ``per_class_accuracy``
      (name -> the fraction of that class predicted right; None for a class
      with no examples) and ``class_names``.
    """
    C = len(class_names)
    pairs = np.asarray(y, np.int64) * C + predictions(params, X)
    counts = np.bincount(pairs, minlength=C * C).reshape(C, C)
    totals = counts.sum(axis=1)
    per_class = {
        name: (float(counts[c, c] / totals[c]) if totals[c] else None)
        for c, name in enumerate(class_names)
    }
    return {
        "class_names": list(class_names),
        "confusion_matrix": counts.tolist(),
        "per_class_accuracy": per_class,
    }


def baselines(ds: Dataset, loss: str, seed: int = 0) -> dict:
    """scikit-learn's linear classifiers on ``ds``'s split, each timed.

    Both see the same preprocessed rows as linopt (the bias column included,
    so their own intercept is off) with their default strength ``C=1``:
    ``LogisticRegression`` (lbfgs, the softmax loss) and ``LinearSVC``
    (one-vs-rest squared hinge, not the Weston-Watkins SVM), listed with the one
    nearest ``loss`` first.

    Returns:
      name -> ``val_accuracy``, ``test_accuracy``, ``fit_time_s``,
      ``converged``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    models = {
        "LogisticRegression": LogisticRegression(fit_intercept=False, max_iter=1000),
        "LinearSVC": LinearSVC(fit_intercept=False, random_state=seed, max_iter=2000),
    }
    if loss == "svm":
        models = dict(reversed(list(models.items())))
    out = {}
    for name, model in models.items():
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(ds.X_train, ds.y_train)
        seconds = time.perf_counter() - start
        out[name] = {
            "val_accuracy": float(model.score(ds.X_val, ds.y_val)),
            "test_accuracy": float(model.score(ds.X_test, ds.y_test)),
            "fit_time_s": seconds,
            "converged": not any(
                issubclass(w.category, ConvergenceWarning) for w in caught
            ),
        }
    return out
