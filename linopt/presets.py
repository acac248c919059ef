"""The one table of default hyperparameters.

Every default hyperparameter of every experiment lives in :data:`TABLE`, keyed
by ``(data set, loss, strategy, preset)``. Experiments that train nothing
(``landscape``, ``step_size``, ``gradcheck``) use their own name in the
strategy slot; ``"all"`` is ``experiments.train --strategy=all`` (every
strategy compared at the same number of loss evaluations). ``"*"`` matches
anything. Rows are applied in order, so a later, more specific row overrides
an earlier one, and :func:`lookup` says which row gave each value;
:func:`resolve` fills a config of :mod:`linopt.configs` from it.

Why these values (measured on the lossy CIFAR-10 copy, seeds 0-2):

* ``assignment``: the CS231n assignment's mini-batch run, exactly (lr 1e-7,
  reg 2.5e4, 1,500 SGD steps of 200): SVM test 0.353-0.368.
* ``linopt`` (default): the same 1,500 steps, a larger learning rate decayed
  20x over the run and less reg: SVM 0.385-0.390, softmax 0.399-0.404 (the
  softmax sweep's best cell by validation accuracy).
* The searches use the lecture's scales and the loss without reg.
* ``digits`` and ``synthetic`` have features of order 1-10, not 0-255, and get
  scales that suit them.
* The sweep grids hold the train preset's cell for that loss, the
  assignment's cells and the larger steps and smaller regs around them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from linopt import arrays

ANY = "*"
PRESETS = ("linopt", "assignment")

# (dataset, loss, strategy, preset) -> values. Later rows override earlier ones.
TABLE: tuple[tuple[tuple[str, str, str, str], Mapping], ...] = (
    # Every strategy: the assignment's starting weights.
    ((ANY, ANY, ANY, ANY), {"init_scale": 1e-3}),
    # The lecture's searches: their scales, the loss without reg.
    (
        (ANY, ANY, "random_search", ANY),
        {"num_steps": 1000, "reg": 0.0, "search_scale": 1e-4, "population": 100},
    ),
    (
        (ANY, ANY, "random_local_search", ANY),
        {"num_steps": 1000, "reg": 0.0, "step_size": 1e-4, "block": 100},
    ),
    # Gradient descent in every form: the assignment's run.
    *(
        (
            (ANY, ANY, name, ANY),
            {
                "num_steps": steps,
                "learning_rate": 1e-7,
                "reg": 2.5e4,
                "optimizer": "sgd",
                "schedule": "constant",
                "momentum": 0.9,
                **extra,
            },
        )
        for name, steps, extra in (
            ("gradient_descent", 200, {}),
            ("minibatch", 1500, {"batch_size": 200, "sampling": "replacement"}),
            ("sgd", 1500, {"sampling": "replacement"}),
        )
    ),
    # linopt's CIFAR-10 default: decayed 20x over the run, tuned lr and reg.
    *(
        (("cifar10", loss, name, "linopt"), {**values, **_decay})
        for _decay in ({"schedule": "exponential", "decay_rate": 0.05},)
        for name in ("gradient_descent", "minibatch")
        for loss, values in (
            ("svm", {"learning_rate": 1e-6, "reg": 5e3}),
            ("softmax", {"learning_rate": 5e-6, "reg": 500.0}),
        )
    ),
    # Small features (digits, synthetic): larger steps and scales, little reg.
    *(
        ((dataset, ANY, name, ANY), values)
        for dataset, lr, reg, search, step in (
            ("digits", 1e-3, 1e-3, 1e-2, 1e-3),
            ("synthetic", 1e-2, 1e-4, 1e-1, 1e-2),
        )
        for name, values in (
            ("random_search", {"search_scale": search}),
            ("random_local_search", {"step_size": step}),
            ("gradient_descent", {"learning_rate": lr, "reg": reg}),
            ("minibatch", {"learning_rate": lr, "reg": reg}),
            ("sgd", {"learning_rate": lr, "reg": reg}),
        )
    ),
    # L-BFGS (full batch, its own line search): gradient descent's reg.
    ((ANY, ANY, "lbfgs", ANY), {"num_steps": 100, "reg": 2.5e4}),
    (("cifar10", ANY, "lbfgs", ANY), {"num_steps": 300}),
    (("cifar10", "svm", "lbfgs", "linopt"), {"reg": 5e3}),
    (("cifar10", "softmax", "lbfgs", "linopt"), {"reg": 500.0}),
    (("digits", ANY, "lbfgs", ANY), {"reg": 1e-3}),
    (("synthetic", ANY, "lbfgs", ANY), {"reg": 1e-4}),
    # --strategy=all: every strategy at the same 1,000 loss evaluations.
    ((ANY, ANY, "all", ANY), {"num_steps": 1000}),
    # The sweep's grids (learning rate x reg).
    (
        (ANY, ANY, "sweep", ANY),
        {"learning_rates": (1e-7, 5e-7, 1e-6, 2e-6), "regs": (2.5e3, 5e3, 2.5e4, 5e4)},
    ),
    (
        ("cifar10", "softmax", "sweep", ANY),
        {"learning_rates": (1e-7, 5e-7, 2e-6, 5e-6), "regs": (5e2, 2e3, 2.5e4, 5e4)},
    ),
    # Cells a point apart differ by 10 of 1,000 validation images, within the
    # noise: the CIFAR-10 sweep validates on 5,000 (then refits on all 50,000).
    (("cifar10", ANY, "sweep", ANY), {"num_val": 5000}),
    (
        ("digits", ANY, "sweep", ANY),
        {"learning_rates": (1e-4, 1e-3, 1e-2, 1e-1), "regs": (1e-4, 1e-3, 1e-2, 1e-1)},
    ),
    (
        ("synthetic", ANY, "sweep", ANY),
        {"learning_rates": (1e-3, 1e-2, 1e-1, 1.0), "regs": (1e-5, 1e-4, 1e-3, 1e-2)},
    ),
    # Landscapes: the 'with reg' panels' strength (cifar10: the assignment's).
    ((ANY, ANY, "landscape", ANY), {"reg": 2.5e4}),
    (("digits", ANY, "landscape", ANY), {"reg": 1.0}),
    (("synthetic", ANY, "landscape", ANY), {"reg": 0.1}),
    # The step-size table: the lecture's W = 1e-3 * rand, no reg.
    ((ANY, ANY, "step_size", ANY), {"reg": 0.0}),
    # Gradient checks: a nonzero reg, so its term is checked too.
    ((ANY, ANY, "gradcheck", ANY), {"reg": 1e-3}),
)


def _matches(pattern: tuple[str, ...], key: tuple[str, ...]) -> bool:
    return all(p == ANY or p == k for p, k in zip(pattern, key, strict=True))


def lookup(
    dataset: str, loss: str, strategy: str, preset: str = "linopt"
) -> tuple[dict, dict]:
    """The defaults for this key, and which row gave each.

    Returns:
      ``(values, sources)``: name -> default, and name -> the row's key as
      ``"dataset/loss/strategy/preset"`` (with ``*`` for any).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    key = (dataset, loss, strategy, preset)
    values, sources = {}, {}
    for pattern, row in TABLE:
        if _matches(pattern, key):
            values.update(row)
            sources.update(dict.fromkeys(row, "/".join(pattern)))
    return values, sources


# RMS of each data set's features after centering (measured on its training
# split): the scale its rows were tuned for, so a function given only arrays
# (linopt.estimator, the notebook functions of linopt.strategies) takes the
# rows of the data set its features resemble, never CIFAR-10's on digits.
FEATURE_SCALES = {"synthetic": 1.41, "digits": 4.34, "cifar10": 63.3}


def dataset_for_scale(scale: float) -> str:
    """The data set of :data:`FEATURE_SCALES` nearest ``scale`` (log distance)."""
    scale = max(float(scale), 1e-12)
    return min(FEATURE_SCALES, key=lambda n: abs(math.log(scale / FEATURE_SCALES[n])))


# Named data sets without rows of their own, and the centred RMS of their raw
# 0..255 pixels (approximate, from their published pixel statistics, not
# measured here): each takes the rows of the data set of FEATURE_SCALES
# nearest that scale, as own arrays do (all four: cifar10's).
BORROWED_SCALES = {
    "mnist": 78.0,
    "fashion_mnist": 80.0,
    "cifar100": 64.0,
    "cifar100_coarse": 64.0,
}


def table_dataset(dataset: str) -> str:
    """The data set whose rows of :data:`TABLE` ``dataset`` (a name or the
    path of own arrays) takes: its own, or those of the nearest scale."""
    from linopt.data import DATASETS

    if dataset not in DATASETS and arrays.is_path(dataset):
        return dataset_for_scale(arrays.feature_scale(dataset))
    if dataset in BORROWED_SCALES:
        return dataset_for_scale(BORROWED_SCALES[dataset])
    return dataset


def for_data(X, loss: str, strategy: str, preset: str = "assignment", **given):
    """The values ``given``, each None filled from the preset table for ``X``.

    Args:
      X: ``(N, D)`` preprocessed rows, with or without a bias column of 1s
        last (its first 1,000 rows measure the features' scale, see
        :func:`dataset_for_scale`; the bias column is left out).
      loss, strategy, preset: the table's key (the data set from the scale).
      **given: name -> value or None, e.g. ``learning_rate=None, reg=1e-3``.
    Returns:
      the values in ``given``'s order.
    """
    if any(v is None for v in given.values()):
        rows = np.asarray(X[:1000], np.float64)
        if rows.shape[1] > 1 and np.all(rows[:, -1] == 1):  # the bias trick's 1s
            rows = rows[:, :-1]
        name = dataset_for_scale(np.sqrt(np.mean(np.square(rows - rows.mean(0)))))
        values = lookup(name, loss, strategy, preset)[0]
        given = {k: values[k] if v is None else v for k, v in given.items()}
    return tuple(given.values())


def decay_steps(schedule: str, num_steps: int) -> int:
    """The default steps per decay: the whole run (exponential), a third (step)."""
    return max(1, num_steps if schedule == "exponential" else num_steps // 3)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def resolve(config, strategy: str | None = None):
    """``config`` with every unset hyperparameter filled from the preset table.

    Args:
      config: any config of :mod:`linopt.configs`, fields left ``None`` to be filled.
      strategy: for a ``TrainConfig`` with ``strategy="all"``: the strategy to
        resolve for (its own preset, at the comparison's ``num_steps``).
    Returns:
      ``(config, sources)``: the filled config (fields that do not apply left
      ``None``) and, for each field the preset filled, the table row it came
      from.
    Raises:
      ValueError: a given value that would change nothing, or a schedule that
        does not decay.
    """
    kind = type(config)
    names = kind.HYPERPARAMETERS
    if not names:
        return config, {}
    loss = getattr(config, "loss", "svm")
    loss = "svm" if loss == "both" else loss
    preset = getattr(config, "preset", "linopt")
    slot = kind.PRESET_SLOT or strategy or config.strategy
    dataset = table_dataset(config.dataset)
    values, sources = lookup(dataset, loss, slot, preset)
    if slot == "sweep":  # the grid's other settings: the strategy's preset
        trained, trained_from = lookup(dataset, loss, config.strategy, preset)
        values, sources = {**trained, **values}, {**trained_from, **sources}
    if strategy is not None:  # one strategy of "all": its preset, the shared steps
        own, own_from = lookup(dataset, loss, strategy, preset)
        values = {**own, "num_steps": values["num_steps"]}
        sources = {**own_from, "num_steps": sources["num_steps"]}
        if config.num_steps is not None:
            values["num_steps"] = config.num_steps
        config = dataclasses.replace(config, strategy=strategy)
    given = {n: getattr(config, n) for n in names if getattr(config, n) is not None}
    merged = dataclasses.replace(
        config, **{**{n: v for n, v in values.items() if n in names}, **given}
    )
    for name in given if strategy is None else ():  # "all": checked as a whole
        _require(
            merged.applies(name),
            f"{name} changes nothing in this run; {_why(merged, name)}",
        )
    if getattr(merged, "schedule", None) in ("step", "exponential"):
        _require(
            merged.decay_rate is not None and merged.decay_rate != 1,
            f"schedule {merged.schedule!r} needs a decay_rate other than 1 "
            "(it would stay constant)",
        )
        if merged.decay_steps is None:
            merged = dataclasses.replace(
                merged,
                decay_steps=decay_steps(merged.schedule, merged.num_steps),
            )
            sources["decay_steps"] = "derived from schedule and num_steps"
    unused = {n: None for n in names if not merged.applies(n)}
    merged = dataclasses.replace(merged, **unused)
    filled = {
        n: sources[n]
        for n in names
        if n not in given and getattr(merged, n) is not None and n in sources
    }
    return merged, filled


def _why(config, name: str) -> str:
    if name == "momentum":
        return "it applies to optimizer momentum or nesterov only"
    if name in ("decay_rate", "decay_steps"):
        return "it applies to schedule step or exponential only"
    strategy = getattr(config, "strategy", "")
    if name == "batch_size" and strategy in ("gradient_descent", "sgd"):
        size = "all" if strategy == "gradient_descent" else 1
        return f"{strategy} uses batch size {size}"
    if name == "init_scale":
        return "the centre is the weights file"
    return f"it does not apply to strategy {strategy}"
