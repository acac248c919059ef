"""Data sets as numpy arrays, split and preprocessed the same way for all.

``load(name, ...)`` returns a :class:`Dataset`: train / validation / test
arrays ``X: (N, D) float32`` (the training split's mean image subtracted and a
constant 1 appended last, the bias trick) and ``y: (N,) int32``, plus class
names and the image shape for drawing weights as templates.

* ``"digits"``: scikit-learn's bundled 8x8 digits (1,797 images); no network.
* ``"cifar10"``: the official files, see :mod:`linopt.cifar10`.
* ``"cifar100"``, ``"cifar100_coarse"``: CIFAR-100 with its 100 fine labels or
  its 20 superclasses, see :mod:`linopt.cifar100`.
* ``"mnist"``, ``"fashion_mnist"``: the official IDX files, see :mod:`linopt.mnist`.
* ``"synthetic"``: seeded Gaussian class clusters of any N, D, C.
* a path: your own arrays, a ``.npz`` or a folder of ``.npy`` (:mod:`linopt.arrays`).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np

from linopt import arrays
from linopt.errors import DataError, LinoptError

DATASETS = (
    "digits",
    "cifar10",
    "cifar100",
    "cifar100_coarse",
    "mnist",
    "fashion_mnist",
    "synthetic",
)
# The last this many training images of each official training set validate.
CIFAR10_VALIDATION = 1000  # CS231n's split: 49,000 / 1,000
CIFAR100_VALIDATION = 1000  # the same for CIFAR-100
# 55,000 / 5,000, the classic MNIST split: near 90% accuracy 5,000 images tell
# runs apart to about 0.4 points (1,000: 1 point).
MNIST_VALIDATION = 5000
_CIFAR100_LABELS = {"cifar100": "fine", "cifar100_coarse": "coarse"}


class Dataset(NamedTuple):
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]  # of one example without the bias column
    mean_image: np.ndarray  # float64 (D - 1,), subtracted from every split

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def dim(self) -> int:
        return self.X_train.shape[1]


def preprocess(train, *others, dtype=np.float32):
    """Subtract the training split's mean image from every split, append 1s.

    Returns ``(mean_image, train, *others)``; the mean comes from ``train`` only.
    """
    train = np.asarray(train)
    mean = train.mean(axis=0, dtype=np.float64)
    out = [transform(x, mean, dtype) for x in (train, *others)]
    return (mean, *out)  # the float64 mean, exactly what was subtracted


def transform(x, mean, dtype=np.float32) -> np.ndarray:
    """Raw rows ``x: (N, D - 1)`` as a model sees them: ``x - mean``, then a 1.

    The one home of the preprocessing: :func:`preprocess` and a trained
    model (:mod:`linopt.estimator`, :mod:`linopt.model_io`) apply it.
    """
    x = np.asarray(x)
    out = np.empty((x.shape[0], x.shape[1] + 1), dtype)
    # Subtract in float64 straight into the output: no full-size temporaries.
    np.subtract(x, np.asarray(mean, np.float64), out=out[:, :-1], casting="unsafe")
    out[:, -1] = 1
    return out


def _build(x_train, y_train, x_val, y_val, x_test, y_test, names, shape, dtype):
    mean, X_train, X_val, X_test = preprocess(x_train, x_val, x_test, dtype=dtype)

    def labels(y):
        return np.asarray(y, dtype=np.int32)

    return Dataset(
        X_train,
        labels(y_train),
        X_val,
        labels(y_val),
        X_test,
        labels(y_test),
        tuple(names),
        tuple(shape),
        mean,
    )


def split_indices(n: int, fractions: tuple[float, float], seed: int):
    """Seeded shuffle of ``range(n)`` into train / validation / test indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = (round(f * n) for f in fractions)
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits, read from its own CSV without importing
    scikit-learn (1.5 s of a 3-second run); its loader if the file moved."""
    spec = importlib.util.find_spec("sklearn")
    folder = Path(spec.submodule_search_locations[0]) if spec else Path()
    path = folder / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        from sklearn.datasets import load_digits as sklearn_digits

        digits = sklearn_digits()
        return digits.data, digits.target
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


def load_digits(*, seed: int = 0, dtype=np.float32) -> Dataset:
    """The 8x8 UCI digits: 70% train, 10% validation, 20% test, split by ``seed``."""
    x, y = _digits_arrays()
    tr, va, te = split_indices(len(y), (0.1, 0.2), seed)
    names = tuple(str(c) for c in range(10))
    return _build(x[tr], y[tr], x[va], y[va], x[te], y[te], names, (8, 8), dtype)


def make_synthetic(
    num_train: int = 1000,
    num_val: int = 200,
    num_test: int = 200,
    dim: int = 32,
    num_classes: int = 10,
    *,
    seed: int = 0,
    separation: float = 1.0,
    dtype=np.float32,
) -> Dataset:
    """Gaussian clusters: class means ``separation * randn(C, dim)``, unit noise."""
    for name, value in (
        ("num_train", num_train),
        ("dim", dim),
        ("num_classes", num_classes),
    ):
        if value < 1 or (name == "num_classes" and value < 2):
            raise LinoptError(
                f"synthetic data needs {name} >= "
                f"{2 if name == 'num_classes' else 1}, got {value}"
            )
    rng = np.random.default_rng(seed)
    means = separation * rng.standard_normal((num_classes, dim))

    def draw(n):
        y = rng.integers(0, num_classes, n)
        return means[y] + rng.standard_normal((n, dim)), y

    splits = [draw(n) for n in (num_train, num_val, num_test)]
    names = tuple(f"class_{c}" for c in range(num_classes))
    return _build(*splits[0], *splits[1], *splits[2], names, (dim,), dtype)


def _last_for_validation(raw, num_val: int, title: str, shape, dtype) -> Dataset:
    """``raw = (x_train, y_train, x_test, y_test, names)``, the last ``num_val``
    training rows as the validation split."""
    x_train, y_train, x_test, y_test, names = raw
    cut = len(y_train) - num_val
    if cut < 1:
        raise DataError(
            f"{title} has {len(y_train)} training images; need more than "
            f"{num_val} (the last {num_val} are the validation split)"
        )
    train, val = (x_train[:cut], y_train[:cut]), (x_train[cut:], y_train[cut:])
    return _build(*train, *val, x_test, y_test, names, shape, dtype)


def load_cifar10(
    data_dir=None,
    *,
    download: bool = True,
    progress: bool = False,
    dtype=np.float32,
    num_val: int = CIFAR10_VALIDATION,
) -> Dataset:
    """CIFAR-10: the last ``num_val`` training images (1,000) as validation, the
    rest (49,000) as train, the 10,000 test images; rows keep the file's pixel
    order (R, G, B planes). A larger ``num_val`` tells apart runs that differ by
    a point (1,000 images have a standard error of 1.5 points at 40%)."""
    from linopt import cifar10

    raw = cifar10.load_raw(data_dir, download=download, progress=progress)
    return _last_for_validation(raw, num_val, "CIFAR-10", (3, 32, 32), dtype)


def load_cifar100(
    data_dir=None,
    *,
    labels: str = "fine",
    download: bool = True,
    progress: bool = False,
    dtype=np.float32,
    num_val: int = CIFAR100_VALIDATION,
) -> Dataset:
    """CIFAR-100 with its ``labels`` (``"fine"``: 100 classes, ``"coarse"``: 20
    superclasses), split as CIFAR-10: the last ``num_val`` (1,000) training
    images validate, 49,000 train, the 10,000 test images; same pixel order."""
    from linopt import cifar100

    raw = cifar100.load_raw(
        data_dir, labels=labels, download=download, progress=progress
    )
    return _last_for_validation(raw, num_val, "CIFAR-100", (3, 32, 32), dtype)


def load_mnist(
    name: str = "mnist",
    data_dir=None,
    *,
    download: bool = True,
    progress: bool = False,
    dtype=np.float32,
    num_val: int = MNIST_VALIDATION,
) -> Dataset:
    """MNIST (``name="mnist"``) or Fashion-MNIST (``"fashion_mnist"``): the last
    ``num_val`` (5,000) of the 60,000 training images validate, 55,000 train,
    the 10,000 test images; rows are the 28 x 28 images, row-major."""
    from linopt import mnist

    x_train, y_train, x_test, y_test, names = mnist.load_raw(
        name, data_dir, download=download, progress=progress
    )
    shape = x_train.shape[1:]
    raw = (x_train.reshape(len(x_train), -1), y_train)
    raw += (x_test.reshape(len(x_test), -1), y_test, names)
    title = mnist.SOURCES[name].title
    return _last_for_validation(raw, num_val, title, shape, dtype)


def load(
    name: str,
    *,
    data_dir=None,
    seed: int = 0,
    download: bool = True,
    progress: bool = False,
    dtype=np.float32,
    num_val: int | None = None,
    **synthetic_kwargs,
) -> Dataset:
    """Load data set ``name`` (one of :data:`DATASETS`), preprocessed.

    Args:
      name: one of :data:`DATASETS`, or the path of a ``.npz`` file or folder
        of ``.npy`` files (:mod:`linopt.arrays`).
      data_dir: the folder of the downloaded data sets, each in its own
        subfolder (default ``$LINOPT_DATA`` or ``~/.cache/linopt``).
      seed: the split seed for digits, the generator seed for synthetic.
      download: fetch the official files when they are not on disk.
      progress: show a progress bar while downloading.
      num_val: validation examples (the last of the official training files:
        cifar10 and cifar100 default 1,000, mnist and fashion_mnist 5,000;
        synthetic: drawn, default 200); digits splits 70/10/20.
      **synthetic_kwargs: ``num_train``, ``num_val``, ``num_test``, ``dim``,
        ``num_classes``, ``separation`` for ``"synthetic"``.
    """
    # Your own arrays; a data set's name stays that data set even if a folder
    # of that name is in the working directory ("./mnist" names the folder).
    if name not in DATASETS and arrays.is_path(name):
        if num_val is not None:
            raise LinoptError("num_val: arrays without X_val are split 70/10/20")
        *splits, names = arrays.load_raw(name, seed=seed)
        dim = splits[0].shape[1]
        return _build(*splits, names, (dim,), dtype)
    if name == "digits":
        if num_val is not None:
            raise LinoptError("num_val: digits is split 70/10/20; leave it unset")
        return load_digits(seed=seed, dtype=dtype)
    val = {} if num_val is None else {"num_val": num_val}
    if name == "cifar10":
        return load_cifar10(
            data_dir, download=download, progress=progress, dtype=dtype, **val
        )
    if name in _CIFAR100_LABELS:
        return load_cifar100(
            data_dir,
            labels=_CIFAR100_LABELS[name],
            download=download,
            progress=progress,
            dtype=dtype,
            **val,
        )
    if name in ("mnist", "fashion_mnist"):
        return load_mnist(
            name, data_dir, download=download, progress=progress, dtype=dtype, **val
        )
    if name == "synthetic":
        return make_synthetic(seed=seed, dtype=dtype, **val, **synthetic_kwargs)
    raise LinoptError(f"unknown data set {name!r}; choose one of {list(DATASETS)}")


def subset(ds: Dataset, num_train: int | None) -> Dataset:
    """The first ``num_train`` training examples (all when None); others as is."""
    if num_train is None or num_train >= len(ds.y_train):
        return ds
    return ds._replace(X_train=ds.X_train[:num_train], y_train=ds.y_train[:num_train])
