"""RFM summary and calibration/holdout split, computed in DuckDB SQL (DESIGN.md §2).

Definitions are those of the BTYD literature as implemented by
``lifetimes.utils.summary_data_from_transaction_data`` (tested row for row):

* orders are first collapsed to one purchase per period (day ``D`` or ISO week ``W``, Monday
  start, as pandas' ``W-SUN`` periods), amounts of one period summed;
* ``frequency`` = number of purchase periods − 1 (repeat purchases);
* ``recency``   = (last purchase period − first purchase period), in units;
* ``T``         = (period of the cutoff − first purchase period), in units;
* ``monetary_value`` = mean amount of the repeat purchase periods (0 when frequency = 0).

The cutoff ``as_of`` is a date and means the end of that day: orders on that day are included.
In the calibration/holdout split, the holdout covers the days after ``calibration_end`` up to and
including ``holdout_end``; ``frequency_holdout`` counts distinct purchase periods in it,
``monetary_value_holdout`` is the mean *order* amount in it (as lifetimes computes it), and
``duration_holdout`` = period(holdout_end) − period(calibration_end), in units.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from clv_models.data.sources import quote_literal
from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from clv_models.data.ingest import IngestResult

Unit = Literal["D", "W"]
UNIT_DAYS = {"D": 1, "W": 7}
_TRUNC = {"D": "day", "W": "week"}
MONEY = "DECIMAL(38, 9)"
REQUIRED_ORDER_COLUMNS = ("customer_id", "order_ts", "amount")
SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")
HOLDOUT_COLUMNS = ("frequency_holdout", "monetary_value_holdout", "duration_holdout")



def _check_unit(unit: str) -> None:
    if unit not in UNIT_DAYS:
        raise ClvInputError(f"unit '{unit}' is not supported; use D (days) or W (weeks)")


def _ts(day: dt.date) -> str:
    return f"TIMESTAMP {quote_literal(dt.datetime.combine(day, dt.time()).isoformat(sep=' '))}"


def _period_start(day: dt.date, unit: Unit) -> dt.date:
    return day - dt.timedelta(days=day.weekday()) if unit == "W" else day


def summary_sql(relation: str, as_of: dt.date, unit: Unit = "D") -> str:
    """SQL for the RFM summary at ``as_of`` of the canonical orders in ``relation``.

    One row per customer with a purchase on or before ``as_of``, sorted by ``customer_id``;
    ``frequency``, ``recency``, ``T``, ``monetary_value`` as DOUBLE (recency and T in ``unit``).
    """
    _check_unit(unit)
    trunc, days = _TRUNC[unit], UNIT_DAYS[unit]
    cutoff_exclusive = _ts(as_of + dt.timedelta(days=1))
    cutoff_period = _ts(_period_start(as_of, unit))
    # Amounts are summed as DECIMAL: exact, so results do not depend on thread scheduling, and
    # "sum minus first period" is then the exact total of the repeat periods.
    return f"""
        WITH periods AS (
            SELECT customer_id, date_trunc('{trunc}', order_ts) AS period,
                   sum(CAST(amount AS {MONEY})) AS amount
            FROM {relation}
            WHERE order_ts < {cutoff_exclusive}
            GROUP BY customer_id, period
        )
        SELECT customer_id,
               CAST(count(*) - 1 AS DOUBLE) AS frequency,
               date_diff('day', min(period), max(period)) / {days}.0 AS recency,
               date_diff('day', min(period), {cutoff_period}) / {days}.0 AS T,
               CASE WHEN count(*) > 1
                    THEN CAST(sum(amount) - arg_min(amount, period) AS DOUBLE) / (count(*) - 1)
                    ELSE 0.0 END AS monetary_value
        FROM periods
        GROUP BY customer_id
        ORDER BY customer_id
    """


def calibration_holdout_sql(
    relation: str, calibration_end: dt.date, holdout_end: dt.date, unit: Unit = "D"
) -> str:
    """SQL for the calibration summary at ``calibration_end`` plus holdout columns."""
    if holdout_end <= calibration_end:
        raise ClvInputError(
            f"holdout end {holdout_end} must be after the calibration cutoff {calibration_end}"
        )
    trunc, days = _TRUNC[unit], UNIT_DAYS[unit]
    start = _ts(calibration_end + dt.timedelta(days=1))
    end = _ts(holdout_end + dt.timedelta(days=1))
    duration = (_period_start(holdout_end, unit) - _period_start(calibration_end, unit)).days / days
    return f"""
        WITH calibration AS ({summary_sql(relation, calibration_end, unit)}),
        holdout AS (
            SELECT customer_id,
                   CAST(count(DISTINCT date_trunc('{trunc}', order_ts)) AS DOUBLE) AS frequency_holdout,
                   CAST(avg(CAST(amount AS {MONEY})) AS DOUBLE) AS monetary_value_holdout
            FROM {relation}
            WHERE order_ts >= {start} AND order_ts < {end}
            GROUP BY customer_id
        )
        SELECT c.*, coalesce(h.frequency_holdout, 0.0) AS frequency_holdout,
               coalesce(h.monetary_value_holdout, 0.0) AS monetary_value_holdout,
               CAST({duration!r} AS DOUBLE) AS duration_holdout
        FROM calibration c LEFT JOIN holdout h USING (customer_id)
        ORDER BY customer_id
    """


@contextmanager
def orders_relation(
    orders: IngestResult | pd.DataFrame | str | Path,
    threads: int | None = None,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A DuckDB connection and the name of a relation holding canonical orders.

    Files are scanned by DuckDB where they lie (out of core); a DataFrame is registered
    zero-copy; an :class:`IngestResult` is used as is (with its own connection and threads).
    """
    import duckdb
    import pandas as pd

    from clv_models.data.ingest import IngestResult, connect

    if isinstance(orders, IngestResult):
        yield orders.con, orders.relation
        return
    with tempfile.TemporaryDirectory(prefix="clv-rfm-") as workdir:
        con = connect(workdir, threads)
        try:
            if isinstance(orders, pd.DataFrame):
                con.register("orders_frame", orders)
                relation, label = "orders_frame", "<DataFrame>"
            else:
                path = Path(orders)
                if not path.exists():
                    raise ClvInputError(f"{path}: orders file not found")
                reader = "read_csv" if path.suffix.lower() == ".csv" else "read_parquet"
                relation, label = f"{reader}({quote_literal(str(path))})", str(path)
            columns = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
            missing = [c for c in REQUIRED_ORDER_COLUMNS if c not in columns]
            if missing:
                raise ClvInputError(
                    f"{label}: canonical orders need columns {', '.join(REQUIRED_ORDER_COLUMNS)}; "
                    f"missing {', '.join(missing)} (ingest raw lines with clv_models.data.ingest first)"
                )
            yield con, relation
        except duckdb.Error as exc:
            raise ClvInputError(f"{label}: {str(exc).splitlines()[0]}") from None
        finally:
            con.close()


def last_order_date(con: duckdb.DuckDBPyConnection, relation: str) -> dt.date:
    """The default cutoff: the date of the last order."""
    last = con.execute(f"SELECT max(order_ts) FROM {relation}").fetchall()[0][0]
    if last is None:
        raise ClvInputError("no orders: cannot derive a cutoff")
    return last.date() if isinstance(last, dt.datetime) else last


def default_cutoff(orders: Any, con: duckdb.DuckDBPyConnection, relation: str) -> dt.date:
    """The cutoff when none is given: an ingestion's own (``QualityReport.cutoff``: its ``as_of``,
    else its last order's day), else the last order's day of the relation."""
    report = getattr(orders, "report", None)
    cutoff = getattr(report, "cutoff", None)
    return cutoff if cutoff is not None else last_order_date(con, relation)


def _frame(con: duckdb.DuckDBPyConnection, sql: str, as_of: dt.date, unit: Unit) -> pd.DataFrame:
    # Through Arrow: several times faster than .df() for millions of string ids.
    frame = con.sql(sql).to_arrow_table().to_pandas()
    frame["customer_id"] = frame["customer_id"].astype("string")
    frame.attrs.update(as_of=as_of.isoformat(), unit=unit)
    return frame


def rfm_summary(
    orders: IngestResult | pd.DataFrame | str | Path,
    *,
    as_of: dt.date | None = None,
    unit: Unit = "D",
    threads: int | None = None,
) -> pd.DataFrame:
    """RFM summary per customer at ``as_of`` (default: :func:`default_cutoff`).

    Returns a DataFrame with ``customer_id`` and float64 ``frequency`` (repeat periods),
    ``recency`` and ``T`` (in ``unit``), ``monetary_value`` (currency per repeat period);
    ``attrs`` hold ``as_of`` and ``unit``. ``threads`` caps DuckDB's threads (default: all cores).
    """
    _check_unit(unit)
    with orders_relation(orders, threads) as (con, relation):
        as_of = as_of or default_cutoff(orders, con, relation)
        return _frame(con, summary_sql(relation, as_of, unit), as_of, unit)


def calibration_holdout(
    orders: IngestResult | pd.DataFrame | str | Path,
    *,
    calibration_end: dt.date,
    holdout_end: dt.date | None = None,
    unit: Unit = "D",
    threads: int | None = None,
) -> pd.DataFrame:
    """Calibration RFM at ``calibration_end`` plus ``frequency_holdout``,
    ``monetary_value_holdout`` and ``duration_holdout`` over (calibration_end, holdout_end]
    (default holdout end: the last order date)."""
    _check_unit(unit)
    with orders_relation(orders, threads) as (con, relation):
        holdout_end = holdout_end or default_cutoff(orders, con, relation)
        sql = calibration_holdout_sql(relation, calibration_end, holdout_end, unit)
        frame = _frame(con, sql, calibration_end, unit)
        frame.attrs["holdout_end"] = holdout_end.isoformat()
        return frame
