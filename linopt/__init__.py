"""linopt: how linear classifiers are optimized, in JAX.

``import linopt`` gives the library's modules: ``linopt.data``,
``linopt.losses``, ``linopt.gradcheck``, ``linopt.strategies``,
``linopt.landscape``, ``linopt.plots`` and ``linopt.runs``.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "data",
    "cifar10",
    "losses",
    "gradcheck",
    "strategies",
    "driver",
    "optimizers",
    "training",
    "checkpoint",
    "landscape",
    "sweep",
    "sharding",
    "fast",
    "plots",
    "runs",
    "lecture",
    "errors",
)


def __getattr__(name):  # lazy, so `import linopt` stays fast and light
    if name in _SUBMODULES:
        return importlib.import_module(f"linopt.{name}")
    raise AttributeError(f"module 'linopt' has no attribute {name!r}")
