"""Plain numpy references: the vectorized code a student writes for the assignment.

Each function is what the lecture and the CS231n assignment ask for, written
the obvious vectorized way and nothing more: the assignment's layout (``W`` of
shape ``(D, C)``, scores ``X @ W``), ``float32`` arrays as linopt uses them,
numpy's own random generator, and a Python loop wherever the lecture has one.
They serve twice: the tests check linopt against them (an independent
second implementation), and :mod:`benchmarks.run` times linopt against them
on the same data.
"""

from __future__ import annotations

import numpy as np

DELTA = 1.0


def svm_loss(W, X, y, reg=0.0):
    """Mean multiclass SVM loss plus ``reg * sum(W**2)``.

    Args:
      W: ``(D, C)`` weights. X: ``(N, D)`` examples. y: ``(N,)`` int labels.
    Returns:
      the loss, a float.
    """
    rows = np.arange(X.shape[0])
    scores = X @ W
    margins = np.maximum(0, scores - scores[rows, y][:, None] + DELTA)
    margins[rows, y] = 0
    return margins.sum() / X.shape[0] + reg * np.sum(W * W)


def svm_loss_and_gradient(W, X, y, reg=0.0):
    """The assignment's ``svm_loss_vectorized``: the loss and ``dL/dW (D, C)``."""
    n = X.shape[0]
    rows = np.arange(n)
    scores = X @ W
    margins = np.maximum(0, scores - scores[rows, y][:, None] + DELTA)
    margins[rows, y] = 0
    loss = margins.sum() / n + reg * np.sum(W * W)
    coef = (margins > 0).astype(X.dtype)
    coef[rows, y] = -coef.sum(axis=1)
    return loss, X.T @ coef / n + 2 * reg * W


def minibatch_sgd(
    X,
    y,
    *,
    num_steps=1500,
    batch_size=200,
    learning_rate=1e-7,
    reg=2.5e4,
    num_classes=10,
    init_scale=1e-3,
    seed=0,
):
    """The assignment's ``LinearClassifier.train``: sample a batch with
    replacement, take the loss and gradient, step. Returns ``(W, losses)``."""
    rng = np.random.default_rng(seed)
    W = init_scale * rng.standard_normal((X.shape[1], num_classes), X.dtype)
    history = np.empty(num_steps)
    for step in range(num_steps):
        batch = rng.choice(X.shape[0], batch_size, replace=True)
        history[step], grad = svm_loss_and_gradient(W, X[batch], y[batch], reg)
        W -= learning_rate * grad
    return W, history


def random_search(X, y, *, num_tries=1000, scale=1e-4, num_classes=10, seed=0):
    """The lecture's random search: ``num_tries`` draws of ``scale * randn``,
    each scored on all of ``X``; returns ``(best_W, best_loss)``."""
    rng = np.random.default_rng(seed)
    best_W, best_loss = None, np.inf
    for _ in range(num_tries):
        W = scale * rng.standard_normal((X.shape[1], num_classes), X.dtype)
        loss = svm_loss(W, X, y)
        if loss < best_loss:
            best_W, best_loss = W, loss
    return best_W, best_loss


def random_local_search(
    X, y, *, num_steps=1000, step_size=1e-4, init_scale=1e-3, num_classes=10, seed=0
):
    """The lecture's random local search: try ``W + step_size * randn``, keep it
    if the loss drops; returns ``(W, loss)``."""
    rng = np.random.default_rng(seed)
    W = init_scale * rng.standard_normal((X.shape[1], num_classes), X.dtype)
    best_loss = svm_loss(W, X, y)
    for _ in range(num_steps):
        W_try = W + step_size * rng.standard_normal(W.shape, X.dtype)
        loss = svm_loss(W_try, X, y)
        if loss < best_loss:
            W, best_loss = W_try, loss
    return W, best_loss
