"""Train the value model and choose, out of time, what the value tiers rank customers by.

``train_value(ingested, churn)``:

1. **Window.** The value window W (days) is the longest the history supports, at most
   ``horizon_days`` (365: the 12-month value of DESIGN.md §2): the snapshot plan of
   :func:`clv_models.features.churn.plan_snapshots` with window W (test cutoff = data end − W,
   validation = test − W, latest training cutoff = validation − W, earlier ones every
   ``cutoff_step_days``) must keep at least ``min_train_cutoffs`` training cutoffs after
   ``min_history_days`` of history; W is rounded down to whole weeks. ``window_days`` sets it.
   Why six: a longer window is closer to the 12-month value the tiers are about, but leaves fewer
   and earlier training snapshots. Measured on simulated shops whose next 12 months are known
   (the model's ranking of them, normalised Gini): retail 0.765 / 0.763 / 0.755 with W = 77 / 140
   / 210 days (12 / 10 / 3 training cutoffs), one-time buyers 0.623 / 0.633 / 0.598 with W = 112
   / 168 / 210, weekly grocery 0.853 / 0.860 / 0.858 with W = 14 / 56 / 210: middle windows are
   best, three cutoffs too few, the churn window of a weekly shop too short.
2. **Snapshots.** Every customer at each cutoff with the churn snapshots' point-in-time features
   (:func:`clv_models.features.churn.churn_snapshots`, the same code, at the value plan's cutoffs),
   the four BTYD churn features over the *churn* window w from a
   :class:`~clv_models.models.btyd_features.BtydChurnFeatures` fitted on that cutoff's customers
   (exactly as ``training.churn.add_btyd_features``, so the scorer's stored fit serves both
   models), the same fit's expectations over W (:func:`clv_models.models.value.btyd_value_features`)
   and the label: revenue in (c, c + W] net of returns, as known at c + W
   (:mod:`clv_models.features.value_labels`).
3. **Model.** :class:`~clv_models.models.value.ValueRegressor` tuned on the training snapshots,
   calibrated (one factor) on the validation snapshot.
4. **Judged out of time** on the test snapshot, whose outcome window lies after every other, with
   every ranker scored on the same customers (:data:`RANKER_LABELS`):

   * ``past_spend_total``: ``total_spend``, net spend of the whole history;
   * ``past_spend_recent``: ``spend_90d`` or ``spend_180d``, whichever ranks the validation
     snapshot better (normalised Gini);
   * ``btyd_clv``: E[X(W)] × E[order value] of the cutoff's BG/NBD + Gamma-Gamma (``btyd_value_v``);
   * ``model``: the calibrated value model.

   The past-spend columns are spend, not forecasts; each is turned into a revenue forecast over W
   by one factor fitted on the validation snapshot (Σ future revenue / Σ the column), as the
   model is calibrated, so decile MAPE and aggregate error compare like with like. The factor
   never changes an order, so Gini, Spearman and capture are those of the plain column.

Metric names (fixed, so runs compare): ``value_<ranker>_<metric>`` for every ranker and
``value_shipped_<metric>`` for the ranker the tiers use, ``<metric>`` one of
:data:`VALUE_METRICS` (``gini`` is the normalised Gini); also ``value_window_days``,
``value_calibration_factor``, ``value_model_raw_aggregate_error`` (before calibration),
``value_cv_score_<part>``, the snapshot sizes and
``value_shipped_is_model`` / ``value_shipped_not_worse_than_past_spend``.

5. **The tiers' ranker** (:func:`choose_ranker`): never one worse than past spend, otherwise the
   preferred among the best; the rule and its reasons are in the function's docstring.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv_models.errors import ClvInputError
from clv_models.evaluation.metrics import (
    aggregate_error,
    decile_mape,
    decile_table,
    normalized_gini,
    spearman,
    top_share_capture,
)
from clv_models.features.churn import (
    ChurnDataset,
    SnapshotPlan,
    _training_share,
    choose_window,
    churn_snapshots,
    feature_columns,
    plan_snapshots,
)
from clv_models.features.value_labels import ORDERS_LABEL, REVENUE_LABEL, attach_value_labels, value_labels
from clv_models.models.btyd_features import BTYD_FEATURES, BtydChurnFeatures
from clv_models.models.value import RANKERS, VALUE_BTYD_FEATURES, ValueRanker, ValueRegressor, btyd_value_features

if TYPE_CHECKING:
    from clv_models.config import ChurnSettings
    from clv_models.data.ingest import IngestResult

VALUE_METRICS = ("gini", "spearman", "top_decile_capture", "decile_mape", "aggregate_error")
PAST_SPEND = ("past_spend_total", "past_spend_recent")
RECENT_COLUMNS = ("spend_90d", "spend_180d")
RANKER_LABELS = {
    "model": "the value model (LightGBM, calibrated)",
    "btyd_clv": "BTYD CLV (BG/NBD expected purchases x Gamma-Gamma order value over the window)",
    "past_spend_recent": "recent past spend",
    "past_spend_total": "total past spend",
}
# "Worse" means worse beyond the noise of one test snapshot and by a margin that matters: the 5th
# percentile of a paired bootstrap of (other − candidate) over the test customers is above 0 and
# the gap itself exceeds the margin (normalised Gini and Spearman points).
MATERIAL_GAP = {"gini": 0.01, "spearman": 0.01}
BOOTSTRAP_REPLICATES = 200
BOOTSTRAP_SEED = 20261211


@dataclass(frozen=True)
class ValueTrainingSettings:
    """Settings of the value model; the proposed ``[value]`` config section has these keys.

    ``window_days``: the value window W (None: the longest the history supports, ≤
    ``horizon_days``, leaving ``min_train_cutoffs`` training cutoffs). ``method``: ``two_part``
    or ``tweedie``. ``boost_from``: ``"btyd"``, or ``"none"`` / None. ``calibration``: ``"scale"``
    (one factor on the validation snapshot) or ``"none"``. The tuning keys mean what they mean for
    the churn classifier; the snapshot schedule (``train_cutoffs``,
    ``cutoff_step_days``, ``min_history_days``, ``max_train_rows``, ``btyd_penalizer``) is read
    from the churn settings.
    """

    window_days: int | None = None
    horizon_days: int = 365
    min_train_cutoffs: int = 6
    method: str = "two_part"
    n_trials: int = 20
    timeout_seconds: float | None = None
    n_folds: int = 4
    seed: int = 42
    early_stopping_rounds: int = 50
    max_rounds: int = 1000
    threads: int = 1
    max_categories: int = 30
    boost_from: str | None = "btyd"
    calibration: str = "scale"
    tuning_rows: int | None = 200_000
    bootstrap_replicates: int = BOOTSTRAP_REPLICATES

    def model_dump(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


# --------------------------------------------------------------------------------------------
# Window and snapshots


def value_window(
    first_day: dt.date,
    data_end: dt.date,
    *,
    horizon_days: int = 365,
    min_train_cutoffs: int = 6,
    cutoff_step_days: int = 30,
    min_history_days: int = 30,
) -> int:
    """The longest value window W (whole weeks, ≤ ``horizon_days``) whose snapshot plan keeps
    ``min_train_cutoffs`` training cutoffs: 3·W + (min_train_cutoffs − 1)·step + min_history ≤ span."""
    span = (data_end - first_day).days
    usable = span - min_history_days - (max(1, min_train_cutoffs) - 1) * cutoff_step_days
    weeks = usable // 3 // 7
    days = min(int(horizon_days), 7 * int(weeks))
    if days < 7:
        raise ClvInputError(
            f"orders span {span} days ({first_day} – {data_end}); value labels need at least 3 windows of 7 days "
            f"plus {min_history_days} days of history and {min_train_cutoffs} training cutoffs "
            f"{cutoff_step_days} days apart; set value.window_days or lower churn.min_history_days"
        )
    return days


@dataclass
class ValueDataset:
    """Training, validation and test snapshots with revenue labels over ``plan.window_days``."""

    plan: SnapshotPlan  # window_days = the value window W
    churn_window_days: int  # w: the window of the four BTYD churn features
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    numeric_features: list[str]
    categorical_features: list[str]
    btyd_fits: dict[Any, BtydChurnFeatures] = field(default_factory=dict)
    training_share: float = 1.0
    window_rule: str = ""

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]

    @property
    def window_days(self) -> int:
        return self.plan.window_days


def _churn_settings(churn: ChurnDataset | ChurnSettings, churn_settings: ChurnSettings | None) -> ChurnSettings:
    from clv_models.config import ChurnSettings

    if churn_settings is not None:
        return churn_settings
    if isinstance(churn, ChurnDataset):
        return ChurnSettings(window_days=churn.plan.window_days)
    return churn


def build_value_dataset(
    ingested: IngestResult,
    churn: ChurnDataset | ChurnSettings,
    *,
    churn_settings: ChurnSettings | None = None,
    settings: ValueTrainingSettings | Any = None,
) -> ValueDataset:
    """Plan the value snapshots and build them in one pass (module docstring, steps 1-2).

    ``churn``: the churn dataset of the same training (its window w is the BTYD churn features')
    or the churn settings (w is then chosen as ``build_churn_dataset`` chooses it).
    ``churn_settings`` (default: ``churn`` when it is settings, else the defaults with w) gives
    the snapshot schedule, the training-row cap and the BTYD penalizer.
    """
    settings = settings or ValueTrainingSettings()
    cs = _churn_settings(churn, churn_settings)
    first = ingested.con.execute("SELECT min(order_ts) FROM order_candidates WHERE amount > 0").fetchall()[0][0]
    if first is None:
        raise ClvInputError("no purchases to build value snapshots from")
    first_day, data_end = first.date(), ingested.report.cutoff
    if isinstance(churn, ChurnDataset):
        churn_window = churn.plan.window_days
    else:
        churn_window = choose_window(ingested, cs, (data_end - first_day).days).days
    if settings.window_days is not None:
        window, rule = int(settings.window_days), "value.window_days"
    else:
        window = value_window(
            first_day, data_end, horizon_days=settings.horizon_days, min_train_cutoffs=settings.min_train_cutoffs,
            cutoff_step_days=cs.cutoff_step_days, min_history_days=cs.min_history_days,
        )  # fmt: skip
        rule = (
            f"the longest whole-week window ≤ {settings.horizon_days} days leaving {settings.min_train_cutoffs} "
            f"training cutoffs ({(data_end - first_day).days} days of orders)"
        )
    plan = plan_snapshots(
        first_day, data_end, window_days=window, train_cutoffs=cs.train_cutoffs,
        cutoff_step_days=cs.cutoff_step_days, min_history_days=cs.min_history_days,
    )  # fmt: skip
    share = _training_share(ingested, plan, cs.max_train_rows)
    cutoffs = [*plan.train, plan.validation, plan.test]
    frame = churn_snapshots(
        ingested, cutoffs, window_days=window, labels=False, customer_share={cutoff: share for cutoff in plan.train}
    )
    frame = attach_value_labels(frame, value_labels(ingested, cutoffs, window_days=window))
    numeric, categorical = feature_columns(frame)
    fits: dict[Any, BtydChurnFeatures] = {}
    added = pd.DataFrame(np.nan, index=frame.index, columns=[*BTYD_FEATURES, *VALUE_BTYD_FEATURES])
    for cutoff, index in frame.groupby("cutoff", sort=True).indices.items():
        rows = frame.iloc[index]
        fits[cutoff] = BtydChurnFeatures(window_days=churn_window, penalizer=cs.btyd_penalizer).fit(rows)
        added.iloc[index, : len(BTYD_FEATURES)] = fits[cutoff].transform(rows).to_numpy()
        added.iloc[index, len(BTYD_FEATURES) :] = btyd_value_features(rows, fits[cutoff], window_days=window).to_numpy()
    for name in added.columns:
        frame[name] = added[name].to_numpy()

    def part(dates: Sequence[dt.date]) -> pd.DataFrame:
        selected = frame[frame["cutoff"].isin(set(dates))].reset_index(drop=True)
        selected.attrs["unit"] = "D"
        return selected

    return ValueDataset(
        plan=plan,
        churn_window_days=churn_window,
        train=part(plan.train),
        validation=part([plan.validation]),
        test=part([plan.test]),
        numeric_features=[*numeric, *BTYD_FEATURES, *VALUE_BTYD_FEATURES],
        categorical_features=categorical,
        btyd_fits=fits,
        training_share=share,
        window_rule=rule,
    )


# --------------------------------------------------------------------------------------------
# Rankers and their metrics


def ranker_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """:data:`VALUE_METRICS` of one ranker: normalised Gini, Spearman, top-decile revenue capture
    (share of the actual revenue held by the top 10 % by prediction), decile MAPE and aggregate
    error (Σ predicted − Σ actual) / Σ actual (see :mod:`clv_models.evaluation.metrics`)."""
    predicted = np.asarray(predicted, dtype=float)
    actual = np.asarray(actual, dtype=float)
    positive = actual.sum() > 0
    nan = float("nan")
    return {
        "gini": normalized_gini(predicted, actual) if positive else nan,
        "spearman": spearman(predicted, actual),
        "top_decile_capture": top_share_capture(predicted, actual, 0.10) if positive else nan,
        "decile_mape": decile_mape(decile_table(predicted, actual)),
        "aggregate_error": aggregate_error(predicted, actual),
    }


def compare_rankers(scores: Mapping[str, np.ndarray], actual: np.ndarray) -> pd.DataFrame:
    """One row per ranker (index ``ranker``, in the mapping's order), one column per metric, and ``n``."""
    if not scores:
        raise ClvInputError("no rankers to compare")
    rows = [ranker_metrics(values, actual) for values in scores.values()]
    table = pd.DataFrame(rows, index=pd.Index(list(scores), name="ranker"), columns=list(VALUE_METRICS))
    table["n"] = np.int64(len(np.asarray(actual)))
    return table


def _filled(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return np.where(np.isfinite(array), array, 0.0)


def recent_spend_column(validation: pd.DataFrame) -> str:
    """``spend_90d`` or ``spend_180d``: whichever ranks the validation snapshot's future revenue
    better (normalised Gini; ties: the shorter window)."""
    actual = validation[REVENUE_LABEL].to_numpy(dtype=float)
    present = [c for c in RECENT_COLUMNS if c in validation.columns]
    if not present:
        raise ClvInputError(f"snapshots lack the recent spend columns {', '.join(RECENT_COLUMNS)}")
    if actual.sum() <= 0:
        return present[0]
    ginis = {c: normalized_gini(_filled(validation[c]), actual) for c in present}
    return max(present, key=lambda c: (ginis[c], -present.index(c)))


def spend_scale(column: np.ndarray, actual: np.ndarray) -> float:
    """Σ actual / Σ column on the validation snapshot (1 when either total is not positive)."""
    total = float(np.sum(column))
    return float(np.sum(actual) / total) if total > 0 and np.sum(actual) > 0 else 1.0


# --------------------------------------------------------------------------------------------
# The rule


@dataclass(frozen=True)
class RankerChoice:
    """What :func:`choose_ranker` picked and why.

    ``name``: the ranker; ``reason``: one sentence; ``past_spend``: the past-spend ranker the
    others were held against; ``worse_than_past_spend``: per ranker, where it is worse than past
    spend beyond noise (empty list = not worse); ``worse_than_best``: per eligible ranker, where it
    is worse than the best eligible ranker; ``eligible``: rankers not worse than past spend, in
    preference order.
    """

    name: str
    reason: str
    past_spend: str
    worse_than_past_spend: dict[str, list[str]]
    worse_than_best: dict[str, list[str]]
    eligible: tuple[str, ...]


def _bootstrap_metrics(
    scores: Mapping[str, np.ndarray], actual: np.ndarray, replicates: int, seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """Per ranker and metric (gini, spearman), the value on each paired bootstrap resample of the
    customers (the same resamples for every ranker); resamples without revenue are left out.
    Equal to :func:`normalized_gini` and :func:`spearman` of each resample (the parts that depend
    on the actual values alone are computed once per resample)."""
    from scipy.stats import rankdata

    from clv_models.evaluation.metrics import gini

    def pearson(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(), b - b.mean()
        norm = np.sqrt((a @ a) * (b @ b))
        return float(a @ b / norm) if norm > 0 else float("nan")

    rng = np.random.default_rng(seed)
    n = len(actual)
    out: dict[str, dict[str, list[float]]] = {name: {"gini": [], "spearman": []} for name in scores}
    for _ in range(replicates):
        index = rng.integers(0, n, n)
        truth = actual[index]
        if truth.sum() <= 0 or np.all(truth == truth[0]):
            continue
        best = gini(truth, truth)
        truth_ranks = rankdata(truth)
        for name, values in scores.items():
            sample = values[index]
            out[name]["gini"].append(gini(sample, truth) / best if best > 0 else float("nan"))
            out[name]["spearman"].append(pearson(rankdata(sample), truth_ranks))
    return {name: {m: np.asarray(v, dtype=float) for m, v in metrics.items()} for name, metrics in out.items()}


def _losses(
    candidate: str,
    references: Mapping[str, str],
    point: pd.DataFrame,
    draws: Mapping[str, Mapping[str, np.ndarray]],
    margins: Mapping[str, float],
) -> list[str]:
    """Where ``candidate`` is worse than ``references[metric]`` beyond noise and margin."""
    losses = []
    for metric, other in references.items():
        if other == candidate:
            continue
        ours, theirs = float(point.loc[candidate, metric]), float(point.loc[other, metric])
        gaps = draws[other][metric] - draws[candidate][metric]
        gaps = gaps[np.isfinite(gaps)]
        noisy_worse = bool(len(gaps)) and float(np.quantile(gaps, 0.05)) > 0
        if not np.isfinite(ours) or (noisy_worse and theirs - ours > margins[metric]):
            name = "Gini" if metric == "gini" else "Spearman"
            losses.append(f"{name} {ours:.4f} vs {theirs:.4f} ({other})")
    return losses


def _below(candidate: str, reference: str, point: pd.DataFrame) -> list[str]:
    """Where ``candidate``'s point estimate is below ``reference``'s (normalised Gini, Spearman)."""
    losses = []
    for metric, name in (("gini", "Gini"), ("spearman", "Spearman")):
        ours, theirs = float(point.loc[candidate, metric]), float(point.loc[reference, metric])
        if candidate != reference and not (np.isfinite(ours) and ours >= theirs):
            losses.append(f"{name} {ours:.4f} vs {theirs:.4f} ({reference})")
    return losses


def choose_ranker(
    scores: Mapping[str, np.ndarray],
    actual: np.ndarray,
    *,
    preference: Sequence[str] = RANKERS,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
    margins: Mapping[str, float] | None = None,
) -> RankerChoice:
    """The ranker the value tiers use, from the rankers' values on one out-of-time snapshot.

    *Worse* (a ranker A against a ranker B on normalised Gini or Spearman): in a paired bootstrap
    of the snapshot's customers (``replicates`` resamples, seeded, the same resamples for every
    ranker), the 5th percentile of B − A is above 0 **and** the observed gap B − A exceeds the
    margin (:data:`MATERIAL_GAP`, 0.01). A ranker whose metric is not finite is worse.

    1. *Past spend* is the past-spend ranker (``past_spend_total`` or ``past_spend_recent``) with
       the higher normalised Gini: the past-spend ranking a shop would use, the strongest of the two
       on the value-weighted metric. (A reference made of the better column *per metric* is not
       a ranking anyone can use: on CDNOW total spend has the better Gini and recent spend the
       better Spearman, and nothing, past spend included, would pass both.)
    2. *Never worse than past spend.* A ranker is *eligible* when its Gini and its Spearman on the
       snapshot are both at least past spend's: strictly, with no allowance for noise (issue 21:
       the tiers never rank customers worse than past spend does; decisions D42). Past spend itself
       always is.
    3. *Ranks best.* Among the eligible, the best on each metric is the reference; the pick is
       the first eligible ranker in ``preference`` order (default: model, btyd_clv, recent past
       spend, total past spend) that is worse than those best on neither metric: the preference
       breaks near-ties towards the value that is a calibrated revenue forecast. If none passes
       (two eligible rankers each worse than the other on one metric), the eligible ranker with
       the highest Gini.

    The pick is never below past spend on Gini or Spearman on the snapshot.
    ``scores`` must hold at least one past-spend ranker; rankers missing from ``preference`` come
    after them.
    """
    margins = dict(MATERIAL_GAP if margins is None else margins)
    actual = np.asarray(actual, dtype=float)
    values = {name: np.asarray(v, dtype=float) for name, v in scores.items()}
    for name, v in values.items():
        if v.shape != actual.shape:
            raise ClvInputError(f"ranker {name}: {v.size} values for {actual.size} customers")
    if not any(name in values for name in PAST_SPEND):
        raise ClvInputError("choose_ranker needs a past-spend ranker (past_spend_total or past_spend_recent)")
    if actual.sum() <= 0:
        raise ClvInputError("choose_ranker: the snapshot has no revenue to rank by")
    order = [n for n in preference if n in values] + [n for n in values if n not in preference]
    point = compare_rankers({n: values[n] for n in order}, actual)
    draws = _bootstrap_metrics(values, actual, replicates, seed)

    def best_of(names: Sequence[str], metric: str) -> str:
        return max(names, key=lambda n: (np.nan_to_num(point.loc[n, metric], nan=-np.inf), -order.index(n)))

    past = best_of([n for n in order if n in PAST_SPEND], "gini")
    vs_past = {name: _below(name, past, point) for name in order}
    eligible = [name for name in order if not vs_past[name]]  # never empty: past spend is eligible
    best_refs = {m: best_of(eligible, m) for m in ("gini", "spearman")}
    vs_best = {name: _losses(name, best_refs, point, draws, margins) for name in eligible}
    passing = [name for name in eligible if not vs_best[name]]
    if passing:
        name = passing[0]
        ahead = order[: order.index(name)]
        why = "; ".join(f"{n}: {', '.join(vs_past[n] or vs_best.get(n, []))}" for n in ahead)
        reason = (
            f"{RANKER_LABELS.get(name, name)}: not worse than past spend ({past}) nor than the best ranker on "
            f"normalised Gini and Spearman out of time (Gini {point.loc[name, 'gini']:.4f}, "
            f"Spearman {point.loc[name, 'spearman']:.4f})"
            + (f"; preferred rankers set aside: {why}" if why else "")
        )
    else:
        name = best_of(eligible, "gini")
        reason = (
            f"{RANKER_LABELS.get(name, name)}: the highest Gini ({point.loc[name, 'gini']:.4f}) among the rankers "
            f"not worse than past spend ({past}); none was as good as the best on both Gini and Spearman"
        )
    return RankerChoice(
        name=name, reason=reason, past_spend=past, worse_than_past_spend=vs_past, worse_than_best=vs_best,
        eligible=tuple(eligible),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Training


@dataclass
class ValueTrainResult:
    """The fitted value model, every ranker on the test snapshot, and the tiers' ranker."""

    model: ValueRegressor
    dataset: ValueDataset
    test_scores: dict[str, np.ndarray]
    comparison: pd.DataFrame  # one row per ranker, columns VALUE_METRICS + n
    choice: RankerChoice
    ranker: ValueRanker  # what the scorer stores: the chosen value, computable row by row
    recent_column: str
    spend_scales: dict[str, float]
    validation_comparison: pd.DataFrame
    raw_aggregate_error: float = float("nan")  # the model's on the test snapshot before calibration
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def shipped(self) -> str:
        return self.choice.name


def value_model_from_settings(
    settings: ValueTrainingSettings | Any, window_days: int, categorical_features: Sequence[str]
) -> ValueRegressor:
    return ValueRegressor(
        window_days=window_days,
        categorical_features=tuple(categorical_features),
        method=settings.method,
        n_trials=settings.n_trials,
        timeout_seconds=settings.timeout_seconds,
        n_folds=settings.n_folds,
        seed=settings.seed,
        early_stopping_rounds=settings.early_stopping_rounds,
        max_rounds=settings.max_rounds,
        threads=settings.threads,
        max_categories=settings.max_categories,
        boost_from=settings.boost_from,
        calibration=getattr(settings, "calibration", "scale"),
        tuning_rows=settings.tuning_rows,
    )


def ranker_scores(
    frame: pd.DataFrame,
    model: ValueRegressor | None,
    recent_column: str,
    scales: Mapping[str, float],
    features: Sequence[str],
) -> dict[str, np.ndarray]:
    """Every ranker's forecast of revenue over W on one snapshot, in :data:`RANKERS` order."""
    scores = {}
    if model is not None:
        scores["model"] = model.predict(frame[list(features)])
    btyd = frame["btyd_value_v"].to_numpy(dtype=float)
    if not np.isfinite(btyd).all():
        raise ClvInputError("btyd_clv: BG/NBD could not be fitted at a value snapshot cutoff")
    scores["btyd_clv"] = btyd
    scores["past_spend_recent"] = _filled(frame[recent_column]) * scales["past_spend_recent"]
    scores["past_spend_total"] = _filled(frame["total_spend"]) * scales["past_spend_total"]
    return scores


def train_value(
    ingested: IngestResult,
    churn: ChurnDataset | ChurnSettings,
    *,
    churn_settings: ChurnSettings | None = None,
    settings: ValueTrainingSettings | Any = None,
    run: Any = None,
    trial_callbacks: tuple[Any, ...] = (),
    dataset: ValueDataset | None = None,
) -> ValueTrainResult:
    """Build the value snapshots, tune/fit/calibrate the value model, compare every ranker on the
    test snapshot and choose the tiers' ranker (module docstring).

    ``churn``: the churn dataset of this training (``ChurnTrainResult.dataset``) or the churn
    settings; ``churn_settings``: the churn settings when ``churn`` is a dataset (schedule, row
    cap, penalizer; default: their defaults). ``settings``: :class:`ValueTrainingSettings` or
    anything with its attributes (a ``[value]`` config section). ``run``: an optional tracking
    handle (metrics, params, tables land there); ``trial_callbacks``: Optuna study callbacks
    (two studies, named ``value_buy`` and ``value_spend``, share them). ``dataset``: reuse
    snapshots built by :func:`build_value_dataset`.
    """
    settings = settings or ValueTrainingSettings()
    if dataset is None:
        dataset = build_value_dataset(ingested, churn, churn_settings=churn_settings, settings=settings)
    features = dataset.features
    train, validation, test = dataset.train, dataset.validation, dataset.test
    for name, part in (("validation", validation), ("test", test)):
        if part[REVENUE_LABEL].sum() <= 0:
            raise ClvInputError(f"the value {name} snapshot ({len(part):,} customers) has no revenue in its window")
    model = value_model_from_settings(settings, dataset.window_days, dataset.categorical_features)
    model.fit(
        train[features],
        train[REVENUE_LABEL],
        groups=train["customer_id"].to_numpy(),
        X_calibration=validation[features],
        y_calibration=validation[REVENUE_LABEL],
        callbacks=trial_callbacks,
    )
    recent = recent_spend_column(validation)
    actual_validation = validation[REVENUE_LABEL].to_numpy(dtype=float)
    scales = {
        "past_spend_total": spend_scale(_filled(validation["total_spend"]), actual_validation),
        "past_spend_recent": spend_scale(_filled(validation[recent]), actual_validation),
    }
    scores = ranker_scores(test, model, recent, scales, features)
    actual = test[REVENUE_LABEL].to_numpy(dtype=float)
    comparison = compare_rankers(scores, actual)
    validation_scores = ranker_scores(validation, model, recent, scales, features)
    validation_comparison = compare_rankers(validation_scores, actual_validation)
    choice = choose_ranker(scores, actual, replicates=settings.bootstrap_replicates)
    ranker = ValueRanker(
        name=choice.name,
        window_days=dataset.window_days,
        column={"past_spend_total": "total_spend", "past_spend_recent": recent}.get(choice.name),
        scale=scales.get(choice.name, 1.0),
        model=model if choice.name == "model" else None,
        reason=choice.reason,
    )
    raw = model.predict_parts(test[features])["raw_value"].to_numpy()
    result = ValueTrainResult(
        model=model, dataset=dataset, test_scores=scores, comparison=comparison, choice=choice, ranker=ranker,
        recent_column=recent, spend_scales=scales, validation_comparison=validation_comparison,
        raw_aggregate_error=aggregate_error(raw, actual),
    )  # fmt: skip
    result.metrics = _metrics(result)
    if run is not None:
        log_value(run, result, settings)
    return result


def _metrics(result: ValueTrainResult) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for ranker in result.comparison.index:
        for metric in VALUE_METRICS:
            metrics[f"value_{ranker}_{metric}"] = float(result.comparison.loc[ranker, metric])
    for metric in VALUE_METRICS:
        metrics[f"value_shipped_{metric}"] = float(result.comparison.loc[result.shipped, metric])
    dataset, model = result.dataset, result.model
    for part, score in model.best_scores_.items():
        metrics[f"value_cv_score_{part}"] = float(score)
    metrics.update(
        value_window_days=float(dataset.window_days),
        value_calibration_factor=float(model.calibration_factor_),
        value_model_raw_aggregate_error=float(result.raw_aggregate_error),
        value_train_rows=float(len(dataset.train)),
        value_validation_rows=float(len(dataset.validation)),
        value_test_rows=float(len(dataset.test)),
        value_test_buyer_share=float((dataset.test[ORDERS_LABEL] > 0).mean()),
        value_test_revenue=float(dataset.test[REVENUE_LABEL].sum()),
        value_trials_completed=float((model.trials_["state"] == "COMPLETE").sum()),
        value_shipped_is_model=float(result.shipped == "model"),
        value_shipped_not_worse_than_past_spend=float(not result.choice.worse_than_past_spend[result.shipped]),
    )
    return metrics


def value_summary(result: ValueTrainResult) -> str:
    """One sentence: what the value tiers rank by, and why."""
    return f"value tiers rank by {result.choice.reason}"


def value_markdown(result: ValueTrainResult) -> str:
    """The value evaluation as Markdown (a section of the evaluation report)."""
    plan = result.dataset.plan
    shown = result.comparison.copy()
    shown["n"] = shown["n"].map(lambda v: f"{int(v):,}")
    lines = [
        "# Customer value: rankers out of time",
        "",
        f"Value = revenue net of returns in the {plan.window_days} days after the cutoff "
        f"({result.dataset.window_rule}). "
        f"Training snapshots {', '.join(d.isoformat() for d in plan.train)} ({len(result.dataset.train):,} rows); "
        f"calibration on {plan.validation}; test on {plan.test} ({len(result.dataset.test):,} customers, "
        f"{(result.dataset.test[ORDERS_LABEL] > 0).mean():.1%} buy, "
        f"revenue {result.dataset.test[REVENUE_LABEL].sum():,.2f}).",
        "",
        shown.to_markdown(floatfmt=".4f"),
        "",
        f"Recent past spend is `{result.recent_column}`; past spend is scaled to a forecast by the validation "
        f"snapshot's ratio of future revenue to spend (total {result.spend_scales['past_spend_total']:.4g}, recent "
        f"{result.spend_scales['past_spend_recent']:.4g}). The value model's calibration factor is "
        f"{result.model.calibration_factor_:.4f}.",
        "",
        f"**Tiers** {value_summary(result)}.",
        "",
    ]
    return "\n".join(lines)


def log_value(run: Any, result: ValueTrainResult, settings: ValueTrainingSettings | Any) -> None:
    """Params, tags, metrics and tables of a value training on a tracking run handle."""
    dump = settings.model_dump() if isinstance(settings, ValueTrainingSettings) else settings.model_dump(mode="json")
    run.log_params({"value": dump})
    run.log_params({f"value_best_{part}": params for part, params in result.model.best_params_.items()})
    run.set_tags({"value_ranker": result.shipped, "value_ranker_reason": result.choice.reason})
    run.log_metrics(result.metrics)
    run.log_dict(result.dataset.plan.as_dict(), "value/snapshots.json")
    run.log_table(result.comparison, "value/comparison.csv")
    run.log_table(result.model.trials_, "value/trials.csv")
    run.log_table(result.model.feature_importance().to_frame(), "value/feature_importance.csv")


__all__ = [
    "MATERIAL_GAP",
    "PAST_SPEND",
    "RANKER_LABELS",
    "VALUE_METRICS",
    "RankerChoice",
    "ValueDataset",
    "ValueTrainResult",
    "ValueTrainingSettings",
    "build_value_dataset",
    "choose_ranker",
    "compare_rankers",
    "log_value",
    "ranker_metrics",
    "recent_spend_column",
    "train_value",
    "value_markdown",
    "value_summary",
    "value_window",
]
