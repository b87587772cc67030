"""``recommended_products`` on the Spark engine (decisions D43): Spark ingestion keeps the embedded
engine's ``order_products`` rows, and ``clv score --engine spark`` writes every customer the
embedded engine's recommendations, at another number of output files than the embedded engine's
chunks (both engines pass the customer's own products to ``score_batch``); scoring orders without
the product column give the embedded engine's warning and nulls.

Marked slow (a JVM and a tiny training); skipped, with the reason, when pyspark or Java 17 is
missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from clv_models.config import load_settings
from tests.scoring.test_batch_independence import STAMP

pytestmark = pytest.mark.slow
KEY = ["customer_id", "order_id", "product_id"]


def test_spark_recommends_the_embedded_products(spark, tmp_path: Path) -> None:
    from clv_models.data.ingest import ingest
    from clv_models.data.spark import spark_ingest
    from clv_models.datasets import simulate_orders
    from clv_models.scoring.cross_sell import NO_PRODUCTS_WARNING
    from clv_models.scoring.job import score
    from clv_models.scoring.spark_job import score_spark
    from clv_models.training.pipeline import train

    shop = simulate_orders(1_500, seed=7)
    orders = shop.write(tmp_path / "orders.parquet")
    columns = dict(pair.split("=") for pair in f"{shop.columns},product_id=sku".split(","))

    def settings(*extra: str, products: bool = True):
        return load_settings(
            None,
            [f'orders.path="{orders}"', f'tracking.root="{tmp_path / "store"}"', f"features.as_of={shop.end}",
             f'validation.quarantine="{tmp_path}/q/{{source}}.parquet"',
             "churn.n_trials=1", "churn.n_folds=2", "churn.train_cutoffs=2", "churn.max_rounds=60",
             "segments.n_init=2", *extra],
            {"orders.columns": columns if products else {k: v for k, v in columns.items() if k != "product_id"}},
        )  # fmt: skip

    # The table itself: the same rows from the transpiled SQL as from DuckDB's.
    source = settings().orders
    with ingest(source, as_of=shop.end, threads=1) as duck, spark_ingest(spark, source, as_of=shop.end) as sparked:
        assert sparked.products
        query = "SELECT customer_id, order_id, order_ts, product_id FROM order_products"
        kept = duck.con.execute(query).df().sort_values(KEY, ignore_index=True)
        again = sparked.sql.frame(query).toPandas().sort_values(KEY, ignore_index=True)
    assert len(kept) > 0 and kept[KEY].astype(str).equals(again[KEY].astype(str))
    assert (pd.to_datetime(kept["order_ts"]).to_numpy() == pd.to_datetime(again["order_ts"]).to_numpy()).all()

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    trained = train(settings(), force=True)
    assert trained.scorer.models.affinity is not None
    model = f"models:/clv-customer-scorer/{trained.model_version}"
    embedded = score(settings("scoring.chunk_customers=500"), model_uri=model, out=tmp_path / "embedded.parquet",
                     scored_at=STAMP, log_run=False)  # fmt: skip
    on_spark = score_spark(settings("scoring.chunk_customers=300"), model_uri=model, out=tmp_path / "spark",
                           scored_at=STAMP, spark=spark, log_run=False)  # fmt: skip
    assert not [w for w in on_spark.input_warnings if "recommended_products" in w]
    a = pd.read_parquet(embedded.out).set_index("customer_id").sort_index()
    b = pd.read_parquet(tmp_path / "spark").set_index("customer_id").sort_index()
    assert b.index.tolist() == a.index.tolist()
    assert a["next_best_action"].astype(str).tolist() == b["next_best_action"].astype(str).tolist()
    left = a["recommended_products"].astype(object).where(a["recommended_products"].notna(), None).tolist()
    right = b["recommended_products"].astype(object).where(b["recommended_products"].notna(), None).tolist()
    assert left == right
    crossed = a["next_best_action"] == "cross_sell_bundles"
    assert crossed.any() and a.loc[crossed, "recommended_products"].notna().all()
    assert a.loc[~crossed, "recommended_products"].isna().all()
    # Scoring orders without the product column: the embedded engine's warning, and nulls.
    unmapped = score_spark(settings(products=False), model_uri=model, out=tmp_path / "unmapped", scored_at=STAMP,
                           spark=spark, log_run=False)  # fmt: skip
    assert NO_PRODUCTS_WARNING in unmapped.input_warnings
    assert pd.read_parquet(tmp_path / "unmapped")["recommended_products"].isna().all()
