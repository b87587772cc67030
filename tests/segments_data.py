"""Synthetic customers with a known segment name each: well-separated behaviour groups
(:func:`grouped_customers`) and shops simulated from a purchase process (:func:`simulated_customers`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# name: (days since last purchase, repeat purchases, mean order value, CLV, tenure days)
GROUPS = {
    "core": (10.0, 20.0, 80.0, 3000.0, 700.0),
    "new": (15.0, 0.3, 40.0, 150.0, 40.0),
    "at_risk": (150.0, 12.0, 90.0, 600.0, 800.0),
    "lost": (600.0, 0.2, 25.0, 3.0, 900.0),
}
FEATURES = ["days_since_last", "frequency", "avg_order_value", "clv_h", "T_days"]


def grouped_customers(per_group: int = 400, seed: int = 0, groups: dict | None = None) -> pd.DataFrame:
    """Customers drawn log-normally (σ = 0.15) around each group's centre; ``truth`` is the name.

    A centre may have a sixth value, the group's churn probability: customers then get a
    ``churn_probability`` drawn logit-normally (σ = 0.3) around it."""
    rng = np.random.default_rng(seed)
    frames = []
    for name, centre in (groups or GROUPS).items():
        features = centre[:5]
        values = np.exp(np.log1p(features) + rng.normal(0.0, 0.15, size=(per_group, len(features)))) - 1
        frame = pd.DataFrame(values, columns=FEATURES)
        if len(centre) > 5:
            logit = np.log(centre[5] / (1 - centre[5])) + rng.normal(0.0, 0.3, size=per_group)
            frame["churn_probability"] = 1 / (1 + np.exp(-logit))
        frame["truth"] = name
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "customer_id", [f"c{i:05d}" for i in range(len(table))])
    return table


# name: (customers, first purchase (days ago, from, to), mean days between purchases while
#        active, stopped buying (days ago, from, to) or None while still active, mean order value)
SHOP_WITH_LOST = {
    "core": (500, (400.0, 900.0), 12.0, None, 60.0),
    "new": (300, (5.0, 60.0), 60.0, None, 40.0),
    "lost": (500, (600.0, 1000.0), 45.0, (400.0, 550.0), 30.0),
}
SHOP_WITH_SLEEPING = {
    "core": (500, (400.0, 900.0), 12.0, None, 60.0),
    "new": (300, (5.0, 60.0), 60.0, None, 40.0),
    "sleeping": (500, (300.0, 700.0), 30.0, (120.0, 250.0), 35.0),
}


def simulated_customers(shop: dict, seed: int = 0, churn_window: float = 90.0) -> pd.DataFrame:
    """Customers of a shop simulated from a purchase process; ``truth`` is the group's name.

    While active, a customer buys as a Poisson process at the group's rate; a group either still
    buys or stopped at a uniform time in the given window. The churn probability is the truth
    (no purchase in ``churn_window`` days: 1 for those who stopped, e^(−window/gap) otherwise)
    blurred as a model would blur it; the predicted value is a year of purchases at the rate,
    times the mean order value and the chance to stay."""
    rng = np.random.default_rng(seed)
    frames = []
    for name, (customers, (first_from, first_to), gap, stopped, order_value) in shop.items():
        first = rng.uniform(first_from, first_to, customers)
        stop = np.zeros(customers) if stopped is None else np.minimum(rng.uniform(*stopped, customers), first)
        span = first - stop
        repeats = rng.poisson(span / gap)
        # Purchases are uniform over the active span: the latest is at the minimum of `repeats` uniforms.
        latest = stop + span * rng.beta(1.0, np.maximum(repeats, 1))
        days_since_last = np.where(repeats > 0, latest, first)
        truth = np.ones(customers) if stopped is not None else np.full(customers, np.exp(-churn_window / gap))
        churn = np.clip(truth + rng.normal(0.0, 0.05, customers), 0.01, 0.99)
        spend = order_value * np.exp(rng.normal(0.0, 0.3, customers))
        frames.append(
            pd.DataFrame(
                {
                    "days_since_last": days_since_last,
                    "frequency": repeats.astype(float),
                    "avg_order_value": spend,
                    "clv_h": 365.0 / gap * spend * (1 - churn),
                    "T_days": first,
                    "churn_probability": churn,
                    "truth": name,
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "customer_id", [f"s{i:05d}" for i in range(len(table))])
    return table
