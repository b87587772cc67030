"""Scoring: from orders at a cutoff and fitted models to one row per customer (DESIGN.md §4)."""

from clv_models.scoring.customers import (
    CustomerModels,
    assign_decisions,
    customer_features,
    customer_values,
)

__all__ = ["CustomerModels", "assign_decisions", "customer_features", "customer_values"]
