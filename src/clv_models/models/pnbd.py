"""Pareto/NBD: the Pareto / negative-binomial-distribution model of repeat purchasing.

Schmittlein, Morrison & Colombo (1987), "Counting Your Customers: Who Are They and What Will They
Do Next?", Management Science 33(1):1-24; Fader & Hardie (2005), "A Note on Deriving the
Pareto/NBD Model and Related Expressions", brucehardie.com note 009 (FH below; equation numbers
refer to it).

While active, a customer buys at Poisson rate λ ~ Gamma(r, α); their lifetime is exponential with
rate μ ~ Gamma(s, β), independent of λ. Unlike the BG/NBD, a customer can die without buying
again, so P(alive) < 1 for customers with no repeat purchase too. Data per customer: ``frequency``
x (repeat purchases), ``recency`` t_x and ``T``, in the model's time unit; α and β are in that unit,
r and s have none.

The likelihood (FH eq. 18-20) is written through one integral over the time of death τ:

    L = Γ(r+x) α^r β^s / Γ(r) · [ (α+T)^−(r+x) (β+T)^−s  +  s·I(t_x, T) ],
    I(u, v) = ∫_u^v (α+τ)^−(r+x) (β+τ)^−(s+1) dτ,

the first term "alive at T", the second "died at τ ∈ (t_x, T]" (FH eq. 19-20 is the same with
I in closed form through ₂F₁). scipy has no derivatives of ₂F₁ with respect to its parameters, and
their series (what pymc-marketing differentiates) converges like zⁿ with z = |α−β|/(max(α,β)+t),
slowly where the two scales differ. The integral instead gives the likelihood, its gradient and
its Hessian from the same quadrature nodes, exactly consistent with one another (see
:func:`_log_concave_quadrature`); it is checked against the ₂F₁ form (FH eq. 22-23, as lifetimes
and pymc-marketing evaluate it) and against 60-digit arithmetic in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import digamma, expit, gammaln
from scipy.stats import nbinom
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError
from clv_models.models._mle import (
    factorize_rows,
    group_values,
    trigamma,
)
from clv_models.models._mle import weighted_sum as _wsum
from clv_models.models._persistence import ParametricModelMixin
from clv_models.models._repeat_purchase_fit import fit_repeat_purchases
from clv_models.models._validation import rfm_arrays
from clv_models.timeunits import Horizon, parse_horizon

PARAMS = ("r", "alpha", "s", "beta")

# Gauss-Legendre nodes per integral. Against 60-digit ₂F₁ on 63 hand-picked and 400 random
# (r, α, s, β, x, t_x, T), scales 0.01 to 1,000, x up to 500, the worst absolute error of ln I was
# 2.8e-7 with 16 nodes, 6.4e-11 with 24 and 4.5e-13 with 32 (the rounding of ln I, |ln I| ≤ 2,400).
QUADRATURE_NODES = 32
_NODES, _NODE_WEIGHTS = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
# The integrand is cut where it falls below e^−36 ≈ 2e-16 of its peak: what is left out is below
# the rounding of the sum.
LEVEL_DROP = 36.0
# Newton steps that find the cut points; each keeps the cut on the safe (wider) side.
LEVEL_STEPS = 8
# Rows per block of the (rows × nodes) arrays: 8,192 × 32 doubles = 2 MiB each.
CHUNK_ROWS = 8_192


@dataclass(frozen=True)
class _DeathTime:
    """ψ(u) = ln of the integrand of I(lower, upper) times dτ/du, in u = ln(m+τ) − ln(m+lower)
    with m = min(α, β), c = max(α, β), d = c − m (one value per row):

    ψ = (1 − p_m)(b + u) − p_c ln(d + e^{b+u}),  b = ln(m + lower),

    p_m, p_c the exponents of the m and c factors, (r+x, s+1) in the order of (α, β). Concave:
    ψ″ = −p_c d e^σ/(d+e^σ)² ≤ 0 (in ln(c+τ) it would be convex). ``aux`` is (m+τ, ln(c+τ))."""

    base: np.ndarray
    power_m: np.ndarray
    power_c: np.ndarray
    shift: float

    def log_density(self, u: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        sigma = _column(self.base, u) + u
        grown = np.exp(sigma)
        log_c = np.log(self.shift + grown)
        return _column(1.0 - self.power_m, u) * sigma - _column(self.power_c, u) * log_c, (grown, log_c)

    def slope(self, u: np.ndarray) -> np.ndarray:
        grown = np.exp(self.base + u)
        return 1.0 - self.power_m - self.power_c * grown / (self.shift + grown)


@dataclass(frozen=True)
class _PurchaseThenDeath:
    """ψ(u) for ∫_0^t τ^x (α+τ)^−(r+x) (β+τ)^−(s+1) dτ in u = ln(1 + τ/m), m = min(α, β):

    ψ = x ln(m·expm1(u)) + (1 − p_m)(ln m + u) − p_c ln(d + m e^u),

    concave (ln expm1 is concave), −∞ at u = 0 when x > 0. τ = m·expm1(u) is exact near τ = 0,
    where e^σ − m would cancel."""

    x: np.ndarray
    scale: float
    power_m: np.ndarray
    power_c: np.ndarray
    shift: float

    def log_density(self, u: np.ndarray) -> tuple[np.ndarray, None]:
        with np.errstate(divide="ignore", invalid="ignore"):  # x = 0 at u = 0: 0 · (−∞), replaced below
            purchases = _column(self.x, u) * np.log(self.scale * np.expm1(u))
        purchases = np.where(_column(self.x, u) == 0, 0.0, purchases)
        value = (
            purchases + _column(1.0 - self.power_m, u) * (np.log(self.scale) + u)
            - _column(self.power_c, u) * np.log(self.shift + self.scale * np.exp(u))
        )
        return value, None

    def slope(self, u: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            purchases = np.where(self.x == 0, 0.0, self.x * np.exp(u) / np.expm1(u))
        grown = self.scale * np.exp(u)
        return purchases + 1.0 - self.power_m - self.power_c * grown / (self.shift + grown)


def _column(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Per-row values as a column when ``like`` is (rows × nodes)."""
    return values[:, None] if np.ndim(like) == 2 and np.ndim(values) == 1 else values


@dataclass(frozen=True)
class _Quadrature:
    """∫ e^ψ(u) du by Gauss-Legendre: ln of its value per row; the nodes u (rows × nodes); their
    weights normalised to sum to one per row (the integrand's own distribution, for moments);
    and the integrand's ``aux`` at the nodes."""

    log_integral: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    aux: Any


def _log_concave_quadrature(
    integrand: _DeathTime | _PurchaseThenDeath, left: np.ndarray, right: np.ndarray, peak: np.ndarray
) -> _Quadrature:
    """∫ e^ψ(u) du over [left, right] per row, for a concave ψ whose maximum on the interval is at
    ``peak``; ψ(left) must be finite or, where it is −∞, ``left`` is moved inside first.

    The integrand is log-concave, so the set where it is within e^−``LEVEL_DROP`` of its peak is
    one interval, and outside it the integrand falls at least as fast as its tangent at the cut,
    leaving out less than e^−36 of the total. Newton steps from the ends of the interval towards
    the peak find the cut points: on a concave function the tangent lies above the curve, so
    every step stays outside the level set and the interval only shrinks to it. Gauss-Legendre
    on what remains integrates a smooth function that varies by a factor e^36 at most. The
    variable is an offset from the lower end: for t_x close to T, the width of the interval
    would be lost in the rounding of ln(min(α,β)+t_x) otherwise.
    """
    top, _ = integrand.log_density(peak)
    level = top - LEVEL_DROP
    ends = []
    for start in (right, left):
        end = np.array(start, dtype=float, copy=True)
        for _ in range(LEVEL_STEPS):
            value, _ = integrand.log_density(end)
            below = value < level
            if not below.any():
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                step = (level - value) / integrand.slope(end)
            end = np.where(below, end + step, end)
        ends.append(end)
    upper, lower = ends
    half = 0.5 * (upper - lower)
    nodes = (0.5 * (upper + lower))[:, None] + half[:, None] * _NODES
    psi, aux = integrand.log_density(nodes)
    # Relative to the peak: no overflow or underflow however large the exponents.
    weights = np.exp(psi - top[:, None])
    weights *= _NODE_WEIGHTS
    total = weights.sum(axis=1)
    weights /= total[:, None]
    with np.errstate(divide="ignore"):
        log_integral = top + np.log(half) + np.log(total)
    return _Quadrature(log_integral, nodes, weights, aux)


def _exponents(params: tuple[float, float, float, float], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exponents (p_m, p_c) of the (min(α,β)+τ) and (max(α,β)+τ) factors of
    (α+τ)^−(r+x) (β+τ)^−(s+1)."""
    r, alpha, s, beta = params
    rate_power, death_power = r + x, np.full_like(x, s + 1.0)
    return (rate_power, death_power) if alpha <= beta else (death_power, rate_power)


@dataclass(frozen=True)
class _DeathMoments:
    """Per row: ln I(lower, upper) and, on request, the mean and covariance of
    (ln(α+τ), 1/(α+τ), ln(β+τ), 1/(β+τ)) under the normalised integrand (the density of the
    time of death τ given death in (lower, upper]), in that order."""

    log_integral: np.ndarray
    mean: np.ndarray | None = None  # rows × 4
    covariance: np.ndarray | None = None  # rows × 4 × 4


def _death_moments(
    params: tuple[float, float, float, float], x: np.ndarray, lower: np.ndarray, upper: np.ndarray, order: int = 0
) -> _DeathMoments:
    """I(lower, upper) = ∫ (α+τ)^−(r+x) (β+τ)^−(s+1) dτ per row (``lower`` < ``upper``), with the
    moments of the normalised integrand up to ``order`` (0, 1 or 2), by :class:`_DeathTime`.
    ψ′ = 0 at e^σ = d(1−p_m)/(p_c−1+p_m) when p_m < 1, so that is the peak if it falls inside
    the interval; otherwise ψ falls throughout and the peak is the lower end."""
    _, alpha, _, beta = params
    n = len(x)
    log_integral = np.empty(n)
    mean = np.empty((n, 4)) if order >= 1 else None
    covariance = np.empty((n, 4, 4)) if order >= 2 else None
    alpha_smaller = alpha <= beta
    smaller, shift = min(alpha, beta), abs(alpha - beta)
    for start in range(0, n, CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        power_m, power_c = _exponents(params, x[rows])
        base = np.log(smaller + lower[rows])
        width = np.log1p((upper[rows] - lower[rows]) / (smaller + lower[rows]))
        rising = 1.0 - power_m
        with np.errstate(divide="ignore", invalid="ignore"):
            interior = np.log(shift * rising / (power_c - rising)) - base
        peak = np.where((rising > 0) & (shift > 0), np.clip(np.nan_to_num(interior, nan=0.0), 0.0, width), 0.0)
        quad = _log_concave_quadrature(_DeathTime(base, power_m, power_c, shift), np.zeros_like(width), width, peak)
        log_integral[rows] = quad.log_integral
        if order == 0:
            continue
        grown, log_c = quad.aux
        log_m = base[:, None] + quad.nodes
        # 1/(m+τ) and 1/(c+τ) by division: an exp per node costs as much as the rest of a moment.
        inverse_m, inverse_c = np.reciprocal(grown), np.reciprocal(grown + shift)
        if alpha_smaller:
            features = (log_m, inverse_m, log_c, inverse_c)
        else:
            features = (log_c, inverse_c, log_m, inverse_m)
        means = [np.einsum("nk,nk->n", quad.weights, f) for f in features]
        assert mean is not None
        mean[rows] = np.column_stack(means)
        if order == 1:
            continue
        assert covariance is not None
        # Centred before multiplying: ln(α+τ) ≈ 4 ± 0.1 would lose digits in E[g²] − E[g]².
        centred = [f - m[:, None] for f, m in zip(features, means, strict=True)]
        weighted = [quad.weights * c for c in centred]
        for i in range(4):
            for j in range(i, 4):
                value = np.einsum("nk,nk->n", weighted[i], centred[j])
                covariance[rows, i, j] = value
                covariance[rows, j, i] = value
    return _DeathMoments(log_integral, mean, covariance)


def _log_purchase_death_integral(
    params: tuple[float, float, float, float], x: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """ln ∫_0^t τ^x (α+τ)^−(r+x) (β+τ)^−(s+1) dτ per row (t > 0), by :class:`_PurchaseThenDeath`
    (u = ln(1 + τ/m); dτ = m e^u du is in ψ through its (1 − p_m) u term).

    ψ′ falls from +∞ at u = 0 (x > 0) to below zero; its root, the peak, is found by bisection.
    Where ψ(0) = −∞, the left end starts at the first of u_peak/2, u_peak/4, … below the cut."""
    _, alpha, _, beta = params
    smaller, shift = min(alpha, beta), abs(alpha - beta)
    power_m, power_c = _exponents(params, x)
    integrand = _PurchaseThenDeath(x, smaller, power_m, power_c, shift)
    width = np.log1p(t / smaller)
    low, high = np.zeros_like(width), width.copy()
    for _ in range(64):
        middle = 0.5 * (low + high)
        rising = integrand.slope(middle) >= 0
        low, high = np.where(rising, middle, low), np.where(rising, high, middle)
    peak = np.where(integrand.slope(width) >= 0, width, np.where(integrand.slope(np.zeros_like(width)) <= 0, 0.0, low))
    level = integrand.log_density(peak)[0] - LEVEL_DROP
    left = np.where(x > 0, peak, 0.0)
    for _ in range(1_100):  # halving from u_peak ≥ 1e-300 reaches 0 within 1,075 steps
        above = (x > 0) & ~(integrand.log_density(left)[0] < level)
        if not above.any():
            break
        left = np.where(above, 0.5 * left, left)
    return _log_concave_quadrature(integrand, left, width, peak).log_integral


def _alive_log_terms(
    params: tuple[float, float, float, float], x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """B = −(r+x) ln(α+T) − s ln(β+T): ln of the "alive at T" term without the factor of x alone."""
    r, alpha, s, beta = params
    return -(r + x) * np.log(alpha + T) - s * np.log(beta + T)


def _mixture_log_terms(
    params: tuple[float, float, float, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(B, M) per row: ln of "alive at T" and ln s + ln I(t_x, T) of "died in (t_x, T]", both
    without the common factor Γ(r+x) α^r β^s / Γ(r). M = −∞ where t_x = T."""
    _, _, s, _ = params
    alive = _alive_log_terms(params, x, T)
    dead = np.full_like(alive, -np.inf)
    open_rows = t_x < T
    if open_rows.any():
        dead[open_rows] = np.log(s) + _death_moments(params, x[open_rows], t_x[open_rows], T[open_rows]).log_integral
    return alive, dead


def log_likelihood_terms(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-row log-likelihood (FH eq. 18 with the integral of eq. 19-20, see the module docstring):

    ln L = A1 + ln(e^B + e^M),
    A1 = lnΓ(r+x) − lnΓ(r) + r ln α + s ln β,     B = −(r+x) ln(α+T) − s ln(β+T),
    M = ln s + ln ∫_{t_x}^T (α+τ)^−(r+x) (β+τ)^−(s+1) dτ,

    the sum taken with log-sum-exp (no overflow for heavy buyers, whose terms are ~e^−1000).
    """
    r, alpha, s, beta = (float(v) for v in params)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    alive, dead = _mixture_log_terms((r, alpha, s, beta), x, t_x, T)
    return gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + np.logaddexp(alive, dead)


@dataclass(frozen=True)
class _Data:
    """Distinct (x, t_x, T) rows with weights, plus what depends on x alone (lnΓ, ψ, ψ′ once per
    distinct x). Rows with t_x < T carry the "died in (t_x, T]" term; rows with t_x = T (a purchase
    at the cutoff, or T = 0) have only "alive at T"."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    weights: np.ndarray
    x_values: np.ndarray
    x_weights: np.ndarray
    total_weight: float
    open_rows: np.ndarray

    @classmethod
    def build(cls, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> _Data:
        x_values, _, x_weights = group_values(x, weights)
        return cls(x=x, t_x=t_x, T=T, weights=weights, x_values=x_values, x_weights=x_weights,
                   total_weight=float(weights.sum()), open_rows=np.flatnonzero(t_x < T))


def _log_likelihood_derivatives(
    params: np.ndarray, data: _Data, hessian: bool = True
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Weighted total log-likelihood, its gradient and (if ``hessian``) its Hessian w.r.t.
    (r, α, s, β); the formulas are in :func:`log_likelihood_gradient` and
    :func:`log_likelihood_hessian`."""
    r, alpha, s, beta = (float(v) for v in params)
    xv, wx, W = data.x_values, data.x_weights, data.total_weight
    # A1: terms of x alone, summed with the total weight of each distinct x.
    value = W * (-gammaln(r) + r * np.log(alpha) + s * np.log(beta)) + _wsum(wx, gammaln(r + xv))
    gradient = np.array([
        W * (np.log(alpha) - digamma(r)) + _wsum(wx, digamma(r + xv)),
        W * r / alpha,
        W * np.log(beta),
        W * s / beta,
    ])

    x, T, w = data.x, data.T, data.weights
    r_x = r + x
    log_alpha_T, log_beta_T = np.log(alpha + T), np.log(beta + T)
    inverse_alpha_T, inverse_beta_T = 1.0 / (alpha + T), 1.0 / (beta + T)
    alive = -r_x * log_alpha_T - s * log_beta_T
    # ∇B = (−ln(α+T), −(r+x)/(α+T), −ln(β+T), −s/(β+T)).
    grad_alive = np.column_stack([-log_alpha_T, -r_x * inverse_alpha_T, -log_beta_T, -s * inverse_beta_T])

    open_rows = data.open_rows
    moments = _death_moments((r, alpha, s, beta), x[open_rows], data.t_x[open_rows], T[open_rows],
                             order=2 if hessian else 1)
    dead = np.full_like(alive, -np.inf)
    dead[open_rows] = np.log(s) + moments.log_integral
    mixture = np.logaddexp(alive, dead)
    # Posterior probability of "died in (t_x, T]" given the data: w_M = e^M / (e^B + e^M).
    w_dead = np.zeros_like(alive)
    w_dead[open_rows] = expit(dead[open_rows] - alive[open_rows])
    w_alive = 1.0 - w_dead
    value += _wsum(w, mixture)

    # ∇M = E[∇ ln f] + (0, 0, 1/s, 0) over the density of τ given death in (t_x, T], with
    # ln f = −(r+x) ln(α+τ) − (s+1) ln(β+τ).
    mean = moments.mean
    assert mean is not None
    r_x_open = r_x[open_rows]
    grad_dead = np.column_stack([-mean[:, 0], -r_x_open * mean[:, 1], 1.0 / s - mean[:, 2], -(s + 1.0) * mean[:, 3]])
    wa = w * w_alive
    gradient += np.einsum("n,nj->j", wa, grad_alive)
    wd_open = (w * w_dead)[open_rows]
    gradient += np.einsum("n,nj->j", wd_open, grad_dead)
    if not hessian:
        return float(value), gradient, None

    h = np.zeros((4, 4))
    h[0, 0] = _wsum(wx, trigamma(r + xv)) - W * trigamma(r)
    h[0, 1] = W / alpha
    h[1, 1] = -W * r / alpha**2
    h[2, 3] = W / beta
    h[3, 3] = -W * s / beta**2
    # w_B ∇²B: ∂²/∂r∂α = −1/(α+T), ∂²/∂α² = (r+x)/(α+T)², ∂²/∂s∂β = −1/(β+T), ∂²/∂β² = s/(β+T)².
    h[0, 1] -= _wsum(wa, inverse_alpha_T)
    h[1, 1] += _wsum(wa * r_x, inverse_alpha_T * inverse_alpha_T)
    h[2, 3] -= _wsum(wa, inverse_beta_T)
    h[3, 3] += s * _wsum(wa, inverse_beta_T * inverse_beta_T)
    # w_M ∇²M = w_M (Cov[∇ ln f] + E[∇² ln f] − diag(0, 0, 1/s², 0)), with ∇ ln f =
    # −(ln(α+τ), (r+x)/(α+τ), ln(β+τ), (s+1)/(β+τ)) and ∇² ln f: ∂²/∂r∂α = −1/(α+τ),
    # ∂²/∂α² = (r+x)/(α+τ)², ∂²/∂s∂β = −1/(β+τ), ∂²/∂β² = (s+1)/(β+τ)².
    cov = moments.covariance
    assert cov is not None
    scale = np.column_stack([np.ones_like(r_x_open), r_x_open, np.ones_like(r_x_open), np.full_like(r_x_open, s + 1.0)])
    # The signs of ∇ ln f cancel in its covariance: Cov[g_i, g_j] = scale_i scale_j Cov[f_i, f_j].
    h += np.einsum("n,ni,nj,nij->ij", wd_open, scale, scale, cov)
    second_alpha = cov[:, 1, 1] + mean[:, 1] ** 2  # E[1/(α+τ)²]
    second_beta = cov[:, 3, 3] + mean[:, 3] ** 2
    h[0, 1] -= _wsum(wd_open, mean[:, 1])
    h[1, 1] += _wsum(wd_open * r_x_open, second_alpha)
    h[2, 3] -= _wsum(wd_open, mean[:, 3])
    h[3, 3] += (s + 1.0) * _wsum(wd_open, second_beta)
    h[2, 2] -= float(np.sum(wd_open)) / s**2
    # Mixture: + w_B w_M (∇B − ∇M)(∇B − ∇M)ᵀ.
    difference = grad_alive[open_rows] - grad_dead
    h += np.einsum("n,ni,nj->ij", wd_open * w_alive[open_rows], difference, difference)
    lower = np.tril_indices(4, -1)
    h[lower] = h.T[lower]
    return float(value), gradient, h


def _log_likelihood_gradient(params: np.ndarray, data: _Data) -> tuple[float, np.ndarray]:
    value, gradient, _ = _log_likelihood_derivatives(params, data, hessian=False)
    return value, gradient


def log_likelihood_gradient(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    """Weighted total log-likelihood (the sum of :func:`log_likelihood_terms`) and its analytic
    gradient w.r.t. (r, α, s, β):

    ∂/∂r = ψ(r+x) − ψ(r) + ln α − w_B ln(α+T) − w_M E[ln(α+τ)],
    ∂/∂α = r/α − (r+x) (w_B/(α+T) + w_M E[1/(α+τ)]),
    ∂/∂s = ln β − w_B ln(β+T) + w_M (1/s − E[ln(β+τ)]),
    ∂/∂β = s/β − w_B s/(β+T) − w_M (s+1) E[1/(β+τ)],

    with w_M = e^M/(e^B + e^M) the posterior probability of having died in (t_x, T], w_B = 1 − w_M
    = P(alive), and E[·] over the time of death τ given death in (t_x, T] (density ∝ the integrand
    of I), by the same quadrature nodes as the likelihood.
    """
    return _log_likelihood_gradient(np.asarray(params, dtype=float), _Data.build(x, t_x, T, weights))


def log_likelihood_hessian(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Hessian of the weighted total log-likelihood w.r.t. (r, α, s, β), summed over rows:

    ∇²A1: ∂²/∂r² = ψ′(r+x) − ψ′(r),  ∂²/∂r∂α = 1/α,  ∂²/∂α² = −r/α²,  ∂²/∂s∂β = 1/β,  ∂²/∂β² = −s/β²;
    ∇² ln(e^B + e^M) = w_B ∇²B + w_M ∇²M + w_B w_M (∇B − ∇M)(∇B − ∇M)ᵀ, with
    ∇²B: ∂²/∂r∂α = −1/(α+T), ∂²/∂α² = (r+x)/(α+T)², ∂²/∂s∂β = −1/(β+T), ∂²/∂β² = s/(β+T)²;
    ∇²M = Cov[∇ ln f] + E[∇² ln f] − diag(0, 0, 1/s², 0) for ln f = −(r+x) ln(α+τ) − (s+1) ln(β+τ)
    (the second derivative of the log of an integral), E and Cov over τ as in
    :func:`log_likelihood_gradient`.
    """
    hessian = _log_likelihood_derivatives(np.asarray(params, dtype=float), _Data.build(x, t_x, T, weights))[2]
    return hessian  # type: ignore[return-value]  # always computed when hessian=True


def _expected_purchases_bracket(s: float, beta_T: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(β+T)/(s−1) · [1 − ((β+T)/(β+T+t))^(s−1)] (FH eq. 41 without the rest), as
    −(β+T)·expm1(−(s−1) ln(1 + t/(β+T)))/(s−1): no cancellation for small t or s near 1, and the
    limit (β+T) ln(1 + t/(β+T)) at s = 1."""
    growth = np.log1p(t / beta_T)
    if s == 1.0:
        return beta_T * growth
    return beta_T * -np.expm1(-(s - 1.0) * growth) / (s - 1.0)


class ParetoNBDModel(ParametricModelMixin, BaseEstimator):
    """Pareto/NBD estimator with the scikit-learn contract; a drop-in for
    :class:`~clv_models.models.BetaGeoModel` (same methods, arguments and fitted attributes).

    Parameters
    ----------
    penalizer:
        L2 penalty on (r, α·u, s, β·u) added to the mean negative log-likelihood, where
        u = 1 / max(T) makes it independent of the time unit: BetaGeoModel's convention. lifetimes'
        ``ParetoNBDFitter`` adds its penalty to the *total* negative log-likelihood of the rows it
        is given (divided by their mean weight), so ``ParetoNBDFitter(penalizer_coef=c)`` on n
        unweighted customers is ``ParetoNBDModel(penalizer=c / n)``.
    unit:
        Time unit of the training data (``"D"`` or ``"W"``). ``None`` takes it from the RFM
        table's ``attrs["unit"]`` (set by :func:`clv_models.features.rfm_summary`).

    Fitted attributes: ``params_`` (dict r, alpha, s, beta; α and β in the model's unit),
    ``standard_errors_``, ``log_likelihood_`` (total, natural log), ``converged_``,
    ``diagnostic_``, ``unit_``, ``n_customers_``, ``n_distinct_``.
    """

    PARAMETER_NAMES = PARAMS
    EXTRA_ATTRIBUTES = ("n_customers", "n_distinct")

    def __init__(self, penalizer: float = 0.0, unit: str | None = None) -> None:
        self.penalizer = penalizer
        self.unit = unit

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, rfm: pd.DataFrame, y: Any = None, sample_weight: np.ndarray | None = None) -> ParetoNBDModel:
        """Maximum likelihood on the distinct (frequency, recency, T) rows, with counts as weights
        (:func:`~clv_models.models._repeat_purchase_fit.fit_repeat_purchases`)."""
        fit_repeat_purchases(
            self, rfm, sample_weight, data_type=_Data, derivatives=_log_likelihood_derivatives,
            penalty_scale=lambda scale: np.array([1.0, scale, 1.0, scale]), start=lambda data, weights: self._start(data.x, data.T, weights),
        )  # fmt: skip
        return self

    @staticmethod
    def _start(x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Moment-based start (logs): r = s = 1, α = 1/(purchases per unit time), β = the mean T
        (a mean lifetime of the order of the observation period)."""
        mean_T = max(_wsum(weights, T) / max(float(weights.sum()), 1e-12), 1e-6)
        rate = max(_wsum(weights, x) / max(_wsum(weights, T), 1e-12), 1e-6)
        return np.log([1.0, 1.0 / rate, 1.0, mean_T])

    # -- predictions -----------------------------------------------------------------------

    def _unpack(self) -> tuple[float, float, float, float]:
        check_is_fitted(self, "params_")
        return self.params_["r"], self.params_["alpha"], self.params_["s"], self.params_["beta"]

    def _horizon(self, horizon: str | Horizon) -> float:
        return parse_horizon(horizon).in_unit(self.unit_)

    def _arrays(self, rfm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_is_fitted(self, "params_")
        x, t_x, T = rfm_arrays(rfm, ("frequency", "recency", "T"), expected_unit=self.unit_)
        return x, t_x, T

    @staticmethod
    def _per_row(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, compute: Callable[..., np.ndarray]) -> np.ndarray:
        """Evaluate ``compute(x, t_x, T)`` once per distinct row and spread it to the rows: each
        row costs a 32-node quadrature, and real bases have 10-100× fewer distinct rows."""
        codes, first = factorize_rows(x, t_x, T)
        return compute(x[first], t_x[first], T[first])[codes]

    def _log_odds_dead(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """M − B = ln[s I(t_x, T) (α+T)^(r+x) (β+T)^s]: the log odds of 'died in (t_x, T]' vs
        'alive at T' (−∞ where t_x = T)."""
        params = self._unpack()

        def log_odds(xu: np.ndarray, tu: np.ndarray, Tu: np.ndarray) -> np.ndarray:
            alive, dead = _mixture_log_terms(params, xu, tu, Tu)
            return dead - alive

        return self._per_row(x, t_x, T, log_odds)

    def probability_alive(self, rfm: pd.DataFrame) -> np.ndarray:
        """P(alive at T | x, t_x, T) = 1 / (1 + s I(t_x, T) (α+T)^(r+x) (β+T)^s)  (FH eq. 36-37,
        with s/(r+s+x)·A₀ = s·I)."""
        return expit(-self._log_odds_dead(*self._arrays(rfm)))

    def expected_purchases(self, rfm: pd.DataFrame, *, horizon: str | Horizon) -> np.ndarray:
        """E[Y(t) | x, t_x, T]: expected purchases in the next ``horizon`` (FH eq. 41).

        E = P(alive) · (r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^(s−1)]:
        alive at T, λ ~ Gamma(r+x, α+T) and μ ~ Gamma(s, β+T), and E[λ(1 − e^{−μt})/μ] is this.
        """
        r, alpha, s, beta = self._unpack()
        t = self._horizon(horizon)
        x, t_x, T = self._arrays(rfm)
        alive = expit(-self._log_odds_dead(x, t_x, T))
        return alive * (r + x) / (alpha + T) * _expected_purchases_bracket(s, beta + T, np.asarray(t))

    def discounted_expected_purchases(
        self, rfm: pd.DataFrame, steps: np.ndarray, discount: np.ndarray
    ) -> np.ndarray:
        """Σ_k discount_k · (E[Y(steps_k)] − E[Y(steps_{k−1})]) per customer (steps in model units,
        increasing; E[Y(0)] = 0). The time profile of FH eq. 41 depends on T alone: it is summed
        once per distinct T, then scaled by P(alive)·(r+x)/(α+T) per row."""
        r, alpha, s, beta = self._unpack()
        x, t_x, T = self._arrays(rfm)
        alive = expit(-self._log_odds_dead(x, t_x, T))
        age_index, first = factorize_rows(T)
        cumulative = _expected_purchases_bracket(s, (beta + T[first])[None, :], np.asarray(steps, dtype=float)[:, None])
        increments = np.diff(cumulative, axis=0, prepend=0.0)
        per_age = np.einsum("k,ka->a", np.asarray(discount, dtype=float), increments)
        return alive * (r + x) / (alpha + T) * per_age[age_index]

    def probability_no_purchase(self, rfm: pd.DataFrame, *, horizon: str | Horizon) -> np.ndarray:
        """P(no purchase in (T, T+t] | x, t_x, T) = L(x, t_x, T+t) / L(x, t_x, T).

        Buying nothing in (T, T+t] is the same observation as a history (x, t_x) watched until T+t,
        so the probability is a ratio of two likelihoods (the factor of x alone cancels). It equals
        P(dead at T) + P(alive at T)·E[μ/(λ+μ) + λ/(λ+μ)·e^{−(λ+μ)t}] over the posterior of the
        alive (λ ~ Gamma(r+x, α+T), μ ~ Gamma(s, β+T)): the customer either dies before buying
        again or outlives the window without buying.
        """
        params = self._unpack()
        t = self._horizon(horizon)
        x, t_x, T = self._arrays(rfm)

        def ratio(xu: np.ndarray, tu: np.ndarray, Tu: np.ndarray) -> np.ndarray:
            now = np.logaddexp(*_mixture_log_terms(params, xu, tu, Tu))
            later = np.logaddexp(*_mixture_log_terms(params, xu, tu, Tu + t))
            return np.minimum(np.exp(later - now), 1.0)

        return self._per_row(x, t_x, T, ratio)

    def expected_purchases_new_customer(self, *, horizon: str | Horizon) -> float:
        """E[X(t)] for a customer just acquired, over ``horizon`` (FH eq. 27)."""
        return float(self.unconditional_expected_purchases(self._horizon(horizon)))

    def unconditional_expected_purchases(self, t: np.ndarray | float) -> np.ndarray:
        """E[X(t)] = rβ/(α(s−1)) · [1 − (β/(β+t))^(s−1)] (FH eq. 27), repeat purchases of a customer
        just acquired, at each ``t`` ≥ 0 in the model's unit."""
        r, alpha, s, beta = self._unpack()
        t = np.asarray(t, dtype=float)
        if (t < 0).any():
            raise ClvInputError("E[X(t)] needs t ≥ 0")
        return r / alpha * _expected_purchases_bracket(s, np.asarray(beta), t)

    def probability_of_purchases(self, t: np.ndarray | float, x: np.ndarray | float) -> np.ndarray:
        """P(X(t) = x): probability of exactly ``x`` repeat purchases in (0, t] (model units) for a
        customer just acquired. Broadcasts ``t`` against ``x``.

        P = NB(x; r, α/(α+t)) (β/(β+t))^s
            + s β^s α^r Γ(r+x)/(Γ(r) x!) ∫_0^t τ^x (α+τ)^−(r+x) (β+τ)^−(s+1) dτ:

        alive at t with x purchases, or died at τ ≤ t after x purchases (E over λ of the Poisson
        probability of x, and over μ of e^{−μt} and of the density μe^{−μτ} of the time of death;
        NB is the negative binomial pmf). Fader & Hardie's note 012 ("Deriving an Expression for
        P(X(t) = x) Under the Pareto/NBD Model") gives the integral in closed form, as a
        difference of ₂F₁ sums that cancels for large x; here it is taken by the likelihood's
        quadrature (:class:`_PurchaseThenDeath`).
        """
        r, alpha, s, beta = self._unpack()
        t, x = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(x, dtype=float))
        if (t < 0).any() or (x < 0).any() or (x != np.floor(x)).any():
            raise ClvInputError("P(X(t) = x) needs t ≥ 0 and whole numbers x ≥ 0")
        shape = t.shape
        t, x = t.ravel(), x.ravel()
        survive = nbinom.logpmf(x, r, alpha / (alpha + t)) + s * (np.log(beta) - np.log(beta + t))
        died = np.full_like(t, -np.inf)
        positive = t > 0
        if positive.any():
            died[positive] = (
                np.log(s) + s * np.log(beta) + r * np.log(alpha)
                + gammaln(r + x[positive]) - gammaln(r) - gammaln(x[positive] + 1)
                + _log_purchase_death_integral((r, alpha, s, beta), x[positive], t[positive])
            )
        return np.exp(np.logaddexp(survive, died)).reshape(shape)

    # -- persistence and interop -----------------------------------------------------------

    @classmethod
    def from_lifetimes(cls, fitter: Any, unit: str) -> ParetoNBDModel:
        """Wrap a ``lifetimes.ParetoNBDFitter`` (its time unit must be stated). A fitter that was
        fitted penalises the total over its rows (see the class docstring): its coefficient is
        divided by their number; one without training rows (as :meth:`to_lifetimes` makes) is
        taken as it is."""
        params = {k: float(fitter.params_[k]) for k in PARAMS}
        rows = len(getattr(fitter, "data", ())) or 1
        return cls.from_dict(
            {"model": "ParetoNBDModel", "penalizer": float(getattr(fitter, "penalizer_coef", 0.0)) / rows,
             "unit": unit, "params": params, "diagnostic": "imported from lifetimes"}
        )

    def to_lifetimes(self) -> Any:
        """A ``lifetimes.ParetoNBDFitter`` with these parameters, for its predictions (lifetimes
        must be installed). Its ``penalizer_coef`` is this model's; refitting it would apply it to
        the total, not the mean (to refit this optimum on n customers, use ``penalizer · n``)."""
        from lifetimes import ParetoNBDFitter

        fitter = ParetoNBDFitter(penalizer_coef=self.penalizer)
        fitter.params_ = pd.Series(self._unpack(), index=list(PARAMS))
        # lifetimes attaches this alias in fit(); its CLV function calls it.
        fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
        return fitter
