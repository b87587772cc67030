"""Open an order source (CSV, Parquet, DuckDB, SQL database, DataFrame) as a DuckDB view.

Nothing here modifies the source: files are opened read-only; text in another encoding is
transcoded into a private temporary copy; SQL databases are copied through SQLAlchemy into a
temporary Parquet file in chunks, so memory stays bounded.
"""

from __future__ import annotations

import codecs
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from clv_models.config import SourceSettings
from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

RAW_VIEW = "raw_source"
ROW_COLUMN = "__row"
_SAMPLE_BYTES = 1 << 20
_SQLITE_MAGIC = b"SQLite format 3\x00"
_PARQUET_MAGIC = b"PAR1"
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+]*://")


@dataclass(frozen=True)
class OpenedSource:
    """A source made available as the DuckDB view ``raw_source`` with a 1-based ``__row``."""

    label: str  # how messages name the source (a path, or "<DataFrame>")
    stem: str  # file stem, used in default quarantine names
    column_types: dict[str, str]  # source column -> DuckDB type, in source order


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _detect_format(path: Path) -> str:
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return "parquet"
    if suffixes.endswith((".duckdb", ".ddb")):
        return "duckdb"
    if suffixes.endswith((".sqlite", ".sqlite3", ".db")):
        with path.open("rb") as handle:
            head = handle.read(16)
        return "sql" if head == _SQLITE_MAGIC else "duckdb"
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if head == _SQLITE_MAGIC:
        return "sql"
    return "csv"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ClvInputError(f"{path}: file not found; check the path given to --orders")
    if path.is_dir():
        raise ClvInputError(f"{path}: is a directory; pass one orders file to --orders")
    if path.stat().st_size == 0:
        raise ClvInputError(f"{path}: file is empty (0 bytes); export the orders again")


def _decodes(sample: bytes, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        decoder.decode(sample, final=False)  # a multi-byte character may be cut at the end
    except UnicodeDecodeError:
        return False
    return True


def _detect_encoding(path: Path) -> str:
    with path.open("rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _decodes(sample, "utf-8"):
        return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        raise ClvInputError(
            f"{path}: text could not be decoded in any known encoding; "
            "is it really a CSV file? Pass --encoding if you know it"
        )
    return best.encoding


def _transcode_to_utf8(path: Path, encoding: str, workdir: Path) -> Path:
    target = workdir / (path.stem + ".utf8.csv")
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    try:
        with path.open("rb") as src, target.open("w", encoding="utf-8", newline="") as dst:
            while chunk := src.read(_SAMPLE_BYTES):
                dst.write(decoder.decode(chunk))
                offset += len(chunk)
            dst.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        raise ClvInputError(
            f"{path}: byte {offset + exc.start} is not valid {encoding}; "
            "pass the file's real encoding with --encoding (e.g. latin-1 or cp1252)"
        ) from None
    return target


def _open_csv(con: duckdb.DuckDBPyConnection, path: Path, source: SourceSettings, workdir: Path) -> None:
    if source.encoding:
        try:
            encoding = codecs.lookup(source.encoding).name
        except LookupError:
            raise ClvInputError(
                f"--encoding {source.encoding}: unknown encoding; use e.g. utf-8, latin-1, cp1252"
            ) from None
    else:
        encoding = _detect_encoding(path)
    read_path = path if encoding in ("utf-8", "utf-8-sig") else _transcode_to_utf8(path, encoding, workdir)
    options = ["header = true", "all_varchar = true", "null_padding = true"]
    if source.delimiter:
        options.append(f"delim = {quote_literal(source.delimiter)}")
    # The sniffer only looks at a sample; reading every field as text lets validation, not the
    # parser, decide what a bad value is, and lets us quarantine it instead of crashing.
    con.execute(
        f"CREATE TEMP TABLE {RAW_VIEW} AS SELECT row_number() OVER () AS {ROW_COLUMN}, * "
        f"FROM read_csv({quote_literal(str(read_path))}, {', '.join(options)})"
    )


def _open_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    con.execute(
        f"CREATE TEMP VIEW {RAW_VIEW} AS SELECT * EXCLUDE (file_row_number), "
        f"file_row_number + 1 AS {ROW_COLUMN} "
        f"FROM read_parquet({quote_literal(str(path))}, file_row_number = true)"
    )


def _choose_table(tables: list[str], requested: str | None, label: str) -> str:
    """The requested table, or the only one; otherwise a one-line error listing what exists."""
    listing = ", ".join(sorted(tables)) or "none"
    if requested is None:
        if len(tables) != 1:
            raise ClvInputError(f"{label}: holds {len(tables)} tables ({listing}); name one with --table")
        return tables[0]
    if requested not in tables:
        raise ClvInputError(f"{label}: no table '{requested}'; tables are: {listing}")
    return requested


def _open_duckdb(con: duckdb.DuckDBPyConnection, path: Path, source: SourceSettings) -> None:
    con.execute(f"ATTACH {quote_literal(str(path))} AS src (READ_ONLY)")
    if source.query:
        body = source.query
    else:
        tables = [row[0] for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'src' "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = 'src' AND NOT internal"
        ).fetchall()]
        body = f"SELECT * FROM {quote_ident(_choose_table(tables, source.table, str(path)))}"
    # A user's query names the database's tables unqualified: resolve them in the attached file.
    con.execute("USE src")
    try:
        con.execute(
            f"CREATE TEMP TABLE {RAW_VIEW} AS SELECT row_number() OVER () AS {ROW_COLUMN}, * FROM ({body})"
        )
    finally:
        con.execute("USE memory")


def _open_sql(con: duckdb.DuckDBPyConnection, url: str, label: str, source: SourceSettings, workdir: Path) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ClvInputError(f"{label}: not a usable database URL ({exc}); e.g. sqlite:///orders.db") from None
    try:
        with engine.connect() as connection:
            if source.query:
                statement = sa.text(source.query)
            else:
                tables = sa.inspect(connection).get_table_names()
                table = _choose_table(tables, source.table, label)
                table_columns = sa.inspect(connection).get_columns(table)
                statement = sa.select(sa.table(table, *[sa.column(c["name"]) for c in table_columns]))
            target = workdir / "sql_source.parquet"
            writer = None
            for chunk in pd.read_sql(statement, connection, chunksize=200_000):
                table_chunk = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(target, table_chunk.schema)
                elif table_chunk.schema != writer.schema:
                    table_chunk = table_chunk.cast(writer.schema, safe=False)
                writer.write_table(table_chunk)
            if writer is None:
                raise ClvInputError(f"{label}: the table or query returned no rows")
            writer.close()
    except sa.exc.SQLAlchemyError as exc:
        first_line = str(exc).splitlines()[0]
        raise ClvInputError(f"{label}: database error: {first_line}") from None
    finally:
        engine.dispose()
    _open_parquet(con, target)


def open_source(
    con: duckdb.DuckDBPyConnection,
    source: SourceSettings | pd.DataFrame,
    workdir: Path,
) -> OpenedSource:
    """Make ``source`` available in ``con`` as the view ``raw_source`` (plus a ``__row`` number)."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        con.register("__frame", source)
        con.execute(
            f"CREATE TEMP TABLE {RAW_VIEW} AS SELECT row_number() OVER () AS {ROW_COLUMN}, * FROM __frame"
        )
        con.unregister("__frame")
        label, stem = "<DataFrame>", "dataframe"
    else:
        if not source.path:
            raise ClvInputError("no orders source: pass --orders PATH (or set orders.path in the config)")
        if _URL.match(source.path) and not source.path.startswith("file://"):
            label, stem = source.path.split("?")[0], "sql"
            _open_sql(con, source.path, label, source, workdir)
        else:
            path = Path(source.path.removeprefix("file://"))
            _check_file(path)
            label, stem = str(path), path.name.split(".")[0]
            fmt = _detect_format(path) if source.format == "auto" else source.format
            try:
                if fmt == "csv":
                    _open_csv(con, path, source, workdir)
                elif fmt == "parquet":
                    _open_parquet(con, path)
                elif fmt == "duckdb":
                    _open_duckdb(con, path, source)
                else:
                    _open_sql(con, f"sqlite:///{path.resolve()}", label, source, workdir)
            except duckdb.Error as exc:
                raise ClvInputError(f"{path}: cannot read as {fmt}: {describe_duckdb_error(exc)}") from None
    column_types = {
        name: dtype
        for name, dtype in con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {RAW_VIEW})").fetchall()
        if name != ROW_COLUMN
    }
    row_count = con.execute(f"SELECT count(*) FROM {RAW_VIEW}").fetchall()[0][0]
    if row_count == 0:
        raise ClvInputError(f"{label}: no data rows (header only or empty table); export the orders again")
    return OpenedSource(label=label, stem=stem, column_types=column_types)


def describe_duckdb_error(exc: duckdb.Error) -> str:
    """First meaningful line of a DuckDB error, with a hint for the common encoding failure."""
    text = str(exc)
    if "unicode" in text.lower() or "utf-8" in text.lower() or "utf8" in text.lower():
        return "text is not valid UTF-8; pass the file's encoding with --encoding (e.g. latin-1 or cp1252)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def check_columns(opened: OpenedSource, mapping: dict[str, str]) -> None:
    """Every mapped column must exist; name the missing one, the ones that do, and the closest."""
    available = list(opened.column_types)
    for field, column in mapping.items():
        if column in opened.column_types:
            continue
        lowered = {name.lower(): name for name in available}
        similar = difflib.get_close_matches(column, available, n=1, cutoff=0.75)
        closest = lowered.get(column.lower()) or (similar[0] if similar else None)
        hint = f"did you mean '{closest}'? " if closest else ""
        raise ClvInputError(
            f"{opened.label}: column '{column}' (mapped to {field}) not found; {hint}"
            f"columns are: {', '.join(available)}; fix with --columns {field}=<column>"
        )
