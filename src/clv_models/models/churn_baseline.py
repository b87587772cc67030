"""A baseline churn score, calibrated: what the scorer ships when the learned classifier does not
beat it out of time (decisions D32).

One input column mapped to a churn probability by isotonic regression fitted on a labelled
snapshot (increasing: more days since the last purchase, or a higher BG/NBD P(no purchase in the
window), never means less churn):

* ``recency_rule``: ``days_since_last`` (days);
* ``bgnbd_p_no_purchase``: ``bgnbd_p_no_purchase_w``, BG/NBD P(no purchase in the next
  ``window_days``) from the stored BTYD feature models;
* ``bgnbd_p_no_purchase_raw``: the same probability as the BG/NBD gives it, not recalibrated
  (``fit`` only records the column).

It has the attributes the scorer reads from a :class:`~clv_models.models.churn.ChurnClassifier`
(``feature_names_``, ``categorical_features``, ``window_days``, ``predict_proba``), so it stands
in its place.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError

BASELINE_INPUTS = {
    "recency_rule": "days_since_last",
    "bgnbd_p_no_purchase": "bgnbd_p_no_purchase_w",
    "bgnbd_p_no_purchase_raw": "bgnbd_p_no_purchase_w",
}
UNCALIBRATED = {"bgnbd_p_no_purchase_raw"}  # the model's own probability, used as it is


class BaselineChurnModel(BaseEstimator):
    """P(churn in ``window_days``) as an increasing step function of one column (isotonic
    regression, clipped to [0, 1] and to the fitted range)."""

    def __init__(self, kind: str = "recency_rule", window_days: int = 90) -> None:
        self.kind = kind
        self.window_days = window_days

    categorical_features: tuple[str, ...] = ()

    def _column(self) -> str:
        if self.kind not in BASELINE_INPUTS:
            raise ClvInputError(f"baseline {self.kind!r}: choose one of {', '.join(BASELINE_INPUTS)}")
        return BASELINE_INPUTS[self.kind]

    def _values(self, X: pd.DataFrame) -> np.ndarray:
        column = self._column()
        if column not in X.columns:
            raise ClvInputError(f"the {self.kind} churn baseline needs column {column!r}")
        values = X[column].to_numpy(dtype=float)
        if np.isnan(values).any():
            raise ClvInputError(f"{column}: {int(np.isnan(values).sum())} missing value(s); the baseline needs all")
        return values

    def fit(self, X: pd.DataFrame, y: Any) -> BaselineChurnModel:
        from sklearn.isotonic import IsotonicRegression

        self.feature_names_ = [self._column()]
        if self.kind in UNCALIBRATED:
            self.isotonic_ = None
            return self
        self.isotonic_ = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        self.isotonic_.fit(self._values(X), np.asarray(y, dtype=float))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Columns P(stay), P(churn), as scikit-learn classifiers return them."""
        check_is_fitted(self, "feature_names_")
        values = self._values(X)
        churn = np.clip(values, 0.0, 1.0) if self.isotonic_ is None else np.asarray(self.isotonic_.predict(values), float)
        return np.column_stack([1.0 - churn, churn])
