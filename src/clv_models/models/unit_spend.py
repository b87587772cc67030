"""The spend model of an event log without amounts (``orders.frequency_only``, docs/decisions.md D41).

Every order is worth one unit, so the expected value of a customer's next order is 1 for every
customer and CLV(h) = margin × the discounted expected purchases over h (valuation/clv.py): the
value tiers rank customers by discounted expected purchases. It stands where Gamma-Gamma stands,
with the same interface, and has nothing to estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clv_models.models._validation import rfm_arrays, training_unit


class UnitSpendModel(BaseEstimator):
    """E[order value] = 1 unit for every customer (no amounts were read).

    Fitted attributes, as :class:`~clv_models.models.GammaGammaModel` has them: ``params_``
    (empty), ``converged_`` (True: nothing to identify), ``diagnostic_``, ``unit_``,
    ``n_customers_``.
    """

    def __init__(self, unit: str | None = None) -> None:
        self.unit = unit

    def fit(self, rfm: pd.DataFrame, y: Any = None, sample_weight: np.ndarray | None = None) -> UnitSpendModel:
        """Record the time unit and the number of customers; nothing is estimated."""
        x, _ = rfm_arrays(rfm, ("frequency", "recency"))
        self.unit_ = training_unit(rfm, self.unit)
        self.params_: dict[str, float] = {}
        self.converged_ = True
        self.diagnostic_ = "no amounts (frequency-only): every order is worth one unit"
        self.n_customers_ = int(len(x))
        return self

    def expected_order_value(self, rfm: pd.DataFrame) -> np.ndarray:
        """1 unit per order for every row."""
        check_is_fitted(self, "params_")
        x, _ = rfm_arrays(rfm, ("frequency", "recency"), expected_unit=self.unit_)
        return np.ones(len(x))
