"""Figures of BG/NBD fit and holdout quality, after Fader, Hardie & Lee (2005), Marketing
Science 24(2): Figure 2 (repeat-purchase histogram), Figure 3 (cumulative tracking), Figure 4
(conditional expectations), plus the frequency/recency matrices of lifetimes' plotting module.

Matplotlib's object API only: every function takes an optional ``ax`` and returns the ``Axes`` it
drew on. Without ``ax`` it draws on a new :class:`matplotlib.figure.Figure` that belongs to no
pyplot state (nothing is shown, nothing leaks between calls); save it with
``ax.figure.savefig(path)``. The numbers come from :mod:`clv_models.evaluation`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from clv_models.errors import ClvInputError
from clv_models.timeunits import Horizon, parse_horizon

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from clv_models.models import BetaGeoModel

UNIT_NAMES = {"D": "days", "W": "weeks"}


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=(7.0, 4.5), layout="constrained").subplots()


def _require(table: pd.DataFrame, columns: tuple[str, ...], producer: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ClvInputError(f"table lacks column(s) {', '.join(missing)}; build it with {producer}")


def plot_repeat_purchases(histogram: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Grouped bars of actual vs model-expected customers by number of repeat purchases in the
    calibration period (FHL 2005, Figure 2). ``histogram`` comes from
    :func:`clv_models.evaluation.repeat_purchase_histogram`."""
    _require(histogram, ("repeat_purchases", "actual", "expected"), "clv_models.evaluation.repeat_purchase_histogram")
    ax = _axes(ax)
    positions = np.arange(len(histogram))
    width = 0.4
    ax.bar(positions - width / 2, histogram["actual"], width, label="Actual")
    ax.bar(positions + width / 2, histogram["expected"], width, label="BG/NBD")
    ax.set_xticks(positions, histogram["repeat_purchases"].astype(str))
    ax.set_xlabel("Repeat purchases in the calibration period")
    ax.set_ylabel("Customers")
    ax.set_title("Frequency of repeat purchases: actual vs model")
    ax.legend()
    return ax


def plot_calibration_vs_holdout(table: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Mean actual vs mean predicted holdout purchases by calibration frequency (FHL 2005,
    Figure 4). ``table`` is :func:`clv_models.evaluation.frequency_table` (or
    ``HoldoutReport.frequency_table``)."""
    _require(
        table, ("calibration_frequency", "mean_actual", "mean_predicted"), "clv_models.evaluation.frequency_table"
    )
    ax = _axes(ax)
    positions = np.arange(len(table))
    ax.plot(positions, table["mean_actual"], marker="o", label="Actual")
    ax.plot(positions, table["mean_predicted"], marker="s", linestyle="--", label="BG/NBD")
    ax.set_xticks(positions, table["calibration_frequency"].astype(str))
    ax.set_xlabel("Purchases in the calibration period")
    ax.set_ylabel("Mean purchases in the holdout period")
    ax.set_title("Conditional expectations: holdout purchases by calibration frequency")
    ax.legend()
    return ax


def plot_cumulative_purchases(
    tracking: pd.DataFrame, *, calibration_end: dt.date | None = None, ax: Axes | None = None
) -> Axes:
    """Actual vs expected cumulative repeat purchases over calendar time (FHL 2005, Figure 3).
    ``tracking`` is :func:`clv_models.evaluation.cumulative_repeat_purchases`; a dashed vertical
    line marks ``calibration_end`` when given."""
    _require(
        tracking, ("period_start", "actual", "expected"), "clv_models.evaluation.cumulative_repeat_purchases"
    )
    ax = _axes(ax)
    dates = pd.to_datetime(tracking["period_start"]).to_numpy()
    ax.plot(dates, tracking["actual"].to_numpy(dtype=float), label="Actual")
    ax.plot(dates, tracking["expected"].to_numpy(dtype=float), linestyle="--", label="BG/NBD")
    if calibration_end is not None:
        ax.axvline(np.datetime64(calibration_end), color="grey", linestyle=":", label="End of calibration")
    ax.set_xlabel("Period start")
    ax.set_ylabel("Cumulative repeat purchases")
    ax.set_title("Tracking cumulative repeat purchases")
    ax.legend()
    # Rotate this Axes' dates only: Figure.autofmt_xdate would re-lay out the caller's whole figure.
    ax.tick_params(axis="x", labelrotation=30)
    return ax


def _grid(model: BetaGeoModel, T: float, max_frequency: int) -> tuple[pd.DataFrame, np.ndarray]:
    """All (frequency, recency) pairs for customers of age T, and the mask of impossible ones.

    With purchases collapsed to one per period, x repeat purchases occupy x distinct periods after
    the first, so recency ≥ x; a customer without repeats has recency 0.
    """
    if not T > 0 or int(max_frequency) != max_frequency or max_frequency < 1:
        raise ClvInputError(f"matrix needs T > 0 and a whole max_frequency ≥ 1, got T={T}, {max_frequency}")
    frequency = np.arange(int(max_frequency) + 1, dtype=float)
    recency = np.arange(int(np.floor(T)) + 1, dtype=float)
    x, t_x = np.meshgrid(frequency, recency, indexing="ij")
    rfm = pd.DataFrame({"frequency": x.ravel(), "recency": t_x.ravel(), "T": float(T)})
    rfm.attrs["unit"] = model.unit_
    impossible = ((x == 0) & (t_x > 0)) | ((x > 0) & (t_x < x))
    return rfm, impossible


def _matrix(
    ax: Axes, values: np.ndarray, impossible: np.ndarray, title: str, unit: str, colorbar: str,
    limits: tuple[float, float] | None = None,
) -> Axes:
    vmin, vmax = limits or (None, None)
    image = ax.imshow(
        np.ma.masked_array(values, mask=impossible), aspect="auto", interpolation="nearest", vmin=vmin, vmax=vmax
    )
    ax.figure.colorbar(image, ax=ax, label=colorbar)
    ax.set_xlabel(f"Recency (age at last purchase, {UNIT_NAMES.get(unit, unit)})")
    ax.set_ylabel("Frequency (repeat purchases)")
    # Rows are whole numbers of purchases and columns whole periods: no fractional ticks.
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    return ax


def plot_frequency_recency_matrix(
    model: BetaGeoModel,
    *,
    T: float,
    max_frequency: int,
    horizon: str | Horizon = "12M",
    ax: Axes | None = None,
) -> Axes:
    """Expected purchases over ``horizon`` (BG/NBD, FHL 2005 eq. 10) for customers of age ``T``
    (model units) by frequency 0..max_frequency (rows) and recency 0..⌊T⌋ (columns). Cells no
    customer can occupy (see ``_grid``) are left blank."""
    ax = _axes(ax)
    rfm, impossible = _grid(model, T, max_frequency)
    values = model.expected_purchases(rfm, horizon=horizon).reshape(impossible.shape)
    title = f"Expected purchases in the next {parse_horizon(horizon)} (T = {T:g} {model.unit_})"
    return _matrix(ax, values, impossible, title, model.unit_, "Expected purchases")


def plot_probability_alive_matrix(
    model: BetaGeoModel, *, T: float, max_frequency: int, ax: Axes | None = None
) -> Axes:
    """P(alive) (Fader, Hardie & Lee 2008, eq. 1) for customers of age ``T`` (model units) by
    frequency (rows) and recency (columns); impossible cells are left blank."""
    ax = _axes(ax)
    rfm, impossible = _grid(model, T, max_frequency)
    values = model.probability_alive(rfm).reshape(impossible.shape)
    title = f"Probability a customer is alive (T = {T:g} {model.unit_})"
    return _matrix(ax, values, impossible, title, model.unit_, "P(alive)", limits=(0.0, 1.0))
