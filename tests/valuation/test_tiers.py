"""Value tiers: cut points fitted once, a customer's tier independent of the batch; Pareto tables."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from clv_models.errors import ClvInputError
from clv_models.valuation.tiers import ValueTiers, customers_for_value_share, pareto_curve, pareto_table, tier_summary


def test_shares_give_the_quantile_cut_points() -> None:
    clv = np.arange(1.0, 101.0)  # 1 … 100
    tiers = ValueTiers().fit(clv)
    # numpy's linear quantile of 1..100: Q(p) = 1 + 99 p
    assert tiers.cut_points_ == {"high": pytest.approx(80.2), "medium": pytest.approx(50.5)}
    labels = tiers.predict(clv)
    assert (labels[80:] == "high").all() and (labels[50:80] == "medium").all() and (labels[:50] == "low").all()
    assert tiers.realised_shares_ == {"high": 0.2, "medium": 0.3, "low": 0.5}


def test_a_customer_alone_gets_the_tier_they_get_in_the_batch() -> None:
    rng = np.random.default_rng(0)
    training = rng.lognormal(3.0, 1.2, 5000)
    tiers = pickle.loads(pickle.dumps(ValueTiers(high_share=0.1, medium_share=0.4).fit(training)))
    batch = rng.lognormal(3.0, 1.2, 300)
    in_batch = tiers.predict(batch)
    alone = np.array([tiers.predict([value])[0] for value in batch])
    assert (in_batch == alone).all()
    # A batch of only big spenders is all high: cut points do not move with the batch.
    assert (tiers.predict(batch * 0 + training.max()) == "high").all()


def test_explicit_thresholds_and_ties_go_up() -> None:
    tiers = ValueTiers(high_threshold=100.0, medium_threshold=10.0).fit([1.0, 2.0])
    assert list(tiers.predict([100.0, 99.99, 10.0, 9.99])) == ["high", "medium", "medium", "low"]
    tied = ValueTiers().fit([5.0] * 10)
    assert tied.realised_shares_["high"] == 1.0


def test_bad_clv_is_a_clear_error() -> None:
    with pytest.raises(ClvInputError, match="2 customer.*CLV"):
        ValueTiers().fit([1.0, np.nan, np.inf, 3.0])
    with pytest.raises(ClvInputError, match="medium cut point"):
        ValueTiers(high_threshold=1.0, medium_threshold=2.0).fit([1.0])


def test_pareto_table_and_curve_by_hand() -> None:
    clv = np.array([5.0, 50.0, 10.0, 30.0, 5.0])  # total 100, best first 50, 30, 10, 5, 5
    table = pareto_table(clv, shares=(0.2, 0.4, 1.0)).set_index("top_customer_share")
    assert table.loc[0.2, "customers"] == 1 and table.loc[0.2, "value_share"] == pytest.approx(0.5)
    assert table.loc[0.4, "value_share"] == pytest.approx(0.8) and table.loc[0.4, "min_clv"] == 30.0
    assert table.loc[1.0, "value_share"] == pytest.approx(1.0)
    assert customers_for_value_share(clv, 0.8) == pytest.approx(0.4)
    assert customers_for_value_share(clv, 0.81) == pytest.approx(0.6)
    curve = pareto_curve(clv, points=6)
    assert curve["value_share"].tolist() == pytest.approx([0.0, 0.5, 0.8, 0.9, 0.95, 1.0])


def test_tier_summary_shares() -> None:
    clv = np.array([100.0, 50.0, 10.0, 5.0])
    tiers = np.array(["high", "medium", "low", "low"], dtype=object)
    summary = tier_summary(tiers, clv, revenue=[10.0, 10.0, 20.0, 60.0]).set_index("value_tier")
    assert summary["customers"].tolist() == [1, 1, 2]
    assert summary["value_share"].tolist() == pytest.approx([100 / 165, 50 / 165, 15 / 165])
    assert summary["revenue_share"].tolist() == pytest.approx([0.1, 0.1, 0.8])


def test_risk_bands_by_share_stay_a_minority_when_scores_tie() -> None:
    """An isotonic baseline gives step-shaped churn probabilities: 62.5 % of a base at one value.
    The `high` cut moves above the tie instead of putting everyone tied in `high`."""
    import numpy as np

    from clv_models.valuation.risk import ChurnRiskBands

    values = np.concatenate([np.full(625, 0.9195), np.linspace(0.05, 0.9, 300), np.linspace(0.93, 0.99, 75)])
    bands = ChurnRiskBands(high_share=0.15, medium_share=0.25).fit(values)
    assert bands.cut_points_["high"] == pytest.approx(0.93)
    assert bands.realised_shares_["high"] == pytest.approx(0.075)
    assert bands.realised_shares_["high"] <= 0.15
    smooth = np.linspace(0, 1, 1001)
    assert ChurnRiskBands().fit(smooth).realised_shares_["high"] == pytest.approx(0.15, abs=0.002)
