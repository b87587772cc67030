"""The per-customer feature table at a cutoff: everything the registered scorer reads.

``customer_features(orders, as_of=…, unit=…)`` turns canonical orders (or raw lines, ingested on
the way) into one row per customer with a purchase on or before the cutoff, sorted by
``customer_id``:

* ``customer_id`` and ``as_of`` (the cutoff, ``YYYY-MM-DD``, the end of that day);
* ``frequency, recency, T, monetary_value``: the RFM summary in the model's unit (DESIGN.md §2);
* the point-in-time daily features of :mod:`clv_models.features.churn` (``frequency_days``,
  ``recency_days``, ``T_days``, ``monetary_value_days``, ``days_since_last``, order counts and
  spend per window, …, and ``basket_quantity``, ``category_breadth``, ``country``, ``channel``
  when those order columns are mapped).

Every value of a row is a function of that customer's orders and the cutoff alone, so the table of
a customer is the same computed alone, in a chunk or over the whole base. The registered scorer
(``mlflow.pyfunc.load_model(uri).predict(table)``) turns it into the scores table. The Spark twin is
:func:`clv_models.features.spark.spark_customer_features` (the same SQL, transpiled).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import ColumnMap
    from clv_models.data.ingest import IngestResult

RFM_COLUMNS = ("frequency", "recency", "T", "monetary_value")


def join_features(rfm: pd.DataFrame, daily: pd.DataFrame, as_of: dt.date, unit: str) -> pd.DataFrame:
    """The feature table from the RFM summary (model unit) and the point-in-time daily features
    (one snapshot, ``cutoff`` column dropped or not) of the same customers."""
    import pandas as pd

    daily = daily.drop(columns=["cutoff"], errors="ignore")
    ids = rfm["customer_id"].to_numpy(dtype=object)
    if len(daily) == len(rfm) and np.array_equal(daily["customer_id"].to_numpy(dtype=object), ids):
        # Both come from DuckDB sorted by customer_id: side by side, no hash join.
        table = pd.concat([rfm.reset_index(drop=True), daily.drop(columns="customer_id").reset_index(drop=True)], axis=1)
    else:
        table = rfm.merge(daily, on="customer_id", how="outer", validate="one_to_one", indicator=True)
        unmatched = int((table.pop("_merge") != "both").sum())
        if unmatched:
            raise ClvInputError(
                f"features at {as_of}: {unmatched} customer(s) appear in only one of the RFM summary and the "
                "point-in-time features; this is a bug, please report it with the input"
            )
        table = table.sort_values("customer_id", kind="stable").reset_index(drop=True)
    table.insert(1, "as_of", as_of.isoformat())
    table.attrs.update(as_of=as_of.isoformat(), unit=unit)
    return table


def customer_features(
    orders: IngestResult | pd.DataFrame | str | Path,
    *,
    as_of: dt.date | str | None = None,
    unit: str = "D",
    columns: ColumnMap | None = None,
) -> pd.DataFrame:
    """The feature table (module docstring) of every customer with a purchase on or before the
    cutoff ``as_of`` (default: the ingestion's cutoff, else the last order's day).

    ``orders``: an :class:`~clv_models.data.ingest.IngestResult`, or anything
    :func:`clv_models.data.ingest.ingest` reads (a DataFrame of canonical orders or raw lines, a
    path) with ``columns`` mapping its names. ``unit``: the scorer's time unit (``D`` or ``W``;
    ``scorer.unit``).
    """
    from clv_models.data.ingest import IngestResult, ingest

    cutoff = dt.date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
    if isinstance(orders, IngestResult):
        return _features(orders, cutoff or orders.report.cutoff, unit)
    with ingest(orders, columns=columns, as_of=cutoff) as ingested:
        if ingested.report.cutoff is None:
            raise ClvInputError("no usable orders (see the quarantine)")
        return _features(ingested, cutoff or ingested.report.cutoff, unit)


def _features(ingested: IngestResult, as_of: Any, unit: str) -> pd.DataFrame:
    from clv_models.features.churn import churn_snapshots
    from clv_models.features.rfm import rfm_summary

    rfm = rfm_summary(ingested, as_of=as_of, unit=unit)  # type: ignore[arg-type]
    return join_features(rfm, churn_snapshots(ingested, [as_of], labels=False), as_of, unit)
