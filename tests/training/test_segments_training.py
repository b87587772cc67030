"""The decision layer end to end on Online Retail: features → BG/NBD, Gamma-Gamma, churn → segments,
tiers, risk bands, stages, actions; profiles checked against sums computed from the raw orders;
MLflow logging into a temporary store; the report files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv_models.config import ChurnSettings, ColumnMap, load_settings
from clv_models.data.ingest import ingest
from clv_models.features.churn import churn_snapshots
from clv_models.features.customer import customer_features
from clv_models.features.rfm import rfm_summary
from clv_models.models import BetaGeoModel, ChurnClassifier, GammaGammaModel
from clv_models.models.btyd_features import BTYD_FEATURES, DAILY_RFM, BtydChurnFeatures
from clv_models.scorer import CustomerModels, assign_decisions, customer_values
from clv_models.training.churn import train_churn
from clv_models.training.segments import train_segmentation, write_segmentation_report
from clv_models.valuation.labels import apply_labels
from clv_models.valuation.lifecycle import lifecycle_stage

COLUMNS = (
    "customer_id=CustomerID,order_id=InvoiceNo,order_ts=InvoiceDate,quantity=Quantity,unit_price=UnitPrice,"
    "country=Country"
)


@pytest.fixture(scope="module")
def scored(online_retail_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from clv_models.tracking import Tracker

    settings = load_settings()
    root = tmp_path_factory.mktemp("mlflow")
    tracker = Tracker("clv-segments-test", root=root, uri=f"sqlite:///{root}/mlruns/mlflow.db")
    with ingest(online_retail_path, columns=ColumnMap.parse(COLUMNS)) as ingested:
        features = customer_features(ingested)
        weekly = customer_features(ingested, unit="W")
        rfm = features[["frequency", "recency", "T", "monetary_value"]]
        rfm.attrs["unit"] = "D"
        churn = train_churn(ingested, ChurnSettings(n_trials=2, n_folds=2, max_rounds=100, train_cutoffs=3)).model
        models = CustomerModels(
            purchases=BetaGeoModel().fit(rfm),
            gamma_gamma=GammaGammaModel().fit(rfm[rfm["frequency"] > 0]),
            churn=churn,
            btyd_features=BtydChurnFeatures(window_days=churn.window_days).fit(features),
        )
        # The snapshot at the cutoff, with BTYD features from models fitted on it (as training does
        # per snapshot cutoff): independent of customer_features and the scorer's stored fit.
        snapshot = churn_snapshots(ingested, [ingested.report.cutoff], labels=False)
        snapshot_btyd = BtydChurnFeatures(window_days=churn.window_days).fit(snapshot).transform(snapshot)
        snapshot = pd.concat([snapshot, snapshot_btyd], axis=1)
        revenue = ingested.con.execute("SELECT customer_id, sum(amount) AS revenue FROM orders GROUP BY ALL").df()
        reference_rfm = rfm_summary(ingested)
    values = customer_values(features, models, settings)
    with tracker.start_run("segments") as run:
        result = train_segmentation(values, settings, models, run=run)
        run_id = run.run_id
    return {
        "settings": settings,
        "features": features,
        "weekly": weekly,
        "values": values,
        "models": models,
        "result": result,
        "snapshot": snapshot,
        "revenue": revenue,
        "rfm": reference_rfm,
        "tracker": tracker,
        "run_id": run_id,
    }


def test_customer_features_agree_with_their_sources(scored: dict) -> None:
    features, rfm = scored["features"], scored["rfm"]
    assert features["customer_id"].tolist() == sorted(rfm["customer_id"].tolist())
    merged = features.merge(rfm, on="customer_id", suffixes=("", "_ref"))
    for column in ("frequency", "recency", "T", "monetary_value"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_ref"], rtol=1e-12)
    # Daily snapshot columns sit beside the model-unit RFM; in days they coincide.
    np.testing.assert_array_equal(features["T_days"], features["T"])
    for daily, column in zip(DAILY_RFM, ("frequency", "recency", "T", "monetary_value"), strict=True):
        np.testing.assert_allclose(features[daily], features[column], rtol=1e-12, err_msg=daily)
    # The cutoff is a column; no BTYD feature (the scorer computes them from its stored models).
    assert list(features.columns[:2]) == ["customer_id", "as_of"]
    assert (features["as_of"] == features.attrs["as_of"]).all()
    assert not set(BTYD_FEATURES) & set(features.columns)
    weekly = scored["weekly"]
    assert weekly.attrs["unit"] == "W"
    np.testing.assert_allclose(weekly["T_days"], features["T_days"])
    assert (weekly["T"] <= features["T"] / 7 + 1).all()


def test_churn_probability_is_the_classifier_on_the_snapshot(scored: dict) -> None:
    model: ChurnClassifier = scored["models"].churn
    snapshot = scored["snapshot"].set_index("customer_id").loc[scored["values"]["customer_id"]]
    expected = model.predict_proba(snapshot[model.feature_names_])[:, 1]
    np.testing.assert_allclose(scored["values"]["churn_probability"], expected, rtol=0, atol=0)


def test_profiles_match_sums_from_the_orders(scored: dict) -> None:
    result = scored["result"]
    table = result.table.merge(scored["revenue"], on="customer_id")
    profiles = result.profiles.set_index("segment")
    by_segment = table.groupby("segment")
    np.testing.assert_allclose(
        profiles["revenue_share"], (by_segment["revenue"].sum() / table["revenue"].sum()).loc[profiles.index], rtol=1e-9
    )
    assert profiles["customers"].sum() == len(table)
    assert profiles["customer_share"].sum() == pytest.approx(1.0)
    assert profiles["value_share"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(profiles["clv_h"], by_segment["clv_h"].mean().loc[profiles.index])
    names = set(result.segmenter.names_)
    assert names == set(table["segment"]) and "core" in names
    core = profiles.loc["core"]
    # The segment named core is the one that is recent, frequent and valuable.
    assert core["clv_h"] == profiles["clv_h"].max() and core["days_since_last"] == profiles["days_since_last"].min()
    # Every name holds for its members, seen from the profiles (computed apart from the segmenter):
    # churn below the base's for core and potential, above it for at_risk, sleeping and lost.
    base_churn = table["churn_probability"].mean()
    for name, row in profiles.iterrows():
        if name in ("core", "potential"):
            assert row["churn_probability"] < base_churn, name
        if name in ("at_risk", "sleeping", "lost"):
            assert row["churn_probability"] > base_churn, name
        if name == "new":
            assert (table.loc[table["segment"] == name, "T_days"] <= 90).mean() >= 0.5
    checks = result.segmenter.name_checks_
    assert checks.loc[checks["assigned"], "passed"].all()
    assert set(checks.loc[checks["assigned"], "segment"]) == names
    assert result.segmenter.naming_context_["churn_statistic"] == "mean_churn_probability"


def test_tiers_stages_and_actions(scored: dict) -> None:
    result, settings = scored["result"], scored["settings"]
    table = result.table
    shares = table["value_tier"].value_counts(normalize=True)
    assert shares["high"] == pytest.approx(0.2, abs=0.005) and shares["medium"] == pytest.approx(0.3, abs=0.005)
    assert result.tier_summary.set_index("value_tier").loc["high", "clv_min"] >= result.tiers.cut_points_["high"]
    assert (table["lifecycle_stage"].to_numpy() == lifecycle_stage(table, **settings.lifecycle.model_dump())).all()
    high_high = (table["value_tier"] == "high") & (table["churn_risk"] == "high")
    assert (table.loc[high_high, "next_best_action"] == "personal_retention_outreach").all()
    assert set(table["churn_risk"]) <= {"high", "medium", "low"}
    # Deciding again with the stored models gives the same table; one customer alone, the same row.
    again = assign_decisions(scored["values"], scored["models"], settings)
    pd.testing.assert_frame_equal(again, table)
    alone = assign_decisions(scored["values"].iloc[[17]], scored["models"], settings)
    pd.testing.assert_frame_equal(alone.reset_index(drop=True), table.iloc[[17]].reset_index(drop=True))
    zh = apply_labels(table, "zh")
    assert set(zh["value_tier"]) == {"高价值", "中价值", "低价值"}


def test_segment_names_survive_a_retrain_with_another_seed(scored: dict) -> None:
    settings = load_settings(None, ["segments.seed=7"])
    models = CustomerModels(**{**scored["models"].__dict__})
    retrained = train_segmentation(scored["values"], settings, models, previous=scored["result"].segmenter)
    before, after = scored["result"].table["segment"], retrained.table["segment"]
    assert set(before) == set(after)
    assert (before == after).mean() > 0.97


def test_mlflow_run_and_report(scored: dict, tmp_path: Path) -> None:
    tracker = scored["tracker"]
    run = tracker.client.get_run(scored["run_id"])
    metrics = run.data.metrics
    result = scored["result"]
    assert metrics["segments_silhouette"] == pytest.approx(result.segmenter.silhouette_)
    assert metrics["segments_k"] == result.segmenter.k_
    assert metrics["share_value_tier_high"] == pytest.approx((result.table["value_tier"] == "high").mean())
    assert run.data.params["tiers.high_share"] == "0.2"
    assert metrics["segments_neutral"] == len(result.segmenter.neutral_)
    assert metrics["segments_churn_from_probability"] == 1.0
    assert metrics["segments_overdue_days"] == pytest.approx(result.segmenter.naming_context_["overdue_days"])
    artifacts = {f.path for f in tracker.client.list_artifacts(scored["run_id"], "segments")}
    for name in (
        "profiles.csv",
        "pareto.csv",
        "tiers.csv",
        "centroids.csv",
        "k_selection.csv",
        "name_checks.csv",
        "name_definitions.csv",
        "member_statistics.csv",
        "segment_profiles.png",
        "pareto.png",
        "k_selection.png",
        "segment_map.png",
    ):
        assert f"segments/{name}" in artifacts
    written = write_segmentation_report(result, scored["settings"], tmp_path / "report")
    text = written["report"].read_text(encoding="utf-8")
    assert "## Value tiers and the Pareto view" in text and "personal_retention_outreach" in text
    assert all(path.stat().st_size > 0 for path in written.values())
    # Each segment's checks, in the report and in its HTML rendering.
    assert "## Segment names and their checks" in text
    own = result.segmenter.name_checks_[result.segmenter.name_checks_["assigned"]]
    for segment, check in zip(own["segment"], own["check"], strict=True):
        assert f"| {segment} " in text and check in text
    from clv_models.evaluation.html_report import render_html

    page = render_html(text, {})
    assert ">Segment names and their checks</h2>" in page and "mean_churn_probability &lt; base" in page
