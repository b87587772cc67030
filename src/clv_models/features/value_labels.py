"""Point-in-time revenue labels: what each customer spent in the window after a snapshot cutoff.

For a cutoff c (the end of that day) and a window of W days, a customer's label is

    future_revenue = Σ net amount of the purchases dated in (c, c + W]      (currency)
    future_orders  = the number of those purchases

with every purchase *as known at the end of day c + W*: its gross amount minus the credit notes
dated by then, and a purchase only if that net is > 0 (a fully refunded order is no purchase).
This is how :mod:`clv_models.features.churn` builds its churn labels (``point_in_time_orders_sql``
with the outcome window's end, docs/decisions.md D13), so ``future_orders > 0`` is exactly
"not churned over W". A credit dated in the window against a purchase made on or before c does
not lower the label: it refunds a purchase the features already saw (as ingestion nets it, and
as :func:`clv_models.evaluation.holdout.holdout_revenue` counts holdout revenue).

Money is summed as DECIMAL (exact, so reruns are byte-identical) and returned as float64.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from clv_models.errors import ClvInputError
from clv_models.features.churn import CUTOFFS_TABLE, MONEY, _date_list, point_in_time_orders_sql

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.data.ingest import IngestResult

REVENUE_LABEL = "future_revenue"
ORDERS_LABEL = "future_orders"


def value_labels_sql(window_days: int) -> str:
    """SQL: one row per (cutoff, customer) with a purchase in (c, c + W], over the cutoffs of the
    ``churn_cutoffs`` table: ``cutoff, customer_id, future_revenue (DECIMAL), future_orders``."""
    outcome = point_in_time_orders_sql(window_days)
    return f"""
        SELECT cutoff, customer_id,
               CAST(sum(net) AS {MONEY}) AS {REVENUE_LABEL},
               count(*) AS {ORDERS_LABEL}
        FROM ({outcome})
        WHERE order_ts >= CAST(cutoff AS TIMESTAMP) + INTERVAL 1 DAY
          AND order_ts < CAST(cutoff AS TIMESTAMP) + INTERVAL {window_days + 1} DAY
        GROUP BY cutoff, customer_id
        ORDER BY cutoff, customer_id
    """


def value_labels(
    ingested: IngestResult,
    cutoffs: Sequence[dt.date],
    *,
    window_days: int,
) -> pd.DataFrame:
    """Revenue labels (module docstring) of every customer with a purchase in (c, c + W], per
    cutoff c. Columns ``cutoff`` (date), ``customer_id`` (string), ``future_revenue`` (float64)
    and ``future_orders`` (int64); customers without a purchase in the window have no row (join
    with 0). Raises when a window ends after the data (the labels would be incomplete)."""
    import pandas as pd

    if not cutoffs:
        raise ClvInputError("no value cutoffs given")
    if window_days < 1:
        raise ClvInputError(f"value window must be at least 1 day, got {window_days}")
    data_end = ingested.report.cutoff
    late = [d for d in cutoffs if d + dt.timedelta(days=window_days) > data_end]
    if late:
        raise ClvInputError(
            f"cutoff {late[0]} + {window_days} days ends after the data ({data_end}); "
            "revenue labels would be incomplete: use an earlier cutoff or a shorter value window"
        )
    con = ingested.con
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {CUTOFFS_TABLE} AS SELECT * FROM (VALUES {_date_list(cutoffs)}) t(cutoff)"
    )
    frame = con.sql(value_labels_sql(window_days)).to_arrow_table().to_pandas()
    frame[REVENUE_LABEL] = frame[REVENUE_LABEL].astype("float64")
    frame[ORDERS_LABEL] = frame[ORDERS_LABEL].astype("int64")
    if len(frame) and frame["cutoff"].dtype != object:
        frame["cutoff"] = pd.to_datetime(frame["cutoff"]).dt.date
    frame["customer_id"] = frame["customer_id"].astype("string")
    return frame


def attach_value_labels(snapshots: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """``snapshots`` (one row per cutoff and customer) with ``future_revenue`` and
    ``future_orders`` joined, 0 where the customer bought nothing in the window. Row order kept."""
    merged = snapshots.merge(
        labels[["cutoff", "customer_id", REVENUE_LABEL, ORDERS_LABEL]],
        on=["cutoff", "customer_id"],
        how="left",
        validate="one_to_one",
    )
    merged[REVENUE_LABEL] = merged[REVENUE_LABEL].fillna(0.0).astype("float64")
    merged[ORDERS_LABEL] = merged[ORDERS_LABEL].fillna(0).astype("int64")
    merged.index = snapshots.index
    merged.attrs.update(snapshots.attrs)
    return merged


__all__ = ["ORDERS_LABEL", "REVENUE_LABEL", "attach_value_labels", "value_labels", "value_labels_sql"]
