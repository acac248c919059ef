"""A run's folder and its files: atomic writes, config, summary, metrics.

Every file is written to a temporary name in the same folder and renamed into
place, so a process killed mid-write never leaves half a JSON behind.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import platform
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from linopt.errors import LinoptError


def make_workdir(workdir: str | os.PathLike | None, experiment: str) -> Path:
    """Create (or reuse) the run folder; default ``runs/<experiment>-<time>``."""
    if workdir:
        path = Path(workdir).expanduser()
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = Path("runs") / f"{experiment}-{stamp}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-")
        probe.close()
    except OSError as e:
        raise LinoptError(
            f"cannot write to workdir {str(path)!r} ({e.strerror}); "
            "pass a folder you can write to"
        ) from None
    return path


def _file_mode() -> int:
    """What ``open`` gives a new file: 0o666 less the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())  # mkstemp's 0600 would hide it from others
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _to_jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
        return _to_jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no inf / nan; a field keeps one type
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(_to_jsonable(obj), indent=2) + "\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_csv(path, columns: Mapping[str, Sequence]) -> None:
    """Write equal-length columns as a CSV with a header row."""
    names = list(columns)
    rows = zip(*(np.asarray(columns[n]).tolist() for n in names), strict=True)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(names)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def save_array(path, array) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    atomic_write_bytes(path, buf.getvalue())


def environment() -> dict:
    """Versions, devices and precision: what a result depends on besides flags."""
    import absl
    import jax
    import jaxlib
    import optax

    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "absl": getattr(absl, "__version__", "unknown"),
        "python": platform.python_version(),
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "x64": bool(jax.config.jax_enable_x64),
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def write_config(workdir, config, sources: Mapping) -> None:
    """``config.json``: the resolved config, the preset row of each field the
    presets filled (``from_preset``), the seed, and :func:`environment`."""
    write_json(
        Path(workdir) / "config.json",
        {
            "config": dataclasses.asdict(config),
            "from_preset": dict(sources),
            "seed": config.seed,
            "environment": environment(),
        },
    )
