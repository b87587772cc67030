"""BG/NBD: the beta-geometric / negative-binomial model of repeat purchasing.

Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative to the
Pareto/NBD Model", Marketing Science 24(2):275-284, and the note "Computing P(alive) using the
BG/NBD model" (Fader, Hardie & Lee 2008). Equation numbers below refer to the 2005 paper.

While active, a customer buys at Poisson rate λ ~ Gamma(r, α); after each purchase they drop out
with probability p ~ Beta(a, b). Data per customer: ``frequency`` x (repeat purchases),
``recency`` t_x and ``T`` in the model's time unit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1, logsumexp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError
from clv_models.models._mle import check_identified, compress, maximise, standard_errors
from clv_models.models._persistence import ParametricModelMixin
from clv_models.models._validation import rfm_arrays, training_unit
from clv_models.timeunits import Horizon, parse_horizon

if TYPE_CHECKING:
    import pandas as pd

PARAMS = ("r", "alpha", "a", "b")


def log_likelihood_terms(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-row log-likelihood (eq. 6 written as in Fader-Hardie note 004, section 7):

    ln L = A1 + A2 + ln(exp(A3) + δ(x>0) exp(A4)),
    A1 = lnΓ(r+x) − lnΓ(r) + r ln α,     A2 = lnΓ(a+b) + lnΓ(b+x) − lnΓ(b) − lnΓ(a+b+x),
    A3 = −(r+x) ln(α+T),                  A4 = ln a − ln(b+x−1) − (r+x) ln(α+t_x).

    The sum of exponentials is taken with log-sum-exp, which avoids the overflow that makes the
    spreadsheet formula return #NUM! for heavy buyers.
    """
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(x > 0, np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + logsumexp(np.stack([a3, a4]), axis=0)


def log_likelihood_gradient(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    """Weighted total log-likelihood and its analytic gradient w.r.t. (r, α, a, b)."""
    r, alpha, a, b = params
    has_repeat = x > 0
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(has_repeat, np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
    mix = logsumexp(np.stack([a3, a4]), axis=0)
    w4 = np.exp(a4 - mix)  # posterior weight of "dropped out after the last purchase"
    w3 = 1.0 - w4
    terms = (
        gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        + gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
        + mix
    )
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * np.log(alpha + T) - w4 * np.log(alpha + t_x)
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
    d_b = (
        digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x)
        - np.where(has_repeat, w4 / (b + np.maximum(x, 1) - 1), 0.0)
    )
    gradient = np.array([weights @ d_r, weights @ d_alpha, weights @ d_a, weights @ d_b])
    return float(weights @ terms), gradient


class BetaGeoModel(ParametricModelMixin, BaseEstimator):
    """BG/NBD estimator with the scikit-learn contract.

    Parameters
    ----------
    penalizer:
        L2 penalty on (r, α·s, a, b) added to the mean negative log-likelihood, where
        s = 1 / max(T) makes it independent of the time unit (the same scaling as lifetimes, so
        penalised fits agree with ``BetaGeoFitter(penalizer_coef=...)``).
    unit:
        Time unit of the training data (``"D"`` or ``"W"``). ``None`` takes it from the RFM
        table's ``attrs["unit"]`` (set by :func:`clv_models.features.rfm_summary`).

    Fitted attributes: ``params_`` (dict r, alpha, a, b), ``standard_errors_``,
    ``log_likelihood_`` (total, natural log), ``converged_``, ``diagnostic_``, ``unit_``,
    ``n_customers_``, ``n_distinct_``.
    """

    PARAMETER_NAMES = PARAMS
    EXTRA_ATTRIBUTES = ("n_customers", "n_distinct")

    def __init__(self, penalizer: float = 0.0, unit: str | None = None) -> None:
        self.penalizer = penalizer
        self.unit = unit

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, rfm: pd.DataFrame, y: Any = None, sample_weight: np.ndarray | None = None) -> BetaGeoModel:
        """Maximum likelihood on the distinct (frequency, recency, T) rows, with counts as weights."""
        if self.penalizer < 0:
            raise ClvInputError(f"penalizer must be ≥ 0, got {self.penalizer}")
        x, t_x, T = rfm_arrays(rfm, ("frequency", "recency", "T"))
        weights_in = np.ones_like(x) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        distinct, counts, codes = compress({"x": x, "t_x": t_x, "T": T})
        weights = np.bincount(codes, weights=weights_in, minlength=len(counts))
        dx, dt_x, dT = distinct["x"], distinct["t_x"], distinct["T"]
        scale = 1.0 / dT.max() if dT.max() > 0 else 1.0
        total_weight = weights.sum()
        penalty_scale = np.array([1.0, scale, 1.0, 1.0])

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            value, gradient = log_likelihood_gradient(params, dx, dt_x, dT, weights)
            scaled = params * penalty_scale
            penalty = self.penalizer * np.sum(scaled**2)
            d_penalty = 2 * self.penalizer * scaled * penalty_scale
            # mean negative log-likelihood + penalty, differentiated w.r.t. log-parameters
            return -value / total_weight + penalty, (-gradient / total_weight + d_penalty) * params

        result = maximise(objective, self._start(dx, dt_x, dT, weights))
        params = np.exp(result.log_params)

        def total_gradient(natural: np.ndarray) -> np.ndarray:
            value_gradient = log_likelihood_gradient(natural, dx, dt_x, dT, weights)[1]
            scaled = natural * penalty_scale
            return -value_gradient + total_weight * 2 * self.penalizer * scaled * penalty_scale

        errors = standard_errors(total_gradient, params)
        result = check_identified(result, PARAMS, errors)
        self.params_ = dict(zip(PARAMS, map(float, params), strict=True))
        self.standard_errors_ = dict(zip(PARAMS, map(float, errors), strict=True))
        self.log_likelihood_ = float(log_likelihood_gradient(params, dx, dt_x, dT, weights)[0])
        self.converged_ = result.converged
        self.diagnostic_ = result.diagnostic
        self.unit_ = training_unit(rfm, self.unit)
        self.n_customers_ = int(round(total_weight))
        self.n_distinct_ = len(counts)
        return self

    @staticmethod
    def _start(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Moment-based start: λ ≈ purchases per unit time, r = 1, a = 1, b = 3 (logs)."""
        rate = max((weights @ x) / max(weights @ T, 1e-12), 1e-6)
        return np.log([1.0, 1.0 / rate, 1.0, 3.0])

    # -- predictions -----------------------------------------------------------------------

    def _unpack(self) -> tuple[float, float, float, float]:
        check_is_fitted(self, "params_")
        return self.params_["r"], self.params_["alpha"], self.params_["a"], self.params_["b"]

    def _horizon(self, horizon: str | Horizon) -> float:
        return parse_horizon(horizon).in_unit(self.unit_)

    def _arrays(self, rfm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_is_fitted(self, "params_")
        return rfm_arrays(rfm, ("frequency", "recency", "T"), expected_unit=self.unit_)

    def _log_odds_dead(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """ln[δ(x>0) a/(b+x−1) ((α+T)/(α+t_x))^(r+x)]: the log odds of 'dropped out' vs 'alive'."""
        r, alpha, a, b = self._unpack()
        return np.where(
            x > 0,
            np.log(a) - np.log(b + np.maximum(x, 1) - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)),
            -np.inf,
        )

    def probability_alive(self, rfm: pd.DataFrame) -> np.ndarray:
        """P(alive at T | x, t_x, T) = 1 / (1 + δ(x>0) a/(b+x−1) ((α+T)/(α+t_x))^(r+x))  (FHL 2008, eq. 1)."""
        return expit(-self._log_odds_dead(*self._arrays(rfm)))

    def _conditional_expected(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, t: float) -> np.ndarray:
        r, alpha, a, b = self._unpack()
        ratio_log = (r + x) * (np.log(alpha + T) - np.log(alpha + T + t))
        with np.errstate(over="ignore", invalid="ignore"):
            bracket = 1.0 - np.exp(ratio_log) * hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
            value = (a + b + x - 1) / (a - 1) * bracket * expit(-self._log_odds_dead(x, t_x, T))
        return value

    def expected_purchases(self, rfm: pd.DataFrame, *, horizon: str | Horizon) -> np.ndarray:
        """E[Y(t) | x, t_x, T]: expected purchases in the next ``horizon`` (FHL 2005, eq. 10).

        E = (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))] · P(alive).
        Computed once per distinct (x, t_x, T) row.
        """
        t = self._horizon(horizon)
        return self._per_distinct(rfm, lambda x, t_x, T: self._conditional_expected(x, t_x, T, t))

    def probability_no_purchase(self, rfm: pd.DataFrame, *, horizon: str | Horizon) -> np.ndarray:
        """P(no purchase in (T, T+t] | x, t_x, T) = (1 − P(alive)) + P(alive) · ((α+T)/(α+T+t))^(r+x).

        Given alive at T, λ | data ~ Gamma(r+x, α+T); a customer who buys nothing cannot drop out
        (drop-out happens right after a purchase), so P(0 | alive) = E[e^{−λt}].
        """
        r, alpha, _, _ = self._unpack()
        t = self._horizon(horizon)

        def compute(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
            alive = expit(-self._log_odds_dead(x, t_x, T))
            return (1.0 - alive) + alive * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))

        return self._per_distinct(rfm, compute)

    def expected_purchases_new_customer(self, *, horizon: str | Horizon) -> float:
        """E[X(t)] for a customer just acquired (FHL 2005, eq. 9):
        (a+b−1)/(a−1) · [1 − (α/(α+t))^r ₂F₁(r, b; a+b−1; t/(α+t))]."""
        r, alpha, a, b = self._unpack()
        t = self._horizon(horizon)
        bracket = 1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return float((a + b - 1) / (a - 1) * bracket)

    def _per_distinct(self, rfm: pd.DataFrame, compute: Any) -> np.ndarray:
        x, t_x, T = self._arrays(rfm)
        distinct, _, codes = compress({"x": x, "t_x": t_x, "T": T})
        return compute(distinct["x"], distinct["t_x"], distinct["T"])[codes]

    def expected_purchases_between(self, rfm: pd.DataFrame, steps: np.ndarray) -> np.ndarray:
        """Cumulative E[Y(t)] at each of ``steps`` (model units), shape (customers, len(steps)).

        Used by CLV: evaluated once per distinct row and step.
        """
        x, t_x, T = self._arrays(rfm)
        distinct, _, codes = compress({"x": x, "t_x": t_x, "T": T})
        columns = [
            self._conditional_expected(distinct["x"], distinct["t_x"], distinct["T"], float(step)) for step in steps
        ]
        return np.column_stack(columns)[codes]

    # -- persistence and interop -----------------------------------------------------------

    @classmethod
    def from_lifetimes(cls, fitter: Any, unit: str) -> BetaGeoModel:
        """Wrap a fitted ``lifetimes.BetaGeoFitter`` (its time unit must be stated)."""
        params = {k: float(fitter.params_[k]) for k in PARAMS}
        return cls.from_dict(
            {"model": "BetaGeoModel", "penalizer": float(getattr(fitter, "penalizer_coef", 0.0)),
             "unit": unit, "params": params, "diagnostic": "imported from lifetimes"}
        )

    def to_lifetimes(self) -> Any:
        """A ``lifetimes.BetaGeoFitter`` with these parameters (lifetimes must be installed)."""
        import pandas as pd
        from lifetimes import BetaGeoFitter

        fitter = BetaGeoFitter(penalizer_coef=self.penalizer)
        fitter.params_ = pd.Series(self._unpack(), index=list(PARAMS))
        # lifetimes attaches this alias in fit(); its CLV function calls it.
        fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
        return fitter
