"""Batch independence on the Spark engine (issue 16): ``clv score --engine spark`` gives a customer
the embedded job's row whether the customer is scored alone, in a random 1 % subset or in the whole
base, whatever the number of output files; and ``mlflow.pyfunc.spark_udf`` on the Spark twin of
the feature table gives the same rows as the registered model's pandas ``predict``.

Marked slow (a JVM); skipped, with the reason, when pyspark or Java 17 is missing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.scoring.test_batch_independence import STAMP, assert_rows_equal, settings_for

pytestmark = pytest.mark.slow


def score_on_spark(spark, shop: dict, frame: pd.DataFrame, out: Path, *extra: str) -> pd.DataFrame:
    from clv_models.scoring.spark_job import score_spark

    orders = out.with_name(out.name + ".orders.parquet")
    frame.to_parquet(orders)
    settings = settings_for(orders, shop["root"], shop["as_of"], *extra)
    score_spark(settings, model_uri=str(shop["model"]), out=out, scored_at=STAMP, spark=spark, log_run=False)
    return pd.read_parquet(out)


def test_spark_rows_do_not_depend_on_the_batch(spark, shop: dict, tmp_path: Path) -> None:
    frame, scores = shop["frame"], shop["scores"]
    everyone = score_on_spark(spark, shop, frame, tmp_path / "full", "scoring.chunk_customers=3000")
    assert len(everyone) == len(scores)
    assert_rows_equal(everyone, scores, "Spark full base vs embedded full base")
    subset = frame[frame["customer_id"].isin(shop["subset"])]
    part = score_on_spark(spark, shop, subset, tmp_path / "subset", "scoring.chunk_customers=7")
    assert sorted(part["customer_id"]) == list(shop["subset"])
    assert_rows_equal(part, scores, "Spark 1% subset (files of 7 customers) vs embedded full base")
    customer = shop["subset"][0]
    alone = score_on_spark(spark, shop, frame[frame["customer_id"] == customer], tmp_path / "alone")
    assert alone["customer_id"].tolist() == [customer]
    assert_rows_equal(alone, scores, "Spark alone vs embedded full base")


def test_spark_udf_on_the_spark_features_gives_the_pandas_rows(spark, shop: dict) -> None:
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    from clv_models.data.spark import spark_ingest
    from clv_models.features.spark import spark_customer_features

    model = str(shop["model"])
    settings = settings_for(shop["orders"], shop["root"], shop["as_of"])
    with spark_ingest(spark, settings.orders, as_of=shop["as_of"], validation=settings.validation) as ingested:
        features = spark_customer_features(ingested, shop["as_of"], mlflow.pyfunc.load_model(model).metadata
                                           .metadata["unit"])  # fmt: skip
        udf = mlflow.pyfunc.spark_udf(spark, model, env_manager="local")
        got = features.select(udf(F.struct(*features.columns)).alias("scores")).select("scores.*").toPandas()
    expected = shop["scores"].drop(columns=["model_uri", "model_version", "scored_at"])
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    got["as_of"] = pd.to_datetime(got["as_of"], format="%Y-%m-%d")  # the pyfunc returns the ISO date
    assert_rows_equal(got, expected, "spark_udf vs clv score")
