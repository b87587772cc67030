"""The ``clv`` command line: parse flags, load config, call one library function, print.

User errors (files, columns, flags, config, too many bad rows) print one line on stderr and exit
with code 2 (3 when malformed rows exceed the configured share); no traceback.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from clv_models.config import ColumnMap, Settings, load_settings, settings_to_toml
from clv_models.errors import ClvInputError

app = typer.Typer(
    name="clv",
    help="Customer lifetime value, churn and segments from order history.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

out = Console(soft_wrap=True)
if not out.is_terminal:  # logs and pipes: do not squeeze tables into 80 columns
    out = Console(soft_wrap=True, width=160)
err = Console(stderr=True, soft_wrap=True)

# Options shared by every command that reads orders.
ConfigOpt = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="TOML run config (e.g. pipelines/demo.toml).")
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a config value: section.key=value (repeatable)."),
]
OrdersOpt = Annotated[
    Optional[str],
    typer.Option(
        "--orders",
        help="Orders source: CSV, Parquet, DuckDB or SQLite file, or a SQLAlchemy URL.",
    ),
]
ColumnsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--columns",
        help="Map canonical fields to source columns, e.g. "
        "customer_id=CustomerID,order_id=InvoiceNo,order_ts=InvoiceDate,quantity=Quantity,unit_price=UnitPrice",
    ),
]
AsOfOpt = Annotated[
    Optional[str],
    typer.Option("--as-of", help="Cutoff date YYYY-MM-DD (end of that day); default: last order date."),
]
TableOpt = Annotated[Optional[str], typer.Option("--table", help="Table to read from a database source.")]
QueryOpt = Annotated[Optional[str], typer.Option("--query", help="SQL query to read from a database source.")]
DelimiterOpt = Annotated[Optional[str], typer.Option("--delimiter", help="CSV delimiter (detected when unset).")]
EncodingOpt = Annotated[Optional[str], typer.Option("--encoding", help="CSV encoding (detected when unset).")]
TsFormatOpt = Annotated[
    Optional[str],
    typer.Option("--timestamp-format", help="strptime format of text timestamps, e.g. '%m/%d/%Y %H:%M'."),
]
QuarantineOpt = Annotated[
    Optional[str],
    typer.Option("--quarantine", help="Quarantine Parquet path ('{source}' = source file stem)."),
]


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except ClvInputError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(exc.exit_code) from None


def _build_settings(
    config: Path | None,
    sets: list[str] | None,
    columns: str | None = None,
    **flags: Any,
) -> Settings:
    """Defaults < TOML file < --set overrides < dedicated flags."""
    values = {key: value for key, value in flags.items() if value is not None}
    settings = load_settings(config, sets, values)
    if columns:
        mapped = ColumnMap.parse(columns, base=settings.orders.columns)
        settings = load_settings(config, sets, {**values, "orders.columns": mapped.model_dump()})
    return settings


def _source_flags(
    orders: str | None,
    as_of: str | None,
    table: str | None,
    query: str | None,
    delimiter: str | None,
    encoding: str | None,
    timestamp_format: str | None,
    quarantine: str | None,
) -> dict[str, Any]:
    return {
        "orders.path": orders,
        "features.as_of": as_of,
        "orders.table": table,
        "orders.query": query,
        "orders.delimiter": delimiter,
        "orders.encoding": encoding,
        "orders.timestamp_format": timestamp_format,
        "validation.quarantine": quarantine,
    }


def _progress() -> Any:
    status = err.status("reading orders")

    def say(message: str) -> None:
        status.update(message)

    return status, say


def _ingest(settings: Settings, cutoff: dt.date | None) -> Any:
    from clv_models.data import ingest

    status, say = _progress()
    with status:
        return ingest(
            settings.orders,
            as_of=cutoff,
            validation=settings.validation,
            quarantine_path=settings.validation.quarantine,
            progress=say,
        )


def _print_quality(report: Any) -> None:
    from clv_models.data.quality import MALFORMED_REASONS, REASON_DESCRIPTIONS

    out.print(f"[bold]Data quality[/bold]  {report.source}")
    out.print(
        f"  rows read {report.rows_read:,}  ·  orders kept {report.orders:,}  ·  customers {report.customers:,}"
    )
    if report.first_order_ts is not None:
        out.print(f"  orders from {report.first_order_ts} to {report.last_order_ts}")
    out.print(
        f"  net revenue {report.net_revenue:,.2f}  ·  returns netted {report.returned_revenue:,.2f} "
        f"({report.credits_netted:,} credit notes into {report.orders_with_returns:,} orders)"
    )
    if report.timestamp_format:
        out.print(f"  timestamp format {report.timestamp_format!r}", markup=False)
    table = Table(title="Quarantined rows by reason", title_justify="left")
    table.add_column("reason")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    table.add_column("counts as malformed")
    table.add_column("meaning")
    for reason, count in report.reason_counts.items():
        table.add_row(
            reason,
            f"{count:,}",
            f"{count / report.rows_read:.2%}",
            "yes" if reason in MALFORMED_REASONS else "no",
            REASON_DESCRIPTIONS.get(reason, ""),
        )
    if report.reason_counts:
        out.print(table)
    else:
        out.print("  no rows quarantined")
    out.print(
        f"  malformed share {report.malformed_share:.2%}"
        + (f"  ·  quarantine written to {report.quarantine_path}" if report.quarantine_path else "")
    )


def _print_summary(con: Any, sql: str, title: str) -> None:
    """Distribution of every numeric column, computed in DuckDB (the table may not fit in memory)."""
    from clv_models.data.sources import quote_ident

    described = con.execute(f"DESCRIBE SELECT * FROM ({sql})").fetchall()
    numeric = [name for name, dtype, *_ in described if dtype in ("DOUBLE", "BIGINT", "INTEGER", "FLOAT")]
    table = Table(title=title, title_justify="left")
    for header in ("column", "mean", "std", "min", "25%", "50%", "75%", "95%", "max"):
        table.add_column(header, justify="left" if header == "column" else "right")
    for name in numeric:
        col = quote_ident(name)
        row = con.execute(
            f"SELECT avg({col}), stddev_samp({col}), min({col}), "
            f"quantile_cont({col}, [0.25, 0.5, 0.75, 0.95]), max({col}) FROM ({sql})"
        ).fetchall()[0]
        mean, std, low, quantiles, high = row
        values = [mean, std, low, *quantiles, high]
        table.add_row(name, *(f"{v:,.2f}" if v is not None else "" for v in values))
    out.print(table)
    preview = Table(title="First customers", title_justify="left")
    head = con.execute(f"SELECT * FROM ({sql}) LIMIT 5").df()
    for name in head.columns:
        preview.add_column(str(name), justify="right")
    for row in head.itertuples(index=False):
        preview.add_row(*(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row))
    out.print(preview)


@app.command()
def validate(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    orders: OrdersOpt = None,
    columns: ColumnsOpt = None,
    as_of: AsOfOpt = None,
    quarantine: QuarantineOpt = None,
    table: TableOpt = None,
    query: QueryOpt = None,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    timestamp_format: TsFormatOpt = None,
    max_bad_share: Annotated[
        Optional[float], typer.Option("--max-bad-share", help="Fail above this share of malformed rows (0-1).")
    ] = None,
    orders_out: Annotated[
        Optional[Path], typer.Option("--orders-out", help="Also write the canonical orders (Parquet or CSV).")
    ] = None,
) -> None:
    """Read and validate orders: print the quality report, write the quarantine file."""
    with _user_errors():
        settings = _build_settings(
            config,
            set_,
            columns,
            **_source_flags(orders, as_of, table, query, delimiter, encoding, timestamp_format, quarantine),
            **{"validation.max_bad_share": max_bad_share},
        )
        with _ingest(settings, settings.features.as_of) as result:
            _print_quality(result.report)
            if orders_out:
                written = result.write_orders(orders_out)
                out.print(f"canonical orders written to {written}")


@app.command()
def features(
    out_path: Annotated[Path, typer.Option("--out", help="Output file: .parquet or .csv.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    orders: OrdersOpt = None,
    columns: ColumnsOpt = None,
    as_of: AsOfOpt = None,
    unit: Annotated[Optional[str], typer.Option("--unit", help="Time unit: D (days) or W (weeks).")] = None,
    holdout_end: Annotated[
        Optional[str],
        typer.Option("--holdout-end", help="Add holdout columns for (as-of, holdout-end], YYYY-MM-DD."),
    ] = None,
    quarantine: QuarantineOpt = None,
    table: TableOpt = None,
    query: QueryOpt = None,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    timestamp_format: TsFormatOpt = None,
) -> None:
    """Compute the RFM summary (and optionally the calibration/holdout split) per customer."""
    from clv_models.data.io import write_relation_atomic
    from clv_models.features.rfm import (
        calibration_holdout_sql,
        last_order_date,
        summary_sql,
    )

    with _user_errors():
        settings = _build_settings(
            config,
            set_,
            columns,
            **_source_flags(orders, as_of, table, query, delimiter, encoding, timestamp_format, quarantine),
            **{"features.unit": unit, "features.holdout_end": holdout_end},
        )
        chosen = settings.features
        # Orders after the holdout end (or after the cutoff, without a holdout) are never read.
        with _ingest(settings, chosen.holdout_end or chosen.as_of) as result:
            _print_quality(result.report)
            cutoff = chosen.as_of or last_order_date(result.con, result.relation)
            if chosen.holdout_end:
                sql = calibration_holdout_sql(result.relation, cutoff, chosen.holdout_end, chosen.unit)
            else:
                sql = summary_sql(result.relation, cutoff, chosen.unit)
            # Aggregate once; the file, the count and the printed distribution all read the result.
            result.con.execute(f"CREATE TEMP TABLE customer_features AS {sql}")
            features_sql = "SELECT * FROM customer_features ORDER BY customer_id"
            written = write_relation_atomic(result.con, features_sql, out_path)
            customers = result.con.execute("SELECT count(*) FROM customer_features").fetchall()[0][0]
            unit_name = "days" if chosen.unit == "D" else "weeks"
            _print_summary(
                result.con,
                features_sql,
                f"RFM summary at {cutoff} (end of day), unit {chosen.unit} ({unit_name}): "
                f"{customers:,} customers",
            )
        out.print(f"features written to {written}")


@config_app.command("show")
def config_show(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the effective configuration (defaults, file and overrides) as TOML."""
    with _user_errors():
        settings = _build_settings(config, set_)
        out.print(settings_to_toml(settings), markup=False, highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
