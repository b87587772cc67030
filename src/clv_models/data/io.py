"""Writing tables atomically: a complete file appears under its final name, or nothing does."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from clv_models.errors import ClvInputError, environment_error

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def format_for(path: Path, fmt: str | None = None) -> str:
    if fmt:
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ClvInputError(f"{path}: unknown output format; use a .parquet or .csv file name") from None


def _temporary_sibling(path: Path) -> Path:
    # Same directory, so the final rename never crosses file systems (and stays atomic).
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


PARTIAL_SUFFIX = ".partial"


def partial_sibling(path: Path) -> Path:
    """A hidden sibling for a long write, named with this process id so a later run can tell a
    crashed writer's leftover (dead pid) from a live one."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete partial siblings of ``path`` left by writers that no longer run (e.g. SIGKILL)."""
    removed = []
    for candidate in path.parent.glob(f".{path.name}.*{PARTIAL_SUFFIX}"):
        pid_text = candidate.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_target(path: str | Path, what: str = "output") -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write to; on success fsync it and rename it over
    ``path``, on any failure delete it. Readers see the old file or the complete new one. A write
    the machine refuses (disk full, permission denied, …) is a :class:`ClvEnvironmentError` that
    names ``path`` and ``what`` was being written."""
    path = Path(path)
    tmp = _temporary_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise environment_error(exc, path, what) from None
    finally:
        try:
            if tmp.exists():
                tmp.unlink()
        except OSError:  # the directory itself is unusable: nothing was written there
            pass


def write_relation_atomic(
    con: duckdb.DuckDBPyConnection, query: str, path: str | Path, fmt: str | None = None, what: str = "output"
) -> Path:
    """Run ``query`` and write its result to ``path`` (Parquet or CSV), atomically."""
    path = Path(path)
    fmt = format_for(path, fmt)
    options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER true"
    with atomic_target(path, what) as tmp:
        literal = "'" + str(tmp).replace("'", "''") + "'"
        try:
            con.execute(f"COPY ({query}) TO {literal} ({options})")
        except duckdb.IOException as exc:  # DuckDB's own file writer: the reason is in the message
            raise environment_error(exc, path, what) from None
    return path


def write_frame_atomic(
    frame: pd.DataFrame, path: str | Path, fmt: str | None = None, what: str = "output"
) -> Path:
    """Write a DataFrame to ``path`` (Parquet or CSV by extension), atomically."""
    path = Path(path)
    fmt = format_for(path, fmt)
    with atomic_target(path, what) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path
