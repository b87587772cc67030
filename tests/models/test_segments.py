"""KMeans segmenter: k recovered, names from centroids, stable across seeds, retrains and row order."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from clv_models.errors import ClvInputError
from clv_models.models._segment_names import INELIGIBLE, assign_names
from clv_models.models.segments import CustomerSegmenter, SegmentNamingWarning
from tests.segments_data import GROUPS, grouped_customers


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return grouped_customers()


@pytest.fixture(scope="module")
def fitted(customers: pd.DataFrame) -> CustomerSegmenter:
    return CustomerSegmenter(seed=1).fit(customers)


def test_k_is_recovered_and_every_group_gets_its_name(customers: pd.DataFrame, fitted: CustomerSegmenter) -> None:
    assert fitted.k_ == len(GROUPS)
    assert sorted(fitted.names_) == sorted(GROUPS)
    assert (fitted.predict(customers) == customers["truth"].to_numpy()).all()
    best = fitted.selection_.loc[fitted.selection_["silhouette"].idxmax(), "k"]
    assert best == len(GROUPS) and list(fitted.selection_["k"]) == [3, 4, 5, 6]
    # Centroids back in original units lie near the generating centres.
    centroids = fitted.centroids_.set_index("segment")
    for name, (days, _, order_value, clv, _) in GROUPS.items():
        assert centroids.loc[name, "days_since_last"] == pytest.approx(days, rel=0.1)
        assert centroids.loc[name, "avg_order_value"] == pytest.approx(order_value, rel=0.1)
        assert centroids.loc[name, "clv_h"] == pytest.approx(clv, rel=0.1)
        assert centroids.loc[name, "customers"] == 400


def test_names_do_not_depend_on_the_seed_or_the_row_order(customers: pd.DataFrame, fitted: CustomerSegmenter) -> None:
    reference = fitted.predict(customers)
    for seed in (0, 7, 12345):
        other = CustomerSegmenter(seed=seed).fit(customers)
        assert (other.predict(customers) == reference).all()
    shuffled = customers.sample(frac=1.0, random_state=3).reset_index(drop=True)
    other = CustomerSegmenter(seed=5).fit(shuffled)
    np.testing.assert_allclose(other.cluster_centers_, fitted.cluster_centers_, atol=1e-9)
    assert other.names_ == fitted.names_


def test_retraining_with_a_previous_model_inherits_its_names_by_centroid(
    customers: pd.DataFrame, fitted: CustomerSegmenter
) -> None:
    # A previous model whose names were deliberately permuted: the rules would never give these
    # names, so finding them again proves they come from centroid matching, not from indices.
    previous = pickle.loads(pickle.dumps(fitted))
    previous.names_ = previous.names_[1:] + previous.names_[:1]
    fresh = grouped_customers(seed=99)  # new draw of the same population
    retrained = CustomerSegmenter(seed=11).fit(fresh, previous=previous)
    assert retrained.inherited_ == list(range(len(GROUPS)))
    expected = dict(zip(fitted.names_, previous.names_, strict=True))
    assert (retrained.predict(fresh) == fresh["truth"].map(expected).to_numpy()).all()


def test_a_new_behaviour_group_gets_a_free_name_while_old_ones_carry_over(fitted: CustomerSegmenter) -> None:
    groups = {**GROUPS, "sleeping": (250.0, 0.1, 250.0, 10.0, 250.0)}
    fresh = grouped_customers(seed=4, groups=groups)
    retrained = CustomerSegmenter(seed=2, keep_previous_k=False).fit(fresh, previous=fitted)
    assert retrained.k_ == 5
    assert (retrained.predict(fresh) == fresh["truth"].to_numpy()).all()
    assert len(retrained.inherited_) == 4


def test_one_customer_alone_gets_the_segment_it_gets_in_the_batch(
    customers: pd.DataFrame, fitted: CustomerSegmenter
) -> None:
    batch = fitted.predict(customers)
    for row in (0, 401, 1203, 1599):
        assert fitted.predict(customers.iloc[[row]])[0] == batch[row]


def test_minibatch_kmeans_above_the_threshold(customers: pd.DataFrame) -> None:
    segmenter = CustomerSegmenter(minibatch_threshold=1000, seed=3).fit(customers)
    assert segmenter.k_ == 4
    assert (segmenter.predict(customers) == customers["truth"].to_numpy()).all()


def test_fitted_model_pickles_and_holds_no_training_rows(customers: pd.DataFrame, fitted: CustomerSegmenter) -> None:
    blob = pickle.dumps(fitted)
    assert len(blob) < 20_000
    assert (pickle.loads(blob).predict(customers) == fitted.predict(customers)).all()


def test_naming_rules_need_absolute_evidence() -> None:
    # One silent, low-value cluster: by z-scores alone it is the most 'lost', but 120 days of
    # silence is sleeping, not lost (lost needs a year).
    coordinates = np.array([[-1.0, 1.0, 0.5, 1.0, 0.0], [1.0, -1.0, -0.5, -1.0, 0.0]])
    centroids = pd.DataFrame(
        {"days_since_last": [10.0, 120.0], "frequency": [5.0, 0.2], "T_days_median": [500.0, 500.0]}
    )
    names, scores = assign_names(coordinates, [None, None], centroids)
    assert names == ["core", "sleeping"]
    assert scores.loc[1, "lost"] < INELIGIBLE / 2
    centroids.loc[1, "days_since_last"] = 400.0
    assert assign_names(coordinates, [None, None], centroids)[0] == ["core", "lost"]
    # Fixed (inherited) names are kept and not handed out again.
    assert assign_names(coordinates, [None, "core"], centroids)[0][1] == "core"
    assert assign_names(coordinates, [None, "core"], centroids)[0][0] != "core"


def test_unnameable_segmentations_are_avoided_or_warned() -> None:
    # Only long-silent one-time buyers: 'sleeping' and 'lost' are the only eligible names, so a
    # third segment cannot be named.
    silent = grouped_customers(
        seed=2, groups={"a": (500.0, 0.0, 20.0, 2.0, 600.0), "b": (700.0, 0.0, 200.0, 8.0, 800.0)}
    )
    chosen = CustomerSegmenter(k_min=2, k_max=4, seed=0).fit(silent)
    assert chosen.k_ == 2 and sorted(chosen.names_) == ["lost", "sleeping"]
    assert chosen.selection_.set_index("k")["nameable"].to_dict() == {2: True, 3: False, 4: False}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forced = CustomerSegmenter(k_min=3, k_max=3, seed=0).fit(silent)
    assert forced.k_ == 3 and len(set(forced.names_)) == 3
    assert any(issubclass(w.category, SegmentNamingWarning) for w in caught)


def test_bad_input_is_a_clear_error(customers: pd.DataFrame, fitted: CustomerSegmenter) -> None:
    with pytest.raises(ClvInputError, match="lacks column.*clv_h"):
        fitted.predict(customers.drop(columns="clv_h"))
    broken = customers.copy()
    broken.loc[[3, 5], "avg_order_value"] = np.nan
    with pytest.raises(ClvInputError, match="2 row.*'avg_order_value'"):
        CustomerSegmenter().fit(broken)
    with pytest.raises(ClvInputError, match="cannot form 6 segments"):
        CustomerSegmenter().fit(customers.head(5))
    with pytest.raises(ClvInputError, match="k_max ≤ 6"):
        CustomerSegmenter(k_min=3, k_max=8).fit(customers)
