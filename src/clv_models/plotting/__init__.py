"""Figures (matplotlib object API: ``ax`` in, ``Axes`` out; no pyplot state, nothing shown)."""

from clv_models.plotting.churn import (
    plot_contributions_summary,
    plot_feature_importance,
    plot_lift,
    plot_reliability,
)
from clv_models.plotting.experiments import plot_action_effects
from clv_models.plotting.ltv import (
    plot_calibration_vs_holdout,
    plot_cumulative_purchases,
    plot_frequency_recency_matrix,
    plot_probability_alive_matrix,
    plot_repeat_purchases,
)
from clv_models.plotting.segments import (
    plot_k_selection,
    plot_pareto,
    plot_segment_map,
    plot_segment_profiles,
)

__all__ = [
    "plot_action_effects",
    "plot_calibration_vs_holdout",
    "plot_contributions_summary",
    "plot_cumulative_purchases",
    "plot_feature_importance",
    "plot_frequency_recency_matrix",
    "plot_k_selection",
    "plot_lift",
    "plot_pareto",
    "plot_probability_alive_matrix",
    "plot_reliability",
    "plot_repeat_purchases",
    "plot_segment_map",
    "plot_segment_profiles",
]
