"""Tracking of cumulative repeat purchases over calendar time: actual vs BG/NBD expectation.

Fader, Hardie & Lee (2005), Marketing Science 24(2), Figure 3 ("tracking cumulative repeat
transactions"); the same construction as Fader, Hardie & Lee (2005) note 008 and lifetimes'
``expected_cumulative_transactions``.

Purchases are counted as the RFM summary counts them (one per period, day ``D`` or ISO week ``W``,
of the model's unit): a customer's first purchase period is their acquisition at time 0, and every
later period with an order is one repeat purchase. At the end of calendar period c,

    actual(c)   = number of repeat purchase periods ≤ c,
    expected(c) = Σ_f n_f · E[X(c − f)]  over first-purchase periods f ≤ c,

with n_f the customers acquired in period f and E[X(t)] the unconditional BG/NBD expectation
(eq. 9). The sum is a convolution of the acquisition counts with E[X] on the period grid, so E[X]
is evaluated once per lag, whatever the number of customers.

The lag c − f is the customer's T at a cutoff in period c, exactly as the model was calibrated.
lifetimes' ``expected_cumulative_transactions`` pairs the actual count through period c with the
expectation at lag c + 1 − f instead (its row c equals our ``expected`` of row c + 1; tested).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError
from clv_models.evaluation.fit import expected_repeat_purchases
from clv_models.features.rfm import last_order_date, orders_relation

if TYPE_CHECKING:
    from clv_models.data.ingest import IngestResult
    from clv_models.models import BetaGeoModel

_TRUNC = {"D": "day", "W": "week"}
_UNIT_DAYS = {"D": 1, "W": 7}


def _midnight_after(day: dt.date) -> dt.datetime:
    # A date means the end of that day (DESIGN.md §2): keep orders before the next midnight.
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time())


def cumulative_repeat_purchases(
    model: BetaGeoModel,
    orders: IngestResult | pd.DataFrame | str | Path,
    *,
    end: dt.date | None = None,
    cohort_end: dt.date | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Actual and expected cumulative repeat purchases per calendar period (see module docstring).

    ``orders`` are canonical orders (DataFrame, file or :class:`IngestResult`); orders after
    ``end`` (default: the last order date) are ignored. Only customers whose first order is on or
    before ``cohort_end`` (default: ``end``) are tracked, e.g. the customers the model was
    calibrated on. Returns one row per period from the first acquisition to the period of ``end``:
    ``period_start`` (timestamp), ``t`` (periods since the first, in ``model.unit_``), ``actual``
    and ``expected`` (cumulative repeat purchases); ``attrs["unit"]`` is the model's unit.
    """
    check_is_fitted(model, "params_")
    unit = model.unit_
    trunc = _TRUNC[unit]
    with orders_relation(orders, threads) as (con, relation):
        end = end or last_order_date(con, relation)
        cohort_end = min(cohort_end or end, end)
        sql = f"""
            WITH periods AS (
                SELECT DISTINCT customer_id, date_trunc('{trunc}', order_ts) AS period
                FROM {relation} WHERE order_ts < $end
            ),
            firsts AS (
                SELECT customer_id, date_trunc('{trunc}', min(order_ts)) AS first_period
                FROM {relation} WHERE order_ts < $end
                GROUP BY customer_id
                HAVING min(order_ts) < $cohort_end
            )
            SELECT CAST(p.period AS TIMESTAMP) AS period, p.period = f.first_period AS is_first,
                   count(*) AS customers
            FROM periods p JOIN firsts f USING (customer_id)
            GROUP BY ALL
        """
        counts = con.execute(
            sql, {"end": _midnight_after(end), "cohort_end": _midnight_after(cohort_end)}
        ).df()
    if counts.empty:
        raise ClvInputError(f"no customers acquired on or before {cohort_end}: nothing to track")
    days = _UNIT_DAYS[unit]
    origin = counts.loc[counts["is_first"], "period"].min()
    end_start = pd.Timestamp(end) - pd.Timedelta(days=end.weekday() if unit == "W" else 0)
    index = ((counts["period"] - origin).dt.days // days).to_numpy()
    n_periods = int((end_start - origin).days // days) + 1
    first = counts["is_first"].to_numpy()
    acquired = np.bincount(index[first], weights=counts["customers"].to_numpy()[first], minlength=n_periods)
    repeats = np.bincount(index[~first], weights=counts["customers"].to_numpy()[~first], minlength=n_periods)
    expected = np.convolve(acquired, expected_repeat_purchases(model, np.arange(n_periods, dtype=float)))
    frame = pd.DataFrame(
        {
            "period_start": origin + pd.to_timedelta(np.arange(n_periods) * days, unit="D"),
            "t": np.arange(n_periods, dtype=float),
            "actual": np.cumsum(repeats),
            "expected": expected[:n_periods],
        }
    )
    frame.attrs["unit"] = unit
    return frame
