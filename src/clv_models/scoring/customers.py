"""The per-customer table at a cutoff: features, model values, and the decisions made from them.

Three steps, each a function, so training (which fits the decision models on the values) and
scoring (which only applies them) share the code:

1. :func:`customer_features`: RFM in the model's unit (``frequency, recency, T, monetary_value``)
   plus the point-in-time daily features of :mod:`clv_models.features.churn` at the cutoff
   (``T_days``, ``days_since_last``, order counts, spend, ``avg_order_value`` …, and the
   per-cutoff BTYD features the churn classifier reads).
2. :func:`customer_values`: ``p_alive``, ``expected_purchases_h`` and ``clv_h`` over the
   valuation horizon, ``expected_order_value``, and the calibrated ``churn_probability``.
3. :func:`assign_decisions`: ``value_tier``, ``churn_risk``, ``segment``, ``lifecycle_stage``
   and ``next_best_action`` (codes; display labels are applied at output).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import Settings
    from clv_models.data.ingest import IngestResult
    from clv_models.models import BetaGeoModel, ChurnClassifier, GammaGammaModel
    from clv_models.models.segments import CustomerSegmenter
    from clv_models.valuation.tiers import ValueTiers

RFM_COLUMNS = ("frequency", "recency", "T", "monetary_value")
# Daily snapshot features renamed where they would clash with the model-unit RFM columns.
DAILY_RENAMES = {
    "frequency": "frequency_days",
    "recency": "recency_days",
    "T": "T_days",
    "monetary_value": "monetary_value_days",
}


@dataclass
class CustomerModels:
    """Every fitted model the decisions need; the scorer of DESIGN.md §5 holds one of these."""

    bgnbd: BetaGeoModel
    gamma_gamma: GammaGammaModel
    churn: ChurnClassifier | None = None
    segmenter: CustomerSegmenter | None = None
    tiers: ValueTiers | None = None


def customer_features(
    ingested: IngestResult, *, as_of: dt.date | None = None, unit: str = "D", window_days: int = 90
) -> pd.DataFrame:
    """One row per customer with a purchase on or before ``as_of`` (default: the ingestion
    cutoff, else the last order date), sorted by ``customer_id``. ``attrs``: ``as_of``, ``unit``."""
    from clv_models.features.churn import churn_snapshots
    from clv_models.features.rfm import rfm_summary

    as_of = as_of or ingested.report.as_of or ingested.report.last_order_ts.date()
    rfm = rfm_summary(ingested, as_of=as_of, unit=unit)  # type: ignore[arg-type]
    daily, _ = churn_snapshots(ingested, [as_of], window_days=window_days, labels=False)
    daily = daily.drop(columns=["cutoff"]).rename(columns=DAILY_RENAMES)
    table = rfm.merge(daily, on="customer_id", how="outer", validate="one_to_one", indicator=True)
    unmatched = int((table.pop("_merge") != "both").sum())
    if unmatched:
        raise ClvInputError(
            f"features at {as_of}: {unmatched} customer(s) appear in only one of the RFM summary and the "
            "point-in-time features; this is a bug, please report it with the input"
        )
    table = table.sort_values("customer_id", kind="stable").reset_index(drop=True)
    table.attrs.update(as_of=as_of.isoformat(), unit=unit)
    return table


def customer_values(table: pd.DataFrame, models: CustomerModels, settings: Settings) -> pd.DataFrame:
    """``table`` plus the model values (see the module docstring); ``attrs`` are kept."""
    from clv_models.valuation.clv import customer_lifetime_value

    out = table.copy(deep=False)  # new columns only: the caller's frame is never modified
    rfm = out[list(RFM_COLUMNS)]
    rfm.attrs["unit"] = table.attrs.get("unit")
    horizon = settings.valuation.horizon
    out["p_alive"] = models.bgnbd.probability_alive(rfm)
    out["expected_purchases_h"] = models.bgnbd.expected_purchases(rfm, horizon=horizon)
    out["expected_order_value"] = models.gamma_gamma.expected_order_value(rfm)
    out["clv_h"] = customer_lifetime_value(models.bgnbd, models.gamma_gamma, rfm, **settings.valuation.model_dump())
    if models.churn is not None:
        # The classifier was trained on the daily snapshot columns under their snapshot names.
        names = list(models.churn.feature_names_)
        daily = out[[DAILY_RENAMES.get(name, name) for name in names]]
        daily.columns = names
        out["churn_probability"] = models.churn.predict_proba(daily)[:, 1]
    else:
        out["churn_probability"] = np.nan
    return out


def assign_decisions(table: pd.DataFrame, models: CustomerModels, settings: Settings) -> pd.DataFrame:
    """``table`` (with values) plus tier, risk band, segment, stage and next best action."""
    from clv_models.valuation.actions import next_best_action
    from clv_models.valuation.lifecycle import lifecycle_from_settings
    from clv_models.valuation.risk import churn_risk_band

    if models.tiers is None or models.segmenter is None:
        raise ClvInputError("decisions need fitted value tiers and a segmenter; train them first")
    out = table.copy(deep=False)  # new columns only: the caller's frame is never modified
    out["value_tier"] = models.tiers.predict(out["clv_h"])
    out["churn_risk"] = churn_risk_band(out["churn_probability"], **settings.churn_risk.model_dump())
    out["segment"] = models.segmenter.predict(out)
    out["lifecycle_stage"] = lifecycle_from_settings(out, settings.lifecycle)
    out["next_best_action"] = next_best_action(out, settings.actions.rules, settings.actions.default)
    return out
