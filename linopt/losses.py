"""Linear-classifier losses: scores, multiclass SVM, softmax, L2, accuracy.

Shapes follow design.md: ``W: (C, D)``, ``X: (N, D)``, ``y: (N,) int32``,
scores ``X @ W.T: (N, C)``. Every loss is a pure JAX function, so ``jax.grad``
gives its analytic gradient; the hand-derived closed forms of the lecture sit
beside each loss with the same arguments, as an independent check.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

SVM_DELTA = 1.0


def scores(W: jax.Array, X: jax.Array) -> jax.Array:
    """Class scores ``s = X @ W.T``, shape ``(N, C)``."""
    return X @ W.T


def margins(s: jax.Array, y: jax.Array, delta: float = SVM_DELTA):
    """The SVM's hinge arguments ``s_j - s_y + delta`` and where they count.

    The one home of the margin: the hinge, its gradient, the landscape's
    linear pieces and the gradient check's kinks all call this.

    Args:
      s: ``(..., C)`` scores.
      y: ``(...)`` int labels.
      delta: the margin the SVM asks for (1 in the lecture).
    Returns:
      ``(margins, is_correct)``, both ``(..., C)``: ``is_correct`` marks the
      true class, whose entry (always ``delta``) is no hinge.
    """
    correct = jnp.take_along_axis(s, y[..., None], axis=-1)
    is_correct = jax.nn.one_hot(y, s.shape[-1], dtype=bool)
    return s - correct + delta, is_correct


def multiclass_hinge(s: jax.Array, y: jax.Array, delta: float = SVM_DELTA):
    """Per-example Weston-Watkins hinge ``sum_{j != y_i} max(0, s_j - s_y + delta)``.

    ``jax.nn.relu`` has derivative 0 at 0, so a margin exactly at the hinge
    gets no gradient, as in the lecture's strict ``>``.

    Args:
      s: ``(..., C)`` scores.
      y: ``(...)`` int labels.
    Returns:
      ``(...)`` per-example losses.
    """
    m, is_correct = margins(s, y, delta)
    return jnp.sum(jnp.where(is_correct, 0.0, jax.nn.relu(m)), axis=-1)


def softmax_cross_entropy(s: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example ``logsumexp(s) - s_y`` (optax's max-shifted, stable form)."""
    return optax.losses.softmax_cross_entropy_with_integer_labels(s, y)


def l2_penalty(W: jax.Array, reg) -> jax.Array:
    """The lecture's ``reg * sum(W**2)`` (no 1/2; the bias column included)."""
    return reg * jnp.sum(W * W)


def svm_loss(W, X, y, reg=0.0, *, delta: float = SVM_DELTA) -> jax.Array:
    """Mean multiclass SVM loss plus L2: ``1/N sum_i L_i + reg * sum(W**2)``.

    Args:
      W: ``(C, D)`` weights. X: ``(N, D)`` examples. y: ``(N,)`` labels.
      reg: L2 strength (traced; changing it does not recompile).
    Returns:
      scalar loss. With tiny ``W`` it is about ``C - 1`` (9 on CIFAR-10).
    """
    return jnp.mean(multiclass_hinge(scores(W, X), y, delta)) + l2_penalty(W, reg)


def softmax_loss(W, X, y, reg=0.0) -> jax.Array:
    """Mean softmax cross-entropy plus L2; about ``ln C`` for tiny ``W``."""
    return jnp.mean(softmax_cross_entropy(scores(W, X), y)) + l2_penalty(W, reg)


def svm_gradient(W, X, y, reg=0.0, *, delta: float = SVM_DELTA) -> jax.Array:
    """The lecture's closed-form SVM gradient, shape ``(C, D)``.

    ``dL_i/dw_j = 1(s_j - s_y + delta > 0) x_i`` for ``j != y_i`` and
    ``dL_i/dw_y = -(number of such j) x_i``.
    """
    m, is_correct = margins(scores(W, X), y, delta)
    active = jnp.where(is_correct, False, m > 0).astype(X.dtype)
    coef = active - is_correct * jnp.sum(active, axis=1, keepdims=True)
    return coef.T @ X / X.shape[0] + 2 * reg * W


def softmax_gradient(W, X, y, reg=0.0) -> jax.Array:
    """Closed-form softmax gradient ``(p - onehot(y)).T @ X / N + 2 reg W``."""
    p = jax.nn.softmax(scores(W, X), axis=1)
    coef = p - jax.nn.one_hot(y, W.shape[0], dtype=X.dtype)
    return coef.T @ X / X.shape[0] + 2 * reg * W


@jax.jit  # one program, not four eager ops each compiled (and cached) apart
def accuracy(W, X, y) -> jax.Array:
    """Fraction of rows whose highest score is the true class."""
    return jnp.mean(jnp.argmax(scores(W, X), axis=1) == y)


LOSSES = {"svm": svm_loss, "softmax": softmax_loss}
GRADIENTS = {"svm": svm_gradient, "softmax": softmax_gradient}
PER_EXAMPLE = {"svm": multiclass_hinge, "softmax": softmax_cross_entropy}


def per_example_class_major(loss: str, S, y):
    """Per-example losses of class-major scores ``S: (..., C, N)``, shape ``(..., N)``.

    The formula of :data:`PER_EXAMPLE`, on the swapped axes: XLA fuses the
    transpose into one loop over ``S``. (Reducing over the class axis where it
    lies instead hands the sum to a library reduction, ten times slower here
    at ``C = 10``.)
    """
    y = y.reshape((1,) * (S.ndim - 2) + y.shape)  # same rank, broadcast
    return PER_EXAMPLE[loss](jnp.swapaxes(S, -1, -2), y)


def get(name: str):
    """The loss function called ``name`` (``"svm"`` or ``"softmax"``)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]
