"""Holdout evaluation: metrics computed by hand on tiny tables, and CDNOW against lifetimes."""

from __future__ import annotations

import datetime as dt
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from clv_models.errors import ClvInputError
from clv_models.evaluation import (
    METRIC_NAMES,
    HoldoutReport,
    IndependenceWarning,
    aggregate_error,
    decile_mape,
    decile_table,
    evaluate_holdout,
    frequency_monetary_correlation,
    frequency_table,
    gini,
    holdout_revenue,
    mean_absolute_error,
    normalized_gini,
    root_mean_squared_error,
    spearman,
    top_share_capture,
)
from clv_models.features import calibration_holdout
from clv_models.models import BetaGeoModel, GammaGammaModel

# Published CDNOW parameters (DESIGN.md §7), weekly.
BGNBD = BetaGeoModel.from_dict(
    {"model": "BetaGeoModel", "penalizer": 0.0, "unit": "W",
     "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}}
)
GAMMA_GAMMA = GammaGammaModel.from_dict(
    {"model": "GammaGammaModel", "penalizer": 0.0, "unit": "W", "params": {"p": 6.25, "q": 3.74, "gamma": 15.44}}
)

# --- metrics by hand ------------------------------------------------------------------------


def test_purchase_errors_by_hand() -> None:
    predicted = [0.5, 1.0, 2.0, 0.0, 3.0]
    actual = [1, 1, 0, 0, 4]
    # errors −0.5, 0, 2, 0, −1
    assert mean_absolute_error(predicted, actual) == pytest.approx(3.5 / 5)
    assert root_mean_squared_error(predicted, actual) == pytest.approx(math.sqrt((0.25 + 4 + 1) / 5))
    assert aggregate_error(predicted, actual) == pytest.approx((6.5 - 6) / 6)
    assert math.isnan(aggregate_error([1.0], [0.0]))


def test_ranking_metrics_by_hand() -> None:
    revenue = np.array([10.0, 0.0, 30.0, 20.0, 40.0])
    clv = np.array([5.0, 1.0, 4.0, 3.0, 2.0])
    # By CLV: 10, 30, 20, 40, 0 → cumulative shares .1 .4 .6 1 1 (sum 3.1).
    # Perfect order 40, 30, 20, 10, 0 → .4 .7 .9 1 1 (sum 4.0).
    # Kaggle normalized Gini: (Σy/n − (n+1)/2n) / same for perfect = (0.62 − 0.6) / (0.8 − 0.6).
    assert normalized_gini(clv, revenue) == pytest.approx(0.1)
    assert gini(clv, revenue) == pytest.approx(2 * 0.02)  # trapezoidal area: twice Kaggle's
    # Top 10 % of 5 customers = half of the best-ranked one, who holds 10 of 100.
    assert top_share_capture(clv, revenue) == pytest.approx(0.05)
    assert top_share_capture(clv, revenue, share=0.4) == pytest.approx(0.40)
    # ranks of clv 5 1 4 3 2 and of revenue 2 1 4 3 5: d = 3 0 0 0 −3, ρ = 1 − 6·18 / (5·24)
    assert spearman(clv, revenue) == pytest.approx(1 - 6 * 18 / 120)


def test_top_decile_and_decile_mape_on_ten_customers() -> None:
    revenue = np.array([50.0, 0.0, 10.0, 5.0, 5.0, 10.0, 0.0, 20.0, 0.0, 0.0])
    clv = np.array([40.0, 1.0, 12.0, 4.0, 6.0, 8.0, 2.0, 25.0, 3.0, 0.5])
    assert top_share_capture(clv, revenue) == pytest.approx(50 / 100)
    table = decile_table(clv, revenue)
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["customers"].tolist() == [1] * 10
    assert table["mean_predicted"].tolist() == sorted(clv, reverse=True)
    # Deciles with revenue: 40 vs 50, 25 vs 20, 12 vs 10, 8 vs 10, 6 vs 5, 4 vs 5; the rest are 0.
    errors = [10 / 50, 5 / 20, 2 / 10, 2 / 10, 1 / 5, 1 / 5]
    assert decile_mape(table) == pytest.approx(sum(errors) / 6)
    assert table["actual_share"].sum() == pytest.approx(1.0)


def test_gini_of_perfect_and_reversed_rankings() -> None:
    revenue = np.array([3.0, 0.0, 7.0, 1.0, 12.0, 0.0, 5.0])
    assert normalized_gini(revenue, revenue) == pytest.approx(1.0)
    assert normalized_gini(2 * revenue + 1, revenue) == pytest.approx(1.0)  # only the order counts
    assert normalized_gini(-revenue, revenue) == pytest.approx(-1.0)
    assert top_share_capture(revenue, revenue, share=1.0) == pytest.approx(1.0)


def test_ties_do_not_depend_on_row_order() -> None:
    # Two customers tie at the top; one of them holds all the revenue. Whatever their row order,
    # the top one of two counts as half of the revenue.
    clv, revenue = np.array([1.0, 1.0, 0.0]), np.array([0.0, 10.0, 0.0])
    swapped = [1, 0, 2]
    assert normalized_gini(clv, revenue) == pytest.approx(normalized_gini(clv[swapped], revenue[swapped]))
    assert top_share_capture(clv, revenue, share=1 / 3) == pytest.approx(0.5)


def test_metric_input_errors() -> None:
    with pytest.raises(ClvInputError, match="differ in length"):
        mean_absolute_error([1.0, 2.0], [1.0])
    with pytest.raises(ClvInputError, match="finite"):
        spearman([np.nan, 1.0], [1.0, 2.0])
    with pytest.raises(ClvInputError, match="positive"):
        normalized_gini([1.0, 2.0], [0.0, 0.0])


# --- Gamma-Gamma independence ---------------------------------------------------------------


def spend_table(frequency: np.ndarray, monetary: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"frequency": frequency, "monetary_value": monetary})


def test_independence_warning_fires_on_correlated_spend() -> None:
    rng = np.random.default_rng(7)
    frequency = rng.integers(1, 20, size=500).astype(float)
    monetary = 10 + 3 * frequency + rng.normal(0, 5, size=500)
    with pytest.warns(IndependenceWarning, match="Pearson r"):
        corr = frequency_monetary_correlation(spend_table(frequency, np.abs(monetary)))
    assert corr == pytest.approx(np.corrcoef(frequency, np.abs(monetary))[0, 1])
    assert corr > 0.3


def test_independence_check_is_quiet_on_independent_spend() -> None:
    rng = np.random.default_rng(8)
    frequency = np.r_[np.zeros(300), rng.integers(1, 20, size=500)].astype(float)
    monetary = np.r_[np.zeros(300), rng.gamma(4.0, 10.0, size=500)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndependenceWarning)
        corr = frequency_monetary_correlation(spend_table(frequency, monetary))
    # One-time buyers (frequency 0) are not part of the check.
    assert corr == pytest.approx(np.corrcoef(frequency[300:], monetary[300:])[0, 1])
    assert abs(corr) < 0.3


# --- holdout revenue from orders ------------------------------------------------------------


def orders(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "order_ts": pd.to_datetime([r[1] for r in rows]),
            "amount": [float(r[2]) for r in rows],
        }
    )


BOUNDARY = orders(
    ("B", "2024-01-02 10:00", 20),
    ("B", "2024-01-10 23:59", 5),  # last minute of the calibration day: not holdout
    ("B", "2024-01-11 00:00", 7),  # first instant of the holdout
    ("B", "2024-01-20 12:00", -2),  # a return in the holdout counts negatively
    ("A", "2024-01-01 09:00", 10),
    ("A", "2024-01-31 23:59", 3),  # last minute of the holdout end day
    ("A", "2024-02-01 00:00", 99),  # after the holdout
    ("C", "2024-01-05 09:00", 4),  # no holdout orders
    ("D", "2024-01-15 09:00", 8),  # first order in the holdout: not in the calibration table
)


def test_holdout_revenue_by_hand() -> None:
    split = calibration_holdout(
        BOUNDARY, calibration_end=dt.date(2024, 1, 10), holdout_end=dt.date(2024, 1, 31), unit="D"
    )
    revenue = holdout_revenue(BOUNDARY, split)  # dates taken from split.attrs
    assert revenue.index.tolist() == ["A", "B", "C"] == split["customer_id"].tolist()
    assert revenue.tolist() == [3.0, 5.0, 0.0]
    assert revenue.dtype == "float64"
    reordered = split.iloc[[2, 0, 1]]
    explicit = holdout_revenue(
        BOUNDARY, reordered, calibration_end=dt.date(2024, 1, 10), holdout_end=dt.date(2024, 1, 31)
    )
    assert explicit.to_dict() == {"C": 0.0, "A": 3.0, "B": 5.0}
    assert explicit.index.tolist() == ["C", "A", "B"]


# --- evaluate_holdout on a small table -----------------------------------------------------


def small_split() -> pd.DataFrame:
    split = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e", "f"],
            "frequency": [0.0, 1.0, 2.0, 5.0, 9.0, 3.0],
            "recency": [0.0, 10.0, 30.0, 35.0, 38.0, 8.0],
            "T": [20.0, 30.0, 39.0, 39.0, 39.0, 39.0],
            "monetary_value": [0.0, 25.0, 40.0, 18.0, 60.0, 30.0],
            "frequency_holdout": [0.0, 1.0, 2.0, 3.0, 8.0, 0.0],
            "monetary_value_holdout": [0.0, 20.0, 35.0, 15.0, 50.0, 0.0],
            "duration_holdout": 39.0,
        }
    )
    split.attrs["unit"] = "W"
    return split


def test_evaluate_holdout_matches_lifetimes_predictions() -> None:
    split = small_split()
    revenue = np.array([0.0, 22.0, 80.0, 40.0, 400.0, 0.0])
    with pytest.warns(IndependenceWarning):  # five repeat buyers: spend and frequency correlate
        report = evaluate_holdout(BGNBD, GAMMA_GAMMA, split, actual_revenue=revenue)
    bg, gg = BGNBD.to_lifetimes(), GAMMA_GAMMA.to_lifetimes()
    purchases = bg.conditional_expected_number_of_purchases_up_to_time(
        39.0, split["frequency"], split["recency"], split["T"]
    ).to_numpy()
    spend = gg.conditional_expected_average_profit(split["frequency"], split["monetary_value"]).to_numpy()
    actual = split["frequency_holdout"].to_numpy()
    assert report.holdout_purchases_mae == pytest.approx(np.mean(np.abs(purchases - actual)), rel=1e-9)
    assert report.holdout_purchases_rmse == pytest.approx(np.sqrt(np.mean((purchases - actual) ** 2)), rel=1e-9)
    assert report.holdout_purchases_aggregate_error == pytest.approx(purchases.sum() / actual.sum() - 1, rel=1e-9)
    # Undiscounted CLV over the 39-week holdout = expected purchases × expected spend.
    clv = purchases * spend
    assert report.clv_horizon == "39W"
    assert report.holdout_clv_spearman == pytest.approx(spearmanr(clv, revenue).statistic, rel=1e-12)
    assert report.decile_table["mean_predicted"].sum() == pytest.approx(clv.sum(), rel=1e-9)
    assert report.holdout_clv_gini == pytest.approx(normalized_gini(clv, revenue), rel=1e-9)
    repeat = split["frequency"] > 0
    assert report.gamma_gamma_frequency_monetary_corr == pytest.approx(
        np.corrcoef(split.loc[repeat, "frequency"], split.loc[repeat, "monetary_value"])[0, 1]
    )
    assert list(report.metrics()) == list(METRIC_NAMES)
    assert all(isinstance(v, float) for v in report.metrics().values())


def test_evaluate_holdout_aligns_a_revenue_series_by_customer_id() -> None:
    split = small_split()
    revenue = pd.Series([400.0, 0.0, 22.0, 80.0, 40.0, 0.0], index=["e", "a", "b", "c", "d", "f"])
    with pytest.warns(IndependenceWarning):
        by_id = evaluate_holdout(BGNBD, GAMMA_GAMMA, split, actual_revenue=revenue)
        by_position = evaluate_holdout(
            BGNBD, GAMMA_GAMMA, split, actual_revenue=revenue.reindex(split["customer_id"]).to_numpy()
        )
    assert by_id.metrics() == by_position.metrics()
    with pytest.raises(ClvInputError, match="lacks 1 customer id"):
        evaluate_holdout(BGNBD, GAMMA_GAMMA, split, actual_revenue=revenue.drop("f"))
    with pytest.raises(ClvInputError, match="5 values for 6 customers"):
        evaluate_holdout(BGNBD, GAMMA_GAMMA, split, actual_revenue=np.ones(5))


def test_without_revenue_the_clv_metrics_are_nan() -> None:
    with pytest.warns(IndependenceWarning):
        report = evaluate_holdout(BGNBD, GAMMA_GAMMA, small_split())
    metrics = report.metrics()
    assert all(math.isnan(metrics[name]) for name in METRIC_NAMES if name.startswith("holdout_clv_"))
    assert report.decile_table.empty
    assert math.isfinite(metrics["holdout_purchases_mae"])


def test_split_without_holdout_columns_is_a_clear_error() -> None:
    with pytest.raises(ClvInputError, match="lacks column.*frequency_holdout"):
        evaluate_holdout(BGNBD, GAMMA_GAMMA, small_split().drop(columns="frequency_holdout"))


# --- CDNOW ----------------------------------------------------------------------------------

CALIBRATION_END, HOLDOUT_END = dt.date(1997, 9, 30), dt.date(1998, 6, 30)
Models = tuple[BetaGeoModel, GammaGammaModel]


@pytest.fixture(scope="module")
def cdnow_orders(cdnow_orders_frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical orders; the $0 rows of the master file are not purchases (conftest)."""
    return cdnow_orders_frame


@pytest.fixture(scope="module")
def cdnow_split(cdnow_orders: pd.DataFrame) -> pd.DataFrame:
    return calibration_holdout(cdnow_orders, calibration_end=CALIBRATION_END, holdout_end=HOLDOUT_END, unit="W")


@pytest.fixture(scope="module")
def cdnow_models(cdnow_split: pd.DataFrame) -> Models:
    return BetaGeoModel().fit(cdnow_split), GammaGammaModel().fit(cdnow_split)


@pytest.fixture(scope="module")
def cdnow_report(
    cdnow_orders: pd.DataFrame, cdnow_split: pd.DataFrame, cdnow_models: Models
) -> tuple[HoldoutReport, pd.Series]:
    bgnbd, gamma_gamma = cdnow_models
    revenue = holdout_revenue(cdnow_orders, cdnow_split)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndependenceWarning)  # CDNOW passes the check (FHL: r = 0.11)
        return evaluate_holdout(bgnbd, gamma_gamma, cdnow_split, actual_revenue=revenue), revenue


def test_cdnow_frequency_table_matches_lifetimes(
    cdnow_split: pd.DataFrame, cdnow_models: Models, cdnow_report: tuple[HoldoutReport, pd.Series]
) -> None:
    bgnbd, _ = cdnow_models
    report, _ = cdnow_report
    assert cdnow_split["duration_holdout"].iloc[0] == 39.0
    predicted = bgnbd.to_lifetimes().conditional_expected_number_of_purchases_up_to_time(
        39.0, cdnow_split["frequency"], cdnow_split["recency"], cdnow_split["T"]
    ).to_numpy()
    bins = cdnow_split["frequency"].clip(upper=7).astype(int).to_numpy()
    reference = (
        pd.DataFrame({"bin": bins, "actual": cdnow_split["frequency_holdout"].to_numpy(), "predicted": predicted})
        .groupby("bin")
        .agg(customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean"))
    )
    table = report.frequency_table
    assert table["calibration_frequency"].tolist() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert table["customers"].tolist() == reference["customers"].tolist()
    assert table["customers"].sum() == len(cdnow_split) == 23_500
    np.testing.assert_allclose(table["mean_actual"], reference["actual"], rtol=1e-12)
    np.testing.assert_allclose(table["mean_predicted"], reference["predicted"], rtol=1e-9)
    assert frequency_table(bgnbd, cdnow_split, max_frequency=3)["calibration_frequency"].tolist() == [
        "0", "1", "2", "3+"
    ]
    # Errors from the lifetimes predictions, computed independently.
    actual = cdnow_split["frequency_holdout"].to_numpy()
    assert report.holdout_purchases_mae == pytest.approx(np.mean(np.abs(predicted - actual)), rel=1e-9)
    assert report.holdout_purchases_rmse == pytest.approx(np.sqrt(np.mean((predicted - actual) ** 2)), rel=1e-9)
    assert abs(report.holdout_purchases_aggregate_error) < 0.15


def test_cdnow_clv_ranking(
    cdnow_orders: pd.DataFrame,
    cdnow_split: pd.DataFrame,
    cdnow_models: Models,
    cdnow_report: tuple[HoldoutReport, pd.Series],
) -> None:
    bgnbd, gamma_gamma = cdnow_models
    report, revenue = cdnow_report
    # Holdout revenue derived independently with pandas.
    window = cdnow_orders[
        (cdnow_orders["order_ts"] > pd.Timestamp(CALIBRATION_END))
        & (cdnow_orders["order_ts"] <= pd.Timestamp(HOLDOUT_END))
    ]
    expected_revenue = window.groupby("customer_id")["amount"].sum().reindex(cdnow_split["customer_id"]).fillna(0.0)
    np.testing.assert_allclose(revenue.to_numpy(), expected_revenue.to_numpy(), rtol=1e-12)
    # Undiscounted CLV over the 39-week holdout, from lifetimes' predictions.
    clv = bgnbd.to_lifetimes().conditional_expected_number_of_purchases_up_to_time(
        39.0, cdnow_split["frequency"], cdnow_split["recency"], cdnow_split["T"]
    ).to_numpy() * gamma_gamma.to_lifetimes().conditional_expected_average_profit(
        cdnow_split["frequency"], cdnow_split["monetary_value"]
    ).to_numpy()
    assert report.holdout_clv_spearman == pytest.approx(spearmanr(clv, revenue).statistic, rel=1e-9)
    assert report.holdout_clv_gini == pytest.approx(normalized_gini(clv, revenue.to_numpy()), rel=1e-9)
    assert 0.5 < report.holdout_clv_gini < 1
    assert 0.3 < report.holdout_clv_top_decile_capture < 1
    assert report.decile_table["customers"].sum() == len(cdnow_split)
    assert 0.05 < report.gamma_gamma_frequency_monetary_corr < 0.2
    assert all(math.isfinite(v) for v in report.metrics().values())
