"""The Spark engine against the embedded engine (issue 7): the same SQL text, transpiled, must give
the same ingestion, features and scores row for row, on Spark ``local[2]``.

* Online Retail (541,909 raw lines with credit notes, guest checkouts, zero prices, duplicates):
  the quality report's counts per reason and the canonical orders equal the embedded engine's.
* A 50,000-customer synthetic base (``benchmarks/bench_churn.simulate_orders``): the RFM summary
  (``clv features --engine spark`` vs ``clv features``), every point-in-time scoring feature, and
  every column of ``clv score`` (numbers to 1e-9, tiers, segments, stages, actions exactly).

Marked slow (a JVM, two trainings-worth of work); CI runs it (``.ci/run`` installs the ``spark``
extra; Java 17 is on the CI machine). Skipped, with the reason, when pyspark or Java 17 is missing.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv_models.config import load_settings
from clv_models.errors import ClvInputError
from tests.training.test_pipeline import TINY_VALUE

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC_COLUMNS = {"customer_id": "customer_id", "order_id": "order_id", "order_ts": "order_ts",
                     "amount": "amount", "country": "country"}  # fmt: skip
STAMP = dt.datetime(2026, 1, 1)


def _spark_available() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install '.[spark]')"
    from clv_models.data.spark import java_version

    version = java_version()
    if version is None or version < 17:
        return f"Java 17+ is needed for Spark (found {version})"
    return None


@pytest.fixture(scope="module")
def spark():
    reason = _spark_available()
    if reason:
        pytest.skip(reason)
    from clv_models.data.spark import spark_session

    session = spark_session("local[2]", app_name="clv-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """50,000 customers to score and an exported scorer trained on 5,000 others (tiny settings)."""
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_churn
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from clv_models.tracking.mlflow_tracking import tracking_uri
    from clv_models.tracking.registry import export_scorer
    from clv_models.training.pipeline import train

    base = tmp_path_factory.mktemp("spark_synthetic")
    orders, training_orders = base / "orders_50k.parquet", base / "orders_train.parquet"
    pq.write_table(bench_churn.simulate_orders(50_000, 11), orders)
    pq.write_table(bench_churn.simulate_orders(5_000, 12), training_orders)
    root = base / "store"
    settings = _settings(training_orders, root, "churn.n_trials=1", "churn.n_folds=2", "churn.train_cutoffs=2",
                         "churn.max_rounds=60", "segments.n_init=2", *TINY_VALUE)  # fmt: skip
    result = train(settings, force=True)
    model = base / "model"
    export_scorer(f"models:/clv-customer-scorer/{result.model_version}", model, tracking_uri=tracking_uri(root))
    return {"orders": orders, "model": model, "root": root, "base": base}


def _settings(orders: Path, root: Path, *extra: str):
    return load_settings(
        None,
        [f'orders.path="{orders}"', f'tracking.root="{root}"', f'validation.quarantine="{root}/q/{{source}}.parquet"',
         "scoring.chunk_customers=20000", *extra],
        {"orders.columns": SYNTHETIC_COLUMNS},
    )  # fmt: skip


def _assert_frames_equal(embedded: pd.DataFrame, spark: pd.DataFrame, key: list[str]) -> None:
    assert list(spark.columns) == list(embedded.columns)
    a = embedded.sort_values(key).reset_index(drop=True)
    b = spark.sort_values(key).reset_index(drop=True)
    assert len(a) == len(b) > 0
    for column in a.columns:
        left, right = a[column], b[column]
        if pd.api.types.is_float_dtype(left) or pd.api.types.is_float_dtype(right):
            x, y = left.to_numpy(dtype=float), right.to_numpy(dtype=float)
            assert np.array_equal(np.isnan(x), np.isnan(y)), column
            np.testing.assert_allclose(y, x, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=column)
        elif pd.api.types.is_datetime64_any_dtype(left):
            assert (pd.to_datetime(left).to_numpy() == pd.to_datetime(right).to_numpy()).all(), column
        else:
            x = left.astype(object).where(left.notna(), None).tolist()
            y = right.astype(object).where(right.notna(), None).tolist()
            assert [None if v is None else str(v) for v in x] == [None if v is None else str(v) for v in y], column


def test_java_check_names_the_version_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clv_models.data import spark as spark_data

    fake = tmp_path / "jdk" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.22" 2024-01-16\' >&2\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    assert spark_data.java_version() == 11
    if _spark_available() == "pyspark is not installed (pip install '.[spark]')":
        pytest.skip("pyspark missing: the Java check comes after it")
    with pytest.raises(ClvInputError, match=r"Java 17 or newer, found Java 11; point JAVA_HOME"):
        spark_data.check_spark_requirements()
    fake.write_text('#!/bin/sh\necho \'java version "1.8.0_402"\' >&2\n')
    assert spark_data.java_version() == 8
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(ClvInputError, match="none was found"):
        spark_data.check_spark_requirements()


def test_online_retail_ingestion_is_the_same_on_spark(
    spark, online_retail_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clv_models.data.ingest import ingest
    from clv_models.data.spark import spark_ingest
    from tests.training.test_pipeline import COLUMNS

    settings = load_settings(None, [f'orders.path="{online_retail_path}"'], {"orders.columns": COLUMNS})
    with ingest(settings.orders, validation=settings.validation) as embedded:
        expected_report = embedded.report
        expected = embedded.con.execute("SELECT * FROM orders ORDER BY customer_id, order_id").df()
        expected_lines = embedded.con.execute("SELECT row_number, reason FROM lines ORDER BY row_number").df()
    # A relative quarantine path from a directory other than the one the JVM started in (the
    # session's): written where this process looks, not where the JVM would resolve it.
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with spark_ingest(spark, settings.orders, validation=settings.validation,
                      quarantine_path="q/{source}.parquet") as on_spark:  # fmt: skip
        report = on_spark.report
        got = on_spark.sql.frame("SELECT * FROM orders").toPandas()
        got_lines = on_spark.sql.frame("SELECT row_number, reason FROM lines").toPandas()
    written = tmp_path / "elsewhere" / "q" / "online_retail_2010_2011.parquet"
    assert len(pd.read_parquet(written, columns=["reason"])) == report.rows_quarantined
    # Online Retail has credit notes, guest checkouts, zero prices and duplicate lines.
    assert report.reason_counts == expected_report.reason_counts
    assert {"missing_customer_id", "duplicate_line", "non_positive_order"} <= set(report.reason_counts)
    assert (report.orders, report.customers, report.credits_netted) == (
        expected_report.orders, expected_report.customers, expected_report.credits_netted
    )  # fmt: skip
    assert report.net_revenue == pytest.approx(expected_report.net_revenue, rel=1e-12)
    _assert_frames_equal(expected, got[expected.columns.tolist()], ["customer_id", "order_id"])
    _assert_frames_equal(expected_lines, got_lines[["row_number", "reason"]], ["row_number"])


def test_features_and_scores_match_the_embedded_engine_row_for_row(spark, synthetic: dict, tmp_path: Path) -> None:
    from clv_models.data.ingest import ingest
    from clv_models.data.spark import spark_ingest
    from clv_models.features.customer import customer_features
    from clv_models.features.rfm import rfm_summary
    from clv_models.features.spark import spark_customer_features
    from clv_models.scoring.job import score
    from clv_models.scoring.spark_job import score_spark

    settings = _settings(synthetic["orders"], synthetic["root"])
    # Point-in-time features at the cutoff, before any model.
    with ingest(settings.orders, validation=settings.validation) as embedded:
        as_of = embedded.report.cutoff
        rfm = rfm_summary(embedded, as_of=as_of, unit="D")
        expected = customer_features(embedded, as_of=as_of, unit="D")
    with spark_ingest(spark, settings.orders, validation=settings.validation) as on_spark:
        got = spark_customer_features(on_spark, as_of, "D").toPandas()
    assert len(expected) == len(rfm) == 50_000
    assert "country" in expected.columns and expected["orders_180d"].sum() > 0
    assert (expected["as_of"] == as_of.isoformat()).all()
    _assert_frames_equal(expected, got, ["customer_id"])  # same columns, in the same order

    # The whole job: every column of the scores table.
    embedded_out, spark_out = tmp_path / "embedded.parquet", tmp_path / "spark_scores"
    first = score(settings, model_uri=str(synthetic["model"]), out=embedded_out, scored_at=STAMP, log_run=False)
    second = score_spark(settings, model_uri=str(synthetic["model"]), out=spark_out, scored_at=STAMP, spark=spark)
    assert first.customers == second.customers == len(expected)
    scores_a, scores_b = pd.read_parquet(embedded_out), pd.read_parquet(spark_out)
    _assert_frames_equal(scores_a, scores_b, ["customer_id"])
    for column in ("value_tier", "segment", "lifecycle_stage", "churn_risk"):
        assert scores_a[column].nunique() >= 2, column  # the comparison is not between constants
    assert second.distributions == first.distributions
    assert second.psi == pytest.approx(first.psi, rel=1e-9, abs=1e-12)
    assert second.run_id is not None  # logged as a clv-score run
    assert not list(tmp_path.glob(".spark_scores*")), "no partial or previous directory left behind"


def test_cli_features_on_spark_equal_embedded(spark, synthetic: dict, tmp_path: Path) -> None:
    common = ["--orders", str(synthetic["orders"]), "--columns",
              ",".join(f"{k}={v}" for k, v in SYNTHETIC_COLUMNS.items()), "--unit", "W"]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    clv = [sys.executable, "-m", "clv_models.cli"]
    run = subprocess.run([*clv, "features", *common, "--out", str(tmp_path / "rfm.parquet")],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    run = subprocess.run([*clv, "features", *common, "--engine", "spark", "--master", "local[2]",
                          "--out", str(tmp_path / "rfm_spark")],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "features written to" in run.stdout
    expected, got = pd.read_parquet(tmp_path / "rfm.parquet"), pd.read_parquet(tmp_path / "rfm_spark")
    _assert_frames_equal(expected, got, ["customer_id"])
    # Sorted by customer id across the part files, as the embedded file is.
    assert got["customer_id"].tolist() == sorted(got["customer_id"].tolist())
    # Usage errors are one line and exit 2, before any JVM starts.
    score = [*clv, "score", "--engine", "spark", "--orders", str(synthetic["orders"]),
             "--model", str(synthetic["model"])]  # fmt: skip
    run = subprocess.run([*score, "--out", str(tmp_path / "scores.csv")], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=300)  # fmt: skip
    assert run.returncode == 2 and "writes a Parquet directory" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([*score, "--out", str(tmp_path / "s"), "--set", 'spark.partition_by=["colour"]'],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)  # fmt: skip
    assert run.returncode == 2 and "cannot partition the scores by colour" in run.stderr
    run = subprocess.run([*score, "--out", str(tmp_path / "s"), "--engine", "flink"], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300)  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    # An output directory that cannot be created: one line, exit 4, before any Spark job.
    run = subprocess.run([*score, "--out", "/proc/clv-no-such/scores"], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=300)  # fmt: skip
    assert run.returncode == 4 and len(run.stderr.strip().splitlines()) == 1, run.stderr[-2000:]
    assert "cannot write the scores to /proc/clv-no-such/scores" in run.stderr


def test_failed_write_keeps_the_previous_output(spark, tmp_path: Path) -> None:
    from clv_models.data.spark import write_parquet_atomic

    target = tmp_path / "scores"
    write_parquet_atomic(spark.range(100).toDF("x"), str(target))
    before = sorted(p.name for p in target.iterdir())

    def explode(batches):
        for batch in batches:
            raise RuntimeError("worker died")
            yield batch

    with pytest.raises(Exception, match="worker died"):
        write_parquet_atomic(spark.range(100).toDF("x").mapInPandas(explode, "x long"), str(target))
    assert sorted(p.name for p in target.iterdir()) == before
    assert pd.read_parquet(target)["x"].sum() == sum(range(100))
    assert [p.name for p in tmp_path.iterdir()] == ["scores"]


def test_a_full_disk_on_spark_is_one_error_and_keeps_the_previous_output(spark, tmp_path: Path) -> None:
    """A 64 KiB tmpfs: the first, small output fits; the next one does not. The JVM's
    "No space left on device" becomes one ClvEnvironmentError naming the path; the previous
    output and nothing else stays."""
    from clv_models.data.spark import write_parquet_atomic
    from clv_models.errors import ClvEnvironmentError

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        target = disk / "scores"
        write_parquet_atomic(spark.range(10).toDF("x"), str(target))
        before = sorted(p.name for p in target.iterdir())
        big = spark.range(200_000).selectExpr("id AS x", "rand(3) AS noise").coalesce(1)
        with pytest.raises(ClvEnvironmentError, match=f"cannot write the scores to {target}: no space left on the device"):
            write_parquet_atomic(big, str(target), what="the scores")
        assert sorted(p.name for p in target.iterdir()) == before
        assert pd.read_parquet(target)["x"].sum() == sum(range(10))
        assert [p.name for p in disk.iterdir()] == ["scores"]
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)
