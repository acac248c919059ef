"""Your own data: arrays from a ``.npz`` file or a folder of ``.npy`` files.

The file (or folder) holds ``X_train`` ``(N, D)`` and ``y_train`` ``(N,)``
and optionally ``X_val``, ``y_val``, ``X_test``, ``y_test`` and
``class_names``. Splits it lacks are drawn from the training rows by the seed
(:data:`SPLIT_FRACTIONS`). Labels may be any integers: they are re-indexed
``0 .. C-1`` in sorted order and the original values kept as class names.

Nothing is unpickled (``allow_pickle=False``: an object array is refused,
never loaded). ``.npy`` files are memory-mapped, so a large feature file is
read once, into the preprocessed float32 copy. Every problem is one
:class:`linopt.errors.DataError` line that names the array and what to do.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from linopt.errors import DataError

NAMES = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test", "class_names")
SPLIT_FRACTIONS = (0.1, 0.2)  # validation and test, of the rows, when absent
_ROWS = 65536  # rows checked for non-finite values at a time


def is_path(dataset: str) -> bool:
    """Whether ``dataset`` names a file or folder of arrays, not a data set."""
    return dataset.endswith(".npz") or os.sep in dataset or Path(dataset).is_dir()


def _open(path: Path) -> dict:
    """name -> array (memory-mapped for ``.npy``), for the names present."""
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder; give a .npz or a folder of .npy"
        )
    try:
        if path.is_dir():
            return {
                n: np.load(path / f"{n}.npy", mmap_mode="r", allow_pickle=False)
                for n in NAMES
                if (path / f"{n}.npy").exists()
            }
        with np.load(path, allow_pickle=False) as f:  # a zip: read once each
            return {n: f[n] for n in NAMES if n in f.files}
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataError(
                f"{path}: holds an object (pickled) array, which could run code; "
                "save plain numeric arrays (np.savez with numbers and strings)"
            ) from None
        raise DataError(f"{path}: not a numpy file ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: unreadable or truncated ({e})") from None


def feature_scale(path) -> float:
    """RMS of the first 1,000 training rows after centering: which built-in
    data set's preset rows suit these features (:func:`linopt.presets.resolve`)."""
    a = _open(Path(path).expanduser())
    if "X_train" not in a:
        raise DataError(f"{path}: no X_train; it needs X_train and y_train")
    rows = np.asarray(a["X_train"][:1000], np.float64)
    return float(np.sqrt(np.mean(np.square(rows - rows.mean(0)))))


def _check_features(name: str, X: np.ndarray, dim: int | None) -> None:
    if X.ndim != 2 or (dim is not None and X.shape[1] != dim):
        want = f"(N, {dim})" if dim else "(N, D)"
        raise DataError(f"{name} has shape {X.shape}; it must be {want}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DataError(f"{name} holds {X.dtype} values; it must be numeric")
    for start in range(0, len(X), _ROWS):
        block = np.asarray(X[start : start + _ROWS])
        bad = ~np.isfinite(block) if np.issubdtype(block.dtype, np.inexact) else None
        if bad is not None and bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(
                f"{name} has {int(bad.sum())} non-finite value(s) in rows "
                f"{start}..{start + len(block) - 1}, the first at row "
                f"{start + row}, column {col}; remove or impute them"
            )


def _check_labels(name: str, y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{name} has shape {y.shape}; it must be ({n},), one a row")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or np.any(y != np.round(y)):
            raise DataError(f"{name} holds {y.dtype} values; labels must be integers")
    return y.astype(np.int64)


def _check_memory(path: Path, arrays: dict) -> None:
    """Refuse data that would not fit: the float32 copy of every split."""
    need = sum(
        a.shape[0] * (a.shape[1] + 1) * 4 for k, a in arrays.items() if k[0] == "X"
    )
    try:
        have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return
    if need > have:
        raise DataError(
            f"{path}: its float32 copy needs {need / 2**30:.1f} GiB but "
            f"{have / 2**30:.1f} GiB of memory is free; "
            "use fewer rows or a larger machine"
        )


def load_raw(path, *, seed: int = 0, fractions=SPLIT_FRACTIONS):
    """The splits of the arrays in ``path``, checked, labels re-indexed.

    Returns:
      ``(x_train, y_train, x_val, y_val, x_test, y_test, class_names)``; the
      ``x`` are the file's arrays (memory-mapped for ``.npy``) or row
      selections of them.
    """
    path = Path(path).expanduser()
    a = _open(path)
    for required in ("X_train", "y_train"):
        if required not in a:
            raise DataError(f"{path}: no {required}; it needs X_train and y_train")
    dim = None
    for split in ("train", "val", "test"):
        x, y = f"X_{split}", f"y_{split}"
        if (x in a) != (y in a):
            raise DataError(
                f"{path}: {x if x in a else y} without {y if x in a else x}"
            )
        if x in a:
            _check_features(x, a[x], dim)
            dim = a[x].shape[1]
            a[y] = _check_labels(y, a[y], len(a[x]))
    _check_memory(path, a)
    splits = zip(("val", "test"), fractions, strict=True)
    missing = tuple(f if f"X_{s}" not in a else 0.0 for s, f in splits)
    if any(missing):
        n = len(a["y_train"])
        order = np.random.default_rng(seed).permutation(n)
        counts = [round(f * n) for f in missing]
        if n - sum(counts) < 1:
            raise DataError(
                f"{path}: {n} training rows are too few to split off "
                "validation and test"
            )
        cuts = np.cumsum(counts)
        for split, idx in zip(("val", "test"), np.split(order, cuts)[:2], strict=True):
            if f"X_{split}" not in a:
                idx = np.sort(idx)
                a[f"X_{split}"], a[f"y_{split}"] = a["X_train"][idx], a["y_train"][idx]
        keep = np.sort(order[cuts[-1] :])
        a["X_train"], a["y_train"] = a["X_train"][keep], a["y_train"][keep]
    labels = np.unique(np.concatenate([a["y_train"], a["y_val"], a["y_test"]]))
    if len(labels) < 2:
        raise DataError(
            f"{path}: the labels hold one class only; a classifier needs two"
        )
    names = [str(v) for v in labels]
    if "class_names" in a:
        given = [str(v) for v in np.asarray(a["class_names"]).reshape(-1)]
        if len(given) != len(labels) or not np.array_equal(
            labels, np.arange(len(labels))
        ):
            raise DataError(
                f"{path}: class_names has {len(given)} names for labels "
                f"{labels.min()}..{labels.max()}; give one a class, labels 0..C-1"
            )
        names = given
    for k in ("train", "val", "test"):
        a[f"y_{k}"] = np.searchsorted(labels, a[f"y_{k}"]).astype(np.int32)
    return (
        a["X_train"],
        a["y_train"],
        a["X_val"],
        a["y_val"],
        a["X_test"],
        a["y_test"],
        names,
    )
