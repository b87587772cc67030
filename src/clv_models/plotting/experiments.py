"""Figure of an A/B evaluation: treatment − control per experiment and action, with intervals.

Matplotlib's object API only (``ax`` in, ``Axes`` out; see :mod:`clv_models.plotting.churn`). The
table is :func:`clv_models.experiments.compare_groups`' result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_COLUMNS = ("experiment", "action", "outcome", "difference", "ci_low", "ci_high", "p_value")


def plot_action_effects(effects: pd.DataFrame, outcome: str = "retention", *, ax: Axes | None = None) -> Axes:
    """One row per experiment and action: the difference treatment − control of ``outcome``
    (``retention``, ``orders`` or ``revenue``) as a dot with its confidence interval, filled
    when p < 0.05, and the line of no effect."""
    missing = [c for c in _COLUMNS if c not in effects.columns]
    if missing:
        raise ClvInputError(f"effects lack column(s) {', '.join(missing)}; build them with compare_groups")
    rows = effects[effects["outcome"] == outcome].reset_index(drop=True)
    if rows.empty:
        raise ClvInputError(f"no effects on outcome {outcome!r}; outcomes: {', '.join(effects['outcome'].unique())}")
    if ax is None:
        ax = Figure(figsize=(7.0, 0.6 * len(rows) + 1.5), layout="constrained").subplots()
    y = np.arange(len(rows))[::-1]
    significant = rows["p_value"].lt(0.05).to_numpy()
    low = (rows["difference"] - rows["ci_low"]).to_numpy(float)
    high = (rows["ci_high"] - rows["difference"]).to_numpy(float)
    ax.errorbar(rows["difference"], y, xerr=[low, high], fmt="none", ecolor="tab:blue", capsize=4)
    ax.scatter(rows["difference"], y, s=40, zorder=3, edgecolors="tab:blue",
               facecolors=np.where(significant, "tab:blue", "white"))  # fmt: skip
    ax.axvline(0.0, color="grey", linewidth=1, linestyle="--")
    ax.set_yticks(y, [f"{e} · {a}" for e, a in zip(rows["experiment"], rows["action"])])
    ax.set_xlabel(f"treatment − control: {outcome} per customer (filled: p < 0.05)")
    ax.set_title(f"Effect of the actions on {outcome}")
    return ax
