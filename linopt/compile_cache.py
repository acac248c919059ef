"""JAX's persistent compilation cache, beside the data in the user's cache.

A second run of an experiment loads the programs the first one compiled
instead of compiling them again (about a second per program on a laptop
CPU). JAX writes each entry atomically, so processes may share the folder.
``$LINOPT_COMPILATION_CACHE`` names another folder, or ``0`` turns it off.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from linopt import downloads

ENV = "LINOPT_COMPILATION_CACHE"


def folder() -> Path | None:
    """Where the cache lives: ``$LINOPT_COMPILATION_CACHE``, else
    ``jax-cache`` in the data folder; None when turned off."""
    setting = os.environ.get(ENV, "")
    if setting.strip().lower() in ("0", "off", "false", "no"):
        return None
    return (
        Path(setting).expanduser()
        if setting
        else downloads.default_data_dir() / "jax-cache"
    )


def enable(path: str | os.PathLike | None = None) -> Path | None:
    """Turn the cache on at ``path`` (default :func:`folder`); returns it, or
    None when turned off or the folder cannot be made (then runs compile as
    usual: a cache is never a reason to fail)."""
    path = Path(path) if path is not None else folder()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    # Every program: linopt's compile in well under JAX's 1 s default.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
