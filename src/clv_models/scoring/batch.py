"""What both scoring engines do after the features: one path, so the engines cannot drift apart.

* :func:`prepare_scoring`: load the scorer, refuse settings that training fixed and that the
  scoring config changes (one line, exit 2: retrain), and resolve the labels to write.
* :func:`check_optional_columns`: the optional order columns the scorer's features read
  (quantity, category, country, channel) must be in the scoring orders too, unless the user
  accepts their absence explicitly (then a warning, printed and logged).
* :func:`score_batch`: a feature table in, the rows to write out (type coercion, the registered
  pyfunc's ``predict`` with its signature enforcement, labels, provenance, chosen columns) and a
  :class:`Tally` of decision codes and drift bins.
* :func:`finish`: the merged tallies → :class:`ScoreResult` (shares, PSI, warnings), and
  :func:`log_scoring`, the ``clv-score`` run.

The embedded job (:mod:`clv_models.scoring.job`) and the Spark job
(:mod:`clv_models.scoring.spark_job`) differ only in how they compute the feature table and write
the rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError
from clv_models.features.churn import OPTIONAL_SOURCES

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import LabelSettings, Settings, SourceSettings
    from clv_models.scorer import CustomerScorer
    from clv_models.tracking.registry import LoadedScorer

DECISIONS = ("value_tier", "churn_risk", "segment", "lifecycle_stage")
# Config sections the registered scorer fixed at training: a scoring config may repeat them, not
# change them (the scores would silently follow the pickled copies).
TRAINING_SECTIONS = (
    "valuation",
    "churn",
    "value",
    "segments",
    "tiers",
    "churn_risk",
    "lifecycle",
    "actions",
    "ltv",
    "gate",
    "xsell",
)


@dataclass
class ScoreResult:
    out: Path
    customers: int
    chunks: int
    model_uri: str
    model_version: str | None
    as_of: dt.date
    scored_at: dt.datetime
    distributions: dict[str, dict[str, float]] = field(default_factory=dict)
    psi: dict[str, float] = field(default_factory=dict)
    drift_warnings: list[str] = field(default_factory=list)
    input_warnings: list[str] = field(default_factory=list)
    experiment_groups: dict[str, dict[str, int]] = field(default_factory=dict)  # customers per experiment and group
    run_id: str | None = None
    tracking_error: str | None = None  # the scores are written but the run is not logged


def scored_at(value: dt.datetime | None) -> dt.datetime:
    """The ``scored_at`` stamp: ``value``, else ``SOURCE_DATE_EPOCH``, else now (UTC, seconds)."""
    if value is not None:
        return value.replace(microsecond=0, tzinfo=None)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return dt.datetime.fromtimestamp(int(epoch), dt.UTC).replace(tzinfo=None)
        except ValueError:
            raise ClvInputError(f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds") from None
    return dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)


def _differences(given: dict[str, Any], trained: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(given) | set(trained)):
        a, b = given.get(key), trained.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} = {json.dumps(a, default=str)} (trained: {json.dumps(b, default=str)})")
    return out


def check_training_sections(settings: Settings, scorer: CustomerScorer, model_uri: str) -> None:
    """One-line error when the scoring config changes a section the scorer fixed at training."""
    for section in TRAINING_SECTIONS:
        if section not in settings.model_fields_set:
            continue
        given = getattr(settings, section).model_dump(mode="json")
        trained = getattr(scorer.settings, section).model_dump(mode="json")
        changed = _differences(given, trained)
        if changed:
            raise ClvInputError(
                f"[{section}] is fixed when the model is trained, but the scoring config changes it "
                f"({'; '.join(changed[:3])}{' …' if len(changed) > 3 else ''}); model {model_uri} would ignore "
                f"it: drop [{section}] from the scoring config, or retrain with it (clv train)"
            )


def score_labels(settings: Settings, scorer: CustomerScorer) -> LabelSettings:
    """The display labels to write: the scoring config's ``[labels]`` when it has one, else the
    training's."""
    return settings.labels if "labels" in settings.model_fields_set else scorer.settings.labels


def check_unknown_output_columns(settings: Settings) -> None:
    from clv_models.experiments import EXPERIMENT_COLUMNS
    from clv_models.scorer import PROVENANCE_COLUMNS, SCORE_COLUMNS
    from clv_models.scoring.cross_sell import XSELL_COLUMN

    known = (*SCORE_COLUMNS, *PROVENANCE_COLUMNS, XSELL_COLUMN, *EXPERIMENT_COLUMNS)
    unknown = [c for c in settings.scoring.columns if c not in known]
    if unknown:
        raise ClvInputError(
            f"scoring.columns: unknown column(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )


def output_columns(settings: Settings) -> list[str]:
    """The scores columns to write: ``scoring.columns`` (``customer_id`` first, always), else all;
    with ``[[experiments]]``, ``experiment`` and ``experiment_group`` always (last unless chosen)."""
    from clv_models.experiments import EXPERIMENT_COLUMNS
    from clv_models.scorer import PROVENANCE_COLUMNS, SCORE_COLUMNS

    chosen = settings.scoring.columns
    if not chosen:
        columns = [*SCORE_COLUMNS, *PROVENANCE_COLUMNS]
    else:
        columns = ["customer_id", *(c for c in chosen if c != "customer_id")]
    if settings.experiments:
        columns += [c for c in EXPERIMENT_COLUMNS if c not in columns]
    return columns


@dataclass(frozen=True, kw_only=True)  # built here and on Spark workers: by name only
class ScoringPlan:
    """What a scoring job settled before reading any order."""

    model_uri: str
    tracking_uri: str
    loaded: LoadedScorer
    labels: LabelSettings
    columns: list[str]
    stamp: dt.datetime
    orders: SourceSettings  # the scoring orders, read with or without amounts as the scorer was trained
    experiments: tuple[Any, ...] = ()  # [[experiments]]: ExperimentSettings, a score-time setting

    @property
    def scorer(self) -> CustomerScorer:
        return self.loaded.scorer


def scoring_orders(settings: Settings, scorer: CustomerScorer, model_uri: str) -> SourceSettings:
    """``settings.orders`` read as the scorer was trained: a frequency-only scorer (decisions D41)
    reads no amounts; a scorer trained on amounts refuses to score without them."""
    trained = scorer.frequency_only
    if settings.orders.frequency_only and not trained:
        raise ClvInputError(
            f"model {model_uri} was trained on order amounts; it cannot score orders without them "
            "(--frequency-only): map the amount column, or train a frequency-only model"
        )
    return settings.orders.model_copy(update={"frequency_only": True}) if trained else settings.orders


def prepare_scoring(settings: Settings, model_uri: str | None, stamp: dt.datetime | None) -> ScoringPlan:
    """Load the scorer and check the scoring settings against it (module docstring)."""
    from clv_models.scoring.cross_sell import with_cross_sell_column
    from clv_models.tracking.mlflow_tracking import tracking_uri
    from clv_models.tracking.registry import load_scorer

    if settings.orders.path is None:
        raise ClvInputError("no orders given: pass --orders PATH or set [orders] path in the config")
    check_unknown_output_columns(settings)
    model_uri = model_uri or settings.scoring.model
    uri = settings.tracking.uri or tracking_uri(settings.tracking.root)
    loaded = load_scorer(model_uri, tracking_uri=uri)
    unit = loaded.scorer.unit
    if settings.features.unit != unit and "unit" in settings.features.model_fields_set:
        raise ClvInputError(
            f"model {model_uri} was trained in unit {unit!r} but features.unit is {settings.features.unit!r}; "
            f"drop the override or train a {settings.features.unit!r} model"
        )
    check_training_sections(settings, loaded.scorer, model_uri)
    from clv_models.experiments import check_experiment_actions

    check_experiment_actions(settings.experiments, loaded.scorer.settings.actions, model_uri)
    return ScoringPlan(
        model_uri=model_uri,
        tracking_uri=uri,
        loaded=loaded,
        labels=score_labels(settings, loaded.scorer),
        columns=with_cross_sell_column(output_columns(settings), loaded.scorer, settings.scoring.columns),
        stamp=scored_at(stamp),
        orders=scoring_orders(settings, loaded.scorer, model_uri),
        experiments=tuple(settings.experiments),
    )


def check_optional_columns(scorer: CustomerScorer, available: set[str], accepted: tuple[str, ...]) -> list[str]:
    """The optional order columns the scorer needs but the scoring orders lack: a one-line error,
    or, for those the user accepts (``scoring.accept_missing_columns``), one warning each."""
    missing = [c for c in scorer.optional_columns if c not in available]
    refused = [c for c in missing if c not in accepted]
    if refused:
        fix = ",".join(f"{c}=<source column>" for c in refused)
        raise ClvInputError(
            f"the model's features read the order column(s) {', '.join(refused)}, which the scoring orders do not "
            f"map; add them with --columns {fix}, or score without them with "
            + " ".join(f"--accept-missing-column {c}" for c in refused)
            + " (their features are then missing and the scores differ from training's)"
        )
    return [
        f"order column {c!r} is missing: the feature {OPTIONAL_SOURCES[c]!r} is scored as missing "
        "(accepted with --accept-missing-column)"
        for c in missing
    ]


def fill_missing_optional(table: pd.DataFrame, scorer: CustomerScorer) -> pd.DataFrame:
    """``table`` with the (accepted) missing optional features as missing values (a new frame;
    the caller's is not modified)."""
    categorical = set(scorer.categorical_inputs)
    needed = set(scorer.input_columns)
    absent = [OPTIONAL_SOURCES[s] for s in scorer.optional_columns if OPTIONAL_SOURCES[s] not in table.columns]
    if not absent:
        return table
    table = table.copy(deep=False)
    for column in absent:
        if column in needed:
            table[column] = None if column in categorical else np.nan
    return table


class Tally:
    """Rows per decision code and per drift bin, added up over batches (counts merge exactly)."""

    def __init__(self, scorer: CustomerScorer) -> None:
        self.codes: dict[str, Counter[str]] = {c: Counter() for c in DECISIONS}
        self.bins = {name: np.zeros(len(ref.shares), dtype=np.int64) for name, ref in scorer.drift_reference.items()}
        self.rows = 0
        self.groups: Counter[str] = Counter()  # "<experiment>/<group>" → customers ([[experiments]])

    def add_groups(self, assigned: pd.DataFrame) -> None:
        """Count the customers of a batch per experiment and group (those no experiment covers are not counted)."""
        covered = assigned.dropna(subset=["experiment"])
        self.groups.update((covered["experiment"] + "/" + covered["experiment_group"]).tolist())

    def add(self, codes: pd.DataFrame, features: pd.DataFrame, scorer: CustomerScorer) -> None:
        from clv_models.evaluation.drift import bin_counts

        self.rows += len(codes)
        for column, counter in self.codes.items():
            counter.update(codes[column].tolist())
        for name, reference in scorer.drift_reference.items():
            values = codes[name] if name in codes.columns else features[name]
            self.bins[name] += bin_counts(reference, values)

    def merge(self, other: Tally) -> None:
        self.rows += other.rows
        for column, counter in other.codes.items():
            self.codes[column].update(counter)
        for name, counts in other.bins.items():
            self.bins[name] += counts
        self.groups.update(other.groups)

    def to_json(self) -> str:
        return json.dumps(
            {"rows": self.rows, "codes": self.codes, "bins": {k: v.tolist() for k, v in self.bins.items()},
             "groups": self.groups}  # fmt: skip
        )

    @classmethod
    def from_json(cls, text: str, scorer: CustomerScorer) -> Tally:
        data = json.loads(text)
        tally = cls(scorer)
        tally.rows = int(data["rows"])
        tally.codes = {c: Counter(data["codes"][c]) for c in DECISIONS}
        tally.bins = {k: np.asarray(v, dtype=np.int64) for k, v in data["bins"].items()}
        tally.groups = Counter(data.get("groups", {}))
        return tally


def score_batch(
    plan: ScoringPlan, features: pd.DataFrame, *, labels_in_output: bool, products: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, Tally]:
    """One batch of the feature table → (the rows to write, their tally); see the module docstring.
    ``products``: the batch's customers' (customer_id, product_id), for ``recommended_products``."""
    import pandas as pd

    from clv_models.scorer import SCORE_COLUMNS
    from clv_models.scoring.cross_sell import XSELL_COLUMN, recommended_products
    from clv_models.tracking.registry import signature_frame
    from clv_models.valuation.labels import apply_labels

    scorer = plan.scorer
    features = fill_missing_optional(features, scorer)
    frame = signature_frame(scorer, features)
    codes = plan.loaded.predict_codes(frame)
    tally = Tally(scorer)
    tally.add(codes, features, scorer)
    scores = apply_labels(codes, plan.labels.language, plan.labels.overrides) if labels_in_output else codes
    scores = scores[list(SCORE_COLUMNS)].copy()
    scores["as_of"] = pd.to_datetime(scores["as_of"], format="%Y-%m-%d").astype("datetime64[s]")
    scores["model_uri"] = plan.model_uri
    scores["model_version"] = plan.loaded.version or ""
    scores["scored_at"] = pd.Timestamp(plan.stamp)
    if XSELL_COLUMN in plan.columns:  # from the action codes, whatever labels are written (D43)
        scores[XSELL_COLUMN] = recommended_products(codes, products, scorer)
    if "experiment" in plan.columns or "experiment_group" in plan.columns:
        from clv_models.experiments.assignment import experiment_frame

        # From the action *codes*: the written action may be a display label.
        assigned = experiment_frame(codes, plan.experiments)
        tally.add_groups(assigned)
        scores = scores.join(assigned)
    return scores[plan.columns], tally


def finish(
    plan: ScoringPlan,
    settings: Settings,
    tally: Tally,
    *,
    out: Path,
    chunks: int,
    as_of: dt.date,
    input_warnings: list[str],
) -> ScoreResult:
    """The job's result from the merged tally: shares per decision, PSI per drift column."""
    from clv_models.evaluation.drift import population_stability_from_counts

    scorer = plan.scorer
    if tally.rows == 0:
        raise ClvInputError(f"{settings.orders.path}: no customers to score at {as_of}")
    psi = {name: population_stability_from_counts(scorer.drift_reference[name], c) for name, c in tally.bins.items()}
    limit = settings.scoring.psi_warning
    return ScoreResult(
        out=out,
        customers=tally.rows,
        chunks=chunks,
        model_uri=plan.model_uri,
        model_version=plan.loaded.version,
        as_of=as_of,
        scored_at=plan.stamp,
        distributions={
            column: {str(code): n / tally.rows for code, n in sorted(counter.items(), key=lambda kv: str(kv[0]))}
            for column, counter in tally.codes.items()
        },
        psi=psi,
        drift_warnings=[f"{name}: PSI {value:.3f} > {limit:g}" for name, value in psi.items() if value > limit],
        input_warnings=input_warnings,
        experiment_groups=experiment_groups(tally.groups),
    )


def experiment_groups(groups: Counter[str]) -> dict[str, dict[str, int]]:
    """``{"<experiment>": {"control": n, "treatment": n}}`` from a tally's ``"<experiment>/<group>"`` counts."""
    out: dict[str, dict[str, int]] = {}
    for key, count in sorted(groups.items()):
        name, _, group = key.rpartition("/")
        out.setdefault(name, {"control": 0, "treatment": 0})[group] = int(count)
    return out


PENDING_SUFFIX = ".clv-score-run.json"


# The quality report's metrics a scoring run logs: rows, quarantine and dropped customers.
SCORE_DATA_METRICS = ("data_rows_read", "data_rows_quarantined", "data_malformed_share", "data_quarantined_",
                      "data_customers_dropped", "data_duplicate_rows")  # fmt: skip


def scoring_record(result: ScoreResult, report: Any, experiment: str) -> dict[str, Any]:
    """What the ``clv-score`` run holds: experiment, run name, tags and metrics (counts, shares
    per decision code, PSI per column, warnings as tags)."""
    tags = {
        "model_uri": result.model_uri,
        "model_version": result.model_version or "",
        "cutoff": result.as_of.isoformat(),
        "scored_at": result.scored_at.isoformat(),
        "out": str(result.out),
        "drift_warnings": "; ".join(result.drift_warnings) or "none",
        "input_warnings": "; ".join(result.input_warnings) or "none",
    }
    metrics: dict[str, float] = {
        "scored_customers": float(result.customers),
        "score_chunks": float(result.chunks),
        **{key: value for key, value in report.metrics().items() if key.startswith(SCORE_DATA_METRICS)},
        "score_input_warnings": float(len(result.input_warnings)),
    }
    for column, shares in result.distributions.items():
        for code, share in shares.items():
            metrics[f"share_{column}_{code}"] = share
    for name, value in result.psi.items():
        metrics[f"psi_{name}"] = value
    for name, groups in result.experiment_groups.items():
        for group, count in groups.items():
            metrics[f"experiment_{name}_{group}"] = float(count)
    return {"experiment": experiment, "run_name": f"score-{result.as_of.isoformat()}", "tags": tags, "metrics": metrics}


def log_record(tracker: Any, record: dict[str, Any]) -> str:
    """Log a :func:`scoring_record` as a run of ``tracker``'s experiment; returns the run id."""
    with tracker.start_run(record["run_name"], tags=record["tags"]) as run:
        run.log_metrics(record["metrics"])
        return run.run_id


def log_scoring(open_tracker: Any, result: ScoreResult, report: Any, settings: Settings) -> None:
    """Log the scoring run; when the tracking store fails (unreachable, not creatable), keep the
    scores, save the record beside them (``<out>.clv-score-run.json``, logged later with
    ``clv log-run FILE``) and set ``result.tracking_error``. ``open_tracker``: () -> Tracker."""
    from clv_models.errors import ClvEnvironmentError

    record = scoring_record(result, report, settings.tracking.score_experiment)
    from clv_models.tracking.mlflow_tracking import store_errors

    try:
        tracker = open_tracker()
        with store_errors(tracker.uri):
            result.run_id = log_record(tracker, record)
    except ClvEnvironmentError as exc:
        result.tracking_error = f"{exc}{save_pending_record(result.out, record)}"


def save_pending_record(out: Path, record: dict[str, Any], suffix: str = PENDING_SUFFIX) -> str:
    """Write a run record the tracking store did not take beside ``out`` (``<out><suffix>``, by
    default ``.clv-score-run.json``; logged later with ``clv log-run FILE``); returns the clause that
    tells the user where it is."""
    pending = Path(f"{out}{suffix}")
    try:
        pending.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError:
        return "; the run could not be saved either"
    return f"; the run is saved in {pending} (log it later: clv log-run {pending})"
