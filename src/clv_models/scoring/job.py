"""``clv score``: orders at a cutoff + a registered scorer → the scores table, in customer chunks.

1. Load the scorer (``models:/name@alias``, ``runs:/…`` or an exported directory) and check the
   scoring settings against it (:func:`clv_models.scoring.batch.prepare_scoring`).
2. Ingest the orders with the usual validation and quarantine; check that they have the optional
   columns the scorer's features read.
3. RFM of every customer in the scorer's unit.
4. For each chunk of ``scoring.chunk_customers`` customers (ordered by ``customer_id``): the
   point-in-time features in DuckDB (the feature table of
   :func:`clv_models.features.customer.customer_features`), then
   :func:`clv_models.scoring.batch.score_batch` (the registered pyfunc's ``predict``, labels,
   provenance; ``recommended_products`` from the chunk's products when the scorer was trained with
   them, :mod:`clv_models.scoring.cross_sell`), and one Parquet row group (or CSV block) appended
   to a temporary file. Nothing is fitted here: a customer's row is the same in any chunk, alone
   or in the whole base.
5. Rename the temporary file over ``out`` (a killed job leaves the previous output intact; its
   hidden ``.<name>.<pid>.<id>.partial`` sibling is deleted by the next run), and log a scoring
   run: counts, tier/risk/segment/stage shares, and the population stability index of features
   and scores against training.

Deterministic: the same orders, cutoff, model and ``scored_at`` give byte-identical output.
``scored_at`` defaults to the current second (UTC); ``SOURCE_DATE_EPOCH`` (the reproducible-builds
convention) or the ``scored_at`` argument pins it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError
from clv_models.scoring.batch import ScoreResult

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import Settings

SCORE_TABLE = "score_customers"


def _chunk_filter(chunk: int, first_id: str, last_id: str) -> str:
    """SQL condition selecting one chunk's customers in the point-in-time features.

    The semi-join on ``score_customers`` alone is exact but DuckDB applies it only on top of the
    whole point-in-time query, so every chunk would rebuild the orders of *all* customers. A
    chunk is a run of customers sorted by ``customer_id`` in DuckDB, so the range of its first and
    last id (literals) holds every member; DuckDB pushes that range down into the scans of
    ``order_candidates``, ``credit_matches`` and ``lines``, and the semi-join then only checks
    the chunk's own rows (it keeps the filter exact whatever else falls in the range).
    """
    from clv_models.data.sources import quote_literal

    return (
        f"customer_id BETWEEN {quote_literal(first_id)} AND {quote_literal(last_id)} "
        f"AND customer_id IN (SELECT customer_id FROM {SCORE_TABLE} WHERE chunk = {chunk})"
    )


def _output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise ClvInputError(f"{path}: unknown output format; use a .parquet or .csv file name")


class _Writer:
    """Appends chunks to a temporary sibling of ``path``; ``commit`` renames it over ``path``.

    The sibling is created at once, so a directory that cannot be written fails before any work;
    a write the machine refuses later (disk full, a file-size limit) is a one-line
    :class:`~clv_models.errors.ClvEnvironmentError` and the previous output stays."""

    def __init__(self, path: Path) -> None:
        from clv_models.data.io import partial_sibling, remove_stale_partials

        self.path = path
        self.format = _output_format(path)
        self.tmp = partial_sibling(path)
        self._parquet: Any = None
        self._csv: Any = None
        with self._refused():
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_partials(path)  # leftovers of killed runs
            open(self.tmp, "wb").close()  # noqa: SIM115 - a probe: can we write here at all?

    @contextmanager
    def _refused(self) -> Iterator[None]:
        from clv_models.errors import environment_error

        try:
            yield
        except OSError as exc:
            self.abort()
            raise environment_error(exc, self.path, "the scores") from None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._refused():
            if self.format == "parquet":
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if self._parquet is None:
                    self._parquet = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
                self._parquet.write_table(table)
            else:
                header = self._csv is None
                if header:
                    self._csv = open(self.tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
                frame.to_csv(self._csv, index=False, header=header, lineterminator="\n")

    def commit(self) -> None:
        with self._refused():
            if self._parquet is not None:
                self._parquet.close()
            if self._csv is not None:
                self._csv.close()
            with open(self.tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(self.tmp, self.path)

    def abort(self) -> None:
        for handle in (self._parquet, self._csv):
            if handle is not None:
                try:
                    handle.close()
                except Exception:  # noqa: BLE001 - already failing; the temp file goes either way
                    pass
        self._parquet = self._csv = None
        try:
            if self.tmp.exists():
                self.tmp.unlink()
        except OSError:  # the directory itself is unusable: nothing of ours is in it
            pass


def _chunk_table(con: Any, rfm: pd.DataFrame, chunk_size: int) -> int:
    """The ``score_customers`` table (customer_id, chunk): chunks are runs of ``chunk_size`` of
    rfm_summary's rows (sorted by customer_id in DuckDB). Returns the number of chunks."""
    import pandas as pd

    chunk_of = pd.DataFrame(
        {"customer_id": rfm["customer_id"].to_numpy(dtype=object), "chunk": np.arange(len(rfm)) // chunk_size}
    )
    con.register("score_chunk_of", chunk_of)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SCORE_TABLE} AS SELECT * FROM score_chunk_of")
    con.unregister("score_chunk_of")
    return -(-len(rfm) // chunk_size)


# order_candidates comes out of ingestion sorted by customer already (data.ingest.ingestion_plan).
CLUSTERED_TABLES = ("credit_matches",)


def _cluster_by_customer(con: Any) -> None:
    """Rewrite the tables the point-in-time features scan in ``customer_id`` order.

    DuckDB keeps min/max statistics per row group (about 122k rows), so on a table sorted by
    customer a chunk's ``customer_id BETWEEN`` range (:func:`_chunk_filter`) reads only its own
    row groups; unsorted, every chunk reads (and, beyond the memory limit, reloads from disk) the
    whole table: at 10M customers / 31M orders, 6 s per chunk against 0.6 s. Ingestion writes
    ``order_candidates`` sorted already; the credits are re-sorted here. The rows are the same,
    so are the features (the SQL sums money as DECIMAL and orders everything it depends on).
    ``lines`` is left as it is: only orders whose lines straddle the cutoff read it, and at the
    ingestion cutoff there are none.
    """
    for table in CLUSTERED_TABLES:
        con.execute(f"CREATE TEMP TABLE score_sorted AS SELECT * FROM {table} ORDER BY customer_id")
        con.execute(f"DROP TABLE {table}")
        con.execute(f"ALTER TABLE score_sorted RENAME TO {table}")


def _chunk_features(ingested: Any, chunk: int, rfm: pd.DataFrame, as_of: dt.date, unit: str) -> pd.DataFrame:
    """The feature table of one chunk: ``rfm`` holds this chunk's rows, in DuckDB's customer_id order."""
    from clv_models.features.churn import churn_snapshots
    from clv_models.features.customer import join_features

    first, last = str(rfm["customer_id"].iat[0]), str(rfm["customer_id"].iat[-1])
    daily = churn_snapshots(ingested, [as_of], labels=False, customer_filter=_chunk_filter(chunk, first, last))
    return join_features(rfm, daily, as_of, unit)


def score(
    settings: Settings,
    *,
    model_uri: str | None = None,
    out: str | Path | None = None,
    scored_at: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    tracker: Any = None,
    log_run: bool = True,
) -> ScoreResult:
    """Score every customer with a purchase on or before the cutoff (module docstring)."""
    from clv_models.scoring.batch import log_scoring, prepare_scoring

    out_path = Path(out or settings.scoring.out)
    _output_format(out_path)
    plan = prepare_scoring(settings, model_uri, scored_at)
    opening = _Opening(settings, plan.tracking_uri) if log_run and tracker is None else None
    writer = _Writer(out_path)  # before any work: an output that cannot be written fails first
    try:
        result, report = _score_into(settings, plan, writer, progress)
    except BaseException:
        writer.abort()
        raise
    if log_run:
        log_scoring(lambda: tracker or opening.result(), result, report, settings)  # type: ignore[union-attr]
    return result


def _score_into(settings: Settings, plan: Any, writer: _Writer, progress: Any) -> tuple[ScoreResult, Any]:
    from clv_models.data.ingest import ingest
    from clv_models.data.order_products import has_order_products
    from clv_models.features.churn import optional_columns
    from clv_models.features.rfm import rfm_summary
    from clv_models.scoring.batch import Tally, check_optional_columns, finish, score_batch
    from clv_models.scoring.cross_sell import NO_PRODUCTS_WARNING, XSELL_COLUMN, chunk_products

    scorer = plan.scorer
    out_path = writer.path
    with ingest(
        plan.orders,
        as_of=settings.features.as_of,
        validation=settings.validation,
        quarantine_path=settings.validation.quarantine,
        memory_limit=settings.scoring.duckdb_memory_limit,
    ) as ingested:
        report = ingested.report
        if report.orders == 0 or report.cutoff is None:
            raise ClvInputError(f"{settings.orders.path}: no usable orders to score (see the quarantine)")
        input_warnings = check_optional_columns(
            scorer, optional_columns(ingested.con), settings.scoring.accept_missing_columns
        )
        as_of = report.cutoff
        wants_products = XSELL_COLUMN in plan.columns
        if wants_products and not has_order_products(ingested.con):
            input_warnings.append(NO_PRODUCTS_WARNING)
        rfm = rfm_summary(ingested, as_of=as_of, unit=scorer.unit)  # type: ignore[arg-type]
        if rfm.empty:
            raise ClvInputError(f"{settings.orders.path}: no customer has a purchase on or before {as_of}")
        # The point-in-time features read order_candidates, credit_matches and lines; the netted
        # orders table is done with, and it is a third of DuckDB's memory.
        ingested.con.execute("DROP TABLE orders")
        chunk_size = settings.scoring.chunk_customers
        chunks = _chunk_table(ingested.con, rfm, chunk_size)
        if chunks > 1:
            _cluster_by_customer(ingested.con)
        tally = Tally(scorer)
        for chunk in range(chunks):
            rows = rfm.iloc[chunk * chunk_size : (chunk + 1) * chunk_size].reset_index(drop=True)
            features = _chunk_features(ingested, chunk, rows, as_of, scorer.unit)
            products = chunk_products(ingested.con, rows["customer_id"]) if wants_products else None
            scores, counted = score_batch(
                plan, features, labels_in_output=settings.scoring.labels_in_output, products=products
            )
            writer.write(scores)
            tally.merge(counted)
            if progress is not None:
                progress(chunk + 1, chunks)
        result = finish(plan, settings, tally, out=out_path, chunks=chunks, as_of=as_of, input_warnings=input_warnings)
        writer.commit()
    return result, report


class _Opening:
    """A Tracker built on a background thread: MLflow's SQL store takes ~2 s to import and set up,
    which then overlaps DuckDB's ingestion (DuckDB releases the GIL while it works)."""

    def __init__(self, settings: Settings, uri: str) -> None:
        import threading

        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(settings, uri), daemon=True)
        self._thread.start()

    def _run(self, settings: Settings, uri: str) -> None:
        from clv_models.tracking import Tracker

        try:
            self._value = Tracker(settings.tracking.score_experiment, root=settings.tracking.root, uri=uri)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in result()
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
