"""Segment profiles, decision mixes and the segment names' checks: the tables a marketing team reads.

Profile columns (one row per segment, largest value share first):

=====================  =======================================================================
customers              number of customers in the segment
customer_share         customers / all customers
revenue_share          share of historical net revenue (``total_spend`` up to the cutoff)
value_share            share of predicted value (``clv_h``, negative values count as 0)
days_since_last        mean days since the last purchase
frequency              mean repeat purchases
avg_order_value        mean of the customers' mean order value (currency)
clv_h                  mean predicted value over the horizon (currency)
churn_probability      mean calibrated churn probability (NaN without a churn model)
p_alive                mean BG/NBD probability of being alive
T_days                 median tenure (days since the first purchase)
=====================  =======================================================================

The naming tables (:func:`name_check_table`: the checks of each segment's name, measured;
:func:`name_fit_matrix`: which names' checks hold for each segment) read
``CustomerSegmenter.name_checks_``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clv_models.errors import ClvInputError

PROFILE_MEANS = ("days_since_last", "frequency", "avg_order_value", "clv_h", "churn_probability", "p_alive")


def _require(table: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ClvInputError(f"{what} needs column(s) {', '.join(missing)}; score the customers first")


def segment_profiles(table: pd.DataFrame, by: str = "segment") -> pd.DataFrame:
    """Profile per group of ``by`` (see the module docstring for the columns)."""
    _require(table, (by, "total_spend", "clv_h", "T_days", *PROFILE_MEANS), "segment profiles")
    if table.empty:
        raise ClvInputError("segment profiles: no customers")
    value = table["clv_h"].clip(lower=0)
    grouped = table.groupby(by, sort=False, observed=True)
    profile = pd.DataFrame(
        {
            "customers": grouped.size(),
            "customer_share": grouped.size() / len(table),
            "revenue_share": grouped["total_spend"].sum() / table["total_spend"].sum(),
            "value_share": value.groupby(table[by], sort=False, observed=True).sum()
            / max(value.sum(), np.finfo(float).tiny),
        }
    )
    for column in PROFILE_MEANS:
        profile[column] = grouped[column].mean()
    profile["T_days"] = grouped["T_days"].median()
    profile.index.name = by
    return profile.sort_values(["value_share", "customers"], ascending=False).reset_index()


def decision_mix(table: pd.DataFrame, rows: str, columns: str, normalize: bool = False) -> pd.DataFrame:
    """Customers per (``rows`` value, ``columns`` value), e.g. segment × value tier, with totals;
    ``normalize=True`` gives shares of all customers instead."""
    _require(table, (rows, columns), "decision mix")
    mix = pd.crosstab(
        table[rows], table[columns], margins=True, margins_name="all", normalize="all" if normalize else False
    )
    return mix.reindex(index=_ordered(mix.index), columns=_ordered(mix.columns))


def _ordered(labels: pd.Index) -> list[str]:
    """Known codes in their natural order (high before low, new before churned), others after."""
    from clv_models.config import LIFECYCLE_STAGES, SEGMENT_NAMES, VALUE_TIERS

    rank = {code: i for i, code in enumerate((*VALUE_TIERS, *SEGMENT_NAMES, *LIFECYCLE_STAGES))}
    known = [label for label in labels if label != "all"]
    ordered = sorted(known, key=lambda label: (rank.get(label, len(rank)), str(label)))
    return [*ordered, *(["all"] if "all" in labels else [])]


def name_check_table(checks: pd.DataFrame) -> pd.DataFrame:
    """The checks of each segment's own name (``CustomerSegmenter.name_checks_`` rows with
    ``assigned``): segment, check, the members' value, what it is compared with, and whether it
    holds (always, for a name that was given)."""
    _require(
        checks,
        ("cluster", "segment", "check", "members", "reference", "reference_value", "passed", "assigned"),
        "name checks",
    )
    own = checks[checks["assigned"]]
    return pd.DataFrame(
        {
            "segment": own["segment"],
            "check": own["check"],
            "members": own["members"],
            "compared_with": own["reference"],
            "reference_value": own["reference_value"],
            "holds": np.where(own["passed"], "yes", "no"),
        }
    ).reset_index(drop=True)


def name_fit_matrix(checks: pd.DataFrame) -> pd.DataFrame:
    """Segment (rows, in cluster order) × name of the vocabulary (columns): ``✓`` where every
    check of the name holds for the segment's members (``✓ given`` for the segment's own name),
    else the checks that fail."""
    from clv_models.config import SEGMENT_NAMES

    _require(checks, ("cluster", "segment", "name", "check", "passed"), "name checks")
    vocabulary = checks[checks["name"].isin(SEGMENT_NAMES)]
    segments = checks.drop_duplicates("cluster").sort_values("cluster")["segment"].tolist()
    cells = {}
    for (segment, name), group in vocabulary.groupby(["segment", "name"], sort=False):
        if group["passed"].all():
            cells[segment, name] = "✓ given" if segment == name else "✓"
        else:
            cells[segment, name] = "fails: " + "; ".join(group.loc[~group["passed"], "check"])
    return pd.DataFrame(
        [[cells.get((segment, name), "") for name in SEGMENT_NAMES] for segment in segments],
        index=pd.Index(segments, name="segment"),
        columns=list(SEGMENT_NAMES),
    )
