"""Checkpoints of a run: the whole strategy state, the key, the metrics so far.

Stored as one ``.npz`` of plain arrays (no pickle: loading runs no code),
written atomically. Restoring needs a template state of the same structure,
which the strategy's ``init`` gives, so the file holds only numbers.
"""

from __future__ import annotations

import io
import json

import jax
import jax.numpy as jnp
import numpy as np

from linopt.errors import LinoptError
from linopt.runs import atomic_write_bytes


def save(path, state, key, history: dict, meta: dict) -> None:
    """Write ``state``'s leaves, ``key``'s data, per-step metrics and ``meta``."""
    arrays = {
        f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(state))
    }
    arrays["key"] = np.asarray(jax.random.key_data(key))
    arrays.update({f"metric_{k}": np.asarray(v) for k, v in history.items()})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_meta(path) -> dict:
    """The ``meta`` a checkpoint was saved with (cheap: reads one array)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return json.loads(f["meta"].tobytes().decode())
    except (OSError, ValueError, KeyError) as e:
        raise LinoptError(
            f"{path}: not a readable checkpoint ({e}); start afresh instead of resuming"
        ) from None


def load(path, template_state, key):
    """Restore ``(state, history, meta)`` saved by :func:`save`.

    ``template_state`` fixes the structure, shapes and dtypes; ``key`` must be
    the run's key (the same seed), or the continuation would differ.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            files = dict(f)
    except (OSError, ValueError) as e:
        raise LinoptError(
            f"{path}: not a readable checkpoint ({e}); start afresh instead of resuming"
        ) from None
    template, treedef = jax.tree.flatten(template_state)
    leaves = [files.get(f"leaf_{i}") for i in range(len(template))]
    if any(
        a is None or a.shape != np.shape(t)
        for a, t in zip(leaves, template, strict=True)
    ):
        raise LinoptError(
            f"{path}: the checkpoint does not match this run's strategy and "
            "data; resume with the same settings"
        )
    if not np.array_equal(files["key"], np.asarray(jax.random.key_data(key))):
        raise LinoptError(
            f"{path}: the checkpoint was saved with another seed; resume with the same"
        )
    state = jax.tree.unflatten(
        treedef,
        [
            jnp.asarray(a, dtype=jnp.asarray(t).dtype)
            for a, t in zip(leaves, template, strict=True)
        ],
    )
    history = {
        k[len("metric_") :]: v for k, v in files.items() if k.startswith("metric_")
    }
    meta = json.loads(files["meta"].tobytes().decode())
    return state, history, meta
