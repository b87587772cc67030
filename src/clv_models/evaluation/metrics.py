"""Forecast and ranking metrics on plain arrays (no models, no tables).

Purchases: MAE, RMSE and the aggregate (relative) error of predicted vs actual holdout purchases.
Value ranking: Spearman correlation, normalized Gini, top-decile capture and decile MAPE of
predicted CLV vs actual holdout revenue.

The ranking metrics share one object, the *cumulative gains curve*: customers sorted by predicted
value (highest first), x = share of customers, y = share of total actual revenue. Customers with
equal predictions cannot be ordered, so a tied group is one straight segment of the curve, which is
the same as giving every member of the group the group's mean actual revenue. The results then
never depend on the row order of the input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from clv_models.errors import ClvInputError


def _pair(predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predicted, dtype=float).ravel()
    actual = np.asarray(actual, dtype=float).ravel()
    if predicted.shape != actual.shape:
        raise ClvInputError(f"predicted and actual differ in length: {predicted.size} vs {actual.size}")
    if predicted.size == 0:
        raise ClvInputError("no customers to evaluate: predicted and actual are empty")
    if not (np.isfinite(predicted).all() and np.isfinite(actual).all()):
        raise ClvInputError("predicted and actual values must be finite (no NaN or infinity)")
    return predicted, actual


def mean_absolute_error(predicted: np.ndarray, actual: np.ndarray) -> float:
    """MAE = mean |ŷᵢ − yᵢ|, in the unit of the inputs (e.g. purchases per customer)."""
    predicted, actual = _pair(predicted, actual)
    return float(np.mean(np.abs(predicted - actual)))


def root_mean_squared_error(predicted: np.ndarray, actual: np.ndarray) -> float:
    """RMSE = √(mean (ŷᵢ − yᵢ)²), in the unit of the inputs."""
    predicted, actual = _pair(predicted, actual)
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def aggregate_error(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Relative error of the totals, (Σŷ − Σy) / Σy: +0.05 means 5 % over-forecast.

    NaN when the actual total is 0 (no relative error exists).
    """
    predicted, actual = _pair(predicted, actual)
    total = actual.sum()
    return float((predicted.sum() - total) / total) if total != 0 else float("nan")


def spearman(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Spearman rank correlation: Pearson correlation of the ranks (ties get their mean rank).

    NaN when either input is constant (ranks carry no order).
    """
    predicted, actual = _pair(predicted, actual)
    return _pearson(rankdata(predicted), rankdata(actual))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / norm) if norm > 0 else float("nan")


def ordered_by_prediction(predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, actual) sorted by predicted value, highest first, with each group of tied
    predictions given the group's mean actual value (see the module docstring)."""
    predicted, actual = _pair(predicted, actual)
    order = np.argsort(-predicted, kind="stable")
    pred_sorted, act_sorted = predicted[order], actual[order]
    starts = np.flatnonzero(np.r_[True, pred_sorted[1:] != pred_sorted[:-1]])
    sizes = np.diff(np.r_[starts, pred_sorted.size])
    group_means = np.add.reduceat(act_sorted, starts) / sizes
    return pred_sorted, np.repeat(group_means, sizes)


def gains_curve(predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains curve through (0, 0): x = share of customers taken in order of predicted
    value, y = share of total actual value they hold. Requires a positive actual total."""
    _, ordered = ordered_by_prediction(predicted, actual)
    total = ordered.sum()
    if total <= 0:
        raise ClvInputError(f"actual total must be positive to rank value, got {total:g}")
    x = np.arange(ordered.size + 1) / ordered.size
    y = np.r_[0.0, np.cumsum(ordered)] / total
    return x, y


def gini(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Gini of ``actual`` ordered by ``predicted``: 2·AUC − 1, AUC the trapezoidal area under the
    gains curve. 0 for a random order; positive when high predictions hold more of the value.

    Twice the Gini of the Kaggle "normalized Gini" recipe (Σ cumulative share / n − (n+1)/2n);
    the factor cancels in :func:`normalized_gini`.
    """
    x, y = gains_curve(predicted, actual)
    area = np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2)
    return float(2 * area - 1)


def normalized_gini(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Gini of the predicted order divided by the Gini of the perfect order (by ``actual`` itself).

    1 for a perfect ranking, −1 for the reversed one, about 0 for a random one. NaN when every
    actual value is the same (there is nothing to rank); requires a positive actual total.
    """
    predicted, actual = _pair(predicted, actual)
    best = gini(actual, actual)
    return gini(predicted, actual) / best if best > 0 else float("nan")


def top_share_capture(predicted: np.ndarray, actual: np.ndarray, share: float = 0.10) -> float:
    """Share of the total actual value held by the top ``share`` of customers by prediction:
    the gains curve at x = ``share``.

    When share·n is not a whole number the boundary customer counts fractionally (linear
    interpolation), and tied predictions share their value evenly, so e.g. with 5 customers the top
    10 % is half of the best-ranked customer.
    """
    if not 0 < share <= 1:
        raise ClvInputError(f"share must be in (0, 1], got {share}")
    x, y = gains_curve(predicted, actual)
    return float(np.interp(share, x, y))


def decile_table(predicted: np.ndarray, actual: np.ndarray) -> pd.DataFrame:
    """Mean predicted vs mean actual value per decile of predicted value.

    Customers sorted by prediction (highest first; ties share their actual value evenly) and the
    customer at 0-based position i goes to decile 1 + ⌊10 i / n⌋, so decile 1 is the top 10 %; with
    n < 10 some deciles are empty and left out. Columns: ``decile``, ``customers``,
    ``mean_predicted``, ``mean_actual``, ``actual_share`` (of the actual total; NaN when the total
    is 0) and ``absolute_percentage_error`` = |mean_predicted − mean_actual| / |mean_actual|
    (NaN when mean_actual is 0).
    """
    pred_sorted, act_sorted = ordered_by_prediction(predicted, actual)
    n = pred_sorted.size
    decile = 1 + (10 * np.arange(n)) // n
    frame = pd.DataFrame({"decile": decile, "predicted": pred_sorted, "actual": act_sorted})
    table = frame.groupby("decile", sort=True).agg(
        customers=("actual", "size"), mean_predicted=("predicted", "mean"), mean_actual=("actual", "mean"),
        actual_sum=("actual", "sum"),
    )
    total = act_sorted.sum()
    table["actual_share"] = table.pop("actual_sum") / total if total != 0 else np.nan
    mean_actual = table["mean_actual"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.abs(table["mean_predicted"].to_numpy() - mean_actual) / np.abs(mean_actual)
    table["absolute_percentage_error"] = np.where(mean_actual != 0, error, np.nan)
    table = table.reset_index()
    table["customers"] = table["customers"].astype("int64")
    return table


def decile_mape(table: pd.DataFrame) -> float:
    """Mean of ``absolute_percentage_error`` over the deciles of :func:`decile_table` where it is
    defined (mean actual ≠ 0), as a fraction (0.2 = 20 %). NaN when no decile qualifies."""
    errors = table["absolute_percentage_error"].dropna()
    return float(errors.mean()) if len(errors) else float("nan")
