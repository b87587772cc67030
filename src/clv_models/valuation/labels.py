"""Display labels for the words of the scores table: English codes by default, a Chinese set
selectable in config (``[labels] language = "zh"``), and per-code overrides.

Codes (``high``, ``core``, ``at_risk`` …) are what the models, rules and metrics use; labels are
applied last, to the output table only, so a label change never changes a decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

LABELLED_COLUMNS = ("value_tier", "churn_risk", "segment", "lifecycle_stage", "next_best_action")

_ZH: dict[str, dict[str, str]] = {
    "value_tier": {"high": "高价值", "medium": "中价值", "low": "低价值"},
    "churn_risk": {"high": "高流失风险", "medium": "中流失风险", "low": "低流失风险"},
    "segment": {
        "core": "核心客户",
        "potential": "潜力客户",
        "new": "新客户",
        "at_risk": "预警客户",
        "sleeping": "沉睡客户",
        "lost": "流失客户",
    },
    "lifecycle_stage": {
        "new": "新客期",
        "growing": "成长期",
        "mature": "成熟期",
        "at_risk": "衰退期",
        "churned": "流失期",
    },
    "next_best_action": {
        "personal_retention_outreach": "专属客户经理挽留",
        "vip_service_early_access": "VIP服务与新品优先",
        "loyalty_rewards": "会员积分奖励",
        "onboarding_second_purchase": "新客引导复购",
        "reactivation_offer": "唤醒优惠",
        "automated_win_back": "自动化低成本召回",
        "cross_sell_bundles": "交叉销售组合",
        "newsletter": "常规资讯触达",
    },
}


def label_map(column: str, language: str = "en", overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Code → label for one column (codes without a label map to themselves).

    An override key is either a code (``core``: every column with that code) or
    ``column.code`` (``segment.at_risk``: that column only; wins over the plain code)."""
    if language not in ("en", "zh"):
        raise ValueError(f"unknown label language {language!r}; use 'en' or 'zh'")
    mapping = dict(_ZH.get(column, {})) if language == "zh" else {}
    overrides = overrides or {}
    mapping.update({code: label for code, label in overrides.items() if "." not in code})
    prefix = f"{column}."
    mapping.update({code[len(prefix) :]: label for code, label in overrides.items() if code.startswith(prefix)})
    return mapping


def apply_labels(table: pd.DataFrame, language: str = "en", overrides: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A copy of ``table`` with the labelled columns mapped to display labels."""
    out = table.copy()
    for column in LABELLED_COLUMNS:
        if column in out.columns:
            mapping = label_map(column, language, overrides)
            if mapping:
                out[column] = out[column].map(lambda code, m=mapping: m.get(code, code))
    return out
