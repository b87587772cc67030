"""``clv score --engine spark``: the batch job of :mod:`clv_models.scoring.job` on Apache Spark.

The same steps and the same definitions, distributed:

1. Load the scorer on the driver and check the settings against it
   (:func:`clv_models.scoring.batch.prepare_scoring`); ship its model directory to the executors
   (``addFile``).
2. Ingest on Spark (:func:`clv_models.data.spark.spark_ingest`: the embedded engine's SQL,
   transpiled).
3. The feature table at the cutoff (:func:`clv_models.features.spark.spark_customer_features`,
   the same SQL texts as the embedded engine's).
4. ``mapInPandas``: each partition runs :func:`clv_models.scoring.batch.score_batch` (the
   registered pyfunc model with its signature enforcement, labels, provenance), exactly as an
   embedded chunk does. Nothing is fitted. When the scorer recommends products (decisions D43),
   each feature row carries its customer's distinct products from ingestion's ``order_products``
   (the embedded engine's SQL, transpiled), and they are passed to ``score_batch`` as the
   embedded engine passes a chunk's.
5. Parquet output, range-partitioned by ``customer_id`` and sorted within files (one file per
   ``scoring.chunk_customers`` customers), optionally ``partitionBy`` columns, committed
   atomically (:func:`clv_models.data.spark.write_parquet_atomic`); the batches' tallies
   (codes, drift bins) are merged into shares and PSI and logged as a ``clv-score`` run.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any


from clv_models.errors import ClvInputError
from clv_models.scoring.batch import DECISIONS

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import Settings
    from clv_models.scoring.batch import ScoreResult, ScoringPlan

PARTITION_COLUMNS = ("as_of", *DECISIONS)
TALLY_COLUMN = "_tally"  # one JSON tally per Arrow batch, on its first row; never written
PRODUCTS_COLUMN = "_products"  # a customer's distinct products, sorted; an input of the scorer, never written
_SCORERS: dict[str, Any] = {}  # per Python worker: model directory → loaded scorer


def _spark_type(column: str) -> str:
    if column in ("as_of", "scored_at"):
        return "timestamp_ntz"
    if column in ("customer_id", *DECISIONS, "next_best_action", "model_uri", "model_version", TALLY_COLUMN,
                  "recommended_products", "experiment", "experiment_group"):  # fmt: skip
        return "string"
    return "double"


def _load_on_worker(directory: str) -> Any:
    from pyspark import SparkFiles

    from clv_models.tracking.registry import load_scorer

    loaded = _SCORERS.get(directory)
    if loaded is None:
        local = Path(directory) if Path(directory).is_dir() else Path(SparkFiles.get(directory))
        loaded = _SCORERS[directory] = load_scorer(str(local), tracking_uri="")
    return loaded


def _with_customer_products(features: Any) -> Any:
    """``features`` (a Spark DataFrame, one row per customer) plus :data:`PRODUCTS_COLUMN`: the
    customer's distinct ``product_id`` of ``order_products``, sorted; null for a customer without
    any. Carried on the feature row, so a customer's products reach whichever batch scores them."""
    from pyspark.sql import functions as F

    from clv_models.data.order_products import ORDER_PRODUCTS_TABLE

    products = (
        features.sparkSession.table(ORDER_PRODUCTS_TABLE)
        .groupBy("customer_id")
        .agg(F.array_sort(F.collect_set("product_id")).alias(PRODUCTS_COLUMN))
    )
    return features.join(products, "customer_id", "left")  # one row per key on the right: no duplicates


def _partition_scorer(model_dir: str, plan: ScoringPlan, labels_in_output: bool) -> Any:
    """The function ``mapInPandas`` runs: feature tables in, :func:`score_batch` rows out, each
    Arrow batch's :class:`~clv_models.scoring.batch.Tally` as JSON on its first row."""
    model_uri, version, labels, columns, stamp = plan.model_uri, plan.loaded.version, plan.labels, plan.columns, plan.stamp
    experiments, orders = plan.experiments, plan.orders

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import dataclasses

        import pandas as pd

        from clv_models.scoring.batch import ScoringPlan, score_batch
        from clv_models.scoring.cross_sell import products_from_lists

        loaded = dataclasses.replace(_load_on_worker(model_dir), uri=model_uri, version=version)
        worker_plan = ScoringPlan(model_uri=model_uri, tracking_uri="", loaded=loaded, labels=labels, columns=columns,
                                  stamp=stamp, orders=orders, experiments=experiments)  # fmt: skip
        for table in batches:
            if table.empty:
                continue
            products = None
            if PRODUCTS_COLUMN in table.columns:  # not a feature: out of the table, into products=
                products = products_from_lists(table["customer_id"], table.pop(PRODUCTS_COLUMN))
            table.attrs["unit"] = loaded.scorer.unit
            scores, tally = score_batch(worker_plan, table, labels_in_output=labels_in_output, products=products)
            for column in ("as_of", "scored_at"):
                if column in scores.columns:
                    scores[column] = pd.to_datetime(scores[column]).astype("datetime64[us]")
            scores[TALLY_COLUMN] = None
            scores.loc[scores.index[0], TALLY_COLUMN] = tally.to_json()
            yield scores

    return score_batches


def score_spark(
    settings: Settings,
    *,
    model_uri: str | None = None,
    out: str | Path | None = None,
    scored_at: dt.datetime | None = None,
    spark: Any = None,
    tracker: Any = None,
    log_run: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ScoreResult:
    """Score every customer with a purchase on or before the cutoff, on Spark (module docstring).

    ``spark``: an existing session (else one is started from ``[spark]``: master, conf);
    ``out``: a Parquet directory (local path or a URI Spark can write), partitioned by
    ``spark.partition_by``."""
    from clv_models.data.spark import (
        check_spark_requirements,
        probe_local_output,
        spark_ingest,
        spark_session,
        write_parquet_atomic,
    )
    from clv_models.features.spark import spark_customer_features
    from clv_models.scoring.batch import Tally, check_optional_columns, finish, log_scoring, prepare_scoring
    from clv_models.scoring.cross_sell import NO_PRODUCTS_WARNING, XSELL_COLUMN

    check_spark_requirements()
    partition_by = tuple(settings.spark.partition_by)
    unknown = [c for c in partition_by if c not in PARTITION_COLUMNS]
    if unknown:
        raise ClvInputError(
            f"cannot partition the scores by {', '.join(unknown)}; choose from {', '.join(PARTITION_COLUMNS)}"
        )
    out_path = str(out or settings.scoring.out)
    if out_path.lower().endswith(".csv"):
        raise ClvInputError(f"{out_path}: the Spark engine writes a Parquet directory; drop the .csv suffix")
    probe_local_output(out_path, "the scores")  # an unwritable --out fails now, not after the job
    plan = prepare_scoring(settings, model_uri, scored_at)
    missing_partitions = [c for c in partition_by if c not in plan.columns]
    if missing_partitions:
        raise ClvInputError(f"spark.partition_by {', '.join(missing_partitions)}: not among scoring.columns")
    scorer = plan.scorer
    say = progress or (lambda _step: None)
    say("starting Spark")
    session = spark or spark_session(settings.spark.master or None, conf=settings.spark.conf)
    with spark_ingest(
        session,
        plan.orders,
        as_of=settings.features.as_of,
        validation=settings.validation,
        quarantine_path=settings.validation.quarantine,
        progress=say,
    ) as ingested:
        sql, report = ingested.sql, ingested.report
        input_warnings = check_optional_columns(
            scorer, set(ingested.extras), settings.scoring.accept_missing_columns
        )
        wants_products = XSELL_COLUMN in plan.columns
        if wants_products and not ingested.products:
            input_warnings.append(NO_PRODUCTS_WARNING)
        as_of = report.cutoff
        say("point-in-time features")
        # Materialised once: counted, sampled by the range partitioner, then read by the scorer.
        features = spark_customer_features(ingested, as_of, scorer.unit)
        if wants_products and ingested.products:
            features = _with_customer_products(features)  # in the one materialisation, not per read
        table = sql.register("score_features", features)
        customers = table.count()
        if customers == 0:
            raise ClvInputError(f"{settings.orders.path}: no customer has a purchase on or before {as_of}")
        model_dir = plan.loaded.path
        if model_dir is None:  # pragma: no cover - load_scorer always records it
            raise ClvInputError(f"model {plan.model_uri}: no local copy to ship to the executors")
        shipped = str(model_dir)
        if not session.sparkContext.master.startswith("local"):
            session.sparkContext.addFile(str(model_dir), recursive=True)
            shipped = Path(model_dir).name
        schema = ", ".join(f"`{c}` {_spark_type(c)}" for c in [*plan.columns, TALLY_COLUMN])
        files = max(1, math.ceil(customers / settings.scoring.chunk_customers))
        scored = (
            table.repartitionByRange(files, "customer_id")
            .mapInPandas(_partition_scorer(shipped, plan, settings.scoring.labels_in_output), schema)
            .sortWithinPartitions("customer_id")
        )
        say("scoring")
        scored = sql.register("scored", scored)  # computed here, once: written, then tallied
        say("writing")
        written = write_parquet_atomic(
            scored.select(*plan.columns), out_path, partition_by=partition_by, what="the scores"
        )
        say("shares and drift")
        tally = Tally(scorer)
        for row in scored.where(f"{TALLY_COLUMN} IS NOT NULL").select(TALLY_COLUMN).collect():
            tally.merge(Tally.from_json(row[0], scorer))
        sql.drop("scored")
    if tally.rows != customers:  # pragma: no cover - a join lost or duplicated customers
        raise ClvInputError(f"scored {tally.rows} rows for {customers} customers; please report")
    result = finish(
        plan,
        settings,
        tally,
        out=Path(written) if "://" not in written else Path(out_path),
        chunks=files,
        as_of=as_of,
        input_warnings=input_warnings,
    )
    if log_run:
        from clv_models.tracking import Tracker

        def open_tracker() -> Any:
            return tracker or Tracker(settings.tracking.score_experiment, root=settings.tracking.root, uri=plan.tracking_uri)

        log_scoring(open_tracker, result, report, settings)
    return result
