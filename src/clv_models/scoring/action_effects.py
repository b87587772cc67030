"""``clv evaluate-actions``: old scores with A/B groups + the orders since → what each action did.

1. Read the scores that ``clv score`` wrote with ``[[experiments]]`` (a Parquet file or
   directory, or CSV): ``customer_id``, ``as_of`` (their cutoff), ``next_best_action``,
   ``experiment``, ``experiment_group``. Customers without an experiment are left out.
2. Ingest the orders with the usual source settings, column mapping, validation and quarantine
   (the same as ``clv score``), up to the end of ``until``.
3. Outcomes per customer in the window (cutoff, until], both ends whole days as everywhere
   (DESIGN.md §2: a date means the end of that day): any order (retention), the number of orders
   and their net value (returns netted as ingestion nets them). A customer without an order in
   the window counts with zeros; customers who are not in the scores (acquired since) are ignored.
4. :func:`clv_models.experiments.compare_groups` per experiment, action and outcome.
5. A ``clv-actions`` MLflow run: the effects as metrics with fixed names
   (``<experiment>.<action>.<outcome>_<statistic>``, see :func:`actions_record`), the table as the
   artifact ``action_effects.csv`` and its figure as ``action_effects.png``. When the tracking store fails, the effects are still returned
   (and written to ``out`` when given) and ``tracking_error`` says why; with ``out`` the run is
   saved beside it (``<out>.clv-actions-run.json``, ``clv log-run`` logs it later, without the
   artifact, which is ``out`` itself).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import Settings

SCORES_COLUMNS = ("customer_id", "as_of", "next_best_action", "experiment", "experiment_group")
PENDING_SUFFIX = ".clv-actions-run.json"
#: Per experiment, action and outcome, the statistics logged as metrics.
LOGGED_STATISTICS = ("treatment_mean", "control_mean", "difference", "ci_low", "ci_high", "p_value", "mde")


@dataclass
class ActionEffects:
    """What :func:`evaluate_actions` found (``effects``: :data:`clv_models.experiments.effects.EFFECT_COLUMNS`)."""

    scores: str
    orders: str
    as_of: dt.date
    until: dt.date
    customers: int  # customers of the scores in an experiment
    effects: pd.DataFrame
    alpha: float
    power: float
    warnings: list[str] = field(default_factory=list)
    out: Path | None = None
    run_id: str | None = None
    tracking_error: str | None = None


def read_experiment_scores(path: str | Path) -> tuple[pd.DataFrame, dt.date]:
    """The scores' customers in an experiment (columns :data:`SCORES_COLUMNS` but ``as_of``) and
    the scores' cutoff. One-line errors for a missing file, missing columns, no experiment or
    several cutoffs."""
    import pandas as pd

    source = Path(path)
    if not source.exists():
        raise ClvInputError(f"--scores {path}: no such file or directory; pass the scores clv score wrote")
    try:
        if source.suffix.lower() == ".csv":
            frame = pd.read_csv(source, dtype={"customer_id": str}, keep_default_na=True)
        else:
            frame = pd.read_parquet(source)
    except Exception as exc:  # noqa: BLE001 - any reader error is a file the user named
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClvInputError(
            f"--scores {path}: cannot read it as scores ({first}); pass a .parquet file or directory, or a .csv"
        ) from None
    missing = [c for c in SCORES_COLUMNS if c not in frame.columns]
    if missing:
        fix = (
            "score with an [[experiments]] section in the config (docs/experiments.md)"
            if set(missing) & {"experiment", "experiment_group"}
            else "pass the scores clv score wrote, with every column"
        )
        raise ClvInputError(f"--scores {path}: no column(s) {', '.join(missing)}; {fix}")
    cutoffs = pd.to_datetime(frame["as_of"].astype(str)).dt.date.unique()
    if len(cutoffs) != 1:
        shown = ", ".join(str(c) for c in sorted(cutoffs)[:3])
        raise ClvInputError(
            f"--scores {path}: the scores hold {len(cutoffs)} cutoffs ({shown}); pass the scores of one run"
        )
    tested = frame.loc[frame["experiment"].notna() & frame["experiment_group"].notna(), list(SCORES_COLUMNS)]
    if tested.empty:
        raise ClvInputError(
            f"--scores {path}: no customer is in an experiment; check that [[experiments]] names actions these "
            "scores give (column next_best_action)"
        )
    tested = tested.drop(columns="as_of").rename(columns={"next_best_action": "action"})
    tested["customer_id"] = tested["customer_id"].astype(str)
    repeated = tested["customer_id"].duplicated()
    if repeated.any():
        raise ClvInputError(
            f"--scores {path}: customer {tested.loc[repeated, 'customer_id'].iloc[0]} appears more than once "
            f"({int(repeated.sum()):,} repeats); pass the scores of one clv score run"
        )
    return tested.reset_index(drop=True), cutoffs[0]


def window_outcomes(con: Any, relation: str, customers: pd.DataFrame, as_of: dt.date, until: dt.date) -> pd.DataFrame:
    """``customers`` with ``retention`` (0/1), ``orders`` and ``revenue`` over (as_of, until]
    from the canonical orders in DuckDB (``relation``)."""
    start, end = as_of + dt.timedelta(days=1), until + dt.timedelta(days=1)
    window = con.execute(
        f"SELECT customer_id, count(*) AS orders, sum(amount) AS revenue FROM {relation} "
        "WHERE order_ts >= ? AND order_ts < ? GROUP BY customer_id",
        [dt.datetime.combine(start, dt.time()), dt.datetime.combine(end, dt.time())],
    ).df()
    window["customer_id"] = window["customer_id"].astype(str)
    merged = customers.merge(window, on="customer_id", how="left", validate="one_to_one")
    merged["orders"] = merged["orders"].fillna(0).astype("float64")
    merged["revenue"] = merged["revenue"].fillna(0.0).astype("float64")
    merged["retention"] = (merged["orders"] > 0).astype("float64")
    return merged


def evaluate_actions(
    settings: Settings,
    scores: str | Path,
    until: dt.date,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    out: str | Path | None = None,
    tracker: Any = None,
    log_run: bool = True,
) -> ActionEffects:
    """Measure treatment − control per experiment and action (module docstring)."""
    from clv_models.data.ingest import ingest
    from clv_models.experiments import compare_groups

    if settings.orders.path is None:
        raise ClvInputError("no orders given: pass --orders PATH or set [orders] path in the config")
    if not (0 < alpha < 1 and 0 < power < 1):  # before the orders are read, not after
        raise ClvInputError(f"--alpha {alpha} and --power {power}: both must lie strictly between 0 and 1")
    customers, as_of = read_experiment_scores(scores)
    if until <= as_of:
        raise ClvInputError(f"--until {until} is not after the scores' cutoff {as_of}; pass a later day")
    warnings: list[str] = []
    with ingest(
        settings.orders,
        as_of=until,
        validation=settings.validation,
        quarantine_path=settings.validation.quarantine,
        memory_limit=settings.scoring.duckdb_memory_limit,
    ) as ingested:
        last = ingested.report.last_order_ts
        if last is None:
            raise ClvInputError(f"{settings.orders.path}: no usable orders (see the quarantine)")
        if last.date() < until:
            warnings.append(
                f"the orders end on {last.date()}, before --until {until}: the window is not complete and the "
                "outcomes are low"
            )
        outcomes = window_outcomes(ingested.con, ingested.relation, customers, as_of, until)
    effects = compare_groups(outcomes, alpha=alpha, power=power)
    result = ActionEffects(
        scores=str(scores), orders=str(settings.orders.path), as_of=as_of, until=until, customers=len(customers),
        effects=effects, alpha=alpha, power=power, warnings=warnings,
    )  # fmt: skip
    if out is not None:
        from clv_models.data.io import atomic_target

        result.out = Path(out)
        with atomic_target(result.out, "the action effects") as tmp:
            effects.to_csv(tmp, index=False)
    if log_run:
        from clv_models.tracking import Tracker

        def open_tracker() -> Any:
            tracking = settings.tracking
            return tracker or Tracker(tracking.actions_experiment, root=tracking.root, uri=tracking.uri)

        log_actions(open_tracker, result, settings.tracking.actions_experiment)
    return result


def _key(text: Any) -> str:
    """A metric-name part: MLflow allows letters, digits, _ - . / space and colon; the rest → _."""
    return re.sub(r"[^\w\-. ]", "_", str(text))


def actions_record(result: ActionEffects, experiment: str) -> dict[str, Any]:
    """The ``clv-actions`` run: tags (scores, orders, cutoff, until, alpha, power, warnings) and
    metrics ``<experiment>.<action>.n_treatment`` / ``n_control`` and
    ``<experiment>.<action>.<outcome>_<statistic>`` for the statistics of
    :data:`LOGGED_STATISTICS` (missing values are skipped by the tracker and named in a tag)."""
    tags = {
        "scores": result.scores,
        "orders": result.orders,
        "cutoff": result.as_of.isoformat(),
        "until": result.until.isoformat(),
        "alpha": str(result.alpha),
        "power": str(result.power),
        "warnings": "; ".join(result.warnings) or "none",
    }
    metrics: dict[str, float] = {"experiment_customers": float(result.customers)}
    for row in result.effects.itertuples(index=False):
        prefix = f"{_key(row.experiment)}.{_key(row.action)}"
        metrics[f"{prefix}.n_treatment"] = float(row.n_treatment)
        metrics[f"{prefix}.n_control"] = float(row.n_control)
        for statistic in LOGGED_STATISTICS:
            metrics[f"{prefix}.{row.outcome}_{statistic}"] = float(getattr(row, statistic))
    return {
        "experiment": experiment,
        "run_name": f"actions-{result.as_of.isoformat()}-to-{result.until.isoformat()}",
        "tags": tags,
        "metrics": metrics,
    }


def effects_figure(effects: pd.DataFrame) -> Any:
    """One panel per outcome: each experiment and action's difference with its interval."""
    from matplotlib.figure import Figure

    from clv_models.experiments import OUTCOMES
    from clv_models.plotting import plot_action_effects

    rows = effects[["experiment", "action"]].drop_duplicates().shape[0]
    figure = Figure(figsize=(7.0, len(OUTCOMES) * (0.6 * rows + 1.5)), layout="constrained")
    for ax, outcome in zip(figure.subplots(len(OUTCOMES), 1), OUTCOMES):
        plot_action_effects(effects, outcome, ax=ax)
    return figure


def log_actions(open_tracker: Any, result: ActionEffects, experiment: str) -> None:
    """Log the run (the table as ``action_effects.csv``, its figure as ``action_effects.png``); a
    failing store sets ``result.tracking_error`` instead of raising, and with ``result.out`` saves
    the run beside it."""
    from clv_models.errors import ClvEnvironmentError
    from clv_models.scoring.batch import save_pending_record
    from clv_models.tracking.mlflow_tracking import store_errors

    record = actions_record(result, experiment)
    try:
        tracker = open_tracker()
        with store_errors(tracker.uri), tracker.start_run(record["run_name"], tags=record["tags"]) as run:
            run.log_metrics(record["metrics"])
            run.log_table(result.effects, "action_effects.csv")
            run.log_figure(effects_figure(result.effects), "action_effects.png")
            result.run_id = run.run_id
    except ClvEnvironmentError as exc:
        saved = save_pending_record(result.out, record, PENDING_SUFFIX) if result.out is not None else ""
        result.tracking_error = f"{exc}{saved}"
