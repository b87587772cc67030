"""Train the churn classifier and judge it out of time against the BTYD baselines.

``train_churn(ingested, settings)``: snapshots (``features.churn``) → LightGBM tuned with Optuna on
the training snapshots → calibration on the validation snapshot → evaluation on the test
snapshot, whose outcome window lies after every other. The comparison scores every candidate on
the same test customers:

* ``model``: the calibrated classifier;
* ``bgnbd_p_no_purchase``: BG/NBD P(no purchase in the window) — the natural BTYD churn score;
* ``bgnbd_1_minus_p_alive``: 1 − BG/NBD P(alive);
* ``recency_rule``: days since the last purchase, mapped to a churn rate by isotonic regression
  on the validation snapshot (the same slice the model is calibrated on, so the comparison is
  fair on calibration too).

Metric names logged to MLflow (fixed, so runs compare): ``churn_<metric>`` for the model and
``churn_baseline_<baseline>_<metric>`` for the baselines, with ``<metric>`` one of
:data:`CHURN_METRICS`; also ``churn_raw_ece`` (before calibration), ``churn_cv_score`` (the best
trial's cross-validated score) and the snapshot sizes.

Seasons (docs/decisions.md D46): the calibrated probabilities are shifted in log-odds by the
churn rate's move between the calibration cutoff and the cutoff they serve, as measured on the
same dates a year earlier (:func:`season_shift`; ``churn_season_shift_*`` metrics), where the
history reaches that far and the rate moved more than 5 points.

``churn_lagged_btyd_<metric>`` (auc, brier, ece): the model on the test snapshot when its BTYD
features come from the fit one window *earlier* (at the validation cutoff) — what a job scoring
one window after training gets from the scorer's stored BTYD models (docs/decisions.md D28).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv_models.evaluation.churn_metrics import (
    compare_scores,
    expected_calibration_error,
    lift_table,
    reliability_curve,
)
from clv_models.features.churn import LABEL, ChurnDataset, build_churn_dataset
from clv_models.models.btyd_features import BTYD_FEATURES, BtydChurnFeatures
from clv_models.models.churn import ChurnClassifier
from clv_models.models.churn_baseline import BaselineChurnModel

if TYPE_CHECKING:
    from clv_models.config import ChurnSettings
    from clv_models.data.ingest import IngestResult

CHURN_METRICS = ("auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift", "top_decile_capture")
BASELINES = ("bgnbd_p_no_purchase", "bgnbd_1_minus_p_alive", "recency_rule", "calibrated_bgnbd_p_no_purchase")
# The calibrated baselines the scorer can ship instead of the classifier (decisions D32).
SHIPPABLE_BASELINES = {
    "recency_rule": "recency_rule",
    "calibrated_bgnbd_p_no_purchase": "bgnbd_p_no_purchase",
    "bgnbd_p_no_purchase": "bgnbd_p_no_purchase_raw",
}
# "Worse" means worse beyond the noise of one test snapshot and by a margin that matters: the
# 5th percentile of a paired bootstrap of (score − best baseline) on the test customers lies on
# the worse side, and the gap itself exceeds the margin (AUC points, Brier as a share of the
# baseline's, ECE points) (D32).
MATERIAL_GAP = {"auc": 0.005, "brier": 0.005, "ece": 0.01}
BOOTSTRAP_REPLICATES = 200
BOOTSTRAP_SEED = 20261203
SHIPPED_LABELS = {
    "model": "the calibrated classifier",
    "recency_rule": "the recency rule (days since the last purchase, isotonic on the validation snapshot)",
    "calibrated_bgnbd_p_no_purchase": "BG/NBD P(no purchase in the window), isotonic on the validation snapshot",
    "bgnbd_p_no_purchase": "BG/NBD P(no purchase in the window) as the model gives it",
}
PLOTS = ("reliability", "lift", "feature_importance", "contributions_summary")


@dataclass
class ChurnTrainResult:
    """The fitted classifier and its out-of-time evaluation on the test snapshot."""

    model: ChurnClassifier
    dataset: ChurnDataset
    test_scores: dict[str, np.ndarray]
    comparison: pd.DataFrame  # one row per score (model and baselines), columns = classification_metrics
    raw_ece: float
    contributions: pd.DataFrame  # test snapshot, log-odds per feature + bias
    btyd_fits: dict[Any, BtydChurnFeatures] = field(default_factory=dict)  # per snapshot cutoff
    metrics: dict[str, float] = field(default_factory=dict)
    shipped: str = "model"  # the churn score the scorer ships: "model" or a SHIPPABLE_BASELINES key
    shipped_model: Any = None  # the estimator behind it (the classifier or a BaselineChurnModel)
    worse_than_baselines: list[str] = field(default_factory=list)  # where the classifier loses, in words
    season_shift: SeasonShift | None = None  # the calibration's seasonal shift (D46)
    _gaps: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)  # gaps() per score, computed once

    @property
    def best_baseline(self) -> dict[str, str]:
        """The best BTYD baseline per metric (AUC: highest; Brier: lowest)."""
        btyd = self.comparison.loc[["bgnbd_p_no_purchase", "bgnbd_1_minus_p_alive"]]
        return {"auc": str(btyd["auc"].idxmax()), "brier": str(btyd["brier"].idxmin())}

    @property
    def beats_btyd(self) -> dict[str, bool]:
        """Whether the model beats the best BTYD baseline on AUC and on Brier."""
        model = self.comparison.loc["model"]
        best = self.best_baseline
        return {
            "auc": bool(model["auc"] > self.comparison.loc[best["auc"], "auc"]),
            "brier": bool(model["brier"] < self.comparison.loc[best["brier"], "brier"]),
        }

    def gaps(self, name: str) -> pd.DataFrame:
        """Score ``name`` against the best other baseline on AUC, Brier and ECE on the test
        snapshot, one row per metric: ``baseline`` (the best on that metric), ``ours``,
        ``theirs``, ``gap`` (how much worse ``name`` is; negative = better; AUC and ECE in points,
        Brier in its units), ``q05``/``q95`` (a paired bootstrap of the gap,
        :data:`BOOTSTRAP_REPLICATES` resamples of the test customers, seed fixed), ``margin``
        (:data:`MATERIAL_GAP`), ``beyond_noise`` (q05 > 0) and ``worse`` (beyond the noise *and*
        the margin: D32's definition)."""
        cached = self._gaps.get(name)
        if cached is not None:
            return cached
        from sklearn.metrics import roc_auc_score

        outcome = self.dataset.test[LABEL].to_numpy(dtype=float)
        baselines = self.comparison.loc[[b for b in BASELINES if b != name]]
        best = {"auc": baselines["auc"].idxmax(), "brier": baselines["brier"].idxmin(), "ece": baselines["ece"].idxmin()}
        measures = {
            "auc": lambda p, y: -roc_auc_score(y, p),  # every measure: lower is better
            "brier": lambda p, y: float(np.mean((p - y) ** 2)),
            "ece": expected_calibration_error,
        }
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        draws = [rng.integers(0, len(outcome), len(outcome)) for _ in range(BOOTSTRAP_REPLICATES)]
        mine = self.test_scores[name]
        rows = []
        for metric, other_name in best.items():
            other = self.test_scores[str(other_name)]
            measure = measures[metric]
            gaps = [
                measure(mine[i], outcome[i]) - measure(other[i], outcome[i])
                for i in draws
                if 0 < outcome[i].sum() < len(i)
            ]
            ours, theirs = float(self.comparison.loc[name, metric]), float(self.comparison.loc[other_name, metric])
            gap = theirs - ours if metric == "auc" else ours - theirs
            margin = MATERIAL_GAP[metric] * (theirs if metric == "brier" else 1.0)
            q05, q95 = (float(np.quantile(gaps, 0.05)), float(np.quantile(gaps, 0.95))) if gaps else (np.nan, np.nan)
            rows.append({
                "metric": metric, "baseline": str(other_name), "ours": ours, "theirs": theirs, "gap": gap,
                "q05": q05, "q95": q95, "margin": margin, "beyond_noise": bool(q05 > 0), "worse": bool(q05 > 0 and gap > margin),
            })  # fmt: skip
        self._gaps[name] = pd.DataFrame(rows).set_index("metric")
        return self._gaps[name]

    def not_worse(self, name: str) -> list[str]:
        """Where score ``name`` is worse than the best baseline on AUC, Brier or ECE beyond the
        noise of the test snapshot and by more than the margin (:meth:`gaps`), in words: empty
        when it is not worse on any of the three."""
        gaps = self.gaps(name)
        return [_gap_words(metric, row) for metric, row in gaps.iterrows() if row["worse"]]

    def small_losses(self, name: str) -> list[str]:
        """Where score ``name`` is worse than the best baseline beyond the test snapshot's noise but
        by no more than the margin (so it may still ship), in words."""
        gaps = self.gaps(name)
        return [_gap_words(metric, row) for metric, row in gaps.iterrows() if row["beyond_noise"] and not row["worse"]]


def _gap_words(metric: Any, row: Any) -> str:
    label = "Brier" if metric == "brier" else str(metric).upper()
    return f"{label} {row['ours']:.4f} vs {row['theirs']:.4f} ({row['baseline']})"


def _recency_rule(validation: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    from sklearn.isotonic import IsotonicRegression

    rule = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    rule.fit(validation["days_since_last"].to_numpy(float), validation[LABEL].to_numpy(float))
    return np.asarray(rule.predict(test["days_since_last"].to_numpy(float)), dtype=float)


def _btyd_score(values: pd.Series, name: str) -> np.ndarray:
    array = values.to_numpy(dtype=float)
    if np.isnan(array).any():
        from clv_models.errors import ClvInputError

        raise ClvInputError(f"{name}: BG/NBD could not be fitted at the test cutoff; see the BTYD table of the churn report")
    return array


def add_btyd_features(dataset: ChurnDataset, settings: ChurnSettings) -> dict[Any, BtydChurnFeatures]:
    """Add the BTYD features to every snapshot of ``dataset`` (in place), each cutoff's from a
    :class:`BtydChurnFeatures` fitted on that cutoff's customers only: no parameter sees a later
    order, as at scoring, where the scorer applies the one fitted at the training cutoff
    (docs/decisions.md D28). Returns the fits by cutoff."""
    fits: dict[Any, BtydChurnFeatures] = {}
    for part in ("train", "validation", "test"):
        frame = getattr(dataset, part)
        values = pd.DataFrame(np.nan, index=frame.index, columns=list(BTYD_FEATURES))
        for cutoff, index in frame.groupby("cutoff", sort=True).indices.items():
            rows = frame.iloc[index]
            fits[cutoff] = BtydChurnFeatures(window_days=dataset.plan.window_days, penalizer=settings.btyd_penalizer).fit(
                rows
            )
            values.iloc[index] = fits[cutoff].transform(rows).to_numpy()
        for name in BTYD_FEATURES:
            frame[name] = values[name].to_numpy()
    dataset.numeric_features = [*dataset.numeric_features, *BTYD_FEATURES]
    return fits


# The seasonal shift of the calibration (decisions D46): the churn rate's log-odds at the cutoff
# scored minus at the calibration cutoff, both measured on the dates one year earlier.
SEASON_YEAR_DAYS = 365
# Only a move of the churn rate larger than this a year earlier is taken for a season: on the
# simulated one-time-buyer shop a 3.5-point move was the base ageing, and shifting by it raised
# the test ECE from 0.038 to 0.051 (D46). The same threshold as the base-rate notice.
SEASON_SHIFT_MIN_MOVE = 0.05


@dataclass(frozen=True)
class SeasonShift:
    """Log-odds added to the classifier's calibrated probabilities for the cutoff they serve.

    ``evaluation``: calibration at the validation cutoff, scored at the test cutoff (the reported
    ``churn_*`` metrics); ``shipped``: calibration at the test cutoff (D37), scored at the data
    end (the next window, what the scorer meets first). ``rates``: the churn rates a year before
    the validation cutoff, the test cutoff and the data end. 0 and 0 when not applied (``rule``)."""

    evaluation: float
    shipped: float
    rates: dict[str, float]
    rule: str

    @property
    def applied(self) -> bool:
        return bool(self.evaluation or self.shipped)


def season_shift(ingested: IngestResult, dataset: ChurnDataset, settings: ChurnSettings) -> SeasonShift:
    """The calibration's seasonal shift (``churn.season_shift``; decisions D46): the classifier's
    calibration is fitted on one cutoff's outcome window and serves the next, whose season may
    churn at another rate the snapshot features cannot see. The move of the churn rate between
    the same two dates one year earlier, in log-odds, is added when that move exceeds
    :data:`SEASON_SHIFT_MIN_MOVE`. 'auto' applies it when the classifier has no calendar features
    (they learn the season already) and the year before the calibration cutoff holds
    ``churn.min_history_days`` of orders."""
    from clv_models.features.churn import churn_rates

    plan = dataset.plan
    if settings.season_shift == "off":
        return SeasonShift(0.0, 0.0, {}, "churn.season_shift = 'off'")
    if dataset.season is not None and dataset.season.on:
        # The classifier learnt the season from the cutoff's calendar: shifting again counts it twice.
        return SeasonShift(0.0, 0.0, {}, "not applied: the classifier has the cutoff's calendar features")
    year = dt.timedelta(days=SEASON_YEAR_DAYS)
    first = ingested.con.execute("SELECT min(order_ts) FROM orders").fetchall()[0][0].date()
    earliest = first + dt.timedelta(days=settings.min_history_days)
    dates = {"validation": plan.validation - year, "test": plan.test - year, "data_end": plan.data_end - year}
    if dates["validation"] < earliest:
        return SeasonShift(
            0.0, 0.0, {},
            f"not applied: a year before the calibration cutoff ({dates['validation']}) is before "
            f"{earliest} (first order + churn.min_history_days)",
        )  # fmt: skip
    measured = churn_rates(ingested, list(dates.values()), window_days=plan.window_days)
    rates = {name: measured[day] for name, day in dates.items()}
    logit = {name: float(np.log(r) - np.log1p(-r)) for name, r in np.clip(pd.Series(rates), 1e-6, 1 - 1e-6).items()}

    def shift(source: str, target: str) -> float:
        # A small move a year earlier is the base's growth or ageing and noise more than a season.
        moved = abs(rates[target] - rates[source]) > SEASON_SHIFT_MIN_MOVE
        return logit[target] - logit[source] if moved else 0.0

    return SeasonShift(
        evaluation=shift("validation", "test"),
        shipped=shift("test", "data_end"),
        rates=rates,
        rule=f"churn rates a year earlier: {', '.join(f'{dates[k]} {v:.1%}' for k, v in rates.items())}; "
        f"a shift only where they moved more than {SEASON_SHIFT_MIN_MOVE:.0%}",
    )


def train_churn(
    ingested: IngestResult,
    settings: ChurnSettings,
    *,
    run: Any = None,
    trial_callbacks: tuple[Any, ...] = (),
) -> ChurnTrainResult:
    """Build snapshots, tune/fit/calibrate the classifier, evaluate on the test snapshot.

    ``run`` is an optional tracking handle (:class:`clv_models.tracking.RunHandle`) of the run this
    training belongs to; metrics, params and the trials land there. ``trial_callbacks`` are Optuna
    study callbacks (e.g. ``tracker.optuna_callback(run)`` to log every trial as a nested run).
    """
    dataset = build_churn_dataset(ingested, settings)
    # The window the data chose (decisions D33) is the window of everything below.
    settings = settings.model_copy(update={"window_days": dataset.plan.window_days})
    btyd_fits = add_btyd_features(dataset, settings)
    features = dataset.features
    model = ChurnClassifier.from_settings(settings, dataset.categorical_features)
    model.fit(
        dataset.train[features],
        dataset.train[LABEL],
        groups=dataset.train["customer_id"].to_numpy(),
        X_calibration=dataset.validation[features],
        y_calibration=dataset.validation[LABEL],
        callbacks=trial_callbacks,
    )
    shift = season_shift(ingested, dataset, settings)
    model.shift_calibration(shift.evaluation)
    test = dataset.test
    outcome = test[LABEL].to_numpy()
    scores = {
        "model": model.predict_proba(test[features])[:, 1],
        "bgnbd_p_no_purchase": _btyd_score(test["bgnbd_p_no_purchase_w"], "bgnbd_p_no_purchase"),
        "bgnbd_1_minus_p_alive": 1.0 - _btyd_score(test["bgnbd_p_alive"], "bgnbd_1_minus_p_alive"),
        "recency_rule": _recency_rule(dataset.validation, test),
    }
    baselines = {
        name: BaselineChurnModel(kind, window_days=model.window_days).fit(dataset.validation, dataset.validation[LABEL])
        for name, kind in SHIPPABLE_BASELINES.items()
    }
    scores["calibrated_bgnbd_p_no_purchase"] = baselines["calibrated_bgnbd_p_no_purchase"].predict_proba(test)[:, 1]
    comparison = compare_scores(scores, outcome)
    comparison["n"] = comparison["n"].astype(np.int64)
    lagged = test.copy()
    earlier = btyd_fits[dataset.plan.validation].transform(test)
    for name in BTYD_FEATURES:
        lagged[name] = earlier[name].to_numpy()
    lagged_scores = compare_scores({"model": model.predict_proba(lagged[features])[:, 1]}, outcome).loc["model"]
    raw = model.predict_raw(test[features])
    raw_ece = expected_calibration_error(raw, outcome)
    result = ChurnTrainResult(
        model=model,
        dataset=dataset,
        test_scores=scores,
        comparison=comparison,
        raw_ece=raw_ece,
        contributions=model.contributions(test[features]),
        btyd_fits=btyd_fits,
        season_shift=shift,
    )
    _choose_shipped(result, baselines)
    result.metrics = _metrics(result)
    result.metrics.update({f"churn_lagged_btyd_{m}": float(lagged_scores[m]) for m in ("auc", "brier", "ece")})
    if run is not None:
        _log(run, result, settings)
    return result


def _choose_shipped(result: ChurnTrainResult, baselines: Mapping[str, Any]) -> None:
    """Ship the classifier unless it is worse than the best baseline on AUC, Brier or ECE on
    the test snapshot; then ship the calibrated baseline with the lowest test Brier (D32).
    Either is then recalibrated on the test snapshot, the latest complete outcome window (D37):
    the evaluation above is what a calibration one window old gives, which is what scoring meets."""
    import copy

    result.worse_than_baselines = result.not_worse("model")
    test = result.dataset.test
    name = "model"
    if result.worse_than_baselines:
        # A baseline replaces the classifier only when it is itself not worse than the others;
        # among those the lowest Brier. When none is, the lowest Brier of all, the classifier
        # included: never a baseline that loses to the classifier on the proper score.
        clean = [b for b in SHIPPABLE_BASELINES if not result.not_worse(b)]
        pool = clean or ["model", *SHIPPABLE_BASELINES]
        name = min(pool, key=lambda b: float(result.comparison.loc[b, "brier"]))
    result.shipped = name
    if name == "model":
        result.shipped_model = copy.deepcopy(result.model).recalibrate(test[result.dataset.features], test[LABEL])
        if result.season_shift is not None:
            result.shipped_model.shift_calibration(result.season_shift.shipped)
    else:
        result.shipped_model = copy.deepcopy(baselines[name]).fit(test, test[LABEL])


def _metrics(result: ChurnTrainResult) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for metric in CHURN_METRICS:
        metrics[f"churn_{metric}"] = float(result.comparison.loc["model", metric])
        metrics[f"churn_shipped_{metric}"] = float(result.comparison.loc[result.shipped, metric])
        for baseline in BASELINES:
            metrics[f"churn_baseline_{baseline}_{metric}"] = float(result.comparison.loc[baseline, metric])
    dataset = result.dataset
    metrics.update(
        churn_raw_ece=float(result.raw_ece),
        churn_cv_score=float(result.model.best_score_),
        churn_best_iteration=float(result.model.best_iteration_),
        churn_train_rows=float(len(dataset.train)),
        churn_validation_rows=float(len(dataset.validation)),
        churn_test_rows=float(len(dataset.test)),
        churn_test_positive_rate=float(dataset.test[LABEL].mean()),
        churn_validation_positive_rate=float(dataset.validation[LABEL].mean()),
        churn_base_rate_shift=float(dataset.test[LABEL].mean() - dataset.validation[LABEL].mean()),
        churn_trials_completed=float((result.model.trials_["state"] == "COMPLETE").sum()),
        churn_trials_pruned=float((result.model.trials_["state"] == "PRUNED").sum()),
        churn_model_not_worse_than_baselines=float(not result.worse_than_baselines),
        churn_shipped_not_worse_than_baselines=float(not result.not_worse(result.shipped)),
        churn_shipped_is_model=float(result.shipped == "model"),
    )
    for metric, row in result.gaps(result.shipped).iterrows():
        # The shipped score minus the best baseline on that metric (worse-positive) and its 90 % bootstrap band.
        metrics[f"churn_shipped_gap_{metric}"] = float(row["gap"])
        metrics[f"churn_shipped_gap_{metric}_q05"] = float(row["q05"])
        metrics[f"churn_shipped_gap_{metric}_q95"] = float(row["q95"])
    shift = result.season_shift
    if shift is not None:
        metrics.update(
            churn_season_shift_applied=float(shift.applied),
            churn_season_shift_evaluation=float(shift.evaluation),
            churn_season_shift_shipped=float(shift.shipped),
        )
    if dataset.season is not None:
        metrics["churn_season_features"] = float(dataset.season.on)
    return metrics


# A churn rate that moves this much between the validation and the test cutoff is a shift the
# calibration (fitted at validation) cannot know about (decisions D33).
BASE_RATE_SHIFT_NOTICE = 0.05


def base_rate_shift_notice(result: ChurnTrainResult) -> str | None:
    """A sentence for the user when the churn rate moved between the calibration snapshot and the
    test snapshot by more than :data:`BASE_RATE_SHIFT_NOTICE`: the calibrated probabilities of a
    later season carry that error, and with less than two years of history there is no earlier
    season for the model to learn it from."""
    plan = result.dataset.plan
    validation = float(result.dataset.validation[LABEL].mean())
    test = float(result.dataset.test[LABEL].mean())
    if abs(test - validation) <= BASE_RATE_SHIFT_NOTICE:
        return None
    first = min(plan.train) if plan.train else plan.validation
    span = (plan.data_end - first).days
    shift = result.season_shift
    if shift is not None and shift.evaluation:
        reason = (
            f"the calibration was shifted by {shift.evaluation:+.2f} log-odds for it, the move of the churn rate "
            f"between the same dates a year earlier ({shift.rates['validation']:.1%} to {shift.rates['test']:.1%}; D46)"
        )
    elif plan is not None and result.dataset.season is not None and result.dataset.season.on:
        reason = "the classifier learns the season from the cutoff's calendar features (D46)"
    elif span < 730:
        reason = (
            f"the history before the first training cutoff is short ({span} days from {first} to the data end), "
            "so no earlier season can teach the model this shift"
            + (f" ({shift.rule})" if shift is not None else "")
        )
    else:
        reason = "the calibration snapshot's season differs from the test snapshot's"
    return (
        f"churn calibration meets a shift: the churn rate was {validation:.1%} at the calibration cutoff "
        f"{plan.validation} and {test:.1%} at the test cutoff {plan.test}; {reason}; churn_ece "
        f"{result.comparison.loc['model', 'ece']:.3f} on the test snapshot reflects it"
    )


# The calibration the project aims for (issue 18): above it, and with no base-rate shift to explain
# it, the user is told that the probabilities' level is approximate (decisions D47).
CALIBRATION_NOTICE_ECE = 0.03


def calibration_notice(result: ChurnTrainResult) -> str | None:
    """A sentence for the user when the shipped churn score's ECE on the test snapshot exceeds
    :data:`CALIBRATION_NOTICE_ECE`, with its mean against the realised churn rate."""
    ece = float(result.comparison.loc[result.shipped, "ece"])
    if not ece > CALIBRATION_NOTICE_ECE:
        return None
    mean = float(np.mean(result.test_scores[result.shipped]))
    rate = float(result.dataset.test[LABEL].mean())
    return (
        f"churn_probability is calibrated to {ece:.3f} on the test snapshot (ECE; the aim is {CALIBRATION_NOTICE_ECE:.2f}): "
        f"its mean there was {mean:.1%} against a realised churn rate of {rate:.1%}; rank customers by it, "
        "but read its level as approximate (decisions D47)"
    )


def shipped_summary(result: ChurnTrainResult) -> str:
    """One sentence: which churn score the scorer ships, and why. A measure on which it is worse
    than the best baseline beyond the test snapshot's noise, though by less than the margin that
    would stop it (D32), is named with both numbers."""
    small = result.small_losses(result.shipped)
    within = f"; worse beyond the test snapshot's noise, by less than the margin, on {'; '.join(small)}" if small else ""
    if result.shipped == "model" and not result.worse_than_baselines:
        if small:
            return f"churn_probability: {SHIPPED_LABELS['model']} (not worse than the best baseline by D32's margins{within})"
        return (
            f"churn_probability: {SHIPPED_LABELS['model']} (not worse than the best baseline on AUC, Brier or ECE "
            "beyond the test snapshot's noise)"
        )
    if result.shipped == "model":
        return (
            f"churn_probability: {SHIPPED_LABELS['model']}, although it is worse than a baseline on one measure "
            f"({'; '.join(result.worse_than_baselines)}): no baseline is better on all three, and it has the lowest Brier"
            f"{within}"
        )
    return (
        f"churn_probability: {SHIPPED_LABELS[result.shipped]}, not the classifier, which is worse than the best "
        f"baseline out of time ({'; '.join(result.worse_than_baselines)}){within}"
    )


def _log(run: Any, result: ChurnTrainResult, settings: ChurnSettings) -> None:
    run.log_params({"churn": settings.model_dump(mode="json")})
    run.log_params({"churn_best": result.model.best_params_})
    run.set_tags({"churn_score_shipped": result.shipped, "churn_shipped_reason": shipped_summary(result)})
    run.log_metrics(result.metrics)
    run.log_dict(result.dataset.plan.as_dict(), "churn/snapshots.json")
    run.log_table(result.comparison, "churn/comparison.csv")
    run.log_table(result.model.trials_, "churn/trials.csv")
    run.log_table(result.model.feature_importance().to_frame(), "churn/feature_importance.csv")
    for name, figure in churn_figures(result).items():
        run.log_figure(figure, f"churn/{name}.png")


def churn_figures(result: ChurnTrainResult) -> dict[str, Any]:
    """The report's figures (matplotlib Figures, not shown): reliability curves of the calibrated
    model, its raw scores and the BG/NBD baseline; cumulative capture; gain importance; the
    contribution summary on the test snapshot."""
    from matplotlib.figure import Figure

    from clv_models.plotting.churn import (
        plot_contributions_summary,
        plot_feature_importance,
        plot_lift,
        plot_reliability,
    )

    outcome = result.dataset.test[LABEL].to_numpy()
    raw = result.model.predict_raw(result.dataset.test[result.dataset.features])
    figures: dict[str, Any] = {}

    def axes(width: float = 6.4, height: float = 4.8) -> Any:
        figure = Figure(figsize=(width, height))
        return figure.add_subplot()

    curves = {
        "model (calibrated)": reliability_curve(result.test_scores["model"], outcome),
        "model (raw)": reliability_curve(raw, outcome),
        "BG/NBD P(no purchase)": reliability_curve(result.test_scores["bgnbd_p_no_purchase"], outcome),
    }
    figures["reliability"] = plot_reliability(curves, ax=axes()).figure
    tables = {name: lift_table(score, outcome) for name, score in result.test_scores.items()}
    figures["lift"] = plot_lift(tables, ax=axes()).figure
    figures["feature_importance"] = plot_feature_importance(
        result.model.feature_importance(), ax=axes(6.4, 6.4)
    ).figure
    features = result.dataset.test[result.dataset.features].copy()
    for column in result.dataset.categorical_features:
        # Colour a category by its code (the order of its training frequency).
        features[column] = result.model._matrix(features)[:, result.model.feature_names_.index(column)]
    # The BG/NBD prior the boosting starts from is not a feature: leave it out of the summary.
    contributions = result.contributions.drop(columns="prior", errors="ignore")
    figures["contributions_summary"] = plot_contributions_summary(contributions, features, ax=axes(7.5, 6.4)).figure
    return figures


def write_churn_report(result: ChurnTrainResult, out_dir: str | Path) -> dict[str, Path]:
    """``churn_report.md``, ``churn_metrics.json`` and one PNG per figure, written atomically."""
    from clv_models.evaluation.report import write_report_files

    return write_report_files(out_dir, "churn", churn_figures(result), result.metrics, churn_markdown(result))


def _table(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    return frame.to_markdown(floatfmt=floatfmt)


def comparison_markdown(comparison: pd.DataFrame) -> str:
    """The comparison table as Markdown, counts as integers."""
    shown = comparison.copy()
    if "n" in shown.columns:
        shown["n"] = shown["n"].map(lambda value: f"{int(value):,}")
    return _table(shown)


def churn_markdown(result: ChurnTrainResult) -> str:
    plan = result.dataset.plan
    dataset = result.dataset
    model = result.model
    beats = result.beats_btyd
    lines = [
        "# Churn classifier: out-of-time evaluation",
        "",
        f"Churn = no order in the {plan.window_days} days after the cutoff. Training snapshots: "
        f"{', '.join(d.isoformat() for d in plan.train)} ({len(dataset.train):,} rows); calibration on "
        f"{plan.validation} ({len(dataset.validation):,}); test on {plan.test} ({len(dataset.test):,} customers, "
        f"churn rate {dataset.test[LABEL].mean():.1%}). Data end {plan.data_end}.",
        "",
        "## Test snapshot: model vs baselines",
        "",
        comparison_markdown(result.comparison),
        "",
        f"Model beats the best BTYD baseline on AUC: **{'yes' if beats['auc'] else 'no'}**; "
        f"on Brier: **{'yes' if beats['brier'] else 'no'}**. ECE before calibration {result.raw_ece:.4f}, "
        f"after {result.comparison.loc['model', 'ece']:.4f}.",
        "",
        f"**Shipped** {shipped_summary(result)}.",
        "",
        f"Seasonal shift of the calibration (D46): {_season_words(result)}.",
        "",
        f"Scored {plan.window_days} days after training (BTYD features from the fit one window earlier, as the "
        f"scorer's stored models would give): AUC {result.metrics.get('churn_lagged_btyd_auc', float('nan')):.4f}, "
        f"Brier {result.metrics.get('churn_lagged_btyd_brier', float('nan')):.4f}, "
        f"ECE {result.metrics.get('churn_lagged_btyd_ece', float('nan')):.4f}.",
        "",
        "## Tuning",
        "",
        f"{(model.trials_['state'] == 'COMPLETE').sum()} trials completed, "
        f"{(model.trials_['state'] == 'PRUNED').sum()} pruned; best cross-validated {model.tuning_metric} "
        f"{model.best_score_:.4f} at {model.best_iteration_} rounds.",
        "",
        _table(pd.DataFrame([model.best_params_]).T.rename(columns={0: "value"}), ".4g"),
        "",
        "## Most important features (total gain)",
        "",
        _table(model.feature_importance().head(15).to_frame(), ".1f"),
        "",
        "## BG/NBD and Gamma-Gamma behind the BTYD features (refitted per cutoff)",
        "",
        _btyd_table(result.btyd_fits),
        "",
        "Figures: `churn_reliability.png`, `churn_lift.png`, `churn_feature_importance.png`, "
        "`churn_contributions_summary.png`.",
        "",
    ]
    return "\n".join(lines)


def _season_words(result: ChurnTrainResult) -> str:
    shift = result.season_shift
    if shift is None:
        return "not computed"
    if not shift.applied:
        return shift.rule
    return (
        f"{shift.evaluation:+.3f} log-odds for the test cutoff, {shift.shipped:+.3f} for the shipped score at the "
        f"data end; {shift.rule}"
    )


def _btyd_table(fits: Mapping[Any, BtydChurnFeatures]) -> str:
    rows = []
    for cutoff, fitted in sorted(fits.items()):
        row: dict[str, Any] = {"cutoff": cutoff.isoformat()}
        row.update({name: f"{value:.4g}" for name, value in fitted.params.items()})
        row["warnings"] = "; ".join(w.split(";")[0] for w in fitted.diagnostics_) or "–"
        rows.append(row)
    return pd.DataFrame(rows).to_markdown(index=False) if rows else "(no BTYD features)"


def summarise_comparison(results: Mapping[str, ChurnTrainResult]) -> pd.DataFrame:
    """AUC, Brier and ECE of model and baselines for several datasets, one row per (dataset, score)."""
    rows = []
    for name, result in results.items():
        for score, values in result.comparison[["auc", "brier", "ece"]].iterrows():
            rows.append({"dataset": name, "score": score, **values.to_dict()})
    return pd.DataFrame(rows).set_index(["dataset", "score"])


__all__ = [
    "BASELINES",
    "CHURN_METRICS",
    "ChurnTrainResult",
    "churn_figures",
    "churn_markdown",
    "comparison_markdown",
    "summarise_comparison",
    "train_churn",
    "write_churn_report",
]
