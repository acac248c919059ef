"""How far a run is from the optimum of its own objective: ``L(W_t) - L*``.

- :func:`optimum`: ``L*`` of ``loss + reg * sum(W**2)`` on the training rows
  by :func:`linopt.lbfgs.optimum` in float64 (x64 enabled only inside), with
  its certificate, what it proves, and the wall time.
- :func:`objective`: that objective at many kept weights, in float64.
- :func:`extreme_eigenvalues`: ``lambda_max`` of the Hessian at ``W*``
  (:func:`linopt.curvature.top_eigenpairs`), ``lambda_min`` by Lanczos on
  ``lambda_max I - H``, and its floor ``2 reg``.
- :func:`linear_rate`: gradient descent's measured per-step contraction of
  ``L - L*`` beside the one the condition number predicts,
  ``max(|1 - lr lambda_min|, |1 - lr lambda_max|)**2`` (:func:`contraction`).
- :func:`analyze`: all of it for the runs of ``--strategy=all``.

Only softmax with ``reg > 0`` is smooth and strongly convex (``mu >= 2
reg``): there a small gradient certifies ``L(W*) - min L <= |grad|**2 / (4
reg)``. The SVM's hinge is not smooth and a loss without reg need not attain
its minimum (separable rows: the infimum is 0): their ``L*`` is only the best
found, an upper bound on the minimum, and ``L - L*`` may dip below 0.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from linopt import curvature, lbfgs, losses, optimizers, plots

# A float32 loss is within ULPS * eps32 * (L + S) of its exact value, S the
# mean over rows of max_c |score|: each term logsumexp(s) - s_y subtracts
# numbers of size S, each rounded to eps32 * S, and the reductions round at
# eps32 * L. Measured on digits: 0.03 eps32 * (L + S) at L-BFGS's weights.
FLOAT32_LOSS_ULPS = 4
EPS32 = float(np.finfo(np.float32).eps)


def resolution(loss_value: float, W, X) -> float:
    """How far a float32 loss near ``W`` may be off: ``ULPS eps32 (L + S)``."""
    scale = jnp.mean(jnp.max(jnp.abs(X @ jnp.asarray(W, X.dtype).T), axis=1))
    return FLOAT32_LOSS_ULPS * EPS32 * (abs(loss_value) + float(scale))


class Reference(NamedTuple):
    """``L*`` of one objective and what vouches for it."""

    loss: str
    reg: float
    value: float  # L* = L(W*), float64
    params: np.ndarray  # (C, D) float64: W*
    grad_norm: float  # |grad L(W*)|
    grad_norm_ratio: float  # |grad L(W*)| / |grad L(W0 = 0)|
    certified: bool  # softmax, reg > 0 and grad_norm_ratio <= tol
    gap_bound: float | None  # L(W*) - min L <= this (softmax, reg > 0)
    best_found_only: bool  # not a proven minimum: the lowest loss seen
    num_steps: int  # L-BFGS iterations, all chunks
    num_evaluations: int  # loss-and-gradient evaluations
    wall_time_s: float  # compile included
    note: str

    def summary(self) -> dict:
        """JSON-ready: every field but ``params``."""
        return {k: v for k, v in self._asdict().items() if k != "params"}


def optimum(
    loss, X, y, reg, *, num_classes, tol=1e-7, max_steps=1000, chunk_steps=100,
    time_budget_s=None,
) -> Reference:  # fmt: skip
    """``L*`` of ``loss + reg * sum(W**2)`` on ``(X, y)`` (``C`` classes), in
    float64 (x64 enabled for this alone: float32 rows convert exactly).

    L-BFGS from ``W0 = 0`` in chunks of ``chunk_steps`` iterations (one
    compiled program; a chunk restarts the curvature memory at the best
    weights so far) until ``|grad L| <= tol |grad L(W0)|``, a chunk stalls
    (the precision's floor), ``max_steps``, or a chunk ends past
    ``time_budget_s`` seconds.
    """
    start = time.perf_counter()
    with jax.enable_x64(True):
        X, y = jnp.asarray(X, jnp.float64), jnp.asarray(y, jnp.int32)  # no copy
        W, g0, opt, steps, evaluations = None, None, None, 0, 0
        while True:
            # A chunk's tol is relative to its own start, W: rescaled to W0's.
            chunk_tol = tol if g0 is None else tol * g0 / max(opt.grad_norm, 1e-300)
            new = lbfgs.optimum(
                loss, X, y, reg, tol=chunk_tol, max_steps=chunk_steps,
                params=W, num_classes=num_classes,
            )  # fmt: skip
            g0 = float(new.grad_norms[0]) if g0 is None else g0
            improved = opt is None or new.loss < opt.loss
            steps += new.num_steps
            evaluations += new.num_evaluations
            opt = new if improved else opt
            W = opt.params
            done = opt.grad_norm <= tol * g0 or not improved or steps >= max_steps
            done |= new.num_steps < chunk_steps  # certified or stalled
            spent = time.perf_counter() - start
            if done or (time_budget_s is not None and spent >= time_budget_s):
                break
    ratio = opt.grad_norm / g0 if g0 > 0 else 0.0
    convex = loss == "softmax" and reg > 0
    certified = convex and bool(ratio <= tol)  # a gradient bounds nothing else
    bound = opt.grad_norm**2 / (4 * reg) if convex else None
    if convex:
        note = "softmax + reg, 2 reg-strongly convex: L* - min L <= |grad|^2/(4 reg)"
        note += f" = {bound:.2g}" + ("" if certified else f", tol {tol:g} not met")
    elif loss == "svm":
        note = (
            "svm: the hinge is not smooth, its gradient certifies nothing: L* is "
            "only the best found by L-BFGS (an upper bound on the minimum)"
        )
    else:
        note = (
            "no reg: not strongly convex, the minimum need not be attained "
            "(separable rows: the infimum is 0); L* is only the best found"
        )
    return Reference(
        loss, float(reg), float(opt.loss), np.asarray(opt.params, np.float64),
        float(opt.grad_norm), float(ratio), certified, bound, not convex, steps,
        evaluations, time.perf_counter() - start, note,
    )  # fmt: skip


def objective(loss: str, reg: float, params, X, y) -> np.ndarray:
    """``loss + reg * sum(W**2)`` on ``(X, y)`` at each of ``params`` ``(K, C,
    D)``, in float64 (one multiply for all ``K``); returns ``(K,)``."""
    with jax.enable_x64(True):
        X, Ws = jnp.asarray(X, jnp.float64), jnp.asarray(params, jnp.float64)
        values = _objective(Ws, X, jnp.asarray(y, jnp.int32), reg, loss=loss)
        return np.asarray(jax.device_get(values), np.float64)


@functools.partial(jax.jit, static_argnames="loss")
def _objective(Ws, X, y, reg, *, loss):
    scores = jnp.einsum("nd,kcd->knc", X, Ws)
    per_example = jax.vmap(losses.PER_EXAMPLE[loss], in_axes=(0, None))
    data = jnp.mean(per_example(scores, y), axis=1)
    return data + reg * jnp.sum(Ws**2, axis=(1, 2))


class Eigenvalues(NamedTuple):
    lambda_max: float  # Lanczos on H (a Ritz value: a lower bound)
    lambda_max_residual: float  # |H v - lambda v| of its Ritz vector
    lambda_min_floor: float  # 2 reg: the L2 term's, a lower bound
    lambda_min_lanczos: float  # Lanczos on lambda_max I - H (an upper bound)


def extreme_eigenvalues(loss, reg, W, X, y, *, key, num_iters=30) -> Eigenvalues:
    """The Hessian's extreme eigenvalues at ``W``, in ``X``'s dtype.

    ``lambda_min`` is estimated by Lanczos on ``lambda_max I - H``, whose top
    eigenvalue is ``lambda_max - lambda_min``; for softmax it meets the
    floor ``2 reg``, since adding one row to every class's weights changes no
    probability (those ``D`` directions hold the L2 term alone).
    """
    fn, X = losses.LOSSES[loss], jnp.asarray(X)
    W = jnp.asarray(W, X.dtype)
    args = (X, jnp.asarray(y, jnp.int32), reg)
    top_key, min_key = jax.random.split(key)
    top = curvature.top_eigenpairs(fn, W, *args, key=top_key, k=1, num_iters=num_iters)
    lam_max = float(top.eigenvalues[0])
    shifted = float(_shifted_top(fn, num_iters, W, min_key, lam_max, *args))
    return Eigenvalues(lam_max, float(top.residuals[0]), 2.0 * reg, lam_max - shifted)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _shifted_top(loss_fn, num_iters, W, key, shift, *args):
    def matvec(v):
        return shift * v - curvature.hvp(loss_fn, W, v.reshape(W.shape), *args).ravel()

    v0 = jax.random.normal(key, (W.size,), W.dtype)
    krylov = curvature.lanczos(matvec, v0, num_iters, key=key)
    return jnp.linalg.eigvalsh(krylov.tridiagonal())[-1]


def contraction(learning_rates, lambda_min: float, lambda_max: float) -> np.ndarray:
    """Each step's predicted factor on ``L - L*`` of a quadratic with Hessian
    eigenvalues in ``[lambda_min, lambda_max]``: the slowest mode's
    ``max(|1 - lr lambda_min|, |1 - lr lambda_max|)**2``."""
    lr = np.asarray(learning_rates, np.float64)
    return np.maximum(np.abs(1 - lr * lambda_min), np.abs(1 - lr * lambda_max)) ** 2


class Rate(NamedTuple):
    predicted: float  # geometric mean of contraction() over the measured steps
    measured: float | None  # (gap_b / gap_a) ** (1 / (b - a)); None: not meaningful
    tolerance: float  # float32 rounding's effect on measured (see linear_rate)
    first_step: int  # a, b: 1-based steps whose losses bound the last half
    last_step: int
    gap_first: float  # L - L* at a and b
    gap_last: float
    note: str


def linear_rate(step_losses, steps, learning_rates, L_star, eig, *, delta):
    """Gradient descent's measured :class:`Rate` over the last half of its
    run, beside the geometric mean of :func:`contraction` (with ``eig``'s
    ``lambda_max`` and floor) over the same updates.

    ``step_losses`` at the 1-based ``steps`` are the full-batch losses before
    each update (float32); ``learning_rates[s - 1]`` is update ``s``'s step;
    a float32 loss and ``L_star`` are off by at most ``delta``
    (:func:`resolution` plus L*'s ``gap_bound``). Measured: ``(g_b / g_a) **
    (1 / (b - a))``, the geometric mean of the successive ratios of ``g = L -
    L*``, so its log is off by at most ``(delta / g_a + delta / g_b) / (b - a)``:
    ``tolerance`` is that times the rate. None (not meaningful) once ``g_b``
    is within ``10 delta``.
    """
    values, steps = np.asarray(step_losses, np.float64), np.asarray(steps)
    i = int(np.searchsorted(steps, steps[-1] // 2 + 1))  # the last half's first
    a, b = int(steps[i]), int(steps[-1])
    g_a, g_b = values[i] - L_star, values[-1] - L_star
    lrs = np.asarray(learning_rates)[a - 1 : b - 1]
    rho = contraction(lrs, eig.lambda_min_floor, eig.lambda_max)
    predicted = float(np.exp(np.mean(np.log(rho))))
    measured, tol, note = None, 0.0, "geometric mean of (L_t+1 - L*) / (L_t - L*)"
    if b <= a or not np.all(np.isfinite(values[i:])):
        note = "too few finite steps in the last half to measure a rate"
    elif g_b <= 10 * delta:
        note = (
            f"L - L* = {g_b:.2g} at the end is within 10x float32's rounding of "
            f"the loss ({delta:.2g}): no rate to measure"
        )
    else:
        measured = float((g_b / g_a) ** (1.0 / (b - a)))
        tol = measured * float(np.expm1((delta / g_a + delta / g_b) / (b - a)))
    return Rate(predicted, measured, tol, a, b, float(g_a), float(g_b), note)


class Run(NamedTuple):
    """What :func:`analyze` needs of one strategy's run."""

    loss: str
    reg: float
    examples: np.ndarray  # (K,) the x of each kept point: examples evaluated
    params: np.ndarray  # (K, C, D) the weights there; the last the final
    values: np.ndarray | None  # (K,) the objective there on all training rows,
    # as the run evaluated it (float32); None: evaluated here, in float64


class Descent(NamedTuple):
    """Full-batch gradient descent's per-step history, for :func:`linear_rate`."""

    name: str  # its key in analyze's runs
    losses: np.ndarray  # full-batch loss at each kept step
    steps: np.ndarray  # their 1-based numbers
    learning_rates: np.ndarray  # update s's at s - 1
    examples_per_step: int
    not_applicable: str | None = None  # why no rate applies (svm, momentum, ...)


def descent_history(config, losses_, steps, status: str, num_train: int) -> Descent:
    """The :class:`Descent` of a resolved ``gradient_descent`` config's run:
    its schedule's step sizes, and why no rate applies, if none does."""
    c, why = config, None
    if c.loss == "svm":
        why = "svm: the hinge is not smooth (its Hessian is 0 but at the kinks)"
    elif not c.reg > 0:
        why = "no reg: not strongly convex, no linear rate is predicted"
    elif c.optimizer != "sgd":
        why = f"optimizer {c.optimizer}: plain gradient descent's rate only"
    elif status != "completed":
        why = f"gradient descent {status}"
    decay = 1.0 if c.decay_rate is None else c.decay_rate
    lr = optimizers.schedule(
        c.schedule, c.learning_rate, decay_rate=decay, decay_steps=c.decay_steps or 1
    )(np.arange(c.num_steps))
    lr = np.asarray(lr, np.float64)
    return Descent("gradient_descent", losses_, steps, lr, num_train, why)


def analyze(
    runs: dict[str, Run], X, y, *, num_classes, key, descent=None, tol=1e-7,
    max_steps=1000, time_budget_s=None, num_iters=30,
) -> tuple[dict, dict]:  # fmt: skip
    """``L*`` per distinct (loss, reg) of ``runs`` (float64), each run's ``L -
    L*`` and gradient descent's linear rate (eigenvalues in ``X``'s dtype).

    Returns:
      ``(report, curves)``: ``report`` JSON-ready (``optima``; ``strategies``:
      each run's ``L_star``, final ``suboptimality`` (float64) and along-run
      ``gap``; ``gradient_descent_rate``); ``curves``: name -> ``(examples, L
      - L*)``, and ``"predicted"`` (the dashed line) when a rate applies.
    """
    problems = dict.fromkeys((r.loss, r.reg) for r in runs.values())
    budget = dict(num_classes=num_classes, tol=tol, max_steps=max_steps,
                  time_budget_s=time_budget_s)  # fmt: skip
    with jax.enable_x64(True):  # one float64 copy of X for all of it
        X64 = jnp.asarray(X, jnp.float64)
        refs = {p: optimum(p[0], X64, y, p[1], **budget) for p in problems}
        exact = {n: objective(r.loss, r.reg, r.params, X64, y) for n, r in runs.items()}
    del X64
    for p, ref in refs.items():  # "the best found" is the best anywhere, runs too
        if not ref.best_found_only:
            continue
        name = min((n for n, r in runs.items() if (r.loss, r.reg) == p),
                   key=lambda n: exact[n].min())  # fmt: skip
        if exact[name].min() < ref.value:
            refs[p] = ref._replace(
                value=float(exact[name].min()),
                params=np.asarray(runs[name].params[np.argmin(exact[name])]),
                note=ref.note + f"; {name}'s run went lower: its lowest is L*",
            )
    res = {p: resolution(r.value, r.params, jnp.asarray(X)) for p, r in refs.items()}
    report = {"optima": [{**r.summary(), "float32_resolution": res[p]}
                         for p, r in refs.items()], "strategies": {}}  # fmt: skip
    curves = {}
    for name, r in runs.items():
        ref = refs[(r.loss, r.reg)]
        values = exact[name] if r.values is None else r.values
        gaps = np.asarray(values, np.float64) - ref.value
        curves[name] = (np.asarray(r.examples), gaps)
        report["strategies"][name] = {
            "L_star": ref.value,
            "L_star_best_found_only": ref.best_found_only,
            "suboptimality": float(exact[name][-1] - ref.value),
            "float32_resolution": res[(r.loss, r.reg)],
            "examples": np.asarray(r.examples).tolist(),
            "gap": gaps.tolist(),
        }
    rate, out = _rate(descent, runs, refs, res, X, y, key, num_iters)
    report["gradient_descent_rate"] = out
    if rate is not None:  # the dashed line: from the gap at a, each step's factor
        a, b = rate.first_step, rate.last_step
        lrs = descent.learning_rates[a - 1 : b - 1]
        rho = contraction(lrs, out["lambda_min_floor"], out["lambda_max"])
        gaps = rate.gap_first * np.concatenate([[1.0], np.cumprod(rho)])
        curves["predicted"] = (np.arange(a - 1, b) * descent.examples_per_step, gaps)
    return report, curves


def figure(path, report, curves, *, regs, num_train, evaluated_here, title):
    """``suboptimality.png``: :func:`analyze`'s curves on log axes, each run's
    reg and rate in its label, values below float32's rounding of ``L*``
    (the largest :func:`resolution` of the optima) drawn on a dotted line
    there; the predicted rate dashed."""
    rate, runs = report["gradient_descent_rate"], report["strategies"]
    floor = max(o["float32_resolution"] for o in report["optima"])  # one line
    measured, predicted = {}, {}
    for name, (x, gap) in curves.items():
        if name == "predicted":
            label = (
                f"gradient_descent, predicted bound x{rate['predicted_rate']:.6g} "
                f"a step\n(lr {rate['learning_rate_first']:.2g}, lambda_min >= 2 "
                f"reg = {rate['lambda_min_floor']:.2g}, lambda_max "
                f"{rate['lambda_max']:.3g})"
            )
            predicted[label] = (x, gap)
            continue
        best = runs[name]["L_star_best_found_only"] and ", L* only the best found"
        label = f"{name} (reg {regs[name]:g}{best or ''})"
        if name == "gradient_descent" and rate["measured_rate"] is not None:
            label += f"\nmeasured x{rate['measured_rate']:.6g} a step, last half"
        if np.any(gap < floor):
            label += "\n(below float32's rounding: drawn on its dotted line)"
        measured[label] = (x, np.maximum(gap, floor))
    where = "float64, at the kept weights" if evaluated_here else "float32, the run's"
    return plots.measured_and_predicted(
        path, measured, predicted, title=title,
        xlabel="examples evaluated (rows of X a loss or gradient touched)",
        ylabel=f"L(W_t) - L*: loss + reg on all {num_train} training rows\n"
        f"({where}; L*: L-BFGS, float64, each strategy's reg)",
        hlines={"float32 rounding of L near W* (resolution)": floor},
    )  # fmt: skip


RENAMED = {"predicted": "predicted_rate", "measured": "measured_rate"}


def _rate(descent, runs, refs, res, X, y, key, num_iters):
    empty = {"predicted_rate": None, "measured_rate": None}
    if descent is None or descent.not_applicable:
        return None, {**empty, "note": getattr(descent, "not_applicable", None)
                      or "no full-batch gradient descent run"}  # fmt: skip
    run = runs[descent.name]
    ref = refs[(run.loss, run.reg)]
    eig = extreme_eigenvalues(run.loss, run.reg, ref.params, X, y, key=key,
                              num_iters=num_iters)  # fmt: skip
    delta = res[(run.loss, run.reg)] + (ref.gap_bound or 0.0)
    rate = linear_rate(descent.losses, descent.steps, descent.learning_rates,
                       ref.value, eig, delta=delta)  # fmt: skip
    lrs = descent.learning_rates[rate.first_step - 1 : rate.last_step - 1]
    lanczos = contraction(lrs, eig.lambda_min_lanczos, eig.lambda_max)
    return rate, {
        **{RENAMED.get(k, k): v for k, v in rate._asdict().items()},
        **eig._asdict(),
        "condition_number": eig.lambda_max / eig.lambda_min_floor,
        "learning_rate_first": float(lrs[0]) if len(lrs) else None,
        "learning_rate_last": float(lrs[-1]) if len(lrs) else None,
        # The rate were lambda_min the Lanczos estimate, not the floor.
        "predicted_rate_lanczos_lambda_min": float(np.exp(np.mean(np.log(lanczos)))),
        "float32_loss_ulps": FLOAT32_LOSS_ULPS,
        "delta": delta,
    }
