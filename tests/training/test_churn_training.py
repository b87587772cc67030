"""train_churn end to end on a CDNOW subsample: out-of-time comparison, MLflow logging of every
Optuna trial as a nested run, the report files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from clv_models.config import ChurnSettings
from clv_models.data.ingest import ingest
from clv_models.training.churn import BASELINES, CHURN_METRICS, train_churn, write_churn_report

N_TRIALS = 3


@pytest.fixture(scope="module")
def cdnow_subsample(cdnow_orders_frame: pd.DataFrame) -> pd.DataFrame:
    # Every 8th customer id: ~2,950 customers, the same cohort structure as the full data.
    ids = np.sort(cdnow_orders_frame["customer_id"].unique())[::8]
    return cdnow_orders_frame[cdnow_orders_frame["customer_id"].isin(ids)].reset_index(drop=True)


@pytest.fixture(scope="module")
def tracked(cdnow_subsample: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from clv_models.tracking import Tracker

    root = tmp_path_factory.mktemp("mlflow")
    tracker = Tracker("clv-churn-test", root=root, uri=f"sqlite:///{root}/mlruns/mlflow.db")
    settings = ChurnSettings(n_trials=N_TRIALS, n_folds=2, max_rounds=200, train_cutoffs=4)
    with ingest(cdnow_subsample) as ingested, tracker.start_run("churn") as run:
        result = train_churn(ingested, settings, run=run, trial_callbacks=(tracker.optuna_callback(run),))
        run_id = run.run_id
    return {"tracker": tracker, "result": result, "run_id": run_id, "root": root}


def test_comparison_matches_independent_metrics(tracked: dict) -> None:
    result = tracked["result"]
    test = result.dataset.test
    outcome = test["churned"].to_numpy()
    # The BG/NBD baseline is read straight from the snapshot: recompute with scikit-learn.
    baseline = test["bgnbd_p_no_purchase_w"].to_numpy()
    assert result.comparison.loc["bgnbd_p_no_purchase", "auc"] == pytest.approx(roc_auc_score(outcome, baseline))
    assert result.comparison.loc["bgnbd_p_no_purchase", "brier"] == pytest.approx(
        brier_score_loss(outcome, baseline)
    )
    model = result.model.predict_proba(test[result.dataset.features])[:, 1]
    assert result.comparison.loc["model", "auc"] == pytest.approx(roc_auc_score(outcome, model))
    assert list(result.comparison.index) == ["model", *BASELINES]
    # Out of time: the test snapshot's cutoff is after every training outcome window.
    plan = result.dataset.plan
    assert max(plan.train) + pd.Timedelta(days=plan.window_days) <= plan.validation
    assert set(test["cutoff"]) == {plan.test}


def test_every_trial_is_a_nested_mlflow_run(tracked: dict) -> None:
    tracker = tracked["tracker"]
    runs = tracker.client.search_runs([tracker.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tracked["run_id"]]
    assert len(runs) == 1 + N_TRIALS
    assert len(children) == N_TRIALS
    assert {r.info.run_name for r in children} == {f"trial-{i:04d}" for i in range(N_TRIALS)}
    completed = [r for r in children if r.data.tags["trial_state"] == "COMPLETE"]
    assert completed and all("learning_rate" in r.data.params for r in completed)
    values = [r.data.metrics["trial_value"] for r in completed]
    best = max(values) if tracked["result"].model.tuning_metric == "auc" else min(values)
    parent = tracker.client.get_run(tracked["run_id"])
    assert parent.data.metrics["churn_cv_score"] == pytest.approx(best)


def test_parent_run_has_the_documented_metrics_and_artifacts(tracked: dict) -> None:
    tracker = tracked["tracker"]
    parent = tracker.client.get_run(tracked["run_id"])
    metrics = parent.data.metrics
    for metric in CHURN_METRICS:
        assert metrics[f"churn_{metric}"] == pytest.approx(tracked["result"].comparison.loc["model", metric])
        for baseline in BASELINES:
            assert f"churn_baseline_{baseline}_{metric}" in metrics
    assert parent.data.params["churn.window_days"] == str(tracked["result"].dataset.plan.window_days)
    artifacts = {f.path for f in tracker.client.list_artifacts(tracked["run_id"], "churn")}
    for name in ("comparison.csv", "trials.csv", "snapshots.json", "reliability.png", "lift.png",
                 "feature_importance.png", "contributions_summary.png"):
        assert f"churn/{name}" in artifacts
    # The store lives where it was told to, not in the working tree.
    assert (Path(tracked["root"]) / "mlruns" / "mlflow.db").exists()
    assert not Path("mlruns").exists() or Path("mlruns").resolve().is_relative_to(Path(tracked["root"]).resolve())


def test_report_files(tracked: dict, tmp_path: Path) -> None:
    written = write_churn_report(tracked["result"], tmp_path / "report")
    text = written["report"].read_text(encoding="utf-8")
    assert "| model" in text and "bgnbd_p_no_purchase" in text
    assert "refitted per cutoff" in text and str(tracked["result"].dataset.plan.test) in text
    for key in ("reliability", "lift", "feature_importance", "contributions_summary"):
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "report").glob("*.tmp*"))


def test_the_shipped_score_is_recalibrated_on_the_latest_complete_window(tracked: dict) -> None:
    """D37: the shipped classifier (or baseline) is recalibrated on the test snapshot. Platt
    scaling and isotonic regression both reproduce the mean label of the data they are fitted on,
    so the shipped score's mean on the test snapshot is its churn rate; the evaluated model (one
    window older calibration) keeps its own ranking and booster."""
    import numpy as np

    from clv_models.features.churn import LABEL

    result = tracked["result"]
    test = result.dataset.test
    shipped = result.shipped_model.predict_proba(test[result.dataset.features] if result.shipped == "model" else test)[:, 1]
    assert shipped.mean() == pytest.approx(test[LABEL].mean(), abs=2e-3)  # Platt: C = 1e6, lbfgs tolerance
    if result.shipped == "model":
        evaluated = result.model.predict_proba(test[result.dataset.features])[:, 1]
        assert np.array_equal(np.argsort(evaluated, kind="stable"), np.argsort(shipped, kind="stable")) or (
            abs(np.corrcoef(evaluated, shipped)[0, 1] - 1) < 1e-9
        )
        assert result.shipped_model is not result.model
