"""Churn classifier: LightGBM tuned with Optuna, then calibrated on an out-of-time slice.

``fit`` (scikit-learn contract: settings in ``__init__``, data in ``fit``, fitted state in
``attr_`` attributes):

1. Categorical columns are encoded with a vocabulary learned on the training rows (the
   ``max_categories`` most frequent values, ties by value; anything else is "other"; missing stays
   missing), so the same value always gets the same code.
2. Folds are built once, with the seed, stratified by label and grouped by customer (a customer's
   snapshots never sit on both sides of a fold).
3. Optuna's TPE sampler (seeded) searches the LightGBM space in :meth:`ChurnClassifier.search_space`;
   each trial trains one booster per fold with early stopping on that fold, reports the running
   mean score after each fold, and the median pruner stops trials that trail. ``callbacks`` are
   Optuna study callbacks: the tracking layer passes one that logs every trial as a nested MLflow
   run (this module never imports mlflow).
4. The final booster is trained on all training rows with the best parameters for the mean of the
   best trial's early-stopping iterations.
5. The raw probabilities are calibrated on ``(X_calibration, y_calibration)`` — an out-of-time
   snapshot the booster never saw — with isotonic regression or Platt scaling.

Class imbalance: ``class_balance="balanced"`` weights the classes equally in training (every
fold and the final fit); calibration maps the resulting scores back to probabilities.

Determinism: LightGBM runs with ``deterministic=True``, row-wise histograms and a fixed thread
count, Optuna with a seeded sampler and no time budget by default, so the same data, settings
and seed give the same probabilities bit for bit (tested). A ``timeout_seconds`` makes the number
of trials, and therefore the model, depend on the machine's speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError
from clv_models.models import _lgbm_tuning as lgbm_tuning


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, 1e-12, 1 - 1e-12)
    return np.log(clipped) - np.log1p(-clipped)


class ChurnClassifier(ClassifierMixin, BaseEstimator):
    """LightGBM binary classifier of churn, tuned with Optuna and calibrated.

    ``predict_proba(X)[:, 1]`` is the calibrated probability that the customer churns over the
    window the labels were made with: ``window_days`` (days), recorded here so that whatever
    applies the classifier (the scorer, its BTYD features) reads the window from the model itself.
    """

    def __init__(
        self,
        *,
        window_days: int = 90,
        categorical_features: Sequence[str] = (),
        n_trials: int = 30,
        timeout_seconds: float | None = None,
        n_folds: int = 4,
        seed: int = 42,
        tuning_metric: str = "log_loss",
        calibration: str = "sigmoid",
        class_balance: str = "none",
        early_stopping_rounds: int = 50,
        max_rounds: int = 2000,
        threads: int = 1,
        max_categories: int = 30,
        boost_from: str | None = None,
        tuning_rows: int | None = 200_000,
    ) -> None:
        self.window_days = window_days
        self.categorical_features = categorical_features
        self.n_trials = n_trials
        self.timeout_seconds = timeout_seconds
        self.n_folds = n_folds
        self.seed = seed
        self.tuning_metric = tuning_metric
        self.calibration = calibration
        self.class_balance = class_balance
        self.early_stopping_rounds = early_stopping_rounds
        self.max_rounds = max_rounds
        self.threads = threads
        self.max_categories = max_categories
        self.boost_from = boost_from
        self.tuning_rows = tuning_rows

    @classmethod
    def from_settings(cls, settings: Any, categorical_features: Sequence[str] = ()) -> ChurnClassifier:
        """From :class:`clv_models.config.ChurnSettings`."""
        return cls(
            window_days=settings.window_days,
            categorical_features=tuple(categorical_features),
            n_trials=settings.n_trials,
            timeout_seconds=settings.timeout_seconds,
            n_folds=settings.n_folds,
            seed=settings.seed,
            tuning_metric=settings.tuning_metric,
            calibration=settings.calibration,
            class_balance=settings.class_balance,
            early_stopping_rounds=settings.early_stopping_rounds,
            max_rounds=settings.max_rounds,
            threads=settings.threads,
            max_categories=settings.max_categories,
            boost_from=None if settings.boost_from == "none" else settings.boost_from,
            tuning_rows=settings.tuning_rows,
        )

    # -- encoding --------------------------------------------------------------------------

    def _learn_vocabulary(self, X: pd.DataFrame) -> dict[str, list[str]]:
        vocabulary = {}
        for column in self.categorical_features:
            counts = X[column].dropna().astype(str).value_counts()
            ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            vocabulary[column] = [value for value, _ in ordered[: self.max_categories]]
        return vocabulary

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        """Float64 matrix in ``feature_names_`` order; categories as codes, 'other' last."""
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ClvInputError(f"churn features lack column(s) {', '.join(missing)}")
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

    def _prior(self, X: pd.DataFrame) -> np.ndarray | None:
        """Log-odds of the ``boost_from`` probability column (the boosting starts there), or None."""
        if self.boost_from is None:
            return None
        if self.boost_from not in X.columns:
            raise ClvInputError(f"boost_from column {self.boost_from!r} is not among the features")
        probability = X[self.boost_from].to_numpy(dtype=float)
        if not np.isfinite(probability).all():
            raise ClvInputError(f"boost_from column {self.boost_from!r} has missing or non-finite values")
        return _logit(probability)

    # -- fitting ---------------------------------------------------------------------------

    def _base_params(self) -> dict[str, Any]:
        return lgbm_tuning.base_params("binary", seed=self.seed, threads=self.threads)

    #: LightGBM parameters Optuna searches (:func:`clv_models.models._lgbm_tuning.search_space`).
    search_space = staticmethod(lgbm_tuning.search_space)

    def _weights(self, y: np.ndarray) -> np.ndarray:
        if self.class_balance == "none":
            return np.ones(len(y))
        positives = y.sum()
        negatives = len(y) - positives
        return np.where(y == 1, len(y) / (2 * positives), len(y) / (2 * negatives))

    def _folds(self, y: np.ndarray, groups: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        if groups is None:
            splitter: Any = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.seed)
            return list(splitter.split(np.zeros(len(y)), y))
        splitter = StratifiedGroupKFold(self.n_folds, shuffle=True, random_state=self.seed)
        return list(splitter.split(np.zeros(len(y)), y, groups))

    def _tuning_sample(self, n_rows: int, groups: np.ndarray | None) -> np.ndarray:
        """Row indices the trials use: all rows, or whole customers drawn with the seed until
        ``tuning_rows`` rows (:func:`clv_models.models._lgbm_tuning.tuning_sample`)."""
        return lgbm_tuning.tuning_sample(n_rows, groups, tuning_rows=self.tuning_rows, seed=self.seed)

    def _score(self, y: np.ndarray, probability: np.ndarray) -> float:
        from sklearn.metrics import log_loss, roc_auc_score

        if self.tuning_metric == "auc":
            return float(roc_auc_score(y, probability))
        return float(log_loss(y, np.clip(probability, 1e-15, 1 - 1e-15), labels=[0, 1]))

    def _check_inputs(self, X: pd.DataFrame, y: Any, what: str) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            raise ClvInputError(f"{what}: features must be a DataFrame with named columns")
        labels = np.asarray(y)
        if len(labels) != len(X):
            raise ClvInputError(f"{what}: {len(X):,} feature rows but {len(labels):,} labels")
        if not np.isin(labels, (0, 1)).all():
            raise ClvInputError(f"{what}: labels must be 0 (stays) or 1 (churns)")
        labels = labels.astype(np.int8)
        if labels.min() == labels.max():
            raise ClvInputError(
                f"{what}: all {len(labels):,} labels are {int(labels[0])}; churn needs both outcomes"
            )
        return labels

    def fit(
        self,
        X: pd.DataFrame,
        y: Any,
        *,
        groups: Any = None,
        X_calibration: pd.DataFrame,
        y_calibration: Any,
        callbacks: Sequence[Callable[[Any, Any], None]] = (),
    ) -> ChurnClassifier:
        """Tune, train and calibrate; see the module docstring. Returns self."""
        import lightgbm as lgb

        if self.tuning_metric not in ("auc", "log_loss"):
            raise ClvInputError(f"tuning_metric must be 'auc' or 'log_loss', got {self.tuning_metric!r}")
        if self.calibration not in ("isotonic", "sigmoid"):
            raise ClvInputError(f"calibration must be 'isotonic' or 'sigmoid', got {self.calibration!r}")
        if self.class_balance not in ("balanced", "none"):
            raise ClvInputError(f"class_balance must be 'balanced' or 'none', got {self.class_balance!r}")
        labels = self._check_inputs(X, y, "training set")
        calibration_labels = self._check_inputs(X_calibration, y_calibration, "calibration set")
        unknown = [c for c in self.categorical_features if c not in X.columns]
        if unknown:
            raise ClvInputError(f"categorical feature(s) {', '.join(unknown)} are not columns of X")

        self.feature_names_ = [str(c) for c in X.columns]
        self.vocabulary_ = self._learn_vocabulary(X)
        matrix = self._matrix(X)
        prior = self._prior(X)
        weights = self._weights(labels)
        categorical_index = [self.feature_names_.index(c) for c in self.categorical_features]
        group_array = None if groups is None else np.asarray(groups)
        tuning_index = self._tuning_sample(len(labels), group_array)
        self.n_tuning_rows_ = len(tuning_index)
        folds = [
            (tuning_index[train], tuning_index[valid])
            for train, valid in self._folds(
                labels[tuning_index], None if group_array is None else group_array[tuning_index]
            )
        ]
        direction = "maximize" if self.tuning_metric == "auc" else "minimize"
        metric = "auc" if self.tuning_metric == "auc" else "binary_logloss"

        def train_fold(params: dict[str, Any], train_index: np.ndarray, valid_index: np.ndarray) -> tuple[Any, int]:
            train_set = lgb.Dataset(
                matrix[train_index], labels[train_index], weight=weights[train_index],
                init_score=None if prior is None else prior[train_index],
                categorical_feature=categorical_index, free_raw_data=True,
            )
            # Early stopping watches the unweighted validation fold: the metric we report.
            valid_set = lgb.Dataset(
                matrix[valid_index], labels[valid_index], categorical_feature=categorical_index, reference=train_set,
                init_score=None if prior is None else prior[valid_index],
            )
            booster = lgb.train(
                {**params, "metric": metric},
                train_set,
                num_boost_round=self.max_rounds,
                valid_sets=[valid_set],
                callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
            )
            return booster, booster.best_iteration or self.max_rounds

        def objective(trial: Any) -> float:
            params = {**self._base_params(), **self.search_space(trial)}
            scores, iterations = [], []
            for step, (train_index, valid_index) in enumerate(folds):
                booster, best = train_fold(params, train_index, valid_index)
                probability = self._probability(booster, matrix[valid_index], prior, valid_index, best)
                scores.append(self._score(labels[valid_index], probability))
                iterations.append(best)
                lgbm_tuning.report_fold(trial, scores, iterations, step)
            return lgbm_tuning.finish_trial(trial, scores, iterations)

        study = lgbm_tuning.create_study(direction, seed=self.seed)
        study.optimize(objective, n_trials=self.n_trials, timeout=self.timeout_seconds, callbacks=list(callbacks))
        best = lgbm_tuning.best_trial(study, "no Optuna trial completed; raise churn.n_trials or churn.timeout_seconds")
        self.best_params_ = dict(best.params)
        self.best_score_ = float(best.value)
        self.best_iteration_ = lgbm_tuning.best_iteration(best)
        self.trials_ = lgbm_tuning.trials_frame(study)
        final_params = {**self._base_params(), **self.best_params_}
        self.booster_ = lgb.train(
            final_params,
            lgb.Dataset(matrix, labels, weight=weights, init_score=prior, categorical_feature=categorical_index),
            num_boost_round=self.best_iteration_,
        )
        self._fit_calibrator(self.predict_raw(X_calibration), calibration_labels)
        self.calibration_shift_ = 0.0
        self.classes_ = np.array([0, 1])
        self.n_train_ = len(labels)
        self.train_positive_rate_ = float(labels.mean())
        return self

    @staticmethod
    def _probability(
        booster: Any,
        matrix: np.ndarray,
        prior: np.ndarray | None,
        rows: Any = slice(None),
        iterations: int | None = None,
    ) -> np.ndarray:
        from scipy.special import expit

        # A booster trained with an init score predicts only its own part of the log-odds.
        raw = booster.predict(matrix, num_iteration=iterations, raw_score=True)
        return expit(raw if prior is None else raw + prior[rows])

    def _fit_calibrator(self, raw: np.ndarray, labels: np.ndarray) -> None:
        if self.calibration == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            calibrator: Any = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
            calibrator.fit(raw, labels)
        else:
            from sklearn.linear_model import LogisticRegression

            calibrator = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
            calibrator.fit(_logit(raw).reshape(-1, 1), labels)
        self.calibrator_ = calibrator
        self.n_calibration_ = len(labels)

    def recalibrate(self, X: pd.DataFrame, y: Any) -> ChurnClassifier:
        """Refit only the calibration map on ``(X, y)`` (e.g. the latest complete outcome window);
        the booster is unchanged, so the ranking is too. Returns self."""
        check_is_fitted(self, "booster_")
        labels = self._check_inputs(X, y, "recalibration set")
        self._fit_calibrator(self.predict_raw(X), labels)
        self.calibration_shift_ = 0.0  # a new calibration set: any seasonal shift is set anew
        return self

    def shift_calibration(self, log_odds: float) -> ChurnClassifier:
        """Add ``log_odds`` to every calibrated probability's log-odds (0 undoes it): the churn
        rate's seasonal move between the calibration cutoff and the cutoff scored (D46). The
        ranking is unchanged. Returns self."""
        check_is_fitted(self, "calibrator_")
        self.calibration_shift_ = float(log_odds)
        return self

    # -- predictions -----------------------------------------------------------------------

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """The booster's probability before calibration (class-balanced scale when
        ``class_balance='balanced'``: a ranking score, not a probability)."""
        check_is_fitted(self, "booster_")
        return self._probability(self.booster_, self._matrix(X), self._prior(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated [P(stays), P(churns)] per row, shape (n, 2)."""
        check_is_fitted(self, "calibrator_")
        raw = self.predict_raw(X)
        if self.calibration == "isotonic":
            churn = self.calibrator_.predict(raw)
        else:
            churn = self.calibrator_.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]
        churn = np.clip(np.asarray(churn, dtype=float), 0.0, 1.0)
        shift = float(getattr(self, "calibration_shift_", 0.0))  # scorers saved before D46 have none
        if shift:
            from scipy.special import expit

            churn = expit(_logit(churn) + shift)
        return np.column_stack([1.0 - churn, churn])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the calibrated churn probability is ≥ 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int8)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-row feature contributions (TreeSHAP, LightGBM's ``pred_contrib``) to the raw
        log-odds of the uncalibrated booster; the ``bias`` column is the trees' expected log-odds
        and, with ``boost_from``, the column ``prior`` is the log-odds the boosting started from.
        Each row sums to the row's raw log-odds."""
        check_is_fitted(self, "booster_")
        values = self.booster_.predict(self._matrix(X), pred_contrib=True)
        frame = pd.DataFrame(values, columns=[*self.feature_names_, "bias"], index=X.index)
        prior = self._prior(X)
        if prior is not None:
            frame["prior"] = prior
        return frame

    def feature_importance(self, kind: str = "gain") -> pd.Series:
        """Total gain (or split count with ``kind='split'``) per feature, largest first."""
        check_is_fitted(self, "booster_")
        values = self.booster_.feature_importance(importance_type=kind)
        series = pd.Series(values, index=self.feature_names_, name=f"importance_{kind}", dtype=float)
        return series.sort_values(ascending=False, kind="stable")

