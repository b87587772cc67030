"""KMeans segmenter: k recovered, names that hold for their members (checks over the members, not
the centroid), neutral names where no name holds, stable across seeds, retrains and row order."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

from clv_models.config import SEGMENT_NAMES
from clv_models.errors import ClvInputError
from clv_models.models._segment_names import (
    NamingContext,
    NamingInputs,
    assign_names,
    check_names,
    eligibility,
    member_statistics,
    neutral_names,
)
from clv_models.models.segments import CustomerSegmenter, SegmentNamingWarning, _matrix
from tests.segments_data import (
    GROUPS,
    SHOP_WITH_LOST,
    SHOP_WITH_SLEEPING,
    grouped_customers,
    simulated_customers,
)


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


def test_retraining_keeps_previous_names_only_where_their_checks_hold(
    customers: pd.DataFrame, fitted: CustomerSegmenter
) -> None:
    # A previous model with other names: the at_risk group's members also pass sleeping's checks,
    # so the rules would not choose 'sleeping' but it may be kept, which proves it comes from
    # centroid matching. 'core' and 'lost' swapped contradict their members and are not kept.
    previous = pickle.loads(pickle.dumps(fitted))
    names = list(previous.names_)
    at_risk, lost, core = names.index("at_risk"), names.index("lost"), names.index("core")
    names[at_risk], names[lost], names[core] = "sleeping", "core", "lost"
    previous.names_ = names
    fresh = grouped_customers(seed=99)  # new draw of the same population
    retrained = CustomerSegmenter(seed=11).fit(fresh, previous=previous)
    expected = {"core": "core", "new": "new", "at_risk": "sleeping", "lost": "lost"}
    assert (retrained.predict(fresh) == fresh["truth"].map(expected).to_numpy()).all()
    assert sorted(retrained.names_[c] for c in retrained.inherited_) == ["new", "sleeping"]
    own = retrained.name_checks_[retrained.name_checks_["assigned"]]
    assert own["passed"].all() and set(own["segment"]) == set(retrained.names_)


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


@pytest.mark.parametrize(
    ("shop", "expected"),
    [(SHOP_WITH_LOST, {"core", "new", "lost"}), (SHOP_WITH_SLEEPING, {"core", "new", "sleeping"})],
    ids=["lost", "sleeping"],
)
@pytest.mark.parametrize("churn", ["probability", "recency proxy"])
def test_simulated_shops_get_the_names_of_their_groups(shop: dict, expected: set, churn: str) -> None:
    # Loyal frequent buyers, customers whose first purchase is recent, and customers who stopped
    # buying (a year and more ago: lost; four to eight months ago: sleeping), simulated from a
    # purchase process; with the churn model's probability or, without it, the recency proxy.
    customers = simulated_customers(shop, seed=3)
    if churn == "recency proxy":
        customers = customers.drop(columns="churn_probability")
    segmenter = CustomerSegmenter(n_init=3, seed=0).fit(customers)
    assert set(segmenter.names_) == expected and segmenter.neutral_ == []
    assert (segmenter.predict(customers) == customers["truth"].to_numpy()).all()
    statistic = "mean_churn_probability" if churn == "probability" else "share_overdue"
    assert segmenter.naming_context_["churn_statistic"] == statistic
    own = segmenter.name_checks_[segmenter.name_checks_["assigned"]]
    assert own["passed"].all() and (own["statistic"] == statistic).any()


# Loyal buyers who buy very often but last bought ~60 days ago (their rhythm), with the lowest
# churn; recent buyers of lower value with more churn; and lapsed customers.
LOYAL_BUT_SILENT = {
    "steady": (60.0, 30.0, 100.0, 2000.0, 1000.0, 0.12),
    "recent": (5.0, 8.0, 80.0, 1500.0, 500.0, 0.30),
    "lapsed": (400.0, 0.2, 30.0, 5.0, 700.0, 0.90),
}


def test_frequent_buyers_with_low_churn_are_not_called_at_risk() -> None:
    customers = grouped_customers(per_group=300, seed=5, groups=LOYAL_BUT_SILENT)
    segmenter = CustomerSegmenter(n_init=3, seed=0).fit(customers)
    clusters = segmenter.predict_cluster(customers)
    steady = int(np.bincount(clusters[customers["truth"].to_numpy() == "steady"]).argmax())
    # A rule on centroid profiles alone (the best total profile score) calls them at_risk ...
    rows, cols = linear_sum_assignment(segmenter.name_scores_.to_numpy(), maximize=True)
    by_profile = dict(zip(rows.tolist(), segmenter.name_scores_.columns[cols], strict=True))
    assert by_profile[steady] == "at_risk"
    # ... but their churn is below the base's, so at_risk's churn check fails and they are core.
    assert segmenter.names_[steady] == "core"
    assert "at_risk" not in segmenter.names_
    checks = segmenter.name_checks_.set_index(["cluster", "name", "check"])
    churn = checks.loc[(steady, "at_risk", "mean_churn_probability > base")]
    assert not churn["passed"] and churn["members"] == pytest.approx(0.12, abs=0.02)
    assert churn["reference_value"] == pytest.approx(customers["churn_probability"].mean())
    named = dict(zip(customers["truth"], segmenter.predict(customers), strict=True))
    assert named == {"steady": "core", "recent": "potential", "lapsed": "lost"}


# A fourth group that fits no definition: silent for 40 days (within the shop's rhythm), churn
# below the base's, fewer than one repeat purchase, long tenure, low value.
WITH_A_MIDDLE = {
    "core": (5.0, 20.0, 80.0, 3000.0, 700.0, 0.10),
    "potential": (10.0, 5.0, 30.0, 400.0, 500.0, 0.25),
    "middle": (40.0, 0.5, 30.0, 50.0, 400.0, 0.30),
    "lost": (600.0, 0.1, 25.0, 3.0, 900.0, 0.95),
}


def test_a_cluster_that_fits_no_definition_gets_a_neutral_name() -> None:
    customers = grouped_customers(per_group=300, seed=8, groups=WITH_A_MIDDLE)
    with pytest.warns(SegmentNamingWarning, match="neutral names"):
        segmenter = CustomerSegmenter(k_min=4, k_max=4, seed=0).fit(customers)
    named = dict(zip(customers["truth"], segmenter.predict(customers), strict=True))
    assert named == {"core": "core", "potential": "potential", "middle": "active_occasional_low_value", "lost": "lost"}
    middle = segmenter.names_.index("active_occasional_low_value")
    assert segmenter.neutral_ == [middle]
    assert not segmenter.name_eligible_.loc[middle].any()
    checks = segmenter.name_checks_
    own = checks[checks["assigned"] & (checks["cluster"] == middle)]
    assert own["check"].tolist() == [
        "share_overdue < 0.5",
        "mean_churn_probability < base",
        "median_frequency ≤ base",
        "median_clv ≤ base",
    ]
    assert own["passed"].all()
    assert segmenter.centroids_.loc[middle, "segment"] == "active_occasional_low_value"


def test_a_k_whose_clusters_can_all_be_named_is_preferred() -> None:
    # k = 4 separates the groups best but leaves one neutral; k = 3 can be named throughout.
    customers = grouped_customers(per_group=300, seed=8, groups=WITH_A_MIDDLE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SegmentNamingWarning)
        chosen = CustomerSegmenter(n_init=3, seed=0).fit(customers)
    selection = chosen.selection_.set_index("k")
    assert selection["silhouette"].idxmax() == 4 and not selection.loc[4, "nameable"]
    assert chosen.k_ == 3 and selection.loc[3, "nameable"] and chosen.neutral_ == []


# A small base by hand: days since last purchase, repeat purchases, predicted value, mean order
# value, tenure, churn probability; cluster of each customer.
HAND = pd.DataFrame(
    [
        (5, 4, 300, 50, 400, 0.10, 0),
        (10, 6, 500, 60, 500, 0.20, 0),
        (20, 2, 100, 40, 300, 0.30, 0),
        (30, 0, 20, 30, 30, 0.60, 1),
        (40, 0, 10, 20, 40, 0.50, 1),
        (60, 1, 30, 25, 80, 0.40, 1),
        (400, 0, 1, 10, 400, 0.90, 2),
        (500, 1, 2, 15, 700, 0.95, 2),
        (300, 0, 0, 20, 300, 0.85, 2),
        (700, 2, 3, 30, 900, 0.99, 2),
    ],
    columns=["days_since_last", "frequency", "clv_h", "avg_order_value", "T_days", "churn_probability", "cluster"],
).astype(float)


def _hand_naming(churn: bool) -> tuple[pd.DataFrame, NamingContext]:
    inputs = NamingInputs.from_table(HAND if churn else HAND.drop(columns="churn_probability"), _matrix)
    context = NamingContext.of(inputs, new_max_tenure_days=90, lost_min_days_since_last=365)
    return member_statistics(inputs, HAND["cluster"].to_numpy(dtype=int), 3, context), context


def test_the_checks_equal_a_hand_computation() -> None:
    statistics, context = _hand_naming(churn=True)
    # Repeat buyers' gaps (tenure − days since last) / repeat purchases: 98.75, 81.67, 140, 20,
    # 200, 100: median 99.375 days; overdue after twice that.
    assert context.typical_gap_days == pytest.approx(99.375)
    assert context.overdue_days == pytest.approx(198.75)
    expected = pd.DataFrame(
        {
            "customers": [3, 3, 4, 10],
            "mean_churn_probability": [0.2, 0.5, 0.9225, 0.579],
            "share_overdue": [0.0, 0.0, 1.0, 0.4],
            "share_new": [0.0, 1.0, 0.0, 0.3],
            "median_days_since_last": [10.0, 40.0, 450.0, 50.0],
            "median_frequency": [4.0, 0.0, 0.5, 1.0],
            "median_clv": [300.0, 20.0, 1.5, 15.0],
            "median_avg_order_value": [50.0, 25.0, 17.5, 27.5],
            "median_tenure_days": [400.0, 40.0, 550.0, 350.0],
        },
        index=pd.Index([0, 1, 2, "base"], name="cluster", dtype=object),
    )
    pd.testing.assert_frame_equal(statistics, expected, check_index_type=False)
    checks = check_names(statistics, context).set_index(["cluster", "name", "check"])
    by_hand = {
        (0, "core", "mean_churn_probability < base"): (0.2, 0.579, True),
        (0, "core", "median_frequency > base"): (4.0, 1.0, True),
        (0, "core", "median_clv > base"): (300.0, 15.0, True),
        (0, "core", "share_overdue < 0.5"): (0.0, 0.5, True),
        (1, "new", "share_new ≥ 0.5"): (1.0, 0.5, True),
        (1, "potential", "median_frequency ≥ 1"): (0.0, 1.0, False),
        (1, "sleeping", "mean_churn_probability > base"): (0.5, 0.579, False),
        (2, "at_risk", "median_frequency > base"): (0.5, 1.0, False),
        (2, "sleeping", "median_days_since_last > base"): (450.0, 50.0, True),
        (2, "lost", "median_days_since_last ≥ lost_min_days_since_last"): (450.0, 365.0, True),
        (2, "lost", "share_overdue ≥ 0.5"): (1.0, 0.5, True),
    }
    for key, (members, reference, passed) in by_hand.items():
        row = checks.loc[key]
        assert (row["members"], row["reference_value"], row["passed"]) == (
            pytest.approx(members),
            pytest.approx(reference),
            passed,
        ), key
    assert len(checks) == 3 * 17  # every check of every name for every cluster
    fits = eligibility(check_names(statistics, context), 3)
    assert {c: [n for n in SEGMENT_NAMES if fits.loc[c, n]] for c in range(3)} == {
        0: ["core", "potential"],
        1: ["new"],
        2: ["sleeping", "lost"],
    }
    # Without churn probabilities the churn checks read the share of overdue customers.
    statistics, context = _hand_naming(churn=False)
    assert context.churn_statistic == "share_overdue" and statistics["mean_churn_probability"].isna().all()
    checks = check_names(statistics, context).set_index(["cluster", "name", "check"])
    assert checks.loc[(2, "sleeping", "share_overdue > base"), ["members", "reference_value"]].tolist() == [1.0, 0.4]
    assert not checks.loc[(0, "at_risk", "share_overdue > base"), "passed"]


def test_a_name_goes_only_where_its_checks_hold() -> None:
    coordinates = np.array([[-1.0, 1.0, 0.5, 1.0, 0.0], [1.0, -1.0, -0.5, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    eligible = pd.DataFrame(False, index=range(3), columns=list(SEGMENT_NAMES))
    eligible.loc[0, ["core", "potential"]] = True
    eligible.loc[1, ["sleeping", "lost"]] = True
    eligible.loc[2, "core"] = True
    # Cluster 0's best score is core, but only then can cluster 2 be named: named clusters first.
    names, scores = assign_names(coordinates, [None, None, None], eligible)
    assert names == ["potential", "lost", "core"] and scores.loc[0, "core"] > scores.loc[0, "potential"]
    eligible.loc[1, "lost"] = False
    assert assign_names(coordinates, [None, None, None], eligible)[0] == ["potential", "sleeping", "core"]
    eligible.loc[1, :] = False
    assert assign_names(coordinates, [None, None, None], eligible)[0] == ["potential", None, "core"]
    # Fixed (inherited) names are kept and not handed out again.
    assert assign_names(coordinates, [None, None, "potential"], eligible)[0] == ["core", None, "potential"]


def test_neutral_names_are_unique_and_deterministic() -> None:
    statistics, context = _hand_naming(churn=True)
    # Three copies of cluster 1, one with a longer tenure: equal words get the tie words, then a suffix.
    copies = pd.concat([statistics.loc[[1, 1, 1]].set_axis([0, 1, 2]), statistics.loc[["base"]]])
    copies.loc[2, "median_tenure_days"] = 500.0
    names = {c: name for c, (name, _) in neutral_names(copies, [2, 1, 0], context, taken=["new"]).items()}
    assert names == {
        0: "active_occasional_high_value_newer_small_basket",
        1: "active_occasional_high_value_newer_small_basket_2",
        2: "active_occasional_high_value_older",
    }
    assert neutral_names(copies, [0, 1, 2], context)[1][0] == names[1]


def test_the_stored_checks_describe_the_members_scoring_assigns(
    customers: pd.DataFrame, fitted: CustomerSegmenter
) -> None:
    clusters = fitted.predict_cluster(customers)
    inputs = NamingInputs.from_table(customers, _matrix)
    context = NamingContext(**fitted.naming_context_)
    statistics = member_statistics(inputs, clusters, fitted.k_, context)
    pd.testing.assert_frame_equal(fitted.member_statistics_.drop(columns="segment"), statistics)
    stored = fitted.name_checks_[fitted.name_checks_["name"].isin(SEGMENT_NAMES)]
    recomputed = check_names(statistics, context)
    pd.testing.assert_frame_equal(
        stored.drop(columns=["segment", "assigned"]).sort_values(["cluster", "name", "check"]).reset_index(drop=True),
        recomputed.sort_values(["cluster", "name", "check"]).reset_index(drop=True),
    )
    assert fitted.member_statistics_["customers"].iloc[:-1].tolist() == np.bincount(clusters).tolist()
    assert fitted.name_checks_.loc[fitted.name_checks_["assigned"], "passed"].all()


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
