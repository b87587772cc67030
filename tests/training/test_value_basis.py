"""The value step of ``clv train`` without a whole training: ``value.ranker = "btyd_clv"`` trains
nothing, and a history too short for the value snapshots falls back to ``clv_h`` with a notice
(decisions D42). The trained paths are tested end to end in ``test_pipeline.py``."""

from __future__ import annotations

import types

import pytest

from clv_models.config import ColumnMap, ValidationSettings, load_settings
from clv_models.data.ingest import ingest
from clv_models.training.value_basis import LEGACY_BASIS, train_value_step


@pytest.fixture(scope="module")
def short_shop():
    from clv_models.datasets import simulate_orders

    # 150 days of orders: the value window needs 3 W + 30 days of history + 5 cutoff steps of 30 days.
    return simulate_orders(300, seed=4, profile="retail", days=150, future_days=0)


def test_btyd_clv_trains_nothing(short_shop) -> None:
    settings = load_settings(None, ['value.ranker="btyd_clv"'])
    step = train_value_step(None, None, settings)  # reads neither the orders nor the churn result
    assert step.ranker is None and step.basis == LEGACY_BASIS and step.result is None
    assert step.metrics == {} and step.notices == []
    assert step.tags["value_tier_basis"] == "clv_h" and "value.ranker" in step.choice


def test_a_history_too_short_for_value_snapshots_falls_back_to_clv_h(short_shop) -> None:
    settings = load_settings(None, [])
    churn = types.SimpleNamespace(dataset=settings.churn)  # the window w is then chosen by the churn rule
    with ingest(short_shop.orders, columns=ColumnMap.parse(short_shop.columns),
                validation=ValidationSettings(max_bad_share=1.0)) as ingested:  # fmt: skip
        step = train_value_step(ingested, churn, settings)
    assert step.ranker is None and step.basis == LEGACY_BASIS and step.metrics == {}
    assert len(step.notices) == 1 and "no value model" in step.notices[0] and "clv_h" in step.notices[0]
    assert "value_tier_basis" in step.tags and "could not be used" in step.reason
