"""Open an order source (CSV, Parquet, DuckDB, SQL database, DataFrame) as a DuckDB view.

Nothing here modifies the source: files are opened read-only; text in another encoding is
transcoded into a private temporary copy; SQL databases are copied through SQLAlchemy into a
temporary Parquet file in chunks, so memory stays bounded.

Several files are one source when the path is a glob (``exports/*.csv``, ``sales/**/*.parquet``)
or a directory (every file below it): CSV or Parquet parts, Hive-partitioned or not
(``year=2024/month=01/part-0.parquet``; the keys become text columns). The files are read in
natural path order (``part-2`` before ``part-10``) and numbered as if concatenated in that order,
so the result is the one a concatenated file gives, row for row. Files and directories whose
names start with ``.`` or ``_`` (``_SUCCESS``, ``.crc``) and empty (0-byte) files are skipped;
files must all be CSV or all Parquet and share their column names (checked, one-line errors).
"""

from __future__ import annotations

import codecs
import difflib
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

    label: str  # how messages name the source (a path, a glob, or "<DataFrame>")
    stem: str  # file stem (a directory's name, a glob's fixed part), used in default quarantine names
    column_types: dict[str, str]  # source column -> DuckDB type, in source order
    files: tuple[str, ...] = ()  # the files read, in reading order (a glob or directory: several)


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
    if path.stat().st_size == 0:
        raise ClvInputError(f"{path}: file is empty (0 bytes); export the orders again")


# --------------------------------------------------------------------------------------------
# Several files as one source: a glob or a directory


@dataclass(frozen=True)
class FileSet:
    """The files a glob or a directory names, all CSV or all Parquet, in reading order."""

    label: str  # the path or pattern as given
    stem: str  # a name for '{source}' in the quarantine path
    files: tuple[Path, ...]
    fmt: str  # "csv" or "parquet"
    hive_keys: tuple[str, ...]  # Hive partition keys in the paths ("year", "month"), or ()


def is_file_set(path: str) -> bool:
    """True when ``path`` names several files: a directory, or a glob that is not an existing file."""
    local = Path(path.removeprefix("file://"))
    if local.is_file():
        return False
    return local.is_dir() or glob.has_magic(str(local))


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _files_under(root: Path) -> list[Path]:
    found = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if not _hidden(d)]
        found.extend(Path(directory) / name for name in names)
    return found


def _file_format(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    with path.open("rb") as handle:
        return "parquet" if handle.read(4) == _PARQUET_MAGIC else None


def _hive_keys(path: Path) -> tuple[str, ...]:
    return tuple(part.split("=", 1)[0] for part in path.parent.parts if "=" in part and not part.startswith("="))


def _set_stem(text: str) -> str:
    """``exports/`` → exports, ``exports/*.csv`` → exports, ``dumps/orders-2024-*.csv`` → orders-2024."""
    for part in reversed(Path(text.removeprefix("file://")).parts):
        fixed = re.split(r"[*?\[]", part)[0]
        fixed = (fixed.split(".")[0] or fixed).strip("-_. ")
        if fixed and "=" not in fixed and fixed not in ("..", "/"):
            return re.sub(r"[^A-Za-z0-9_.-]", "_", fixed)
    return "orders"


def _listing(paths: list[Path], limit: int = 3) -> str:
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit:,} more" if len(paths) > limit else "")


def resolve_file_set(text: str, fmt: str = "auto") -> FileSet:
    """The files of a glob or directory, checked: some exist, one format, the same Hive keys."""
    local = text.removeprefix("file://")
    root = Path(local)
    pattern = glob.has_magic(local) and not root.is_dir()
    if pattern:
        matches = sorted(glob.glob(local, recursive=True))
        if not matches:
            raise ClvInputError(
                f"{text}: no file matches this pattern; check the path given to --orders "
                "(quote it, so that the shell leaves the * to clv)"
            )
        candidates = [f for m in map(Path, matches) for f in (_files_under(m) if m.is_dir() else [m])]
    elif root.is_dir():
        candidates = _files_under(root)
    else:
        raise ClvInputError(f"{text}: file not found; check the path given to --orders")
    files = sorted(
        {f for f in candidates if f.is_file() and not _hidden(f.name) and f.stat().st_size > 0}, key=_natural_key
    )
    if not files:
        what = "matches" if pattern else "holds"
        raise ClvInputError(
            f"{text}: {what} no data file ({len(candidates):,} file(s), all empty or named '.…'/'_…'); "
            "export the orders again or fix the path"
        )
    if fmt not in ("auto", "csv", "parquet"):
        raise ClvInputError(f"{text}: a glob or a directory is read as CSV or Parquet files, not as {fmt}")
    kinds: dict[str | None, list[Path]] = {}
    for path in files:
        kinds.setdefault(fmt if fmt != "auto" else _file_format(path), []).append(path)
    unknown = kinds.pop(None, [])
    if unknown:
        raise ClvInputError(
            f"{text}: {len(unknown):,} file(s) neither .csv nor .parquet ({_listing(unknown)}); remove them, "
            f"narrow the pattern (e.g. --orders '{root if not pattern else root.parent}/*.csv') or set orders.format"
        )
    if len(kinds) > 1:
        raise ClvInputError(
            f"{text}: mixes CSV ({_listing(kinds['csv'], 2)}) and Parquet ({_listing(kinds['parquet'], 2)}) files; "
            f"read one kind, e.g. --orders '{root if not pattern else root.parent}/*.parquet'"
        )
    keys = {path: _hive_keys(path) for path in files}
    distinct = sorted(set(keys.values()))
    if len(distinct) > 1:
        first, other = files[0], next(p for p in files if keys[p] != keys[files[0]])
        raise ClvInputError(
            f"{text}: the Hive partition keys differ between files: {first} has "
            f"({', '.join(keys[first]) or 'none'}), {other} has ({', '.join(keys[other]) or 'none'}); "
            "point --orders at one partitioned tree"
        )
    (kind,) = kinds
    return FileSet(label=text, stem=_set_stem(text), files=tuple(files), fmt=str(kind), hive_keys=distinct[0])


def _columns_of(con: duckdb.DuckDBPyConnection, reader: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]


def check_same_columns(fileset: FileSet, columns_of: Any) -> None:
    """Every file has the first file's column names (in any order); else one line naming the
    first file that differs, what it lacks and what it adds. ``columns_of(path)`` lists a file's
    columns."""
    reference = fileset.files[0]
    expected = columns_of(reference)
    differing = []
    for path in fileset.files[1:]:
        got = columns_of(path)
        if set(got) != set(expected):
            differing.append((path, got))
    if not differing:
        return
    path, got = differing[0]
    lacks = [c for c in expected if c not in got]
    adds = [c for c in got if c not in expected]
    parts = ([f"lacks {', '.join(map(repr, lacks))}"] if lacks else []) + (
        [f"has {', '.join(map(repr, adds))} in addition"] if adds else []
    )
    raise ClvInputError(
        f"{fileset.label}: the files do not have the same columns: {path} {' and '.join(parts)} "
        f"compared with {reference} ({len(differing):,} of {len(fileset.files):,} files differ); "
        "export them with the same columns or read them separately"
    )


def _csv_options(source: SourceSettings) -> list[str]:
    options = ["header = true", "all_varchar = true", "null_padding = true"]
    if source.delimiter:
        options.append(f"delim = {quote_literal(source.delimiter)}")
    return options


def _csv_encoding(path: Path, source: SourceSettings) -> str:
    if source.encoding:
        try:
            return codecs.lookup(source.encoding).name
        except LookupError:
            raise ClvInputError(
                f"--encoding {source.encoding}: unknown encoding; use e.g. utf-8, latin-1, cp1252"
            ) from None
    return _detect_encoding(path)


def _csv_header(path: Path, encoding: str, delimiter: str, quote: str) -> list[str]:
    """The first line of a CSV file, parsed (cheap: no sniffing of the file)."""
    import csv

    codec = "utf-8-sig" if encoding in ("utf-8", "utf-8-sig") else encoding
    with path.open(encoding=codec, newline="") as handle:
        return next(csv.reader(handle, delimiter=delimiter, quotechar=quote or '"'), [])


def _open_csv_files(
    con: duckdb.DuckDBPyConnection, fileset: FileSet, source: SourceSettings, workdir: Path
) -> None:
    """The CSV files as one table, numbered in reading order (DuckDB keeps the files' order).

    The dialect and column names are sniffed once, on the first file; every file's header line
    is then compared with the first's. Identical headers are read without sniffing each file
    again (a per-file sniff costs ~0.1 s); headers with the same names in another order are read
    by name (``union_by_name``, which sniffs every file)."""
    read_paths = []
    for index, path in enumerate(fileset.files):
        encoding = _csv_encoding(path, source)
        if encoding in ("utf-8", "utf-8-sig"):
            read_paths.append(path)
            continue
        # Transcoded copies keep the Hive directories, so the partition columns survive.
        target = workdir.joinpath("utf8", f"{index:06d}", *[p for p in path.parent.parts if "=" in p])
        target.mkdir(parents=True, exist_ok=True)
        read_paths.append(_transcode_to_utf8(path, encoding, target))
    options = _csv_options(source)
    first = quote_literal(str(read_paths[0]))
    sniffed = con.execute(
        f"SELECT Delimiter, Quote, Escape, Columns FROM sniff_csv({first}, {', '.join(options)})"
    ).fetchall()[0]
    delimiter = source.delimiter or sniffed[0]
    quote = sniffed[1] if sniffed[1] and sniffed[1] != "(empty)" else '"'
    escape = sniffed[2] if sniffed[2] and sniffed[2] != "(empty)" else quote
    names = [column["name"] for column in sniffed[3]]
    headers = {path: _csv_header(path, "utf-8", delimiter, quote) for path in read_paths}  # all UTF-8 by now
    check_same_columns(
        FileSet(fileset.label, fileset.stem, tuple(read_paths), "csv", fileset.hive_keys),
        lambda p: headers[p],
    )
    listing = "[" + ", ".join(quote_literal(str(p)) for p in read_paths) + "]"
    hive = f"hive_partitioning = {'true' if fileset.hive_keys else 'false'}"
    same = all(headers[p] == headers[read_paths[0]] for p in read_paths) and len(names) == len(headers[read_paths[0]])
    if same:
        columns = "{" + ", ".join(f"{quote_literal(name)}: 'VARCHAR'" for name in names) + "}"
        reader = (
            f"read_csv({listing}, header = true, auto_detect = false, null_padding = true, columns = {columns}, "
            f"delim = {quote_literal(delimiter)}, quote = {quote_literal(quote)}, escape = {quote_literal(escape)}, "
            f"{hive})"
        )
    else:
        reader = f"read_csv({listing}, {', '.join(options)}, union_by_name = true, {hive})"
    con.execute(f"CREATE TEMP TABLE {RAW_VIEW} AS SELECT row_number() OVER () AS {ROW_COLUMN}, * FROM {reader}")


def _open_parquet_files(con: duckdb.DuckDBPyConnection, fileset: FileSet) -> None:
    """The Parquet files as one view; a row's number is the rows of the files before it plus its
    position in its file (no copy, no sort)."""
    check_same_columns(fileset, lambda p: _columns_of(con, f"read_parquet({quote_literal(str(p))})"))
    listing = "[" + ", ".join(quote_literal(str(p)) for p in fileset.files) + "]"
    counts = dict(con.execute(f"SELECT file_name, num_rows FROM parquet_file_metadata({listing})").fetchall())
    offsets, running = [], 0
    for path in fileset.files:
        offsets.append((str(path), running))
        running += int(counts[str(path)])
    con.execute("CREATE TEMP TABLE __clv_file_offsets (file VARCHAR, row_offset BIGINT)")
    con.executemany("INSERT INTO __clv_file_offsets VALUES (?, ?)", offsets)
    hive = "true" if fileset.hive_keys else "false"
    con.execute(
        f"CREATE TEMP VIEW {RAW_VIEW} AS SELECT r.* EXCLUDE (file_row_number, __clv_file), "
        f"o.row_offset + r.file_row_number + 1 AS {ROW_COLUMN} "
        f"FROM read_parquet({listing}, file_row_number = true, filename = '__clv_file', union_by_name = true, "
        f"hive_partitioning = {hive}) r JOIN __clv_file_offsets o ON r.__clv_file = o.file"
    )


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
    encoding = _csv_encoding(path, source)
    read_path = path if encoding in ("utf-8", "utf-8-sig") else _transcode_to_utf8(path, encoding, workdir)
    options = _csv_options(source)
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
        label, stem, files = "<DataFrame>", "dataframe", ()
    else:
        if not source.path:
            raise ClvInputError("no orders source: pass --orders PATH (or set orders.path in the config)")
        if _URL.match(source.path) and not source.path.startswith("file://"):
            label, stem, files = source.path.split("?")[0], "sql", ()
            _open_sql(con, source.path, label, source, workdir)
        elif is_file_set(source.path):
            fileset = resolve_file_set(source.path, source.format)
            label, stem, files = fileset.label, fileset.stem, tuple(str(p) for p in fileset.files)
            try:
                if fileset.fmt == "csv":
                    _open_csv_files(con, fileset, source, workdir)
                else:
                    _open_parquet_files(con, fileset)
            except duckdb.Error as exc:
                raise ClvInputError(
                    f"{label}: cannot read its {len(files):,} {fileset.fmt} files as one table: "
                    f"{describe_duckdb_error(exc)}"
                ) from None
        else:
            path = Path(source.path.removeprefix("file://"))
            _check_file(path)
            label, stem, files = str(path), path.name.split(".")[0], (str(path),)
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
    return OpenedSource(label=label, stem=stem, column_types=column_types, files=files)


def describe_duckdb_error(exc: duckdb.Error) -> str:
    """First meaningful line of a DuckDB error, with a hint for the common encoding failure."""
    text = str(exc)
    if "unicode" in text.lower() or "utf-8" in text.lower() or "utf8" in text.lower():
        return "text is not valid UTF-8; pass the file's encoding with --encoding (e.g. latin-1 or cp1252)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def closest_column(column: str, available: list[str]) -> str | None:
    """The source column a mistyped name most likely means: the same name in another case, else
    a close spelling, else the one column that contains it (or that it contains, 3+ letters)."""
    lowered = {name.lower(): name for name in available}
    if column.lower() in lowered:
        return lowered[column.lower()]
    similar = difflib.get_close_matches(column, available, n=1, cutoff=0.75)
    if similar:
        return similar[0]
    key = column.lower()
    containing = [
        name for name in available
        if min(len(key), len(name)) >= 3 and (key in name.lower() or name.lower() in key)
    ]  # fmt: skip
    if len(containing) == 1:
        return containing[0]
    # An abbreviation: "qty" for "quantity" (same first letter, the letters in order).
    abbreviating = [name for name in available if len(key) >= 3 and _abbreviates(key, name.lower())]
    return abbreviating[0] if len(abbreviating) == 1 else None


def _abbreviates(short: str, long: str) -> bool:
    if len(short) >= len(long) or short[0] != long[0]:
        return False
    letters = iter(long)
    return all(char in letters for char in short)


def check_columns(opened: OpenedSource, mapping: dict[str, str], *, amount_fix: str | None = None) -> None:
    """Every mapped column must exist; one line naming every missing one (with the field it is
    mapped to and the closest existing name), the columns that do exist, and the fix.
    ``amount_fix``: the other fix when the amount is missing and no column resembles it (an event
    log without amounts)."""
    available = list(opened.column_types)
    missing = [(field, column) for field, column in mapping.items() if column not in opened.column_types]
    if not missing:
        return
    if amount_fix and [f for f, _ in missing] == ["amount"] and closest_column(mapping["amount"], available) is None:
        raise ClvInputError(
            f"{opened.label}: no amount column '{mapping['amount']}'; columns are: {', '.join(available)}; "
            f"map it with --columns amount=<column> (or quantity=<column>,unit_price=<column>), or, for an event "
            f"log without amounts, pass {amount_fix}"
        )
    if len(missing) == 1:
        field, column = missing[0]
        closest = closest_column(column, available)
        hint = f"did you mean '{closest}'? " if closest else ""
        raise ClvInputError(
            f"{opened.label}: column '{column}' (mapped to {field}) not found; {hint}"
            f"columns are: {', '.join(available)}; fix with --columns {field}=<column>"
        )
    described = []
    for field, column in missing:
        closest = closest_column(column, available)
        described.append(f"'{column}' (mapped to {field}{f'; did you mean {closest!r}?' if closest else ''})")
    fix = ",".join(f"{field}=<column>" for field, _ in missing)
    raise ClvInputError(
        f"{opened.label}: {len(missing)} mapped columns not found: {', '.join(described)}; "
        f"columns are: {', '.join(available)}; fix with --columns {fix}"
    )
