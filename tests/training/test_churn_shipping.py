"""Never worse than its baseline (issue 18, item 4): the classifier ships only when a paired
bootstrap on the test snapshot does not find it worse than the best baseline on AUC, Brier or
ECE; otherwise the calibrated baseline ships as ``churn_probability`` and the run says so."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from clv_models.evaluation.churn_metrics import compare_scores
from clv_models.features.churn import LABEL
from clv_models.models.churn_baseline import BaselineChurnModel
from clv_models.training.churn import BASELINES, ChurnTrainResult
from tests.scoring.test_batch_independence import settings_for, simulated_orders
from tests.training.test_pipeline import TINY_VALUE


def result_with(scores: dict[str, np.ndarray], outcome: np.ndarray) -> ChurnTrainResult:
    test = pd.DataFrame({LABEL: outcome})
    return ChurnTrainResult(model=None, dataset=SimpleNamespace(test=test), test_scores=scores,  # type: ignore[arg-type]
                            comparison=compare_scores(scores, outcome), raw_ece=0.0,
                            contributions=pd.DataFrame())  # fmt: skip


def baselines_from(truth: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    # One good, calibrated baseline (the truth itself) and three weaker ones.
    return {
        "bgnbd_p_no_purchase": np.clip(truth + rng.normal(0, 0.15, len(truth)), 0.01, 0.99),
        "bgnbd_1_minus_p_alive": np.full(len(truth), truth.mean()) + rng.normal(0, 0.01, len(truth)),
        "recency_rule": truth,
        "calibrated_bgnbd_p_no_purchase": np.clip(truth * 0.8 + 0.1, 0, 1),
    }


def test_a_classifier_worse_than_the_recency_rule_is_found_worse() -> None:
    rng = np.random.default_rng(3)
    truth = rng.beta(2, 3, 6000)
    outcome = (rng.random(6000) < truth).astype(float)
    noisy = np.clip(truth + rng.normal(0, 0.25, 6000), 0.01, 0.99)
    result = result_with({"model": noisy, **baselines_from(truth, rng)}, outcome)
    losses = result.not_worse("model")
    assert any(loss.startswith("AUC") and "(recency_rule)" in loss for loss in losses)
    assert any(loss.startswith("Brier") for loss in losses)


def test_a_classifier_equal_to_the_best_baseline_is_not_worse() -> None:
    rng = np.random.default_rng(4)
    truth = rng.beta(2, 3, 6000)
    outcome = (rng.random(6000) < truth).astype(float)
    # The same information as the best baseline, up to tiny noise: within the bootstrap's reach.
    same = np.clip(truth + rng.normal(0, 0.002, 6000), 0, 1)
    result = result_with({"model": same, **baselines_from(truth, rng)}, outcome)
    assert result.not_worse("model") == []
    assert set(result.comparison.index) == {"model", *BASELINES}


def test_a_small_but_real_calibration_loss_is_named_and_does_not_stop_the_classifier() -> None:
    """Four groups whose churn rates are exactly 0.2, 0.4, 0.6, 0.8: the recency rule gives those
    rates (ECE 0), the classifier the same plus 0.008 (ECE 0.008: the same ranking, a calibration
    loss beyond the bootstrap's noise on 80,000 customers but within D32's 0.01 margin)."""
    from clv_models.training.churn import shipped_summary

    rng = np.random.default_rng(6)
    truth = np.repeat([0.2, 0.4, 0.6, 0.8], 20_000)
    outcome = np.concatenate([rng.permutation(np.arange(20_000) < 20_000 * rate) for rate in (0.2, 0.4, 0.6, 0.8)])
    outcome = outcome.astype(float)
    scores = {**baselines_from(truth, rng), "model": truth + 0.008}
    result = result_with(scores, outcome)
    gaps = result.gaps("model")
    ece = gaps.loc["ece"]
    assert ece["baseline"] == "recency_rule" and ece["theirs"] == pytest.approx(0.0, abs=1e-12)
    assert ece["gap"] == pytest.approx(0.008) and ece["q05"] > 0 and ece["beyond_noise"] and not ece["worse"]
    assert abs(gaps.loc["auc", "gap"]) < 1e-12  # a constant shift keeps the ranking
    assert result.not_worse("model") == []
    # Brier too: 0.008² above the truth's 0.2 for every resample, far below its margin (0.5 % of 0.2).
    assert result.small_losses("model") == ["Brier 0.2001 vs 0.2000 (recency_rule)", "ECE 0.0080 vs 0.0000 (recency_rule)"]
    assert gaps.loc["brier", "gap"] == pytest.approx(0.008**2)
    summary = shipped_summary(result)  # ships the classifier (the default of shipped)
    assert summary.startswith("churn_probability: the calibrated classifier (not worse than the best baseline by")
    assert "ECE 0.0080 vs 0.0000 (recency_rule)" in summary
    # 0.012 above: beyond the margin too, so worse by D32.
    worse = result_with({**scores, "model": truth + 0.012}, outcome)
    assert worse.not_worse("model") == ["ECE 0.0120 vs 0.0000 (recency_rule)"]
    assert worse.small_losses("model") == ["Brier 0.2001 vs 0.2000 (recency_rule)"]


def test_a_shipped_score_calibrated_worse_than_the_aim_is_said_with_its_level() -> None:
    """Rates exactly 0.2/0.4/0.6/0.8: the truth has ECE 0 (no sentence); 0.05 above it, ECE 0.05
    and a mean 5 points above the realised rate, which the sentence gives."""
    from clv_models.training.churn import CALIBRATION_NOTICE_ECE, calibration_notice

    rng = np.random.default_rng(7)
    truth = np.repeat([0.2, 0.4, 0.6, 0.8], 5_000)
    outcome = np.concatenate([rng.permutation(np.arange(5_000) < 5_000 * rate) for rate in (0.2, 0.4, 0.6, 0.8)])
    outcome = outcome.astype(float)
    assert calibration_notice(result_with({**baselines_from(truth, rng), "model": truth}, outcome)) is None
    notice = calibration_notice(result_with({**baselines_from(truth, rng), "model": truth + 0.05}, outcome))
    assert CALIBRATION_NOTICE_ECE == 0.03
    assert notice is not None and notice.startswith("churn_probability is calibrated to 0.050 on the test snapshot")
    assert "its mean there was 55.0% against a realised churn rate of 50.0%" in notice


def test_the_baseline_model_is_isotonic_regression_on_its_column() -> None:
    rng = np.random.default_rng(5)
    days = rng.integers(0, 400, 3000).astype(float)
    churned = (rng.random(3000) < days / 400).astype(float)
    frame = pd.DataFrame({"days_since_last": days})
    model = BaselineChurnModel("recency_rule", window_days=90).fit(frame, churned)
    expected = IsotonicRegression(y_min=0, y_max=1, increasing=True, out_of_bounds="clip").fit(days, churned)
    probe = pd.DataFrame({"days_since_last": [0.0, 50.0, 200.0, 399.0, 1000.0]})
    np.testing.assert_allclose(model.predict_proba(probe)[:, 1], expected.predict(probe["days_since_last"]))
    assert model.feature_names_ == ["days_since_last"] and model.window_days == 90
    assert np.all(np.diff(model.predict_proba(probe)[:, 1]) >= 0)


def test_a_shipped_baseline_scores_through_the_registered_scorer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the classifier to lose: the scorer's churn_probability is then the recency rule or the
    calibrated BG/NBD score, computed from the row alone, and the run is tagged."""
    from mlflow import MlflowClient

    from clv_models.features.customer import customer_features
    from clv_models.tracking.mlflow_tracking import tracking_uri
    from clv_models.training import churn as churn_training
    from clv_models.training.pipeline import train

    monkeypatch.setattr(churn_training.ChurnTrainResult, "not_worse",
                        lambda self, name: ["forced by the test"] if name == "model" else [])  # fmt: skip
    frame = simulated_orders(3000, 8)
    orders = tmp_path / "orders.parquet"
    frame.to_parquet(orders)
    as_of = frame["order_ts"].max().date() - dt.timedelta(days=30)
    settings = settings_for(orders, tmp_path / "store", as_of, "churn.n_trials=1", "churn.n_folds=2",
                            "churn.train_cutoffs=2", "churn.max_rounds=40", "segments.n_init=2",
                            *TINY_VALUE)  # fmt: skip
    result = train(settings, force=True)
    scorer = result.scorer
    shipped = scorer.models.churn
    assert isinstance(shipped, BaselineChurnModel)
    assert any("not the classifier" in notice and "forced by the test" in notice for notice in result.notices)
    assert result.metrics["churn_shipped_is_model"] == 0.0
    run = MlflowClient(tracking_uri(tmp_path / "store")).get_run(result.run_id)
    assert run.data.tags["churn_score_shipped"] in ("recency_rule", "calibrated_bgnbd_p_no_purchase", "bgnbd_p_no_purchase")
    assert result.metrics["churn_shipped_auc"] == pytest.approx(
        result.metrics[f"churn_baseline_{run.data.tags['churn_score_shipped']}_auc"]
    )
    features = customer_features(frame, as_of=as_of, unit="D")
    scores = scorer.score(features)
    column = shipped.feature_names_[0]
    if column == "days_since_last":
        inputs = features
    else:  # the BTYD feature, from the stored BTYD models
        inputs = scorer.models.btyd_features.transform(features)
    values = inputs[column].to_numpy(float)
    expected = values if shipped.isotonic_ is None else shipped.isotonic_.predict(values)
    np.testing.assert_allclose(scores["churn_probability"].to_numpy(float), expected, rtol=0, atol=1e-12)
    alone = scorer.score(features.iloc[[7]])
    assert alone["churn_probability"].iloc[0] == pytest.approx(scores["churn_probability"].iloc[7], abs=0)
