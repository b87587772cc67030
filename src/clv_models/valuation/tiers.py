"""Value tiers from predicted CLV, and the Pareto view of predicted value.

Cut points are fitted once, on the training population, and stored: a customer's tier depends on
their own CLV only, never on who else is in the scoring batch (DESIGN.md §2 'value tier').

With shares (default 20 / 30 / 50) the cut points are the empirical quantiles
``Q(1 − high_share)`` and ``Q(1 − high_share − medium_share)`` of training CLV (numpy's default
linear interpolation); a customer is ``high`` when CLV ≥ the high cut point, ``medium`` when CLV ≥
the medium cut point, else ``low``. Ties at a cut point all go up, so realised shares can exceed
the targets when many customers share a value (the fitted ``realised_shares_`` say by how much).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError

TIERS = ("high", "medium", "low")
PARETO_SHARES = (0.01, 0.05, 0.10, 0.20, 0.30, 0.50, 0.80, 1.00)


def _clv_values(clv: Any, what: str) -> np.ndarray:
    values = np.asarray(clv, dtype=float).ravel()
    bad = ~np.isfinite(values)
    if bad.any():
        raise ClvInputError(f"{what}: {int(bad.sum())} customer(s) have a missing or infinite CLV; score them first")
    return values


class ValueTiers(BaseEstimator):
    """``high / medium / low`` from CLV with cut points fitted once (see the module docstring).

    Fitted: ``cut_points_`` ({"high": …, "medium": …}, currency), ``realised_shares_`` on the
    training population.
    """

    def __init__(
        self,
        high_share: float = 0.20,
        medium_share: float = 0.30,
        high_threshold: float | None = None,
        medium_threshold: float | None = None,
    ) -> None:
        self.high_share = high_share
        self.medium_share = medium_share
        self.high_threshold = high_threshold
        self.medium_threshold = medium_threshold

    @classmethod
    def from_settings(cls, settings: Any) -> ValueTiers:
        """From :class:`clv_models.config.TierSettings`."""
        return cls(**settings.model_dump())

    def fit(self, clv: Any, y: Any = None) -> ValueTiers:
        values = _clv_values(clv, "value tiers")
        if self.high_threshold is not None and self.medium_threshold is not None:
            high, medium = float(self.high_threshold), float(self.medium_threshold)
        else:
            if len(values) == 0:
                raise ClvInputError("value tiers: no customers to fit cut points on")
            if not (0 < self.high_share and 0 < self.medium_share and self.high_share + self.medium_share < 1):
                raise ClvInputError(
                    f"value tiers: shares must be > 0 and sum below 1, got {self.high_share}, {self.medium_share}"
                )
            high = float(np.quantile(values, 1.0 - self.high_share))
            medium = float(np.quantile(values, 1.0 - self.high_share - self.medium_share))
        if not medium <= high:
            raise ClvInputError(f"value tiers: medium cut point {medium} is above the high cut point {high}")
        self.cut_points_ = {"high": high, "medium": medium}
        tiers = self.predict(values) if len(values) else np.array([], dtype=object)
        self.realised_shares_ = {tier: float(np.mean(tiers == tier)) if len(tiers) else 0.0 for tier in TIERS}
        return self

    def predict(self, clv: Any) -> np.ndarray:
        """Tier per customer (object array of ``high`` / ``medium`` / ``low``)."""
        check_is_fitted(self, "cut_points_")
        values = _clv_values(clv, "value tiers")
        return np.where(
            values >= self.cut_points_["high"], "high", np.where(values >= self.cut_points_["medium"], "medium", "low")
        ).astype(object)


def pareto_table(clv: Any, shares: tuple[float, ...] = PARETO_SHARES) -> pd.DataFrame:
    """Share of total predicted value held by the top share of customers (ranked by CLV).

    Columns: ``top_customer_share``, ``customers``, ``value`` (currency), ``value_share``,
    ``min_clv`` (the smallest CLV inside the top group). Negative CLVs count as 0 value.
    """
    values = np.sort(np.clip(_clv_values(clv, "Pareto table"), 0.0, None))[::-1]
    if len(values) == 0:
        raise ClvInputError("Pareto table: no customers")
    total = values.sum()
    cumulative = np.cumsum(values)
    rows = []
    for share in shares:
        count = max(1, int(np.ceil(share * len(values) - 1e-9)))
        rows.append(
            {
                "top_customer_share": share,
                "customers": count,
                "value": float(cumulative[count - 1]),
                "value_share": float(cumulative[count - 1] / total) if total > 0 else float("nan"),
                "min_clv": float(values[count - 1]),
            }
        )
    return pd.DataFrame(rows)


def pareto_curve(clv: Any, points: int = 201) -> pd.DataFrame:
    """Cumulative share of predicted value against share of customers, best customers first
    (the Lorenz curve of CLV read from the top), at ``points`` evenly spaced customer shares."""
    values = np.sort(np.clip(_clv_values(clv, "Pareto curve"), 0.0, None))[::-1]
    if len(values) == 0:
        raise ClvInputError("Pareto curve: no customers")
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    customer_share = np.linspace(0.0, 1.0, points)
    value = np.interp(customer_share * len(values), np.arange(len(values) + 1), cumulative)
    total = cumulative[-1]
    return pd.DataFrame({"customer_share": customer_share, "value_share": value / total if total > 0 else np.nan})


def customers_for_value_share(clv: Any, value_share: float = 0.8) -> float:
    """Smallest share of customers (best first) holding ``value_share`` of predicted value."""
    values = np.sort(np.clip(_clv_values(clv, "Pareto"), 0.0, None))[::-1]
    total = values.sum()
    if total <= 0:
        return float("nan")
    count = int(np.searchsorted(np.cumsum(values), value_share * total - 1e-9 * total) + 1)
    return min(count, len(values)) / len(values)


def tier_summary(tiers: Any, clv: Any, revenue: Any | None = None) -> pd.DataFrame:
    """Customers, share of customers, predicted value and its share (and historical revenue share
    when ``revenue`` is given), CLV range and mean per tier, in the order high, medium, low."""
    frame = pd.DataFrame({"value_tier": np.asarray(tiers, dtype=object), "clv": _clv_values(clv, "tier summary")})
    if revenue is not None:
        frame["revenue"] = np.asarray(revenue, dtype=float)
    grouped = frame.groupby("value_tier", sort=False)
    table = pd.DataFrame(
        {
            "customers": grouped.size(),
            "clv_sum": grouped["clv"].sum(),
            "clv_mean": grouped["clv"].mean(),
            "clv_min": grouped["clv"].min(),
            "clv_max": grouped["clv"].max(),
        }
    ).reindex(list(TIERS))
    table["customers"] = table["customers"].fillna(0).astype(int)
    table["customer_share"] = table["customers"] / max(1, len(frame))
    value_total = frame["clv"].clip(lower=0).sum()
    table["value_share"] = grouped["clv"].apply(lambda v: v.clip(lower=0).sum()).reindex(list(TIERS)) / value_total
    if revenue is not None:
        table["revenue_share"] = grouped["revenue"].sum().reindex(list(TIERS)) / frame["revenue"].sum()
    table.index.name = "value_tier"
    return table.reset_index()
