"""The BTYD models behind the churn classifier's BTYD features, as one estimator.

:class:`BtydChurnFeatures` fits BG/NBD on a population's *daily* RFM and Gamma-Gamma on its repeat
buyers, and turns any customer's daily RFM into four features over the churn window ``w`` (days):

* ``bgnbd_p_alive``: P(alive) (Fader, Hardie & Lee 2005, eq. 13 of the BG/NBD note);
* ``bgnbd_expected_purchases_w``: E[X(w) | x, t_x, T] (ibid., eq. 10);
* ``bgnbd_p_no_purchase_w``: P(X(w) = 0 | x, t_x, T);
* ``gg_expected_order_value``: the Gamma-Gamma conditional mean spend (Fader, Hardie & Lee 2005b,
  eq. 5), in currency.

Each feature of a customer is a function of that customer's row and the fitted parameters only,
so a customer's features never depend on who else is transformed with them (docs/decisions.md
D28). Training fits one per snapshot cutoff (point in time) and one at the training cutoff, which
the registered scorer stores and applies at scoring.

The input columns are the feature table's daily RFM: ``frequency_days``, ``recency_days``,
``T_days`` and ``monetary_value_days`` (:data:`DAILY_RFM`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError

DAILY_RFM = ("frequency_days", "recency_days", "T_days", "monetary_value_days")
BTYD_FEATURES = ("bgnbd_p_alive", "bgnbd_expected_purchases_w", "bgnbd_p_no_purchase_w", "gg_expected_order_value")
MIN_REPEAT_BUYERS = 20


def _as_rfm(daily: pd.DataFrame) -> pd.DataFrame:
    """The daily RFM in the estimators' input form (BG/NBD's own column names, unit D)."""
    missing = [c for c in DAILY_RFM if c not in daily.columns]
    if missing:
        raise ClvInputError(f"BTYD features need column(s) {', '.join(missing)} (daily RFM of the feature table)")
    rfm = pd.DataFrame(
        {name: daily[column].to_numpy(dtype=float) for name, column in zip(
            ("frequency", "recency", "T", "monetary_value"), DAILY_RFM, strict=True
        )}
    )  # fmt: skip
    rfm.attrs["unit"] = "D"
    return rfm


class BtydChurnFeatures(BaseEstimator):
    """BG/NBD + Gamma-Gamma fitted on daily RFM; :meth:`transform` gives the four BTYD features.

    ``window_days``: the churn window w the expectations run over (days). ``penalizer``: L2
    penalizer of both fits. A fit that fails leaves its features NaN and a line in
    ``diagnostics_`` (the churn classifier handles missing values); Gamma-Gamma needs at least
    20 repeat buyers.
    """

    def __init__(self, *, window_days: int = 90, penalizer: float = 0.0) -> None:
        self.window_days = window_days
        self.penalizer = penalizer

    def fit(self, daily: pd.DataFrame, sample_weight: Any = None) -> BtydChurnFeatures:
        """Fit on the daily RFM of a population (``sample_weight``: customers per row, when the
        rows are distinct RFM combinations). Returns self."""
        from clv_models.models import BetaGeoModel, GammaGammaModel

        rfm = _as_rfm(daily)
        weights = np.ones(len(rfm)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.bgnbd_: Any = None
        self.gamma_gamma_: Any = None
        self.diagnostics_: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self.bgnbd_ = BetaGeoModel(penalizer=self.penalizer).fit(rfm, sample_weight=sample_weight)
            except (ClvInputError, np.linalg.LinAlgError, FloatingPointError) as exc:
                self.diagnostics_.append(f"BG/NBD not fitted: {exc}")
            is_repeat = (rfm["frequency"] > 0).to_numpy()
            repeat_buyers = int(weights[is_repeat].sum())
            if repeat_buyers >= MIN_REPEAT_BUYERS:
                try:
                    self.gamma_gamma_ = GammaGammaModel(penalizer=self.penalizer).fit(
                        rfm[is_repeat], sample_weight=None if sample_weight is None else weights[is_repeat]
                    )
                except (ClvInputError, np.linalg.LinAlgError, FloatingPointError) as exc:
                    self.diagnostics_.append(f"Gamma-Gamma not fitted: {exc}")
            else:
                self.diagnostics_.append(
                    f"Gamma-Gamma not fitted: {repeat_buyers} repeat buyers (< {MIN_REPEAT_BUYERS})"
                )
        self.diagnostics_.extend(f"{w.category.__name__}: {w.message}" for w in caught)
        self.n_customers_ = int(weights.sum())
        return self

    @property
    def params(self) -> dict[str, float]:
        """Fitted parameters, prefixed by model (``bgnbd_r``, …, ``gamma_gamma_p``, …)."""
        check_is_fitted(self, "diagnostics_")
        out: dict[str, float] = {}
        for prefix, model in (("bgnbd", self.bgnbd_), ("gamma_gamma", self.gamma_gamma_)):
            if model is not None:
                out.update({f"{prefix}_{k}": float(v) for k, v in model.params_.items()})
        return out

    def transform(self, daily: pd.DataFrame) -> pd.DataFrame:
        """The four BTYD features (:data:`BTYD_FEATURES`), one row per input row, same index."""
        check_is_fitted(self, "diagnostics_")
        rfm = _as_rfm(daily)
        horizon = f"{self.window_days}D"
        out = {name: np.full(len(rfm), np.nan) for name in BTYD_FEATURES}
        if self.bgnbd_ is not None:
            out["bgnbd_p_alive"] = self.bgnbd_.probability_alive(rfm)
            out["bgnbd_expected_purchases_w"] = self.bgnbd_.expected_purchases(rfm, horizon=horizon)
            out["bgnbd_p_no_purchase_w"] = self.bgnbd_.probability_no_purchase(rfm, horizon=horizon)
        if self.gamma_gamma_ is not None:
            out["gg_expected_order_value"] = self.gamma_gamma_.expected_order_value(rfm)
        return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in out.items()}, index=daily.index)
