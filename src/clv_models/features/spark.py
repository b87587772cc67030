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
        cutoff = chosen.as_of or report.cutoff
        if chosen.holdout_end:
            sql = calibration_holdout_sql("orders", cutoff, chosen.holdout_end, chosen.unit)
        else:
            sql = summary_sql("orders", cutoff, chosen.unit)
        frame = ingested.sql.table("customer_features", sql)
        customers = frame.count()
        written = write_parquet_atomic(frame.orderBy("customer_id"), target)
    return written, customers, cutoff


def spark_customer_features(ingested: Any, as_of: dt.date, unit: str) -> Any:
    """The Spark twin of :func:`clv_models.features.customer.customer_features`: a Spark DataFrame
    of the same feature table (same columns, same values; row order unspecified) from a
    :class:`~clv_models.data.spark.SparkIngestResult`, by the same SQL texts, transpiled."""
    from pyspark.sql import functions as F

    from clv_models.features.churn import CATEGORICAL, CUTOFFS_TABLE, features_sql, point_in_time_orders_sql
    from clv_models.features.rfm import summary_sql

    sql = ingested.sql
    rfm = sql.frame(summary_sql("orders", as_of, unit), unordered=True)  # type: ignore[arg-type]
    sql.table(CUTOFFS_TABLE, f"SELECT CAST('{as_of.isoformat()}' AS DATE) AS cutoff", persist=False)
    extras = set(ingested.extras) & {"quantity", "category", *CATEGORICAL}
    zeros = ingested.report.zero_amount_orders > 0
    sql.table("pit", point_in_time_orders_sql(0, sorted(extras), zero_purchases=zeros))
    # Unordered: the rows are joined and range-partitioned next, so a global sort would be wasted.
    daily = sql.frame(features_sql(extras), unordered=True).drop("cutoff")
    table = rfm.join(daily, on="customer_id", how="inner")
    return table.select("customer_id", F.lit(as_of.isoformat()).alias("as_of"), *table.columns[1:])
