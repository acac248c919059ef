"""The IDX format of MNIST and Fashion-MNIST, read exactly and without trust.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), then each dimension as a big-endian uint32, then the values,
big-endian, row-major. Nothing else may follow. The official files are
gzipped; :func:`read` takes either form, telling them apart by the gzip
magic bytes, not by the name.

Every problem (a wrong magic, an unknown type code, a file shorter or longer
than its header says, a broken gzip stream) is a one-line :class:`DataError`
naming the file. No buffer is sized from the header before the data is there,
so a header claiming terabytes costs nothing.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from linopt.downloads import one_line
from linopt.errors import DataError

# type code -> big-endian dtype (the IDX specification's list).
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def _read_exactly(stream, n: int, path: Path, what: str) -> bytes:
    """``n`` bytes of ``stream``, gathered a chunk at a time (never preallocated)."""
    parts, got = [], 0
    while got < n:
        chunk = stream.read(min(_CHUNK, n - got))
        if not chunk:
            raise DataError(
                f"{path}: truncated: {what} needs {n} bytes, the file has {got} "
                "(an incomplete download or copy: fetch it again)"
            )
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _parse(stream, path: Path) -> np.ndarray:
    magic = _read_exactly(stream, 4, path, "the magic number")
    if magic[:2] != b"\0\0" or magic[2] not in DTYPES or magic[3] == 0:
        raise DataError(
            f"{path}: magic number 0x{magic.hex()} is not an IDX header "
            "(0x0000, a type code 08/09/0B/0C/0D/0E, the number of dimensions): "
            "not an IDX file"
        )
    dtype, ndim = DTYPES[magic[2]], magic[3]
    dims = struct.unpack(f">{ndim}I", _read_exactly(stream, 4 * ndim, path, "dims"))
    size = dtype.itemsize
    for d in dims:
        size *= d
    data = _read_exactly(stream, size, path, f"a {'x'.join(map(str, dims))} array")
    if stream.read(1):
        raise DataError(
            f"{path}: longer than its header says ({size} data bytes for shape "
            f"{dims}): not an IDX file, or two files joined"
        )
    array = np.frombuffer(data, dtype).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read(path) -> np.ndarray:
    """The array of the IDX file at ``path`` (gzipped or not), native byte order.

    Raises:
      DataError: the file is missing, unreadable, not IDX, truncated or too long.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            packed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if packed else raw
            with stream:
                return _parse(stream, path)
    except DataError:
        raise
    except FileNotFoundError as e:
        raise DataError(f"{path}: missing file") from e
    except EOFError as e:  # a gzip stream cut short
        raise DataError(
            f"{path}: truncated gzip stream (an incomplete download or copy: "
            "fetch it again)"
        ) from e
    except (OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({one_line(e)})") from e
