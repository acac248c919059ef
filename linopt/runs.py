"""A run's folder and its files: atomic writes, config, summary, metrics.

Every file is written to a temporary name in the same folder and renamed into
place, so a process killed mid-write never leaves half a JSON behind.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import fcntl
import io
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from linopt.errors import LinoptError

RECORD = "config.json"  # a folder holding this holds a run
LOCK = ".lock"
_held: dict[Path, int] = {}  # run folders this process holds, and the lock's fd


def check_workdir(path: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse a folder that holds another run, unless told what to do with it.

    Raises:
      LinoptError: the folder holds a run and neither ``overwrite`` nor
        ``resume`` is set; or ``resume`` with no run there; or a folder that
        is not empty and holds no run (``overwrite`` would delete it).
    """
    if resume and overwrite:
        raise LinoptError("resume and overwrite exclude each other; pick one")
    holds_run = (path / RECORD).exists()
    if resume and not holds_run:
        raise LinoptError(f"resume: {path} holds no run to continue; drop resume")
    if holds_run and not (overwrite or resume):
        raise LinoptError(
            f"workdir {str(path)!r} already holds a run; pass overwrite to "
            "replace it, resume to continue it, or another workdir"
        )
    if path.is_dir() and not holds_run and any(p.name != LOCK for p in path.iterdir()):
        raise LinoptError(
            f"workdir {str(path)!r} is not empty and holds no run; "
            "give an empty or new folder"
        )


def make_workdir(
    workdir: str | os.PathLike | None,
    experiment: str,
    *,
    overwrite: bool = False,
    resume: bool = False,
) -> Path:
    """Create the run folder (default ``runs/<experiment>-<time>``) and hold it.

    A folder holding a run is refused unless ``overwrite`` (its outputs are
    deleted first, subfolders included) or ``resume``; a folder another
    process is running in is refused always (an ``flock`` held until this
    process ends, so a killed run leaves no stale lock).
    """
    if workdir:
        path = Path(workdir).expanduser()
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = Path("runs") / f"{experiment}-{stamp}"
    try:
        if path.exists():
            _hold(path)  # first, so no other run's files are looked at or deleted
        check_workdir(path, overwrite=overwrite, resume=resume)
        path.mkdir(parents=True, exist_ok=True)
        _hold(path)
        if overwrite:
            for child in path.iterdir():
                if child.name == LOCK:
                    continue
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-")
        probe.close()
    except OSError as e:
        raise LinoptError(
            f"cannot write to workdir {str(path)!r} ({e.strerror}); "
            "pass a folder you can write to"
        ) from None
    return path


def _hold(path: Path) -> None:
    """Lock ``path`` for this process, or say which process holds it."""
    key = path.resolve()
    if key in _held:
        return
    fd = os.open(key / LOCK, os.O_RDWR | os.O_CREAT, file_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LinoptError(
            f"workdir {str(path)!r} is in use by another run; wait for it to "
            "end or give another workdir"
        ) from None
    _held[key] = fd


def file_mode() -> int:
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
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would hide it from others
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
