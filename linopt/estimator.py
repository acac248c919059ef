"""A scikit-learn classifier over every strategy and loss of linopt.

``LinearClassifier(strategy="minibatch", loss="softmax").fit(X, y)`` learns
the preprocessing (the training rows' mean, then the bias trick's 1) and
trains through :func:`linopt.training.train`, the same driver run as
``experiments.train``; ``predict``, ``predict_proba`` (the softmax of the
scores), ``decision_function`` and ``score`` take raw rows, numpy in and
out, so it works in ``Pipeline``, ``GridSearchCV`` and ``cross_val_score``.

Unset hyperparameters come from the preset table (:mod:`linopt.presets`) of
a data set. ``dataset="auto"`` picks the one whose features have the nearest
scale (RMS after centering,
:data:`linopt.presets.FEATURE_SCALES`), so pixels of 0-255 get
CIFAR-10's values and features of order 1-10 digits'; ``preset_dataset_``
and ``hyperparameters_`` say what a fit used. The CS231n assignment's call is
:meth:`LinearClassifier.train`.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy.special
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from linopt import configs, data, losses, presets, training

# The estimator's hyperparameters: the TrainConfig fields of the same names.
HYPERPARAMETERS = configs.TrainConfig.HYPERPARAMETERS


class LinearClassifier(ClassifierMixin, BaseEstimator):
    """A linear classifier ``W (C, D + 1)`` trained by one of linopt's strategies.

    Args:
      strategy: ``"random_search"``, ``"random_local_search"``,
        ``"gradient_descent"``, ``"minibatch"`` or ``"sgd"``.
      loss: ``"softmax"`` (so ``predict_proba`` is the model's own) or ``"svm"``
        (``predict_proba`` is then the softmax of the margins, uncalibrated).
      dataset: whose preset row fills unset hyperparameters: ``"auto"`` (by the
        features' scale), ``"digits"``, ``"cifar10"`` or ``"synthetic"``.
      preset: ``"linopt"`` or ``"assignment"`` (the CS231n assignment's).
      random_state: an int seed (deterministic), None or a
        ``numpy.random.RandomState`` (a seed drawn from it).
      the rest: the hyperparameters of :class:`linopt.configs.TrainConfig`;
        None takes the preset's value, and one that would change nothing
        (``batch_size`` for ``"sgd"``) is refused at ``fit``.

    Attributes (after ``fit``):
      classes_: ``(C,)`` labels. coef_: ``(C, F)``; intercept_: ``(C,)``, so
      that ``X @ coef_.T + intercept_`` is ``decision_function(X)`` on raw rows.
      params_: ``(C, F + 1)``, linopt's ``W`` on preprocessed rows (its last
      column multiplies the appended 1). mean_: ``(F,)`` training mean.
      preprocessing_: the :class:`linopt.data.Preprocessing` of the rows (a
      loaded model's may standardize or have no bias: ``params_`` ``(C, F)``).
      loss_history_: the loss of every step (of every try for random search).
      n_iter_, status_: steps run; ``"completed"`` or ``"diverged"``.
      preset_dataset_, hyperparameters_: the preset row used; every value.
    """

    def __init__(
        self,
        strategy="minibatch",
        loss="softmax",
        dataset="auto",
        preset="linopt",
        num_steps=None,
        learning_rate=None,
        reg=None,
        batch_size=None,
        sampling=None,
        optimizer=None,
        schedule=None,
        decay_rate=None,
        decay_steps=None,
        momentum=None,
        init_scale=None,
        search_scale=None,
        population=None,
        step_size=None,
        block=None,
        random_state=0,
    ):
        self.strategy = strategy
        self.loss = loss
        self.dataset = dataset
        self.preset = preset
        self.num_steps = num_steps
        self.learning_rate = learning_rate
        self.reg = reg
        self.batch_size = batch_size
        self.sampling = sampling
        self.optimizer = optimizer
        self.schedule = schedule
        self.decay_rate = decay_rate
        self.decay_steps = decay_steps
        self.momentum = momentum
        self.init_scale = init_scale
        self.search_scale = search_scale
        self.population = population
        self.step_size = step_size
        self.block = block
        self.random_state = random_state

    def _config(self, X_centered: np.ndarray) -> configs.TrainConfig:
        """The resolved TrainConfig of this fit (raises ValueError naming a field)."""
        name = self.dataset
        if name == "auto":
            scale = np.sqrt(np.mean(np.square(X_centered)))
            name = presets.dataset_for_scale(scale)
        seed = self.random_state
        if not isinstance(seed, int | np.integer):
            seed = int(check_random_state(seed).randint(2**31 - 1))
        given = {n: getattr(self, n) for n in HYPERPARAMETERS}
        config = configs.TrainConfig(
            dataset=name,
            seed=int(seed),
            strategy=self.strategy,
            loss=self.loss,
            preset=self.preset,
            **given,
        )
        return presets.resolve(config)[0]

    def fit(self, X, y):
        """Learn the mean, train ``W`` on the preprocessed rows; returns self."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"fit needs examples of at least 2 classes; y has one class, "
                f"{self.classes_[0]!r}"
            )
        prep, X_train = data.preprocess(X)
        config = self._config(X_train[:, : X.shape[1]])
        names = tuple(str(c) for c in self.classes_)
        empty_X, empty_y = X_train[:0], np.zeros(0, np.int32)
        ds = data.Dataset(
            X_train, y_index.astype(np.int32), empty_X, empty_y, empty_X, empty_y,
            names, (X.shape[1],), prep,
        )  # fmt: skip
        result = training.train(config, ds)
        if result.status == "diverged":
            warnings.warn(
                f"training diverged (a non-finite loss) after {result.num_steps} "
                "steps; kept the last finite weights: lower learning_rate or "
                "step_size",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_fitted(result.params, prep, dataclasses.asdict(config), result.losses)
        self.n_iter_, self.status_ = result.num_steps, result.status
        return self

    def _set_fitted(self, params, preprocessing, config: dict, history) -> None:
        """The fitted attributes from linopt's ``W`` (also :mod:`linopt.model_io`)."""
        p = self.preprocessing_ = preprocessing
        self.params_ = np.asarray(params, np.float32)
        F = self.params_.shape[1] - p.bias
        self.mean_ = np.zeros(F) if p.mean is None else np.asarray(p.mean, np.float64)
        # W [(x - m) / s, 1] = (W / s) x + (b - (W / s) m): coef_ and intercept_
        # act on raw rows.
        W = self.params_.astype(np.float64)
        self.coef_ = W[:, :F] / (1.0 if p.scale is None else p.scale)
        bias = W[:, F] if p.bias else np.zeros(len(W))
        self.intercept_ = bias - self.coef_ @ self.mean_
        self.loss_history_ = np.asarray(history, np.float64)
        self.preset_dataset_ = config["dataset"]
        self.hyperparameters_ = {
            n: config[n] for n in HYPERPARAMETERS if config.get(n) is not None
        }
        self.config_ = config

    def _scores(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        rows = data.transform(X, self.preprocessing_)  # as in training: float32
        return np.asarray(losses.scores(self.params_, rows), np.float64)

    def decision_function(self, X) -> np.ndarray:
        """Scores ``(N, C)`` of raw rows; ``(N,)`` for two classes (class 1 minus 0)."""
        s = self._scores(X)
        return s[:, 1] - s[:, 0] if len(self.classes_) == 2 else s

    def predict_proba(self, X) -> np.ndarray:
        """The softmax of the scores, ``(N, C)``, columns in ``classes_`` order."""
        return scipy.special.softmax(self._scores(X), axis=1)

    def predict_log_proba(self, X) -> np.ndarray:
        return scipy.special.log_softmax(self._scores(X), axis=1)

    def predict(self, X) -> np.ndarray:
        """The label of the highest score of each raw row."""
        best = np.argmax(self._scores(X), axis=1)  # checks fitted first
        return self.classes_[best]

    def train(
        self, X, y, learning_rate=None, reg=None, num_iters=None, batch_size=None
    ):
        """The CS231n assignment's ``train``: set these (None keeps them), fit,
        return the loss history (``loss_history_``).

        ``LinearClassifier(loss="svm", dataset="cifar10").train(X, y,
        learning_rate=1e-7, reg=2.5e4, num_iters=1500, batch_size=200)`` is the
        assignment's ``LinearSVM`` run; ``.predict(X)`` gives its labels.
        """
        given = dict(learning_rate=learning_rate, reg=reg, num_steps=num_iters)
        given["batch_size"] = batch_size
        self.set_params(**{k: v for k, v in given.items() if v is not None})
        return self.fit(X, y).loss_history_

    def save(self, path):
        """One self-describing ``.npz`` (no pickle): see :mod:`linopt.model_io`."""
        from linopt import model_io

        check_is_fitted(self)
        return model_io.save_model(
            path,
            params=self.params_,
            preprocessing=self.preprocessing_,
            classes=self.classes_,
            config=self.config_,
            loss_history=self.loss_history_,
        )
