"""A known effect of an action, written into simulated orders: the truth an A/B evaluation must find.

:func:`inject_uplift` takes the canonical orders of a window after a cutoff (one row per order:
``customer_id``, ``order_id``, ``order_ts``, ``amount``), the customers an experiment covers with
their group, and an :class:`Uplift`; it returns the orders as they would have been had the
treatment worked, and the true effect on each outcome of
:data:`clv_models.experiments.effects.OUTCOMES`.

The effect, on treated customers only, over the window [start, end):

* with probability ``extra_order_probability`` the customer places one more order, of
  ``extra_order_value``, at a uniformly drawn second of the window;
* every order of the customer in the window is worth ``spend_multiplier`` times as much.

The true effect is the average over *all* covered customers (treated and control alike) of each
customer's expected outcome with the treatment minus without it, given the orders they placed
untreated (r = any order, R = their revenue in the window):

* retention: ``q · mean(1 − r)`` (an extra order only matters to a customer who bought nothing);
* orders: ``q`` per customer;
* revenue: ``(m − 1) · mean(R) + q · A``.

Under random assignment the difference of group means estimates exactly this (an unbiased
estimate of the sample's average treatment effect), so a 95 % interval should cover it in about
95 of 100 assignments (or more: the sample average's interval is conservative).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class Uplift:
    """What the treatment does to a treated customer (module docstring).

    Attributes:
        extra_order_probability: chance of one extra order in the window (0 to 1).
        extra_order_value: the extra order's amount, in the orders' currency.
        spend_multiplier: factor on the amounts of the customer's orders in the window (> 0).
    """

    extra_order_probability: float = 0.0
    extra_order_value: float = 0.0
    spend_multiplier: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.extra_order_probability <= 1.0:
            raise ClvInputError(
                f"Uplift: extra_order_probability={self.extra_order_probability}; it must be in [0, 1]"
            )
        if self.spend_multiplier <= 0.0:
            raise ClvInputError(f"Uplift: spend_multiplier={self.spend_multiplier}; it must be > 0")
        if self.extra_order_probability > 0.0 and self.extra_order_value <= 0.0:
            # ingestion quarantines orders worth 0: the extra orders would not be purchases
            raise ClvInputError(f"Uplift: extra_order_value={self.extra_order_value}; extra orders need a value > 0")

    @property
    def is_null(self) -> bool:
        return self.extra_order_probability == 0.0 and self.spend_multiplier == 1.0


def _member(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``values[i] in pool`` by a hash set: pandas' ``isin`` on Arrow-backed strings converts
    every pool value to a scalar, and ``np.isin`` on object arrays compares pairwise (both take
    seconds at 10,000 customers)."""
    import numpy as np

    members = set(pool.tolist())
    return np.fromiter((value in members for value in values), dtype=bool, count=len(values))


@dataclass(frozen=True)
class InjectedUplift:
    """:func:`inject_uplift`'s result: the orders with the effect, and the true effect per outcome."""

    orders: pd.DataFrame
    truth: dict[str, float]


def inject_uplift(
    orders: pd.DataFrame,
    groups: pd.DataFrame,
    uplift: Uplift,
    *,
    start: dt.datetime,
    end: dt.datetime,
    seed: int,
) -> InjectedUplift:
    """Apply ``uplift`` to the treated customers of ``groups`` in the window [start, end).

    Args:
        orders: canonical orders (``customer_id``, ``order_id``, ``order_ts``, ``amount``, other
            columns kept); orders outside the window and of other customers are left as they are.
        groups: the covered customers, one row each: ``customer_id``, ``experiment_group``
            (``treatment`` / ``control``).
        uplift: the effect.
        start, end: the window (naive UTC), e.g. the day after the scores' cutoff and the day
            after ``--until``.
        seed: seeds the extra orders' draws (``numpy.random.default_rng(seed)``).

    Returns:
        :class:`InjectedUplift`: a new frame (the input is not modified; extra orders appended
        with ids ``uplift-<n>`` and missing values in the other columns) and the true effect.
    """
    import numpy as np
    import pandas as pd

    from clv_models.experiments.assignment import TREATMENT

    if groups["customer_id"].duplicated().any():
        raise ClvInputError("inject_uplift: groups holds a customer twice")
    ids = groups["customer_id"].astype(str).to_numpy()
    treated = np.sort(ids[groups["experiment_group"].to_numpy(dtype=object) == TREATMENT])
    customer = orders["customer_id"].astype(str).to_numpy(dtype=object)
    ts = pd.to_datetime(orders["order_ts"]).to_numpy()
    in_window = (ts >= np.datetime64(start)) & (ts < np.datetime64(end))

    # The truth, from the untreated orders of every covered customer.
    covered = in_window & _member(customer, ids)
    window = pd.DataFrame({"customer_id": customer[covered], "amount": orders["amount"].to_numpy(dtype=float)[covered]})
    revenue = window.groupby("customer_id")["amount"].sum().reindex(ids, fill_value=0.0)
    bought = _member(ids, window["customer_id"].to_numpy(dtype=object))
    q, value, m = uplift.extra_order_probability, uplift.extra_order_value, uplift.spend_multiplier
    truth = {
        "retention": float(q * np.mean(~bought)),
        "orders": float(q),
        "revenue": float((m - 1.0) * revenue.to_numpy(dtype=float).mean() + q * value),
    }

    result = orders.copy()
    scaled = in_window & _member(customer, treated)
    if m != 1.0:
        # exact, no rounding to cents: the truth above is then exact too
        result.loc[scaled, "amount"] = result.loc[scaled, "amount"].to_numpy(dtype=float) * m
    rng = np.random.default_rng(seed)
    extra = treated[rng.random(len(treated)) < q]
    if len(extra):
        seconds = int((pd.Timestamp(end) - pd.Timestamp(start)).total_seconds())
        offsets = rng.integers(0, seconds, len(extra))
        added = pd.DataFrame({
            "customer_id": extra,
            "order_id": [f"uplift-{n}" for n in range(len(extra))],
            "order_ts": (pd.Timestamp(start) + pd.to_timedelta(offsets, unit="s")).astype(result["order_ts"].dtype),
            "amount": np.full(len(extra), float(value)),
        })  # fmt: skip
        result = pd.concat([result, added], ignore_index=True)
    return InjectedUplift(orders=result, truth=truth)
