"""Churn-risk bands of the calibrated churn probability (DESIGN.md §2 'churn risk')."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError

RISK_BANDS = ("high", "medium", "low")


def churn_risk_band(churn_probability: Any, *, high: float = 0.6, medium: float = 0.3) -> np.ndarray:
    """``high`` when probability ≥ ``high``, ``medium`` when ≥ ``medium``, else ``low``.

    Thresholds are absolute probabilities (config ``[churn_risk]``), so a customer's band never
    depends on the rest of the batch.
    """
    if not 0 < medium < high < 1:
        raise ClvInputError(f"churn risk: need 0 < medium < high < 1, got medium={medium}, high={high}")
    values = np.asarray(churn_probability, dtype=float).ravel()
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        raise ClvInputError(
            f"churn risk: {int(bad.sum())} churn probabilit(ies) are missing or outside [0, 1]; "
            "score the churn model first"
        )
    return np.where(values >= high, "high", np.where(values >= medium, "medium", "low")).astype(object)


def _cut_at_most(values: np.ndarray, share: float) -> float:
    """The smallest cut point c with at most ``share`` of ``values`` ≥ c (up to one value's tie),
    among the values: a step-shaped score (an isotonic baseline) ties many customers at one
    probability, and a quantile inside such a tie would put them all above the cut."""
    cut = float(np.quantile(values, 1.0 - share))
    if np.mean(values >= cut) > share:
        above = values[values > cut]
        if len(above):
            cut = float(above.min())
    return cut


class ChurnRiskBands(BaseEstimator):
    """Churn-risk bands whose cut points are fitted once on the training population (decisions
    D33), like the value tiers: with ``mode="share"`` the ``high_share`` of customers with the
    highest churn probability at training are ``high`` and the next ``medium_share`` ``medium``,
    so ``high`` stays a targetable minority on a shop whose base rate is high; ``mode="absolute"``
    uses the probabilities ``high`` / ``medium`` as they are. Stored in the scorer, so a customer's
    band never depends on the rest of the batch."""

    def __init__(
        self,
        mode: str = "share",
        high_share: float = 0.15,
        medium_share: float = 0.25,
        high: float = 0.6,
        medium: float = 0.3,
    ) -> None:
        self.mode = mode
        self.high_share = high_share
        self.medium_share = medium_share
        self.high = high
        self.medium = medium

    @classmethod
    def from_settings(cls, settings: Any) -> ChurnRiskBands:
        """From :class:`clv_models.config.ChurnRiskSettings`."""
        return cls(**settings.model_dump())

    def fit(self, churn_probability: Any, y: Any = None) -> ChurnRiskBands:
        values = np.asarray(churn_probability, dtype=float).ravel()
        values = values[np.isfinite(values)]
        if self.mode == "absolute" or len(values) == 0:
            high, medium = float(self.high), float(self.medium)
        elif self.mode == "share":
            high = _cut_at_most(values, self.high_share)
            medium = min(_cut_at_most(values, self.high_share + self.medium_share), high)
        else:
            raise ClvInputError(f"churn_risk.mode {self.mode!r}: choose share or absolute")
        self.cut_points_ = {"high": high, "medium": medium}
        bands = self.predict(values) if len(values) else np.array([], dtype=object)
        self.realised_shares_ = {band: float(np.mean(bands == band)) if len(bands) else 0.0 for band in RISK_BANDS}
        return self

    def predict(self, churn_probability: Any) -> np.ndarray:
        """Band per customer (object array of ``high`` / ``medium`` / ``low``)."""
        check_is_fitted(self, "cut_points_")
        values = np.asarray(churn_probability, dtype=float).ravel()
        bad = ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            raise ClvInputError(
                f"churn risk: {int(bad.sum())} churn probabilit(ies) are missing or outside [0, 1]; "
                "score the churn model first"
            )
        high, medium = self.cut_points_["high"], self.cut_points_["medium"]
        # A band holds at least its cut point; with ties at a cut point the realised share can
        # exceed the configured one (reported as realised_shares_).
        return np.where(values >= high, "high", np.where(values >= medium, "medium", "low")).astype(object)
