"""linopt: how linear classifiers are optimized, in JAX.

``import linopt`` is cheap: each module below is imported the first time it
is used (``linopt.losses.svm_loss``), and ``dir(linopt)`` lists them all.

=================== =========================================================
``losses``          scores, margins, SVM and softmax losses, their gradients
``data``            every data set by name; preprocessing and splits
``cifar10``         the official CIFAR-10 files: safe readers, checked download
``cifar100``        the official CIFAR-100 archive: fine and coarse labels
``mnist``           MNIST and Fashion-MNIST from their official IDX files
``idx``             the IDX format, read exactly (gzipped or not)
``downloads``       checked downloads, safe extraction, the data folder
``arrays``          your own arrays: a .npz or a folder of .npy, checked, no pickle
``strategies``      random search, random local search, gradient descent
``lbfgs``           L-BFGS (optax, zoom line search) as a strategy; certified optima
``driver``          the one compiled, chunked loop and the Strategy protocol
``chunks``          chunks sized by wall time; the metrics kept in memory
``metrics_file``    metrics.csv appended a chunk at a time, cut back on resume
``optimizers``      optax optimizers and schedules by name, traced values
``sweep``           a strategy vmapped over a hyperparameter grid and seeds
``training``        a config to a strategy; train and evaluate
``configs``         one frozen config per experiment
``presets``         the one table of default hyperparameters
``gradcheck``       relative errors, verdicts, full / sparse / directional checks
``finite_differences``  numerical gradients (vectorized and the note's loop)
``gradient_checks``  the check of linopt's own losses: kinks, h sweep, scale
``landscape``       1-D and 2-D slices through W, the lecture's toy
``step_size``       the loss after one step of each size
``curvature``       Hessian-vector products, top eigenpairs, trace, step predictions
``spectrum``        spectral density (Lanczos quadrature), sharpness, per-class blocks
``suboptimality``   L - L* against a float64 L-BFGS optimum; gradient descent's rate
``noise``           gradient noise: tr(Sigma), B_simple, a batch gradient's error
``batch_size``      steps and examples to a target loss per batch size; B_crit
``checkpoint``      whole-run checkpoints, no pickle
``sharding``        data parallelism over devices and hosts
``runs``            run folders, atomic files, config.json
``plots``           figures without pyplot
``figure_thread``   figures drawn on one worker thread while JAX runs
``reference``       plain numpy versions of the lecture's code
``lecture``         the lecture's own numbers
``errors``          errors a user can fix
``compile_cache``   JAX's persistent compilation cache, beside the data
``evaluation``      confusion matrix, per-class accuracy, scikit-learn baselines
``estimator``       ``LinearClassifier``: a scikit-learn classifier on the driver
``model_io``        a trained model as one file, no pickle; ``load_model``
=================== =========================================================

``linopt.LinearClassifier`` and ``linopt.load_model`` are the two names
outside a module: a classifier people fit, and a saved one they apply.
"""

import importlib

__version__ = "0.1.0"

__all__ = [
    "losses",
    "data",
    "cifar10",
    "cifar100",
    "mnist",
    "idx",
    "downloads",
    "arrays",
    "strategies",
    "lbfgs",
    "driver",
    "chunks",
    "metrics_file",
    "optimizers",
    "sweep",
    "training",
    "configs",
    "presets",
    "gradcheck",
    "finite_differences",
    "gradient_checks",
    "landscape",
    "step_size",
    "curvature",
    "spectrum",
    "suboptimality",
    "noise",
    "batch_size",
    "checkpoint",
    "sharding",
    "runs",
    "plots",
    "figure_thread",
    "reference",
    "lecture",
    "errors",
    "compile_cache",
    "estimator",
    "model_io",
    "evaluation",
]
# The classifier and its saved models, at the top level.
EXPORTS = {"LinearClassifier": "estimator", "load_model": "model_io"}


def __getattr__(name):  # lazy, so `import linopt` stays fast and light
    if name in __all__:
        return importlib.import_module(f"linopt.{name}")
    if name in EXPORTS:
        return getattr(importlib.import_module(f"linopt.{EXPORTS[name]}"), name)
    raise AttributeError(f"module 'linopt' has no attribute {name!r}")


def __dir__():
    return sorted([*__all__, *EXPORTS, "__version__"])
