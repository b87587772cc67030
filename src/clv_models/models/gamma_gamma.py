"""Gamma-Gamma model of spend per transaction.

Fader, Hardie & Lee (2005b), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
Journal of Marketing Research 42(4):415-430, and Fader & Hardie (2013), "The Gamma-Gamma Model
of Monetary Value" (note 025), whose equation numbers are cited below.

A customer's transaction values are Gamma(p, ν); ν ~ Gamma(q, γ) across customers. Fitted on
repeat buyers (frequency x > 0) with their mean repeat-transaction value m. Assumes spend is
independent of purchase frequency (checked in :mod:`clv_models.evaluation`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import digamma, gammaln
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError
from clv_models.models._mle import check_identified, compress, maximise, standard_errors
from clv_models.models._persistence import ParametricModelMixin
from clv_models.models._validation import rfm_arrays, training_unit

if TYPE_CHECKING:
    import pandas as pd

PARAMS = ("p", "q", "gamma")


def log_likelihood_gradient(
    params: np.ndarray, x: np.ndarray, m: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    """Weighted total log-likelihood of mean spend (note 025, eq. 3, the density of m̄ given x)
    and its analytic gradient w.r.t. (p, q, γ):

    ln f = lnΓ(px+q) − lnΓ(px) − lnΓ(q) + q ln γ + (px−1) ln m + px ln x − (px+q) ln(xm+γ).
    """
    p, q, gamma = params
    px = p * x
    log_xm_gamma = np.log(x * m + gamma)
    terms = (
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(gamma)
        + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * log_xm_gamma
    )
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_xm_gamma)
    d_q = digamma(px + q) - digamma(q) + np.log(gamma) - log_xm_gamma
    d_gamma = q / gamma - (px + q) / (x * m + gamma)
    return float(weights @ terms), np.array([weights @ d_p, weights @ d_q, weights @ d_gamma])


class GammaGammaModel(ParametricModelMixin, BaseEstimator):
    """Gamma-Gamma spend model with the scikit-learn contract.

    ``fit`` uses the customers with ``frequency > 0`` (and ``monetary_value > 0``); ``penalizer``
    adds ``penalizer · (p² + q² + γ²)`` to the mean negative log-likelihood, as lifetimes does.
    Fitted attributes: ``params_`` (p, q, gamma), ``standard_errors_``, ``log_likelihood_``,
    ``converged_``, ``diagnostic_``, ``unit_``, ``n_customers_``.
    """

    PARAMETER_NAMES = PARAMS

    def __init__(self, penalizer: float = 0.0, unit: str | None = None) -> None:
        self.penalizer = penalizer
        self.unit = unit

    def fit(self, rfm: pd.DataFrame, y: Any = None) -> GammaGammaModel:
        if self.penalizer < 0:
            raise ClvInputError(f"penalizer must be ≥ 0, got {self.penalizer}")
        x, m = rfm_arrays(rfm, ("frequency", "monetary_value"))
        repeat = (x > 0) & (m > 0)
        if repeat.sum() < 3:
            raise ClvInputError(
                f"Gamma-Gamma needs repeat buyers with positive spend; found {int(repeat.sum())}"
            )
        distinct, weights, _ = compress({"x": x[repeat], "m": m[repeat]})
        dx, dm = distinct["x"], distinct["m"]
        total_weight = weights.sum()

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            value, gradient = log_likelihood_gradient(params, dx, dm, weights)
            penalty = self.penalizer * np.sum(params**2)
            return (
                -value / total_weight + penalty,
                (-gradient / total_weight + 2 * self.penalizer * params) * params,
            )

        result = maximise(objective, self._start(dx, dm, weights))
        params = np.exp(result.log_params)

        def total_gradient(natural: np.ndarray) -> np.ndarray:
            return -log_likelihood_gradient(natural, dx, dm, weights)[1] + total_weight * 2 * self.penalizer * natural

        errors = standard_errors(total_gradient, params)
        result = check_identified(result, PARAMS, errors)
        self.params_ = dict(zip(PARAMS, map(float, params), strict=True))
        self.standard_errors_ = dict(zip(PARAMS, map(float, errors), strict=True))
        self.log_likelihood_ = float(log_likelihood_gradient(params, dx, dm, weights)[0])
        self.converged_ = result.converged
        self.diagnostic_ = result.diagnostic
        self.unit_ = training_unit(rfm, self.unit)
        self.n_customers_ = int(round(total_weight))
        return self

    @staticmethod
    def _start(x: np.ndarray, m: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Method-of-moments flavoured start: q = 3, p = 2, γ from mean spend = pγ/(q−1)."""
        mean_spend = (weights @ m) / weights.sum()
        p, q = 2.0, 3.0
        return np.log([p, q, max(mean_spend * (q - 1) / p, 1e-6)])

    def expected_order_value(self, rfm: pd.DataFrame) -> np.ndarray:
        """E[M | x, m̄] = (1 − w) · pγ/(q−1) + w · m̄ with w = px/(px+q−1)  (note 025, eq. 5).

        Currency per order. Customers without repeat purchases get the population mean pγ/(q−1).
        Requires q > 1 (otherwise the population mean is infinite).
        """
        check_is_fitted(self, "params_")
        x, m = rfm_arrays(rfm, ("frequency", "monetary_value"), expected_unit=self.unit_)
        p, q, gamma = self.params_["p"], self.params_["q"], self.params_["gamma"]
        if q <= 1:
            raise ClvInputError(f"Gamma-Gamma q = {q:.3f} ≤ 1: the expected spend is infinite; use a penalizer")
        weight = p * x / (p * x + q - 1)
        return (1 - weight) * (p * gamma / (q - 1)) + weight * m

    @classmethod
    def from_lifetimes(cls, fitter: Any, unit: str) -> GammaGammaModel:
        params = {k: float(fitter.params_[k if k != "gamma" else "v"]) for k in PARAMS}
        return cls.from_dict(
            {"model": "GammaGammaModel", "penalizer": float(getattr(fitter, "penalizer_coef", 0.0)),
             "unit": unit, "params": params, "diagnostic": "imported from lifetimes"}
        )

    def to_lifetimes(self) -> Any:
        import pandas as pd
        from lifetimes import GammaGammaFitter

        check_is_fitted(self, "params_")
        fitter = GammaGammaFitter(penalizer_coef=self.penalizer)
        fitter.params_ = pd.Series(
            [self.params_["p"], self.params_["q"], self.params_["gamma"]], index=["p", "q", "v"]
        )
        return fitter
