"""A/B groups on the Spark engine (issue 19): ``clv score --engine spark`` writes every customer the
embedded engine's ``experiment`` and ``experiment_group`` (both engines call the same pure
assignment from ``score_batch``), at any number of output files.

Marked slow (a JVM); skipped, with the reason, when pyspark or Java 17 is missing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clv_models.config import ExperimentSettings
from tests.scoring.test_batch_independence import STAMP, settings_for

pytestmark = pytest.mark.slow

EXPERIMENTS = (
    ExperimentSettings(name="winback_coupon", actions=["automated_win_back", "reactivation_offer"], salt="2026-12"),
    ExperimentSettings(name="vip_null", actions=["vip_service_early_access"], holdout_share=0.3, salt="v"),
)


def test_spark_assigns_every_customer_the_embedded_group(spark, shop: dict, tmp_path: Path) -> None:
    from clv_models.scoring.job import score
    from clv_models.scoring.spark_job import score_spark

    settings = settings_for(shop["orders"], shop["root"], shop["as_of"], "scoring.chunk_customers=3000")
    settings = settings.model_copy(update={"experiments": EXPERIMENTS})
    score(settings, model_uri=str(shop["model"]), out=tmp_path / "embedded.parquet", scored_at=STAMP, log_run=False)
    score_spark(settings, model_uri=str(shop["model"]), out=tmp_path / "spark", scored_at=STAMP, spark=spark,
                log_run=False)  # fmt: skip
    embedded = pd.read_parquet(tmp_path / "embedded.parquet").set_index("customer_id").sort_index()
    on_spark = pd.read_parquet(tmp_path / "spark").set_index("customer_id").sort_index()
    assert on_spark.index.tolist() == embedded.index.tolist()
    for column in ("next_best_action", "experiment", "experiment_group"):
        left, right = embedded[column], on_spark[column]
        assert left.isna().tolist() == right.isna().tolist(), column
        assert left.dropna().astype(str).tolist() == right.dropna().astype(str).tolist(), column
    assert set(embedded["experiment_group"].dropna()) == {"treatment", "control"}
    assert embedded["experiment"].isna().any() and set(embedded["experiment"].dropna()) == {"winback_coupon", "vip_null"}
