"""Next best action: a configurable table from (value tier, churn risk, lifecycle stage, segment)
to an action code. The first rule whose given fields all match wins ('*' matches anything);
customers no rule matches get the default. Defaults (config ``[actions]``):

===========  ==========  =========  =========  ============================
value tier   churn risk  stage      segment    action
===========  ==========  =========  =========  ============================
high         high        *          *          personal_retention_outreach
high         low         *          *          vip_service_early_access
high         medium      *          *          loyalty_rewards
*            *           new        *          onboarding_second_purchase
*            *           *          sleeping   reactivation_offer
low          high        *          *          automated_win_back
*            *           churned    *          automated_win_back
medium       *           *          *          cross_sell_bundles
(default)                                      newsletter
===========  ==========  =========  =========  ============================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

KEYS = ("value_tier", "churn_risk", "lifecycle_stage", "segment")


def next_best_action(table: pd.DataFrame, rules: Sequence[Any], default: str) -> np.ndarray:
    """Action per customer. ``rules`` are :class:`clv_models.config.ActionRule` objects (or
    mappings with the same keys); a rule only needs the columns it does not wildcard."""
    result = np.full(len(table), None, dtype=object)
    open_rows = np.ones(len(table), dtype=bool)
    columns: dict[str, np.ndarray] = {}  # each key column converted once, not once per rule
    for position, rule in enumerate(rules, start=1):
        fields = rule if isinstance(rule, dict) else rule.model_dump()
        match = open_rows.copy()
        for key in KEYS:
            wanted = fields.get(key, "*")
            if wanted == "*":
                continue
            if key not in table.columns:
                raise ClvInputError(
                    f"next best action: rule {position} matches on '{key}' but the table has no such column"
                )
            if key not in columns:
                columns[key] = table[key].to_numpy(dtype=object)
            match &= columns[key] == wanted
        result[match] = fields["action"]
        open_rows &= ~match
    result[open_rows] = default
    return result


def action_table(rules: Sequence[Any], default: str) -> pd.DataFrame:
    """The rule table as a frame (for reports), the default as a last all-wildcard row."""
    import pandas as pd

    rows = [
        {key: (r if isinstance(r, dict) else r.model_dump()).get(key, "*") for key in (*KEYS, "action")} for r in rules
    ]
    rows.append({**dict.fromkeys(KEYS, "*"), "action": default})
    return pd.DataFrame(rows)
