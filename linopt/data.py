"""Data sets as numpy arrays, split and preprocessed the same way for all.

``load(name, ...)`` returns a :class:`Dataset`: train / validation / test
arrays ``X: (N, D) float32``, preprocessed (by default the training split's
mean image subtracted and a constant 1 appended last, the bias trick; see
:func:`fit_preprocessing`), and ``y: (N,) int32``, plus class names, the image
shape for drawing weights as templates and the :class:`Preprocessing` applied.

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
PREPROCESSINGS = ("center", "standardize", "none")
# What ``preprocess=None`` means, decided here only: every data set is centred.
# Pixels (digits, the CIFARs, the MNISTs) have a mean image far from 0, and
# synthetic and your own arrays (which may be pixels too) keep the scale their
# preset rows were tuned at (linopt.presets measures features after centering).
DEFAULT_PREPROCESS = "center"
_CHUNK = 1 << 22  # values transformed at a time (32 MiB of float64)


class Preprocessing(NamedTuple):
    """What turns raw rows ``(N, F)`` into a model's: ``(x - mean) / scale``,
    then a constant 1 appended last when ``bias`` (so ``D = F + bias``)."""

    mean: np.ndarray | None  # float64 (F,), subtracted; None: nothing is
    scale: np.ndarray | None  # float64 (F,), divides after centering; None: 1
    bias: bool = True  # a column of 1s last: W's last column is the bias

    @property
    def kind(self) -> str:
        """``"none"``, ``"center"`` or ``"standardize"``."""
        if self.scale is not None:
            return "standardize"
        return "none" if self.mean is None else "center"


class Dataset(NamedTuple):
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]  # of one raw example (no bias column)
    preprocessing: Preprocessing  # fitted on train, applied to every split

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def mean_image(self) -> np.ndarray:
        """float64 ``(F,)``: what was subtracted from every split (0s: nothing)."""
        mean = self.preprocessing.mean
        raw = self.X_train.shape[1] - self.preprocessing.bias
        return np.zeros(raw) if mean is None else mean

    @property
    def dim(self) -> int:
        return self.X_train.shape[1]


def fit_preprocessing(train, method: str = "center", bias: bool = True):
    """The :class:`Preprocessing` ``method`` learns from the training rows only.

    ``"center"`` subtracts each feature's mean; ``"standardize"`` subtracts it,
    then divides by the feature's standard deviation over the rows (``ddof=0``,
    as scikit-learn's ``StandardScaler``); a feature whose standard deviation is
    0 (constant on train, such as a pixel that is always black) is divided by 1,
    so it stays 0 rather than becoming nan; ``"none"`` keeps the rows as they
    are. ``bias`` appends the constant 1 (the bias trick).
    """
    if method not in PREPROCESSINGS:
        raise LinoptError(
            f"preprocess must be one of {', '.join(PREPROCESSINGS)}; got {method!r}"
        )
    train = np.asarray(train)
    mean = None if method == "none" else train.mean(axis=0, dtype=np.float64)
    scale = None
    if method == "standardize":
        var = sum(np.square(b - mean).sum(axis=0) for b in _blocks(train))
        std = np.sqrt(var / max(1, len(train)))
        scale = np.where(std > 0, std, 1.0)
    return Preprocessing(mean, scale, bool(bias))


def preprocess(train, *others, method="center", bias=True, dtype=np.float32):
    """Fit ``method`` (:func:`fit_preprocessing`) on ``train``; apply it to
    every split (:func:`transform`).

    Returns ``(preprocessing, train, *others)``: the float64 statistics, from
    ``train`` only, exactly what was applied.
    """
    p = fit_preprocessing(train, method, bias)
    return (p, *(transform(x, p, dtype) for x in (train, *others)))


def transform(x, preprocessing, dtype=np.float32) -> np.ndarray:
    """Raw rows ``x: (N, F)`` as a model sees them: ``(x - mean) / scale``, then
    a 1 when ``bias`` (``preprocessing``: a :class:`Preprocessing`, or a bare mean
    for center and bias). The one home of the preprocessing: :func:`preprocess`
    and a trained model (:mod:`linopt.estimator`, :mod:`linopt.model_io`) apply it.
    """
    p = preprocessing
    if not isinstance(p, Preprocessing):
        p = Preprocessing(np.asarray(p, np.float64), None, True)
    x = np.asarray(x)
    n, F = x.shape
    out = np.empty((n, F + p.bias), dtype)
    if p.bias:
        out[:, F] = 1
    if p.mean is None:  # "none": the rows as they are
        out[:, :F] = x
        return out
    # In float64 a block of rows at a time: one rounding, no full-size temporary.
    start = 0
    for block in _blocks(x):
        block -= p.mean
        if p.scale is not None:
            block /= p.scale
        out[start : start + len(block), :F] = block
        start += len(block)
    return out


def _blocks(x):
    """Float64 copies of consecutive blocks of rows of ``x``, ``_CHUNK`` values."""
    rows = max(1, _CHUNK // max(1, x.shape[1]))
    for start in range(0, len(x), rows):
        yield np.array(x[start : start + rows], np.float64)


def _build(x_train, y_train, x_val, y_val, x_test, y_test, names, shape, options):
    """The Dataset of the raw splits; ``options``: ``(dtype, method, bias)``."""
    dtype, method, bias = options
    p, *X = preprocess(x_train, x_val, x_test, method=method, bias=bias, dtype=dtype)
    y = [np.asarray(v, dtype=np.int32) for v in (y_train, y_val, y_test)]
    splits = [a for pair in zip(X, y, strict=True) for a in pair]
    return Dataset(*splits, tuple(names), tuple(shape), p)


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


def load_digits(
    *, seed: int = 0, dtype=np.float32, preprocess=DEFAULT_PREPROCESS, bias=True
) -> Dataset:
    """The 8x8 UCI digits: 70% train, 10% validation, 20% test, split by ``seed``;
    ``preprocess`` and ``bias`` as :func:`fit_preprocessing`'s (so for every loader)."""
    x, y = _digits_arrays()
    tr, va, te = split_indices(len(y), (0.1, 0.2), seed)
    names, options = tuple(str(c) for c in range(10)), (dtype, preprocess, bias)
    return _build(x[tr], y[tr], x[va], y[va], x[te], y[te], names, (8, 8), options)


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
    preprocess: str = DEFAULT_PREPROCESS,
    bias: bool = True,
) -> Dataset:
    """Gaussian clusters: class means ``separation * randn(C, dim)``, unit noise."""
    for name, value, least in (
        ("num_train", num_train, 1), ("dim", dim, 1), ("num_classes", num_classes, 2)
    ):  # fmt: skip
        if value < least:
            raise LinoptError(f"synthetic data needs {name} >= {least}, got {value}")
    rng = np.random.default_rng(seed)
    means = separation * rng.standard_normal((num_classes, dim))

    def draw(n):
        y = rng.integers(0, num_classes, n)
        return means[y] + rng.standard_normal((n, dim)), y

    splits = [draw(n) for n in (num_train, num_val, num_test)]
    names = tuple(f"class_{c}" for c in range(num_classes))
    options = (dtype, preprocess, bias)
    return _build(*splits[0], *splits[1], *splits[2], names, (dim,), options)


def _last_for_validation(raw, num_val: int, title: str, shape, options) -> Dataset:
    """``raw = (x_train, y_train, x_test, y_test, names)``, the last ``num_val``
    training rows as the validation split; ``options`` as :func:`_build`'s."""
    x_train, y_train, x_test, y_test, names = raw
    cut = len(y_train) - num_val
    if cut < 1:
        raise DataError(
            f"{title} has {len(y_train)} training images; need more than "
            f"{num_val} (the last {num_val} are the validation split)"
        )
    train, val = (x_train[:cut], y_train[:cut]), (x_train[cut:], y_train[cut:])
    return _build(*train, *val, x_test, y_test, names, shape, options)


def load_cifar10(
    data_dir=None,
    *,
    download: bool = True,
    progress: bool = False,
    dtype=np.float32,
    num_val: int = CIFAR10_VALIDATION,
    preprocess: str = DEFAULT_PREPROCESS,
    bias: bool = True,
) -> Dataset:
    """CIFAR-10: the last ``num_val`` training images (1,000) as validation, the
    rest (49,000) as train, the 10,000 test images; rows keep the file's pixel
    order (R, G, B planes). A larger ``num_val`` tells apart runs that differ by
    a point (1,000 images have a standard error of 1.5 points at 40%)."""
    from linopt import cifar10

    raw = cifar10.load_raw(data_dir, download=download, progress=progress)
    options = (dtype, preprocess, bias)
    return _last_for_validation(raw, num_val, "CIFAR-10", (3, 32, 32), options)


def load_cifar100(
    data_dir=None,
    *,
    labels: str = "fine",
    download: bool = True,
    progress: bool = False,
    dtype=np.float32,
    num_val: int = CIFAR100_VALIDATION,
    preprocess: str = DEFAULT_PREPROCESS,
    bias: bool = True,
) -> Dataset:
    """CIFAR-100 with its ``labels`` (``"fine"``: 100 classes, ``"coarse"``: 20
    superclasses), split as CIFAR-10: the last ``num_val`` (1,000) training
    images validate, 49,000 train, the 10,000 test images; same pixel order."""
    from linopt import cifar100

    raw = cifar100.load_raw(
        data_dir, labels=labels, download=download, progress=progress
    )
    options = (dtype, preprocess, bias)
    return _last_for_validation(raw, num_val, "CIFAR-100", (3, 32, 32), options)


def load_mnist(
    name: str = "mnist",
    data_dir=None,
    *,
    download: bool = True,
    progress: bool = False,
    dtype=np.float32,
    num_val: int = MNIST_VALIDATION,
    preprocess: str = DEFAULT_PREPROCESS,
    bias: bool = True,
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
    return _last_for_validation(raw, num_val, title, shape, (dtype, preprocess, bias))


def load(
    name: str,
    *,
    data_dir=None,
    seed: int = 0,
    download: bool = True,
    progress: bool = False,
    dtype=np.float32,
    num_val: int | None = None,
    preprocess: str | None = None,
    bias: bool = True,
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
      preprocess: ``"center"``, ``"standardize"`` or ``"none"``
        (:func:`fit_preprocessing`, on the training split only); None:
        :data:`DEFAULT_PREPROCESS`, what every data set here needs.
      bias: append the constant 1 (the bias trick); without it ``W`` is
        ``(C, F)``, ``F`` the raw width.
      **synthetic_kwargs: ``num_train``, ``num_val``, ``num_test``, ``dim``,
        ``num_classes``, ``separation`` for ``"synthetic"``.
    """
    method = DEFAULT_PREPROCESS if preprocess is None else preprocess
    fit_preprocessing(np.zeros((1, 1)), method)  # a bad name fails before reading
    common = dict(dtype=dtype, preprocess=method, bias=bias)
    # Your own arrays; a data set's name stays that data set even if a folder
    # of that name is in the working directory ("./mnist" names the folder).
    if name not in DATASETS and arrays.is_path(name):
        if num_val is not None:
            raise LinoptError("num_val: arrays without X_val are split 70/10/20")
        *splits, names = arrays.load_raw(name, seed=seed)
        dim = splits[0].shape[1]
        return _build(*splits, names, (dim,), (dtype, method, bias))
    if name == "digits":
        if num_val is not None:
            raise LinoptError("num_val: digits is split 70/10/20; leave it unset")
        return load_digits(seed=seed, **common)
    val = common if num_val is None else {"num_val": num_val, **common}
    if name == "cifar10":
        return load_cifar10(data_dir, download=download, progress=progress, **val)
    if name in _CIFAR100_LABELS:
        return load_cifar100(
            data_dir,
            labels=_CIFAR100_LABELS[name],
            download=download,
            progress=progress,
            **val,
        )
    if name in ("mnist", "fashion_mnist"):
        return load_mnist(name, data_dir, download=download, progress=progress, **val)
    if name == "synthetic":
        return make_synthetic(seed=seed, **val, **synthetic_kwargs)
    raise LinoptError(f"unknown data set {name!r}; choose one of {list(DATASETS)}")


def subset(ds: Dataset, num_train: int | None) -> Dataset:
    """The first ``num_train`` training examples (all when None); others as is."""
    if num_train is None or num_train >= len(ds.y_train):
        return ds
    return ds._replace(X_train=ds.X_train[:num_train], y_train=ds.y_train[:num_train])
