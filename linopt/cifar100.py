"""CIFAR-100 from the official python archive, downloaded when absent.

``cifar-100-python.tar.gz`` holds the folder ``cifar-100-python`` with three
python 2 pickles, the same kind as CIFAR-10's (:mod:`linopt.cifar10`):

* ``train`` (50,000 images) and ``test`` (10,000): dicts with ``b'data'``
  ``(n, 3072) uint8`` (1024 R, 1024 G, 1024 B, each plane row-major),
  ``b'fine_labels'`` (0..99) and ``b'coarse_labels'`` (0..19, the superclass);
* ``meta``: ``b'fine_label_names'`` (100) and ``b'coarse_label_names'`` (20).

The pickles are read by CIFAR-10's restricted unpickler, which refuses every
global but the numpy array ones before it is called, with the same checks of
the pixels, labels and names. The archive is checked against its sha256 and
extracted safely (:mod:`linopt.downloads`). Every problem is a one-line
:class:`DataError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from linopt import cifar10, downloads
from linopt.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
ARCHIVE = "cifar-100-python.tar.gz"
PY_DIR = "cifar-100-python"
TRAIN, TEST, META = "train", "test", "meta"
# labels -> (the batches' key, the meta key of the names, the number of classes)
LABELS = {
    "fine": ("fine_labels", "fine_label_names", 100),
    "coarse": ("coarse_labels", "coarse_label_names", 20),
}


def _labels(labels: str) -> tuple[str, str, int]:
    try:
        return LABELS[labels]
    except KeyError:
        raise DataError(
            f"labels must be one of {list(LABELS)} (100 classes or their 20 "
            f"superclasses), got {labels!r}"
        ) from None


def _missing_message(data_dir: Path) -> str:
    what = f"the official {PY_DIR} folder (train, test, meta) or {ARCHIVE}"
    return downloads.missing_message("CIFAR-100", data_dir, what, URL)


def read_batch(path, labels: str = "fine") -> tuple[np.ndarray, np.ndarray]:
    """``train`` or ``test``: ``x (n, 3072) uint8`` and ``y (n,) int32``, the
    ``labels`` (``"fine"``: 0..99, ``"coarse"``: 0..19)."""
    key, _, num_classes = _labels(labels)

    def check(batch, path):
        x = cifar10.check_pixels(cifar10.field(batch, "data", path), path)
        y = cifar10.field(batch, key, path)
        return x, cifar10.check_labels(y, x.shape[0], path, num_classes)

    return cifar10.unpickle(path, check)


def read_meta(path, labels: str = "fine") -> tuple[str, ...]:
    """The 100 fine (or 20 coarse) class names of ``meta``."""
    _, key, num_classes = _labels(labels)

    def check(meta, path):
        names = cifar10.field(meta, key, path)
        return cifar10.check_names(names, path, num_classes)

    return cifar10.unpickle(path, check)


def find_dataset(data_dir) -> Path | None:
    """The ``cifar-100-python`` folder in or at ``data_dir``, or None."""
    data_dir = Path(data_dir)
    for folder in (data_dir, data_dir / PY_DIR):
        if folder.is_dir() and (folder.name == PY_DIR or (folder / META).is_file()):
            return folder
    return None


def load_folder(folder, labels: str = "fine"):
    """The three files of a ``cifar-100-python`` folder, as :func:`load_raw`."""
    folder = Path(folder)
    missing = [n for n in (TRAIN, TEST, META) if not (folder / n).is_file()]
    if missing:
        more = f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""
        raise DataError(f"{folder / missing[0]}: missing file{more}")
    x_train, y_train = read_batch(folder / TRAIN, labels)
    x_test, y_test = read_batch(folder / TEST, labels)
    return x_train, y_train, x_test, y_test, read_meta(folder / META, labels)


def fetch(data_dir, *, progress: bool = False) -> None:
    """Extract the archive in ``data_dir`` (downloaded first if absent); one
    already there is used only if its checksum is the official archive's."""
    downloads.fetch_archive(
        data_dir,
        ARCHIVE,
        URL,
        sha256=SHA256,
        progress=progress,
        hint=_missing_message(Path(data_dir)),
        advice=f"extract the official {PY_DIR} there yourself",
    )


def load_raw(
    data_dir=None, *, labels: str = "fine", download: bool = True, progress=False
):
    """CIFAR-100 as stored: ``(x_train, y_train, x_test, y_test, class_names)``.

    Args:
      data_dir: a folder holding ``cifar-100-python`` (or its archive), or that
        folder itself (default :func:`linopt.downloads.default_data_dir`).
      labels: ``"fine"`` (100 classes) or ``"coarse"`` (their 20 superclasses).
      download: fetch, verify and extract the official archive when absent.
      progress: show a tqdm bar while downloading.

    Returns:
      ``x_*: (N, 3072) uint8`` in the file's pixel order, ``y_*: (N,) int32``,
      and the class names of ``labels``.
    """
    _labels(labels)  # a wrong name fails before any download
    data_dir = (
        downloads.default_data_dir()
        if data_dir is None
        else Path(data_dir).expanduser()
    )
    folder = find_dataset(data_dir)
    if folder is None:
        if not download and not (data_dir / ARCHIVE).is_file():
            raise DataError(_missing_message(data_dir))
        fetch(data_dir, progress=progress)  # an archive already there: no network
        folder = find_dataset(data_dir)
        if folder is None:
            raise DataError(f"{data_dir / ARCHIVE}: the archive holds no {PY_DIR}")
    return load_folder(folder, labels)
