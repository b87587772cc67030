"""Out-of-time evaluation of BG/NBD + Gamma-Gamma on a calibration/holdout split.

The split comes from :func:`clv_models.features.calibration_holdout`: features at the calibration
cutoff, truth (``frequency_holdout``, ``duration_holdout``) from the holdout period. Every metric
here compares a prediction made at the cutoff with what happened after it (DESIGN.md §2, §5).

Metric names are fixed (:data:`METRIC_NAMES`) so MLflow runs compare:

* ``holdout_purchases_mae`` / ``_rmse``: per customer, predicted = BG/NBD E[Y(t)] over the
  holdout duration t (FHL 2005, eq. 10), actual = ``frequency_holdout`` (purchase periods);
* ``holdout_purchases_aggregate_error``: (Σ predicted − Σ actual) / Σ actual;
* ``holdout_clv_spearman``, ``_gini`` (normalized), ``_top_decile_capture``, ``_decile_mape``:
  predicted CLV over the holdout duration (undiscounted by default, so it is expected revenue)
  against the actual holdout revenue per customer (see :mod:`clv_models.evaluation.metrics`);
* ``gamma_gamma_frequency_monetary_corr``: the Gamma-Gamma independence check.

Actual revenue is *not* ``frequency_holdout × monetary_value_holdout``: the first counts purchase
periods, the second is the mean order amount. Pass it in, e.g. from :func:`holdout_revenue`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from clv_models.errors import ClvInputError
from clv_models.evaluation.fit import frequency_bins
from clv_models.evaluation.independence import DEFAULT_THRESHOLD, frequency_monetary_correlation
from clv_models.evaluation.metrics import (
    aggregate_error,
    decile_mape,
    decile_table,
    mean_absolute_error,
    normalized_gini,
    root_mean_squared_error,
    spearman,
    top_share_capture,
)
from clv_models.features.rfm import orders_relation
from clv_models.timeunits import Horizon, parse_horizon
from clv_models.valuation import customer_lifetime_value

if TYPE_CHECKING:
    from clv_models.data.ingest import IngestResult
    from clv_models.models import BetaGeoModel, GammaGammaModel

METRIC_NAMES = (
    "holdout_purchases_mae",
    "holdout_purchases_rmse",
    "holdout_purchases_aggregate_error",
    "holdout_clv_spearman",
    "holdout_clv_gini",
    "holdout_clv_top_decile_capture",
    "holdout_clv_decile_mape",
    "gamma_gamma_frequency_monetary_corr",
)
SPLIT_COLUMNS = ("customer_id", "frequency", "recency", "T", "frequency_holdout", "duration_holdout")


def _check_split(split: pd.DataFrame) -> None:
    missing = [c for c in SPLIT_COLUMNS if c not in split.columns]
    if missing:
        raise ClvInputError(
            f"holdout split lacks column(s) {', '.join(missing)}; build it with clv_models.features.calibration_holdout"
        )
    if split.empty:
        raise ClvInputError("holdout split has no customers")


def holdout_horizon(split: pd.DataFrame, unit: str) -> Horizon:
    """The holdout length as a :class:`Horizon` in ``unit`` (``duration_holdout`` is one value)."""
    durations = split["duration_holdout"].unique()
    if len(durations) != 1 or not durations[0] > 0:
        raise ClvInputError(f"duration_holdout must be one positive value, got {sorted(durations)[:3]}")
    return Horizon(float(durations[0]), unit)


def holdout_purchase_predictions(bgnbd: BetaGeoModel, split: pd.DataFrame) -> np.ndarray:
    """BG/NBD E[Y(t) | x, t_x, T] per customer over the holdout duration t (FHL 2005, eq. 10)."""
    _check_split(split)
    return bgnbd.expected_purchases(split, horizon=holdout_horizon(split, bgnbd.unit_))


def frequency_table(
    bgnbd: BetaGeoModel, split: pd.DataFrame, *, max_frequency: int = 7, predicted: np.ndarray | None = None
) -> pd.DataFrame:
    """Mean actual vs mean predicted holdout purchases by calibration frequency (FHL 2005, Figure 4
    "conditional expectations"): bins 0, 1, …, max_frequency−1 and "max_frequency+".

    Columns: ``calibration_frequency`` (bin label), ``customers``, ``mean_actual`` (mean
    ``frequency_holdout``) and ``mean_predicted`` (mean E[Y(t)] over the holdout duration), in
    purchases per customer; empty bins are left out. ``predicted`` skips recomputing E[Y(t)].
    """
    _check_split(split)
    if predicted is None:
        predicted = holdout_purchase_predictions(bgnbd, split)
    bins, labels = frequency_bins(split["frequency"].to_numpy(dtype=float), max_frequency)
    frame = pd.DataFrame(
        {"bin": bins, "actual": split["frequency_holdout"].to_numpy(dtype=float), "predicted": predicted}
    )
    table = frame.groupby("bin", sort=True).agg(
        customers=("actual", "size"), mean_actual=("actual", "mean"), mean_predicted=("predicted", "mean")
    )
    table.insert(0, "calibration_frequency", [labels[i] for i in table.index])
    table["customers"] = table["customers"].astype("int64")
    return table.reset_index(drop=True)


def holdout_revenue(
    orders: IngestResult | pd.DataFrame | str | Path,
    split: pd.DataFrame,
    *,
    calibration_end: dt.date | None = None,
    holdout_end: dt.date | None = None,
    threads: int | None = None,
) -> pd.Series:
    """Actual revenue per customer of ``split`` in the holdout: the sum of ``amount`` over orders
    with ``order_ts`` after the end of the ``calibration_end`` day up to the end of the
    ``holdout_end`` day (currency; returns and credit notes count negatively).

    The dates default to the split's ``attrs["as_of"]`` and ``attrs["holdout_end"]`` (set by
    :func:`clv_models.features.calibration_holdout`). Returns a float64 Series named
    ``holdout_revenue``, indexed by ``customer_id`` in the split's row order, 0 for customers
    without holdout orders.
    """
    if "customer_id" not in split.columns:
        raise ClvInputError("holdout split lacks column customer_id")
    calibration_end = calibration_end or _attr_date(split, "as_of")
    holdout_end = holdout_end or _attr_date(split, "holdout_end")
    if holdout_end <= calibration_end:
        raise ClvInputError(f"holdout end {holdout_end} must be after the calibration cutoff {calibration_end}")
    with orders_relation(orders, threads) as (con, relation):
        # Summed as DECIMAL, like the RFM features: exact and independent of thread scheduling.
        totals = con.execute(
            f"""
            SELECT CAST(customer_id AS VARCHAR) AS customer_id,
                   CAST(sum(CAST(amount AS DECIMAL(38, 9))) AS DOUBLE) AS revenue
            FROM {relation}
            WHERE order_ts >= $start AND order_ts < $stop
            GROUP BY ALL
            """,
            {
                "start": dt.datetime.combine(calibration_end + dt.timedelta(days=1), dt.time()),
                "stop": dt.datetime.combine(holdout_end + dt.timedelta(days=1), dt.time()),
            },
        ).df()
    revenue = pd.Series(totals["revenue"].to_numpy(dtype=float), index=totals["customer_id"].astype(str))
    ids = split["customer_id"].astype(str)
    return pd.Series(
        revenue.reindex(ids).fillna(0.0).to_numpy(dtype=float), index=pd.Index(ids, name="customer_id"),
        name="holdout_revenue",
    )


def _attr_date(split: pd.DataFrame, key: str) -> dt.date:
    value = split.attrs.get(key)
    if value is None:
        raise ClvInputError(f"holdout split does not record attrs[{key!r}]; pass the date explicitly")
    return dt.date.fromisoformat(str(value))


def _aligned_revenue(actual_revenue: np.ndarray | pd.Series, split: pd.DataFrame) -> np.ndarray:
    """A Series is matched on ``customer_id`` through its index; anything else by position."""
    if isinstance(actual_revenue, pd.Series):
        ids = split["customer_id"].astype(str)
        revenue = pd.Series(actual_revenue.to_numpy(dtype=float), index=actual_revenue.index.astype(str))
        if not revenue.index.is_unique:
            raise ClvInputError("actual_revenue has duplicate customer ids in its index")
        missing = ~ids.isin(revenue.index)
        if missing.any():
            raise ClvInputError(
                f"actual_revenue lacks {int(missing.sum()):,} customer id(s) of the split "
                f"(e.g. {ids[missing].iloc[0]!r}); index it by customer_id or pass an array in the split's row order"
            )
        return revenue.reindex(ids).to_numpy(dtype=float)
    values = np.asarray(actual_revenue, dtype=float).ravel()
    if values.size != len(split):
        raise ClvInputError(f"actual_revenue has {values.size:,} values for {len(split):,} customers in the split")
    return values


def _empty_decile_table() -> pd.DataFrame:
    columns = ["mean_predicted", "mean_actual", "actual_share", "absolute_percentage_error"]
    return pd.DataFrame(
        {"decile": pd.Series(dtype="int64"), "customers": pd.Series(dtype="int64")}
        | {c: pd.Series(dtype="float64") for c in columns}
    )


@dataclass(frozen=True)
class HoldoutReport:
    """Holdout metrics (floats, NaN where not computable) and the two diagnostic tables.

    Units: purchases per customer for MAE/RMSE; fractions for the aggregate error, capture and
    MAPE; correlations in [−1, 1]. The CLV metrics are NaN when no actual revenue was given.
    """

    holdout_purchases_mae: float
    holdout_purchases_rmse: float
    holdout_purchases_aggregate_error: float
    holdout_clv_spearman: float
    holdout_clv_gini: float
    holdout_clv_top_decile_capture: float
    holdout_clv_decile_mape: float
    gamma_gamma_frequency_monetary_corr: float
    n_customers: int
    clv_horizon: str
    frequency_table: pd.DataFrame = field(repr=False)
    decile_table: pd.DataFrame = field(repr=False)

    def metrics(self) -> dict[str, float]:
        """The metrics under their fixed names (:data:`METRIC_NAMES`), for ``mlflow.log_metrics``."""
        return {name: float(getattr(self, name)) for name in METRIC_NAMES}


def evaluate_holdout(
    bgnbd: BetaGeoModel,
    gamma_gamma: GammaGammaModel,
    split: pd.DataFrame,
    *,
    actual_revenue: np.ndarray | pd.Series | None = None,
    clv_horizon: str | Horizon | None = None,
    annual_discount_rate: float = 0.0,
    margin: float = 1.0,
    max_frequency: int = 7,
    independence_threshold: float = DEFAULT_THRESHOLD,
) -> HoldoutReport:
    """Evaluate fitted models on a calibration/holdout ``split`` (see the module docstring).

    ``actual_revenue``: holdout revenue per customer (a Series indexed by customer_id, e.g. from
    :func:`holdout_revenue`, or an array in the split's row order). ``clv_horizon`` defaults to the
    holdout duration so predicted and actual cover the same period; with the default discount rate
    0 and margin 1 the predicted CLV is expected revenue, comparable in money with the actual.
    The Gamma-Gamma check may emit :class:`~clv_models.evaluation.IndependenceWarning`.
    """
    _check_split(split)
    predicted = holdout_purchase_predictions(bgnbd, split)
    actual = split["frequency_holdout"].to_numpy(dtype=float)
    horizon = parse_horizon(clv_horizon) if clv_horizon is not None else holdout_horizon(split, bgnbd.unit_)
    nan = float("nan")
    clv_metrics = dict.fromkeys(("spearman", "gini", "capture", "mape"), nan)
    deciles = _empty_decile_table()
    if actual_revenue is not None:
        revenue = _aligned_revenue(actual_revenue, split)
        clv = customer_lifetime_value(
            bgnbd, gamma_gamma, split, horizon=horizon, annual_discount_rate=annual_discount_rate, margin=margin
        )
        deciles = decile_table(clv, revenue)
        positive = revenue.sum() > 0  # the gains curve needs revenue to share out
        clv_metrics = {
            "spearman": spearman(clv, revenue),
            "gini": normalized_gini(clv, revenue) if positive else nan,
            "capture": top_share_capture(clv, revenue, 0.10) if positive else nan,
            "mape": decile_mape(deciles),
        }
    return HoldoutReport(
        holdout_purchases_mae=mean_absolute_error(predicted, actual),
        holdout_purchases_rmse=root_mean_squared_error(predicted, actual),
        holdout_purchases_aggregate_error=aggregate_error(predicted, actual),
        holdout_clv_spearman=clv_metrics["spearman"],
        holdout_clv_gini=clv_metrics["gini"],
        holdout_clv_top_decile_capture=clv_metrics["capture"],
        holdout_clv_decile_mape=clv_metrics["mape"],
        gamma_gamma_frequency_monetary_corr=frequency_monetary_correlation(split, threshold=independence_threshold),
        n_customers=len(split),
        clv_horizon=str(horizon),
        frequency_table=frequency_table(bgnbd, split, max_frequency=max_frequency, predicted=predicted),
        decile_table=deciles,
    )
