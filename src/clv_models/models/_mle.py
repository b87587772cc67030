"""Maximum likelihood shared by the BTYD estimators: optimise in log-parameter space with an
analytic gradient and Hessian (Newton), fall back to quasi-Newton and a derivative-free method,
and report what happened."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import zeta

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
# Value, gradient and (when the flag is true, else None) Hessian w.r.t. log-parameters.
SecondOrderObjective = Callable[[np.ndarray, bool], tuple[float, np.ndarray, "np.ndarray | None"]]


def weighted_sum(weights: np.ndarray, values: np.ndarray) -> float:
    """Σ weights·values without BLAS: OpenBLAS's threaded dot fights other processes on a busy
    small machine (measured 31 ms instead of 0.16 ms per Gamma-Gamma gradient on 35k buyers with
    the second core busy) and saves little on vectors this size."""
    return float(np.einsum("i,i->", weights, values))


def trigamma(values: np.ndarray | float) -> np.ndarray:
    """ψ′(z) = ζ(2, z), the Hurwitz zeta function (DLMF 25.11.12): scipy's ``polygamma(1, ·)``
    computes the same through a Python wrapper that costs more than the arithmetic here."""
    return zeta(2.0, values)


class ConvergenceWarning(UserWarning):
    """The optimiser did not converge; the fitted parameters may not be the MLE."""


@dataclass(frozen=True)
class FitResult:
    log_params: np.ndarray
    converged: bool
    diagnostic: str  # which optimiser ended where, with its gradient and iterations


def _guarded(objective: Objective) -> Objective:
    def safe(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(all="ignore"):
            value, grad = objective(log_params)
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(log_params)
        return value, grad

    return safe


def log_space_derivatives(
    params: np.ndarray, gradient: np.ndarray, hessian: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradient and Hessian w.r.t. φ = ln θ from those w.r.t. θ (chain rule, θ = e^φ):

    ∂f/∂φ_i = θ_i ∂f/∂θ_i,      ∂²f/∂φ_i∂φ_j = θ_i θ_j ∂²f/∂θ_i∂θ_j + δ_ij θ_i ∂f/∂θ_i.
    """
    log_gradient = gradient * params
    if hessian is None:
        return log_gradient, None
    return log_gradient, hessian * np.outer(params, params) + np.diag(log_gradient)


class PenalizedObjective:
    """f(φ) = −ln L(θ)/W + penalizer·Σ(θ_i s_i)² at θ = e^φ (W the data's total weight, s the
    penalty scale; ones for Gamma-Gamma), with its gradient and Hessian w.r.t. φ
    (:func:`log_space_derivatives`). ``derivatives(θ, data, hessian=...)`` returns ln L, its
    gradient and (optionally) Hessian w.r.t. θ.

    Remembers its last evaluation with the Hessian: the optimiser's last one is at the optimum,
    where the fit needs ln L and the observed information again.
    """

    def __init__(self, derivatives: Callable[..., Any], data: Any, penalizer: float, penalty_scale: np.ndarray) -> None:
        self.derivatives, self.data = derivatives, data
        self.penalizer, self.penalty_scale = penalizer, penalty_scale
        self._last: tuple[np.ndarray, tuple[float, np.ndarray, np.ndarray]] | None = None

    def natural(self, params: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """ln L, its gradient and Hessian w.r.t. θ (cached for the last point evaluated)."""
        if self._last is not None and np.array_equal(self._last[0], params):
            return self._last[1]
        value, gradient, hessian = self.derivatives(params, self.data)
        self._last = (params.copy(), (value, gradient, hessian))
        return value, gradient, hessian

    def penalty_hessian(self) -> np.ndarray:
        """Hessian of the penalty per unit of weight, w.r.t. θ."""
        return np.diag(2 * self.penalizer * self.penalty_scale**2)

    def __call__(self, log_params: np.ndarray, hessian: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
        params = np.exp(log_params)
        if hessian:
            value, gradient, natural_hessian = self.natural(params)
        else:
            value, gradient, natural_hessian = self.derivatives(params, self.data, hessian=False)
        total_weight = self.data.total_weight
        scaled = params * self.penalty_scale
        penalty = self.penalizer * np.sum(scaled**2)
        mean_gradient = -gradient / total_weight + 2 * self.penalizer * scaled * self.penalty_scale
        mean_hessian = None
        if natural_hessian is not None:
            mean_hessian = -natural_hessian / total_weight + self.penalty_hessian()
        log_gradient, log_hessian = log_space_derivatives(params, mean_gradient, mean_hessian)
        return -value / total_weight + penalty, log_gradient, log_hessian


def _guarded_second_order(objective: SecondOrderObjective) -> SecondOrderObjective:
    def safe(log_params: np.ndarray, hessian: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
        with np.errstate(all="ignore"):
            value, grad, hess = objective(log_params, hessian)
        if (
            not np.isfinite(value) or not np.all(np.isfinite(grad))
            or (hess is not None and not np.all(np.isfinite(hess)))
        ):
            return np.inf, np.zeros_like(log_params), None
        return value, grad, hess

    return safe


NEWTON_GTOL = 1e-9  # max |gradient| at which Newton stops: below BFGS's gtol of 1e-8, in one more step
NEWTON_MAX_ITERATIONS = 60
NEWTON_NOISE = 1e-11  # relative rounding noise allowed in the line search (see _newton)
# Largest change of a log-parameter per iteration (a factor e² ≈ 7): 2 took the fewest evaluations
# on CDNOW and simulated tables (0.5-3 tried); larger steps overshoot along the p-q-γ ridge.
NEWTON_MAX_STEP = 2.0


@dataclass(frozen=True)
class _NewtonEnd:
    log_params: np.ndarray
    value: float
    gradient: np.ndarray
    iterations: int
    message: str


def _newton(objective: SecondOrderObjective, start: np.ndarray) -> _NewtonEnd | None:
    """Damped Newton on a smooth objective: the step solves H·s = −g with H's eigenvalues replaced
    by their absolute values, floored at 1e-10 of the largest (so s is a descent direction even
    where the objective is not convex, and finite where H is singular), capped at
    ``NEWTON_MAX_STEP`` per coordinate, and halved until the Armijo condition
    f(φ + t·s) ≤ f(φ) + 10⁻⁴·t·gᵀs holds (Nocedal & Wright 2006, algorithms 3.1 and 3.3-3.4), or f
    stays within its rounding noise while max |g| shrinks.

    Stops at max |g| ≤ ``NEWTON_GTOL`` or when no step decreases f any more (rounding noise);
    ``None`` when it hits a non-finite value at the start or the iteration limit.
    """
    point = np.asarray(start, dtype=float)
    value, grad, hess = objective(point, True)
    if not np.isfinite(value):
        return None
    for iteration in range(NEWTON_MAX_ITERATIONS):
        if _max_abs(grad) <= NEWTON_GTOL:
            return _NewtonEnd(point, value, grad, iteration, "gradient below tolerance")
        eigenvalues, vectors = np.linalg.eigh((hess + hess.T) / 2)
        magnitudes = np.abs(eigenvalues)
        magnitudes = np.maximum(magnitudes, 1e-10 * max(float(magnitudes.max()), 1e-300))
        step = -vectors @ ((vectors.T @ grad) / magnitudes)  # 4×4 at most: no long-vector BLAS
        largest = float(np.max(np.abs(step)))
        if largest > NEWTON_MAX_STEP:
            step *= NEWTON_MAX_STEP / largest
        slope = float(grad @ step)
        length = 1.0
        for _ in range(30):
            trial = point + length * step
            trial_value, trial_grad, trial_hess = objective(trial, True)
            if np.isfinite(trial_value) and (
                trial_value <= value + 1e-4 * length * slope
                # Near the optimum f changes by less than its rounding error (einsum sums rows one
                # by one: ~√n·ε relative, 3e-13 at 6M rows, measured to stall Newton at 10M
                # customers); a step that does not raise f beyond that noise and shrinks the
                # gradient is progress (cf. Hager & Zhang 2005, approximate Wolfe conditions).
                or (trial_value <= value + NEWTON_NOISE * (1 + abs(value)) and _max_abs(trial_grad) < _max_abs(grad))
            ):
                break
            length /= 2
        else:
            # No decrease even for tiny steps: the gradient is at the rounding noise of the mean.
            return _NewtonEnd(point, value, grad, iteration, "no further decrease (rounding noise)")
        if trial_value == value and np.array_equal(trial, point):
            return _NewtonEnd(point, value, grad, iteration, "step below rounding")
        point, value, grad, hess = trial, trial_value, trial_grad, trial_hess
    return None  # iteration limit: leave it to the quasi-Newton path


def maximise(
    objective: SecondOrderObjective,
    start: np.ndarray,
    *,
    warm_up: SecondOrderObjective | None = None,
    gradient_tolerance: float = 1e-5,
) -> FitResult:
    """Minimise ``objective`` (value, gradient and, on request, Hessian w.r.t. log-parameters)
    from ``start``.

    Damped Newton first (:func:`_newton`): with the exact Hessian it needs 5-10 evaluations where
    BFGS needs 20-30, and its answer is at least as precise. ``warm_up`` is the same objective on a
    subsample: Newton on it first, and its optimum starts the full-data Newton, which then needs
    two or three iterations on the expensive data. If Newton does not end with a gradient within
    ``gradient_tolerance`` (non-finite values, iteration limit, flat or runaway directions), the
    quasi-Newton path :func:`_maximise_quasi_newton` runs from ``start`` as if Newton had not.
    """
    safe = _guarded_second_order(objective)
    newton_start = start
    if warm_up is not None:
        rehearsal = _newton(_guarded_second_order(warm_up), start)
        if rehearsal is not None:
            newton_start = rehearsal.log_params
    end = _newton(safe, newton_start)
    if end is not None and np.isfinite(end.value) and _max_abs(end.gradient) <= gradient_tolerance:
        diagnostic = (
            f"Newton: {end.message}; max |gradient| {_max_abs(end.gradient):.2e} "
            f"(tolerance {gradient_tolerance:.0e}) after {end.iterations} iterations"
        )
        return FitResult(end.log_params, True, diagnostic)

    def first_order(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad, _ = objective(log_params, False)
        return value, grad

    warm_up_first_order = None
    if warm_up is not None:
        def warm_up_first_order(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad, _ = warm_up(log_params, False)
            return value, grad

    return _maximise_quasi_newton(
        first_order, start, warm_up=warm_up_first_order, gradient_tolerance=gradient_tolerance
    )


def _maximise_quasi_newton(
    objective: Objective,
    start: np.ndarray,
    *,
    warm_up: Objective | None = None,
    gradient_tolerance: float = 1e-5,
) -> FitResult:
    """Minimise ``objective`` (value and gradient w.r.t. log-parameters) from ``start``.

    ``warm_up`` is the same objective on a subsample: BFGS on it first, and its optimum and
    inverse-Hessian estimate start the BFGS on the full data, which then needs a few iterations
    instead of dozens (both objectives are means, so their curvature is on the same scale).
    BFGS with the analytic gradient first; if it ends with a large gradient, Nelder-Mead from the
    best point found, then BFGS again. The result with the lowest objective wins.
    """
    safe = _guarded(objective)
    options: dict[str, object] = {"gtol": 1e-8, "maxiter": 2000}
    if warm_up is not None:
        rehearsal = minimize(_guarded(warm_up), start, jac=True, method="BFGS", options=dict(options))
        if np.isfinite(rehearsal.fun):
            start = rehearsal.x
            hess_inv = (rehearsal.hess_inv + rehearsal.hess_inv.T) / 2
            if np.all(np.isfinite(hess_inv)) and np.all(np.linalg.eigvalsh(hess_inv) > 0):
                options["hess_inv0"] = hess_inv

    attempts = []
    first = minimize(safe, start, jac=True, method="BFGS", options=options)
    attempts.append(("BFGS", first, _max_abs(first.jac)))
    # BFGS often reports "precision loss" once the gradient is at the rounding noise of a mean
    # over many rows; only a gradient above tolerance calls for the (slow) fallback.
    if not np.isfinite(first.fun) or attempts[0][2] > gradient_tolerance:
        best = first.x if np.isfinite(first.fun) else start
        simplex = minimize(lambda p: safe(p)[0], best, method="Nelder-Mead",
                           options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 40000})
        polish = minimize(safe, simplex.x, jac=True, method="BFGS", options={"gtol": 1e-8, "maxiter": 2000})
        attempts.append(("Nelder-Mead+BFGS", polish, _max_abs(polish.jac)))
    method, best_result, grad_norm = min(
        attempts, key=lambda item: item[1].fun if np.isfinite(item[1].fun) else np.inf
    )
    converged = bool(np.isfinite(best_result.fun) and grad_norm <= gradient_tolerance)
    diagnostic = (
        f"{method}: {best_result.message}; max |gradient| {grad_norm:.2e} "
        f"(tolerance {gradient_tolerance:.0e}) after {best_result.nit} iterations"
    )
    if not converged:
        warnings.warn(
            f"maximum likelihood did not converge ({diagnostic}); try a penalizer > 0", ConvergenceWarning,
            stacklevel=4,  # _maximise_quasi_newton <- maximise <- fit <- the caller
        )
    return FitResult(best_result.x, converged, diagnostic)


def check_identified(result: FitResult, names: tuple[str, ...], errors: np.ndarray) -> FitResult:
    """Downgrade a 'converged' fit whose parameters ran off to 0 or ∞, or whose Hessian is
    singular: the data do not identify the model (e.g. no repeat purchases at all)."""
    problems = [
        f"{name} = {np.exp(value):.3g} is at the edge of the parameter space"
        for name, value in zip(names, result.log_params, strict=True)
        if abs(value) > 12
    ]
    if not np.all(np.isfinite(errors)):
        problems.append("the Hessian is singular (standard errors undefined)")
    if not problems or not result.converged:
        return result
    diagnostic = f"{result.diagnostic}; not identified: {'; '.join(problems)}"
    warnings.warn(
        f"the data do not identify the model ({'; '.join(problems)}); try a penalizer > 0", ConvergenceWarning,
        stacklevel=4,  # check_identified <- _store_fit <- fit <- the caller
    )
    return replace(result, converged=False, diagnostic=diagnostic)


def _max_abs(gradient: np.ndarray | None) -> float:
    if gradient is None or not np.all(np.isfinite(gradient)):
        return float("inf")
    return float(np.max(np.abs(gradient)))


def standard_errors(hessian: np.ndarray) -> np.ndarray:
    """Standard errors from the observed information: the square roots of the diagonal of the
    inverse Hessian of the *total* (penalised) negative log-likelihood in natural parameters,
    ``hessian`` (analytic, from the model's second derivatives at the optimum). NaN where the
    Hessian is singular or a variance is not positive."""
    n = len(hessian)
    hessian = (hessian + hessian.T) / 2
    try:
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return np.full(n, np.nan)
    variances = np.diag(covariance)
    return np.where(variances > 0, np.sqrt(np.abs(variances)), np.nan)


WARM_UP_ROWS = 20_000  # distinct rows in the subsample that warms up large fits


def warm_up_sample(weights: np.ndarray, size: int = WARM_UP_ROWS) -> np.ndarray | None:
    """Weights of a fixed-seed subsample of ``size`` customers drawn from the distinct rows
    (a row's expected weight is proportional to its count), or ``None`` when the data are small."""
    if len(weights) <= 2 * size:
        return None
    rng = np.random.default_rng(20051)  # fixed: the same data always give the same fit
    draws = rng.choice(len(weights), size=size, replace=True, p=weights / weights.sum())
    return np.bincount(draws, minlength=len(weights)).astype(float)


def small_integer_codes(values: np.ndarray) -> np.ndarray | None:
    """``values`` as int64 when they are all whole numbers in [0, 4n + 1024] (purchase counts,
    whole-day recency and age), else ``None``. Such values are their own dense-enough codes, which
    spares a hash table: daily RFM columns are nearly always of this kind."""
    if not len(values):
        return None
    low, high = float(values.min()), float(values.max())
    if not (low >= 0 and high <= 4 * len(values) + 1024):  # also false for NaN
        return None
    as_int = values.astype(np.int64)
    return as_int if np.array_equal(as_int, values) else None


def group_values(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct ``values``, each row's position among them, and the total weight of each.

    Whole numbers in a small range are counted with ``bincount`` (ascending order), anything else
    hashed with ``pd.factorize`` (order of first appearance)."""
    import pandas as pd

    as_int = small_integer_codes(values)
    if as_int is None:
        index, distinct = pd.factorize(values)
        return np.asarray(distinct, dtype=float), index, np.bincount(index, weights=weights)
    counts = np.bincount(as_int)
    present = counts > 0
    position = np.cumsum(present) - 1
    distinct = np.flatnonzero(present)
    return distinct.astype(float), position[as_int], np.bincount(as_int, weights=weights)[distinct]


def factorize_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..k−1 identifying the distinct rows of equal-length columns, and the index of each
    distinct row's first occurrence. Hash-based, O(n): columns are coded one at a time (small
    whole numbers are their own codes, :func:`small_integer_codes`; anything else is factorized)
    and their codes combined into one int64 key (mixed radix; re-factorized only when the product
    of the sizes could overflow), which a last factorization makes dense.

    ``pd.factorize`` numbers values in order of first appearance, so each distinct row's code is
    one more than the largest code before it: first occurrences are where the running maximum rises.
    """
    import pandas as pd

    key = np.zeros(len(columns[0]), dtype=np.int64)
    radix = 1
    for values in columns:
        column_codes = small_integer_codes(values)
        if column_codes is not None:
            size = int(column_codes.max()) + 1
        else:
            column_codes, uniques = pd.factorize(values)
            size = len(uniques)
        size = max(size, 1)
        if radix * size >= 2**62:
            key, distinct = pd.factorize(key)
            radix = max(len(distinct), 1)
        key = key * size + column_codes
        radix *= size
    codes, _ = pd.factorize(key)
    codes = codes.astype(np.int64, copy=False)
    if not len(codes):
        return codes, np.zeros(0, dtype=np.int64)
    running_max = np.maximum.accumulate(codes)
    rises = np.empty(len(codes), dtype=bool)
    rises[0] = True
    np.not_equal(running_max[1:], running_max[:-1], out=rises[1:])
    return codes, np.flatnonzero(rises)


def compress(columns: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of the given equal-length columns, their counts, and each row's index.

    BTYD likelihoods and predictions depend on the data only through these distinct rows
    (DESIGN.md §6); real bases have 10-100× fewer distinct rows than customers.
    """
    codes, first = factorize_rows(*columns.values())
    counts = np.bincount(codes, minlength=len(first)).astype(float)
    distinct = {name: np.asarray(values, dtype=float)[first] for name, values in columns.items()}
    return distinct, counts, codes
