"""What an action did: treatment − control per experiment and action, with its uncertainty.

Outcomes per customer over the evaluation window (the scores' cutoff, until], each a mean per
customer of the group:

* ``retention``: 1 if the customer placed any order in the window, else 0 (a share);
* ``orders``: orders placed in the window (orders per customer);
* ``revenue``: net order value in the window, in the orders' currency (revenue per customer).

For each outcome: the difference of group means (treatment − control), its two-sided
``1 − alpha`` confidence interval and p-value from Welch's t-test (``scipy.stats.ttest_ind`` with
``equal_var=False`` and its ``confidence_interval``): no equal-variance assumption, which
treatment breaks by design. For the 0/1 retention outcome this is the unpooled two-proportion
test (the same standard error; Student's t instead of the normal quantile, a little wider for
small groups). Revenue is heavy-tailed: the t interval is the usual choice at the sizes of a
customer base (thousands per group) and is checked for coverage on simulated shops
(tests/experiments).

``mde``: the minimum detectable effect, the absolute difference that a two-sided test at
``alpha`` detects with probability ``power`` at these group sizes,
``(z[1 − alpha/2] + z[power]) · s · sqrt(1/n_t + 1/n_c)``, with ``s`` the outcome's standard
deviation over both groups together (the control group's alone would be 0 when no control
customer bought anything). An experiment whose ``mde`` exceeds the effect you hope for cannot
tell it from noise: enlarge the groups or run longer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

#: Outcome columns, in report order, and what their means are.
OUTCOMES = {
    "retention": "share of customers with any order in the window",
    "orders": "orders per customer in the window",
    "revenue": "net revenue per customer in the window",
}
#: Columns of :func:`compare_groups`' result, in order.
EFFECT_COLUMNS = (
    "experiment", "action", "outcome", "n_treatment", "n_control", "treatment_mean", "control_mean", "difference",
    "ci_low", "ci_high", "p_value", "relative_difference", "mde",
)  # fmt: skip


def minimum_detectable_effect(
    sd: float, n_treatment: int, n_control: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest absolute difference of means a two-sided test at ``alpha`` detects with
    probability ``power`` (module docstring); NaN when a group is empty."""
    from scipy.stats import norm

    if n_treatment < 1 or n_control < 1 or not math.isfinite(sd):
        return math.nan
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd * math.sqrt(1 / n_treatment + 1 / n_control))


def _welch(treated: np.ndarray, control: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """(ci_low, ci_high, p_value) of mean(treated) − mean(control); NaN when a group has fewer
    than two customers or both groups are constant (no variance to test against)."""
    from scipy.stats import ttest_ind

    if len(treated) < 2 or len(control) < 2:
        return math.nan, math.nan, math.nan
    if np.ptp(treated) == 0 and np.ptp(control) == 0:
        return math.nan, math.nan, math.nan
    result = ttest_ind(treated, control, equal_var=False)
    interval = result.confidence_interval(confidence_level=1 - alpha)
    return float(interval.low), float(interval.high), float(result.pvalue)


def compare_groups(outcomes: pd.DataFrame, *, alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """Treatment vs control per (experiment, action, outcome).

    Args:
        outcomes: one row per customer in an experiment: ``experiment``, ``action``,
            ``experiment_group`` (``treatment`` / ``control``) and the outcome columns of
            :data:`OUTCOMES`.
        alpha: two-sided significance level; the intervals are ``1 − alpha``.
        power: power of the minimum detectable effect.

    Returns:
        One row per experiment, action and outcome (columns :data:`EFFECT_COLUMNS`), sorted by
        experiment and action; ``relative_difference`` = difference / control mean (NaN when
        that is 0).
    """
    import pandas as pd

    from clv_models.experiments.assignment import CONTROL, TREATMENT

    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ClvInputError(f"alpha={alpha} and power={power} must both lie strictly between 0 and 1")
    rows = []
    for (experiment, action), members in outcomes.groupby(["experiment", "action"], sort=True, observed=True):
        group = members["experiment_group"].to_numpy(dtype=object)
        is_treated, is_control = group == TREATMENT, group == CONTROL
        for outcome in OUTCOMES:
            values = members[outcome].to_numpy(dtype=np.float64)
            treated, control = values[is_treated], values[is_control]
            t_mean = float(treated.mean()) if len(treated) else math.nan
            c_mean = float(control.mean()) if len(control) else math.nan
            low, high, p_value = _welch(treated, control, alpha)
            both = values[is_treated | is_control]
            sd = float(both.std(ddof=1)) if len(both) > 1 else math.nan
            rows.append({
                "experiment": experiment, "action": action, "outcome": outcome,
                "n_treatment": int(len(treated)), "n_control": int(len(control)),
                "treatment_mean": t_mean, "control_mean": c_mean, "difference": t_mean - c_mean,
                "ci_low": low, "ci_high": high, "p_value": p_value,
                "relative_difference": (t_mean - c_mean) / c_mean if c_mean else math.nan,
                "mde": minimum_detectable_effect(sd, len(treated), len(control), alpha, power),
            })  # fmt: skip
    return pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))
