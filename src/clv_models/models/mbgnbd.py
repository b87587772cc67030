"""MBG/NBD: the modified beta-geometric / negative-binomial model of repeat purchasing.

Batislam, Denizel & Filiztekin (2007), "Empirical validation and comparison of models for customer
base analysis", International Journal of Research in Marketing 24(3):201-209 (BDF below; its
appendix A derives the expressions); Hoppe & Wagner (2007), "Customer base analysis: the case for a central
variant of the Betageometric/NBD model", Marketing Journal of Research and Management 3(2):75-90;
Wagner & Hoppe (2008), "Erratum on the MBG/NBD model", IJRM 25(3):225-226 (the corrected
conditional expectation, as lifetimes' ``ModifiedBetaGeoFitter`` and pymc-marketing implement it).

The BG/NBD (:mod:`clv_models.models.bgnbd`) with one change: a customer may also drop out at time
zero, right after the first purchase. While active, a customer buys at Poisson rate
λ ~ Gamma(r, α); at the first purchase and after each repeat purchase they drop out with
probability p ~ Beta(a, b). So a customer with no repeat purchase can be dead, and P(alive) < 1
for every customer (under the BG/NBD it is 1 whenever x = 0). Data per customer: ``frequency``
x (repeat purchases), ``recency`` t_x and ``T``, in the model's time unit.

Given λ and p, L(λ, p | x, t_x, T) = λ^x (1−p)^x [(1−p) e^{−λT} + p e^{−λ t_x}] (BDF appendix A;
for x = 0 too, with t_x = 0). Two identities with the BG/NBD carry over its predictions:

* Alive at T, the customer has survived x + 1 drop-out chances, so p | alive ~ Beta(a, b+x+1) and
  λ | alive ~ Gamma(r+x, α+T); from then on they behave as a BG/NBD customer. The conditional
  expectation given alive is therefore the BG/NBD one with b replaced by b + 1 (compare
  ₂F₁(r+x, b+x+1; a+b+x; ·) and (a+b+x)/(a−1) here with ₂F₁(r+x, b+x; a+b+x−1; ·) and
  (a+b+x−1)/(a−1) there), and the BG/NBD code computes it, including its large-b series
  (docs/decisions.md D27).
* P(alive) = 1 / (1 + a/(b+x) ((α+T)/(α+t_x))^(r+x)) equals the BG/NBD P(alive) at b + 1 for
  x > 0; only x = 0 differs (no δ(x>0): the drop-out at time zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import betaln, digamma, expit, gammaln
from scipy.stats import nbinom
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError
from clv_models.models._mle import (
    group_values,
    trigamma,
)
from clv_models.models._mle import weighted_sum as _wsum
from clv_models.models._persistence import ParametricModelMixin
from clv_models.models._repeat_purchase_fit import fit_repeat_purchases
from clv_models.models._validation import rfm_arrays
from clv_models.models.bgnbd import BetaGeoModel
from clv_models.timeunits import Horizon, parse_horizon

PARAMS = ("r", "alpha", "a", "b")


def log_likelihood_terms(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-row log-likelihood (BDF appendix A, in the log form of lifetimes and pymc-marketing):

    ln L = A1 + A2 + A3 + ln(1 + e^D),
    A1 = lnΓ(r+x) − lnΓ(r) + r ln α,     A2 = lnΓ(a+b) + lnΓ(b+x+1) − lnΓ(b) − lnΓ(a+b+x+1),
    A3 = −(r+x) ln(α+T),                  D = ln a − ln(b+x) + (r+x)(ln(α+T) − ln(α+t_x)),

    for every row, x = 0 included (unlike the BG/NBD's δ(x>0)): e^{A1+A2+A3} is "alive at T" and
    e^{A1+A2+A3+D} "dropped out at the last purchase" (at time zero when x = 0). D is the log odds
    of the second, so ln(1 + e^D) is a softplus: no overflow for heavy buyers.
    """
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x + 1) - gammaln(b) - gammaln(a + b + x + 1)
    a3 = -(r + x) * np.log(alpha + T)
    log_odds = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return a1 + a2 + a3 + np.logaddexp(0.0, log_odds)


@dataclass(frozen=True)
class _Data:
    """Distinct (x, t_x, T) rows with weights, plus what depends on x alone.

    Special functions of x (lnΓ, ψ, ψ′) are evaluated once per distinct x; each row carries the
    index of its x. Unlike the BG/NBD every row, x = 0 included, is a two-part mixture, so the rows
    are not split by x > 0.
    """

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    weights: np.ndarray
    x_values: np.ndarray
    x_index: np.ndarray
    x_weights: np.ndarray
    total_weight: float

    @classmethod
    def build(cls, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> _Data:
        x_values, x_index, x_weights = group_values(x, weights)
        return cls(x=x, t_x=t_x, T=T, weights=weights, x_values=x_values, x_index=x_index,
                   x_weights=x_weights, total_weight=float(weights.sum()))


def _log_likelihood_derivatives(
    params: np.ndarray, data: _Data, hessian: bool = True
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Weighted total log-likelihood, its gradient and (if ``hessian``) its Hessian w.r.t.
    (r, α, a, b); the formulas are in :func:`log_likelihood_gradient` and
    :func:`log_likelihood_hessian`. Same layout as the BG/NBD's, with b+x in place of b+x−1 and
    b+x+1, a+b+x+1 in place of b+x, a+b+x, and no rows outside the mixture."""
    r, alpha, a, b = params
    xv, wx, W = data.x_values, data.x_weights, data.total_weight
    # Terms of x alone (A1, A2), summed with the total weight of each distinct x.
    digamma_abx = digamma(a + b + xv + 1)
    value = W * (-gammaln(r) + r * np.log(alpha) + gammaln(a + b) - gammaln(b)) + _wsum(
        wx, gammaln(r + xv) + gammaln(b + xv + 1) - gammaln(a + b + xv + 1)
    )
    d_r = W * (np.log(alpha) - digamma(r)) + _wsum(wx, digamma(r + xv))
    d_alpha = W * r / alpha
    d_a = W * digamma(a + b) - _wsum(wx, digamma_abx)
    d_b = W * (digamma(a + b) - digamma(b)) + _wsum(wx, digamma(b + xv + 1) - digamma_abx)

    # The mixture of "alive at T" (A3) and "dropped out at t_x" (A4 = A3 + D), written as
    # A3 + ln(1 + e^D) with D = ln a − ln(b+x) + (r+x)(L_T − L_t).
    w = data.weights
    r_x = r + data.x
    shifted_T = alpha + data.T
    shifted_t = alpha + data.t_x
    log_T = np.log(shifted_T)
    log_gap = log_T - np.log(shifted_t)  # L_T − L_t ≥ 0
    inverse_T = np.reciprocal(shifted_T, out=shifted_T)
    inverse_gap = np.reciprocal(shifted_t, out=shifted_t)
    inverse_gap -= inverse_T  # 1/(α+t_x) − 1/(α+T) ≥ 0
    shift_b = b + xv
    inverse_b = (1.0 / shift_b)[data.x_index]
    log_odds = (np.log(a) - np.log(shift_b))[data.x_index] + r_x * log_gap
    # w4 = e^D/(1+e^D), the posterior probability of "dropped out at the last purchase", and
    # ln(1+e^D), both from e^{−|D|} ≤ 1 (no overflow; cheaper than expit + logaddexp, as in bgnbd).
    small_exp = np.exp(-np.abs(log_odds))
    softplus = np.log1p(small_exp)
    softplus += np.maximum(log_odds, 0.0)
    w4 = np.where(log_odds >= 0, 1.0, small_exp)
    w4 /= 1.0 + small_exp
    weighted_w4 = w * w4
    value += _wsum(w, softplus - r_x * log_T)
    sum_w4 = float(np.sum(weighted_w4))
    sum_w4_gap = _wsum(weighted_w4, log_gap)
    r_x_gap = r_x * inverse_gap  # (r+x)(1/(α+t_x) − 1/(α+T)) = −∂D/∂α
    sum_w4_r_x_gap = _wsum(weighted_w4, r_x_gap)
    sum_w4_inverse_b = _wsum(weighted_w4, inverse_b)
    d_r -= _wsum(w, log_T) - sum_w4_gap
    d_alpha -= _wsum(w, r_x * inverse_T) + sum_w4_r_x_gap
    d_a += sum_w4 / a
    d_b -= sum_w4_inverse_b
    gradient = np.array([d_r, d_alpha, d_a, d_b])
    if not hessian:
        return float(value), gradient, None

    trigamma_ab = trigamma(a + b)
    sum_trigamma_abx = _wsum(wx, trigamma(a + b + xv + 1))
    h = np.empty((4, 4))
    h[0, 0] = _wsum(wx, trigamma(r + xv)) - W * trigamma(r)
    h[0, 1] = W / alpha
    h[1, 1] = -W * r / alpha**2
    h[2, 2] = W * trigamma_ab - sum_trigamma_abx
    h[2, 3] = h[2, 2]
    h[3, 3] = W * (trigamma_ab - trigamma(b)) + _wsum(wx, trigamma(b + xv + 1)) - sum_trigamma_abx
    # Mixture: w3∇²A3 + w4∇²A4 + w3w4(∇A3−∇A4)(∇A3−∇A4)ᵀ with ∇A3 − ∇A4 = −∇D
    # = (−(L_T−L_t), (r+x)(1/(α+t_x)−1/(α+T)), −1/a, 1/(b+x)).
    weighted_v = weighted_w4 * (1.0 - w4)  # w·w3·w4
    v_gap = weighted_v * log_gap
    v_r_x_gap = weighted_v * r_x_gap
    sum_v = float(np.sum(weighted_v))
    h[0, 0] += _wsum(v_gap, log_gap)
    h[0, 1] += -_wsum(w, inverse_T) - _wsum(weighted_w4, inverse_gap) - _wsum(v_gap, r_x_gap)
    h[0, 2] = float(np.sum(v_gap)) / a
    h[0, 3] = -_wsum(v_gap, inverse_b)
    h[1, 1] += _wsum(w, r_x * (inverse_T * inverse_T)) + _wsum(
        weighted_w4, r_x * (inverse_gap * (inverse_gap + 2 * inverse_T))
    ) + _wsum(v_r_x_gap, r_x_gap)
    h[1, 2] = -float(np.sum(v_r_x_gap)) / a
    h[1, 3] = _wsum(v_r_x_gap, inverse_b)
    h[2, 2] += (sum_v - sum_w4) / a**2
    h[2, 3] += -_wsum(weighted_v, inverse_b) / a
    h[3, 3] += _wsum(weighted_w4 + weighted_v, inverse_b * inverse_b)
    lower = np.tril_indices(4, -1)
    h[lower] = h.T[lower]
    return float(value), gradient, h


def log_likelihood_gradient(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    """Weighted total log-likelihood (the sum of :func:`log_likelihood_terms`) and its analytic
    gradient w.r.t. (r, α, a, b):

    ∂/∂r = ψ(r+x) − ψ(r) + ln α − w₃ ln(α+T) − w₄ ln(α+t_x),
    ∂/∂α = r/α − (r+x)(w₃/(α+T) + w₄/(α+t_x)),
    ∂/∂a = ψ(a+b) − ψ(a+b+x+1) + w₄/a,
    ∂/∂b = ψ(a+b) + ψ(b+x+1) − ψ(b) − ψ(a+b+x+1) − w₄/(b+x),

    with w₄ = e^D/(1+e^D) the posterior probability of having dropped out, w₃ = 1 − w₄.
    """
    value, gradient, _ = _log_likelihood_derivatives(
        np.asarray(params, dtype=float), _Data.build(x, t_x, T, weights), hessian=False
    )
    return value, gradient


def log_likelihood_hessian(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Hessian of the weighted total log-likelihood w.r.t. (r, α, a, b), summed over rows:

    ∇²(A1 + A2): ∂²/∂r² = ψ′(r+x) − ψ′(r),  ∂²/∂r∂α = 1/α,  ∂²/∂α² = −r/α²,
                 ∂²/∂a² = ∂²/∂a∂b = ψ′(a+b) − ψ′(a+b+x+1),
                 ∂²/∂b² = ψ′(a+b) + ψ′(b+x+1) − ψ′(b) − ψ′(a+b+x+1);
    ∇² ln(e^{A3} + e^{A4}) = w₃∇²A3 + w₄∇²A4 + w₃w₄(∇A3 − ∇A4)(∇A3 − ∇A4)ᵀ, with A4 = A3 + D,
    ∇A3 = (−ln(α+T), −(r+x)/(α+T), 0, 0),  ∇A4 = (−ln(α+t_x), −(r+x)/(α+t_x), 1/a, −1/(b+x)),
    ∇²A3: ∂²/∂r∂α = −1/(α+T), ∂²/∂α² = (r+x)/(α+T)²;
    ∇²A4: ∂²/∂r∂α = −1/(α+t_x), ∂²/∂α² = (r+x)/(α+t_x)², ∂²/∂a² = −1/a², ∂²/∂b² = 1/(b+x)²,

    where ψ′ is the trigamma function and w₃, w₄ as in :func:`log_likelihood_gradient`.
    """
    hessian = _log_likelihood_derivatives(np.asarray(params, dtype=float), _Data.build(x, t_x, T, weights))[2]
    return hessian  # type: ignore[return-value]  # always computed when hessian=True


class ModifiedBetaGeoModel(ParametricModelMixin, BaseEstimator):
    """MBG/NBD estimator with the scikit-learn contract; a drop-in for
    :class:`~clv_models.models.BetaGeoModel` (same methods, arguments and fitted attributes).

    Parameters
    ----------
    penalizer:
        L2 penalty on (r, α·s, a, b) added to the mean negative log-likelihood, where
        s = 1 / max(T) makes it independent of the time unit (the same scaling as lifetimes, so
        penalised fits agree with ``ModifiedBetaGeoFitter(penalizer_coef=...)``).
    unit:
        Time unit of the training data (``"D"`` or ``"W"``). ``None`` takes it from the RFM
        table's ``attrs["unit"]`` (set by :func:`clv_models.features.rfm_summary`).

    Fitted attributes: ``params_`` (dict r, alpha, a, b; α in the model's unit), ``standard_errors_``,
    ``log_likelihood_`` (total, natural log), ``converged_``, ``diagnostic_``, ``unit_``,
    ``n_customers_``, ``n_distinct_``.
    """

    PARAMETER_NAMES = PARAMS
    EXTRA_ATTRIBUTES = ("n_customers", "n_distinct")

    def __init__(self, penalizer: float = 0.0, unit: str | None = None) -> None:
        self.penalizer = penalizer
        self.unit = unit

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, rfm: pd.DataFrame, y: Any = None, sample_weight: np.ndarray | None = None) -> ModifiedBetaGeoModel:
        """Maximum likelihood on the distinct (frequency, recency, T) rows, with counts as weights
        (:func:`~clv_models.models._repeat_purchase_fit.fit_repeat_purchases`)."""
        # The BG/NBD's moment start (λ scale from purchases per unit time): 7 Newton iterations on
        # CDNOW and on its daily master data, 3 from the warm-up on 50,000 simulated customers.
        fit_repeat_purchases(
            self, rfm, sample_weight, data_type=_Data, derivatives=_log_likelihood_derivatives,
            penalty_scale=lambda scale: np.array([1.0, scale, 1.0, 1.0]), start=lambda data, weights: BetaGeoModel._start(data.x, data.t_x, data.T, weights),
        )  # fmt: skip
        return self

    # -- predictions -----------------------------------------------------------------------

    def _unpack(self) -> tuple[float, float, float, float]:
        check_is_fitted(self, "params_")
        return self.params_["r"], self.params_["alpha"], self.params_["a"], self.params_["b"]

    def _horizon(self, horizon: str | Horizon) -> float:
        return parse_horizon(horizon).in_unit(self.unit_)

    def _arrays(self, rfm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_is_fitted(self, "params_")
        x, t_x, T = rfm_arrays(rfm, ("frequency", "recency", "T"), expected_unit=self.unit_)
        return x, t_x, T

    def _alive_bgnbd(self) -> BetaGeoModel:
        """The BG/NBD with parameters (r, α, a, b+1): an MBG/NBD customer alive at T behaves as
        this model's customer alive at T (module docstring), so its E[Y(t) | alive] is this one's."""
        r, alpha, a, b = self._unpack()
        return BetaGeoModel.from_dict({
            "model": "BetaGeoModel", "penalizer": self.penalizer, "unit": self.unit_,
            "params": {"r": r, "alpha": alpha, "a": a, "b": b + 1.0},
        })

    def _log_odds_dead(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """D = ln[a/(b+x) ((α+T)/(α+t_x))^(r+x)]: the log odds of 'dropped out' vs 'alive'."""
        r, alpha, a, b = self._unpack()
        return np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))

    def probability_alive(self, rfm: pd.DataFrame) -> np.ndarray:
        """P(alive at T | x, t_x, T) = 1 / (1 + a/(b+x) ((α+T)/(α+t_x))^(r+x))  (BDF appendix A,
        eq. 5, as lifetimes cites it). Below 1 for every customer; at x = 0 (t_x = 0) it is 1 / (1 + a/b ((α+T)/α)^r),
        which falls with T: a one-time buyer silent for long is probably gone."""
        return expit(-self._log_odds_dead(*self._arrays(rfm)))

    def expected_purchases(self, rfm: pd.DataFrame, *, horizon: str | Horizon) -> np.ndarray:
        """E[Y(t) | x, t_x, T]: expected purchases in the next ``horizon`` (Wagner & Hoppe 2008):

        E = (a+b+x)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x+1; a+b+x; t/(α+T+t))] · P(alive),

        the bracket being the BG/NBD's at b + 1 (computed by it, series for large b included).
        """
        t = self._horizon(horizon)
        x, t_x, T = self._arrays(rfm)
        alive = expit(-self._log_odds_dead(x, t_x, T))
        inner = self._alive_bgnbd()
        return inner._per_pair(x, T, lambda xu, Tu: inner._scaled_brackets(xu, Tu, np.array([t]))[0]) * alive

    def discounted_expected_purchases(
        self, rfm: pd.DataFrame, steps: np.ndarray, discount: np.ndarray
    ) -> np.ndarray:
        """Σ_k discount_k · (E[Y(steps_k)] − E[Y(steps_{k−1})]) per customer (steps in model units,
        increasing; E[Y(0)] = 0). The bracket is summed per (x, T) pair, P(alive) applied per row."""
        x, t_x, T = self._arrays(rfm)
        alive = expit(-self._log_odds_dead(x, t_x, T))
        inner = self._alive_bgnbd()

        def discounted(xu: np.ndarray, Tu: np.ndarray) -> np.ndarray:
            cumulative = inner._scaled_brackets(xu, Tu, steps)  # E[Y(steps_k) | alive], one row per step
            increments = np.diff(cumulative, axis=0, prepend=0.0)
            return np.einsum("k,kp->p", np.asarray(discount, dtype=float), increments)

        return inner._per_pair(x, T, discounted) * alive

    def probability_no_purchase(self, rfm: pd.DataFrame, *, horizon: str | Horizon) -> np.ndarray:
        """P(no purchase in (T, T+t] | x, t_x, T) = (1 − P(alive)) + P(alive) · ((α+T)/(α+T+t))^(r+x).

        lifetimes and pymc-marketing do not implement it (pymc-marketing raises
        NotImplementedError for the MBG/NBD); derived here. The posterior of (λ, p) given the data is the mixture
        of the two terms of L(λ, p | x, t_x, T) (module docstring) times the prior:
        "alive at T" with weight P(alive) and λ | alive ~ Gamma(r+x, α+T) (the term
        λ^x e^{−λT}(1−p)^{x+1} times the Gamma(r, α) prior), or "dropped out at t_x", who buys
        nothing more. Drop-out happens only at a purchase, so an alive customer stays alive until
        their next purchase and buys nothing in (T, T+t] with probability e^{−λt} (Poisson);
        E[e^{−λt}] over Gamma(r+x, α+T) is ((α+T)/(α+T+t))^(r+x). The same argument gives the
        BG/NBD's formula; only P(alive) differs. Checked against a Monte-Carlo simulation of the
        purchase process from the posterior (tests).
        """
        r, alpha, _, _ = self._unpack()
        t = self._horizon(horizon)
        x, t_x, T = self._arrays(rfm)
        alive = expit(-self._log_odds_dead(x, t_x, T))
        return (1.0 - alive) + alive * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))

    def expected_purchases_new_customer(self, *, horizon: str | Horizon) -> float:
        """E[X(t)] for a customer just acquired, over ``horizon`` (BDF appendix A; lifetimes'
        ``expected_number_of_purchases_up_to_time``)."""
        return float(self.unconditional_expected_purchases(self._horizon(horizon)))

    def unconditional_expected_purchases(self, t: np.ndarray | float) -> np.ndarray:
        """E[X(t)] = b/(a−1) · [1 − (α/(α+t))^r ₂F₁(r, b+1; a+b; t/(α+t))], repeat purchases of a
        customer just acquired, at each ``t`` ≥ 0 in the model's unit.

        The customer survives the drop-out at time zero with probability 1 − p, which tilts
        Beta(a, b) to Beta(a, b+1) with weight E[1−p] = b/(a+b); alive, they are a new BG/NBD
        customer with b + 1. So E[X(t)] = b/(a+b) times the BG/NBD's E[X(t)] at b + 1
        ((a+b)/(a−1) [1 − … ₂F₁(r, b+1; a+b; …)]), computed by it (stable for large b)."""
        _, _, a, b = self._unpack()
        return b / (a + b) * self._alive_bgnbd().unconditional_expected_purchases(t)

    def probability_of_purchases(self, t: np.ndarray | float, x: np.ndarray | float) -> np.ndarray:
        """P(X(t) = x): probability of exactly ``x`` repeat purchases in (0, t] (model units) for a
        customer just acquired (lifetimes' ``probability_of_n_purchases_up_to_time``).
        Broadcasts ``t`` against ``x``.

        P = B(a, b+x+1)/B(a, b) · NB(x; r, α/(α+t)) + B(a+1, b+x)/B(a, b) · [1 − Σ_{j<x} NB(j; r, α/(α+t))]:
        alive after x+1 drop-out chances with exactly x purchases, or dropped out at the x-th
        chance (at time zero when x = 0) with at least x purchase opportunities. NB is the negative
        binomial pmf, the bracket its survival function (log-gamma form: no overflow at large x).
        BetaGeoModel has no such method (``clv_models.evaluation.fit.probability_of_purchases``
        computes the BG/NBD's).
        """
        r, alpha, a, b = self._unpack()
        t, x = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(x, dtype=float))
        if (t < 0).any() or (x < 0).any() or (x != np.floor(x)).any():
            raise ClvInputError("P(X(t) = x) needs t ≥ 0 and whole numbers x ≥ 0")
        p = alpha / (alpha + t)
        still_active = np.exp(betaln(a, b + x + 1) - betaln(a, b) + nbinom.logpmf(x, r, p))
        dropped = np.exp(betaln(a + 1, b + x) - betaln(a, b)) * nbinom.sf(x - 1, r, p)
        return still_active + dropped

    # -- persistence and interop -----------------------------------------------------------

    @classmethod
    def from_lifetimes(cls, fitter: Any, unit: str) -> ModifiedBetaGeoModel:
        """Wrap a fitted ``lifetimes.ModifiedBetaGeoFitter`` (its time unit must be stated)."""
        params = {k: float(fitter.params_[k]) for k in PARAMS}
        return cls.from_dict(
            {"model": "ModifiedBetaGeoModel", "penalizer": float(getattr(fitter, "penalizer_coef", 0.0)),
             "unit": unit, "params": params, "diagnostic": "imported from lifetimes"}
        )

    def to_lifetimes(self) -> Any:
        """A ``lifetimes.ModifiedBetaGeoFitter`` with these parameters (lifetimes must be installed)."""
        from lifetimes import ModifiedBetaGeoFitter

        fitter = ModifiedBetaGeoFitter(penalizer_coef=self.penalizer)
        fitter.params_ = pd.Series(self._unpack(), index=list(PARAMS))
        # lifetimes attaches this alias in fit(); its CLV function calls it.
        fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
        return fitter
