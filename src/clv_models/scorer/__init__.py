"""The fitted scorer: every model, decision rule and drift reference the scores need, and the
steps that turn the per-customer feature table into the scores table (DESIGN.md §4). Below
``tracking`` (which saves and loads it) and ``scoring`` (the batch jobs that feed it)."""

from clv_models.scorer.customer_scorer import PROVENANCE_COLUMNS, SCORE_COLUMNS, CustomerScorer
from clv_models.scorer.values import CustomerModels, assign_decisions, customer_values

__all__ = [
    "PROVENANCE_COLUMNS",
    "SCORE_COLUMNS",
    "CustomerModels",
    "CustomerScorer",
    "assign_decisions",
    "customer_values",
]
