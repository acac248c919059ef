"""CIFAR-10 from the official files, downloaded when absent, read without trust.

Two layouts hold the same images (rows of 3072 uint8: 1024 R, 1024 G, 1024 B):

* ``cifar-10-batches-py``: python 2 pickles ``data_batch_1`` .. ``data_batch_5``,
  ``test_batch`` (dicts ``{b'data': (n, 3072) uint8, b'labels': [n ints], ...}``)
  and ``batches.meta`` (``b'label_names'``);
* ``cifar-10-batches-bin``: ``data_batch_1.bin`` .. ``test_batch.bin``, records of
  1 label byte + 3072 pixel bytes, and ``batches.meta.txt`` (one name a line).

Loading a pickle can run arbitrary code, so :func:`read_pickle_batch` uses an
unpickler that resolves only the numpy globals a uint8 array needs and refuses
every other one before it is called (:mod:`linopt.cifar100` reads its pickles
with it). The archive is checked against its sha256 before it is used, and
:func:`safe_extract` writes nothing outside its target folder (both in
:mod:`linopt.downloads`). Every problem is a one-line :class:`DataError`
naming the file.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

import numpy as np

# The download machinery lives in linopt.downloads (shared with CIFAR-100 and
# MNIST); default_data_dir, download and safe_extract stay importable from here.
from linopt import downloads
from linopt.downloads import default_data_dir as default_data_dir
from linopt.downloads import download as download
from linopt.downloads import safe_extract as safe_extract
from linopt.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
ARCHIVE = "cifar-10-python.tar.gz"
PY_DIR = "cifar-10-batches-py"
BIN_DIR = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
NUM_CLASSES = 10
PIXELS = 3 * 32 * 32
RECORD = 1 + PIXELS  # one label byte, then the pixels

# What the official pickles reference (numpy.core...) and what numpy >= 2 or
# protocol 5 writes instead: all only build arrays, none runs other code.
_RECONSTRUCT = np.ndarray((0,), np.uint8).__reduce__()[0]
_FROMBUFFER = np.zeros(1, np.uint8).__reduce_ex__(5)[0]
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
}


_one_line = downloads.one_line


def _missing_message(data_dir: Path) -> str:
    what = f"the official {PY_DIR} (python) or {BIN_DIR} (binary) folder"
    return downloads.missing_message("CIFAR-10", data_dir, what, URL)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`_ALLOWED_GLOBALS`; anything else is refused unrun."""

    def __init__(self, data: bytes, path: Path):
        # Python 2 str (keys, pixel bytes) stays bytes, as in the official files.
        super().__init__(io.BytesIO(data), encoding="bytes")
        self._path = path

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._path}: refused pickle global {_one_line(module)}."
                f"{_one_line(name)} (a CIFAR batch references only numpy "
                "array globals; this file is not one, or was tampered with)"
            ) from None

    def persistent_load(self, pid):
        raise DataError(f"{self._path}: refused a persistent id in the pickle")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({_one_line(e.strerror or e)})") from e


def unpickle(path, check):
    """``check(obj, path)`` of the file's restricted unpickling; errors: DataError.

    Shared with :mod:`linopt.cifar100`, whose files are the same kind of pickle.
    """
    path = Path(path)
    data = _read_bytes(path)
    try:
        # Parse the opcodes dry first: the C unpickler allocates a counted
        # string's stated length before reading it, this scan never does.
        for _ in pickletools.genops(data):
            pass
        obj = _RestrictedUnpickler(data, path).load()
    except DataError:
        raise
    except Exception as e:  # any malformed input: report it, never crash
        name = type(e).__name__
        problem = f"truncated or corrupt pickle ({name}: {_one_line(e)})"
        raise DataError(f"{path}: {problem}") from e
    try:
        return check(obj, path)
    except DataError:
        raise
    except Exception as e:  # odd objects (strange __eq__, ...) inside the dict
        raise DataError(f"{path}: not a CIFAR file ({_one_line(e)})") from e


def field(mapping, key: str, path: Path):
    """``mapping[b'key']`` (python 2 files) or ``mapping['key']`` (python 3)."""
    if not isinstance(mapping, dict):
        raise DataError(f"{path}: expected a dict, got {type(mapping).__name__}")
    value = mapping.get(key.encode())
    value = mapping.get(key) if value is None else value
    if value is None:
        raise DataError(f"{path}: no b'{key}' entry")
    return value


def check_labels(
    labels, num_images: int, path: Path, num_classes: int = NUM_CLASSES
) -> np.ndarray:
    """``labels`` (a list of ints, or an int array) as int32, each in range."""
    if (
        isinstance(labels, np.ndarray)
        and labels.dtype.kind in "iu"
        and labels.ndim == 1
    ):
        labels = labels.tolist()
    # type(v) is int rules out bool and float; python ints are range-checked
    # before numpy sees them, so a huge one cannot overflow.
    if not (isinstance(labels, (list, tuple)) and all(type(v) is int for v in labels)):
        raise DataError(f"{path}: labels must be a list of ints")
    if len(labels) != num_images:
        raise DataError(f"{path}: {len(labels)} labels for {num_images} images")
    for i, v in enumerate(labels):
        if not 0 <= v < num_classes:
            raise DataError(
                f"{path}: label {v} of image {i} is outside 0..{num_classes - 1}"
            )
    return np.array(labels, dtype=np.int32)


def check_pixels(data, path: Path) -> np.ndarray:
    """``data`` if it is a ``(n > 0, 3072) uint8`` array (contiguous)."""
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == PIXELS
        and data.shape[0] > 0
    ):
        got = type(data).__name__
        if isinstance(data, np.ndarray):
            got = f"{data.dtype} {data.shape}"
        raise DataError(f"{path}: b'data' must be uint8 (n > 0, 3072), got {got}")
    return np.ascontiguousarray(data)


def _check_batch(batch, path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = check_pixels(field(batch, "data", path), path)
    labels = check_labels(field(batch, "labels", path), data.shape[0], path)
    return data, labels


def read_pickle_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One python-format batch: ``x (n, 3072) uint8``, ``y (n,) int32`` in 0..9."""
    return unpickle(path, _check_batch)


def read_binary_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch of ``n`` 3073-byte records: ``x (n, 3072) uint8``, ``y``."""
    path = Path(path)
    raw = _read_bytes(path)
    if not raw or len(raw) % RECORD:
        raise DataError(
            f"{path}: {len(raw)} bytes is not a whole number of {RECORD}-byte "
            "records (1 label + 3072 pixels): truncated or not a CIFAR-10 batch"
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    labels = check_labels(records[:, 0], len(records), path)
    return np.ascontiguousarray(records[:, 1:]), labels


def check_names(names, path: Path, num_classes: int = NUM_CLASSES) -> tuple[str, ...]:
    """``num_classes`` non-empty names (bytes decoded as UTF-8), stripped."""
    if not isinstance(names, (list, tuple)) or len(names) != num_classes:
        raise DataError(f"{path}: expected {num_classes} class names")
    try:
        names = [n.decode() if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: class names are not UTF-8") from e
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise DataError(f"{path}: class names must be non-empty strings")
    return tuple(n.strip() for n in names)


def read_pickle_meta(path) -> tuple[str, ...]:
    """The 10 class names of ``batches.meta``."""

    def check(meta, path):
        return check_names(field(meta, "label_names", path), path)

    return unpickle(path, check)


def read_binary_meta(path) -> tuple[str, ...]:
    """The 10 class names of ``batches.meta.txt``, one a line (blank lines skipped)."""
    path = Path(path)
    try:
        text = _read_bytes(path).decode()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text") from e
    return check_names([line for line in text.splitlines() if line.strip()], path)


def find_dataset(data_dir) -> tuple[Path, str] | None:
    """``(folder, "py" | "bin")`` of the layout in or at ``data_dir``, or None."""
    data_dir = Path(data_dir)
    for folder in (data_dir, data_dir / PY_DIR, data_dir / BIN_DIR):
        if not folder.is_dir():
            continue
        if folder.name == PY_DIR or (folder / "data_batch_1").is_file():
            return folder, "py"
        if folder.name == BIN_DIR or (folder / "data_batch_1.bin").is_file():
            return folder, "bin"
    return None


def load_folder(folder, kind: str):
    """All batches of one layout folder, as :func:`load_raw` returns them."""
    folder, py = Path(folder), kind == "py"
    ext, meta = ("", "batches.meta") if py else (".bin", "batches.meta.txt")
    read_batch = read_pickle_batch if py else read_binary_batch
    read_meta = read_pickle_meta if py else read_binary_meta
    names = [b + ext for b in (*TRAIN_BATCHES, TEST_BATCH)] + [meta]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        more = f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""
        raise DataError(f"{folder / missing[0]}: missing file{more}")
    train = [read_batch(folder / (b + ext)) for b in TRAIN_BATCHES]
    x_test, y_test = read_batch(folder / (TEST_BATCH + ext))
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test, read_meta(folder / meta)


def load_raw(data_dir=None, *, download: bool = True, progress: bool = False):
    """CIFAR-10 as stored: ``(x_train, y_train, x_test, y_test, class_names)``.

    Args:
      data_dir: a folder holding ``cifar-10-batches-py`` or ``-bin``, or one of
        those folders itself (default :func:`default_data_dir`).
      download: fetch, verify and extract the official archive when absent.
      progress: show a tqdm bar while downloading.

    Returns:
      ``x_*: (N, 3072) uint8`` in the file's pixel order, ``y_*: (N,) int32``
      in 0..9, and the 10 class names.
    """
    data_dir = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    found = find_dataset(data_dir)
    if found is None:
        if not download and not (data_dir / ARCHIVE).is_file():
            raise DataError(_missing_message(data_dir))
        fetch(data_dir, progress=progress)  # an archive already there: no network
        found = find_dataset(data_dir)
        if found is None:
            raise DataError(f"{data_dir / ARCHIVE}: the archive holds no {PY_DIR}")
    return load_folder(*found)


def fetch(data_dir, *, progress: bool = False) -> None:
    """Extract the archive in ``data_dir`` (downloaded first if absent).

    An archive already there that fails its checksum is reported, never
    silently replaced: it may be a partial copy the user means to finish.
    """
    downloads.fetch_archive(
        data_dir,
        ARCHIVE,
        URL,
        sha256=SHA256,
        progress=progress,
        hint=_missing_message(Path(data_dir)),
        advice=f"extract the official {PY_DIR} there yourself",
    )
