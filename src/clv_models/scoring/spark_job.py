"""``clv score --engine spark``: the batch job of :mod:`clv_models.scoring.job` on Apache Spark.

The same steps and the same definitions, distributed:

1. Load the scorer on the driver; ship its model directory to the executors (``addFile``).
2. Ingest on Spark (:func:`clv_models.data.spark.spark_ingest`: the embedded engine's SQL,
   transpiled).
3. RFM in the scorer's unit and daily, and the point-in-time churn features at the cutoff, as
   Spark SQL (the same texts as the embedded engine's).
4. The daily BG/NBD and Gamma-Gamma behind the churn features, fitted on the driver from the
   distinct rows with their customer counts (the likelihoods need nothing else, DESIGN.md §6).
5. ``mapInPandas``: each partition runs the registered pyfunc model (signature enforcement and
   all) on its customers, exactly as an embedded chunk does.
6. Parquet output, range-partitioned by ``customer_id`` and sorted within files (one file per
   ``scoring.chunk_customers`` customers), optionally ``partitionBy`` columns, committed
   atomically (:func:`clv_models.data.spark.write_parquet_atomic`); counts, shares and PSI are
   aggregated from the written rows and logged as a ``clv-score`` run.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import Settings
    from clv_models.scoring.job import ScoreResult

DECISIONS = ("value_tier", "churn_risk", "segment", "lifecycle_stage")
PARTITION_COLUMNS = ("as_of", *DECISIONS)
_SCORERS: dict[str, Any] = {}  # per Python worker: model directory → loaded scorer


def _spark_type(column: str) -> str:
    if column in ("as_of",):
        return "timestamp_ntz"
    if column == "scored_at":
        return "timestamp_ntz"
    if column in (
        "customer_id", "value_tier", "churn_risk", "segment", "lifecycle_stage", "next_best_action",
        "model_uri", "model_version",
    ):  # fmt: skip
        return "string"
    return "double"


def _known_codes(scorer: Any, column: str) -> tuple[str, ...]:
    """Every code ``column`` can take under this scorer (for one-pass counting)."""
    from clv_models.valuation.lifecycle import STAGES

    if column in ("value_tier", "churn_risk"):
        return ("high", "medium", "low")
    if column == "lifecycle_stage":
        return tuple(STAGES)
    segments = scorer.models.segmenter
    return tuple(str(name) for name in getattr(segments, "names_", ()) or ())


def _load_on_worker(directory: str) -> Any:
    from pyspark import SparkFiles

    from clv_models.tracking.registry import load_scorer

    loaded = _SCORERS.get(directory)
    if loaded is None:
        local = Path(directory) if Path(directory).is_dir() else Path(SparkFiles.get(directory))
        loaded = _SCORERS[directory] = load_scorer(str(local), tracking_uri="")
    return loaded


def _partition_scorer(
    model_dir: str,
    btyd: Any,
    window_days: int,
    as_of: str,
    unit: str,
    labels_in_output: bool,
    provenance: dict[str, Any],
    drift_edges: dict[str, tuple[float, ...]],
) -> Any:
    """The function ``mapInPandas`` runs: feature frames in, score rows (+ hidden codes/bins) out."""

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        from clv_models.features.churn import btyd_feature_values
        from clv_models.scoring.customers import DAILY_RENAMES
        from clv_models.scoring.scorer import PROVENANCE_COLUMNS, SCORE_COLUMNS
        from clv_models.tracking.registry import signature_frame
        from clv_models.valuation.labels import apply_labels

        loaded = _load_on_worker(model_dir)
        scorer = loaded.scorer
        daily_names = {renamed: name for name, renamed in DAILY_RENAMES.items()}
        for table in batches:
            if table.empty:
                continue
            daily = table[list(daily_names)].rename(columns=daily_names)
            for name, values in btyd_feature_values(daily, btyd, window_days=window_days).items():
                table[name] = values
            for column in scorer.categorical_inputs:
                if column not in table.columns:
                    table[column] = None
            table.attrs.update(as_of=as_of, unit=unit)
            codes = loaded.predict_codes(signature_frame(scorer, table), as_of=as_of)
            labels = scorer.settings.labels
            scores = apply_labels(codes, labels.language, labels.overrides) if labels_in_output else codes
            out = scores[list(SCORE_COLUMNS)].copy()
            out["as_of"] = pd.to_datetime(out["as_of"]).astype("datetime64[us]")
            for column in PROVENANCE_COLUMNS:
                out[column] = provenance[column]
            out["scored_at"] = pd.Series(out["scored_at"]).astype("datetime64[us]")
            for column in DECISIONS:
                out[f"_code_{column}"] = codes[column].to_numpy()
            for name, edges in drift_edges.items():
                values = np.asarray(codes[name] if name in codes.columns else table[name], dtype=float)
                bins = np.searchsorted(np.asarray(edges), values, side="right").astype(np.int64)
                out[f"_bin_{name}"] = np.where(np.isfinite(values), bins, -1)
            yield out

    return score_batches


def spark_customer_features(ingested: Any, rfm_table: str, as_of: dt.date) -> Any:
    """Spark DataFrame of the scoring features: the RFM in ``rfm_table`` (the scorer's unit)
    joined with the point-in-time churn features at ``as_of`` (daily RFM renamed as in
    :data:`clv_models.scoring.customers.DAILY_RENAMES`) — what an embedded chunk holds before the
    BTYD features are added."""
    from clv_models.features.churn import CATEGORICAL, CUTOFFS_TABLE, features_sql, point_in_time_orders_sql
    from clv_models.scoring.customers import DAILY_RENAMES

    sql = ingested.sql
    sql.table(CUTOFFS_TABLE, f"SELECT CAST('{as_of.isoformat()}' AS DATE) AS cutoff", persist=False)
    extras = set(ingested.extras) & {"quantity", "category", *CATEGORICAL}
    sql.table("pit", point_in_time_orders_sql(0, sorted(extras)))
    # Unordered: the rows are joined and range-partitioned next, so a global sort would be wasted.
    daily = sql.frame(features_sql(extras), unordered=True).drop("cutoff")
    for name, renamed in DAILY_RENAMES.items():
        daily = daily.withColumnRenamed(name, renamed)
    return sql.spark.table(rfm_table).join(daily, on="customer_id", how="inner")


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
    from clv_models.data.spark import check_spark_requirements, spark_ingest, spark_session, write_parquet_atomic
    from clv_models.evaluation.drift import population_stability_from_counts
    from clv_models.features.churn import fit_btyd_features
    from clv_models.features.rfm import summary_sql
    from clv_models.scoring.job import ScoreResult, _log_scoring, _scored_at, load_checked_scorer
    from clv_models.scoring.scorer import PROVENANCE_COLUMNS, SCORE_COLUMNS

    check_spark_requirements()
    from pyspark.sql import functions as F

    if settings.orders.path is None:
        raise ClvInputError("no orders given: pass --orders PATH or set [orders] path in the config")
    partition_by = tuple(settings.spark.partition_by)
    unknown = [c for c in partition_by if c not in PARTITION_COLUMNS]
    if unknown:
        raise ClvInputError(
            f"cannot partition the scores by {', '.join(unknown)}; choose from {', '.join(PARTITION_COLUMNS)}"
        )
    model_uri = model_uri or settings.scoring.model
    out_path = str(out or settings.scoring.out)
    if out_path.lower().endswith(".csv"):
        raise ClvInputError(f"{out_path}: the Spark engine writes a Parquet directory; drop the .csv suffix")
    uri, loaded = load_checked_scorer(settings, model_uri)
    scorer = loaded.scorer
    window_days = scorer.settings.churn.window_days
    stamp = _scored_at(scored_at)
    say = progress or (lambda _step: None)
    say("starting Spark")
    session = spark or spark_session(settings.spark.master or None, conf=settings.spark.conf)
    with spark_ingest(
        session,
        settings.orders,
        as_of=settings.features.as_of,
        validation=settings.validation,
        quarantine_path=settings.validation.quarantine,
        progress=say,
    ) as ingested:
        sql, report = ingested.sql, ingested.report
        say("RFM")
        as_of = report.as_of or report.last_order_ts.date()
        rfm = sql.table("score_rfm", summary_sql("orders", as_of, scorer.unit))  # type: ignore[arg-type]
        customers = rfm.count()
        if customers == 0:
            raise ClvInputError(f"{settings.orders.path}: no customer has a purchase on or before {as_of}")
        daily_name = "score_rfm"
        if scorer.unit != "D":
            daily_name = "score_rfm_daily"
            sql.table(daily_name, summary_sql("orders", as_of, "D"))
        say("fitting the daily BG/NBD and Gamma-Gamma")
        # BG/NBD and Gamma-Gamma depend on the data only through these distinct rows.
        distinct = sql.frame(
            f"SELECT frequency, recency, T, monetary_value, count(*) AS customers FROM {daily_name} "
            "GROUP BY frequency, recency, T, monetary_value ORDER BY frequency, recency, T, monetary_value"
        ).toPandas()
        btyd = fit_btyd_features(
            distinct,
            as_of,
            penalizer=scorer.settings.churn.btyd_penalizer,
            weights=distinct["customers"].to_numpy(dtype=float),
        )
        say("point-in-time features")
        # Materialised once: the range partitioner samples it, then the scorer reads it.
        table = sql.register("score_features", spark_customer_features(ingested, "score_rfm", as_of))
        drift_edges = {name: tuple(ref.edges) for name, ref in scorer.drift_reference.items()}
        provenance = {"model_uri": model_uri, "model_version": loaded.version or "", "scored_at": stamp}
        columns = [*SCORE_COLUMNS, *PROVENANCE_COLUMNS]
        hidden = [f"_code_{c}" for c in DECISIONS] + [f"_bin_{name}" for name in drift_edges]
        schema = ", ".join(
            [f"`{c}` {_spark_type(c)}" for c in columns]
            + [f"`{c}` string" for c in hidden[: len(DECISIONS)]]
            + [f"`{c}` long" for c in hidden[len(DECISIONS) :]]
        )
        model_dir = loaded.path
        if model_dir is None:  # pragma: no cover - load_scorer always records it
            raise ClvInputError(f"model {model_uri}: no local copy to ship to the executors")
        shipped = str(model_dir)
        if not session.sparkContext.master.startswith("local"):
            session.sparkContext.addFile(str(model_dir), recursive=True)
            shipped = Path(model_dir).name
        scorer_fn = _partition_scorer(
            shipped, btyd, window_days, as_of.isoformat(), scorer.unit,
            settings.scoring.labels_in_output, provenance, drift_edges,
        )  # fmt: skip
        files = max(1, math.ceil(customers / settings.scoring.chunk_customers))
        scored = (
            table.repartitionByRange(files, "customer_id")
            .mapInPandas(scorer_fn, schema)
            .sortWithinPartitions("customer_id")
        )
        say("scoring")
        scored = sql.register("scored", scored)  # computed here, once: written, then counted
        say("writing")
        written = write_parquet_atomic(scored.select(*columns), out_path, partition_by=partition_by)
        say("shares and drift")
        # One pass over the scored rows: a count per decision code and per drift bin.
        known = {c: _known_codes(scorer, c) for c in DECISIONS}
        tallies = [F.count(F.lit(1)).alias("rows")]
        for column, codes in known.items():
            tallies += [F.count_if(F.col(f"_code_{column}") == code).alias(f"{column}={code}") for code in codes]
        for name, reference in scorer.drift_reference.items():
            tallies += [
                F.count_if(F.col(f"_bin_{name}") == index).alias(f"{name}#{index}")
                for index in range(len(reference.shares))
            ]
        row = scored.agg(*tallies).collect()[0].asDict()
        total = row.pop("rows")
        counts = {c: {code: row[f"{c}={code}"] for code in codes if row[f"{c}={code}"]} for c, codes in known.items()}
        found = sum(sum(per_code.values()) for per_code in counts.values())
        if found != total * len(DECISIONS):  # a code outside the model's known sets: count them all
            counts = {c: dict(scored.groupBy(f"_code_{c}").count().collect()) for c in DECISIONS}
        sql.drop("scored")
    if total != customers:  # pragma: no cover - a join lost or duplicated customers
        raise ClvInputError(f"scored {total} rows for {customers} customers; please report")
    psi = {
        name: population_stability_from_counts(
            reference, np.array([row[f"{name}#{index}"] for index in range(len(reference.shares))], dtype=float)
        )
        for name, reference in scorer.drift_reference.items()
    }
    limit = settings.scoring.psi_warning
    result = ScoreResult(
        out=Path(written) if "://" not in written else Path(out_path),
        customers=int(total),
        chunks=files,
        model_uri=model_uri,
        model_version=loaded.version,
        as_of=as_of,
        scored_at=stamp,
        distributions={
            c: {str(code): n / total for code, n in sorted(counts[c].items(), key=lambda kv: str(kv[0]))}
            for c in DECISIONS
        },
        psi=psi,
        drift_warnings=[f"{name}: PSI {value:.3f} > {limit:g}" for name, value in psi.items() if value > limit],
    )
    if log_run:
        from clv_models.tracking import Tracker

        tracker = tracker or Tracker(settings.tracking.score_experiment, root=settings.tracking.root, uri=uri)
        result.run_id = _log_scoring(tracker, result, report)
    return result
