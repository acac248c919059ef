"""A trained model as one self-describing file, read without pickle.

``save_model(path, ...)`` writes an ``.npz`` of plain arrays (``W``, the
training mean, the class labels, the loss history) and a JSON ``header``: the
format and its version, the bias convention, the class names, the loss and
the whole resolved config. :func:`load_model` reads it with
``allow_pickle=False`` and returns a fitted
:class:`linopt.estimator.LinearClassifier`, so::

    model = linopt.load_model("runs/train-.../model.npz")
    model.predict(raw_images)          # raw rows: (N, 3072) pixels, not preprocessed

applies the training run's own preprocessing (subtract ``mean``, append 1).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from linopt.errors import DataError
from linopt.runs import atomic_write_bytes

FORMAT = "linopt.model"
VERSION = 1
BIAS = (
    "scores = [x - mean, 1] @ W.T: raw rows x (N, D - 1) have mean subtracted and "
    "a constant 1 appended; W's last column is the bias"
)


def save_model(
    path,
    *,
    params,
    mean,
    classes,
    config: dict,
    class_names=None,
    image_shape=None,
    loss_history=None,
):
    """Write a model file; returns ``path``.

    Args:
      path: the ``.npz`` to write (atomically).
      params: ``(C, D)`` weights on preprocessed rows, bias last.
      mean: ``(D - 1,)`` the training rows' mean, subtracted before scoring.
      classes: ``(C,)`` labels (numbers or strings); row ``c`` of ``W`` scores
        ``classes[c]``.
      config: the resolved ``TrainConfig`` as a dict (``dataclasses.asdict``).
      class_names: ``C`` readable names (default: the labels as text).
      image_shape: the shape of one raw row as an image, to draw templates.
      loss_history: the per-step losses of the run.
    """
    W = np.asarray(params, np.float32)
    mean = np.asarray(mean, np.float64)
    classes = np.asarray(classes)
    if classes.dtype == object:  # strings from an object array; no pickle
        classes = classes.astype(str)
    if W.ndim != 2 or mean.shape != (W.shape[1] - 1,) or classes.shape != (len(W),):
        raise ValueError(
            f"params (C, D) {W.shape}, mean (D - 1,) {mean.shape} and classes "
            f"(C,) {classes.shape} do not fit together"
        )
    names = [str(c) for c in classes] if class_names is None else list(class_names)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "bias": BIAS,
        "loss": config.get("loss"),
        "class_names": names,
        "image_shape": None if image_shape is None else list(image_shape),
        "config": config,
    }
    arrays = {
        "header": np.array(json.dumps(header)),
        "W": W,
        "mean": mean,
        "classes": classes,
        "loss_history": np.asarray(
            [] if loss_history is None else loss_history, np.float64
        ),
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_model(path) -> tuple[dict, dict]:
    """``(header, arrays)`` of a model file, checked; raises DataError if not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a linopt model file ({e})") from None
    missing = {"header", "W", "mean", "classes"} - set(arrays)
    if missing:
        raise DataError(f"{path} lacks {', '.join(sorted(missing))}; not a model file")
    header = json.loads(str(arrays.pop("header")))
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise DataError(
            f"{path} is {header.get('format')!r} version {header.get('version')!r}; "
            f"this linopt reads {FORMAT!r} version {VERSION}"
        )
    return header, arrays


def load_model(path):
    """The model in ``path`` as a fitted :class:`linopt.estimator.LinearClassifier`.

    Its ``predict``, ``predict_proba`` and ``decision_function`` take raw rows;
    ``class_names_`` and ``image_shape_`` come from the file too.
    """
    from linopt.estimator import LinearClassifier

    header, arrays = read_model(path)
    config = header["config"]
    keep = LinearClassifier().get_params()
    params = {k: config[k] for k in keep if k in config}
    model = LinearClassifier(**params, random_state=config.get("seed", 0))
    model.classes_ = arrays["classes"]
    model.n_features_in_ = int(arrays["mean"].shape[0])
    history = arrays.get("loss_history", np.zeros(0))
    model._set_fitted(arrays["W"], arrays["mean"], config, history)
    model.class_names_ = tuple(header["class_names"])
    shape = header.get("image_shape")
    model.image_shape_ = None if shape is None else tuple(shape)
    return model
