"""Product affinity (decisions D43) on a co-purchase example worked out by hand.

Customers: c1 {A, B}, c2 {A, B, C}, c3 {A, C}, c4 {D}. Customers per product: A 3, B 2, C 2, D 1;
pairs: AB 2, AC 2, BC 1, none with D. Cosine: sim(A,B) = sim(A,C) = 2/√6 ≈ 0.816, sim(B,C) =
1/√4 = 0.5. Lift (N = 4): lift(A,B) = lift(A,C) = 2·4/(3·2) = 4/3, lift(B,C) = 1·4/(2·2) = 1.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from clv_models.errors import ClvInputError
from clv_models.models.affinity import ProductAffinity, join_products

PAIRS = pd.DataFrame(
    [("c1", "A"), ("c1", "B"), ("c2", "A"), ("c2", "B"), ("c2", "C"), ("c3", "A"), ("c3", "C"), ("c4", "D"),
     ("c1", "A")],  # a repeat purchase counts once
    columns=["customer_id", "product_id"],
)  # fmt: skip


def weight(model: ProductAffinity, i: str, j: str) -> float:
    row = model.product_index_[i]
    index = model.neighbour_index_[row].tolist()
    target = model.product_index_[j]
    return float(model.neighbour_weight_[row][index.index(target)]) if target in index else 0.0


def test_cosine_similarities_by_hand() -> None:
    model = ProductAffinity("cosine").fit(PAIRS)
    assert model.products_.tolist() == ["A", "B", "C", "D"]
    assert model.product_customers_.tolist() == [3, 2, 2, 1]
    assert weight(model, "A", "B") == pytest.approx(2 / math.sqrt(6))
    assert weight(model, "A", "C") == pytest.approx(2 / math.sqrt(6))
    assert weight(model, "B", "C") == pytest.approx(0.5)
    assert weight(model, "C", "B") == pytest.approx(0.5)
    assert weight(model, "A", "D") == 0.0 and weight(model, "A", "A") == 0.0


def test_recommendations_by_hand() -> None:
    model = ProductAffinity("cosine").fit(PAIRS)
    # {B}: A scores 0.816, C 0.5; D has no score and comes by popularity.
    assert model.recommend(["B"], 3) == ["A", "C", "D"]
    # {A}: B and C tie at 0.816 and in popularity (2 customers each): the smaller id first.
    assert model.recommend(["A"], 3) == ["B", "C", "D"]
    # {B, C}: A = 0.816 + 0.816; then only D is left: fewer than k.
    assert model.recommend(["C", "B"], 5) == ["A", "D"]
    # Nothing (or only unknown products) bought: the most popular products.
    assert model.recommend([], 2) == ["A", "B"]
    assert model.recommend(["unknown"], 2) == ["A", "B"]
    assert model.recommend(["B", "B"], 1) == ["A"]


def test_popularity_baseline() -> None:
    model = ProductAffinity("popularity").fit(PAIRS)
    assert model.neighbour_index_.shape == (4, 0)
    assert model.recommend(["A"], 3) == ["B", "C", "D"]  # B and C tie at 2 customers: by id
    assert model.recommend(["B"], 2) == ["A", "C"]


def test_lift_by_hand() -> None:
    model = ProductAffinity("lift", min_pair_customers=1).fit(PAIRS)
    assert weight(model, "A", "B") == pytest.approx(4 / 3)
    assert weight(model, "B", "C") == pytest.approx(1.0)
    # A pair needs min_pair_customers customers in common: BC (1 customer) drops out at 2.
    strict = ProductAffinity("lift", min_pair_customers=2).fit(PAIRS)
    assert weight(strict, "B", "C") == 0.0 and weight(strict, "A", "B") == pytest.approx(4 / 3)


def test_neighbours_keep_the_most_similar_ties_by_id() -> None:
    model = ProductAffinity("cosine", neighbours=1).fit(PAIRS)
    a = model.product_index_["A"]
    assert model.neighbour_index_[a].tolist() == [model.product_index_["B"]]  # B and C tie: B
    assert model.neighbour_index_[model.product_index_["D"]].tolist() == [-1]  # nothing similar


def test_excluded_products_are_never_recommended() -> None:
    model = ProductAffinity("cosine", exclude=["C"]).fit(PAIRS)
    assert model.recommend(["A"], 3) == ["B", "D"]
    assert model.recommend(["C"], 3) == ["A", "B", "D"]  # bought, it still points to its neighbours


def test_recommend_many_equals_one_by_one_and_pickles() -> None:
    model = ProductAffinity("cosine").fit(PAIRS)
    many = model.recommend_many(PAIRS, 2)
    assert many == {c: model.recommend(PAIRS.loc[PAIRS.customer_id == c, "product_id"], 2) for c in many}
    copy = pickle.loads(pickle.dumps(model))
    assert copy.recommend(["B"], 3) == ["A", "C", "D"]
    assert join_products(["A", "C"]) == "A|C" and join_products([]) is None


def test_refuses_unknown_methods_and_empty_input() -> None:
    with pytest.raises(ClvInputError, match="unknown method"):
        ProductAffinity("svd").fit(PAIRS)
    with pytest.raises(ClvInputError, match="no \\(customer, product\\) pairs"):
        ProductAffinity().fit(PAIRS.iloc[:0])
    with pytest.raises(ClvInputError, match="fit the model"):
        ProductAffinity().recommend(["A"], 1)


def test_same_answer_whatever_the_order_of_the_training_rows() -> None:
    rng = np.random.default_rng(3)
    shuffled = PAIRS.iloc[rng.permutation(len(PAIRS))]
    a, b = ProductAffinity().fit(PAIRS), ProductAffinity().fit(shuffled)
    np.testing.assert_array_equal(a.neighbour_index_, b.neighbour_index_)
    np.testing.assert_array_equal(a.neighbour_weight_, b.neighbour_weight_)
