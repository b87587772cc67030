"""Synthetic customers in well-separated behaviour groups with a known segment name each."""

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


def grouped_customers(per_group: int = 400, seed: int = 0, groups: dict | None = None) -> pd.DataFrame:
    """Customers drawn log-normally (σ = 0.15) around each group's centre; ``truth`` is the name."""
    rng = np.random.default_rng(seed)
    frames = []
    for name, centre in (groups or GROUPS).items():
        values = np.exp(np.log1p(centre) + rng.normal(0.0, 0.15, size=(per_group, len(centre)))) - 1
        frame = pd.DataFrame(values, columns=["days_since_last", "frequency", "avg_order_value", "clv_h", "T_days"])
        frame["truth"] = name
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "customer_id", [f"c{i:05d}" for i in range(len(table))])
    return table
