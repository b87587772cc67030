"""``clv features --engine spark``: the RFM summary (and holdout split) computed on Spark from the
same SQL as the embedded engine (:mod:`clv_models.features.rfm`, transpiled; docs/decisions.md D23)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clv_models.config import Settings


def spark_features(settings: Settings, out: str | Path, *, spark: Any = None) -> tuple[str, int, dt.date]:
    """Ingest on Spark, compute the RFM summary at the cutoff (with holdout columns when
    ``features.holdout_end`` is set), write it as a Parquet directory atomically.

    Returns (written path, customers, cutoff)."""
    from clv_models.data.spark import spark_ingest, spark_session, write_parquet_atomic
    from clv_models.errors import ClvInputError
    from clv_models.features.rfm import calibration_holdout_sql, summary_sql

    target = str(out)
    if target.lower().endswith(".csv"):
        raise ClvInputError(f"{target}: the Spark engine writes a Parquet directory; drop the .csv suffix")
    chosen = settings.features
    session = spark or spark_session(settings.spark.master or None, conf=settings.spark.conf)
    with spark_ingest(
        session,
        settings.orders,
        as_of=chosen.holdout_end or chosen.as_of,
        validation=settings.validation,
        quarantine_path=settings.validation.quarantine,
    ) as ingested:
        report = ingested.report
        cutoff = chosen.as_of or report.last_order_ts.date()
        if chosen.holdout_end:
            sql = calibration_holdout_sql("orders", cutoff, chosen.holdout_end, chosen.unit)
        else:
            sql = summary_sql("orders", cutoff, chosen.unit)
        frame = ingested.sql.table("customer_features", sql)
        customers = frame.count()
        written = write_parquet_atomic(frame.orderBy("customer_id"), target)
    return written, customers, cutoff
