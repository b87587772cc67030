"""Naming rules for customer segments: a cluster gets a name only when the name's definition holds
for its *members*, not only for its centroid.

**Definitions.** Each name of the vocabulary is a list of checks (:data:`NAME_CHECKS`); a check
compares one statistic over the cluster's members with a reference: the same statistic over the
whole base (``"base"``: every customer the segmenter is fitted on), a number, or a named
threshold of the segmenter. All of a name's checks must hold.

============  =====================================================================================
name          checks (all must hold)
============  =====================================================================================
core          churn < base; median repeat purchases > base; median predicted value (``clv_h``) >
              base; share overdue < 0.5
potential     churn < base; median repeat purchases ≥ 1; share overdue < 0.5
new           share with tenure ≤ ``new_max_tenure_days`` ≥ 0.5
at_risk       churn > base; median repeat purchases > base; median repeat purchases ≥ 1
sleeping      churn > base; median days since last purchase > base; share overdue ≥ 0.5
lost          churn > base; median days since last purchase ≥ ``lost_min_days_since_last``;
              share overdue ≥ 0.5
============  =====================================================================================

**Statistics** (:data:`STATISTICS`) over a group of customers:

* ``mean_churn_probability``: mean calibrated churn probability (the expected share of the group
  that places no order in the churn window);
* ``share_overdue``: share of the group silent for longer than ``overdue_days`` = 2 × the shop's
  typical repeat gap (the median, over customers with ≥ 1 repeat purchase, of
  (tenure − days since last purchase) / repeat purchases); 180 days when nobody bought twice;
* ``share_new``: share with tenure (days since the first purchase) ≤ ``new_max_tenure_days``;
* medians of days since the last purchase, repeat purchases, predicted value, mean order value
  and tenure.

**Churn** in the table above is ``mean_churn_probability`` when the table the segmenter is fitted
on has a finite ``churn_probability`` for every customer (training computes it before
segmenting), otherwise ``share_overdue``: silence measured against the shop's own purchase
rhythm. The checks table names the statistic that was used.

**Assignment.** The names whose checks all hold for a cluster are its *eligible* names. Names are
given one per cluster (Hungarian method, ``scipy.optimize.linear_sum_assignment``), first
maximising the number of clusters with an eligible name, then the total centroid profile score
(:data:`PROFILES`: which of the eligible names describes the centroid best). A pair whose checks
fail is never used. A cluster left without an eligible name gets a **neutral** name describing its
members (:func:`neutral_names`), e.g. ``lapsed_frequent_high_value``; the words are decided by
checks too (:data:`NEUTRAL_WORDS`), so a neutral name cannot contradict its members either.
Names inherited from a previous model are kept only where their checks still hold.

**Neutral names** join one word per slot, each word chosen by checks on the members:

* silence: ``lapsed`` (share overdue ≥ 0.5), ``active`` (share overdue < 0.5 and churn < base),
  ``cooling`` (share overdue < 0.5 and churn ≥ base);
* repeat purchases: ``frequent`` (median > base) or ``occasional``;
* value: ``high_value`` (median ``clv_h`` > base) or ``low_value``;

e.g. ``lapsed_frequent_high_value``. Neutral names that would be equal get more words, in
order: ``older`` / ``newer`` (median tenure above the base's or not), then ``big_basket`` /
``small_basket`` (median mean order value); still equal ones get ``_2``, ``_3`` … in cluster
order. So they are unique, deterministic, never taken from the cluster index, and never equal to
a name of the vocabulary.

Profile weights over the standardised (z-score) coordinates of a centroid, used only to rank
eligible names:

============  ========  =========  ========  =====  ======
name          recency   frequency  monetary  clv    tenure
============  ========  =========  ========  =====  ======
core          −1        +1         +0.5      +1      0
potential     −0.5      +0.5       −1         0      0
new           −1        −0.5        0         0     −1.5
at_risk       +1        +1         +0.5      +0.5   +0.5
sleeping      +1        −0.5        0        −0.5    0
lost          +1.5      −1         −0.5      −1     +0.5
============  ========  =========  ========  =====  ======
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from clv_models.config import SEGMENT_NAMES

PROFILE_FEATURES = ("recency", "frequency", "monetary", "clv", "tenure")

PROFILES = pd.DataFrame(
    {
        "core": (-1.0, 1.0, 0.5, 1.0, 0.0),
        "potential": (-0.5, 0.5, -1.0, 0.0, 0.0),
        "new": (-1.0, -0.5, 0.0, 0.0, -1.5),
        "at_risk": (1.0, 1.0, 0.5, 0.5, 0.5),
        "sleeping": (1.0, -0.5, 0.0, -0.5, 0.0),
        "lost": (1.5, -1.0, -0.5, -1.0, 0.5),
    },
    index=list(PROFILE_FEATURES),
)[list(SEGMENT_NAMES)]

# Customers silent for more than this many typical repeat gaps are "overdue". For a customer
# buying at the typical rate (Poisson), two gaps of silence happen by chance with probability
# e⁻² ≈ 0.14.
OVERDUE_GAPS = 2.0
# The overdue bound when no customer has a repeat purchase (no rhythm to measure): DESIGN.md's
# "a customer silent for six months is sleeping".
FALLBACK_OVERDUE_DAYS = 180.0
# ``"churn"`` in a check means this statistic, or ``share_overdue`` without churn probabilities.
CHURN = "churn"
CHURN_PROBABILITY = "mean_churn_probability"
OVERDUE = "share_overdue"

STATISTICS: dict[str, str] = {
    CHURN_PROBABILITY: "mean churn probability",
    OVERDUE: "share silent > overdue_days",
    "share_new": "share with tenure ≤ new_max_tenure_days",
    "median_days_since_last": "median days since last purchase",
    "median_frequency": "median repeat purchases",
    "median_clv": "median predicted value (clv_h)",
    "median_avg_order_value": "median mean order value",
    "median_tenure_days": "median tenure (days)",
}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_COMPLEMENT = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_SHOWN = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}


@dataclass(frozen=True)
class Check:
    """``statistic op reference``: the statistic over the members against ``reference``, which is
    ``"base"`` (the statistic over every customer), a number, or the name of a threshold."""

    statistic: str
    op: str
    reference: str | float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unknown operator {self.op!r}")
        if self.statistic != CHURN and self.statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {self.statistic!r}")

    def resolved(self, churn_statistic: str) -> Check:
        return Check(churn_statistic, self.op, self.reference) if self.statistic == CHURN else self

    def complement(self) -> Check:
        return Check(self.statistic, _COMPLEMENT[self.op], self.reference)

    @property
    def text(self) -> str:
        reference = f"{self.reference:g}" if isinstance(self.reference, float | int) else self.reference
        return f"{self.statistic} {_SHOWN[self.op]} {reference}"


NAME_CHECKS: dict[str, tuple[Check, ...]] = {
    "core": (
        Check(CHURN, "<", "base"),
        Check("median_frequency", ">", "base"),
        Check("median_clv", ">", "base"),
        Check(OVERDUE, "<", 0.5),
    ),
    "potential": (
        Check(CHURN, "<", "base"),
        Check("median_frequency", ">=", 1.0),
        Check(OVERDUE, "<", 0.5),
    ),
    "new": (Check("share_new", ">=", 0.5),),
    "at_risk": (
        Check(CHURN, ">", "base"),
        Check("median_frequency", ">", "base"),
        Check("median_frequency", ">=", 1.0),
    ),
    "sleeping": (
        Check(CHURN, ">", "base"),
        Check("median_days_since_last", ">", "base"),
        Check(OVERDUE, ">=", 0.5),
    ),
    "lost": (
        Check(CHURN, ">", "base"),
        Check("median_days_since_last", ">=", "lost_min_days_since_last"),
        Check(OVERDUE, ">=", 0.5),
    ),
}
if tuple(NAME_CHECKS) != tuple(SEGMENT_NAMES):
    raise RuntimeError("NAME_CHECKS must define every segment name, in SEGMENT_NAMES order")

# Neutral names: one word per slot. A slot lists (word, checks) options; the first option whose
# checks all hold gives the word (the options of a slot cover every case).
WordSlot = tuple[tuple[str, tuple[Check, ...]], ...]


def _either(statistic: str, yes: str, no: str) -> WordSlot:
    """Two words: ``yes`` when the statistic is above the base's, ``no`` otherwise."""
    return ((yes, (Check(statistic, ">", "base"),)), (no, (Check(statistic, "<=", "base"),)))


NEUTRAL_WORDS: tuple[WordSlot, ...] = (
    (
        ("lapsed", (Check(OVERDUE, ">=", 0.5),)),
        ("active", (Check(OVERDUE, "<", 0.5), Check(CHURN, "<", "base"))),
        ("cooling", (Check(OVERDUE, "<", 0.5), Check(CHURN, ">=", "base"))),
    ),
    _either("median_frequency", "frequent", "occasional"),
    _either("median_clv", "high_value", "low_value"),
)
# Added, in order, only to neutral names that would otherwise be equal; then _2, _3, … in
# cluster order.
NEUTRAL_TIE_WORDS: tuple[WordSlot, ...] = (
    _either("median_tenure_days", "older", "newer"),
    _either("median_avg_order_value", "big_basket", "small_basket"),
)

CHECK_COLUMNS = (
    "cluster",
    "segment",
    "name",
    "check",
    "statistic",
    "members",
    "reference",
    "reference_value",
    "passed",
    "assigned",
)


def _clip(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 0.0, None)


@dataclass(frozen=True)
class NamingInputs:
    """What the checks read, one array per customer (days and counts clipped at 0)."""

    days_since_last: np.ndarray
    frequency: np.ndarray
    clv: np.ndarray
    avg_order_value: np.ndarray
    tenure_days: np.ndarray
    churn_probability: np.ndarray | None = None

    @classmethod
    def from_table(cls, table: pd.DataFrame, matrix: Callable[..., np.ndarray]) -> NamingInputs:
        """From a customer table (``matrix(table, columns, what)`` reads and validates columns);
        churn probabilities are used only when every customer has a finite one."""
        days, frequency, order_value, clv, tenure = matrix(
            table, ("days_since_last", "frequency", "avg_order_value", "clv_h", "T_days"), "segment input"
        ).T
        churn = None
        if "churn_probability" in table.columns:
            values = table["churn_probability"].to_numpy(dtype=float)
            if len(values) and np.isfinite(values).all():
                churn = values
        return cls(_clip(days), _clip(frequency), clv, order_value, _clip(tenure), churn)

    def __len__(self) -> int:
        return len(self.days_since_last)


@dataclass(frozen=True)
class NamingContext:
    """Shop-level quantities the statistics and checks need (stored on the fitted segmenter)."""

    churn_statistic: str
    typical_gap_days: float
    overdue_days: float
    new_max_tenure_days: float
    lost_min_days_since_last: float

    @classmethod
    def of(cls, inputs: NamingInputs, *, new_max_tenure_days: float, lost_min_days_since_last: float) -> NamingContext:
        repeat = inputs.frequency >= 1.0
        gaps = (
            np.clip(inputs.tenure_days[repeat] - inputs.days_since_last[repeat], 0.0, None) / inputs.frequency[repeat]
        )
        gap = float(np.median(gaps)) if repeat.any() else float("nan")
        overdue = OVERDUE_GAPS * gap if np.isfinite(gap) and gap > 0 else FALLBACK_OVERDUE_DAYS
        return cls(
            churn_statistic=CHURN_PROBABILITY if inputs.churn_probability is not None else OVERDUE,
            typical_gap_days=gap,
            overdue_days=float(overdue),
            new_max_tenure_days=float(new_max_tenure_days),
            lost_min_days_since_last=float(lost_min_days_since_last),
        )

    def threshold(self, name: str) -> float:
        if name not in ("new_max_tenure_days", "lost_min_days_since_last", "overdue_days"):
            raise ValueError(f"unknown threshold {name!r}")
        return float(getattr(self, name))


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def group_statistics(inputs: NamingInputs, rows: np.ndarray | slice, context: NamingContext) -> dict[str, float]:
    """Every statistic of :data:`STATISTICS` over the customers ``rows`` (NaN for no customer);
    ``mean_churn_probability`` is NaN without churn probabilities."""
    days = inputs.days_since_last[rows]
    churn = inputs.churn_probability
    return {
        CHURN_PROBABILITY: _mean(churn[rows]) if churn is not None else float("nan"),
        OVERDUE: _mean(days > context.overdue_days),
        "share_new": _mean(inputs.tenure_days[rows] <= context.new_max_tenure_days),
        "median_days_since_last": _median(days),
        "median_frequency": _median(inputs.frequency[rows]),
        "median_clv": _median(inputs.clv[rows]),
        "median_avg_order_value": _median(inputs.avg_order_value[rows]),
        "median_tenure_days": _median(inputs.tenure_days[rows]),
    }


def member_statistics(
    inputs: NamingInputs,
    labels: np.ndarray,
    k: int,
    context: NamingContext,
    base: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Statistics per cluster (rows ``0 … k−1``, column ``customers`` first) and of the whole
    base (row ``"base"``; ``base``: those already computed, e.g. for another k)."""
    rows: dict[int | str, dict[str, float]] = {}
    for c in range(k):
        members = np.flatnonzero(labels == c)
        rows[c] = {"customers": float(len(members)), **group_statistics(inputs, members, context)}
    rows["base"] = {
        "customers": float(len(inputs)),
        **(dict(base) if base is not None else group_statistics(inputs, slice(None), context)),
    }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame["customers"] = frame["customers"].astype("int64")
    frame.index.name = "cluster"
    return frame


def _reference(check: Check, base: Mapping[str, float], context: NamingContext) -> tuple[str, float]:
    if check.reference == "base":
        return "base", float(base[check.statistic])
    if isinstance(check.reference, str):
        return check.reference, context.threshold(check.reference)
    return "threshold", float(check.reference)


def evaluate(check: Check, members: Mapping[str, float], base: Mapping[str, float], context: NamingContext) -> dict:
    """One check on one group: the measured values and whether it holds (NaN never holds)."""
    check = check.resolved(context.churn_statistic)
    value = float(members[check.statistic])
    reference, reference_value = _reference(check, base, context)
    passed = bool(np.isfinite(value) and np.isfinite(reference_value) and _OPS[check.op](value, reference_value))
    return {
        "check": check.text,
        "statistic": check.statistic,
        "members": value,
        "reference": reference,
        "reference_value": reference_value,
        "passed": passed,
    }


def check_names(statistics: pd.DataFrame, context: NamingContext) -> pd.DataFrame:
    """Every check of every name (:data:`NAME_CHECKS`) for every cluster of ``statistics`` (the
    frame of :func:`member_statistics`): columns ``cluster, name, check, statistic, members,
    reference, reference_value, passed``."""
    base = statistics.loc["base"]
    rows = []
    for cluster in (c for c in statistics.index if c != "base"):
        members = statistics.loc[cluster]
        for name, checks in NAME_CHECKS.items():
            for check in checks:
                rows.append({"cluster": int(cluster), "name": name, **evaluate(check, members, base, context)})
    return pd.DataFrame(rows)


def eligibility(checks: pd.DataFrame, k: int) -> pd.DataFrame:
    """Cluster (rows) × name (columns): True where all of the name's checks hold."""
    table = checks.groupby(["cluster", "name"], sort=False)["passed"].all().unstack("name")
    return table.reindex(index=range(k), columns=list(SEGMENT_NAMES)).fillna(False).astype(bool)


def name_scores(coordinates: np.ndarray) -> pd.DataFrame:
    """Centroid profile score of every cluster (rows) for every name (columns): coordinates · profile."""
    return pd.DataFrame(np.asarray(coordinates, dtype=float) @ PROFILES.to_numpy(), columns=PROFILES.columns)


def assign_names(
    coordinates: np.ndarray, fixed: Sequence[str | None], eligible: pd.DataFrame
) -> tuple[list[str | None], pd.DataFrame]:
    """One distinct eligible name per cluster where possible: ``fixed`` entries are kept; the
    others go to as many clusters as can get an eligible name, then to the highest total profile
    score. Clusters left without an eligible name get ``None`` (see :func:`neutral_names`)."""
    scores = name_scores(coordinates)
    names = list(fixed)
    open_clusters = [i for i, name in enumerate(names) if name is None]
    open_names = [name for name in PROFILES.columns if name not in set(names)]
    if open_clusters and open_names:
        score = scores.iloc[open_clusters][open_names].to_numpy()
        allowed = eligible.iloc[open_clusters][open_names].to_numpy()
        # A bonus larger than any difference in total score: more named clusters always wins.
        bonus = 1.0 + 2.0 * float(np.abs(score).sum())
        weight = np.where(allowed, bonus + score, 0.0)
        rows, cols = linear_sum_assignment(weight, maximize=True)
        for row, col in zip(rows, cols, strict=True):
            if allowed[row, col]:
                names[open_clusters[row]] = open_names[col]
    return names, scores


def neutral_words(
    members: Mapping[str, float],
    base: Mapping[str, float],
    context: NamingContext,
    slots: Sequence[WordSlot],
) -> list[tuple[str, list[dict]]]:
    """(word, its evaluated checks) per slot: the first option whose checks all hold, else the
    slot's last option (only when a statistic is undefined, e.g. a cluster without members)."""
    out = []
    for slot in slots:
        evaluated = [(word, [evaluate(check, members, base, context) for check in checks]) for word, checks in slot]
        holding = [option for option in evaluated if all(result["passed"] for result in option[1])]
        out.append(holding[0] if holding else evaluated[-1])
    return out


def neutral_names(
    statistics: pd.DataFrame, clusters: Sequence[int], context: NamingContext, taken: Sequence[str] = ()
) -> dict[int, tuple[str, list[dict]]]:
    """A descriptive name per cluster of ``clusters`` (and the checks behind its words): words of
    :data:`NEUTRAL_WORDS`, then of :data:`NEUTRAL_TIE_WORDS` for names that would be equal, then a
    ``_2``, ``_3`` … suffix in cluster order. Unique among themselves and ``taken``."""
    base = statistics.loc["base"]
    described = {
        c: neutral_words(statistics.loc[c], base, context, NEUTRAL_WORDS) for c in sorted(int(c) for c in clusters)
    }
    extra = {c: neutral_words(statistics.loc[c], base, context, NEUTRAL_TIE_WORDS) for c in described}

    def name(c: int) -> str:
        return "_".join(word for word, _ in described[c])

    for level in range(len(NEUTRAL_TIE_WORDS)):
        groups: dict[str, list[int]] = {}
        for c in described:
            groups.setdefault(name(c), []).append(c)
        for members in groups.values():
            if len(members) > 1:
                for c in members:
                    described[c] = [*described[c], extra[c][level]]
    out: dict[int, tuple[str, list[dict]]] = {}
    used = set(taken)
    for c in described:
        candidate, suffix = name(c), 1
        while candidate in used:
            suffix += 1
            candidate = f"{name(c)}_{suffix}"
        used.add(candidate)
        out[c] = (candidate, [check for _, checks in described[c] for check in checks])
    return out


def checks_table(
    checks: pd.DataFrame, names: Sequence[str], neutral: Mapping[int, tuple[str, list[dict]]]
) -> pd.DataFrame:
    """The stored checks table (:data:`CHECK_COLUMNS`): every vocabulary name's checks for every
    cluster, plus the word checks of neutral names; ``segment`` is the cluster's name and
    ``assigned`` marks the rows of that name."""
    rows = [checks]
    for cluster, (name, word_checks) in sorted(neutral.items()):
        rows.append(pd.DataFrame([{"cluster": cluster, "name": name, **check} for check in word_checks]))
    table = pd.concat(rows, ignore_index=True)
    table.insert(1, "segment", [names[c] for c in table["cluster"]])
    table["assigned"] = table["name"] == table["segment"]
    # Assigned rows first (per cluster), then the other names in vocabulary order.
    order = {name: i for i, name in enumerate(SEGMENT_NAMES)}
    table["_rank"] = [
        (-1 if a else order.get(n, len(order))) for a, n in zip(table["assigned"], table["name"], strict=True)
    ]
    table = table.sort_values(["cluster", "_rank"], kind="stable").drop(columns="_rank").reset_index(drop=True)
    return table[list(CHECK_COLUMNS)]


def definitions_table() -> pd.DataFrame:
    """:data:`NAME_CHECKS` and the neutral words as a table (for reports and run artifacts)."""
    rows = [{"name": name, "check": check.text} for name, checks in NAME_CHECKS.items() for check in checks]
    for slot in (*NEUTRAL_WORDS, *NEUTRAL_TIE_WORDS):
        for word, checks in slot:
            rows.append({"name": f"(neutral word) {word}", "check": "; ".join(check.text for check in checks)})
    return pd.DataFrame(rows)


def match_previous(centers: np.ndarray, previous_centers: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (our cluster, previous cluster) minimising the total Euclidean distance between
    centroids (both in our standardised space); with different k, the extra clusters stay unpaired."""
    distance = np.sqrt(((centers[:, None, :] - previous_centers[None, :, :]) ** 2).sum(axis=2))
    rows, cols = linear_sum_assignment(distance)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]
