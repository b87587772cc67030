"""From the feature table to values and decisions: the steps the scorer applies to every row.

Training fits the decision models on the values and scoring only applies them; both call these:

1. :func:`customer_values`: ``p_alive``, ``expected_purchases_h`` and ``clv_h`` over the
   valuation horizon, ``expected_order_value``, the four BTYD churn features (from the BG/NBD and
   Gamma-Gamma fitted at training on the daily RFM), the calibrated ``churn_probability`` and
   ``value_forecast``: the value the tiers are cut from (the stored value ranker's revenue over its
   window W, currency; ``clv_h`` when no ranker is stored; decisions D42).
2. :func:`assign_decisions`: ``value_tier`` (cut from ``value_forecast``), ``churn_risk``,
   ``segment``, ``lifecycle_stage`` and ``next_best_action`` (codes; display labels are applied
   at output).

The input is the feature table of :func:`clv_models.features.customer.customer_features`. Every
output of a row depends on that row and the fitted models only, never on the other rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError
from clv_models.features.calendar import CALENDAR_FEATURES, add_calendar_features
from clv_models.features.customer import RFM_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import Settings
    from clv_models.models import BetaGeoModel, ChurnClassifier, GammaGammaModel, ModifiedBetaGeoModel, ParetoNBDModel
    from clv_models.models.btyd_features import BtydChurnFeatures
    from clv_models.models.segments import CustomerSegmenter
    from clv_models.models.value import ValueRanker
    from clv_models.valuation.risk import ChurnRiskBands
    from clv_models.valuation.tiers import ValueTiers


@dataclass
class CustomerModels:
    """Every fitted model the scores need; the scorer of DESIGN.md §5 holds one of these.

    ``btyd_features``: the daily BG/NBD and Gamma-Gamma behind the churn classifier's BTYD
    features, fitted at the training cutoff (required with ``churn``)."""

    purchases: BetaGeoModel | ModifiedBetaGeoModel | ParetoNBDModel  # chosen by training (decisions D31)
    gamma_gamma: GammaGammaModel
    churn: ChurnClassifier | None = None
    segmenter: CustomerSegmenter | None = None
    tiers: ValueTiers | None = None
    btyd_features: BtydChurnFeatures | None = None
    risk_bands: ChurnRiskBands | None = None  # fitted at training (None: the absolute [churn_risk] bands)
    affinity: Any = None  # ProductAffinity for recommended_products, when products were mapped (D43)
    # What the value tiers rank by, chosen out of time at training (decisions D40, D42); None: clv_h
    # (value.ranker = "btyd_clv", or a scorer saved before the value model).
    value_ranker: ValueRanker | None = None


def reported_p_alive(purchases: BetaGeoModel | ModifiedBetaGeoModel | ParetoNBDModel, rfm: pd.DataFrame) -> np.ndarray:
    """P(alive) of each customer from the purchase model, or NaN for every customer when the fit is
    not identified (``converged_`` False, decisions D45): then the drop-out heterogeneity sits at
    the edge of its space (on Online Retail every candidate says nobody leaves) and P(alive) = 1
    for a customer silent for a year is the edge speaking, not the data. Lifecycle stages then read
    the churn probability alone."""
    if not getattr(purchases, "converged_", True):
        return np.full(len(rfm), np.nan)
    return np.asarray(purchases.probability_alive(rfm), dtype=float)


def value_basis(models: CustomerModels) -> str:
    """The name of the value the tiers are cut from: the stored ranker's (``model``, ``btyd_clv``,
    ``past_spend_recent``, ``past_spend_total``) or ``clv_h``."""
    ranker = getattr(models, "value_ranker", None)
    return "clv_h" if ranker is None else ranker.name


def customer_values(table: pd.DataFrame, models: CustomerModels, settings: Settings) -> pd.DataFrame:
    """``table`` plus the model values (see the module docstring); ``attrs`` are kept."""
    from clv_models.valuation.clv import customer_lifetime_value

    out = table.copy(deep=False)  # new columns only: the caller's frame is never modified
    rfm = out[list(RFM_COLUMNS)]
    rfm.attrs["unit"] = table.attrs.get("unit")
    horizon = settings.valuation.horizon
    out["p_alive"] = reported_p_alive(models.purchases, rfm)
    out["expected_purchases_h"] = models.purchases.expected_purchases(rfm, horizon=horizon)
    out["expected_order_value"] = models.gamma_gamma.expected_order_value(rfm)
    out["clv_h"] = customer_lifetime_value(models.purchases, models.gamma_gamma, rfm, **settings.valuation.model_dump())
    if models.churn is not None:
        if models.btyd_features is None:
            raise ClvInputError("the churn classifier needs its BTYD feature models; retrain the scorer")
        btyd = models.btyd_features.transform(out)
        for name in btyd.columns:
            out[name] = btyd[name].to_numpy()
        if CALENDAR_FEATURES[0] in models.churn.feature_names_:
            # The season of the scoring cutoff, as training read it from each snapshot's (D46).
            add_calendar_features(out, "as_of")
        out["churn_probability"] = models.churn.predict_proba(out)[:, 1]
    else:
        out["churn_probability"] = np.nan
    ranker = getattr(models, "value_ranker", None)  # absent from scorers pickled before it existed
    if ranker is None:
        out["value_forecast"] = out["clv_h"].to_numpy(dtype=float)
    else:
        # Row-wise: the stored ranker derives what it reads from this row and the stored fits.
        out["value_forecast"] = ranker.value(out, btyd=models.btyd_features)
    return out


def assign_decisions(table: pd.DataFrame, models: CustomerModels, settings: Settings) -> pd.DataFrame:
    """``table`` (with values) plus tier, risk band, segment, stage and next best action."""
    from clv_models.valuation.actions import next_best_action
    from clv_models.valuation.lifecycle import lifecycle_from_settings
    from clv_models.valuation.risk import churn_risk_band

    if models.tiers is None or models.segmenter is None:
        raise ClvInputError("decisions need fitted value tiers and a segmenter; train them first")
    out = table.copy(deep=False)  # new columns only: the caller's frame is never modified
    if "value_forecast" in out.columns:
        basis = out["value_forecast"]
    elif getattr(models, "value_ranker", None) is None:  # a table valued before value_forecast existed
        basis = out["clv_h"]
    else:
        raise ClvInputError("decisions need value_forecast: compute the table with customer_values first")
    out["value_tier"] = models.tiers.predict(basis)
    if models.risk_bands is not None:
        out["churn_risk"] = models.risk_bands.predict(out["churn_probability"])
    else:
        risk = settings.churn_risk
        out["churn_risk"] = churn_risk_band(out["churn_probability"], high=risk.high, medium=risk.medium)
    out["segment"] = models.segmenter.predict(out)
    out["lifecycle_stage"] = lifecycle_from_settings(out, settings.lifecycle)
    out["next_best_action"] = next_best_action(out, settings.actions.rules, settings.actions.default)
    return out
