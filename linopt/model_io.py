"""A trained model as one self-describing file, read without pickle.

``save_model(path, ...)`` writes an ``.npz`` of plain arrays (``W``, the
preprocessing's training ``mean`` and ``scale`` where it has them, the class
labels, the loss history) and a JSON ``header``: the format and its version,
the preprocessing (``preprocess``, ``bias``) and its formula, the class names,
the loss and the whole resolved config. :func:`load_model` reads it with
``allow_pickle=False`` and returns a fitted
:class:`linopt.estimator.LinearClassifier`, so::

    model = linopt.load_model("runs/train-.../model.npz")
    model.predict(raw_images)          # raw rows: (N, 3072) pixels, not preprocessed

applies the training run's own preprocessing (:func:`linopt.data.transform`:
subtract ``mean``, divide by ``scale``, append 1, as the run did). Files of
version 1 hold only a mean: center and bias, as every run did then.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from linopt.data import Preprocessing
from linopt.errors import DataError
from linopt.runs import atomic_write_bytes

FORMAT = "linopt.model"
VERSION = 2
VERSIONS = (1, 2)  # read; version 1: a mean only (center and bias)
FORMULAS = {
    "none": "x",
    "center": "x - mean",
    "standardize": "(x - mean) / scale",
}


def _formula(p: Preprocessing) -> str:
    rows = FORMULAS[p.kind]
    if p.bias:
        return f"scores = [{rows}, 1] @ W.T of raw rows x; W's last column is the bias"
    return f"scores = ({rows}) @ W.T of raw rows x; no bias column"


def save_model(
    path,
    *,
    params,
    mean=None,
    classes,
    config: dict,
    preprocessing: Preprocessing | None = None,
    class_names=None,
    image_shape=None,
    loss_history=None,
):
    """Write a model file; returns ``path``.

    Args:
      path: the ``.npz`` to write (atomically).
      params: ``(C, D)`` weights on preprocessed rows (bias last, if any).
      mean: ``(D - 1,)`` the training rows' mean, for center and bias (the
        preprocessing of old callers); give ``preprocessing`` instead.
      classes: ``(C,)`` labels (numbers or strings); row ``c`` of ``W`` scores
        ``classes[c]``.
      config: the resolved ``TrainConfig`` as a dict (``dataclasses.asdict``).
      preprocessing: the :class:`linopt.data.Preprocessing` of the rows.
      class_names: ``C`` readable names (default: the labels as text).
      image_shape: the shape of one raw row as an image, to draw templates.
      loss_history: the per-step losses of the run.
    """
    W = np.asarray(params, np.float32)
    p = preprocessing
    if p is None:
        p = Preprocessing(np.asarray(mean, np.float64), None, True)
    pairs = (("mean", p.mean), ("scale", p.scale))
    stats = {k: np.asarray(v, np.float64) for k, v in pairs if v is not None}
    classes = np.asarray(classes)
    if classes.dtype == object:  # strings from an object array; no pickle
        classes = classes.astype(str)
    raw = (W.shape[1] - p.bias,) if W.ndim == 2 else None
    if (
        raw is None
        or classes.shape != (len(W),)
        or {v.shape for v in stats.values()} - {raw}
    ):
        shapes = ", ".join(f"{k} {v.shape}" for k, v in stats.items())
        raise ValueError(
            f"params (C, D) {W.shape}, classes (C,) {classes.shape} and the "
            f"preprocessing's (D - bias,) {shapes or 'none'} do not fit together"
        )
    names = [str(c) for c in classes] if class_names is None else list(class_names)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "preprocess": p.kind,
        "bias": p.bias,
        "formula": _formula(p),
        "loss": config.get("loss"),
        "class_names": names,
        "image_shape": None if image_shape is None else list(image_shape),
        "config": config,
    }
    arrays = {
        "header": np.array(json.dumps(header)),
        "W": W,
        **stats,
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
    missing = {"header", "W", "classes"} - set(arrays)
    if missing:
        raise DataError(f"{path} lacks {', '.join(sorted(missing))}; not a model file")
    header = json.loads(str(arrays.pop("header")))
    if header.get("format") != FORMAT or header.get("version") not in VERSIONS:
        raise DataError(
            f"{path} is {header.get('format')!r} version {header.get('version')!r}; "
            f"this linopt reads {FORMAT!r} versions {', '.join(map(str, VERSIONS))}"
        )
    if header["version"] == 1:  # a mean, subtracted, and the bias: all runs then
        header.update(preprocess="center", bias=True)
    kind = header.get("preprocess")
    need = {"none": (), "center": ("mean",), "standardize": ("mean", "scale")}
    lacks = [k for k in need.get(kind, ("a known preprocess",)) if k not in arrays]
    if lacks or preprocessing(header, arrays).kind != kind:
        raise DataError(
            f"{path} records preprocess {kind!r} but lacks "
            f"{', '.join(lacks) or 'nothing'}; not a model file linopt wrote"
        )
    return header, arrays


def preprocessing(header: dict, arrays: dict) -> Preprocessing:
    """The :class:`linopt.data.Preprocessing` a model file (:func:`read_model`)
    records."""
    return Preprocessing(
        arrays.get("mean"), arrays.get("scale"), bool(header.get("bias", True))
    )


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
    p = preprocessing(header, arrays)
    model.n_features_in_ = int(arrays["W"].shape[1] - p.bias)
    history = arrays.get("loss_history", np.zeros(0))
    model._set_fitted(arrays["W"], p, config, history)
    model.class_names_ = tuple(header["class_names"])
    shape = header.get("image_shape")
    model.image_shape_ = None if shape is None else tuple(shape)
    return model
