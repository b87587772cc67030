"""The ``clv`` command line: parse flags, load config, call one library function, print.

User errors (files, columns, flags, config, too many bad rows) print one line on stderr and exit
with code 2 (3 when malformed rows exceed the configured share); faults of the machine (disk full,
permission denied, a tracking store that cannot be opened or reached) exit with 4. Exit 5: the
job's product is on disk but the tracking store failed on the way — `clv score` wrote its scores
(the run is saved beside them for `clv log-run`), `clv train` trained a scorer it could not
register (saved under ``<tracking.root>/unregistered/`` for `clv register`). No traceback.
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

from clv_models.config import ColumnMap, Settings, load_settings, parse_date_flag, settings_to_toml
from clv_models.errors import ClvError, ClvInputError, environment_error

TRACKING_NOT_LOGGED = 5  # the product is written (scores, a trained scorer); its run is saved, not logged

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
        help="Orders source: CSV, Parquet, DuckDB or SQLite file, a glob ('exports/*.csv') or directory of CSV or "
        "Parquet files (Hive partitions too), or a SQLAlchemy URL.",
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
PeriodUnitOpt = Annotated[
    Optional[str],
    typer.Option("--period-unit", help="order_ts holds day or week numbers (1, 2, …): day or week."),
]
PeriodOriginOpt = Annotated[
    Optional[str],
    typer.Option("--period-origin", help="Date of period 1 (YYYY-MM-DD): period n = origin + (n - 1) units."),
]
FrequencyOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--frequency-only",
        help="An event log without amounts: every order counts as one unit; money columns of the scores are null.",
    ),
]


EngineOpt = Annotated[
    Optional[str],
    typer.Option("--engine", help="embedded (DuckDB, one machine; default) or spark (spark extra, Java 17+)."),
]
MasterOpt = Annotated[
    Optional[str],
    typer.Option("--master", help="Spark master for --engine spark: local[2], spark://host:7077, yarn, …"),
]


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except ClvError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:  # a write the library did not wrap: still one line, the path, exit 4
        path = exc.filename or "a file"
        fault = environment_error(exc, path, "output")
        err.print(f"error: {fault}", markup=False, highlight=False)
        raise typer.Exit(fault.exit_code) from None


def _build_settings(
    config: Path | None,
    sets: list[str] | None,
    columns: str | None = None,
    **flags: Any,
) -> Settings:
    """Defaults < TOML file < --set overrides < dedicated flags. Bounds the tracking requests."""
    from clv_models.tracking.mlflow_tracking import bound_tracking_requests, quiet_store_logs

    values = {key: value for key, value in flags.items() if value is not None}
    settings = load_settings(config, sets, values)
    if columns:
        mapped = ColumnMap.parse(columns, base=settings.orders.columns)
        settings = load_settings(config, sets, {**values, "orders.columns": mapped.model_dump()})
    bound_tracking_requests(settings.tracking)
    quiet_store_logs()
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
    period_unit: str | None = None,
    period_origin: str | None = None,
    frequency_only: bool = False,
) -> dict[str, Any]:
    return {
        "orders.path": orders,
        "features.as_of": parse_date_flag(as_of, "--as-of"),
        "orders.table": table,
        "orders.query": query,
        "orders.delimiter": delimiter,
        "orders.encoding": encoding,
        "orders.timestamp_format": timestamp_format,
        "validation.quarantine": quarantine,
        "orders.period_unit": period_unit,
        "orders.period_origin": parse_date_flag(period_origin, "--period-origin"),
        "orders.frequency_only": True if frequency_only else None,
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
    from rich.markup import escape

    from clv_models.data.quality import MALFORMED_REASONS, REASON_DESCRIPTIONS

    files = getattr(report, "source_files", None) or 0
    shown = escape(str(report.source)) + (f" ({files:,} files)" if files > 1 else "")  # a glob may hold [ ]
    out.print(f"[bold]Data quality[/bold]  {shown}")
    out.print(f"  rows read {report.rows_read:,}  ·  orders kept {report.orders:,}  ·  customers {report.customers:,}")
    if report.first_order_ts is not None:
        out.print(f"  orders from {report.first_order_ts} to {report.last_order_ts}")
    if getattr(report, "frequency_only", False):
        out.print("  no amounts read (--frequency-only): every order counts as one unit of value")
    else:
        out.print(
            f"  net revenue {report.net_revenue:,.2f}  ·  returns netted {report.returned_revenue:,.2f} "
            f"({report.credits_netted:,} credit notes into {report.orders_with_returns:,} orders)"
        )
    if report.timestamp_format:
        out.print(f"  timestamp format {report.timestamp_format!r}", markup=False)
    for line in [report.dropped_line(), *report.notes()]:
        out.print(f"  {line}", markup=False, highlight=False)
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
    period_unit: PeriodUnitOpt = None,
    period_origin: PeriodOriginOpt = None,
    frequency_only: FrequencyOnlyOpt = False,
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
            **_source_flags(orders, as_of, table, query, delimiter, encoding, timestamp_format, quarantine,
                            period_unit, period_origin, frequency_only),
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
    period_unit: PeriodUnitOpt = None,
    period_origin: PeriodOriginOpt = None,
    frequency_only: FrequencyOnlyOpt = False,
    engine: EngineOpt = None,
    master: MasterOpt = None,
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
            **_source_flags(orders, as_of, table, query, delimiter, encoding, timestamp_format, quarantine,
                            period_unit, period_origin, frequency_only),
            **{"features.unit": unit, "features.holdout_end": parse_date_flag(holdout_end, "--holdout-end"),
               "spark.master": master},  # fmt: skip
        )
        chosen = settings.features
        if engine not in (None, "embedded", "spark"):
            raise ClvInputError(f"--engine {engine}: use embedded or spark")
        if engine == "spark":
            from clv_models.features.spark import spark_features

            with err.status(f"RFM features on Spark ({settings.spark.master or 'spark-submit master'})"):
                written, customers, cutoff = spark_features(settings, out_path)
            out.print(f"RFM summary at {cutoff} (end of day), unit {chosen.unit}: {customers:,} customers")
            out.print(f"features written to {written}")
            return
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
            written = write_relation_atomic(result.con, features_sql, out_path, what="the features")
            customers = result.con.execute("SELECT count(*) FROM customer_features").fetchall()[0][0]
            unit_name = "days" if chosen.unit == "D" else "weeks"
            _print_summary(
                result.con,
                features_sql,
                f"RFM summary at {cutoff} (end of day), unit {chosen.unit} ({unit_name}): {customers:,} customers",
            )
        out.print(f"features written to {written}")


ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/scorer or an exported model dir."),
]


def _quiet_optuna() -> None:
    import optuna

    # One line per trial is noise on a terminal; every trial is an MLflow run anyway.
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _print_train(result: Any) -> None:
    from clv_models.training.pipeline import HEADLINE_METRICS

    table = Table(title="Headline metrics (out of time)", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in HEADLINE_METRICS:
        if name in result.metrics and not name.startswith("data_"):
            table.add_row(name, f"{result.metrics[name]:.4f}")
    out.print(table)
    _print_churn_comparison(result.metrics)
    _print_value_comparison(result.metrics, getattr(getattr(result, "scorer", None), "metadata", {}))
    for line in getattr(result, "choices", []):
        out.print(line, markup=False, highlight=False)
    for notice in getattr(result, "notices", []):
        err.print(f"warning: {notice}", markup=False, highlight=False)
    if result.gate is not None:
        gate = result.gate
        out.print(
            f"{gate.reason}\n"
            f"registered {result.model_name} version {result.model_version} as @{gate.alias}",
            markup=False,
        )
    if not getattr(result, "tracking_error", None):
        out.print(
            f"MLflow run {result.run_id} (experiment {result.experiment_id}) in {result.tracking_uri}\n"
            "open the UI with: clv ui",
            markup=False,
        )


def _print_churn_comparison(metrics: dict[str, float]) -> None:
    """The classifier beside every baseline on the test snapshot (AUC, Brier, ECE)."""
    from clv_models.training.churn import BASELINES

    rows = {"model": "churn_", **{name: f"churn_baseline_{name}_" for name in BASELINES}}
    if not all(f"{prefix}auc" in metrics for prefix in rows.values()):
        return
    table = Table(title="Churn on the test snapshot: classifier vs baselines", title_justify="left")
    for column in ("score", "AUC", "Brier", "ECE"):
        table.add_column(column, justify="left" if column == "score" else "right")
    for name, prefix in rows.items():
        table.add_row(name, *(f"{metrics[prefix + m]:.4f}" for m in ("auc", "brier", "ece")))
    out.print(table)


def _print_value_comparison(metrics: dict[str, float], metadata: dict[str, Any]) -> None:
    """Every value ranker on the same out-of-time customers (decisions D40): normalised Gini,
    Spearman, top-decile revenue capture, decile MAPE, aggregate error; the tiers' basis marked."""
    from clv_models.models.value import RANKERS
    from clv_models.training.value import VALUE_METRICS

    if not all(f"value_{ranker}_gini" in metrics for ranker in RANKERS):
        return
    window = metrics.get("value_window_days", float("nan"))
    basis = metadata.get("value_tier_basis")
    table = Table(
        title=f"Value over {window:.0f} days on the test snapshot: rankers out of time (tiers: {basis})",
        title_justify="left",
    )
    headers = {"gini": "Gini", "spearman": "Spearman", "top_decile_capture": "top 10 %", "decile_mape": "decile MAPE",
               "aggregate_error": "aggregate error"}  # fmt: skip
    table.add_column("ranker")
    for metric in VALUE_METRICS:
        table.add_column(headers[metric], justify="right")
    for ranker in RANKERS:
        name = f"{ranker} (tiers)" if ranker == basis else ranker
        table.add_row(name, *(f"{metrics[f'value_{ranker}_{metric}']:.4f}" for metric in VALUE_METRICS))
    out.print(table)


def _data_notes() -> Any:
    """While training or scoring: one line on what ingestion read, kept and set aside (customers
    with no usable purchase by reason included), and any note the quality report carries."""
    from clv_models.data.quality import report_listener

    def show(report: Any) -> None:
        for line in [report.headline(), report.dropped_line(), *report.notes()]:
            out.print(f"data: {line}", markup=False, highlight=False)

    return report_listener(show)


def _run_training(settings: Settings, config: Path | None, force: bool) -> Any:
    from clv_models.training.pipeline import train

    _quiet_optuna()
    status = err.status("training")
    with status, _data_notes():
        return train(settings, config_path=config, force=force, progress=lambda m: status.update(m))


@app.command()
def train(
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
    period_unit: PeriodUnitOpt = None,
    period_origin: PeriodOriginOpt = None,
    frequency_only: FrequencyOnlyOpt = False,
    force: Annotated[
        bool, typer.Option("--force", help="Make the new model the champion even if the gate or comparison fails.")
    ] = False,
) -> None:
    """Train BG/NBD, Gamma-Gamma, churn, segments and tiers; track in MLflow; gate; register."""
    with _user_errors():
        settings = _build_settings(
            config,
            set_,
            columns,
            **_source_flags(orders, as_of, table, query, delimiter, encoding, timestamp_format, quarantine,
                            period_unit, period_origin, frequency_only),
        )
        result = _run_training(settings, config, force)
        _print_train(result)
        if result.tracking_error:
            err.print(
                f"warning: trained but not registered: {result.tracking_error}; the scorer and its run are "
                f"saved in {result.saved_to} (`clv score --model {result.saved_to}/scorer` uses it as it is); "
                f"register it with: clv register {result.saved_to}",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(TRACKING_NOT_LOGGED)


@app.command()
def register(
    saved: Annotated[Path, typer.Argument(help="A training clv train saved when the tracking store failed.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: Annotated[
        Optional[bool],
        typer.Option("--force/--no-force", help="Override the --force the training was started with."),
    ] = None,
) -> None:
    """Log and register a training that `clv train` saved because the tracking store failed."""
    from clv_models.training.pipeline import register_saved_training

    with _user_errors():
        settings = _build_settings(config, set_)
        result = register_saved_training(saved, settings, force=force)
        _print_train(result)


def _run_scoring(settings: Settings, model: str | None, out_path: Path | None) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from clv_models.scoring.job import score

    if settings.scoring.engine == "spark":
        from clv_models.scoring.spark_job import score_spark

        with err.status(f"scoring on Spark ({settings.spark.master or 'spark-submit master'})"), _data_notes():
            return score_spark(settings, model_uri=model, out=out_path)

    with Progress(
        TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"), TimeElapsedColumn(),
        console=err, transient=True,
    ) as bar, _data_notes():  # fmt: skip
        task = bar.add_task("score", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return score(settings, model_uri=model, out=out_path, progress=advance)


_NATURAL_ORDER = ("high", "medium", "low", "core", "potential", "new", "at_risk", "sleeping", "lost", "growing",
                  "mature", "churned")  # fmt: skip


def _print_score(result: Any) -> None:
    out.print(
        f"scored {result.customers:,} customers at {result.as_of} with {result.model_uri}"
        f"{f' (version {result.model_version})' if result.model_version else ''} → {result.out}",
        markup=False,
    )
    for column in ("value_tier", "churn_risk", "segment", "lifecycle_stage"):
        shares = result.distributions.get(column, {})
        ordered = [code for code in _NATURAL_ORDER if code in shares] + sorted(set(shares) - set(_NATURAL_ORDER))
        out.print(f"  {column}: " + ", ".join(f"{code} {shares[code]:.1%}" for code in ordered), markup=False)
    for name, groups in getattr(result, "experiment_groups", {}).items():
        out.print(f"  experiment {name}: treatment {groups['treatment']:,}, control {groups['control']:,}", markup=False)
    for warning in result.input_warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    for warning in result.drift_warnings:
        err.print(f"warning: drift against training: {warning}", markup=False, highlight=False)
    if result.run_id:
        out.print(f"MLflow scoring run {result.run_id}", markup=False)


@app.command()
def score(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    orders: OrdersOpt = None,
    columns: ColumnsOpt = None,
    as_of: AsOfOpt = None,
    model: ModelOpt = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Scores file: .parquet or .csv.")] = None,
    quarantine: QuarantineOpt = None,
    table: TableOpt = None,
    query: QueryOpt = None,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    timestamp_format: TsFormatOpt = None,
    period_unit: PeriodUnitOpt = None,
    period_origin: PeriodOriginOpt = None,
    frequency_only: FrequencyOnlyOpt = False,
    engine: EngineOpt = None,
    master: MasterOpt = None,
    accept_missing: Annotated[
        Optional[list[str]],
        typer.Option(
            "--accept-missing-column",
            help="Score although the orders lack this optional column (quantity, category, country, channel) that "
            "the model's features read; its feature is then missing (a warning is printed and logged). Repeatable.",
        ),
    ] = None,
) -> None:
    """Score every customer with a registered (or exported) scorer; write the scores atomically."""
    with _user_errors():
        settings = _build_settings(
            config,
            set_,
            columns,
            **_source_flags(orders, as_of, table, query, delimiter, encoding, timestamp_format, quarantine,
                            period_unit, period_origin, frequency_only),
            **{"scoring.engine": engine, "spark.master": master, "scoring.accept_missing_columns": accept_missing},
        )
        result = _run_scoring(settings, model, out_path)
        _print_score(result)
    if result.tracking_error:
        err.print(f"warning: scores written, but not logged: {result.tracking_error}", markup=False, highlight=False)
        raise typer.Exit(TRACKING_NOT_LOGGED)


def _print_effects(result: Any, experiment: str) -> None:
    """The effects table: one row per experiment, action and outcome."""
    out.print(
        f"{result.customers:,} customers in experiments, scores at {result.as_of}, outcomes in "
        f"({result.as_of}, {result.until}]; {1 - result.alpha:.0%} intervals, Welch's t-test, "
        f"MDE at {result.power:.0%} power",
        markup=False,
    )
    table = Table(title="Treatment − control per action", title_justify="left")
    for header in ("experiment", "action", "outcome", "n treat", "n control", "treatment", "control", "difference",
                   "CI low", "CI high", "p-value", "MDE"):  # fmt: skip
        table.add_column(header, justify="left" if header in ("experiment", "action", "outcome") else "right")

    def number(value: float, digits: int = 4) -> str:
        return "—" if value != value else f"{value:,.{digits}f}"  # NaN: no test possible

    def p_value(value: float) -> str:
        return "<0.0001" if value < 0.0001 else number(value)

    for row in result.effects.itertuples(index=False):
        table.add_row(
            str(row.experiment), str(row.action), str(row.outcome), f"{row.n_treatment:,}", f"{row.n_control:,}",
            number(row.treatment_mean), number(row.control_mean), number(row.difference), number(row.ci_low),
            number(row.ci_high), p_value(row.p_value), number(row.mde),
        )  # fmt: skip
    out.print(table)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    if result.out is not None:
        out.print(f"effects written to {result.out}", markup=False)
    if result.run_id:
        out.print(f"MLflow run {result.run_id} (experiment {experiment})", markup=False)


@app.command("evaluate-actions")
def evaluate_actions(
    scores: Annotated[Path, typer.Option("--scores", help="Scores written by clv score with experiments in its config (docs/experiments.md).")],
    until: Annotated[str, typer.Option("--until", help="Last day of the outcome window (YYYY-MM-DD, included).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    orders: OrdersOpt = None,
    columns: ColumnsOpt = None,
    quarantine: QuarantineOpt = None,
    table: TableOpt = None,
    query: QueryOpt = None,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    timestamp_format: TsFormatOpt = None,
    period_unit: PeriodUnitOpt = None,
    period_origin: PeriodOriginOpt = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided significance level.")] = 0.05,
    power: Annotated[float, typer.Option("--power", help="Power of the minimum detectable effect.")] = 0.8,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Also write the effects table (CSV).")] = None,
) -> None:
    """Compare treatment and control per action after the scores' cutoff: retention, orders and
    revenue per customer, differences with confidence intervals, p-values and the minimum
    detectable effect; log a clv-actions MLflow run."""
    from clv_models.scoring.action_effects import evaluate_actions as run

    with _user_errors():
        settings = _build_settings(
            config,
            set_,
            columns,
            **_source_flags(orders, None, table, query, delimiter, encoding, timestamp_format, quarantine,
                            period_unit, period_origin),
        )
        last_day = parse_date_flag(until, "--until")
        with err.status("reading scores and orders"), _data_notes():
            result = run(settings, scores, last_day, alpha=alpha, power=power, out=out_path)
        _print_effects(result, settings.tracking.actions_experiment)
    if result.tracking_error:
        err.print(
            f"warning: effects computed, but not logged: {result.tracking_error}", markup=False, highlight=False
        )
        raise typer.Exit(TRACKING_NOT_LOGGED)


@app.command("log-run")
def log_run(
    record: Annotated[Path, typer.Argument(help="A run saved by clv score when tracking was down (*.clv-score-run.json).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Log a scoring run that `clv score` saved beside its output when the tracking store was down."""
    import json

    from clv_models.scoring.batch import log_record
    from clv_models.tracking import Tracker
    from clv_models.tracking.mlflow_tracking import store_errors

    with _user_errors():
        settings = _build_settings(config, set_)
        try:
            saved = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ClvInputError(f"{record}: not a saved clv score run ({exc})") from None
        tracking = settings.tracking
        tracker = Tracker(saved["experiment"], root=tracking.root, uri=tracking.uri)
        with store_errors(tracker.uri):
            run_id = log_record(tracker, saved)
        record.unlink()
        out.print(f"logged {record} as MLflow run {run_id} in {tracker.uri}", markup=False)


@app.command()
def export(
    out_path: Annotated[Path, typer.Option("--out", help="Directory to write the MLflow model to.")] = Path(
        "models/clv-customer-scorer"
    ),
    model: ModelOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write a registered scorer as a self-contained MLflow model directory."""
    from clv_models.tracking.mlflow_tracking import tracking_uri
    from clv_models.tracking.registry import export_scorer

    with _user_errors():
        settings = _build_settings(config, set_)
        uri = settings.tracking.uri or tracking_uri(settings.tracking.root)
        written = export_scorer(model or settings.scoring.model, out_path, tracking_uri=uri)
        out.print(f"model written to {written}; score with: clv score --model {written}", markup=False)


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="The MLflow run id of a `clv train` run.")],
    out_path: Annotated[Optional[Path], typer.Option("--out", help="HTML file to write.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Regenerate a training run's self-contained HTML report from its logged artifacts."""
    from clv_models.data.io import atomic_target
    from clv_models.tracking import Tracker
    from clv_models.tracking.reports import run_report_html

    with _user_errors():
        settings = _build_settings(config, set_)
        tracking = settings.tracking
        tracker = Tracker(tracking.train_experiment, root=tracking.root, uri=tracking.uri)
        text = run_report_html(tracker, run_id)
        target = out_path or Path("out") / f"report_{run_id}.html"
        with atomic_target(target, "the report") as tmp:
            tmp.write_text(text, encoding="utf-8")
        out.print(f"report written to {target}", markup=False)


def _ui_group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (a zombie waiting for its reaper counts as gone)."""
    import os

    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rpartition(")")[2].split()[:3]
        except (OSError, ValueError):
            continue  # ended while we looked
        if int(group) == pgid and state != "Z":
            return True
    return False


def _ui_stop(server: Any, grace: float = 10.0) -> None:
    """Stop the server's whole process group (MLflow, uvicorn or gunicorn, job runners): SIGTERM to
    every member, again each second (a job runner may still start a worker while it stops), then
    SIGKILL to whatever still runs after ``grace`` seconds. SIGTERM, not SIGINT: uvicorn takes a
    second SIGINT (the one MLflow forwards) as an order to quit at once, with tracebacks."""
    import os
    import signal
    import time

    def send(sig: int) -> None:
        try:
            os.killpg(server.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        send(signal.SIGTERM)
        for _ in range(10):
            if server.poll() is not None and not _ui_group_alive(server.pid):
                return
            time.sleep(0.1)
    send(signal.SIGKILL)
    server.wait()


def ui_runs_url(base: str, experiment_id: str) -> str:
    """The MLflow UI page listing an experiment's runs. MLflow 3 sends ``#/experiments/<id>`` to its
    GenAI overview (even with runs and no traces); the ``runs`` tab is the "Training runs" table."""
    return f"{base}/#/experiments/{experiment_id}/runs"


def _ui_announce(base: str, experiment: str, server: Any, browser: bool) -> None:
    """Once the server answers on /health: print the runs page of ``experiment`` and open it in a
    browser if asked."""
    import json
    import time
    import urllib.parse
    import urllib.request
    import webbrowser

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP proxy
    deadline = time.monotonic() + 180
    while server.poll() is None and time.monotonic() < deadline:
        try:
            with direct.open(f"{base}/health", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    else:
        return
    lookup = f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name={urllib.parse.quote(experiment)}"
    try:
        with direct.open(lookup, timeout=30) as response:
            found = json.load(response)["experiment"]
    except (OSError, ValueError, KeyError):  # 404: no such experiment yet
        found = None
    if found is not None and found.get("lifecycle_stage", "active") == "active":
        url = ui_runs_url(base, found["experiment_id"])
        out.print(f"MLflow UI ready, runs of {experiment!r}: {url}", markup=False)
    else:
        url = f"{base}/"
        out.print(f"MLflow UI ready: {url} (no experiment {experiment!r} in this store yet: clv train makes it)",
                  markup=False)  # fmt: skip
    if browser:
        webbrowser.open(url)


def _ui_desktop() -> bool:
    """Open a browser by default only from a terminal where a window can appear (macOS, Windows, an
    X or Wayland display, or $BROWSER set): never a text browser taking over the terminal, never in a job."""
    import os

    if not sys.stdout.isatty():
        return False
    return bool(os.environ.get("BROWSER") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or (
        sys.platform in ("darwin", "win32")
    )


@app.command()
def ui(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 5000,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    browser: Annotated[
        Optional[bool],
        typer.Option(
            "--browser/--no-browser",
            help="Open the runs page in a web browser once the server answers (default: from a terminal with a "
            "desktop).",
        ),
    ] = None,
) -> None:
    """Start the MLflow UI on 127.0.0.1 on the project's tracking store, opened on the runs of the
    training experiment. Ctrl-C, SIGTERM or SIGHUP stop the server and every process it started."""
    import os
    import signal
    import socket
    import subprocess
    import threading
    import time

    from clv_models.tracking.mlflow_tracking import tracking_uri

    with _user_errors():
        settings = _build_settings(config, set_)
        tracking = settings.tracking
        uri = tracking.uri or tracking_uri(tracking.root)
        with socket.socket() as probe:  # as the server binds: a closed connection's TIME_WAIT does not count
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise ClvInputError(f"--port {port}: 127.0.0.1:{port} is in use; pass a free --port") from None
        base = f"http://127.0.0.1:{port}"
        out.print(f"starting the MLflow UI for {uri} on {base} (Ctrl-C stops it)", markup=False)
        command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                   "--port", str(port), "--workers", "1"]  # fmt: skip
        # No GenAI job runners (eight more processes, seconds of start-up) unless the environment asks.
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}

    received: list[int] = []
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum)) for sig in stop_signals}
    server = None
    try:
        # Its own session and process group: a terminal's Ctrl-C reaches only `clv ui`, and whatever
        # stops `clv ui` stops every server process through the group (_ui_stop).
        server = subprocess.Popen(command, env=env, start_new_session=True)
        threading.Thread(
            target=_ui_announce,
            args=(base, tracking.train_experiment, server, _ui_desktop() if browser is None else browser),
            daemon=True,
        ).start()
        while not received and server.poll() is None:
            time.sleep(0.2)
    finally:
        if server is not None:
            _ui_stop(server)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        out.print("MLflow UI stopped", markup=False)
        raise typer.Exit(0)
    raise typer.Exit(server.returncode if server is not None else 1)


@app.command()
def demo(
    config: Annotated[
        Optional[Path], typer.Option("--config", "-c", help="Training config (default: the bundled demo data).")
    ] = None,
    score_config: Annotated[
        Optional[Path], typer.Option("--score-config", help="Scoring config (default: the training config's data).")
    ] = None,
    simulate: Annotated[
        Optional[int],
        typer.Option("--simulate", min=100, help="Run on a simulated shop of this many customers instead."),
    ] = None,
    profile: Annotated[
        str, typer.Option("--profile", help="Simulated shop: retail, weekly_grocery, one_time, wholesale, seasonal.")
    ] = "retail",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated shop.")] = 1,
    set_: SetOpt = None,
) -> None:
    """Train, register and score end to end: on Online Retail (shipped with the package), a
    simulated shop (--simulate N) or your configs; print where everything landed."""
    import time

    with _user_errors():
        started = time.perf_counter()
        if config is None:
            orders, columns = _demo_orders(simulate, profile, seed)
            demo_sets = [f'orders.path="{orders}"', 'validation.quarantine="out/quarantine/{source}.parquet"',
                         'scoring.out="out/scores.parquet"']  # fmt: skip
            settings = _build_settings(None, [*demo_sets, *(set_ or [])], columns)
            scoring = _build_settings(score_config, [*demo_sets, *(set_ or [])], columns)
            shown = f"--orders {orders} --columns {columns}"
        else:
            settings = _build_settings(config, set_)
            scoring = _build_settings(score_config or config, set_)
            shown = f"--config {config}"
        out.print(f"[bold]1/2 clv train {shown}[/bold]")
        trained = _run_training(settings, config, force=False)
        _print_train(trained)
        if trained.tracking_error:
            raise ClvError(f"training was not registered ({trained.tracking_error}); saved in {trained.saved_to}")
        model = f"models:/{trained.model_name}/{trained.model_version}"
        out.print(f"[bold]2/2 clv score {shown} --model {model}[/bold]")
        scored = _run_scoring(scoring, model, None)
        _print_score(scored)
        _print_scores_sample(scored.out)
        out.print(
            f"done in {time.perf_counter() - started:.0f} s. Scores: {scored.out}; quarantine: "
            f"{trained.quarantine_path}; MLflow store: {trained.tracking_uri} (clv ui)",
            markup=False,
        )


def _demo_orders(simulate: int | None, profile: str, seed: int) -> tuple[str, str]:
    """The demo's orders and their column mapping: the bundled Online Retail export, or a
    simulated shop written to ``out/demo/`` (kept, so it can be read, rescored or retrained)."""
    from clv_models import datasets

    if simulate is None:
        return str(datasets.online_retail_path()), datasets.ONLINE_RETAIL_COLUMNS
    if profile not in datasets.PROFILES:
        raise ClvInputError(f"--profile {profile!r}: choose one of {', '.join(datasets.PROFILES)}")
    shop = datasets.simulate_orders(simulate, seed=seed, profile=profile)
    path = Path("out/demo") / f"simulated_{profile}_{simulate}_seed{seed}.parquet"
    shop.write(path)
    out.print(
        f"simulated {simulate:,} customers of a {profile} shop (seed {seed}): {len(shop.orders):,} lines to "
        f"{shop.end}, written to {path}",
        markup=False,
    )
    return str(path), shop.columns


def _print_scores_sample(path: Path) -> None:
    import pandas as pd

    frame = pd.read_parquet(path) if path.suffix != ".csv" else pd.read_csv(path)
    sample = frame.sort_values("clv_h", ascending=False).iloc[[0, len(frame) // 10, len(frame) // 2, -1]]
    table = Table(title="Scores (best, 10th percentile, median, last by CLV)", title_justify="left")
    columns = ["customer_id", "clv_h", "value_forecast", "p_alive", "churn_probability", "value_tier", "churn_risk",
               "segment", "lifecycle_stage", "next_best_action"]  # fmt: skip
    numbers = ("clv_h", "value_forecast", "p_alive", "churn_probability")
    for name in columns:
        table.add_column(name, justify="right" if name in numbers else "left")
    for row in sample[columns].itertuples(index=False):
        # A null (P(alive) of a fit not identified, money of an event log) is shown as such, not as "nan".
        table.add_row(*(("null" if v != v else f"{v:,.3f}") if isinstance(v, float) else str(v) for v in row))
    out.print(table)


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
