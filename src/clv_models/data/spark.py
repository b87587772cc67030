"""The Apache Spark engine's data layer: a checked session, DuckDB SQL run on Spark, ingestion.

Features and ingestion are written once, as DuckDB SQL (``data.ingest.ingestion_plan``,
``features.rfm.summary_sql``, ``features.churn.point_in_time_orders_sql`` / ``features_sql``);
the Spark engine runs the same texts after transpiling them with sqlglot (docs/decisions.md
D23). The one construct sqlglot does not carry over, DuckDB's ``try_strptime``, becomes Spark's
``try_to_timestamp`` with the format translated by sqlglot.

Requirements: ``pip install 'clv_models[spark]'`` (pyspark) and Java 17 or newer (checked, with a
clear message). ``PYSPARK_PYTHON`` defaults to the running interpreter, so local workers import
the same environment. The session runs in UTC (order timestamps are naive UTC, DESIGN.md §4).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv_models.config import ColumnMap, SourceSettings, ValidationSettings
from clv_models.data.quality import QualityReport, announce
from clv_models.data.sources import (
    RAW_VIEW,
    ROW_COLUMN,
    FileSet,
    OpenedSource,
    check_columns,
    check_same_columns,
    is_file_set,
    quote_literal,
    resolve_file_set,
)
from clv_models.errors import ClvEnvironmentError, ClvInputError, environment_error

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MIN_JAVA = 17
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def java_version(java: str | None = None) -> int | None:
    """Major version of the ``java`` Spark will start (``$JAVA_HOME/bin/java``, else on PATH)."""
    home = os.environ.get("JAVA_HOME")
    java = java or (str(Path(home) / "bin" / "java") if home else shutil.which("java"))
    if not java or not Path(java).exists():
        return None
    try:
        output = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def check_spark_requirements() -> None:
    """pyspark importable and Java ≥ 17, else a one-line error saying how to get them."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ClvInputError(
            "the Spark engine needs pyspark: pip install 'clv_models[spark]' (and Java 17+)"
        ) from None
    version = java_version()
    if version is None:
        raise ClvInputError(
            "the Spark engine needs Java 17 or newer and none was found; install it "
            "(Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    if version < MIN_JAVA:
        raise ClvInputError(
            f"the Spark engine needs Java {MIN_JAVA} or newer, found Java {version}; "
            "point JAVA_HOME at a Java 17+ installation"
        )


def _local_driver_memory() -> str:
    """A quarter of the machine's memory, 1 to 8 GiB: the heap of a ``local[*]`` session."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return "2g"
    return f"{min(8, max(1, total // 4 // 2**30))}g"


def spark_session(
    master: str | None = "local[2]", *, app_name: str = "clv_models", conf: dict[str, str] | None = None
) -> SparkSession:
    """A Spark session for the engine (``master`` None: whatever spark-submit configured)."""
    check_spark_requirements()
    # Workers must run this interpreter (and this environment) unless the cluster says otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:  # a Databricks job or notebook, or a caller's own session
        return active
    builder = SparkSession.builder.appName(app_name)
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        master = None  # launched by spark-submit: its --master and --conf rule
    if master:
        builder = builder.master(master)
    settings = {
        # A few shuffle partitions per core on one machine (Spark's default of 200 is for clusters);
        # adaptive execution still coalesces or splits them.
        **({"spark.sql.shuffle.partitions": "16"} if (master or "").startswith("local") else {}),
        # Spark's 1 GB default heap spills every table of a million-customer ingestion to disk.
        **({"spark.driver.memory": _local_driver_memory()} if (master or "").startswith("local") else {}),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **(conf or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


@functools.lru_cache(maxsize=512)
def to_spark_sql(sql: str, *, unordered: bool = False) -> str:
    """DuckDB SQL → Spark SQL (sqlglot), ``try_strptime`` → ``try_to_timestamp``.

    ``unordered``: drop the outermost ORDER BY (a table's row order means nothing to Spark, and
    the global sort costs a shuffle)."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    if unordered and isinstance(tree, exp.Query):
        tree.set("order", None)

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == "try_strptime":
            value, fmt = node.expressions
            java = sqlglot.transpile(f"SELECT strptime(x, {fmt.sql('duckdb')})", read="duckdb", write="spark")[0]
            java_format = re.search(r"TO_TIMESTAMP\(x, ('(?:[^']|'')*')\)", java)
            if java_format is None:  # pragma: no cover - sqlglot changed its output
                raise ClvInputError(f"cannot translate timestamp format {fmt.sql()} for Spark")
            return exp.Anonymous(
                this="TRY_TO_TIMESTAMP", expressions=[value, sqlglot.parse_one(java_format.group(1))]
            )
        return node

    return tree.transform(rewrite).sql(dialect="spark")


class SparkSql:
    """Runs DuckDB-dialect SQL on a Spark session; tables are materialised temp views."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._blocks: dict[str, set[int]] = {}  # table → ids of the RDDs holding its rows

    def frame(self, sql: str, *, unordered: bool = False) -> DataFrame:
        return self.spark.sql(to_spark_sql(sql, unordered=unordered))

    def table(self, name: str, sql: str, *, persist: bool = True) -> DataFrame:
        """The query as temp view ``name`` (its ORDER BY dropped; materialised unless ``persist=False``)."""
        return self.register(name, self.frame(sql, unordered=True), persist=persist)

    def register(self, name: str, frame: DataFrame, *, persist: bool = True) -> DataFrame:
        """``frame`` as temp view ``name``; with ``persist``, computed now and kept (memory, then
        disk) as a local checkpoint, which later queries read instead of recomputing it.

        Not ``DataFrame.persist``: Spark substitutes a cached table only into a query whose plan
        matches the cached plan, and plans with a self-join (``credit_matches``) or a
        non-deterministic expression (the row numbers) never match, so every use of a "cached"
        ingestion table recomputed ingestion from the source file (docs/decisions.md D25)."""
        from pyspark import StorageLevel

        if persist:
            self.drop(name)
            context = self.spark.sparkContext._jsc
            before = set(context.getPersistentRDDs().keys())
            frame = frame.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
            self._blocks[name] = set(context.getPersistentRDDs().keys()) - before
        frame.createOrReplaceTempView(name)
        return frame

    def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.frame(sql).collect()]

    def drop(self, *names: str) -> None:
        """Drop the views and free the rows of those that were materialised."""
        for name in names:
            ids = self._blocks.pop(name, set())
            if ids:
                held = self.spark.sparkContext._jsc.getPersistentRDDs()
                for rdd_id in ids:
                    if rdd_id in held:
                        held[rdd_id].unpersist(False)
            self.spark.catalog.dropTempView(name)

    def close(self) -> None:
        self.drop(*list(self._blocks))


# Spark type → the DuckDB type name the ingestion SQL branches on.
def _duckdb_type(spark_type: Any) -> str:
    from pyspark.sql import types as T

    if isinstance(spark_type, T.StringType | T.CharType | T.VarcharType):
        return "VARCHAR"
    if isinstance(spark_type, T.DoubleType):
        return "DOUBLE"
    if isinstance(spark_type, T.FloatType):
        return "FLOAT"
    if isinstance(spark_type, T.DecimalType):
        return f"DECIMAL({spark_type.precision},{spark_type.scale})"
    if isinstance(spark_type, T.LongType):
        return "BIGINT"
    if isinstance(spark_type, T.IntegerType | T.ShortType | T.ByteType):
        return "INTEGER"
    if isinstance(spark_type, T.TimestampNTZType | T.TimestampType):
        # The session runs in UTC, so a zoned timestamp cast to NTZ is its UTC wall time.
        return "TIMESTAMP"
    if isinstance(spark_type, T.DateType):
        return "DATE"
    if isinstance(spark_type, T.BooleanType):
        return "BOOLEAN"
    return spark_type.simpleString().upper()


def is_local_path(path: str) -> bool:
    return not _URI.match(path) or path.startswith("file://")


def _local(path: str) -> Path:
    return Path(path.removeprefix("file://"))


def _check_file_set(fileset: FileSet, source: SourceSettings) -> None:
    """The embedded engine's checks of a glob or directory, run by DuckDB on the local files.
    Spark reads CSV columns by position (every file's header is skipped), so CSV files must also
    list their columns in the same order."""
    import duckdb

    with duckdb.connect(":memory:") as con:
        if fileset.fmt == "parquet":
            reader = "read_parquet({})"
        else:
            delim = f", delim = {quote_literal(source.delimiter)}" if source.delimiter else ""
            reader = "read_csv({}, header = true, all_varchar = true, null_padding = true" + delim + ")"

        def columns_of(path: Path) -> list[str]:
            sql = f"DESCRIBE SELECT * FROM {reader.format(quote_literal(str(path)))}"
            return [row[0] for row in con.execute(sql).fetchall()]

        try:
            check_same_columns(fileset, columns_of)
            if fileset.fmt == "csv":
                first = columns_of(fileset.files[0])
                for path in fileset.files[1:]:
                    if columns_of(path) != first:
                        raise ClvInputError(
                            f"{fileset.label}: {path} lists its columns in another order than {fileset.files[0]}; "
                            "the Spark engine reads CSV columns by position: export them alike or use --engine embedded"
                        )
        except duckdb.Error as exc:
            raise ClvInputError(f"{fileset.label}: cannot read its files: {str(exc).splitlines()[0]}") from None


def _base_path(fileset: FileSet) -> str:
    """The directory above the Hive partition directories (Spark's ``basePath``)."""
    common = Path(os.path.commonpath([str(p.resolve().parent) for p in fileset.files]))
    while "=" in common.name:
        common = common.parent
    return str(common)


def _read_file_set(spark: SparkSession, source: SourceSettings) -> tuple[DataFrame, str, FileSet]:
    fileset = resolve_file_set(source.path or "", source.format)
    _check_file_set(fileset, source)
    files = [str(p.resolve()) for p in fileset.files]
    reader = spark.read
    if fileset.hive_keys:
        reader = reader.option("basePath", _base_path(fileset))
    if fileset.fmt == "csv":
        reader = reader.option("header", True).option("inferSchema", False).option("mode", "PERMISSIVE")
        reader = reader.option("sep", source.delimiter or ",").option("encoding", source.encoding or "UTF-8")
        return reader.csv(files), "csv", fileset
    return reader.parquet(*files), "parquet", fileset


def _read_source(spark: SparkSession, source: SourceSettings) -> tuple[DataFrame, str]:
    if not source.path:
        raise ClvInputError("no orders source: pass --orders PATH (or set orders.path in the config)")
    path = source.path
    if is_local_path(path) and not _local(path).exists():
        raise ClvInputError(f"{path}: orders file not found")
    fmt = source.format
    if fmt == "auto":
        lowered = path.lower().rstrip("/")
        if lowered.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
            fmt = "csv"
        elif lowered.endswith((".parquet", ".pq")) or (is_local_path(path) and _local(path).is_dir()):
            fmt = "parquet"
        else:
            raise ClvInputError(f"{path}: the Spark engine reads CSV or Parquet; pass --format csv or parquet")
    if fmt not in ("csv", "parquet"):
        raise ClvInputError(f"{path}: the Spark engine reads CSV or Parquet, not {fmt}; use --engine embedded")
    if fmt == "csv":
        # Every field as text, as the embedded engine reads CSV: validation decides what is bad.
        reader = spark.read.option("header", True).option("inferSchema", False).option("mode", "PERMISSIVE")
        reader = reader.option("sep", source.delimiter or ",").option("encoding", source.encoding or "UTF-8")
        frame = reader.csv(path)
    else:
        frame = spark.read.parquet(path)
    return frame, fmt


def _with_file_row_numbers(frame: DataFrame, files: tuple[Path, ...]) -> DataFrame:
    """``__row`` as for the files concatenated in the order of ``files``: rows are grouped by
    (file, Spark partition), the groups put in file order then partition order, and a row's number
    is its group's offset plus its position in the group (JVM only, no sort of the rows)."""
    from urllib.parse import unquote, urlparse

    from pyspark.sql import functions as F

    rank = {str(path.resolve()): index for index, path in enumerate(files)}
    tagged = (
        frame.withColumn("__file", F.col("_metadata.file_path"))
        .withColumn("__pid", F.spark_partition_id())
        .withColumn("__mid", F.monotonically_increasing_id())
    )
    groups = tagged.groupBy("__file", "__pid").agg(F.count(F.lit(1)).alias("n"), F.min("__mid").alias("first"))

    def file_rank(uri: str) -> int:
        return rank.get(str(Path(unquote(urlparse(uri).path)).resolve()), len(rank))

    ordered = sorted(groups.collect(), key=lambda g: (file_rank(g["__file"]), g["__pid"]))
    shifts, running = [], 0
    for group in ordered:
        shifts.extend([F.lit(f"{group['__pid']}|{group['__file']}"), F.lit(running - group["first"])])
        running += group["n"]
    shift = F.create_map(*shifts) if shifts else F.create_map(F.lit(""), F.lit(0))
    key = F.concat_ws("|", F.col("__pid").cast("string"), F.col("__file"))
    numbered = tagged.withColumn(ROW_COLUMN, shift[key] + F.col("__mid") + F.lit(1))
    return numbered.drop("__file", "__pid", "__mid")


def _with_row_numbers(frame: DataFrame) -> DataFrame:
    """``__row`` = 1, 2, … in reading order: partition sizes once, then offsets (JVM only)."""
    from pyspark.sql import functions as F

    # Both ids depend only on how the files are split, so the count and the numbering (two reads
    # of the source) agree; reading again is cheaper than caching every raw line.
    tagged = frame.withColumn("__pid", F.spark_partition_id()).withColumn("__mid", F.monotonically_increasing_id())
    sizes = dict(tagged.groupBy("__pid").count().collect())
    offsets, running = {}, 0
    for pid in sorted(sizes):
        offsets[pid] = running
        running += sizes[pid]
    offset = F.create_map(*[x for pid, start in offsets.items() for x in (F.lit(pid), F.lit(start))])
    if not offsets:
        offset = F.create_map(F.lit(0), F.lit(0))
    # monotonically_increasing_id = partition id << 33 + position within the partition.
    position = F.col("__mid") - F.shiftleft(F.col("__pid").cast("long"), 33)
    numbered = tagged.withColumn(ROW_COLUMN, offset[F.col("__pid")] + position + F.lit(1))
    return numbered.drop("__pid", "__mid")


@dataclass
class SparkIngestResult:
    """Canonical orders as the Spark temp view ``orders`` (plus ingestion's other tables)."""

    sql: SparkSql
    report: QualityReport
    quarantine_path: str | None
    source: OpenedSource
    extras: tuple[str, ...]
    products: bool = False  # whether ``order_products`` exists (a product column was mapped, D43)

    @property
    def relation(self) -> str:
        return "orders"

    def close(self) -> None:
        self.sql.close()

    def __enter__(self) -> SparkIngestResult:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


# What a JVM write failure says when the machine refused it (Hadoop's local file system passes
# the OS's message on); anything else from Spark is not a fault of the environment.
_JVM_FAULTS = ("no space left", "file too large", "permission denied", "read-only file system", "disk quota exceeded")


def _environment_fault(exc: BaseException, target: str, what: str) -> ClvEnvironmentError | None:
    """The one-line error for a Spark write the machine refused (a Py4J error whose message
    carries the OS's reason), or None when ``exc`` is something else."""
    text = str(exc).lower()
    if isinstance(exc, OSError) or any(marker in text for marker in _JVM_FAULTS):
        return environment_error(exc, target, what)
    return None


def probe_local_output(target: str, what: str) -> None:
    """Fail in a second, before the Spark job, when a local output's directory cannot be created
    or written: create it and a probe file in it (removed at once)."""
    if not is_local_path(target):
        return
    path = _local(target).resolve()
    probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise environment_error(exc, path, what) from None


def write_parquet_atomic(
    frame: DataFrame, target: str, *, partition_by: tuple[str, ...] = (), what: str = "output"
) -> str:
    """Write ``frame`` as a Parquet directory at ``target``, replacing it only when complete.

    Local paths: written to a hidden sibling, then swapped in by two renames (the old output is
    kept as ``.<name>.previous`` until the new one is in place; a run that finds only that copy
    puts it back first). Other URIs (hdfs://, s3a://, dbfs:/): Spark's own job commit. A write
    the machine refuses (disk full, permission denied, …) is one :class:`ClvEnvironmentError`
    naming ``target`` and ``what``; the previous output stays."""
    writer = frame.write.mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if not is_local_path(target):
        try:
            writer.parquet(target)
        except Exception as exc:
            fault = _environment_fault(exc, target, what)
            if fault is None:
                raise
            raise fault from None
        return target
    path = _local(target).resolve()
    previous = path.with_name(f".{path.name}.previous")
    partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if previous.exists() and not path.exists():
            previous.rename(path)  # a swap was interrupted: the old output comes back
        for stale in path.parent.glob(f".{path.name}.*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            writer.parquet(str(partial))
        except BaseException as exc:
            shutil.rmtree(partial, ignore_errors=True)
            fault = _environment_fault(exc, str(path), what) if isinstance(exc, Exception) else None
            if fault is None:
                raise
            raise fault from None
        if path.exists():
            if previous.exists():
                shutil.rmtree(previous)
            path.rename(previous)
        partial.rename(path)
        shutil.rmtree(previous, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise environment_error(exc, path, what) from None
    return str(path)


def _write_quarantine(sql: SparkSql, opened: OpenedSource, target: str) -> str:
    """The quarantined raw rows as one Parquet file (local paths, atomically) or a directory."""
    from clv_models.data.ingest import quarantine_sql

    frame = sql.frame(quarantine_sql(opened)).coalesce(1)
    if not is_local_path(target):
        return write_parquet_atomic(frame, target, what="the quarantine")
    # Absolute: Spark resolves a relative path against the JVM's working directory, which is the
    # directory the session started in, not necessarily this process's current one.
    path = _local(target).resolve()
    staging = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.sortWithinPartitions("source_row").write.parquet(str(staging))
        part = next(staging.glob("part-*.parquet"))
        os.replace(part, path)
    except OSError as exc:
        raise environment_error(exc, path, "the quarantine") from None
    except Exception as exc:
        fault = _environment_fault(exc, str(path), "the quarantine")
        if fault is None:
            raise
        raise fault from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(path)


def spark_ingest(
    spark: SparkSession,
    source: SourceSettings,
    *,
    as_of: dt.date | None = None,
    validation: ValidationSettings | None = None,
    quarantine_path: str | Path | None = None,
    columns: ColumnMap | None = None,
    progress: Callable[[str], None] | None = None,
) -> SparkIngestResult:
    """:func:`clv_models.data.ingest.ingest` on Spark: the same SQL, reasons, report and limits."""
    import duckdb

    from clv_models.data.ingest import (
        FREQUENCY_ONLY_FIX,
        _choose_timestamp_format,
        _mapping,
        check_period_column,
        check_report,
        describe_periods,
        dropped_customers_sql,
        ingestion_plan,
        line_reasons_sql,
        quality_report,
        source_periods,
    )
    from clv_models.data.order_products import ORDER_PRODUCTS_TABLE, order_products_sql

    validation = validation or ValidationSettings()
    columns = columns or source.columns
    mapping = _mapping(columns, source.frequency_only)
    say = progress or (lambda _step: None)
    say("reading orders")
    fileset = None
    if source.path and is_local_path(source.path) and is_file_set(source.path):
        raw, _, fileset = _read_file_set(spark, source)
    else:
        raw, _ = _read_source(spark, source)
    types = {field.name: _duckdb_type(field.dataType) for field in raw.schema.fields}
    label = source.path or "<source>"
    stem = fileset.stem if fileset else Path(label.rstrip("/")).name.split(".")[0] or "orders"
    files = tuple(str(p) for p in fileset.files) if fileset else (label,)
    opened = OpenedSource(label=label, stem=stem, column_types=types, files=files)
    check_columns(opened, mapping, amount_fix=FREQUENCY_ONLY_FIX)
    sql = SparkSql(spark)
    # Materialised once: the numbering reads the source twice already, and every step reads it.
    numbered = sql.register(
        RAW_VIEW, _with_file_row_numbers(raw, fileset.files) if fileset else _with_row_numbers(raw)
    )
    if sql.fetch(f"SELECT count(*) FROM {RAW_VIEW}")[0][0] == 0:
        raise ClvInputError(f"{label}: no data rows (header only or empty table); export the orders again")
    fmt = source.timestamp_format
    periods = source_periods(source)
    if fmt is None:
        # The embedded engine's format detection (or period check), run by DuckDB on a sample.
        sample = numbered.select(columns.order_ts).limit(2000).toPandas()
        with duckdb.connect(":memory:") as con:
            con.register("sample_frame", sample)
            con.execute(f"CREATE TEMP TABLE {RAW_VIEW} AS SELECT * FROM sample_frame")
            if periods is not None:
                check_period_column(con, columns.order_ts, label, periods[0])
            else:
                fmt = _choose_timestamp_format(con, columns.order_ts, types[columns.order_ts], label)
    plan = ingestion_plan(types, columns, fmt, as_of, validation, periods, source.frequency_only)
    say("validating lines")
    for name, query in plan.steps:
        if name == "lines":  # kept as lines_parsed; the final lines get the order-level reasons
            sql.table("lines_parsed", query).createOrReplaceTempView("lines")
        else:
            sql.table(name, query)
    # Read three times (report, straddling orders, quarantine), each a cheap join: not cached.
    sql.table("lines", line_reasons_sql(plan.extras), persist=False)
    sql.table("dropped_customers", dropped_customers_sql())
    # The products of each order, for cross-sell (decisions D43): the embedded engine's SQL. Not
    # materialised: the scoring job reads it once, and it is a join of materialised tables.
    products = bool(columns.product_id)
    if products:
        sql.table(ORDER_PRODUCTS_TABLE, order_products_sql(columns.product_id), persist=False)
    say("quality report")
    report = quality_report(label, sql.fetch, as_of, fmt)
    report.frequency_only = source.frequency_only
    report.periods = describe_periods(periods)
    report.source_files = len(files)
    written = None
    if quarantine_path is not None and report.rows_quarantined > 0:
        target = str(quarantine_path).replace("{source}", stem)
        written = _write_quarantine(sql, opened, target)
    report.quarantine_path = written
    announce(report)
    check_report(report, label, validation)
    return SparkIngestResult(
        sql=sql, report=report, quarantine_path=written, source=opened, extras=plan.extras, products=products
    )


__all__ = [
    "SparkIngestResult",
    "SparkSql",
    "check_spark_requirements",
    "java_version",
    "spark_ingest",
    "spark_session",
    "to_spark_sql",
    "write_parquet_atomic",
    "quote_literal",
]
