"""Figures of churn-classifier quality: what is drawn, on which Axes, and that it is deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from clv_models.errors import ClvInputError
from clv_models.evaluation import lift_table, reliability_curve
from clv_models.plotting import (
    plot_contributions_summary,
    plot_feature_importance,
    plot_lift,
    plot_reliability,
)

# Ten scores, ranked outcomes 1 0 1 0 | 1 0 0 | 1 0 0 (see tests/evaluation/test_churn_metrics.py):
# three groups of 4, 3, 3 customers capture 2, 3, 4 of the 4 positives.
S10 = np.array([0.2, 0.9, 0.4, 0.9, 0.1, 0.6, 0.3, 0.8, 0.5, 0.7])
Y10 = np.array([0, 1, 0, 0, 0, 1, 1, 1, 0, 0])


def saved(ax: Axes, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    ax.figure.savefig(path, dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reliability_plot(tmp_path: Path) -> None:
    p6 = np.array([0.05, 0.15, 0.15, 0.45, 0.85, 0.95])
    y6 = np.array([0, 0, 1, 1, 1, 1])
    curves = {"model": reliability_curve(p6, y6), "coarse": reliability_curve(p6, y6, n_bins=2)}
    given = Figure().subplots()
    ax = plot_reliability(curves, ax=given)
    assert ax is given
    assert len(ax.lines) == 3  # diagonal + one per curve
    assert len(ax.collections) == 2  # one marker set per curve
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[0, 0], [1, 1]])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.0, 0.5, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(ax.lines[2].get_xdata(), [0.2, 0.9])
    # Marker area grows with the bin's customers; the largest bin (4 customers, coarse) is the biggest.
    fine, coarse = (c.get_sizes() for c in ax.collections)
    assert coarse[0] == max(fine.max(), coarse.max())
    assert fine[1] > fine[0]  # 2 customers vs 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Perfect calibration", "model", "coarse"]
    assert ax.get_xlabel() and ax.get_ylabel()
    saved(ax, tmp_path, "reliability")


def test_lift_plot(tmp_path: Path) -> None:
    tables = {"model": lift_table(S10, Y10, n_groups=3), "random order": lift_table(np.zeros(10), Y10)}
    ax = plot_lift(tables)
    assert isinstance(ax, Axes)
    assert len(ax.lines) == 3  # random diagonal + one per table
    np.testing.assert_allclose(ax.lines[1].get_xdata(), [0.0, 0.4, 0.7, 1.0])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.0, 0.5, 0.75, 1.0])
    assert len(ax.lines[2].get_xdata()) == 11  # (0, 0) + 10 groups
    saved(ax, tmp_path, "lift")


def test_feature_importance_plot(tmp_path: Path) -> None:
    importance = pd.Series({"a": 1.0, "b": 5.0, "c": 3.0, "d": 5.0}, name="gain")
    given = Figure().subplots()
    ax = plot_feature_importance(importance, top=3, ax=given)
    assert ax is given
    assert len(ax.patches) == 3
    # Bottom to top: c (3), then the tie d, b (5) with b, first in the Series, on top.
    assert [bar.get_width() for bar in ax.patches] == [3.0, 5.0, 5.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "d", "b"]
    assert ax.get_xlabel() == "gain"
    saved(ax, tmp_path, "importance")


def _contributions() -> tuple[pd.DataFrame, pd.DataFrame]:
    # Mean |contribution|: a 0.1, b 1.0, c 0.5 (bias 10 is ignored), so the order is b, c, a.
    index = pd.Index(["u1", "u2", "u3", "u4"], name="customer_id")
    contributions = pd.DataFrame(
        {"a": [0.1, -0.1, 0.1, -0.1], "b": [1.0, -1.0, 0.5, -1.5], "c": [0.5, 0.5, -0.5, -0.5], "bias": 10.0},
        index=index,
    )
    # b's values rank 3, 1, –, 2 of 3 -> scaled 1, 0, NaN (grey), 0.5.
    features = pd.DataFrame({"a": [1, 2, 3, 4], "b": [30.0, 10.0, np.nan, 20.0], "c": [0, 0, 1, 1]}, index=index)
    return contributions, features


def test_contributions_summary_plot(tmp_path: Path) -> None:
    contributions, features = _contributions()
    given = Figure().subplots()
    ax = plot_contributions_summary(contributions, features, top=2, ax=given)
    assert ax is given
    assert len(ax.collections) == 2  # one dot row per feature shown
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "b"]  # strongest on top
    top_row = ax.collections[1]
    offsets = top_row.get_offsets()
    np.testing.assert_allclose(offsets[:, 0], contributions["b"])
    assert (np.abs(offsets[:, 1] - 1) <= 0.25).all() and np.ptp(offsets[:, 1]) > 0
    cmap = colormaps["coolwarm"]
    expected = [cmap(1.0), cmap(0.0), to_rgba("lightgrey"), cmap(0.5)]
    np.testing.assert_allclose(top_row.get_facecolors(), expected)
    colourbars = [a for a in ax.figure.axes if a is not ax]
    assert len(colourbars) == 1
    assert colourbars[0].get_ylabel() == "feature value (low → high)"
    saved(ax, tmp_path, "contributions")


def test_contributions_summary_is_deterministic() -> None:
    contributions, features = _contributions()
    first = plot_contributions_summary(contributions, features)
    second = plot_contributions_summary(contributions, features)
    assert first is not second
    assert len(first.collections) == len(second.collections) == 3  # top=15 > 3 features; bias not drawn
    assert "bias" not in [t.get_text() for t in first.get_yticklabels()]
    for a, b in zip(first.collections, second.collections, strict=True):
        np.testing.assert_array_equal(a.get_offsets(), b.get_offsets())
        np.testing.assert_array_equal(a.get_facecolors(), b.get_facecolors())


def test_bad_plot_input_is_a_clear_error() -> None:
    with pytest.raises(ClvInputError, match=r"table 'x' lacks column\(s\) observed_rate.*reliability_curve"):
        plot_reliability({"x": pd.DataFrame({"mean_predicted": [0.5], "n": [1]})})
    with pytest.raises(ClvInputError, match=r"lacks column\(s\) cumulative_capture.*lift_table"):
        plot_lift({"x": pd.DataFrame({"n": [1]})})
    with pytest.raises(ClvInputError, match="no lift tables"):
        plot_lift({})
    with pytest.raises(ClvInputError, match="importance must be finite"):
        plot_feature_importance(pd.Series({"a": np.nan}))
    contributions, features = _contributions()
    with pytest.raises(ClvInputError, match="features lacks column"):
        plot_contributions_summary(contributions, features.drop(columns="c"))
    with pytest.raises(ClvInputError, match="same index"):
        plot_contributions_summary(contributions, features.iloc[::-1])
    with pytest.raises(ClvInputError, match="top must be"):
        plot_contributions_summary(contributions, features, top=0)
