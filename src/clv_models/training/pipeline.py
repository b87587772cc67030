"""``clv train``: orders → validated canonical orders → features → BG/NBD + Gamma-Gamma → churn
(Optuna) → value model (Optuna) → segments, tiers, lifecycle → out-of-time evaluation → MLflow →
gate → registry.

One parent MLflow run (experiment ``tracking.train_experiment``) with a child run per model
(``ltv``, ``churn`` with one grandchild per Optuna trial, ``value`` with one grandchild per trial
of its studies unless ``value.ranker = "btyd_clv"``, ``segments``). The parent holds the
flattened config as params, the provenance tags (:data:`TAGS`), every headline metric under its
fixed name (:data:`HEADLINE_METRICS`; the children hold the details), the data-quality summary,
the config file, the evaluation report (``evaluation_report.md`` and a self-contained
``report.html`` with every plot inline), and the scorer model, registered as
``tracking.model_name``. Aliases (:func:`decide_promotion`): ``champion`` moves to the new
version only when the gate passes and the new version beats the current champion on
``gate.compare_metric`` (or ``force``); otherwise the new version becomes ``challenger``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv_models.errors import ClvInputError
from clv_models.evaluation.holdout import METRIC_NAMES as LTV_METRIC_NAMES

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import Settings
    from clv_models.data.ingest import IngestResult
    from clv_models.scorer import CustomerScorer

TAGS = ("data_fingerprint", "cutoff", "unit", "git_commit", "package_version", "source")
HEADLINE_METRICS = (
    "data_rows_read",
    "data_orders",
    "data_customers",
    "data_rows_quarantined",
    "data_malformed_share",
    *LTV_METRIC_NAMES,
    "churn_auc",
    "churn_pr_auc",
    "churn_brier",
    "churn_log_loss",
    "churn_ece",
    "churn_top_decile_lift",
    "segments_silhouette",
    "segments_k",
    "tiers_high_value_share",
    "pareto_top20_value_share",
)


@dataclass
class GateDecision:
    passed: bool
    failures: list[str]
    compare_metric: str
    new_value: float
    champion_version: str | None
    champion_value: float | None
    promoted: bool
    alias: str
    reason: str


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    tracking_uri: str
    scorer: CustomerScorer
    metrics: dict[str, float]
    model_name: str | None = None
    model_version: str | None = None
    gate: GateDecision | None = None
    report: str = ""
    scored: pd.DataFrame | None = field(default=None, repr=False)
    quarantine_path: str | None = None
    tracking_error: str | None = None  # the store failed during training: nothing logged past it
    notices: list[str] = field(default_factory=list)  # what the user must read first (fits not identified, …)
    choices: list[str] = field(default_factory=list)  # which models the scorer uses, and why (one line each)
    saved_to: Path | None = None  # then the trained scorer and its run are here (`clv register`)


def _fingerprint(settings: Settings, ingested: IngestResult) -> str:
    from clv_models.tracking import file_sha256

    path = settings.orders.path
    if path and Path(path).is_file():
        return f"sha256:{file_sha256(path)}"
    # Not a file (a database URL or query): fingerprint the canonical orders instead.
    digest = ingested.con.execute(
        "SELECT md5(string_agg(customer_id || '|' || order_id || '|' || CAST(order_ts AS VARCHAR) || '|' "
        "|| CAST(amount AS VARCHAR), ',' ORDER BY customer_id, order_ts, order_id)) FROM orders"
    ).fetchall()[0][0]
    return f"orders-md5:{digest}"


def _quality_metrics(report: Any) -> dict[str, float]:
    """The quality report's metrics (``data_…``, including customers dropped by reason)."""
    return report.metrics()


def _fit_ltv(
    rfm: pd.DataFrame, model: str, penalizer: float, spend_penalizer: float, *, frequency_only: bool = False
) -> tuple[Any, Any, list[str]]:
    """The purchase model ``model`` and Gamma-Gamma on ``rfm`` (without amounts, the unit spend
    model, decisions D41). A purchase fit the data do not identify is refitted with the next
    penalizers of the ladder until one is (decisions D31); returns what the user must be told."""
    from clv_models.models import GammaGammaModel
    from clv_models.models.unit_spend import UnitSpendModel
    from clv_models.training.purchase_models import PENALTY_LADDER, fit_purchase_model

    repeat = rfm[rfm["frequency"] > 0]
    if len(repeat) < 20:
        raise ClvInputError(
            f"only {len(repeat)} customers bought twice or more before {rfm.attrs.get('as_of')}: too few to fit "
            f"{'the purchase models' if frequency_only else 'Gamma-Gamma'}; train on a longer history"
        )
    notes: list[str] = []
    purchases = fit_purchase_model(model, rfm, penalizer)
    if not purchases.converged_:
        first = purchases.diagnostic_
        for stronger in (p for p in PENALTY_LADDER if p > penalizer):
            remedy = fit_purchase_model(model, rfm, stronger)
            if remedy.converged_:
                notes.append(f"{model} at the cutoff is not identified ({first}); refitted with penalizer {stronger:g}")
                purchases = remedy
                break
        else:  # a penalty that does not identify the model only moves it to another edge: keep the plain fit
            notes.append(
                f"{model} at the cutoff is not identified ({first}): P(alive) is not reported (null in the scores) "
                "and lifecycle stages read the churn probability alone"
            )
    spend = UnitSpendModel() if frequency_only else GammaGammaModel(penalizer=spend_penalizer)
    return purchases, spend.fit(repeat), notes


def _ltv_evaluation(
    ingested: IngestResult, settings: Settings, cutoff: dt.date, run: Any, work: Path
) -> tuple[dict[str, float], Any]:
    """Fit on orders up to cutoff − holdout_days, choose the purchase model and judge on the
    holdout; log into ``run``. Returns the metrics and the :class:`PurchaseModelChoice`."""
    from clv_models.evaluation.report import write_ltv_report
    from clv_models.features.rfm import calibration_holdout
    from clv_models.training.purchase_models import choose_purchase_model

    unit = settings.features.unit
    holdout_days, notes = settings.ltv.holdout_days, []
    first = ingested.con.execute("SELECT min(order_ts) FROM orders").fetchall()[0][0]
    span = (cutoff - first.date()).days if first is not None else 0
    if span < 2 * holdout_days:
        # A short history keeps at least half of itself for calibration (decisions D33).
        holdout_days = max(SHORTEST_HOLDOUT_DAYS, span // 2)
        notes.append(
            f"the history ({span} days) is shorter than twice ltv.holdout_days ({settings.ltv.holdout_days}); "
            f"the lifetime-value models are judged on the last {holdout_days} days instead"
        )
    calibration_end = cutoff - dt.timedelta(days=holdout_days)
    split = calibration_holdout(ingested, calibration_end=calibration_end, holdout_end=cutoff, unit=unit)
    if len(split) < 50:
        raise ClvInputError(
            f"only {len(split)} customers bought before {calibration_end} (cutoff − ltv.holdout_days): too few to "
            "evaluate; lower ltv.holdout_days or train on a longer history"
        )
    choice = choose_purchase_model(split, settings.ltv.model, settings.ltv.penalizer)
    choice.notes[:0] = notes
    purchases, gamma_gamma, _ = _fit_ltv(
        split, choice.model, choice.penalizer, settings.ltv.penalizer, frequency_only=settings.orders.frequency_only
    )
    files = write_ltv_report(work / "ltv", purchases=purchases, spend=gamma_gamma, split=split, orders=ingested)
    metrics = files.report.metrics()
    if settings.orders.frequency_only:  # every order is worth 1: Gamma-Gamma's check has no spend to read
        metrics["gamma_gamma_frequency_monetary_corr"] = float("nan")
    run.log_params({"ltv": {**settings.ltv.model_dump(), "calibration_end": calibration_end.isoformat(),
                            "holdout_days_used": holdout_days}})  # fmt: skip
    run.log_params({"ltv_eval_purchases": purchases.params_, "ltv_eval_gamma_gamma": gamma_gamma.params_})
    run.log_params({"ltv_eval_purchase_model": choice.model, "ltv_eval_purchase_penalizer": choice.penalizer})
    for candidate in choice.candidates:
        key = f"ltv_candidate_{candidate.model}_{candidate.penalizer:g}".replace(".", "_")
        run.log_metrics({f"{key}_rmse": candidate.rmse, f"{key}_identified": float(candidate.identified)})
    run.log_metrics({**metrics, "ltv_eval_customers": float(len(split))})
    run.log_table(choice.table(), "ltv/purchase_models.csv")
    for path in [files.markdown, files.metrics, *files.plots.values()]:
        run.log_artifact(path, "ltv")
    return metrics, choice


def decide_promotion(
    metrics: dict[str, float],
    settings: Settings,
    champion_value: float | None,
    champion_version: str | None,
    *,
    force: bool = False,
) -> GateDecision:
    """Apply the gate (:class:`clv_models.config.GateSettings`) and the champion comparison."""
    gate = settings.gate
    failures = []
    for name in {**gate.minimum, **gate.maximum}:
        if name not in metrics:
            raise ClvInputError(f"gate metric {name!r} is not a training metric; known: {', '.join(sorted(metrics))}")
    for name, bound in gate.minimum.items():
        value = metrics[name]
        if not (math.isfinite(value) and value >= bound):
            failures.append(f"{name} {value:.4g} < {bound:g}")
    for name, bound in gate.maximum.items():
        value = metrics[name]
        if not (math.isfinite(value) and value <= bound):
            failures.append(f"{name} {value:.4g} > {bound:g}")
    if gate.compare_metric not in metrics:
        raise ClvInputError(f"gate.compare_metric {gate.compare_metric!r} is not a training metric")
    new_value = metrics[gate.compare_metric]
    passed = not failures
    if champion_value is None or not math.isfinite(champion_value):
        beats, why = True, "no current champion"
    else:
        delta = (new_value - champion_value) if gate.higher_is_better else (champion_value - new_value)
        beats = delta >= gate.min_improvement and (delta > 0 or gate.min_improvement == 0 and delta >= 0)
        why = f"{gate.compare_metric} {new_value:.4f} vs champion v{champion_version} {champion_value:.4f}"
    if force:
        promoted, reason = True, "forced (--force)" + ("" if passed else f"; gate failed: {'; '.join(failures)}")
    elif not passed:
        promoted, reason = False, f"gate failed: {'; '.join(failures)}"
    elif not beats:
        promoted, reason = False, f"does not beat the champion: {why}"
    else:
        promoted, reason = True, f"gate passed; {why}"
    return GateDecision(
        passed=passed,
        failures=failures,
        compare_metric=gate.compare_metric,
        new_value=new_value,
        champion_version=champion_version,
        champion_value=champion_value,
        promoted=promoted,
        alias="champion" if promoted else "challenger",
        reason=reason,
    )


def _champion(tracker: Any, name: str, metric: str) -> tuple[str | None, float | None]:
    from clv_models.tracking.registry import CHAMPION, alias_version

    version = alias_version(tracker, name, CHAMPION)
    if version is None:
        return None, None
    model_version = tracker.client.get_model_version(name, version)
    run = tracker.client.get_run(model_version.run_id)
    value = run.data.metrics.get(metric)
    return version, (float(value) if value is not None else None)


def train(
    settings: Settings,
    *,
    config_path: str | Path | None = None,
    force: bool = False,
    register: bool = True,
    progress: Callable[[str], None] | None = None,
    tracker: Any = None,
) -> TrainResult:
    """Run the whole training pipeline (module docstring); returns the run and the decision."""
    from clv_models.data.ingest import ingest
    from clv_models.features.customer import customer_features
    from clv_models.models.btyd_features import BtydChurnFeatures
    from clv_models.scorer import CustomerModels, CustomerScorer
    from clv_models.tracking import Tracker, git_commit, package_version
    from clv_models.tracking.mlflow_tracking import flatten_params
    from clv_models.training.churn import base_rate_shift_notice, calibration_notice, shipped_summary, train_churn
    from clv_models.training.segments import segmentation_markdown, train_segmentation
    from clv_models.training.value_basis import per_study_callback, train_value_step, value_table

    say = progress or (lambda message: None)
    if settings.orders.path is None:
        raise ClvInputError("no orders given: pass --orders PATH or set [orders] path in the config")
    tracking = settings.tracking
    if tracker is None:
        tracker = Tracker(tracking.train_experiment, root=tracking.root, uri=tracking.uri)
        # A store that fails after this point must not cost the training (decisions D29).
        tracker.continue_offline = True
    say("reading orders")
    with (
        ingest(
            settings.orders,
            as_of=settings.features.as_of,
            validation=settings.validation,
            quarantine_path=settings.validation.quarantine,
        ) as ingested,
        tempfile.TemporaryDirectory(prefix="clv-train-") as tmp,
    ):
        work = Path(tmp)
        report = ingested.report
        cutoff = report.cutoff
        unit = settings.features.unit
        tags = {
            "data_fingerprint": _fingerprint(settings, ingested),
            "cutoff": cutoff.isoformat(),
            "unit": unit,
            "git_commit": git_commit() or "unknown",
            "package_version": package_version(),
            "source": str(settings.orders.path),
        }
        with tracker.start_run(f"train-{cutoff.isoformat()}", tags=tags) as run:
            run.log_params(flatten_params(settings.model_dump(mode="json")))
            metrics = _quality_metrics(report)
            run.log_dict(report.to_dict(), "data/quality.json")
            if config_path is not None:
                run.log_artifact(config_path, "config")
            from clv_models.config import settings_to_toml

            run.log_text(settings_to_toml(settings), "config/effective_settings.toml")

            say("lifetime-value models: out-of-time evaluation")
            with run.child("ltv") as ltv_run, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ltv_metrics, choice = _ltv_evaluation(ingested, settings, cutoff, ltv_run, work)
                metrics.update(ltv_metrics)
                ltv_run.set_tags({"warnings": "; ".join(sorted({str(w.message) for w in caught}))[:5000]})
            notices = list(choice.notes)
            if settings.orders.frequency_only:
                notices.insert(0, FREQUENCY_ONLY_NOTICE)

            say(f"churn classifier: {settings.churn.n_trials} Optuna trials")
            with run.child("churn") as churn_run:
                churn = train_churn(
                    ingested, settings.churn, run=churn_run, trial_callbacks=(tracker.optuna_callback(churn_run),)
                )
            metrics.update(churn.metrics)
            window = churn.dataset.window
            if window is not None:
                notices += list(window.notes)
                run.set_tags({"churn_window_days": window.days, "churn_window_rule": window.rule})
                metrics["churn_window_days"] = float(window.days)
            if churn.shipped != "model" or churn.worse_than_baselines or churn.small_losses(churn.shipped):
                notices.append(shipped_summary(churn))
            # A poor calibration is said on its own only when no base-rate shift explains it.
            calibration = base_rate_shift_notice(churn) or calibration_notice(churn)
            if calibration is not None:
                notices.append(calibration)

            if settings.value.ranker == "auto":
                say(f"value model: {settings.value.n_trials} Optuna trials per part")
                with run.child("value") as value_run:
                    logged = (per_study_callback(tracker, value_run),)
                    value = train_value_step(ingested, churn, settings, run=value_run, trial_callbacks=logged)
            else:
                value = train_value_step(ingested, churn, settings)
            metrics.update(value.metrics)
            notices += value.notices

            say("features at the cutoff and production fits")
            features = customer_features(ingested, as_of=cutoff, unit=unit)
            rfm = features[["frequency", "recency", "T", "monetary_value"]]
            rfm.attrs["unit"] = unit
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                purchases, gamma_gamma, production_notes = _fit_ltv(
                    rfm, choice.model, choice.penalizer, settings.ltv.penalizer,
                    frequency_only=settings.orders.frequency_only,
                )  # fmt: skip
            notices += production_notes
            # The BTYD features' models, fitted at the cutoff as each snapshot's were at its own,
            # and stored in the scorer: scoring applies them and fits nothing (decisions D28).
            btyd_features = BtydChurnFeatures(
                window_days=churn.model.window_days, penalizer=settings.churn.btyd_penalizer
            ).fit(features)
            if btyd_features.bgnbd_ is not None and not btyd_features.bgnbd_.converged_:
                notices.append(
                    "the daily BG/NBD behind the churn classifier's BTYD features is not identified "
                    f"({btyd_features.bgnbd_.diagnostic_}); the classifier was trained on such fits too"
                )
            run.log_params({"purchases": purchases.params_, "gamma_gamma": gamma_gamma.params_})
            run.log_params({"purchase_model": choice.model, "purchase_penalizer": purchases.penalizer})
            run.log_params({"btyd_features": btyd_features.params})
            run.set_tags(
                {
                    "purchase_model": choice.model,
                    "purchase_model_choice": choice.reason,
                    "churn_score_shipped": churn.shipped,
                    "churn_shipped_reason": shipped_summary(churn),
                    "fits_not_identified": " | ".join(n for n in notices if "not identified" in n) or "none",
                    "notices": " | ".join(notices) or "none",
                }
            )
            models = CustomerModels(
                purchases=purchases, gamma_gamma=gamma_gamma, churn=churn.shipped_model, btyd_features=btyd_features
            )
            # The tiers are cut from value_forecast: the value step's ranker, else clv_h (decisions D42).
            values = value_table(features, models, settings, value)
            notices += [n for n in value.notices if n not in notices]
            run.set_tags(value.tags)
            if churn.model is not None:
                from clv_models.valuation.risk import ChurnRiskBands

                models.risk_bands = ChurnRiskBands.from_settings(settings.churn_risk).fit(values["churn_probability"])
                run.log_params({"churn_risk_cut_points": models.risk_bands.cut_points_})

            say("segments, tiers, lifecycle, actions")
            with run.child("segments") as segments_run:
                segmentation = train_segmentation(values, settings, models, run=segments_run)
            metrics.update(segmentation.metrics)

            from clv_models.training.cross_sell import train_cross_sell

            say("cross-sell from co-purchases")
            xsell = train_cross_sell(ingested, settings, cutoff, run)
            if xsell is not None:  # only when a product column is mapped (decisions D43)
                models.affinity = xsell.model
                metrics.update(xsell.metrics)
                notices += xsell.notes

            scorer = CustomerScorer(
                models=models,
                settings=settings,
                unit=unit,
                trained_as_of=cutoff.isoformat(),
                metadata={**tags, "run_id": run.run_id, "customers": len(values), "purchase_model": choice.model,
                          "value_tier_basis": value.basis},
            )
            scorer.fit_drift_reference(segmentation.table)
            run.log_metrics(metrics)
            text = _report(
                settings, report, metrics, churn, segmentation_markdown(segmentation, settings), tags,
                choice=choice, notices=notices, value_md=value.markdown(),
                xsell_md=cross_sell_markdown(xsell.summary, metrics) if xsell is not None else "",
            )  # fmt: skip
            run.log_text(text, "evaluation_report.md")
            result = TrainResult(
                run_id=run.run_id,
                experiment_id=tracker.experiment_id,
                tracking_uri=tracker.uri,
                scorer=scorer,
                metrics=metrics,
                report=text,
                scored=segmentation.table,
                quarantine_path=report.quarantine_path,
                notices=notices,
                choices=[choice.reason, *([shipped_summary(churn)] if shipped_summary(churn) not in notices else []),
                         *([xsell.summary] if xsell is not None and xsell.summary not in notices else []),
                         value.choice],
            )
            if register and _store_failure(tracker) is None:
                say("registering the scorer")
                result = _register_or_note(result, tracker, settings, features, force=force, run=run)
            if _store_failure(tracker) is None:
                say("writing report.html")
                # Built from the logged artifacts, the same way `clv report RUN_ID` rebuilds it.
                from clv_models.tracking.reports import REPORT_HTML, run_report_html

                html = tracker.call(run_report_html, tracker, run.run_id)
                if html is not None:
                    run.log_text(html, REPORT_HTML)
        failure = _store_failure(tracker)
        if failure is not None:
            say("saving the trained scorer (the tracking store failed)")
            result.tracking_error = failure
            result.saved_to = save_unlogged_training(
                result, settings, features.head(5), run_name=f"train-{cutoff.isoformat()}", tags=tags, force=force
            )
        return result


def _store_failure(tracker: Any) -> str | None:
    return getattr(tracker, "store_failure", None)


def _register_or_note(
    result: TrainResult, tracker: Any, settings: Settings, features: pd.DataFrame, *, force: bool, run: Any
) -> TrainResult:
    """:func:`_register`; a store failing meanwhile is noted on the tracker (the scorer is then
    saved locally) when the tracker goes on offline, raised otherwise."""
    from clv_models.errors import ClvEnvironmentError
    from clv_models.tracking.mlflow_tracking import store_errors

    try:
        with store_errors(tracker.uri):
            return _register(result, tracker, settings, features, force=force, run=run)
    except ClvEnvironmentError as exc:
        if not getattr(tracker, "continue_offline", False):
            raise
        tracker.store_failure = str(exc)
        return result


FREQUENCY_ONLY_NOTICE = (
    "frequency-only (no amounts were read): every order counts as one unit, so the value tiers rank customers by "
    "discounted expected purchases, the holdout 'revenue' metrics count orders, and the money columns of the scores "
    "(monetary_value, expected_order_value, clv_h, value_forecast) are null"
)
SHORTEST_HOLDOUT_DAYS = 28  # the LTV evaluation's holdout never shrinks below four weeks
UNREGISTERED_DIR = "unregistered"
SAVED_RUN_FILE = "run.json"
SAVED_SCORER_DIR = "scorer"
SAVED_REPORT_FILE = "evaluation_report.md"
REGISTERED_FILE = "registered.txt"  # written by register_saved_training once it has registered


def save_unlogged_training(
    result: TrainResult,
    settings: Settings,
    example: pd.DataFrame,
    *,
    run_name: str,
    tags: dict[str, str],
    force: bool,
) -> Path:
    """Write a training whose tracking store failed to ``<tracking.root>/unregistered/<run>-<UTC time>/``:
    the scorer as an MLflow model directory (``scorer/``, which ``clv score --model`` takes as it
    is), its metrics, tags and params (``run.json``) and ``evaluation_report.md``. Written in a
    temporary sibling and renamed, so the directory is whole or absent. ``clv register DIR`` logs
    and registers it later (:func:`register_saved_training`)."""
    import os
    import shutil

    from clv_models.errors import environment_error
    from clv_models.tracking.mlflow_tracking import flatten_params
    from clv_models.tracking.registry import save_scorer

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    parent = Path(settings.tracking.root) / UNREGISTERED_DIR
    target = parent / f"{run_name}-{stamp}-{os.getpid()}"
    partial = parent / f".{target.name}.partial"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        save_scorer(result.scorer, partial / SAVED_SCORER_DIR, example)
        record = {
            "experiment": settings.tracking.train_experiment,
            "run_name": run_name,
            "tags": {**tags, "registered_later": "true"},
            "params": flatten_params(settings.model_dump(mode="json")),
            "metrics": {key: value for key, value in result.metrics.items() if math.isfinite(value)},
            "force": force,
            "store_failure": result.tracking_error,
        }
        (partial / SAVED_RUN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
        (partial / SAVED_REPORT_FILE).write_text(result.report, encoding="utf-8")
        partial.rename(target)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise environment_error(exc, partial, "the trained scorer") from None
    return target


def register_saved_training(path: str | Path, settings: Settings, *, force: bool | None = None) -> TrainResult:
    """Log a training saved by :func:`save_unlogged_training` as a run of its experiment (params,
    tags, metrics, report, scorer) and register the scorer with the usual gate and aliases."""
    from clv_models.tracking import Tracker
    from clv_models.tracking.mlflow_tracking import store_errors
    from clv_models.tracking.registry import load_scorer

    path = Path(path)
    done = path / REGISTERED_FILE
    if done.is_file():
        raise ClvInputError(f"{path} is already registered ({done.read_text(encoding='utf-8').strip()})")
    try:
        record = json.loads((path / SAVED_RUN_FILE).read_text(encoding="utf-8"))
        report = (path / SAVED_REPORT_FILE).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise ClvInputError(f"{path}: not a training saved by clv train ({exc}); pass the directory it printed") from None
    tracking = settings.tracking
    tracker = Tracker(record["experiment"], root=tracking.root, uri=tracking.uri)
    scorer = load_scorer(str(path / SAVED_SCORER_DIR), tracking_uri=tracker.uri).scorer
    with store_errors(tracker.uri), tracker.start_run(record["run_name"], tags=record["tags"]) as run:
        run.log_params(record["params"])
        run.log_metrics(record["metrics"])
        run.log_text(report, "evaluation_report.md")
        result = TrainResult(
            run_id=run.run_id,
            experiment_id=tracker.experiment_id,
            tracking_uri=tracker.uri,
            scorer=scorer,
            metrics=dict(record["metrics"]),
            report=report,
        )
        chosen = record.get("force", False) if force is None else force
        result = _register(result, tracker, scorer.settings, None, force=chosen, run=run, saved=path / SAVED_SCORER_DIR)
        from clv_models.tracking.reports import REPORT_HTML, run_report_html

        run.log_text(run_report_html(tracker, run.run_id), REPORT_HTML)
    # Registering twice would make a second version of one training: remember this one.
    done.write_text(f"{result.model_name} version {result.model_version}, MLflow run {result.run_id}\n", encoding="utf-8")
    return result


def _register(
    result: TrainResult,
    tracker: Any,
    settings: Settings,
    features: pd.DataFrame | None,
    *,
    force: bool,
    run: Any,
    saved: Path | None = None,
) -> TrainResult:
    from clv_models.tracking.registry import log_and_register, set_alias

    name = settings.tracking.model_name
    champion_version, champion_value = _champion(tracker, name, settings.gate.compare_metric)
    decision = decide_promotion(result.metrics, settings, champion_value, champion_version, force=force)
    example = features.head(5) if features is not None else None
    registered = log_and_register(tracker, result.run_id, result.scorer, example, name, saved=saved)
    set_alias(tracker, name, decision.alias, registered.version)
    run.set_tags(
        {
            "gate_passed": str(decision.passed).lower(),
            "gate_failures": "; ".join(decision.failures) or "none",
            "promotion": decision.reason,
            "model_alias": decision.alias,
            "model_version": registered.version,
        }
    )
    run.log_metrics({"gate_passed": float(decision.passed)})
    result.model_name, result.model_version, result.gate = name, registered.version, decision
    return result


def _report(
    settings: Settings,
    quality: Any,
    metrics: dict[str, float],
    churn: Any,
    segments_md: str,
    tags: dict[str, str],
    *,
    choice: Any,
    notices: list[str],
    value_md: str = "",
    xsell_md: str = "",
) -> str:
    from clv_models.training.churn import comparison_markdown

    def fmt(name: str) -> str:
        value = metrics.get(name, float("nan"))
        return f"| {name} | {value:.4f} |"

    lines = [
        "# clv train: evaluation report",
        "",
        f"Source {tags['source']} ({tags['data_fingerprint']}), cutoff {tags['cutoff']}, unit {tags['unit']}, "
        f"clv_models {tags['package_version']}, commit {tags['git_commit']}.",
        "",
        *(["## Read first", "", *(f"- **{notice}**" for notice in notices), ""] if notices else []),
        "## Data quality",
        "",
        f"{quality.rows_read:,} rows read, {quality.orders:,} orders of {quality.customers:,} customers kept; "
        f"{quality.rows_quarantined:,} rows quarantined ({quality.reason_summary()}); malformed share "
        f"{quality.malformed_share:.2%}.",
        "",
        f"## Lifetime value: out of time ({settings.ltv.holdout_days}-day holdout)",
        "",
        "| metric | value |",
        "|---|---|",
        *(fmt(name) for name in HEADLINE_METRICS if name.startswith(("holdout_", "gamma_gamma"))),
        "",
        f"Purchase model: {choice.reason}. Candidates on the same holdout (decisions D31):",
        "",
        choice.markdown(),
        "",
        f"## Churn ({churn.model.window_days}-day window: "
        f"{churn.dataset.window.rule if churn.dataset.window else 'churn.window_days'}): "
        "model vs baselines on the test snapshot",
        "",
        comparison_markdown(churn.comparison),
        "",
        *([value_md] if value_md else []),
        *([xsell_md] if xsell_md else []),
        segments_md.replace("# Segments, value tiers, lifecycle and next best action", "## Segments and tiers"),
    ]
    return "\n".join(lines) + "\n"


def cross_sell_markdown(summary: str, metrics: dict[str, float]) -> str:
    """The report's cross-sell section: the one-line verdict and the model beside popularity at each k (D43)."""
    from clv_models.evaluation.cross_sell import EVAL_KS

    rows = [
        f"| {k} | {metrics.get(f'xsell_hit_rate_at_{k}', float('nan')):.4f} | "
        f"{metrics.get(f'xsell_popularity_hit_rate_at_{k}', float('nan')):.4f} | "
        f"{metrics.get(f'xsell_recall_at_{k}', float('nan')):.4f} | "
        f"{metrics.get(f'xsell_popularity_recall_at_{k}', float('nan')):.4f} |"
        for k in EVAL_KS
    ]
    return "\n".join(
        ["## Cross-sell: out of time against popularity", "", summary + ".", "",
         "| k | hit rate | popularity hit rate | recall | popularity recall |", "|---|---|---|---|---|", *rows, ""]
    )  # fmt: skip


def metrics_json(result: TrainResult) -> str:
    return json.dumps(result.metrics, indent=2, sort_keys=True)
