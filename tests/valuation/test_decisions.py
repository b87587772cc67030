"""Churn-risk bands, lifecycle rules on hand-made customers, next best action, labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv_models.config import ActionRule, load_settings
from clv_models.errors import ClvInputError
from clv_models.valuation.actions import action_table, next_best_action
from clv_models.valuation.labels import apply_labels
from clv_models.valuation.lifecycle import lifecycle_from_settings, lifecycle_stage
from clv_models.valuation.risk import churn_risk_band


def test_risk_bands_at_their_boundaries() -> None:
    bands = churn_risk_band([0.0, 0.2999, 0.3, 0.5999, 0.6, 1.0])
    assert list(bands) == ["low", "low", "medium", "medium", "high", "high"]
    assert list(churn_risk_band([0.5], high=0.5, medium=0.2)) == ["high"]
    with pytest.raises(ClvInputError, match="1 churn probabilit"):
        churn_risk_band([0.1, np.nan])
    with pytest.raises(ClvInputError, match="medium < high"):
        churn_risk_band([0.1], high=0.3, medium=0.5)


# One hand-made customer per rule (defaults: new ≤ 90 d; churned P(alive) < 0.15 or churn ≥ 0.9;
# at risk P(alive) < 0.5 or churn ≥ 0.6; growing: rising orders or tenure ≤ 180 d).
CUSTOMERS = pd.DataFrame(
    [
        # T_days, p_alive, churn, orders last 180 d, orders 180-360 d, expected stage
        (30, 0.05, 0.95, 1, 0, "new"),  # new wins even with churn signals: too early to judge
        (90, 0.90, 0.10, 2, 0, "new"),  # boundary: tenure 90 is still new
        (400, 0.10, 0.20, 0, 3, "churned"),  # P(alive) below 0.15
        (400, 0.90, 0.90, 0, 3, "churned"),  # churn probability at 0.9
        (400, 0.40, 0.20, 5, 1, "at_risk"),  # P(alive) below 0.5, even though rising
        (400, 0.90, 0.60, 5, 1, "at_risk"),  # churn probability at 0.6
        (400, 0.90, 0.20, 4, 2, "growing"),  # rising purchase rate
        (150, 0.90, 0.20, 1, 1, "growing"),  # young (≤ 180 d), flat
        (400, 0.90, 0.20, 2, 2, "mature"),  # established, flat
        (400, 0.90, 0.59, 1, 4, "mature"),  # slowing but not at risk
    ],
    columns=["T_days", "p_alive", "churn_probability", "orders_180d", "orders_180_360d", "expected"],
)


def test_lifecycle_rules_on_hand_made_customers() -> None:
    stages = lifecycle_stage(CUSTOMERS)
    assert list(stages) == CUSTOMERS["expected"].tolist()
    settings = load_settings(None, ["lifecycle.new_max_tenure_days=10", "lifecycle.at_risk_min_churn_probability=0.5"])
    stages = lifecycle_from_settings(CUSTOMERS, settings.lifecycle)
    assert stages[1] == "growing" and stages[0] == "churned" and stages[9] == "at_risk"


def test_lifecycle_needs_its_inputs() -> None:
    with pytest.raises(ClvInputError, match="orders_180_360d"):
        lifecycle_stage(CUSTOMERS.drop(columns="orders_180_360d"))
    broken = CUSTOMERS.copy()
    broken.loc[2, "churn_probability"] = np.nan
    with pytest.raises(ClvInputError, match="1 row.*'churn_probability'"):
        lifecycle_stage(broken)


def test_a_missing_p_alive_leaves_the_churn_probability_to_decide() -> None:
    # P(alive) is null when the purchase model is not identified (decisions D45).
    unknown = CUSTOMERS.assign(p_alive=np.nan)
    # By hand: row 2 was churned on P(alive) 0.10 alone, now flat (0 vs 3 orders) and 400 days old;
    # row 4 was at risk on P(alive) 0.40 alone, now rising (5 vs 1); every churn rule still holds.
    expected = CUSTOMERS["expected"].tolist()
    expected[2], expected[4] = "mature", "growing"
    assert list(lifecycle_stage(unknown)) == expected


def test_default_actions() -> None:
    settings = load_settings()
    table = pd.DataFrame(
        [
            ("high", "high", "at_risk", "core", "personal_retention_outreach"),
            ("high", "low", "mature", "core", "vip_service_early_access"),
            ("high", "medium", "new", "new", "loyalty_rewards"),
            ("low", "low", "new", "new", "onboarding_second_purchase"),
            ("medium", "high", "at_risk", "sleeping", "reactivation_offer"),
            ("low", "high", "at_risk", "lost", "automated_win_back"),
            ("medium", "medium", "churned", "lost", "automated_win_back"),
            ("medium", "low", "mature", "potential", "cross_sell_bundles"),
            ("low", "medium", "mature", "potential", "newsletter"),
        ],
        columns=["value_tier", "churn_risk", "lifecycle_stage", "segment", "expected"],
    )
    actions = next_best_action(table, settings.actions.rules, settings.actions.default)
    assert list(actions) == table["expected"].tolist()
    assert action_table(settings.actions.rules, settings.actions.default).iloc[-1]["action"] == "newsletter"


def test_neutral_segment_names_fall_through_to_the_other_rules() -> None:
    # A segment with a neutral (descriptive) name matches no segment rule: its customers get the
    # action of their tier, risk band and stage, or the default; labels leave the name as it is.
    settings = load_settings()
    neutral = "lapsed_occasional_low_value"
    table = pd.DataFrame(
        [
            ("high", "high", "at_risk", neutral, "personal_retention_outreach"),
            ("low", "low", "new", neutral, "onboarding_second_purchase"),
            ("medium", "high", "at_risk", "sleeping", "reactivation_offer"),
            ("medium", "high", "at_risk", neutral, "cross_sell_bundles"),
            ("low", "high", "mature", neutral, "automated_win_back"),
            ("low", "low", "mature", neutral, "newsletter"),
        ],
        columns=["value_tier", "churn_risk", "lifecycle_stage", "segment", "expected"],
    )
    actions = next_best_action(table, settings.actions.rules, settings.actions.default)
    assert list(actions) == table["expected"].tolist()
    assert apply_labels(table, "zh")["segment"].tolist()[:2] == [neutral, neutral]


def test_custom_action_rules_from_toml(tmp_path) -> None:
    (tmp_path / "run.toml").write_text(
        '[actions]\ndefault = "nothing"\n'
        '[[actions.rules]]\nsegment = "core"\naction = "thank_you_note"\n'
        '[[actions.rules]]\nvalue_tier = "low"\nchurn_risk = "high"\naction = "no_spend"\n'
    )
    settings = load_settings(tmp_path / "run.toml")
    assert settings.actions.rules == (
        ActionRule(segment="core", action="thank_you_note"),
        ActionRule(value_tier="low", churn_risk="high", action="no_spend"),
    )
    table = pd.DataFrame(
        {
            "value_tier": ["low", "low", "high"],
            "churn_risk": ["high", "low", "high"],
            "segment": ["core", "lost", "lost"],
        }
    )
    assert list(next_best_action(table, settings.actions.rules, settings.actions.default)) == [
        "thank_you_note",
        "nothing",
        "nothing",
    ]
    with pytest.raises(ClvInputError, match="rule 1 matches on 'segment'"):
        next_best_action(table.drop(columns="segment"), settings.actions.rules, "x")


def test_chinese_labels_and_overrides() -> None:
    table = pd.DataFrame(
        {
            "value_tier": ["high", "low"],
            "churn_risk": ["high", "low"],
            "segment": ["core", "sleeping"],
            "lifecycle_stage": ["new", "at_risk"],
            "next_best_action": ["vip_service_early_access", "custom_action"],
            "clv_h": [1.0, 2.0],
        }
    )
    zh = apply_labels(table, "zh")
    assert zh["value_tier"].tolist() == ["高价值", "低价值"]
    assert zh["segment"].tolist() == ["核心客户", "沉睡客户"]
    assert zh["lifecycle_stage"].tolist() == ["新客期", "衰退期"]
    assert zh["next_best_action"].tolist() == ["VIP服务与新品优先", "custom_action"]
    assert zh["clv_h"].tolist() == [1.0, 2.0] and table["value_tier"].tolist() == ["high", "low"]
    en = apply_labels(table, "en", {"segment.core": "Champions", "high": "HIGH"})
    assert en["segment"].tolist() == ["Champions", "sleeping"]
    assert en["value_tier"].tolist() == ["HIGH", "low"] and en["churn_risk"].tolist() == ["HIGH", "low"]
    settings = load_settings(None, ["labels.language=zh"])
    assert settings.labels.language == "zh"
