"""Out-of-time cross-sell metrics (decisions D43) on a hand example, and on Online Retail."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from clv_models.evaluation.cross_sell import (
    evaluate_cross_sell,
    hit_rate_and_recall,
    metric_names,
    new_purchases,
)


def frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "product_id"])


BEFORE = frame([("c1", "A"), ("c1", "B"), ("c2", "A"), ("c3", "C")])
# c1: C is new; c2: only A again (nothing new: not judged); c3: A and B new; c4: no history (not judged).
AFTER = frame([("c1", "A"), ("c1", "C"), ("c2", "A"), ("c3", "A"), ("c3", "B"), ("c4", "B")])


def test_new_purchases_by_hand() -> None:
    assert new_purchases(BEFORE, AFTER) == {"c1": {"C"}, "c3": {"A", "B"}}


def test_hit_rate_and_recall_by_hand() -> None:
    truth = new_purchases(BEFORE, AFTER)
    recommended = {"c1": ["C", "D"], "c3": ["D", "A"]}
    # k=1: c1 hits (C), c3 does not (D): hit rate 1/2; recall (1/1 + 0/2)/2.
    assert hit_rate_and_recall(recommended, truth, 1) == (0.5, 0.5)
    # k=2: both hit; recall (1/1 + 1/2)/2.
    assert hit_rate_and_recall(recommended, truth, 2) == (1.0, 0.75)
    # A customer judged but without recommendations counts as a miss.
    assert hit_rate_and_recall({"c1": ["C"]}, truth, 5) == (0.5, 0.5)
    hit, recall = hit_rate_and_recall({}, {}, 5)
    assert hit != hit and recall != recall  # NaN: nobody judged


def test_evaluation_names_and_popularity_by_hand() -> None:
    result = evaluate_cross_sell(BEFORE, AFTER, method="cosine", k=1, ks=(1, 2))
    assert set(metric_names((1, 2))) == set(result.metrics)
    # Popularity before: A (2 customers), then B, C (1 each, by id). c1 gets C; c3 gets A.
    assert result.metrics["xsell_popularity_hit_rate_at_1"] == 1.0
    assert result.metrics["xsell_popularity_recall_at_1"] == 0.75
    assert result.metrics["xsell_eval_customers"] == 2.0
    assert "popularity" in result.summary()


@pytest.fixture(scope="module")
def online_retail_split(online_retail_path):
    from clv_models.config import ColumnMap
    from clv_models.data.ingest import ingest
    from clv_models.data.order_products import customer_products
    from clv_models.datasets import ONLINE_RETAIL_COLUMNS

    cutoff = dt.datetime(2011, 9, 9)
    columns = ColumnMap.parse(ONLINE_RETAIL_COLUMNS + ",product_id=StockCode")
    with ingest(str(online_retail_path), columns=columns, threads=1) as ingested:
        before = customer_products(ingested.con, end=cutoff)
        after = customer_products(ingested.con, start=cutoff, end=cutoff + dt.timedelta(days=90))
    return before, after


def test_online_retail_cosine_beats_popularity(online_retail_split) -> None:
    """Measured (benchmarks/cross_sell.py, D43): hit rate@5 about 0.34 against 0.21."""
    from clv_models.datasets import ONLINE_RETAIL_NOT_PRODUCTS

    before, after = online_retail_split
    result = evaluate_cross_sell(before, after, method="cosine", k=5, neighbours=20, exclude=ONLINE_RETAIL_NOT_PRODUCTS)
    m = result.metrics
    assert m["xsell_eval_customers"] > 1_500
    assert m["xsell_hit_rate_at_5"] > m["xsell_popularity_hit_rate_at_5"] + 0.08
    assert m["xsell_recall_at_10"] > m["xsell_popularity_recall_at_10"]
    assert result.beats_popularity()
