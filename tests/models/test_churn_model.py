"""ChurnClassifier on data simulated from a known churn process: determinism, calibration,
contributions, categorical encoding, persistence and input errors."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from clv_models.errors import ClvInputError
from clv_models.evaluation.churn_metrics import expected_calibration_error
from clv_models.models.churn import ChurnClassifier

COUNTRIES = ("UK", "France", "Germany")


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows, 0/1 churn labels and the true churn probability of each row.

    True log-odds: −1.5 + 0.03·days_since_last − 0.6·orders_90d + 0.8·[country = France]; a
    noisy BTYD-like prior column carries part of that signal, as in real snapshots.
    """
    rng = np.random.default_rng(seed)
    days = rng.exponential(40.0, n)
    orders = rng.poisson(1.5, n).astype(float)
    country = rng.choice(COUNTRIES, n, p=[0.6, 0.25, 0.15])
    noise = rng.normal(0, 1, n)
    true_logit = -1.5 + 0.03 * days - 0.6 * orders + 0.8 * (country == "France")
    probability = expit(true_logit)
    labels = (rng.random(n) < probability).astype(np.int8)
    frame = pd.DataFrame(
        {
            "days_since_last": days,
            "orders_90d": orders,
            "noise": noise,
            "country": pd.array(country, dtype="string"),
            "bgnbd_p_no_purchase_w": expit(0.5 * true_logit + rng.normal(0, 0.5, n)),
        }
    )
    return frame, labels, probability


@pytest.fixture(scope="module")
def simulated() -> dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]]:
    return {"train": simulate(3000, 1), "calibration": simulate(3000, 2), "test": simulate(6000, 3)}


def fit(simulated: dict, **settings: object) -> ChurnClassifier:
    X, y, _ = simulated["train"]
    X_cal, y_cal, _ = simulated["calibration"]
    options = {"categorical_features": ("country",), "n_trials": 4, "n_folds": 3, "seed": 7, "max_rounds": 300}
    options.update(settings)
    return ChurnClassifier(**options).fit(X, y, X_calibration=X_cal, y_calibration=y_cal)


@pytest.fixture(scope="module")
def balanced_model(simulated: dict) -> ChurnClassifier:
    # Balanced weights pair with AUC tuning (weighted scores are not probabilities before calibration).
    return fit(simulated, class_balance="balanced", tuning_metric="auc", calibration="isotonic")


def test_same_seed_gives_identical_probabilities(simulated: dict, balanced_model: ChurnClassifier) -> None:
    again = fit(simulated, class_balance="balanced", tuning_metric="auc", calibration="isotonic")
    X_test = simulated["test"][0]
    assert again.best_params_ == balanced_model.best_params_
    assert np.array_equal(again.predict_proba(X_test), balanced_model.predict_proba(X_test))


def test_calibration_lowers_ece_on_a_known_churn_process(simulated: dict, balanced_model: ChurnClassifier) -> None:
    X_test, y_test, truth = simulated["test"]
    # Class weights push raw scores away from the base rate; calibration must pull them back.
    positive_rate = y_test.mean()
    assert positive_rate < 0.45  # the weighting really distorts something
    raw = balanced_model.predict_raw(X_test)
    calibrated = balanced_model.predict_proba(X_test)[:, 1]
    raw_ece = expected_calibration_error(raw, y_test)
    calibrated_ece = expected_calibration_error(calibrated, y_test)
    assert calibrated_ece < raw_ece / 2
    assert calibrated_ece < 0.04
    # Mean calibrated probability matches the simulated truth's mean (not just the sample's).
    assert abs(calibrated.mean() - truth.mean()) < 0.02
    # Brier close to the irreducible error E[p(1 − p)] of the true process.
    bayes_brier = float(np.mean(truth * (1 - truth)))
    brier = float(np.mean((calibrated - y_test) ** 2))
    assert bayes_brier <= brier + 0.005 and brier < bayes_brier + 0.02


def test_platt_scaling_keeps_the_ranking(simulated: dict) -> None:
    model = fit(simulated, calibration="sigmoid")
    X_test = simulated["test"][0]
    raw = model.predict_raw(X_test)
    calibrated = model.predict_proba(X_test)[:, 1]
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(calibrated[order]) >= -1e-12)


def test_contributions_sum_to_the_raw_log_odds(simulated: dict) -> None:
    X_test = simulated["test"][0].head(500)
    for boost_from in (None, "bgnbd_p_no_purchase_w"):
        model = fit(simulated, boost_from=boost_from, n_trials=2)
        contributions = model.contributions(X_test)
        assert ("prior" in contributions.columns) == (boost_from is not None)
        raw_log_odds = logit(model.predict_raw(X_test))
        np.testing.assert_allclose(contributions.sum(axis=1), raw_log_odds, rtol=0, atol=1e-9)
        if boost_from:
            np.testing.assert_allclose(contributions["prior"], logit(X_test[boost_from]), atol=1e-12)


def test_the_signal_is_found(balanced_model: ChurnClassifier, simulated: dict) -> None:
    importance = balanced_model.feature_importance()
    # The two causes and the prior that carries part of their signal lead; pure noise ranks below them.
    assert set(importance.index[:3]) == {"days_since_last", "orders_90d", "bgnbd_p_no_purchase_w"}
    X_test, y_test, truth = simulated["test"]
    from sklearn.metrics import roc_auc_score

    # Within 0.03 of the AUC the true probabilities reach.
    assert roc_auc_score(y_test, balanced_model.predict_proba(X_test)[:, 1]) > roc_auc_score(y_test, truth) - 0.03


def test_categories_unseen_values_and_missing(balanced_model: ChurnClassifier, simulated: dict) -> None:
    assert balanced_model.vocabulary_["country"] == ["UK", "France", "Germany"]  # by training frequency
    rows = simulated["test"][0].head(3).copy()
    rows["country"] = pd.array(["France", "Narnia", None], dtype="string")
    codes = balanced_model._matrix(rows)[:, balanced_model.feature_names_.index("country")]
    assert codes[0] == 1.0 and codes[1] == 3.0 and np.isnan(codes[2])
    assert np.isfinite(balanced_model.predict_proba(rows)).all()


def test_pickle_round_trip_predicts_the_same(balanced_model: ChurnClassifier, simulated: dict) -> None:
    X_test = simulated["test"][0]
    restored = pickle.loads(pickle.dumps(balanced_model))
    assert np.array_equal(restored.predict_proba(X_test), balanced_model.predict_proba(X_test))


def test_trials_are_reported_to_callbacks(simulated: dict) -> None:
    seen: list[tuple[int, str]] = []
    X, y, _ = simulated["train"]
    X_cal, y_cal, _ = simulated["calibration"]
    model = ChurnClassifier(categorical_features=("country",), n_trials=3, n_folds=2, max_rounds=100)
    model.fit(
        X, y, X_calibration=X_cal, y_calibration=y_cal,
        callbacks=[lambda study, trial: seen.append((trial.number, trial.state.name))],
    )
    assert [number for number, _ in seen] == [0, 1, 2]
    assert len(model.trials_) == 3 and set(model.trials_["state"]) <= {"COMPLETE", "PRUNED"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda X, y: (X, np.zeros_like(y)), "all 3,000 labels are 0"),
        (lambda X, y: (X, np.where(y == 1, 2, 0)), "labels must be 0"),
        (lambda X, y: (X.iloc[:10], y), "10 feature rows but 3,000 labels"),
        (lambda X, y: (X.to_numpy(), y), "must be a DataFrame"),
    ],
)
def test_bad_training_input_is_a_clear_error(simulated: dict, change: object, message: str) -> None:
    X, y, _ = simulated["train"]
    X_cal, y_cal, _ = simulated["calibration"]
    X_bad, y_bad = change(X, y)  # type: ignore[operator]
    with pytest.raises(ClvInputError, match=message):
        ChurnClassifier(categorical_features=("country",), n_trials=1).fit(
            X_bad, y_bad, X_calibration=X_cal, y_calibration=y_cal
        )


def test_missing_feature_at_prediction_is_a_clear_error(balanced_model: ChurnClassifier, simulated: dict) -> None:
    with pytest.raises(ClvInputError, match="lack column"):
        balanced_model.predict_proba(simulated["test"][0].drop(columns=["orders_90d"]))


def test_tuning_sample_takes_whole_customers(simulated: dict) -> None:
    model = ChurnClassifier(tuning_rows=1000, seed=3)
    groups = np.repeat(np.arange(600), 5)  # 600 customers × 5 snapshots
    index = model._tuning_sample(len(groups), groups)
    assert len(index) == 1000 and np.all(np.diff(index) > 0)
    chosen = np.unique(groups[index])
    assert len(chosen) == 200 and np.array_equal(np.sort(index), np.flatnonzero(np.isin(groups, chosen)))
    assert np.array_equal(index, ChurnClassifier(tuning_rows=1000, seed=3)._tuning_sample(len(groups), groups))
    assert len(ChurnClassifier(tuning_rows=None)._tuning_sample(50, None)) == 50


def test_tuning_on_a_sample_still_trains_on_every_row(simulated: dict) -> None:
    model = fit(simulated, tuning_rows=1000, n_trials=2)
    assert model.n_tuning_rows_ == 1000
    assert model.n_train_ == 3000
