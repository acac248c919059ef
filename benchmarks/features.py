"""Your own features: linopt's exact optimum against scikit-learn and Bayes.

    python -m benchmarks.make_features /tmp/features.npz      # Bayes accuracy known
    python -m benchmarks.features /tmp/features.npz --regs=1e-3,1e-2,1e-1

Loads the file as ``--dataset=PATH`` does (:mod:`linopt.arrays`: its splits,
or seeded ones; the training mean subtracted, a bias column), then for each
reg finds the optimum of ``mean softmax + reg * sum(W**2)`` with linopt's
L-BFGS (float32, :func:`linopt.lbfgs.optimum`) and picks the reg of best
validation accuracy. scikit-learn's ``LogisticRegression(lbfgs, tol=1e-6,
C=1 / (2 N reg), fit_intercept=False)`` then solves the same objective on
the same rows (float64). Prints both test accuracies, their wall times, and
the Bayes accuracy that ``make_features`` wrote beside the file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from linopt import data, lbfgs, losses


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--regs", default="1e-4,1e-3,1e-2,1e-1")
    parser.add_argument("--max_steps", type=int, default=500)
    args = parser.parse_args(argv)
    ds = data.load(args.path)
    X, y = jax.device_put((ds.X_train, ds.y_train))
    rows = []
    for reg in (float(r) for r in args.regs.split(",")):
        start = time.perf_counter()
        opt = lbfgs.optimum(
            "softmax", X, y, reg, max_steps=args.max_steps, num_classes=ds.num_classes
        )
        W = np.asarray(opt.params)
        rows.append(
            {
                "reg": reg,
                "wall_s": time.perf_counter() - start,
                "steps": int(opt.num_steps),
                "val": float(losses.accuracy(W, ds.X_val, ds.y_val)),
                "test": float(losses.accuracy(W, ds.X_test, ds.y_test)),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: r["val"])
    from sklearn.linear_model import LogisticRegression

    n = len(ds.y_train)
    model = LogisticRegression(
        C=1 / (2 * n * best["reg"]), tol=1e-6, max_iter=args.max_steps,
        fit_intercept=False,
    )  # fmt: skip
    start = time.perf_counter()
    model.fit(ds.X_train.astype(np.float64), ds.y_train)
    sklearn_s = time.perf_counter() - start
    sklearn_test = float(model.score(ds.X_test, ds.y_test))
    meta = Path(args.path).with_suffix(".json")
    bayes = (
        json.loads(meta.read_text()).get("bayes_accuracy") if meta.exists() else None
    )
    print(
        f"chosen reg {best['reg']:g} (validation {best['val']:.4f}): linopt L-BFGS "
        f"test {best['test']:.4f} in {best['wall_s']:.1f} s; scikit-learn test "
        f"{sklearn_test:.4f} in {sklearn_s:.1f} s ({model.n_iter_[0]} iterations); "
        f"Bayes {bayes}"
    )


if __name__ == "__main__":
    main()
