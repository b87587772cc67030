"""ValueRegressor: the two-part LightGBM value model (P(buy) x E[revenue | buy]), tuned and
calibrated; its BTYD window features; the ranker the scorer stores for the tiers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv_models.errors import ClvInputError
from clv_models.evaluation.metrics import normalized_gini
from clv_models.models.value import VALUE_BTYD_FEATURES, ValueRanker, ValueRegressor, btyd_value_features

FAST = {"n_trials": 2, "n_folds": 2, "max_rounds": 150, "early_stopping_rounds": 20}


def shop_rows(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers with a known value: purchase probability from a latent rate, spend from a latent
    level; the features see both through noise, and ``total_spend`` only the spend part."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(2.0, 0.5, n)
    level = rng.normal(3.5, 0.6, n)
    recent_orders = rng.poisson(rate * 2)
    frame = pd.DataFrame(
        {
            "orders_90d": recent_orders.astype(float),
            "days_since_last": rng.exponential(60 / (rate + 0.1)),
            "avg_order_value": np.exp(level + rng.normal(0, 0.3, n)),
            "total_spend": np.exp(level) * (1 + rng.poisson(3, n)),
            "country": rng.choice(["DE", "FR", "GB", None], n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
    p_buy = 1 - np.exp(-rate)
    buys = rng.random(n) < p_buy
    revenue = np.where(buys, np.exp(level + rng.normal(0, 0.5, n)) * (1 + rng.poisson(rate)), 0.0)
    return frame, np.round(revenue, 2)


@pytest.fixture(scope="module")
def fitted() -> dict:
    X, y = shop_rows(3000, 1)
    X_cal, y_cal = shop_rows(1500, 2)
    X_test, y_test = shop_rows(3000, 3)
    groups = np.arange(len(X)) // 2  # two rows per "customer": folds keep them together
    model = ValueRegressor(window_days=90, categorical_features=("country",), boost_from=None, **FAST)
    model.fit(X, y, groups=groups, X_calibration=X_cal, y_calibration=y_cal)
    return {"model": model, "X_cal": X_cal, "y_cal": y_cal, "X_test": X_test, "y_test": y_test}


def test_fitted_attributes_and_parts(fitted: dict) -> None:
    model = fitted["model"]
    assert model.feature_names_ == ["orders_90d", "days_since_last", "avg_order_value", "total_spend", "country"]
    assert model.window_days == 90 and tuple(model.categorical_features) == ("country",)
    assert model.method == "two_part"  # the default
    assert set(model.boosters_) == {"buy", "spend"} and set(model.trials_["part"]) == {"buy", "spend"}
    parts = model.predict_parts(fitted["X_test"])
    assert ((parts["p_buy"] > 0) & (parts["p_buy"] < 1)).all() and (parts["spend_if_buy"] > 0).all()
    np.testing.assert_allclose(parts["raw_value"], parts["p_buy"] * parts["spend_if_buy"], rtol=1e-12)
    np.testing.assert_allclose(model.predict(fitted["X_test"]), parts["raw_value"] * model.calibration_factor_)
    assert model.smearing_ > 1.0  # lognormal noise: E[exp(residual)] > 1


def test_calibration_matches_the_calibration_total_and_holds_out_of_sample(fitted: dict) -> None:
    model = fitted["model"]
    assert model.predict(fitted["X_cal"]).sum() == pytest.approx(fitted["y_cal"].sum(), rel=1e-9)
    # A fresh sample from the same process: the total within 10 %.
    assert model.predict(fitted["X_test"]).sum() == pytest.approx(fitted["y_test"].sum(), rel=0.10)


def test_the_model_ranks_better_than_past_spend(fitted: dict) -> None:
    model, X, y = fitted["model"], fitted["X_test"], fitted["y_test"]
    learned = normalized_gini(model.predict(X), y)
    spend = normalized_gini(X["total_spend"].to_numpy(), y)
    assert learned > spend + 0.15, (learned, spend)


def test_a_row_has_the_same_value_alone_and_in_any_batch(fitted: dict) -> None:
    model, X = fitted["model"], fitted["X_test"].iloc[:400]
    batch = model.predict(X)
    shuffled = X.sample(frac=1.0, random_state=0)
    np.testing.assert_array_equal(model.predict(shuffled), pd.Series(batch, index=X.index).loc[shuffled.index])
    for i in (0, 7, 123, 399):
        assert model.predict(X.iloc[[i]])[0] == batch[i]
    # An unseen category is "other", a missing one stays missing: each still a function of its row.
    odd = X.iloc[[0, 1]].copy()
    odd["country"] = ["XX", None]
    assert np.isfinite(model.predict(odd)).all()
    assert model.predict(odd.iloc[[1]])[0] == model.predict(odd)[1]
    # The scorer pickles it: the same values after a round trip.
    import pickle

    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(X), batch)


def test_fitting_is_deterministic(fitted: dict) -> None:
    X, y = shop_rows(800, 5)
    X_cal, y_cal = shop_rows(400, 6)
    for method in ("tweedie", "two_part"):
        first, again = (
            ValueRegressor(method=method, boost_from=None, **FAST).fit(X, y, X_calibration=X_cal, y_calibration=y_cal)
            for _ in range(2)
        )
        np.testing.assert_array_equal(first.predict(X_cal), again.predict(X_cal))


def test_the_tweedie_method_fits_one_booster_and_ranks_as_well() -> None:
    X, y = shop_rows(3000, 1)
    X_cal, y_cal = shop_rows(1500, 2)
    X_test, y_test = shop_rows(3000, 3)
    model = ValueRegressor(categorical_features=("country",), method="tweedie", boost_from=None, **FAST)
    model.fit(X, y, groups=np.arange(len(X)) // 2, X_calibration=X_cal, y_calibration=y_cal)
    assert set(model.boosters_) == {"value"}
    assert 1.1 <= model.best_params_["value"]["tweedie_variance_power"] <= 1.9
    parts = model.predict_parts(X_cal)
    assert parts["p_buy"].isna().all() and (parts["value"] > 0).all()
    assert parts["value"].sum() == pytest.approx(y_cal.sum(), rel=1e-9)
    learned = normalized_gini(model.predict(X_test), y_test)
    assert learned > normalized_gini(X_test["total_spend"].to_numpy(), y_test) + 0.15
    assert model.predict(X_test).sum() == pytest.approx(y_test.sum(), rel=0.10)
    batch = model.predict(X_test.iloc[:50])
    assert all(model.predict(X_test.iloc[[i]])[0] == batch[i] for i in (0, 9, 49))


def test_bad_input_is_one_clear_error() -> None:
    X, y = shop_rows(300, 9)
    model = ValueRegressor(boost_from=None, **FAST)
    with pytest.raises(ClvInputError, match="≥ 0"):
        model.fit(X, -y - 1, X_calibration=X, y_calibration=y)
    with pytest.raises(ClvInputError, match="revenue labels"):
        model.fit(X, y[:-1], X_calibration=X, y_calibration=y)
    with pytest.raises(ClvInputError, match="at least"):
        model.fit(X, np.zeros(len(X)), X_calibration=X, y_calibration=y)
    with pytest.raises(ClvInputError, match="btyd_value_features"):
        ValueRegressor(boost_from="btyd", **FAST).fit(X, y, X_calibration=X, y_calibration=y)
    fitted = model.fit(X, y, X_calibration=X, y_calibration=y)
    with pytest.raises(ClvInputError, match="lack column"):
        fitted.predict(X.drop(columns="total_spend"))


def daily_rfm(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    T = rng.integers(30, 700, n).astype(float)
    frequency = rng.poisson(T / 120).astype(float)
    recency = np.where(frequency > 0, np.floor(T * rng.random(n)), 0.0)
    monetary = np.where(frequency > 0, rng.lognormal(3.5, 0.5, n), 0.0)
    return pd.DataFrame(
        {"frequency_days": frequency, "recency_days": recency, "T_days": T, "monetary_value_days": monetary,
         "avg_order_value": rng.lognormal(3.5, 0.5, n)}
    )  # fmt: skip


def test_btyd_value_features_are_the_fitted_models_over_the_value_window() -> None:
    from clv_models.models.btyd_features import BtydChurnFeatures, _as_rfm

    daily = daily_rfm(3000, 11)
    btyd = BtydChurnFeatures(window_days=60).fit(daily)
    out = btyd_value_features(daily, btyd, window_days=200)
    assert list(out.columns) == list(VALUE_BTYD_FEATURES)
    rfm = _as_rfm(daily)
    expected = btyd.bgnbd_.expected_purchases(rfm, horizon="200D")
    np.testing.assert_allclose(out["bgnbd_expected_purchases_v"], expected)
    np.testing.assert_allclose(out["bgnbd_p_no_purchase_v"], btyd.bgnbd_.probability_no_purchase(rfm, horizon="200D"))
    np.testing.assert_allclose(out["btyd_value_v"], expected * btyd.gamma_gamma_.expected_order_value(rfm))
    # Over the churn window the same fit gives the churn feature.
    short = btyd_value_features(daily, btyd, window_days=60)
    np.testing.assert_allclose(short["bgnbd_expected_purchases_v"], btyd.transform(daily)["bgnbd_expected_purchases_w"])
    # Row-wise.
    np.testing.assert_array_equal(btyd_value_features(daily.iloc[[5]], btyd, window_days=200).to_numpy()[0],
                                  out.to_numpy()[5])  # fmt: skip


def test_the_ranker_computes_the_chosen_value_row_by_row() -> None:
    from clv_models.models.btyd_features import BtydChurnFeatures

    daily = daily_rfm(1000, 12)
    daily["total_spend"] = daily["avg_order_value"] * (1 + daily["frequency_days"])
    btyd = BtydChurnFeatures(window_days=60).fit(daily)
    past = ValueRanker("past_spend_total", window_days=120, column="total_spend", scale=0.25)
    np.testing.assert_allclose(past.value(daily), 0.25 * daily["total_spend"].to_numpy())
    assert past.input_columns() == ["total_spend"]
    clv = ValueRanker("btyd_clv", window_days=120)
    values = clv.value(daily, btyd)
    np.testing.assert_allclose(values, btyd_value_features(daily, btyd, window_days=120)["btyd_value_v"])
    assert clv.value(daily.iloc[[3]], btyd)[0] == values[3]
    with pytest.raises(ClvInputError, match="BTYD"):
        clv.value(daily)
