"""MNIST and Fashion-MNIST from their official IDX files, fetched when absent.

Each is four IDX files (:mod:`linopt.idx`): ``train-images-idx3-ubyte``
(60,000 x 28 x 28 uint8), ``train-labels-idx1-ubyte`` (60,000 uint8 in 0..9)
and the ``t10k-`` pair (10,000 test images). They are read gzipped, as
published (``*.gz``), or already uncompressed; the gzipped copy is used when
both are there. Each data set lives in its own subfolder of the data folder
(``mnist``, ``fashion_mnist``), since both use the same file names; a folder
that holds the files itself may be given instead.

A file that is absent is downloaded from the official site (then a mirror)
and kept only if its sha256 is the published one (:mod:`linopt.downloads`).
Files already on disk are read as they are, gzipped or not. Every problem is
a one-line :class:`DataError` naming the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from linopt import downloads, idx
from linopt.errors import DataError

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one data set's four files come from."""

    title: str  # as people write it, for messages
    folder: str  # its subfolder of the data folder
    urls: tuple[str, ...]  # base URLs, official first; the file name is appended
    sha256: Mapping[str, str]  # file name (without .gz) -> sha256 of the .gz
    class_names: tuple[str, ...]


def _by_file(*digests: str) -> dict[str, str]:
    """The digests of :data:`FILES`' ``.gz`` files, given in that order."""
    return dict(zip(FILES, digests, strict=True))


# sha256 of the published .gz files, as torchvision, TensorFlow and many
# others check them (each matched in several independent listings; not
# recomputed here from a download).
MNIST = Source(
    title="MNIST",
    folder="mnist",
    urls=(
        "https://yann.lecun.com/exdb/mnist/",  # the official page
        "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
    ),
    sha256=_by_file(
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
    class_names=tuple(str(d) for d in range(10)),
)
FASHION_MNIST = Source(
    title="Fashion-MNIST",
    folder="fashion_mnist",
    urls=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # official
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
        "data/fashion/",  # the official repository's copy
    ),
    sha256=_by_file(
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)
SOURCES = {"mnist": MNIST, "fashion_mnist": FASHION_MNIST}


def _source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(
            f"unknown IDX data set {name!r}; one of {list(SOURCES)}"
        ) from None


def _file(folder: Path, name: str) -> Path | None:
    """``folder/name.gz`` or else ``folder/name``, whichever is a file first."""
    for path in (folder / f"{name}.gz", folder / name):
        if path.is_file():
            return path
    return None


def find_folder(data_dir, name: str = "mnist") -> Path | None:
    """The folder holding any of data set ``name``'s files: ``data_dir`` itself
    or its subfolder (``mnist``, ``fashion_mnist``); None when neither does."""
    data_dir = Path(data_dir)
    for folder in (data_dir, data_dir / _source(name).folder):
        if any(_file(folder, f) is not None for f in FILES):
            return folder
    return None


def _missing_message(source: Source, folder: Path) -> str:
    what = f"the four official IDX files ({', '.join(f + '.gz' for f in FILES)})"
    return downloads.missing_message(source.title, folder, what, source.urls[0])


def read_split(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """One images/labels pair: ``x (n, rows, cols) uint8`` and ``y (n,) int32``."""
    images_path, labels_path = Path(images_path), Path(labels_path)
    x, y = idx.read(images_path), idx.read(labels_path)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[0] == 0:
        raise DataError(
            f"{images_path}: expected images, uint8 (n > 0, rows, cols); got "
            f"{x.dtype} {x.shape}"
        )
    if y.dtype != np.uint8 or y.ndim != 1:
        raise DataError(f"{labels_path}: expected labels, uint8 (n,); got {y.shape}")
    if len(y) != len(x):
        raise DataError(
            f"{labels_path}: {len(y)} labels for the {len(x)} images of "
            f"{images_path.name}: the two files do not belong together"
        )
    if (bad := np.flatnonzero(y >= NUM_CLASSES)).size:
        raise DataError(
            f"{labels_path}: label {y[bad[0]]} of image {bad[0]} is outside 0..9"
        )
    return x, y.astype(np.int32)


def _fetch_missing(source: Source, folder: Path, progress: bool) -> None:
    """Download each file absent from ``folder``; a failure leaves it as it was."""
    created = not folder.exists()
    downloads.make_folder(folder)
    try:
        for name in FILES:
            if _file(folder, name) is None:
                downloads.download(
                    [base + name + ".gz" for base in source.urls],
                    folder / f"{name}.gz",
                    sha256=source.sha256[name],
                    progress=progress,
                    hint=_missing_message(source, folder),
                )
    finally:
        if created and not any(folder.iterdir()):
            folder.rmdir()


def load_raw(name: str = "mnist", data_dir=None, *, download=True, progress=False):
    """MNIST (``name="mnist"``) or Fashion-MNIST (``"fashion_mnist"``) as stored.

    Args:
      name: the data set, a key of :data:`SOURCES`.
      data_dir: a folder holding the data set's subfolder, or the folder of
        the four files itself (default :func:`linopt.downloads.default_data_dir`).
      download: fetch the files that are absent (each checked by its sha256).
      progress: show a tqdm bar while downloading.

    Returns:
      ``(x_train, y_train, x_test, y_test, class_names)``: ``x_*`` uint8
      ``(N, rows, cols)`` (28 x 28 for the official files), ``y_*`` int32 in 0..9.
    """
    source = _source(name)
    data_dir = (
        downloads.default_data_dir()
        if data_dir is None
        else Path(data_dir).expanduser()
    )
    folder = find_folder(data_dir, name) or data_dir / source.folder
    missing = [f for f in FILES if _file(folder, f) is None]
    if missing and not download:
        if len(missing) == len(FILES):
            raise DataError(_missing_message(source, folder))
        raise DataError(
            f"{folder}: {source.title} is incomplete, missing "
            f"{', '.join(m + '(.gz)' for m in missing)}; put the official files "
            f"there (from {source.urls[0]}), or allow the download"
        )
    if missing:
        _fetch_missing(source, folder, progress)
    x_train, y_train = read_split(
        _file(folder, TRAIN_IMAGES), _file(folder, TRAIN_LABELS)
    )
    x_test, y_test = read_split(_file(folder, TEST_IMAGES), _file(folder, TEST_LABELS))
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{folder}: train images are {x_train.shape[1:]}, test images "
            f"{x_test.shape[1:]}: the files come from different data sets"
        )
    return x_train, y_train, x_test, y_test, source.class_names
