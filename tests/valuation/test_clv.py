"""CLV: lifetimes parity (with its conventions), units, discounting and margin by hand."""

from __future__ import annotations

import datetime as dt
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from clv_models.errors import ClvInputError
from clv_models.features import rfm_summary
from clv_models.models import BetaGeoModel, GammaGammaModel
from clv_models.timeunits import parse_horizon
from clv_models.valuation import customer_lifetime_value, monthly_steps


@pytest.fixture(scope="module")
def weekly() -> tuple[pd.DataFrame, BetaGeoModel, GammaGammaModel]:
    path = resources.files("lifetimes.datasets").joinpath("cdnow_customers_summary_with_transactions.csv")
    rfm = pd.read_csv(str(path)).rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})
    rfm.attrs["unit"] = "W"
    return rfm, BetaGeoModel().fit(rfm), GammaGammaModel().fit(rfm)


@pytest.fixture(scope="module")
def cdnow_orders(cdnow_orders_frame: pd.DataFrame) -> pd.DataFrame:
    return cdnow_orders_frame


def test_same_as_lifetimes_with_its_conventions(weekly) -> None:
    """lifetimes: months of 4.345 weeks (freq="W") or 30 days (freq="D"), a monthly discount rate."""
    rfm, bg, gg = weekly
    reference = gg.to_lifetimes().customer_lifetime_value(
        bg.to_lifetimes(), rfm["frequency"], rfm["recency"], rfm["T"], rfm["monetary_value"],
        time=12, discount_rate=0.01, freq="W",
    )
    ours = customer_lifetime_value(
        bg, gg, rfm, horizon="12M", annual_discount_rate=1.01**12 - 1, days_per_month=4.345 * 7
    )
    np.testing.assert_allclose(ours, reference, rtol=1e-6)


def test_same_as_lifetimes_daily(cdnow_orders: pd.DataFrame) -> None:
    rfm = rfm_summary(cdnow_orders, as_of=dt.date(1997, 12, 31), unit="D")
    bg, gg = BetaGeoModel().fit(rfm), GammaGammaModel().fit(rfm)
    reference = gg.to_lifetimes().customer_lifetime_value(
        bg.to_lifetimes(), rfm["frequency"], rfm["recency"], rfm["T"], rfm["monetary_value"],
        time=6, discount_rate=0.02, freq="D",
    )
    ours = customer_lifetime_value(bg, gg, rfm, horizon="6M", annual_discount_rate=1.02**12 - 1, days_per_month=30)
    np.testing.assert_allclose(ours, reference, rtol=1e-6)


def test_daily_and_weekly_models_of_the_same_data_agree(cdnow_orders: pd.DataFrame) -> None:
    """Same orders, same 12 months: the unit changes the binning of purchases, not the money.
    (lifetimes would count 12 "months" of 30 periods = 360 weeks for a weekly model.)"""
    values = {}
    for unit in ("D", "W"):
        rfm = rfm_summary(cdnow_orders, as_of=dt.date(1997, 12, 31), unit=unit)
        values[unit] = customer_lifetime_value(BetaGeoModel().fit(rfm), GammaGammaModel().fit(rfm), rfm, horizon="12M")
    assert values["D"].sum() == pytest.approx(values["W"].sum(), rel=0.05)
    assert spearmanr(values["D"], values["W"]).statistic > 0.95


def test_no_discount_is_margin_times_spend_times_purchases(weekly) -> None:
    rfm, bg, gg = weekly
    clv = customer_lifetime_value(bg, gg, rfm, horizon="12M", annual_discount_rate=0.0, margin=0.3)
    expected = 0.3 * gg.expected_order_value(rfm) * bg.expected_purchases(rfm, horizon="12M")
    np.testing.assert_allclose(clv, expected, rtol=1e-12)


def test_discounting_by_hand(weekly) -> None:
    rfm, bg, gg = weekly
    one = rfm.iloc[[0]]
    months = np.arange(1, 4)
    cumulative = np.array([bg.expected_purchases(one, horizon=f"{m}M")[0] for m in months])
    per_month = np.diff(cumulative, prepend=0.0)
    expected = gg.expected_order_value(one)[0] * np.sum(per_month / 1.1 ** (months / 12))
    assert customer_lifetime_value(bg, gg, one, horizon="3M", annual_discount_rate=0.1)[0] == pytest.approx(expected)


def test_monthly_steps() -> None:
    np.testing.assert_allclose(monthly_steps(parse_horizon("3M"), "D"), [30.4375, 60.875, 91.3125])
    np.testing.assert_allclose(monthly_steps(parse_horizon("45D"), "D"), [30.4375, 45.0])  # last step cut
    np.testing.assert_allclose(monthly_steps(parse_horizon("2W"), "W"), [2.0])


def test_bad_settings(weekly) -> None:
    rfm, bg, gg = weekly
    with pytest.raises(ClvInputError, match="margin"):
        customer_lifetime_value(bg, gg, rfm, margin=1.5)
    with pytest.raises(ClvInputError, match="discount"):
        customer_lifetime_value(bg, gg, rfm, annual_discount_rate=-0.1)
    daily_spend = GammaGammaModel.from_dict({**gg.to_dict(), "unit": "D"})
    with pytest.raises(ClvInputError, match="unit"):
        customer_lifetime_value(bg, daily_spend, rfm)


def test_valuation_settings_drive_clv(weekly) -> None:
    from clv_models.config import load_settings

    rfm, bg, gg = weekly
    settings = load_settings(None, ["valuation.horizon=6M", "valuation.margin=0.25",
                                    "valuation.annual_discount_rate=0.05"]).valuation
    np.testing.assert_array_equal(
        customer_lifetime_value(bg, gg, rfm, **settings.model_dump()),
        customer_lifetime_value(bg, gg, rfm, horizon="6M", annual_discount_rate=0.05, margin=0.25),
    )
