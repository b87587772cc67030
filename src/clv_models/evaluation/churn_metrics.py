"""Churn-classifier metrics on plain arrays: calibration (reliability curve, expected calibration
error), ranking (lift table, top-share lift and capture) and the usual scores (ROC AUC, average
precision, Brier score, log loss).

``probability`` is a predicted probability of the positive class (churn) in [0, 1]; ``score`` is any
finite number where higher means more likely positive; ``outcome`` is 0/1 (1 = churned). Bad input
raises :class:`ChurnMetricInputError`, which is both a :class:`ValueError` and a
:class:`~clv_models.errors.ClvInputError` (so the CLI prints it as one line). NaN is bad input: it is
never dropped silently, because the dropped customers would bias every rate below.

Ranking ties are broken by row order (a stable sort), so results are deterministic but can depend
on the input order when scores tie at a group or top-share boundary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from clv_models.errors import ClvInputError

# Keys of classification_metrics, and the columns of compare_scores, in this order.
_METRIC_KEYS = (
    "auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift", "top_decile_capture", "positive_rate", "n",
)
_LOG_LOSS_CLIP = 1e-15


class ChurnMetricInputError(ClvInputError, ValueError):
    """Invalid input to a churn metric (length mismatch, NaN, outcome not 0/1, probability outside
    [0, 1], bad bin or group count)."""


def _outcome(outcome: np.ndarray) -> np.ndarray:
    outcome = np.asarray(outcome, dtype=float)
    if outcome.ndim != 1:
        raise ChurnMetricInputError(f"outcome must be one-dimensional, got shape {outcome.shape}")
    if outcome.size == 0:
        raise ChurnMetricInputError("no customers to evaluate: outcome is empty")
    if np.isnan(outcome).any():
        raise ChurnMetricInputError(f"outcome contains {int(np.isnan(outcome).sum())} NaN value(s)")
    bad = ~np.isin(outcome, (0.0, 1.0))
    if bad.any():
        raise ChurnMetricInputError(
            f"outcome must be 0 or 1, got {int(bad.sum())} other value(s), e.g. {outcome[bad][0]:g}"
        )
    return outcome


def _scores(values: np.ndarray, outcome: np.ndarray, *, name: str, probability: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validate a score (or probability when ``probability``) against the outcome; return both as float."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        # A (n, 2) predict_proba array is the usual culprit: pass its positive-class column.
        raise ChurnMetricInputError(f"{name} must be one-dimensional, got shape {values.shape}")
    outcome = _outcome(outcome)
    if values.size != outcome.size:
        raise ChurnMetricInputError(f"{name} and outcome differ in length: {values.size} vs {outcome.size}")
    if np.isnan(values).any():
        raise ChurnMetricInputError(f"{name} contains {int(np.isnan(values).sum())} NaN value(s)")
    if not np.isfinite(values).all():
        raise ChurnMetricInputError(f"{name} must be finite, got {int((~np.isfinite(values)).sum())} infinite value(s)")
    if probability and ((values < 0).any() or (values > 1).any()):
        raise ChurnMetricInputError(
            f"{name} must lie in [0, 1], got values from {values.min():g} to {values.max():g}"
        )
    return values, outcome


def _count(value: int, what: str, *, most: int | None = None) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1 or (most is not None and value > most):
        bound = f" and at most {most}" if most is not None else ""
        raise ChurnMetricInputError(f"{what} must be a whole number ≥ 1{bound}, got {value}")
    return int(value)


def reliability_curve(probability: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Observed positive rate vs mean predicted probability per equal-width probability bin.

    Bins split [0, 1] into ``n_bins`` intervals [k/B, (k+1)/B), k = 0..B−1, with the last one closed
    so p = 1 belongs to it: p goes to bin ⌊B·p⌋ (B − 1 when p = 1). Columns: ``bin_lower``,
    ``bin_upper`` (probabilities), ``n`` (customers in the bin), ``mean_predicted`` (mean
    probability) and ``observed_rate`` (share of outcome = 1, a fraction). Only non-empty bins are
    listed, in increasing order. This is the reliability diagram of DeGroot & Fienberg (1983) and
    :func:`sklearn.calibration.calibration_curve` with ``strategy="uniform"``, except at the interior
    edges: scikit-learn ≥ 1.5 puts a probability exactly on an edge in the lower bin, here it goes to
    the upper one.
    """
    probability, outcome = _scores(probability, outcome, name="probability", probability=True)
    n_bins = _count(n_bins, "n_bins")
    bins = np.minimum(np.floor(probability * n_bins).astype(np.int64), n_bins - 1)
    n = np.bincount(bins, minlength=n_bins)
    predicted_sum = np.bincount(bins, weights=probability, minlength=n_bins)
    positive_sum = np.bincount(bins, weights=outcome, minlength=n_bins)
    filled = np.flatnonzero(n)
    return pd.DataFrame(
        {
            "bin_lower": filled / n_bins,
            "bin_upper": (filled + 1) / n_bins,
            "n": n[filled].astype(np.int64),
            "mean_predicted": predicted_sum[filled] / n[filled],
            "observed_rate": positive_sum[filled] / n[filled],
        }
    )


def expected_calibration_error(probability: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error (Naeini, Cooper & Hauskrecht 2015), a probability in [0, 1]:

    ECE = Σ_bins (n_bin / N) · |observed rate in bin − mean predicted probability in bin|,

    over the equal-width bins of :func:`reliability_curve` (empty bins contribute nothing).
    0 means the probabilities match the observed rates bin by bin.
    """
    curve = reliability_curve(probability, outcome, n_bins)
    weights = curve["n"].to_numpy() / curve["n"].sum()
    return float(np.sum(weights * np.abs(curve["observed_rate"].to_numpy() - curve["mean_predicted"].to_numpy())))


def _ranked_outcome(score: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """Outcomes ordered by score, highest first; ties keep their row order."""
    score, outcome = _scores(score, outcome, name="score", probability=False)
    return outcome[np.argsort(-score, kind="stable")]


def lift_table(score: np.ndarray, outcome: np.ndarray, n_groups: int = 10) -> pd.DataFrame:
    """Positive rate and lift by group of customers ranked by score (a decile table for 10 groups).

    Customers are sorted by score, highest first (ties by row order), and cut into ``n_groups``
    consecutive groups of near-equal size with :func:`numpy.array_split` (the first N mod n_groups
    groups get one extra customer); ``n_groups`` may not exceed N. Columns: ``group`` (1 = highest
    scores), ``n`` (customers), ``positives``, ``positive_rate`` (fraction), ``lift`` =
    positive_rate / overall positive rate (1 = no better than random) and ``cumulative_capture`` =
    share of all positives in groups 1..g (the cumulative gains curve at the group's end). Lift and
    capture are NaN when there are no positives at all.
    """
    ranked = _ranked_outcome(score, outcome)
    n_groups = _count(n_groups, "n_groups", most=ranked.size)
    groups = np.array_split(ranked, n_groups)
    n = np.array([g.size for g in groups], dtype=np.int64)
    positives = np.array([g.sum() for g in groups], dtype=np.int64)
    total = int(positives.sum())
    overall_rate = total / ranked.size
    rate = positives / n
    return pd.DataFrame(
        {
            "group": np.arange(1, n_groups + 1, dtype=np.int64),
            "n": n,
            "positives": positives,
            "positive_rate": rate,
            "lift": rate / overall_rate if total else np.full(n_groups, np.nan),
            "cumulative_capture": np.cumsum(positives) / total if total else np.full(n_groups, np.nan),
        }
    )


def _top(score: np.ndarray, outcome: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """(top ⌈share·N⌉ outcomes by score, all outcomes)."""
    if not 0 < share <= 1:
        raise ChurnMetricInputError(f"share must be in (0, 1], got {share}")
    ranked = _ranked_outcome(score, outcome)
    # share·N carries float error (0.1·30 = 3.0000000000000004): without the tolerance ceil would
    # take one customer too many. At least one customer is always taken.
    k = max(1, math.ceil(share * ranked.size - 1e-9))
    return ranked[:k], ranked


def top_share_positive_capture(score: np.ndarray, outcome: np.ndarray, share: float = 0.10) -> float:
    """Share of all positives (a fraction) among the top ⌈share·N⌉ customers by score (ties at the
    cut by row order): the cumulative gains curve at ``share``. NaN when there are no positives.

    Not :func:`clv_models.evaluation.top_share_capture`, which measures revenue, not churners.
    """
    top, ranked = _top(score, outcome, share)
    total = ranked.sum()
    return float(top.sum() / total) if total else float("nan")


def top_share_lift(score: np.ndarray, outcome: np.ndarray, share: float = 0.10) -> float:
    """Lift of the top ⌈share·N⌉ customers by score (ties at the cut by row order): their positive
    rate divided by the overall positive rate (1 = no better than random targeting). NaN when there
    are no positives."""
    top, ranked = _top(score, outcome, share)
    overall = ranked.mean()
    return float(top.mean() / overall) if overall else float("nan")


def classification_metrics(probability: np.ndarray, outcome: np.ndarray) -> dict[str, float]:
    """Scores of predicted churn probabilities against 0/1 outcomes, keys always in this order:

    ``auc``: ROC AUC (:func:`sklearn.metrics.roc_auc_score`), NaN unless both classes occur;
    ``pr_auc``: average precision (:func:`sklearn.metrics.average_precision_score`), NaN without
    positives; ``brier``: mean squared error of the probabilities (Brier 1950); ``log_loss``: mean
    negative log-likelihood in nats, probabilities clipped to [1e-15, 1 − 1e-15];
    ``ece``: :func:`expected_calibration_error` with 10 bins; ``top_decile_lift`` and
    ``top_decile_capture``: :func:`top_share_lift` and :func:`top_share_positive_capture` at 10 %
    (NaN without positives); ``positive_rate``: share of outcome = 1; ``n``: customers (an int).
    Probabilities and rates are fractions.
    """
    probability, outcome = _scores(probability, outcome, name="probability", probability=True)
    positives = int(outcome.sum())
    both_classes = 0 < positives < outcome.size
    clipped = np.clip(probability, _LOG_LOSS_CLIP, 1 - _LOG_LOSS_CLIP)
    metrics = {
        "auc": float(roc_auc_score(outcome, probability)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(outcome, probability)) if positives else float("nan"),
        "brier": float(brier_score_loss(outcome, probability)),
        # labels: with one class in outcome sklearn cannot infer the other and would raise.
        "log_loss": float(log_loss(outcome, clipped, labels=[0, 1])),
        "ece": expected_calibration_error(probability, outcome, 10),
        "top_decile_lift": top_share_lift(probability, outcome, 0.10),
        "top_decile_capture": top_share_positive_capture(probability, outcome, 0.10),
        "positive_rate": positives / outcome.size,
        "n": int(outcome.size),
    }
    return {key: metrics[key] for key in _METRIC_KEYS}


def compare_scores(scores: Mapping[str, np.ndarray], outcome: np.ndarray) -> pd.DataFrame:
    """:func:`classification_metrics` of several named probability vectors against one outcome:
    one row per name (index ``score``, in the mapping's order), one column per metric."""
    if not scores:
        raise ChurnMetricInputError("scores is empty: pass at least one named probability vector")
    rows = []
    for name, probability in scores.items():
        try:
            rows.append(classification_metrics(probability, outcome))
        except ChurnMetricInputError as exc:
            raise ChurnMetricInputError(f"score {name!r}: {exc}") from None
    table = pd.DataFrame(rows, index=pd.Index(list(scores), name="score"), columns=list(_METRIC_KEYS))
    table["n"] = table["n"].astype(np.int64)
    return table
