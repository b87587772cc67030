"""Customer value over a future window: LightGBM tuned with Optuna, calibrated on a later slice.

:class:`ValueRegressor` predicts each customer's revenue over the ``window_days`` after the cutoff
(net of returns, currency) from the point-in-time snapshot features of
:mod:`clv_models.features.churn` (BTYD features included). The target is zero for most customers
and heavy-tailed for the rest. Two methods, chosen by measurement (docs/decisions.md, the value
model's record; ``benchmarks/value_rankers.py``):

* ``method="two_part"`` (default): the hurdle model E[revenue | x] = P(buy | x) · E[revenue | buy, x]:
  a LightGBM classifier of "any purchase in the window" (log loss) and a regressor of log revenue
  on the buyers (squared error), read back as exp(μ(x)) · smearing (Duan 1983: the mean of
  exp(residual) over the best trial's out-of-fold buyers). This is the zero-inflated lognormal
  (ZILN) of Wang, Liu & Miao (2019, "A Deep Probabilistic Model for Customer Lifetime Value
  Prediction") with one constant σ, its two heads fitted separately: the ZILN loss is then the
  Bernoulli log likelihood plus the lognormal log likelihood of the buyers, whose μ part is the
  squared error in logs, so each head is tuned on its own proper score with LightGBM's built-in
  objectives. (A per-customer σ needs a custom multi-output gradient LightGBM does not offer.)
  :meth:`ValueRegressor.predict_parts` gives P(buy) and E[revenue | buy].
* ``method="tweedie"``: one LightGBM regressor with the Tweedie loss (log link; the variance
  power, 1.1-1.9, tuned with the tree parameters). A Tweedie variable with power in (1, 2) is a
  Poisson number of Gamma amounts: an exact zero when the count is 0, a skewed positive amount
  otherwise - a zero-inflated, heavy-tailed revenue model in one loss, fitted on every row.

Measured on six shops (test snapshot; same snapshots, seeds and trials): the two-part model
ranks slightly better on four (normalised Gini +0.002 to +0.005, CDNOW and Online Retail among
them; Online Retail Spearman +0.010) and captures more revenue in the top decile on five; Tweedie
is ahead by 0.03-0.04 Gini on two small or sparse simulated shops (a wholesaler's 430 customers,
a shop of one-time buyers), where another seed of the same shops gave a tie. Tweedie tunes one
study instead of two (about half the time).

Fitting (``fit(X, y, groups=…, X_calibration=…, y_calibration=…)``), as the churn classifier:

1. categorical columns are encoded with a vocabulary learned on the training rows (the
   ``max_categories`` most frequent values, "other" beyond, missing stays missing);
2. folds are built once with the seed, grouped by customer (``groups``) and, except for the
   spend part (buyers only), stratified by whether the customer buys;
3. each part (``value``; or ``buy`` and ``spend``) has its own Optuna study (TPE, seeded, median
   pruner, ``n_trials`` trials, no time budget by default); a trial trains one booster per fold
   with early stopping; the Tweedie trials are compared by the deviance at power 1.5 (the
   trials' own powers are not comparable), the buy trials by log loss, the spend trials by RMSE
   of log revenue;
4. the final boosters are trained on all training rows (the spend booster on the buyers) with the
   best parameters for the mean of the best trial's early-stopping rounds;
5. **calibration**: one multiplicative factor, Σ actual / Σ predicted on the calibration
   snapshot (an out-of-time slice the boosters never saw), so the predicted total matches the
   actual total there. One factor keeps the ranking and cannot overfit; isotonic regression on
   the expected value would make ties among the top customers.

``boost_from="btyd"`` (default) starts the boosters from the BTYD expectation over the same
window (:func:`btyd_value_features`): Tweedie from log(E[X(W)] · E[order value]), the buy part
from logit(1 − P(no purchase in W)), the spend part from log(E[X(W)] · E[order value] /
P(X(W) > 0)) = log E[revenue | buy] under BG/NBD + Gamma-Gamma. The trees learn corrections to
those, which extrapolate to the later, longer histories of the scoring cutoff where trees alone
cannot (docs/decisions.md D14); measured, it adds 0.03-0.05 Gini on the simulated retail and
one-time shops and ties elsewhere. A row whose prior is missing (a BTYD fit failed) starts from the
training rows' mean prior.

Row-wise: ``predict`` of a row depends on that row and the fitted state only, so a customer's
value is the same scored alone or in any batch. Determinism: LightGBM ``deterministic=True``,
row-wise histograms, a fixed thread count, a seeded sampler: the same data, settings and seed
give the same predictions bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError
from clv_models.models import _lgbm_tuning as lgbm_tuning

if TYPE_CHECKING:
    from clv_models.models.btyd_features import BtydChurnFeatures

#: Features over the value window W, from the BTYD models behind the churn features.
VALUE_BTYD_FEATURES = ("bgnbd_expected_purchases_v", "bgnbd_p_no_purchase_v", "btyd_value_v")
METHODS = ("two_part", "tweedie")
_PROBABILITY_FLOOR = 1e-6


def btyd_value_features(daily: pd.DataFrame, btyd: BtydChurnFeatures, *, window_days: int) -> pd.DataFrame:
    """The BTYD expectations over the value window W (days), one row per input row, same index:

    * ``bgnbd_expected_purchases_v``: E[X(W) | x, t_x, T] of the daily BG/NBD;
    * ``bgnbd_p_no_purchase_v``: P(X(W) = 0 | x, t_x, T);
    * ``btyd_value_v``: E[X(W)] × the Gamma-Gamma expected order value — the BTYD revenue forecast
      over W, undiscounted (when Gamma-Gamma is not fitted, e.g. fewer than 20 repeat buyers, the
      customer's own ``avg_order_value`` stands in for it).

    ``btyd`` is the :class:`~clv_models.models.btyd_features.BtydChurnFeatures` fitted at the
    snapshot's cutoff (training) or stored in the scorer (scoring): the same BG/NBD and
    Gamma-Gamma as the churn window's features, evaluated over W instead. Input: the daily RFM
    columns (``frequency_days``, ``recency_days``, ``T_days``, ``monetary_value_days``) and
    ``avg_order_value``. A row's values depend on that row only.
    """
    from clv_models.models.btyd_features import _as_rfm

    check_is_fitted(btyd, "diagnostics_")
    rfm = _as_rfm(daily)
    horizon = f"{int(window_days)}D"
    n = len(rfm)
    purchases = np.full(n, np.nan)
    p_none = np.full(n, np.nan)
    if btyd.bgnbd_ is not None:
        purchases = np.asarray(btyd.bgnbd_.expected_purchases(rfm, horizon=horizon), dtype=float)
        p_none = np.asarray(btyd.bgnbd_.probability_no_purchase(rfm, horizon=horizon), dtype=float)
    order_value = np.full(n, np.nan)
    if btyd.gamma_gamma_ is not None:
        order_value = np.asarray(btyd.gamma_gamma_.expected_order_value(rfm), dtype=float)
    if "avg_order_value" in daily.columns:
        own = pd.to_numeric(daily["avg_order_value"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        order_value = np.where(np.isfinite(order_value), order_value, own)
    return pd.DataFrame(
        {
            "bgnbd_expected_purchases_v": purchases,
            "bgnbd_p_no_purchase_v": p_none,
            "btyd_value_v": purchases * order_value,
        },
        index=daily.index,
    )


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
    return np.log(clipped) - np.log1p(-clipped)


class ValueRegressor(RegressorMixin, BaseEstimator):
    """Expected revenue over ``window_days`` (days) after the cutoff; see the module docstring.

    ``predict(X)`` is the calibrated expected revenue (currency, ≥ 0); :meth:`predict_parts`
    gives P(buy), E[revenue | buy] and the uncalibrated product. Fitted attributes:
    ``feature_names_``, ``vocabulary_``, ``calibration_factor_``, ``best_params_`` (per part),
    ``best_scores_``, ``best_iterations_``, ``trials_`` (one row per trial, column ``part``),
    ``smearing_``, ``prior_fallback_``, ``n_train_``, ``n_calibration_``, ``train_buy_rate_``.
    """

    def __init__(
        self,
        *,
        window_days: int = 90,
        categorical_features: Sequence[str] = (),
        method: str = "two_part",
        n_trials: int = 20,
        timeout_seconds: float | None = None,
        n_folds: int = 4,
        seed: int = 42,
        early_stopping_rounds: int = 50,
        max_rounds: int = 1000,
        threads: int = 1,
        max_categories: int = 30,
        boost_from: str | None = "btyd",
        calibration: str = "scale",
        tuning_rows: int | None = 200_000,
    ) -> None:
        self.window_days = window_days
        self.categorical_features = categorical_features
        self.method = method
        self.n_trials = n_trials
        self.timeout_seconds = timeout_seconds
        self.n_folds = n_folds
        self.seed = seed
        self.early_stopping_rounds = early_stopping_rounds
        self.max_rounds = max_rounds
        self.threads = threads
        self.max_categories = max_categories
        self.boost_from = boost_from
        self.calibration = calibration
        self.tuning_rows = tuning_rows

    # -- encoding (the churn classifier's rules) ---------------------------------------------

    def _learn_vocabulary(self, X: pd.DataFrame) -> dict[str, list[str]]:
        vocabulary = {}
        for column in self.categorical_features:
            counts = X[column].dropna().astype(str).value_counts()
            ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            vocabulary[column] = [value for value, _ in ordered[: self.max_categories]]
        return vocabulary

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        """Float64 matrix in ``feature_names_`` order; categories as codes, 'other' last."""
        if not isinstance(X, pd.DataFrame):
            raise ClvInputError("value features must be a DataFrame with named columns")
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ClvInputError(f"value features lack column(s) {', '.join(missing)}")
        columns = []
        for name in self.feature_names_:
            if name in self.vocabulary_:
                vocabulary = self.vocabulary_[name]
                values = X[name].astype("string")
                absent = values.isna().to_numpy()
                known = values.where(values.isin(vocabulary))
                codes = pd.Categorical(known, categories=vocabulary).codes.astype(float)
                codes[(codes < 0) & ~absent] = len(vocabulary)  # unseen or rare value: "other"
                codes[absent] = np.nan
                columns.append(codes)
            else:
                values = pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                if np.isinf(values).any():
                    values = np.where(np.isinf(values), np.nan, values)
                columns.append(values)
        return np.column_stack(columns) if columns else np.empty((len(X), 0))

    # -- priors (boost_from) -------------------------------------------------------------------

    def _raw_priors(self, X: pd.DataFrame) -> dict[str, np.ndarray] | None:
        """Per part, the BTYD start in the booster's link scale (NaN where BTYD is missing)."""
        if self.boost_from in (None, "none"):
            return None
        missing = [c for c in ("bgnbd_p_no_purchase_v", "btyd_value_v") if c not in X.columns]
        if missing:
            raise ClvInputError(
                f"boost_from='btyd' needs column(s) {', '.join(missing)}: add btyd_value_features to the table"
            )
        p_none = pd.to_numeric(X["bgnbd_p_no_purchase_v"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        value = pd.to_numeric(X["btyd_value_v"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        p_buy = np.clip(1.0 - p_none, _PROBABILITY_FLOOR, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # E[revenue | buy] = E[X]·E[M] / P(X > 0) ≥ E[M]: at least one order when one buys.
            spend = np.log(np.maximum(value / p_buy, 1e-2))
            total = np.log(np.maximum(value, 1e-2))
        priors = {"buy": _logit(1.0 - p_none), "spend": spend, "value": total}
        return {k: np.where(np.isfinite(v), v, np.nan) for k, v in priors.items()}

    def _priors(self, X: pd.DataFrame) -> dict[str, np.ndarray] | None:
        raw = self._raw_priors(X)
        if raw is None:
            return None
        return {k: np.where(np.isnan(v), self.prior_fallback_[k], v) for k, v in raw.items()}

    # -- fitting -------------------------------------------------------------------------------

    def _base_params(self, objective: str) -> dict[str, Any]:
        return lgbm_tuning.base_params(objective, seed=self.seed, threads=self.threads)

    #: LightGBM parameters Optuna searches (the churn classifier's space,
    #: :func:`clv_models.models._lgbm_tuning.search_space`).
    search_space = staticmethod(lgbm_tuning.search_space)

    def _tuning_sample(self, n_rows: int, groups: np.ndarray | None) -> np.ndarray:
        """Row indices the trials use: all rows, or whole customers drawn with the seed up to
        ``tuning_rows`` rows (:func:`clv_models.models._lgbm_tuning.tuning_sample`)."""
        return lgbm_tuning.tuning_sample(n_rows, groups, tuning_rows=self.tuning_rows, seed=self.seed)

    def _folds(
        self, rows: np.ndarray, strata: np.ndarray | None, groups: np.ndarray | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Folds over ``rows`` (indices into the training matrix), as indices into the matrix."""
        from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

        n = len(rows)
        dummy = np.zeros(n)
        if strata is not None:
            if groups is None:
                splits = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.seed).split(dummy, strata[rows])
            else:
                splits = StratifiedGroupKFold(self.n_folds, shuffle=True, random_state=self.seed).split(
                    dummy, strata[rows], groups[rows]
                )
        elif groups is None:
            splits = KFold(self.n_folds, shuffle=True, random_state=self.seed).split(dummy)
        else:
            # Whole customers to folds by a seeded permutation (GroupKFold shuffles only from sklearn 1.6).
            codes, _ = pd.factorize(groups[rows], sort=True)
            fold = np.random.default_rng(self.seed).permutation(codes.max() + 1)[codes] % self.n_folds
            splits = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(self.n_folds)]
        return [(rows[train], rows[valid]) for train, valid in splits]

    def _check(self, X: Any, y: Any, what: str) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            raise ClvInputError(f"{what}: features must be a DataFrame with named columns")
        target = np.asarray(y, dtype=float).ravel()
        if len(target) != len(X):
            raise ClvInputError(f"{what}: {len(X):,} feature rows but {len(target):,} revenue labels")
        if not np.isfinite(target).all() or (target < 0).any():
            raise ClvInputError(f"{what}: revenue labels must be finite and ≥ 0")
        return target

    def fit(
        self,
        X: pd.DataFrame,
        y: Any,
        *,
        groups: Any = None,
        X_calibration: pd.DataFrame,
        y_calibration: Any,
        callbacks: Sequence[Callable[[Any, Any], None]] = (),
    ) -> ValueRegressor:
        """Tune, train and calibrate (module docstring). ``y``: revenue per row over the window
        (≥ 0); ``groups``: customer ids (a customer's snapshots never straddle a fold);
        ``callbacks``: Optuna study callbacks (the tracking layer logs trials with one). Returns self."""
        if self.method not in METHODS:
            raise ClvInputError(f"value method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.calibration not in ("scale", "none"):
            raise ClvInputError(f"value calibration must be 'scale' or 'none', got {self.calibration!r}")
        if self.boost_from not in (None, "none", "btyd"):
            raise ClvInputError(f"value boost_from must be 'btyd' or 'none', got {self.boost_from!r}")
        target = self._check(X, y, "value training set")
        calibration_target = self._check(X_calibration, y_calibration, "value calibration set")
        buyers = target > 0
        if buyers.sum() < 2 * self.n_folds or (~buyers).sum() < self.n_folds:
            raise ClvInputError(
                f"value training set: {int(buyers.sum()):,} of {len(target):,} rows have revenue in the window; "
                f"the value model needs at least {2 * self.n_folds} with and {self.n_folds} without"
            )
        unknown = [c for c in self.categorical_features if c not in X.columns]
        if unknown:
            raise ClvInputError(f"categorical feature(s) {', '.join(unknown)} are not columns of X")

        self.feature_names_ = [str(c) for c in X.columns]
        self.vocabulary_ = self._learn_vocabulary(X)
        matrix = self._matrix(X)
        raw_priors = self._raw_priors(X)
        if raw_priors is not None:
            fallback = {
                "buy": float(_logit(np.array([buyers.mean()]))[0]),
                "spend": float(np.log(target[buyers]).mean()),
                "value": float(np.log(max(target.mean(), 1e-2))),
            }
            self.prior_fallback_ = {
                k: float(np.nanmean(v)) if np.isfinite(v).any() else fallback[k] for k, v in raw_priors.items()
            }
        else:
            self.prior_fallback_ = {}
        priors = self._priors(X)
        group_array = None if groups is None else np.asarray(groups)
        tuning = self._tuning_sample(len(target), group_array)
        self.n_tuning_rows_ = len(tuning)
        self.best_params_: dict[str, dict[str, Any]] = {}
        self.best_scores_: dict[str, float] = {}
        self.best_iterations_: dict[str, int] = {}
        self.boosters_: dict[str, Any] = {}
        trials: list[pd.DataFrame] = []
        if self.method == "two_part":
            label = buyers.astype(np.int8)
            log_revenue = np.log(np.where(buyers, target, 1.0))
            parts = {
                "buy": (np.arange(len(target)), label, "binary", "binary_logloss", label),
                "spend": (np.flatnonzero(buyers), log_revenue, "regression", "l2", None),
            }
        else:
            parts = {"value": (np.arange(len(target)), target, "tweedie", "tweedie", buyers.astype(np.int8))}
        for part, (rows, labels, objective, metric, strata) in parts.items():
            tuning_rows = np.intersect1d(rows, tuning)
            folds = self._folds(tuning_rows, strata, group_array)
            prior = None if priors is None else priors[part]
            study = self._tune(part, matrix, labels, prior, folds, objective, metric, callbacks)
            best = lgbm_tuning.best_trial(study, "no Optuna trial of the value model completed; raise value.n_trials")
            self.best_params_[part] = dict(best.params)
            self.best_scores_[part] = float(best.value)
            self.best_iterations_[part] = lgbm_tuning.best_iteration(best)
            if part == "spend":
                self.smearing_ = float(best.user_attrs["smearing"])
            trials.append(lgbm_tuning.trials_frame(study, part=part))
            self.boosters_[part] = self._train(
                {**self._base_params(objective), **self.best_params_[part]},
                matrix[rows], labels[rows], None if prior is None else prior[rows], self.best_iterations_[part],
            )
        if self.method == "tweedie":
            self.smearing_ = 1.0
        self.trials_ = pd.concat(trials, ignore_index=True)
        self.n_train_ = len(target)
        self.train_buy_rate_ = float(buyers.mean())
        self.calibration_factor_ = 1.0
        raw = self.predict_parts(X_calibration)["raw_value"].to_numpy()
        if self.calibration == "scale":
            total = float(raw.sum())
            if total > 0 and calibration_target.sum() > 0:
                self.calibration_factor_ = float(calibration_target.sum() / total)
        self.n_calibration_ = len(calibration_target)
        return self

    def _train(self, params: dict[str, Any], matrix: np.ndarray, labels: np.ndarray, prior: np.ndarray | None,
               rounds: int, valid: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None) -> Any:  # fmt: skip
        import lightgbm as lgb

        categorical = [self.feature_names_.index(c) for c in self.categorical_features]
        train_set = lgb.Dataset(matrix, labels, init_score=prior, categorical_feature=categorical, free_raw_data=True)
        if valid is None:
            return lgb.train(params, train_set, num_boost_round=rounds)
        valid_set = lgb.Dataset(valid[0], valid[1], init_score=valid[2], categorical_feature=categorical,
                                reference=train_set)  # fmt: skip
        return lgb.train(
            params, train_set, num_boost_round=rounds, valid_sets=[valid_set],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )  # fmt: skip

    def _tune(self, part: str, matrix: np.ndarray, labels: np.ndarray, prior: np.ndarray | None,
              folds: list[tuple[np.ndarray, np.ndarray]], objective: str, metric: str,
              callbacks: Sequence[Callable[[Any, Any], None]]) -> Any:  # fmt: skip
        from scipy.special import expit

        def fold_score(booster: Any, rows: np.ndarray, best: int) -> tuple[float, float]:
            raw = booster.predict(matrix[rows], num_iteration=best, raw_score=True)
            if prior is not None:
                raw = raw + prior[rows]
            truth = labels[rows]
            if part == "buy":
                p = np.clip(expit(raw), 1e-15, 1 - 1e-15)
                return float(-np.mean(truth * np.log(p) + (1 - truth) * np.log1p(-p))), 0.0
            if part == "spend":
                residual = truth - raw
                return float(np.sqrt(np.mean(residual**2))), float(np.sum(np.exp(residual)))
            # Tweedie deviance at the mid power 1.5, comparable across the trials' variance powers.
            mu = np.exp(raw)
            power = 1.5
            deviance = 2 * (
                np.power(truth, 2 - power) / ((1 - power) * (2 - power))
                - truth * np.power(mu, 1 - power) / (1 - power)
                + np.power(mu, 2 - power) / (2 - power)
            )
            return float(np.mean(deviance)), 0.0

        def objective_fn(trial: Any) -> float:
            params = {**self._base_params(objective), **self.search_space(trial), "metric": metric}
            if part == "value":
                params["tweedie_variance_power"] = trial.suggest_float("tweedie_variance_power", 1.1, 1.9)
            scores, iterations, smear_sum, smear_n = [], [], 0.0, 0
            for step, (train_rows, valid_rows) in enumerate(folds):
                booster = self._train(
                    params, matrix[train_rows], labels[train_rows], None if prior is None else prior[train_rows],
                    self.max_rounds,
                    (matrix[valid_rows], labels[valid_rows], None if prior is None else prior[valid_rows]),
                )
                best = booster.best_iteration or self.max_rounds
                score, smear = fold_score(booster, valid_rows, best)
                scores.append(score)
                iterations.append(best)
                smear_sum, smear_n = smear_sum + smear, smear_n + len(valid_rows)
                lgbm_tuning.report_fold(trial, scores, iterations, step)
            return lgbm_tuning.finish_trial(trial, scores, iterations, smearing=smear_sum / max(smear_n, 1))

        study = lgbm_tuning.create_study("minimize", seed=self.seed, study_name=f"value_{part}")
        study.optimize(objective_fn, n_trials=self.n_trials, timeout=self.timeout_seconds, callbacks=list(callbacks))
        return study

    # -- predictions ---------------------------------------------------------------------------

    def predict_parts(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per row: ``p_buy`` (P(any purchase in the window); NaN for ``method="tweedie"``),
        ``spend_if_buy`` (E[revenue | buy]; NaN for tweedie), ``raw_value`` (their product, before
        calibration) and ``value`` (= ``raw_value`` × ``calibration_factor_``). Same index as X."""
        from scipy.special import expit

        check_is_fitted(self, "boosters_")
        matrix = self._matrix(X)
        priors = self._priors(X)

        def raw(part: str) -> np.ndarray:
            score = self.boosters_[part].predict(matrix, raw_score=True)
            return score if priors is None else score + priors[part]

        if self.method == "two_part":
            p_buy = expit(raw("buy"))
            spend = np.exp(raw("spend")) * self.smearing_
            value = p_buy * spend
        else:
            p_buy = spend = np.full(len(X), np.nan)
            value = np.exp(raw("value"))
        value = np.asarray(value, dtype=float)
        return pd.DataFrame(
            {"p_buy": p_buy, "spend_if_buy": spend, "raw_value": value,
             "value": value * getattr(self, "calibration_factor_", 1.0)},
            index=X.index,
        )  # fmt: skip

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated expected revenue over ``window_days`` per row (currency, ≥ 0)."""
        check_is_fitted(self, "calibration_factor_")
        return self.predict_parts(X)["value"].to_numpy(dtype=float)

    def feature_importance(self, part: str | None = None, kind: str = "gain") -> pd.Series:
        """Total gain (or split count, ``kind='split'``) per feature of one part (default: the
        first: ``buy``, or ``value`` for tweedie), largest first."""
        check_is_fitted(self, "boosters_")
        part = part or next(iter(self.boosters_))
        values = self.boosters_[part].feature_importance(importance_type=kind)
        series = pd.Series(values, index=self.feature_names_, name=f"importance_{kind}", dtype=float)
        return series.sort_values(ascending=False, kind="stable")


# --------------------------------------------------------------------------------------------
# What the tiers rank by


#: The rankers a value evaluation compares, and what each reads from a feature table.
RANKERS = ("model", "btyd_clv", "past_spend_recent", "past_spend_total")
RANKER_SOURCES = {
    "past_spend_total": "total_spend (net spend of the whole history)",
    "past_spend_recent": "spend_90d or spend_180d (net spend of the last 90 / 180 days)",
    "btyd_clv": "btyd_value_v (BG/NBD E[X(W)] x Gamma-Gamma E[order value], the churn features' fits over W)",
    "model": "ValueRegressor.predict (LightGBM, calibrated)",
}


@dataclass
class ValueRanker:
    """The value the tiers rank customers by, as chosen out of time by training
    (``clv_models.training.value.choose_ranker``), and how to compute it from one feature table row.

    ``name``: one of :data:`RANKERS`; ``column``: the feature-table column for the past-spend
    rankers (``total_spend``, ``spend_90d`` or ``spend_180d``); ``window_days``: the value window W;
    ``scale``: the factor that turns a past-spend column into a revenue forecast over W (fitted on
    the validation snapshot; 1 for the others; it never changes the order); ``model``: the
    :class:`ValueRegressor` when ``name == "model"``; ``reason``: the sentence that says why.
    """

    name: str
    window_days: int
    column: str | None = None
    scale: float = 1.0
    model: ValueRegressor | None = None
    reason: str = ""

    def input_columns(self) -> list[str]:
        """Feature-table columns :meth:`value` reads; the BTYD features it derives itself from the
        daily RFM (``frequency_days``, ``recency_days``, ``T_days``, ``monetary_value_days``)."""
        from clv_models.models.btyd_features import BTYD_FEATURES, DAILY_RFM

        if self.name in ("past_spend_total", "past_spend_recent"):
            return [str(self.column)]
        needed = [*DAILY_RFM, "avg_order_value"]
        if self.name == "model":
            if self.model is None:
                raise ClvInputError("value ranker 'model' has no fitted model")
            derived = {*BTYD_FEATURES, *VALUE_BTYD_FEATURES}
            needed += [c for c in self.model.feature_names_ if c not in derived and c not in needed]
        return needed

    def value(self, table: pd.DataFrame, btyd: BtydChurnFeatures | None = None) -> np.ndarray:
        """Predicted revenue over W per row of ``table`` (the feature table, with the four churn
        BTYD features when the model reads them). ``btyd``: the scorer's stored
        BtydChurnFeatures, needed for ``btyd_clv`` and ``model``. Row-wise."""
        if self.name in ("past_spend_total", "past_spend_recent"):
            column = str(self.column)
            if column not in table.columns:
                raise ClvInputError(f"value ranker {self.name} needs column {column}")
            return pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan) * self.scale
        if btyd is None:
            raise ClvInputError(f"value ranker {self.name} needs the BTYD feature models")
        extra = btyd_value_features(table, btyd, window_days=self.window_days)
        if self.name == "btyd_clv":
            return extra["btyd_value_v"].to_numpy(dtype=float) * self.scale
        if self.model is None:
            raise ClvInputError("value ranker 'model' has no fitted model")
        frame = table.copy(deep=False)  # new columns only: the caller's table is never modified
        from clv_models.models.btyd_features import BTYD_FEATURES

        if any(name not in frame.columns for name in BTYD_FEATURES):
            churn_window = btyd.transform(table)  # the churn features over the churn window w
            for name in BTYD_FEATURES:
                frame[name] = churn_window[name].to_numpy()
        for name in extra.columns:
            frame[name] = extra[name].to_numpy()
        return self.model.predict(frame)


__all__ = ["METHODS", "RANKERS", "VALUE_BTYD_FEATURES", "ValueRanker", "ValueRegressor", "btyd_value_features"]
