"""Cross-sell in training (decisions D43): judged out of time against popularity, logged under
fixed names, and the fitted model shipped; and, slow, through ``clv train`` and ``clv score``."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pytest

from clv_models.config import ColumnMap, load_settings
from clv_models.data.ingest import ingest
from clv_models.evaluation.cross_sell import metric_names


class Run:
    """Stands in for a tracking run: records the params."""

    def __init__(self) -> None:
        self.params: dict = {}

    def log_params(self, params: dict) -> None:
        self.params.update(params)


@pytest.fixture(scope="module")
def shop():
    from clv_models.datasets import simulate_orders

    return simulate_orders(600, seed=4)


def test_train_cross_sell_on_a_simulated_shop(shop) -> None:
    from clv_models.training.cross_sell import train_cross_sell

    settings = load_settings(None, ["xsell.k=3"])
    columns = ColumnMap.parse(shop.columns + ",product_id=sku")
    with ingest(shop.orders, columns=columns, threads=1) as ingested:
        cutoff = ingested.report.cutoff
        run = Run()
        result = train_cross_sell(ingested, settings, cutoff, run)
    assert result is not None
    assert set(metric_names()) <= set(result.metrics)
    assert result.metrics["xsell_eval_customers"] > 0
    assert "popularity" in result.summary
    assert run.params["xsell"]["eval_start"] == (cutoff + dt.timedelta(days=1 - 90)).isoformat()
    assert len(result.model.recommend([], 3)) == 3  # fitted on every order up to the cutoff


def test_no_product_column_no_cross_sell(shop) -> None:
    from clv_models.training.cross_sell import train_cross_sell

    with ingest(shop.orders, columns=shop.column_map(), threads=1) as ingested:
        assert train_cross_sell(ingested, load_settings(None, []), ingested.report.cutoff) is None


@pytest.mark.slow
def test_train_and_score_online_retail_with_products(online_retail_path: Path, tmp_path: Path) -> None:
    """About 2 minutes: tiny tuning; the scores of two chunk sizes agree on recommended_products."""
    from clv_models.datasets import ONLINE_RETAIL_COLUMN_MAP, ONLINE_RETAIL_NOT_PRODUCTS
    from clv_models.scoring.job import score
    from clv_models.training.pipeline import train
    from tests.training.test_pipeline import TINY_VALUE

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    excluded = ", ".join(f'"{p}"' for p in ONLINE_RETAIL_NOT_PRODUCTS)

    def settings(*extra: str):
        return load_settings(
            None,
            [f'orders.path="{online_retail_path}"', f'tracking.root="{tmp_path}"', "churn.n_trials=1",
             "churn.n_folds=2", "churn.train_cutoffs=2", "churn.max_rounds=80", "segments.n_init=2",
             f"xsell.exclude_products=[{excluded}]", *TINY_VALUE, *extra],
            {"orders.columns": {**ONLINE_RETAIL_COLUMN_MAP, "product_id": "StockCode"}},
        )  # fmt: skip

    result = train(settings(), force=True)
    m = result.metrics
    assert "## Cross-sell: out of time against popularity" in result.report
    assert m["xsell_hit_rate_at_5"] > m["xsell_popularity_hit_rate_at_5"]
    assert any("beats popularity" in line for line in result.choices)
    assert result.scorer.models.affinity is not None
    model = f"models:/clv-customer-scorer/{result.model_version}"
    stamp = dt.datetime(2026, 1, 1)
    one = score(settings(), model_uri=model, out=tmp_path / "one.parquet", scored_at=stamp, log_run=False)
    many = score(settings("scoring.chunk_customers=700"), model_uri=model, out=tmp_path / "many.parquet",
                 scored_at=stamp, log_run=False)  # fmt: skip
    a, b = pd.read_parquet(one.out), pd.read_parquet(many.out)
    assert a["recommended_products"].tolist() == b["recommended_products"].tolist()
    cross = a["next_best_action"] == "cross_sell_bundles"
    assert a.loc[cross, "recommended_products"].str.count("[|]").eq(4).all()
    assert a.loc[~cross, "recommended_products"].isna().all()


def test_a_holdout_longer_than_the_history_is_said_and_still_ships_a_model(shop) -> None:
    from clv_models.training.cross_sell import train_cross_sell

    columns = ColumnMap.parse(shop.columns + ",product_id=sku")
    with ingest(shop.orders, columns=columns, threads=1) as ingested:
        result = train_cross_sell(ingested, load_settings(None, ["xsell.holdout_days=5000"]), ingested.report.cutoff)
    assert result is not None and result.metrics["xsell_eval_customers"] == 0.0
    assert set(metric_names()) <= set(result.metrics)
    assert "not judged" in result.summary and result.notes == [result.summary]
    assert len(result.model.products_) > 0


def test_the_report_section_puts_the_model_beside_popularity() -> None:
    from clv_models.training.pipeline import cross_sell_markdown

    metrics = {"xsell_hit_rate_at_5": 0.34, "xsell_popularity_hit_rate_at_5": 0.21, "xsell_recall_at_5": 0.024,
               "xsell_popularity_recall_at_5": 0.01, "xsell_hit_rate_at_10": 0.48}  # fmt: skip
    text = cross_sell_markdown("cross-sell (cosine): … beats popularity", metrics)
    assert "| 5 | 0.3400 | 0.2100 | 0.0240 | 0.0100 |" in text
    assert "| 10 | 0.4800 | nan | nan | nan |" in text  # a metric not measured is shown as such
    assert "beats popularity." in text
