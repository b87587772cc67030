"""``recommended_products`` (decisions D43): only for cross-sell actions, and the same for a
customer alone or in a batch."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from clv_models.config import Settings
from clv_models.models.affinity import ProductAffinity
from clv_models.scoring.cross_sell import (
    XSELL_COLUMN,
    products_from_lists,
    recommended_products,
    with_cross_sell_column,
)


def shop(seed: int = 11, customers: int = 400, products: int = 60) -> pd.DataFrame:
    """Customers buying from one of three product groups, mostly (seeded)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(customers):
        group = c % 3
        for _ in range(rng.integers(1, 8)):
            p = group * 20 + int(rng.integers(0, 20)) if rng.random() < 0.8 else int(rng.integers(0, products))
            rows.append((f"c{c:04d}", f"p{p:03d}"))
    return pd.DataFrame(rows, columns=["customer_id", "product_id"])


def scorer_with(model: ProductAffinity) -> SimpleNamespace:
    return SimpleNamespace(models=SimpleNamespace(affinity=model), settings=Settings())


def test_alone_or_in_a_batch_the_same_recommendations() -> None:
    pairs = shop()
    scorer = scorer_with(ProductAffinity("cosine").fit(pairs))
    ids = sorted(pairs["customer_id"].unique())
    actions = ["cross_sell_bundles" if i % 2 else "newsletter" for i in range(len(ids))]
    codes = pd.DataFrame({"customer_id": ids, "next_best_action": actions})
    batch = recommended_products(codes, pairs, scorer)
    assert all(v is None for v, a in zip(batch, actions, strict=True) if a != "cross_sell_bundles")
    crossed = [v for v, a in zip(batch, actions, strict=True) if a == "cross_sell_bundles"]
    assert all(isinstance(v, str) and len(v.split("|")) == 5 for v in crossed)
    rng = np.random.default_rng(5)
    for row in rng.choice(len(ids), size=40, replace=False):
        alone = recommended_products(codes.iloc[[row]], pairs[pairs.customer_id == ids[row]], scorer)
        assert alone[0] == batch[row]
    # Never a product the customer bought.
    for row in np.flatnonzero(np.array(actions) == "cross_sell_bundles")[:50]:
        bought = set(pairs.loc[pairs.customer_id == ids[row], "product_id"])
        assert not bought & set(batch[row].split("|"))


def test_no_model_or_no_products_gives_nulls() -> None:
    codes = pd.DataFrame({"customer_id": ["a"], "next_best_action": ["cross_sell_bundles"]})
    plain = SimpleNamespace(models=SimpleNamespace(), settings=Settings())
    assert recommended_products(codes, pd.DataFrame(columns=["customer_id", "product_id"]), plain).tolist() == [None]
    scorer = scorer_with(ProductAffinity("cosine").fit(shop()))
    assert recommended_products(codes, None, scorer).tolist() == [None]
    # A customer with no known product: the most popular products.
    empty = pd.DataFrame({"customer_id": pd.Series([], dtype=str), "product_id": pd.Series([], dtype=str)})
    assert recommended_products(codes, empty, scorer)[0] == "|".join(scorer.models.affinity.recommend([], 5))


def test_the_column_is_written_only_by_recommending_scorers() -> None:
    model_scorer = scorer_with(ProductAffinity("popularity").fit(shop()))
    plain = SimpleNamespace(models=SimpleNamespace(), settings=Settings())
    assert with_cross_sell_column(["customer_id"], model_scorer, ()) == ["customer_id", XSELL_COLUMN]
    assert with_cross_sell_column(["customer_id"], plain, ()) == ["customer_id"]
    assert with_cross_sell_column(["customer_id"], model_scorer, ("customer_id",)) == ["customer_id"]


def test_per_customer_lists_give_the_chunk_pairs() -> None:
    """The Spark engine's per-customer product arrays (nulls for customers without products)
    give the same pairs, and so the same recommendations, as the embedded chunk's rows."""
    pairs = shop(customers=30).drop_duplicates().sort_values(["customer_id", "product_id"], ignore_index=True)
    scorer = scorer_with(ProductAffinity("cosine").fit(pairs))
    ids = [*sorted(pairs["customer_id"].unique()), "nobody"]
    lists = [np.array(sorted(pairs.loc[pairs.customer_id == c, "product_id"]), dtype=object) for c in ids[:-1]]
    got = products_from_lists(ids, [*lists, None])
    assert got.values.tolist() == pairs.values.tolist()
    codes = pd.DataFrame({"customer_id": ids, "next_best_action": "cross_sell_bundles"})
    assert recommended_products(codes, got, scorer).tolist() == recommended_products(codes, pairs, scorer).tolist()
    assert products_from_lists(["a"], [None]).empty
