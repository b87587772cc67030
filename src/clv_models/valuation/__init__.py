"""Valuation: customer lifetime value, value tiers and the Pareto view, churn-risk bands, lifecycle
stages, next best action, display labels."""

from clv_models.valuation.actions import action_table, next_best_action
from clv_models.valuation.clv import customer_lifetime_value, monthly_steps
from clv_models.valuation.labels import apply_labels, label_map
from clv_models.valuation.lifecycle import lifecycle_from_settings, lifecycle_stage
from clv_models.valuation.risk import churn_risk_band
from clv_models.valuation.tiers import (
    ValueTiers,
    customers_for_value_share,
    pareto_curve,
    pareto_table,
    tier_summary,
)

__all__ = [
    "ValueTiers",
    "action_table",
    "apply_labels",
    "churn_risk_band",
    "customer_lifetime_value",
    "customers_for_value_share",
    "label_map",
    "lifecycle_from_settings",
    "lifecycle_stage",
    "monthly_steps",
    "next_best_action",
    "pareto_curve",
    "pareto_table",
    "tier_summary",
]
