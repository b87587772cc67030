"""`clv train` → registry → `clv score` end to end on Online Retail, in a temporary MLflow store:
the parent/child runs and documented metrics, the champion/challenger alias flow, chunked scoring
equal to unchunked, byte-identical reruns, export and a fresh-process load, a scoring job killed
mid-write, and the bad-input errors."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv_models.config import Settings, load_settings, settings_to_toml
from clv_models.data.ingest import ingest
from clv_models.errors import ClvInputError
from clv_models.features.customer import customer_features
from clv_models.models.value import RANKERS
from clv_models.scorer import PROVENANCE_COLUMNS, SCORE_COLUMNS
from clv_models.scoring.job import score
from clv_models.training.pipeline import HEADLINE_METRICS, decide_promotion, train
from tests.test_cli import assert_user_error, clv

COLUMNS = {
    "customer_id": "CustomerID",
    "order_id": "InvoiceNo",
    "order_ts": "InvoiceDate",
    "quantity": "Quantity",
    "unit_price": "UnitPrice",
    "country": "Country",
    "amount": None,
}
STAMP = pd.Timestamp("2026-01-02 03:04:05").to_pydatetime()
# The value model's tuning at its smallest: the tests check what is stored and scored, not its quality.
TINY_VALUE = ("value.n_trials=1", "value.n_folds=2", "value.max_rounds=100", "value.bootstrap_replicates=50")


def make_settings(orders: Path, root: Path, *extra: str) -> Settings:
    return load_settings(
        None,
        [
            f'orders.path="{orders}"',
            "churn.n_trials=1",
            "churn.n_folds=2",
            "churn.train_cutoffs=2",
            "churn.max_rounds=100",
            *TINY_VALUE,
            "segments.n_init=3",
            f'tracking.root="{root}"',
            f'validation.quarantine="{root}/quarantine/{{source}}.parquet"',
            "scoring.chunk_customers=1000",
            f'scoring.out="{root}/scores.parquet"',
            *extra,
        ],
        {"orders.columns": COLUMNS},
    )


def scoring_toml(settings: Settings) -> str:
    """``settings`` as a scoring config: without the sections the registered scorer fixed at
    training (a scoring config that changes them is refused)."""
    import tomllib

    import tomli_w

    from clv_models.scoring.batch import TRAINING_SECTIONS

    data = tomllib.loads(settings_to_toml(settings))
    for section in TRAINING_SECTIONS:
        data.pop(section, None)
    return tomli_w.dumps(data)


@pytest.fixture(scope="module")
def store(online_retail_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    root = tmp_path_factory.mktemp("store")
    first = train(make_settings(online_retail_path, root))
    # The second run keeps the tiers of before the value model (value.ranker = "btyd_clv").
    failing = train(make_settings(online_retail_path, root, "gate.minimum={churn_auc=0.99}", 'value.ranker="btyd_clv"'))
    forced = train(make_settings(online_retail_path, root, "gate.minimum={churn_auc=0.99}"), force=True)
    return {"root": root, "orders": online_retail_path, "runs": [first, failing, forced]}


def test_parent_run_children_tags_and_metrics(store: dict) -> None:
    from clv_models.tracking import Tracker

    first = store["runs"][0]
    tracker = Tracker("clv-train", root=store["root"])
    parent = tracker.client.get_run(first.run_id)
    for name in HEADLINE_METRICS:
        assert name in parent.data.metrics, name
    assert parent.data.metrics["churn_auc"] == pytest.approx(first.metrics["churn_auc"])
    tags = parent.data.tags
    assert tags["cutoff"] == "2011-12-09" and tags["unit"] == "D"
    expected = hashlib.sha256(Path(store["orders"]).read_bytes()).hexdigest()
    assert tags["data_fingerprint"] == f"sha256:{expected}"
    assert tags["package_version"] and tags["git_commit"]
    assert parent.data.params["churn.n_trials"] == "1" and parent.data.params["tiers.high_share"] == "0.2"
    children = tracker.client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'"
    )
    assert {run.info.run_name for run in children} == {"ltv", "churn", "value", "segments"}
    churn_run = next(run for run in children if run.info.run_name == "churn")
    trials = tracker.client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{churn_run.info.run_id}'"
    )
    assert [run.info.run_name for run in trials] == ["trial-0000"]
    artifacts = {f.path for f in tracker.client.list_artifacts(first.run_id)}
    assert {"evaluation_report.md", "data", "config", "scorer"} <= artifacts
    ltv_run = next(r for r in children if r.info.run_name == "ltv").info.run_id
    ltv = {f.path for f in tracker.client.list_artifacts(ltv_run, "ltv")}
    assert "ltv/calibration_vs_holdout.png" in ltv and "ltv/probability_alive_matrix.png" in ltv
    report = (Path(tracker.client.download_artifacts(first.run_id, "evaluation_report.md"))).read_text()
    assert "## Data quality" in report and "## Churn" in report and "## Segments and tiers" in report


def test_alias_flow(store: dict) -> None:
    from clv_models.tracking import Tracker

    first, failing, forced = store["runs"]
    assert first.gate.promoted and first.gate.alias == "champion" and first.model_version == "1"
    assert not failing.gate.passed and not failing.gate.promoted and failing.gate.alias == "challenger"
    assert "churn_auc" in failing.gate.failures[0]
    assert forced.gate.promoted and not forced.gate.passed and forced.model_version == "3"
    client = Tracker("clv-train", root=store["root"]).client
    model = client.get_registered_model("clv-customer-scorer")
    assert model.aliases == {"champion": 3, "challenger": 2}


def test_promotion_rules() -> None:
    settings = load_settings(None, ['gate.minimum={churn_auc=0.7}', 'gate.maximum={churn_ece=0.1}',
                                    'gate.compare_metric=churn_auc'])  # fmt: skip
    good = {"churn_auc": 0.80, "churn_ece": 0.05}
    assert decide_promotion(good, settings, None, None).alias == "champion"
    assert decide_promotion(good, settings, 0.79, "4").alias == "champion"
    beaten = decide_promotion(good, settings, 0.81, "4")
    assert beaten.alias == "challenger" and "does not beat the champion" in beaten.reason
    assert decide_promotion(good, settings, 0.81, "4", force=True).alias == "champion"
    bad = decide_promotion({"churn_auc": 0.80, "churn_ece": 0.2}, settings, None, None)
    assert bad.alias == "challenger" and bad.failures == ["churn_ece 0.2 > 0.1"]
    nan = decide_promotion({"churn_auc": float("nan"), "churn_ece": 0.05}, settings, None, None)
    assert not nan.passed
    lower = load_settings(None, ["gate.compare_metric=churn_ece", "gate.higher_is_better=false", "gate.minimum={}",
                                 "gate.maximum={}", "gate.min_improvement=0.01"])  # fmt: skip
    assert decide_promotion(good, lower, 0.07, "1").alias == "champion"
    assert decide_promotion(good, lower, 0.055, "1").alias == "challenger"
    with pytest.raises(ClvInputError, match="gate metric 'churn_aucc' is not a training metric"):
        decide_promotion(good, load_settings(None, ["gate.minimum={churn_aucc=0.7}", "gate.compare_metric=churn_auc"]),
                         None, None)  # fmt: skip


@pytest.fixture(scope="module")
def scored(store: dict) -> dict:
    settings = make_settings(store["orders"], store["root"])
    result = score(settings, scored_at=STAMP)
    return {"settings": settings, "result": result, "bytes": result.out.read_bytes()}


def test_scores_table_matches_the_scorer_on_all_customers_at_once(store: dict, scored: dict) -> None:
    result = scored["result"]
    assert result.chunks == 5 and result.model_version == "3"
    table = pd.read_parquet(result.out)
    assert list(table.columns) == [*SCORE_COLUMNS, *PROVENANCE_COLUMNS]
    assert table["customer_id"].is_monotonic_increasing and table["customer_id"].is_unique
    assert (table["model_uri"] == "models:/clv-customer-scorer@champion").all()
    assert (table["scored_at"] == pd.Timestamp(STAMP)).all()
    scorer = store["runs"][2].scorer
    with ingest(scored["settings"].orders) as ingested:
        features = customer_features(ingested, unit=scorer.unit)
        customers = ingested.report.customers
    assert len(table) == customers
    direct = scorer.score(features)
    # The scorer gives the cutoff as written in its input; the job writes it as a timestamp.
    assert set(direct["as_of"].astype(str).str[:10]) == {"2011-12-09"}
    direct["as_of"] = pd.to_datetime(direct["as_of"])
    pd.testing.assert_frame_equal(table[list(SCORE_COLUMNS)], direct, check_exact=True, check_dtype=False)
    # Same data as training: the population is unchanged.
    assert max(result.psi.values()) < 1e-9 and not result.drift_warnings
    assert result.distributions["value_tier"]["high"] == pytest.approx(0.2, abs=0.002)


def test_rescoring_is_byte_identical(scored: dict) -> None:
    again = score(scored["settings"], scored_at=STAMP, log_run=False)
    assert again.out.read_bytes() == scored["bytes"]


def test_export_and_fresh_process_load(store: dict, scored: dict, tmp_path: Path) -> None:
    from clv_models.tracking.mlflow_tracking import tracking_uri
    from clv_models.tracking.registry import export_scorer

    exported = export_scorer("models:/clv-customer-scorer@champion", tmp_path / "model",
                             tracking_uri=tracking_uri(store["root"]))  # fmt: skip
    assert (exported / "MLmodel").is_file() and (exported / "code" / "clv_models" / "__init__.py").is_file()
    # Score from the exported directory with an empty tracking store: no registry needed.
    settings = make_settings(store["orders"], tmp_path / "elsewhere")
    result = score(settings, model_uri=str(exported), out=tmp_path / "scores.parquet", scored_at=STAMP)
    assert result.model_version == "3"
    original = pd.read_parquet(scored["result"].out).drop(columns="model_uri")
    pd.testing.assert_frame_equal(pd.read_parquet(result.out).drop(columns="model_uri"), original)
    # A fresh interpreter loads the model with plain mlflow and scores the input example.
    code = textwrap.dedent(f"""
        import json, mlflow.pyfunc
        from mlflow.models import Model
        model = mlflow.pyfunc.load_model({str(exported)!r})
        frame = Model.load({str(exported)!r}).load_input_example({str(exported)!r})
        scores = model.predict(frame, params={{"codes": True}})
        print(json.dumps({{"rows": len(scores), "tiers": sorted(set(scores["value_tier"])),
                          "as_of": sorted(set(frame["as_of"]))}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    assert printed["rows"] == 5 and set(printed["tiers"]) <= {"high", "medium", "low"}
    assert printed["as_of"] == ["2011-12-09"]  # the cutoff travels in the input example


def test_killed_scoring_job_leaves_the_previous_output(store: dict, scored: dict, tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    previous = b"previous scores"
    out.write_bytes(previous)
    settings = make_settings(store["orders"], store["root"])
    config = tmp_path / "score.toml"
    config.write_text(scoring_toml(settings))
    script = textwrap.dedent(f"""
        import os, signal
        from clv_models.config import load_settings
        from clv_models.scoring.job import score

        def progress(done, total):
            if done == 3:  # three of five chunks written: die without any cleanup
                os.kill(os.getpid(), signal.SIGKILL)

        score(load_settings({str(config)!r}), out={str(out)!r}, progress=progress, log_run=False)
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert out.read_bytes() == previous
    leftovers = list(tmp_path.glob(".scores.parquet.*.partial"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # it really died mid-write
    # The next run replaces the output and removes the dead writer's partial file.
    result = score(settings, out=out, scored_at=STAMP, log_run=False)
    assert result.customers > 0 and out.read_bytes() == scored["bytes"]
    assert not list(tmp_path.glob(".scores.parquet.*"))


def test_bad_input_is_one_line_and_nonzero(store: dict, tmp_path: Path) -> None:
    root = str(store["root"])
    orders = str(store["orders"])
    columns = ",".join(f"{k}={v}" for k, v in COLUMNS.items() if v)
    quarantine = f'validation.quarantine="{tmp_path}/q.parquet"'
    common = ["--orders", orders, "--columns", columns, "--set", f'tracking.root="{root}"',
              "--set", quarantine, "--out", str(tmp_path / "s.parquet")]  # fmt: skip
    assert_user_error(clv("score", *common, "--model", "models:/clv-customer-scorer@nope", cwd=tmp_path), 2,
                      "could not be loaded", "nope")  # fmt: skip
    assert_user_error(clv("score", *common, "--model", "models:/no-such-model@champion", cwd=tmp_path), 2,
                      "no-such-model")  # fmt: skip
    assert_user_error(clv("score", *common, "--model", str(tmp_path / "missing-dir"), cwd=tmp_path), 2,
                      "no such model directory")  # fmt: skip
    assert_user_error(clv("score", *common, "--set", "features.unit=W", cwd=tmp_path), 2,
                      "trained in unit 'D'")  # fmt: skip
    assert_user_error(clv("score", *common, "--as-of", "2009-01-01", cwd=tmp_path), 2, "no usable orders")
    broken = tmp_path / "broken.csv"
    broken.write_text("CustomerID,InvoiceDate,Quantity\n1,2011-01-01,2\n")
    assert_user_error(clv("score", *common[2:], "--orders", str(broken), "--columns", columns, cwd=tmp_path), 2,
                      "broken.csv", "InvoiceNo")  # fmt: skip
    assert not (tmp_path / "s.parquet").exists()


def test_text_in_a_numeric_column_is_rejected_by_the_signature(store: dict, scored: dict) -> None:
    from clv_models.tracking.mlflow_tracking import tracking_uri
    from clv_models.tracking.registry import load_scorer, signature_frame

    loaded = load_scorer("models:/clv-customer-scorer/1", tracking_uri=tracking_uri(store["root"]))
    with ingest(scored["settings"].orders) as ingested:
        features = customer_features(ingested).head(20)
    frame = signature_frame(loaded.scorer, features)
    assert len(loaded.predict_codes(frame)) == 20
    frame["frequency"] = frame["frequency"].astype(str) + "x"
    with pytest.raises(ClvInputError, match="does not match model models:/clv-customer-scorer/1"):
        loaded.predict_codes(frame)
    assert np.isfinite(scored["result"].psi["clv_h"])


def test_drift_against_training_is_measured_and_warned(store: dict, tmp_path: Path) -> None:
    from clv_models.tracking import Tracker

    # Six months earlier the base is younger and smaller: tenure and recency shift a lot.
    settings = make_settings(store["orders"], store["root"], "features.as_of=2011-06-30")
    result = score(settings, out=tmp_path / "early.parquet", scored_at=STAMP)
    assert result.as_of.isoformat() == "2011-06-30"
    assert result.psi["T"] > 0.2 and any(w.startswith("T: PSI") for w in result.drift_warnings)
    run = Tracker("clv-score", root=store["root"]).client.get_run(result.run_id)
    assert run.data.metrics["psi_T"] == pytest.approx(result.psi["T"])
    assert run.data.metrics["scored_customers"] == result.customers
    assert "T: PSI" in run.data.tags["drift_warnings"]


def test_cli_train_export_score(online_retail_path: Path, tmp_path: Path) -> None:
    settings = make_settings(online_retail_path, tmp_path / "store")
    config = tmp_path / "run.toml"
    config.write_text(settings_to_toml(settings))
    trained = clv("train", "--config", str(config), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "registered clv-customer-scorer version 1 as @champion" in trained.stdout
    assert "churn_auc" in trained.stdout and "Traceback" not in trained.stderr
    # The value rankers beside each other, the tiers' basis named.
    heading = next(line for line in trained.stdout.splitlines() if "rankers out of time" in line)
    shown = trained.stdout.split(heading, 1)[1]
    for ranker in RANKERS:
        assert re.search(rf"│ {ranker}( \(tiers\))? +│ +0\.\d{{4}} │", shown), ranker
    assert "value_tier: cut from " in trained.stdout
    exported = clv("export", "--config", str(config), "--out", str(tmp_path / "model"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    scored = clv("score", "--config", str(config), "--model", str(tmp_path / "model"), "--out",
                 str(tmp_path / "scores.csv"), cwd=tmp_path)  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert "scored 4,325 customers at 2011-12-09" in scored.stdout
    table = pd.read_csv(tmp_path / "scores.csv", dtype={"customer_id": str})
    assert len(table) == 4325 and set(table["value_tier"]) == {"high", "medium", "low"}
    assert (table["model_version"] == 1).all()


def test_report_html_is_logged_and_regenerated(store: dict, tmp_path: Path) -> None:
    from clv_models.tracking import Tracker

    first = store["runs"][0]
    client = Tracker("clv-train", root=store["root"]).client
    logged = Path(client.download_artifacts(first.run_id, "report.html", str(tmp_path))).read_text("utf-8")
    for heading in ("Data quality", "Lifetime value", "Churn", "Segments and tiers", "Value tiers and the Pareto view"):
        assert f">{heading}" in logged, heading
    # 5 LTV + 4 churn + 4 segment plots, inline: the file stands alone.
    assert logged.count('src="data:image/png;base64,') == 13
    assert "http://" not in logged and "https://" not in logged
    settings_file = tmp_path / "run.toml"
    settings_file.write_text(settings_to_toml(make_settings(store["orders"], store["root"])))
    done = clv("report", first.run_id, "--config", str(settings_file), "--out", str(tmp_path / "again.html"),
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "again.html").read_text("utf-8") == logged
    assert_user_error(clv("report", "nope", "--config", str(settings_file), cwd=tmp_path), 2, "no MLflow run 'nope'")


# --------------------------------------------------------------------------------------------
# The value the tiers rank by (issue 21, decisions D42)


def test_every_value_ranker_is_logged_and_the_chosen_one_is_not_worse_than_past_spend(store: dict) -> None:
    from clv_models.tracking import Tracker
    from clv_models.training.value import VALUE_METRICS

    first = store["runs"][0]
    parent = Tracker("clv-train", root=store["root"]).client.get_run(first.run_id)
    metrics, tags = parent.data.metrics, parent.data.tags
    for ranker in RANKERS:
        for metric in VALUE_METRICS:
            assert np.isfinite(metrics[f"value_{ranker}_{metric}"]), (ranker, metric)
    basis = first.scorer.models.value_ranker.name
    assert tags["value_tier_basis"] == basis == first.scorer.metadata["value_tier_basis"]
    for metric in VALUE_METRICS:
        assert metrics[f"value_shipped_{metric}"] == metrics[f"value_{basis}_{metric}"]
    # D42's rule: past spend is the past-spend ranking with the higher Gini; the tiers' ranker is
    # not below it on Gini or Spearman on the test snapshot, with no allowance.
    past = max(("past_spend_total", "past_spend_recent"), key=lambda r: metrics[f"value_{r}_gini"])
    for metric in ("gini", "spearman"):
        assert metrics[f"value_{basis}_{metric}"] >= metrics[f"value_{past}_{metric}"], metric
    assert metrics["value_shipped_not_worse_than_past_spend"] == 1.0
    assert metrics["value_window_days"] == first.scorer.models.value_ranker.window_days


def test_the_tiers_are_cut_from_value_forecast_with_the_stored_cut_points(store: dict) -> None:
    first = store["runs"][0]
    scorer, base = first.scorer, first.scored  # base: the training population at the cutoff
    cuts = scorer.models.tiers.cut_points_
    forecast = base["value_forecast"].to_numpy()
    # Fitted on the training base's value_forecast: the 80th and 50th percentiles (shares 20 / 30 %).
    assert cuts["high"] == pytest.approx(np.quantile(forecast, 0.8), rel=1e-12)
    assert cuts["medium"] == pytest.approx(np.quantile(forecast, 0.5), rel=1e-12)
    expected = np.where(forecast >= cuts["high"], "high", np.where(forecast >= cuts["medium"], "medium", "low"))
    assert base["value_tier"].tolist() == expected.tolist()
    # value_forecast is the stored ranker's value; clv_h is still the 12-month BTYD CLV, another column.
    with ingest(make_settings(store["orders"], store["root"]).orders) as ingested:
        features = customer_features(ingested, unit=scorer.unit)
    ranker = scorer.models.value_ranker
    np.testing.assert_array_equal(ranker.value(features, btyd=scorer.models.btyd_features), forecast)
    assert not np.allclose(base["clv_h"].to_numpy(), forecast)


def test_a_customer_gets_the_same_value_and_tier_alone_and_in_the_base(store: dict) -> None:
    scorer = store["runs"][2].scorer  # the champion that `clv score` uses
    with ingest(make_settings(store["orders"], store["root"]).orders) as ingested:
        features = customer_features(ingested, unit=scorer.unit)
    whole = scorer.score(features, codes=True)
    for i in (0, 7, len(features) // 2, len(features) - 1):
        alone = scorer.score(features.iloc[[i]], codes=True)
        assert alone["value_forecast"].iloc[0] == whole["value_forecast"].iloc[i]
        assert alone["value_tier"].iloc[0] == whole["value_tier"].iloc[i]
    shuffled = features.sample(frac=0.1, random_state=3)
    part = scorer.score(shuffled, codes=True)
    np.testing.assert_array_equal(part["value_forecast"].to_numpy(), whole["value_forecast"].to_numpy()[shuffled.index])


def test_btyd_clv_keeps_the_tiers_of_before(store: dict) -> None:
    """value.ranker = "btyd_clv": no value model; value_forecast is clv_h and the tiers are the
    quantiles of the training base's clv_h, as before the value model."""
    from clv_models.tracking import Tracker
    from clv_models.valuation.tiers import ValueTiers

    legacy, learned = store["runs"][1], store["runs"][0]
    assert legacy.scorer.models.value_ranker is None and legacy.scorer.metadata["value_tier_basis"] == "clv_h"
    base = legacy.scored
    np.testing.assert_array_equal(base["value_forecast"].to_numpy(), base["clv_h"].to_numpy())
    before = ValueTiers(high_share=0.2, medium_share=0.3).fit(base["clv_h"].to_numpy())
    assert legacy.scorer.models.tiers.cut_points_ == before.cut_points_
    assert base["value_tier"].tolist() == before.predict(base["clv_h"].to_numpy()).tolist()
    # The value step changes neither clv_h nor anything else the LTV models give.
    pd.testing.assert_series_equal(learned.scored["clv_h"], base["clv_h"])
    client = Tracker("clv-train", root=store["root"]).client
    children = client.search_runs([client.get_run(legacy.run_id).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{legacy.run_id}'")  # fmt: skip
    assert "value" not in {run.info.run_name for run in children}
    assert not any(name.startswith("value_") for name in legacy.metrics)
    assert client.get_run(legacy.run_id).data.tags["value_tier_basis"] == "clv_h"
