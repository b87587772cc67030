"""Holdout evaluation: out-of-time metrics, the Gamma-Gamma independence check, BG/NBD fit
diagnostics (repeat-purchase distribution, cumulative tracking), churn-classifier metrics and
segment profiles."""

from clv_models.evaluation.churn_metrics import (
    classification_metrics,
    compare_scores,
    expected_calibration_error,
    lift_table,
    reliability_curve,
    top_share_lift,
    top_share_positive_capture,
)
from clv_models.evaluation.cumulative import cumulative_repeat_purchases
from clv_models.evaluation.fit import (
    expected_repeat_purchases,
    probability_of_purchases,
    repeat_purchase_histogram,
)
from clv_models.evaluation.holdout import (
    METRIC_NAMES,
    HoldoutReport,
    evaluate_holdout,
    frequency_table,
    holdout_purchase_predictions,
    holdout_revenue,
)
from clv_models.evaluation.independence import IndependenceWarning, frequency_monetary_correlation
from clv_models.evaluation.metrics import (
    aggregate_error,
    decile_mape,
    decile_table,
    gains_curve,
    gini,
    mean_absolute_error,
    normalized_gini,
    root_mean_squared_error,
    spearman,
    top_share_capture,
)
from clv_models.evaluation.report import LtvReportFiles, write_ltv_report
from clv_models.evaluation.segments import decision_mix, segment_profiles

__all__ = [
    "METRIC_NAMES",
    "HoldoutReport",
    "IndependenceWarning",
    "aggregate_error",
    "classification_metrics",
    "compare_scores",
    "cumulative_repeat_purchases",
    "decile_mape",
    "decision_mix",
    "decile_table",
    "evaluate_holdout",
    "expected_calibration_error",
    "expected_repeat_purchases",
    "frequency_monetary_correlation",
    "frequency_table",
    "gains_curve",
    "gini",
    "holdout_purchase_predictions",
    "holdout_revenue",
    "lift_table",
    "mean_absolute_error",
    "normalized_gini",
    "probability_of_purchases",
    "reliability_curve",
    "repeat_purchase_histogram",
    "root_mean_squared_error",
    "segment_profiles",
    "spearman",
    "top_share_capture",
    "top_share_lift",
    "top_share_positive_capture",
    "write_ltv_report",
    "LtvReportFiles",
]
