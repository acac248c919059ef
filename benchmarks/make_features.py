"""A feature file with a known Bayes accuracy, for ``--dataset=features.npz``.

    python -m benchmarks.make_features /tmp/features.npz            # 100,000 x 2,048
    python -m benchmarks.make_features /tmp/f.npz --rows=1000 --dim=64 --npy

Classes are equally likely, each a Gaussian ``N(a q_c, I)`` with the ``q_c``
orthonormal (random directions in ``R^D``). The Bayes rule picks the largest
``x . q_c``, a linear classifier, and it is right when ``z_y + a > z_c`` for
every other class, ``z`` standard normal, so its accuracy is exactly

    P = integral phi(z) Phi(z + a)^(C - 1) dz,

computed here by quadrature (``--separation`` is ``a``). A linear classifier
trained on the file can approach ``P`` but not beat it. ``--npy`` also writes
the same arrays as a folder of ``.npy`` files beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import integrate, stats


def bayes_accuracy(separation: float, num_classes: int) -> float:
    def integrand(z):
        return stats.norm.pdf(z) * stats.norm.cdf(z + separation) ** (num_classes - 1)

    value, _ = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-12)
    return float(value)


def make(rows: int, dim: int, num_classes: int, separation: float, seed: int):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, num_classes)))  # orthonormal
    y = rng.integers(0, num_classes, rows)
    X = np.empty((rows, dim), np.float32)
    for start in range(0, rows, 8192):  # in blocks: no float64 copy of it all
        stop = min(rows, start + 8192)
        block = rng.standard_normal((stop - start, dim))
        X[start:stop] = block + separation * q[:, y[start:stop]].T
    return X, y.astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--separation", type=float, default=2.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--npy", action="store_true")
    args = parser.parse_args()
    X, y = make(args.rows, args.dim, args.classes, args.separation, args.seed)
    path = Path(args.path)
    np.savez(path, X_train=X, y_train=y)
    if args.npy:
        folder = path.with_suffix("")
        folder.mkdir(exist_ok=True)
        np.save(folder / "X_train.npy", X)
        np.save(folder / "y_train.npy", y)
    info = {
        "rows": args.rows,
        "dim": args.dim,
        "classes": args.classes,
        "separation": args.separation,
        "bayes_accuracy": bayes_accuracy(args.separation, args.classes),
        "bytes": path.stat().st_size,
    }
    path.with_suffix(".json").write_text(json.dumps(info) + "\n")  # beside it
    print(json.dumps(info))


if __name__ == "__main__":
    main()
