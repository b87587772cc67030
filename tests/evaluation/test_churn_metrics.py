"""Churn-classifier metrics: values worked out by hand on tiny arrays, and agreement with
scikit-learn (and numpy.histogram for the bins) where an equivalent exists."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from clv_models.errors import ClvInputError
from clv_models.evaluation import (
    classification_metrics,
    compare_scores,
    expected_calibration_error,
    lift_table,
    reliability_curve,
    top_share_lift,
    top_share_positive_capture,
)

METRIC_KEYS = [
    "auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift", "top_decile_capture", "positive_rate", "n",
]

# Six predictions. With 10 bins of width 0.1:
#   bin [0.0, 0.1): 0.05           outcome 0    -> rate 0,   mean 0.05, gap 0.05, weight 1/6
#   bin [0.1, 0.2): 0.15, 0.15     outcomes 0,1 -> rate 0.5, mean 0.15, gap 0.35, weight 2/6
#   bin [0.4, 0.5): 0.45           outcome 1    -> rate 1,   mean 0.45, gap 0.55, weight 1/6
#   bin [0.8, 0.9): 0.85           outcome 1    -> gap 0.15, weight 1/6
#   bin [0.9, 1.0]: 0.95           outcome 1    -> gap 0.05, weight 1/6
#   ECE = (0.05 + 2·0.35 + 0.55 + 0.15 + 0.05) / 6 = 1.5 / 6 = 0.25
# With 2 bins: [0, 0.5) holds 0.05, 0.15, 0.15, 0.45 (mean 0.2, rate 2/4 = 0.5, gap 0.3) and
# [0.5, 1] holds 0.85, 0.95 (mean 0.9, rate 1, gap 0.1): ECE = (4·0.3 + 2·0.1) / 6 = 1.4 / 6.
P6 = np.array([0.05, 0.15, 0.15, 0.45, 0.85, 0.95])
Y6 = np.array([0, 0, 1, 1, 1, 1])

# Ten scores; sorted highest first (the tie at 0.9 keeps row order: row 1 before row 3):
#   score    0.9 0.9 0.8 0.7 0.6 0.5 0.4 0.3 0.2 0.1
#   row        1   3   7   9   5   8   2   6   0   4
#   outcome    1   0   1   0   1   0   0   1   0   0      4 positives, overall rate 0.4
# Three groups (np.array_split: sizes 4, 3, 3):
#   group 1: 1 0 1 0 -> 2 positives, rate 0.5, lift 0.5/0.4 = 1.25,     capture 2/4 = 0.5
#   group 2: 1 0 0   -> 1 positive,  rate 1/3, lift (1/3)/0.4 = 5/6,    capture 3/4 = 0.75
#   group 3: 1 0 0   -> 1 positive,  rate 1/3, lift 5/6,                capture 4/4 = 1
S10 = np.array([0.2, 0.9, 0.4, 0.9, 0.1, 0.6, 0.3, 0.8, 0.5, 0.7])
Y10 = np.array([0, 1, 0, 0, 0, 1, 1, 1, 0, 0])


# --- calibration -------------------------------------------------------------------------------


def test_ece_by_hand() -> None:
    assert expected_calibration_error(P6, Y6) == pytest.approx(0.25)
    assert expected_calibration_error(P6, Y6, n_bins=2) == pytest.approx(1.4 / 6)


def test_reliability_curve_by_hand() -> None:
    curve = reliability_curve(P6, Y6)
    assert list(curve.columns) == ["bin_lower", "bin_upper", "n", "mean_predicted", "observed_rate"]
    np.testing.assert_allclose(curve["bin_lower"], [0.0, 0.1, 0.4, 0.8, 0.9])
    np.testing.assert_allclose(curve["bin_upper"], [0.1, 0.2, 0.5, 0.9, 1.0])
    assert curve["n"].tolist() == [1, 2, 1, 1, 1]
    np.testing.assert_allclose(curve["mean_predicted"], [0.05, 0.15, 0.45, 0.85, 0.95])
    np.testing.assert_allclose(curve["observed_rate"], [0.0, 0.5, 1.0, 1.0, 1.0])


def test_bins_are_closed_on_the_left_and_the_last_holds_one() -> None:
    # 2 bins: [0, 0.5) gets 0.0; [0.5, 1] gets 0.5 and 1.0 (mean 0.75, rate 1).
    # ECE = (1·|0 − 0| + 2·|1 − 0.75|) / 3 = 1/6.
    p, y = np.array([0.0, 0.5, 1.0]), np.array([0, 1, 1])
    curve = reliability_curve(p, y, n_bins=2)
    assert curve["n"].tolist() == [1, 2]
    np.testing.assert_allclose(curve["mean_predicted"], [0.0, 0.75])
    np.testing.assert_allclose(curve["observed_rate"], [0.0, 1.0])
    assert expected_calibration_error(p, y, n_bins=2) == pytest.approx(1 / 6)


@pytest.mark.parametrize("n_bins", [1, 5, 10, 17])
def test_reliability_curve_matches_sklearn_and_numpy(n_bins: int) -> None:
    rng = np.random.default_rng(7)
    p = rng.beta(0.7, 2.5, size=500)  # skewed low, so some high bins are empty
    y = (rng.uniform(size=p.size) < p).astype(int)
    curve = reliability_curve(p, y, n_bins=n_bins)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    np.testing.assert_allclose(curve["observed_rate"], prob_true)
    np.testing.assert_allclose(curve["mean_predicted"], prob_pred)
    # numpy.histogram uses the same bins: [a, b) except the last, which is closed.
    counts, edges = np.histogram(p, bins=n_bins, range=(0.0, 1.0))
    assert curve["n"].tolist() == counts[counts > 0].tolist()
    np.testing.assert_allclose(curve["bin_lower"], edges[:-1][counts > 0])
    gaps = np.abs(prob_true - prob_pred)
    assert expected_calibration_error(p, y, n_bins) == pytest.approx(np.sum(counts[counts > 0] / p.size * gaps))


def test_perfect_calibration_within_bins_has_zero_ece() -> None:
    # Each bin's mean prediction equals its observed rate: 0.25 with 1 of 4, 0.75 with 3 of 4.
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(p, y) == pytest.approx(0.0, abs=1e-15)


# --- ranking -----------------------------------------------------------------------------------


def test_lift_table_by_hand() -> None:
    table = lift_table(S10, Y10, n_groups=3)
    assert list(table.columns) == ["group", "n", "positives", "positive_rate", "lift", "cumulative_capture"]
    assert table["group"].tolist() == [1, 2, 3]
    assert table["n"].tolist() == [4, 3, 3]
    assert table["positives"].tolist() == [2, 1, 1]
    np.testing.assert_allclose(table["positive_rate"], [0.5, 1 / 3, 1 / 3])
    np.testing.assert_allclose(table["lift"], [1.25, 5 / 6, 5 / 6])
    np.testing.assert_allclose(table["cumulative_capture"], [0.5, 0.75, 1.0])


def test_lift_table_one_customer_per_group() -> None:
    # Ranked outcomes 1 0 1 0 1 0 0 1 0 0: lift = outcome / 0.4, capture = running count / 4.
    table = lift_table(S10, Y10, n_groups=10)
    np.testing.assert_allclose(table["lift"], [2.5, 0, 2.5, 0, 2.5, 0, 0, 2.5, 0, 0])
    np.testing.assert_allclose(table["cumulative_capture"], [0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 1, 1, 1])


def test_lift_accepts_any_finite_score_and_ignores_its_scale() -> None:
    shifted = lift_table(1000 * S10 - 400, Y10, n_groups=3)  # negative and > 1: still a ranking
    pd.testing.assert_frame_equal(shifted, lift_table(S10, Y10, n_groups=3))


def test_top_share_by_hand() -> None:
    # share 0.1 of 10 -> the top 1 customer: row 1 (wins the 0.9 tie by row order), a positive.
    # capture = 1/4, lift = (1/1) / 0.4 = 2.5.
    assert top_share_positive_capture(S10, Y10) == pytest.approx(0.25)
    assert top_share_lift(S10, Y10) == pytest.approx(2.5)
    # share 0.25 -> ceil(2.5) = 3 customers: outcomes 1 0 1 -> capture 2/4, lift (2/3) / 0.4 = 5/3.
    assert top_share_positive_capture(S10, Y10, share=0.25) == pytest.approx(0.5)
    assert top_share_lift(S10, Y10, share=0.25) == pytest.approx(5 / 3)
    assert top_share_positive_capture(S10, Y10, share=1.0) == 1.0
    assert top_share_lift(S10, Y10, share=1.0) == pytest.approx(1.0)


def test_ties_are_broken_by_row_order() -> None:
    # Swap rows 1 and 3 (both 0.9): the top customer is now the negative one.
    swapped = Y10.copy()
    swapped[[1, 3]] = swapped[[3, 1]]
    assert top_share_positive_capture(S10, swapped) == 0.0
    assert top_share_lift(S10, swapped) == 0.0


def test_top_share_count_is_not_inflated_by_float_error() -> None:
    # 0.1 · 30 = 3.0000000000000004 in floating point; the top 10 % of 30 is 3 customers, not 4.
    # Ranked outcomes 1 1 1 1 0 …: 3 of the 4 positives -> capture 0.75, lift 1 / (4/30) = 7.5.
    score = np.arange(30, 0, -1, dtype=float)
    outcome = np.r_[1, 1, 1, 1, np.zeros(26, dtype=int)]
    assert top_share_positive_capture(score, outcome) == pytest.approx(0.75)
    assert top_share_lift(score, outcome) == pytest.approx(7.5)


# --- classification_metrics / compare_scores ---------------------------------------------------


def test_classification_metrics_by_hand() -> None:
    metrics = classification_metrics(P6, Y6)
    assert list(metrics) == METRIC_KEYS
    # AUC: each positive (0.15, 0.45, 0.85, 0.95) against each negative (0.05, 0.15); 0.15 vs 0.15
    # is a tie worth 1/2: (1.5 + 2 + 2 + 2) / 8.
    assert metrics["auc"] == pytest.approx(7.5 / 8)
    # Average precision: ranked 0.95 0.85 0.45 (all positive, precision 1) then the 0.15 pair
    # (4 positives of 5, precision 0.8); each threshold adds recall 1/4: 0.25·(1 + 1 + 1 + 0.8).
    assert metrics["pr_auc"] == pytest.approx(0.95)
    # Brier: squared gaps 0.05² 0.15² 0.85² 0.55² 0.15² 0.05² = 1.075, over 6.
    assert metrics["brier"] == pytest.approx(1.075 / 6)
    expected_log_loss = -(math.log(0.95) + math.log(0.85) + math.log(0.15) + math.log(0.45)
                          + math.log(0.85) + math.log(0.95)) / 6
    assert metrics["log_loss"] == pytest.approx(expected_log_loss)
    assert metrics["ece"] == pytest.approx(0.25)
    # Top 10 % of 6 = ceil(0.6) = 1 customer (0.95, a positive): lift 1 / (4/6), capture 1/4.
    assert metrics["top_decile_lift"] == pytest.approx(1.5)
    assert metrics["top_decile_capture"] == pytest.approx(0.25)
    assert metrics["positive_rate"] == pytest.approx(4 / 6)
    assert metrics["n"] == 6


def test_classification_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(size=400)
    y = (rng.uniform(size=p.size) < p**2).astype(int)
    metrics = classification_metrics(p, y)
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p))
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p))
    assert metrics["log_loss"] == pytest.approx(log_loss(y, p))
    assert metrics["top_decile_lift"] == pytest.approx(top_share_lift(p, y, 0.1))
    assert metrics["n"] == 400


def test_log_loss_clips_certain_mistakes() -> None:
    # p = 0 for a positive costs −ln(1e-15); p = 0 for a negative costs −ln(1 − 1e-15) ≈ 0.
    metrics = classification_metrics(np.array([0.0, 0.0]), np.array([1, 0]))
    assert metrics["log_loss"] == pytest.approx(-math.log(1e-15) / 2)
    assert np.isfinite(metrics["log_loss"])


def test_one_class_gives_nan_not_an_exception() -> None:
    p = np.array([0.1, 0.4, 0.7])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning either
        none_positive = classification_metrics(p, np.zeros(3))
        all_positive = classification_metrics(p, np.ones(3))
    for key in ("auc", "pr_auc", "top_decile_lift", "top_decile_capture"):
        assert math.isnan(none_positive[key]), key
    # Brier and log loss stay defined: (0.01 + 0.16 + 0.49) / 3, −(ln 0.9 + ln 0.6 + ln 0.3) / 3.
    assert none_positive["brier"] == pytest.approx(0.66 / 3)
    assert none_positive["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.6) + math.log(0.3)) / 3)
    assert none_positive["positive_rate"] == 0.0
    assert math.isnan(all_positive["auc"])
    assert all_positive["pr_auc"] == pytest.approx(1.0)  # every threshold has precision 1
    # Top 10 % of 3 = 1 customer, a positive: lift 1 / 1, capture 1/3.
    assert all_positive["top_decile_lift"] == pytest.approx(1.0)
    assert all_positive["top_decile_capture"] == pytest.approx(1 / 3)
    table = lift_table(p, np.zeros(3), n_groups=3)
    assert table["positives"].tolist() == [0, 0, 0]
    assert table["lift"].isna().all() and table["cumulative_capture"].isna().all()


def test_compare_scores() -> None:
    reversed_p = 1 - P6
    table = compare_scores({"model": P6, "baseline": reversed_p}, Y6)
    assert table.index.name == "score"
    assert table.index.tolist() == ["model", "baseline"]  # given order, not sorted
    assert table.columns.tolist() == METRIC_KEYS
    assert table.loc["model"].to_dict() == pytest.approx(classification_metrics(P6, Y6))
    assert table.loc["baseline"].to_dict() == pytest.approx(classification_metrics(reversed_p, Y6))
    # Reversing the ranking turns AUC 7.5/8 into 1 − 7.5/8.
    assert table.loc["baseline", "auc"] == pytest.approx(0.5 / 8)
    assert table["n"].tolist() == [6, 6]


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probability", "outcome", "message"),
    [
        ([0.1, 0.2, 0.3], [0, 1], r"probability and outcome differ in length: 3 vs 2"),
        ([0.1, 0.2], [0, 2], r"outcome must be 0 or 1, got 1 other value\(s\), e\.g\. 2"),
        ([0.1, 0.2], [0, np.nan], r"outcome contains 1 NaN"),
        ([0.1, np.nan], [0, 1], r"probability contains 1 NaN"),
        ([0.1, np.inf], [0, 1], r"probability must be finite"),
        ([0.1, 1.2], [0, 1], r"probability must lie in \[0, 1\], got values from 0\.1 to 1\.2"),
        ([-0.1, 0.5], [0, 1], r"probability must lie in \[0, 1\]"),
        ([], [], r"outcome is empty"),
        ([[0.9, 0.1], [0.2, 0.8]], [0, 1], r"probability must be one-dimensional, got shape \(2, 2\)"),
    ],
)
def test_bad_probabilities_are_clear_errors(probability: list, outcome: list, message: str) -> None:
    for function in (classification_metrics, expected_calibration_error, reliability_curve):
        with pytest.raises(ValueError, match=message):
            function(np.asarray(probability, dtype=float), np.asarray(outcome, dtype=float))


def test_bad_scores_are_clear_errors() -> None:
    for function in (lift_table, top_share_lift, top_share_positive_capture):
        with pytest.raises(ValueError, match=r"score contains 1 NaN"):
            function(np.array([1.0, np.nan]), np.array([0, 1]))
        with pytest.raises(ValueError, match=r"score must be finite"):
            function(np.array([1.0, -np.inf]), np.array([0, 1]))
        with pytest.raises(ValueError, match=r"score and outcome differ in length: 1 vs 2"):
            function(np.array([1.0]), np.array([0, 1]))


def test_bad_parameters_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"n_bins must be a whole number ≥ 1, got 0"):
        reliability_curve(P6, Y6, n_bins=0)
    with pytest.raises(ValueError, match=r"n_groups must be a whole number ≥ 1 and at most 10, got 11"):
        lift_table(S10, Y10, n_groups=11)
    for share in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"share must be in \(0, 1\]"):
            top_share_lift(S10, Y10, share=share)
    with pytest.raises(ValueError, match=r"scores is empty"):
        compare_scores({}, Y6)
    with pytest.raises(ValueError, match=r"score 'bad': probability must lie in \[0, 1\]"):
        compare_scores({"good": P6, "bad": P6 + 1}, Y6)


def test_errors_are_also_clv_input_errors() -> None:
    # The CLI prints ClvInputError as one line instead of a traceback.
    with pytest.raises(ClvInputError):
        classification_metrics(np.array([0.5]), np.array([3]))
