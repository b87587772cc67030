"""Figures of churn-classifier quality: reliability diagram, cumulative gains (lift) curve, feature
importance and a SHAP-style contribution summary (Lundberg & Lee 2017, the "beeswarm" plot).

Matplotlib's object API only: every function takes an optional ``ax`` and returns the ``Axes`` it
drew on. Without ``ax`` it draws on a new :class:`matplotlib.figure.Figure` that belongs to no
pyplot state (nothing is shown, nothing leaks between calls); save it with
``ax.figure.savefig(path)``. The tables come from :mod:`clv_models.evaluation.churn_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Area (points²) of the largest reliability marker; the others scale with their bin's customers.
_MAX_MARKER_AREA = 200.0
_MIN_MARKER_AREA = 12.0
_JITTER_SEED = 0
_JITTER_HALF_WIDTH = 0.25
_MISSING_COLOUR = "lightgrey"
_CONTRIBUTION_CMAP = "coolwarm"


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=(7.0, 4.5), layout="constrained").subplots()


def _require(table: pd.DataFrame, columns: tuple[str, ...], producer: str, name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ClvInputError(f"table {name!r} lacks column(s) {', '.join(missing)}; build it with {producer}")


def _top_count(top: int) -> int:
    if isinstance(top, bool) or int(top) != top or top < 1:
        raise ClvInputError(f"top must be a whole number ≥ 1, got {top}")
    return int(top)


def plot_reliability(curves: Mapping[str, pd.DataFrame], *, ax: Axes | None = None) -> Axes:
    """Reliability diagram: observed positive rate vs mean predicted probability per bin, one line
    per named :func:`clv_models.evaluation.reliability_curve` table, markers with area proportional
    to the bin's customers (on one scale across all tables), and the diagonal of perfect calibration.
    """
    if not curves:
        raise ClvInputError("no reliability curves to plot")
    for name, curve in curves.items():
        _require(curve, ("mean_predicted", "observed_rate", "n"), "clv_models.evaluation.reliability_curve", name)
    ax = _axes(ax)
    largest = max(float(curve["n"].max()) if len(curve) else 0.0 for curve in curves.values()) or 1.0
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="Perfect calibration")
    for name, curve in curves.items():
        (line,) = ax.plot(curve["mean_predicted"], curve["observed_rate"], label=name)
        sizes = _MIN_MARKER_AREA + (_MAX_MARKER_AREA - _MIN_MARKER_AREA) * curve["n"].to_numpy(dtype=float) / largest
        ax.scatter(curve["mean_predicted"], curve["observed_rate"], s=sizes, color=line.get_color(), zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("Mean predicted probability (per bin)")
    ax.set_ylabel("Observed positive rate (per bin)")
    ax.set_title("Reliability diagram (marker area ∝ customers in bin)")
    ax.legend()
    return ax


def plot_lift(tables: Mapping[str, pd.DataFrame], *, ax: Axes | None = None) -> Axes:
    """Cumulative gains curves: share of all positives captured vs share of customers contacted in
    order of score (highest first), one line per named :func:`clv_models.evaluation.lift_table`,
    each starting at (0, 0), plus the diagonal of random targeting."""
    if not tables:
        raise ClvInputError("no lift tables to plot")
    for name, table in tables.items():
        _require(table, ("n", "cumulative_capture"), "clv_models.evaluation.lift_table", name)
    ax = _axes(ax)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="Random")
    for name, table in tables.items():
        n = table["n"].to_numpy(dtype=float)
        share = np.r_[0.0, np.cumsum(n) / n.sum()]
        capture = np.r_[0.0, table["cumulative_capture"].to_numpy(dtype=float)]
        ax.plot(share, capture, marker="o", markersize=3, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Share of customers contacted (highest scores first)")
    ax.set_ylabel("Share of positives captured")
    ax.set_title("Cumulative gains")
    ax.legend()
    return ax


def plot_feature_importance(importance: pd.Series, *, top: int = 20, ax: Axes | None = None) -> Axes:
    """Horizontal bars of the ``top`` largest values of ``importance`` (index = feature names),
    largest on top; ties keep the Series order. The x label is the Series name (e.g. "gain")."""
    top = _top_count(top)
    values = importance.to_numpy(dtype=float)
    if values.size == 0:
        raise ClvInputError("importance is empty: no features to plot")
    if not np.isfinite(values).all():
        raise ClvInputError("importance must be finite (no NaN or infinity)")
    order = np.argsort(-values, kind="stable")[:top]
    # barh draws from the bottom up: reverse so the largest bar is the top one.
    chosen = order[::-1]
    positions = np.arange(chosen.size)
    ax = _axes(ax)
    ax.barh(positions, values[chosen])
    ax.set_yticks(positions, [str(label) for label in importance.index[chosen]])
    ax.set_xlabel(str(importance.name) if importance.name is not None else "Importance")
    ax.set_title(f"Feature importance (top {chosen.size})")
    return ax


def _rank_scaled(values: pd.Series) -> np.ndarray:
    """Ranks of ``values`` mapped to [0, 1] (ties share their mean rank), NaN kept; a feature with one
    distinct value sits at 0.5. Categories rank by their code (their declared order)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = pd.Series(values.cat.codes, index=values.index).where(values.notna())
    ranks = values.rank(method="average").to_numpy(dtype=float)
    low, high = np.nanmin(ranks, initial=np.inf), np.nanmax(ranks, initial=-np.inf)
    if not np.isfinite(low) or high == low:
        return np.where(np.isnan(ranks), np.nan, 0.5)
    return (ranks - low) / (high - low)


def plot_contributions_summary(
    contributions: pd.DataFrame, features: pd.DataFrame, *, top: int = 15, ax: Axes | None = None
) -> Axes:
    """SHAP-style summary ("beeswarm") of per-customer feature contributions to the log-odds.

    One row per feature for the ``top`` features by mean |contribution| (largest on top; ties keep
    the column order), one dot per customer at x = its contribution (log-odds), spread vertically by
    a uniform jitter of ±0.25 rows from a fixed-seed generator (the same picture on every call).
    Colour = the customer's feature value rank-scaled to [0, 1] within the feature (low blue, high
    red; missing values grey). ``contributions`` and ``features`` share index and columns; a
    ``bias`` column of ``contributions`` (the expected value) is ignored.
    """
    top = _top_count(top)
    contributions = contributions.drop(columns="bias", errors="ignore")
    if contributions.shape[1] == 0 or contributions.shape[0] == 0:
        raise ClvInputError("contributions is empty: no features or no customers to plot")
    missing = [c for c in contributions.columns if c not in features.columns]
    if missing:
        raise ClvInputError(f"features lacks column(s) {', '.join(map(str, missing))} present in contributions")
    if not contributions.index.equals(features.index):
        raise ClvInputError("contributions and features must have the same index (same customers, same order)")
    values = contributions.to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise ClvInputError("contributions must be finite (no NaN or infinity)")

    strength = np.abs(values).mean(axis=0)
    chosen = np.argsort(-strength, kind="stable")[:top]
    cmap = colormaps[_CONTRIBUTION_CMAP]
    missing_rgba = to_rgba(_MISSING_COLOUR)
    rng = np.random.default_rng(_JITTER_SEED)
    ax = _axes(ax)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    labels = []
    for row, column in enumerate(chosen[::-1]):  # bottom row first, so the strongest ends on top
        name = contributions.columns[column]
        scaled = _rank_scaled(features[name])
        colours = cmap(np.nan_to_num(scaled, nan=0.0))
        colours[np.isnan(scaled)] = missing_rgba
        y = row + rng.uniform(-_JITTER_HALF_WIDTH, _JITTER_HALF_WIDTH, size=values.shape[0])
        ax.scatter(values[:, column], y, c=colours, s=10, linewidths=0)
        labels.append(str(name))
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.set_ylim(-0.5, len(labels) - 0.5)
    ax.set_xlabel("Contribution to the log-odds (per customer)")
    ax.set_title("Feature contributions")
    colourbar = ax.figure.colorbar(
        ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap), ax=ax, label="feature value (low → high)"
    )
    colourbar.set_ticks([0.0, 1.0], labels=["low", "high"])
    return ax
