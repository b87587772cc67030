"""Churn-risk bands of the calibrated churn probability (DESIGN.md §2 'churn risk')."""

from __future__ import annotations

from typing import Any

import numpy as np

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
