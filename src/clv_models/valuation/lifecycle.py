"""Lifecycle stages: ``new``, ``growing``, ``mature``, ``at_risk``, ``churned`` (DESIGN.md §2).

Rules over tenure, frequency trend, P(alive) and churn probability, applied in this order (the
first that holds wins; thresholds in config ``[lifecycle]``, defaults in brackets):

1. ``new``      tenure ≤ ``new_max_tenure_days`` [90]: too early to judge anything else.
2. ``churned``  P(alive) < ``churned_max_p_alive`` [0.15] or churn probability ≥
                ``churned_min_churn_probability`` [0.9]: the customer has most likely left.
3. ``at_risk``  P(alive) < ``at_risk_max_p_alive`` [0.5] or churn probability ≥
                ``at_risk_min_churn_probability`` [0.6]: still here, probably leaving.
4. ``growing``  more orders in the last 180 days than in the 180 days before (a rising purchase
                rate), or tenure ≤ ``growing_max_tenure_days`` [180].
5. ``mature``   everyone else: established, steady or slowing but not at risk.

Both churn signals are used because they fail differently: BG/NBD's P(alive) is 1 for every
customer without a repeat purchase however long ago they bought, while the churn classifier sees
recency directly. A missing P(alive) (the purchase model is not identified, decisions D45) is no
evidence either way: the churn probability alone decides rules 2 and 3. Tenure is days since the first purchase; the order counts are point-in-time
features of :mod:`clv_models.features.churn` (``orders_180d``, ``orders_180_360d``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

STAGES = ("new", "growing", "mature", "at_risk", "churned")
INPUTS = ("T_days", "p_alive", "churn_probability", "orders_180d", "orders_180_360d")


def lifecycle_stage(
    table: pd.DataFrame,
    *,
    new_max_tenure_days: float = 90,
    churned_max_p_alive: float = 0.15,
    churned_min_churn_probability: float = 0.9,
    at_risk_max_p_alive: float = 0.5,
    at_risk_min_churn_probability: float = 0.6,
    growing_max_tenure_days: float = 180,
) -> np.ndarray:
    """Stage per customer (object array) by the rules of the module docstring.

    Keyword arguments are the fields of :class:`clv_models.config.LifecycleSettings` (pass
    ``**settings.lifecycle.model_dump()``).
    """
    missing = [c for c in INPUTS if c not in table.columns]
    if missing:
        raise ClvInputError(
            f"lifecycle stages need column(s) {', '.join(missing)}; the table has {', '.join(map(str, table.columns))}"
        )
    values: dict[str, np.ndarray] = {c: table[c].to_numpy(dtype=float) for c in INPUTS}
    for name, column in values.items():
        if name == "p_alive":  # missing when the purchase model is not identified: no evidence either way
            continue
        bad = ~np.isfinite(column)
        if bad.any():
            raise ClvInputError(f"lifecycle stages: {int(bad.sum())} row(s) have a missing '{name}'; score them first")
    tenure, p_alive, churn = values["T_days"], values["p_alive"], values["churn_probability"]
    rising = values["orders_180d"] > values["orders_180_360d"]
    conditions = [
        tenure <= new_max_tenure_days,
        (p_alive < churned_max_p_alive) | (churn >= churned_min_churn_probability),
        (p_alive < at_risk_max_p_alive) | (churn >= at_risk_min_churn_probability),
        rising | (tenure <= growing_max_tenure_days),
    ]
    return np.select(conditions, ["new", "churned", "at_risk", "growing"], default="mature").astype(object)


def lifecycle_from_settings(table: pd.DataFrame, settings: Any) -> np.ndarray:
    """:func:`lifecycle_stage` with :class:`clv_models.config.LifecycleSettings`."""
    return lifecycle_stage(table, **settings.model_dump())
