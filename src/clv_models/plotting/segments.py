"""Figures of segments and value tiers: segment profile bars, the Pareto curve of predicted value,
the k-selection curve (inertia and silhouette) and a customer map coloured by segment.

Matplotlib's object API only: every function takes an optional ``ax`` and returns the ``Axes``.
Tables come from :mod:`clv_models.evaluation.segments`, :mod:`clv_models.valuation.tiers` and
:class:`clv_models.models.segments.CustomerSegmenter` (``selection_``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_SHARES = (("customer_share", "customers"), ("revenue_share", "past revenue"), ("value_share", "predicted value"))


def _axes(ax: Axes | None, width: float = 7.0, height: float = 4.5) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=(width, height), layout="constrained").subplots()


def _require(table: pd.DataFrame, columns: tuple[str, ...], producer: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ClvInputError(f"table lacks column(s) {', '.join(missing)}; build it with {producer}")


def plot_segment_profiles(profile: pd.DataFrame, *, by: str = "segment", ax: Axes | None = None) -> Axes:
    """Share of customers, of past revenue and of predicted value per segment (grouped bars)."""
    _require(profile, (by, *(c for c, _ in _SHARES)), "clv_models.evaluation.segment_profiles")
    ax = _axes(ax)
    positions = np.arange(len(profile))
    height = 0.8 / len(_SHARES)
    for offset, (column, label) in enumerate(_SHARES):
        ax.barh(positions + (offset - 1) * height, profile[column] * 100, height=height, label=label)
    ax.set_yticks(positions, [str(v) for v in profile[by]])
    ax.invert_yaxis()
    ax.set_xlabel("share (%)")
    ax.set_title(f"Profile by {by}: who they are vs what they are worth")
    ax.legend(loc="lower right")
    return ax


def plot_pareto(curve: pd.DataFrame, *, cut_shares: dict[str, float] | None = None, ax: Axes | None = None) -> Axes:
    """Cumulative share of predicted value vs share of customers, best first
    (:func:`clv_models.valuation.pareto_curve`), with the tier boundaries as vertical lines."""
    _require(curve, ("customer_share", "value_share"), "clv_models.valuation.pareto_curve")
    ax = _axes(ax, 6.0, 4.5)
    ax.plot(curve["customer_share"] * 100, curve["value_share"] * 100, label="predicted value")
    ax.plot([0, 100], [0, 100], linestyle=":", color="grey", label="equal value")
    for name, share in (cut_shares or {}).items():
        value = float(np.interp(share, curve["customer_share"], curve["value_share"]))
        ax.axvline(share * 100, color="grey", linewidth=0.8)
        ax.annotate(
            f"{name}: {share:.0%} → {value:.0%}",
            (share * 100, value * 100),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=8,
        )
    ax.set_xlabel("customers, best first (%)")
    ax.set_ylabel("predicted value (%)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_title("Pareto curve of predicted value")
    ax.legend(loc="lower right")
    return ax


def plot_k_selection(selection: pd.DataFrame, *, chosen: int | None = None, ax: Axes | None = None) -> Axes:
    """Inertia (left axis) and silhouette (right axis) per number of segments k."""
    _require(selection, ("k", "inertia", "silhouette"), "CustomerSegmenter.selection_")
    ax = _axes(ax, 6.0, 4.0)
    ax.plot(selection["k"], selection["inertia"], marker="o", color="tab:blue")
    ax.set_xlabel("number of segments k")
    ax.set_ylabel("inertia (within-cluster sum of squares)", color="tab:blue")
    twin = ax.twinx()
    twin.plot(selection["k"], selection["silhouette"], marker="s", color="tab:orange")
    twin.set_ylabel("silhouette (sample)", color="tab:orange")
    if chosen is not None:
        ax.axvline(chosen, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(selection["k"].tolist())
    ax.set_title(f"Choosing k{'' if chosen is None else f' (chosen: {chosen})'}")
    return ax


def plot_segment_map(
    table: pd.DataFrame, *, by: str = "segment", sample: int = 5000, seed: int = 0, ax: Axes | None = None
) -> Axes:
    """Customers by days since last purchase (x) and predicted value (y, symlog), coloured by
    ``by``; a seeded sample of at most ``sample`` customers keeps the figure light."""
    _require(table, (by, "days_since_last", "clv_h"), "clv_models.scorer.assign_decisions")
    ax = _axes(ax)
    rows = table if len(table) <= sample else table.sample(sample, random_state=seed)
    for name, group in rows.groupby(by, sort=True):
        ax.scatter(group["days_since_last"], group["clv_h"], s=6, alpha=0.5, label=str(name))
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("days since last purchase")
    ax.set_ylabel("predicted value (symlog)")
    ax.set_title(f"Customers by {by} ({len(rows):,} shown)")
    ax.legend(markerscale=3, fontsize=8)
    return ax
