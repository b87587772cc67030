"""Point-in-time churn features and labels over rolling-origin snapshots (DESIGN.md §2 'churn').

A *snapshot* is a cutoff date c (the end of that day). For every customer with a purchase on or
before c it holds features computed only from what was known at the end of day c, and, when the
data reach far enough, the label

    churned = 1  if the customer places no order in (c, c + window]   (days)

Point in time. Ingestion nets each credit note into the purchase it refunds (docs/decisions.md
D3) with the *ingestion* cutoff, so the ``orders`` table already knows returns made after c. The
snapshots are therefore rebuilt from ingestion's raw order candidates and credit matches: at
cutoff c a purchase counts with its gross amount minus the credits dated on or before c, and is a
purchase at c if that net is > 0. At the ingestion cutoff this equals the ``orders`` table
(tested), and features at c equal features computed from data truncated at c (tested). Labels use
the orders as known at the end of the outcome window.

Schedule (:func:`plan_snapshots`): with the last data day L and window w, the test cutoff is
L − w, the validation cutoff L − 2w and the latest training cutoff L − 3w, earlier training
cutoffs every ``cutoff_step_days`` back. Every validation and test outcome window lies after every
training outcome window: both evaluations are strictly out of time.

Every time feature is in days. Money is summed as DECIMAL (exact, so reruns are byte-identical).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from clv_models.config import ChurnSettings
    from clv_models.data.ingest import IngestResult

MONEY = "DECIMAL(38, 9)"
CUTOFFS_TABLE = "churn_cutoffs"
LABEL = "churned"

# (name, lower days back, upper days back): orders in [end − lower, end − upper), end = c + 1 day.
WINDOWS = (
    ("30d", 30, 0),
    ("30_60d", 60, 30),
    ("60_90d", 90, 60),
    ("90d", 90, 0),
    ("90_180d", 180, 90),
    ("180d", 180, 0),
    ("180_360d", 360, 180),
)
SPEND_WINDOWS = ("30d", "90d", "90_180d", "180d")

BASE_FEATURES = (
    "frequency_days",  # repeat purchase days (BTYD frequency, unit D)
    "recency_days",  # days from first to last purchase day
    "T_days",  # days from first purchase day to the cutoff (tenure)
    "monetary_value_days",  # mean net spend of the repeat purchase days
    "days_since_last",
    "n_orders",
    "total_spend",
    "avg_order_value",
    "gap_mean",  # mean days between consecutive purchase days
    "gap_std",
    "last_gap_ratio",  # days since last purchase / gap_mean: > 1 means overdue
    *(f"orders_{name}" for name, _, _ in WINDOWS),
    *(f"spend_{name}" for name in SPEND_WINDOWS),
    "orders_trend_90d",  # orders in the last 90 days minus the 90 before
    "months_declining",  # of the last three 30-day windows, how many fell vs the one before
    "basket_lines",  # mean order lines per order
    "return_share",  # credits / gross spend, as known at the cutoff
)
OPTIONAL_NUMERIC = {"quantity": "basket_quantity", "category": "category_breadth"}
CATEGORICAL = ("country", "channel")
# Optional canonical order columns and the feature each one feeds.
OPTIONAL_SOURCES = {**OPTIONAL_NUMERIC, **{name: name for name in CATEGORICAL}}


@dataclass(frozen=True)
class SnapshotPlan:
    """Cutoff dates of the training, validation and test snapshots (ends of those days)."""

    train: tuple[dt.date, ...]
    validation: dt.date
    test: dt.date
    window_days: int
    data_end: dt.date

    def as_dict(self) -> dict[str, Any]:
        return {
            "train": [d.isoformat() for d in self.train],
            "validation": self.validation.isoformat(),
            "test": self.test.isoformat(),
            "window_days": self.window_days,
            "data_end": self.data_end.isoformat(),
        }


def plan_snapshots(
    first_day: dt.date,
    data_end: dt.date,
    *,
    window_days: int = 90,
    train_cutoffs: int = 12,
    cutoff_step_days: int = 30,
    min_history_days: int = 30,
) -> SnapshotPlan:
    """Rolling-origin cutoffs; see the module docstring. Raises when the data are too short."""
    window = dt.timedelta(days=window_days)
    test = data_end - window
    validation = test - window
    latest_train = validation - window
    earliest = first_day + dt.timedelta(days=min_history_days)
    train = tuple(
        sorted(
            cutoff
            for k in range(train_cutoffs)
            if (cutoff := latest_train - dt.timedelta(days=k * cutoff_step_days)) >= earliest
        )
    )
    if not train:
        span = (data_end - first_day).days
        need = 3 * window_days + min_history_days
        raise ClvInputError(
            f"orders span {span} days ({first_day} – {data_end}); churn snapshots with a {window_days}-day window "
            f"need at least {need} days (3 windows + {min_history_days} days of history); "
            "lower churn.window_days or churn.min_history_days"
        )
    return SnapshotPlan(train, validation, test, window_days, data_end)


def _date_list(cutoffs: Sequence[dt.date]) -> str:
    return ", ".join(f"(DATE '{d.isoformat()}')" for d in sorted(set(cutoffs)))


def optional_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The optional order columns (quantity, category, country, channel) ingestion mapped."""
    names = {row[0] for row in con.execute("DESCRIBE order_candidates").fetchall()}
    return names & set(OPTIONAL_SOURCES)


def point_in_time_orders_sql(
    known_after_days: int = 0, extras: Sequence[str] = (), *, zero_purchases: bool = False
) -> str:
    """SQL: purchases as known at the end of day ``cutoff + known_after_days``, per cutoff in
    ``churn_cutoffs``. Columns: cutoff, customer_id, order_id, order_ts, n_lines, extras, gross,
    returned (credits dated by then, ≥ 0) and net = gross − returned (> 0; or 0 for an order worth
    exactly 0 that ingestion kept as a purchase, ``validation.zero_amount``), money as DECIMAL.

    Reads ingestion's ``order_candidates`` (line items summed per order, before netting),
    ``credit_matches`` (each credit and the purchase it refunds, with its own timestamp) and, for
    the rare order whose lines straddle the cutoff, its ``lines`` up to the cutoff — so an order
    is exactly what an ingestion with ``as_of`` = the cutoff would have built.
    """
    full_extras = "".join(f", p.{name}" for name in extras)
    line_extras = "".join(
        f", sum(l.{name}) AS {name}" if name == "quantity" else f", min(l.{name}) AS {name}" for name in extras
    )
    columns = "cutoff, customer_id, order_id, order_ts, n_lines" + "".join(f", {name}" for name in extras)
    # zero_purchases: ingestion kept orders worth exactly 0 (nothing returned) as purchases
    # (validation.zero_amount = purchase); so do the snapshots.
    zero_purchase = "OR (p.gross = 0 AND r.credit IS NULL)" if zero_purchases else ""
    return f"""
        WITH bounds AS (
            SELECT cutoff, CAST(cutoff AS TIMESTAMP) + INTERVAL {known_after_days + 1} DAY AS known_end
            FROM {CUTOFFS_TABLE}
        ),
        complete AS (
            SELECT b.cutoff, p.customer_id, p.order_id, p.order_ts, p.n_lines {full_extras}, p.amount AS gross
            FROM bounds b JOIN order_candidates p ON p.last_line_ts < b.known_end
        ),
        straddling AS (
            SELECT b.cutoff, l.customer_id, l.order_id, min(l.order_ts) AS order_ts, count(*) AS n_lines
                   {line_extras}, sum(CAST(l.amount AS {MONEY})) AS gross
            FROM bounds b
            JOIN order_candidates p ON p.order_ts < b.known_end AND p.last_line_ts >= b.known_end
            JOIN lines l ON l.customer_id = p.customer_id AND l.order_id = p.order_id AND l.order_ts < b.known_end
            WHERE l.reason IS NULL OR l.reason IN ('non_positive_order', 'return_without_purchase')
            GROUP BY b.cutoff, l.customer_id, l.order_id
        ),
        candidates AS (
            SELECT {columns}, gross FROM complete
            UNION ALL
            SELECT {columns}, gross FROM straddling
        ),
        credits AS (
            SELECT b.cutoff, c.customer_id, c.purchase_order_id AS order_id, sum(c.credit_amount) AS credit
            FROM bounds b JOIN credit_matches c ON c.credit_ts < b.known_end
            WHERE c.purchase_order_id IS NOT NULL
            GROUP BY b.cutoff, c.customer_id, c.purchase_order_id
        )
        SELECT p.cutoff, p.customer_id, p.order_id, p.order_ts, p.n_lines {full_extras},
               CAST(p.gross AS {MONEY}) AS gross,
               CAST(-coalesce(r.credit, 0) AS {MONEY}) AS returned,
               CAST(p.gross + coalesce(r.credit, 0) AS {MONEY}) AS net
        FROM candidates p
        LEFT JOIN credits r ON r.cutoff = p.cutoff AND r.customer_id = p.customer_id AND r.order_id = p.order_id
        WHERE (p.gross > 0 AND p.gross + coalesce(r.credit, 0) > 0) {zero_purchase}
    """


def features_sql(extras: set[str]) -> str:
    """SQL over the temp table ``pit`` (point-in-time orders): one row per (cutoff, customer)."""

    def window(lower: int, upper: int) -> str:
        return (
            f"order_ts >= end_ts - INTERVAL {lower} DAY"
            + (f" AND order_ts < end_ts - INTERVAL {upper} DAY" if upper else "")
        )

    order_counts = "".join(
        f", count(*) FILTER (WHERE {window(lo, up)}) AS orders_{name}" for name, lo, up in WINDOWS
    )
    spends = "".join(
        f", coalesce(sum(net) FILTER (WHERE {window(lo, up)}), 0) AS spend_{name}"
        for name, lo, up in WINDOWS
        if name in SPEND_WINDOWS
    )
    quantity = ", sum(quantity) AS quantity_sum" if "quantity" in extras else ""
    quantity_feature = (
        ", CAST(o.quantity_sum AS DOUBLE) / o.n_orders AS basket_quantity" if "quantity" in extras else ""
    )
    category_cte = (
        """, breadth AS (
            SELECT p.cutoff, p.customer_id, count(DISTINCT l.category) AS category_breadth
            FROM pit p JOIN lines l ON l.customer_id = p.customer_id AND l.order_id = p.order_id
                 AND l.order_ts < CAST(p.cutoff AS TIMESTAMP) + INTERVAL 1 DAY
            WHERE l.reason IS NULL OR l.reason = 'non_positive_order'
            GROUP BY p.cutoff, p.customer_id
        )"""
        if "category" in extras
        else ""
    )
    category_join = "LEFT JOIN breadth USING (cutoff, customer_id)" if "category" in extras else ""
    category_feature = ", CAST(coalesce(breadth.category_breadth, 0) AS DOUBLE) AS category_breadth" if extras >= {
        "category"
    } else ""
    categorical_ctes = ""
    categorical_joins = ""
    categorical_features = ""
    for name in CATEGORICAL:
        if name not in extras:
            continue
        # The customer's most frequent value at the cutoff; ties broken by the value itself.
        categorical_ctes += f""", mode_{name} AS (
            SELECT cutoff, customer_id, {name} FROM (
                SELECT cutoff, customer_id, {name},
                       row_number() OVER (PARTITION BY cutoff, customer_id ORDER BY count(*) DESC, {name}) AS rank
                FROM pit WHERE {name} IS NOT NULL GROUP BY cutoff, customer_id, {name}
            ) counted WHERE rank = 1
        )"""
        categorical_joins += f" LEFT JOIN mode_{name} USING (cutoff, customer_id)"
        categorical_features += f", mode_{name}.{name}"
    months = ("o.orders_30d", "o.orders_30_60d", "o.orders_60_90d")
    return f"""
        WITH timed AS (
            SELECT *, CAST(cutoff AS TIMESTAMP) + INTERVAL 1 DAY AS end_ts FROM pit
        ),
        days AS (
            SELECT cutoff, customer_id, CAST(order_ts AS DATE) AS day, sum(net) AS amount
            FROM pit GROUP BY cutoff, customer_id, day
        ),
        gaps AS (
            SELECT cutoff, customer_id, day, amount,
                   date_diff('day', lag(day) OVER (PARTITION BY cutoff, customer_id ORDER BY day), day) AS gap
            FROM days
        ),
        rfm AS (
            SELECT cutoff, customer_id,
                   count(*) - 1 AS frequency,
                   date_diff('day', min(day), max(day)) AS recency,
                   date_diff('day', min(day), cutoff) AS T,
                   date_diff('day', max(day), cutoff) AS days_since_last,
                   CASE WHEN count(*) > 1
                        THEN CAST(sum(amount) - arg_min(amount, day) AS DOUBLE) / (count(*) - 1)
                        ELSE 0.0 END AS monetary_value,
                   -- integer sums are exact, so the standard deviation is the same on every run
                   sum(gap) AS gap_sum, sum(gap * gap) AS gap_sum_sq
            FROM gaps GROUP BY cutoff, customer_id
        ),
        ord AS (
            SELECT cutoff, customer_id, count(*) AS n_orders, sum(net) AS total_spend, sum(gross) AS gross,
                   sum(returned) AS returned, sum(n_lines) AS n_lines {order_counts} {spends} {quantity}
            FROM timed GROUP BY cutoff, customer_id
        ) {category_cte} {categorical_ctes}
        SELECT cutoff, customer_id,
               CAST(r.frequency AS DOUBLE) AS frequency_days, CAST(r.recency AS DOUBLE) AS recency_days,
               CAST(r.T AS DOUBLE) AS T_days, r.monetary_value AS monetary_value_days,
               CAST(r.days_since_last AS DOUBLE) AS days_since_last,
               CAST(o.n_orders AS DOUBLE) AS n_orders,
               CAST(o.total_spend AS DOUBLE) AS total_spend,
               CAST(o.total_spend AS DOUBLE) / o.n_orders AS avg_order_value,
               CASE WHEN r.frequency > 0 THEN r.gap_sum / r.frequency END AS gap_mean,
               CASE WHEN r.frequency > 1
                    THEN sqrt(greatest((r.gap_sum_sq - r.gap_sum * r.gap_sum / r.frequency) / (r.frequency - 1), 0))
                    END AS gap_std,
               CASE WHEN r.frequency > 0 THEN r.days_since_last * r.frequency / r.gap_sum END AS last_gap_ratio,
               {", ".join(f"CAST(o.orders_{name} AS DOUBLE) AS orders_{name}" for name, _, _ in WINDOWS)},
               {", ".join(f"CAST(o.spend_{name} AS DOUBLE) AS spend_{name}" for name in SPEND_WINDOWS)},
               CAST(o.orders_90d - o.orders_90_180d AS DOUBLE) AS orders_trend_90d,
               CAST(({months[0]} < {months[1]})::INT + ({months[1]} < {months[2]})::INT AS DOUBLE) AS months_declining,
               CAST(o.n_lines AS DOUBLE) / o.n_orders AS basket_lines,
               CAST(o.returned AS DOUBLE) / CAST(o.gross AS DOUBLE) AS return_share
               {quantity_feature} {category_feature} {categorical_features}
        FROM rfm r JOIN ord o USING (cutoff, customer_id) {category_join} {categorical_joins}
        ORDER BY cutoff, customer_id
    """


def _labels_sql(window_days: int) -> str:
    """SQL: 1 per (cutoff, customer) with an order in (c, c + window] as known at its end."""
    return f"""
        SELECT DISTINCT cutoff, customer_id
        FROM pit_outcome
        WHERE order_ts >= CAST(cutoff AS TIMESTAMP) + INTERVAL 1 DAY
          AND order_ts < CAST(cutoff AS TIMESTAMP) + INTERVAL {window_days + 1} DAY
    """


SAMPLE_BUCKETS = 1_000_000


def _sample_filter(customer_share: Mapping[dt.date, float]) -> str:
    """SQL predicate over (cutoff, customer_id): true for kept rows."""
    sampled = {day: share for day, share in customer_share.items() if share < 1.0}
    if not sampled:
        return "true"
    # hash() is DuckDB's own 64-bit hash: stable across runs and machines for the same version.
    cases = " ".join(
        f"WHEN DATE '{day.isoformat()}' THEN hash(customer_id) % {SAMPLE_BUCKETS} < {int(share * SAMPLE_BUCKETS)}"
        for day, share in sorted(sampled.items())
    )
    return f"(CASE cutoff {cases} ELSE true END)"


def churn_snapshots(
    ingested: IngestResult,
    cutoffs: Sequence[dt.date],
    *,
    window_days: int = 90,
    labels: bool = True,
    customer_share: Mapping[dt.date, float] | None = None,
    customer_filter: str | None = None,
) -> pd.DataFrame:
    """Features (and labels) of every customer with a purchase on or before each cutoff.

    One row per (cutoff, customer), sorted by cutoff then customer_id; ``cutoff`` is a date
    column; categorical columns (country, channel, when mapped at ingestion) are strings.
    ``labels=True`` adds ``churned`` (0/1) and requires every outcome window to lie within the
    data (ingestion cutoff, else the last order date). ``customer_share`` keeps, at the cutoffs
    it names, only a deterministic share of the customers (chosen by a hash of the id, so the same
    customers at every cutoff and on every run); other cutoffs keep everyone. ``customer_filter``
    is a SQL condition on ``customer_id`` restricting every cutoff (chunked scoring). Every
    feature of a row is a function of that customer's orders alone: this module fits no model
    (the BTYD features come from :class:`clv_models.models.btyd_features.BtydChurnFeatures`).
    """
    import pandas as pd

    if not cutoffs:
        raise ClvInputError("no churn cutoffs given")
    con = ingested.con
    data_end = ingested.report.cutoff
    zeros = ingested.report.zero_amount_orders > 0
    if labels:
        late = [d for d in cutoffs if d + dt.timedelta(days=window_days) > data_end]
        if late:
            raise ClvInputError(
                f"cutoff {late[0]} + {window_days} days ends after the data ({data_end}); "
                "labels would be incomplete: use an earlier cutoff or labels=False"
            )
    extras = optional_columns(con)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {CUTOFFS_TABLE} AS SELECT * FROM (VALUES {_date_list(cutoffs)}) t(cutoff)"
    )
    keep = _sample_filter(customer_share or {})
    if customer_filter:
        keep = f"({keep}) AND ({customer_filter})"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE pit AS "
        f"SELECT * FROM ({point_in_time_orders_sql(0, sorted(extras), zero_purchases=zeros)}) WHERE {keep}"
    )
    try:
        frame = con.sql(features_sql(extras)).to_arrow_table().to_pandas()
        if labels:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE pit_outcome AS "
                f"SELECT * FROM ({point_in_time_orders_sql(window_days, zero_purchases=zeros)}) WHERE {keep}"
            )
            active = con.sql(_labels_sql(window_days)).to_arrow_table().to_pandas()
            active["_active"] = True
            frame = frame.merge(active, on=["cutoff", "customer_id"], how="left", validate="one_to_one")
            frame[LABEL] = (~frame.pop("_active").fillna(False).astype(bool)).astype(np.int8)
    finally:
        con.execute("DROP TABLE IF EXISTS pit; DROP TABLE IF EXISTS pit_outcome")
    if frame["cutoff"].dtype != object:  # Arrow's date32 already arrives as datetime.date objects
        frame["cutoff"] = pd.to_datetime(frame["cutoff"]).dt.date
    frame["customer_id"] = frame["customer_id"].astype("string")
    frame.attrs["unit"] = "D"
    return frame


def churn_rates(ingested: IngestResult, cutoffs: Sequence[dt.date], *, window_days: int) -> dict[dt.date, float]:
    """The churn rate at each cutoff: the share of the customers with a purchase on or before it
    (as known then) who place no order in the ``window_days`` after it — the mean label of
    :func:`churn_snapshots` at that cutoff, without the features. Every outcome window must lie
    within the data."""
    if not cutoffs:
        return {}
    con = ingested.con
    data_end = ingested.report.cutoff
    late = [d for d in cutoffs if d + dt.timedelta(days=window_days) > data_end]
    if late:
        raise ClvInputError(f"cutoff {late[0]} + {window_days} days ends after the data ({data_end})")
    zeros = ingested.report.zero_amount_orders > 0
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {CUTOFFS_TABLE} AS SELECT * FROM (VALUES {_date_list(cutoffs)}) t(cutoff)"
    )
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE pit AS {point_in_time_orders_sql(0, zero_purchases=zeros)}")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE pit_outcome AS {point_in_time_orders_sql(window_days, zero_purchases=zeros)}"
        )
        rows = con.execute(
            f"""
            SELECT k.cutoff, avg(CASE WHEN a.customer_id IS NULL THEN 1.0 ELSE 0.0 END) AS rate
            FROM (SELECT DISTINCT cutoff, customer_id FROM pit) k
            LEFT JOIN ({_labels_sql(window_days)}) a USING (cutoff, customer_id)
            GROUP BY k.cutoff
            """
        ).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS pit; DROP TABLE IF EXISTS pit_outcome")
    return {(c if isinstance(c, dt.date) else c.date()): float(rate) for c, rate in rows}


def feature_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) model inputs present in a snapshot frame, in a fixed order."""
    numeric = [c for c in (*BASE_FEATURES, *OPTIONAL_NUMERIC.values()) if c in frame.columns]
    categorical = [c for c in CATEGORICAL if c in frame.columns]
    return numeric, categorical


# The churn window from the shop's rhythm (decisions D33): the 80th percentile of the gaps
# between a customer's consecutive purchase days, rounded up to whole weeks, within the bounds.
RHYTHM_QUANTILE = 0.8
WINDOW_BOUNDS_DAYS = (14, 365)
SHORTEST_WINDOW_DAYS = 7  # below this a short history cannot label churn at all
MIN_GAPS = 30  # fewer repeat gaps than this: the rhythm is not measured, the 90-day default applies
DEFAULT_WINDOW_DAYS = 90


def repeat_gaps(ingested: IngestResult) -> np.ndarray:
    """Days between consecutive purchase days of each customer (every canonical order is a purchase)."""
    rows = ingested.con.execute(
        """
        SELECT gap FROM (
            SELECT date_diff('day', lag(day) OVER (PARTITION BY customer_id ORDER BY day), day) AS gap
            FROM (SELECT DISTINCT customer_id, CAST(order_ts AS DATE) AS day FROM orders)
        ) WHERE gap IS NOT NULL
        """
    ).fetchnumpy()["gap"]
    return np.asarray(rows, dtype=float)


@dataclass(frozen=True)
class ChurnWindow:
    """The churn window in days, how it was chosen and what the user must be told."""

    days: int
    rule: str
    median_gap_days: float | None
    notes: tuple[str, ...] = ()


def choose_window(ingested: IngestResult, settings: ChurnSettings, span_days: int) -> ChurnWindow:
    """The window the snapshots use: ``churn.window_days`` when set (with a warning when it is
    shorter than the median repeat gap), otherwise the rhythm rule above; then shortened, with a
    note, when the history cannot hold the snapshots a window needs (3 windows + history)."""
    gaps = repeat_gaps(ingested)
    median = float(np.median(gaps)) if len(gaps) else None
    notes: list[str] = []
    if settings.window_days is not None:
        days, rule = int(settings.window_days), "churn.window_days"
        if median is not None and days < median:
            notes.append(
                f"churn.window_days = {days} is shorter than the median gap between a customer's purchases "
                f"({median:.0f} days): many active customers will be labelled churned"
            )
    elif len(gaps) < MIN_GAPS:
        days, rule = DEFAULT_WINDOW_DAYS, f"default ({len(gaps)} repeat gaps: too few to measure the rhythm)"
    else:
        quantile = float(np.quantile(gaps, RHYTHM_QUANTILE))
        weeks = int(np.ceil(quantile / 7.0))
        days = int(min(max(7 * weeks, WINDOW_BOUNDS_DAYS[0]), WINDOW_BOUNDS_DAYS[1]))
        rule = f"80th percentile of repeat gaps {quantile:.0f} days, in whole weeks"
    fits = (span_days - settings.min_history_days) // 3
    if days > fits and settings.window_days is None:
        if fits < SHORTEST_WINDOW_DAYS:
            raise ClvInputError(
                f"orders span {span_days} days: too short to label churn (3 windows of at least "
                f"{SHORTEST_WINDOW_DAYS} days + churn.min_history_days = {settings.min_history_days}); "
                "train on a longer history or lower churn.min_history_days"
            )
        notes.append(
            f"the history ({span_days} days) is too short for a {days}-day churn window ({rule}); "
            f"the window is shortened to {fits} days (3 windows + {settings.min_history_days} days of history)"
        )
        rule = f"{rule}; shortened to fit the history"
        days = fits
    return ChurnWindow(days=days, rule=rule, median_gap_days=median, notes=tuple(notes))


# Calendar features need training cutoffs whose days of the year cover every season: from the
# earliest to the latest at least 11 months, a cutoff in every month with the default 30-day
# step and 12 cutoffs (decisions D46).
SEASON_SPAN_DAYS = 330


@dataclass(frozen=True)
class SeasonRule:
    """Whether the snapshots carry the cutoff's calendar features, and the reason in words."""

    on: bool
    rule: str


def season_rule(mode: str, plan: SnapshotPlan) -> SeasonRule:
    """``churn.season_features`` resolved on a plan: 'on'/'off' as set; 'auto' on when the
    training cutoffs cover a whole year of seasons (from the earliest to the latest at least
    :data:`SEASON_SPAN_DAYS`), so every time of year the test and scoring cutoffs can fall in was
    seen with labels; trees cannot extrapolate to a season they never saw."""
    if mode in ("on", "off"):
        return SeasonRule(mode == "on", f"churn.season_features = {mode!r}")
    covered = (plan.train[-1] - plan.train[0]).days
    if covered >= SEASON_SPAN_DAYS:
        return SeasonRule(True, f"auto: the training cutoffs span {covered} days (>= {SEASON_SPAN_DAYS}): every season")
    return SeasonRule(
        False, f"auto: the training cutoffs span {covered} days (< {SEASON_SPAN_DAYS}): not every season"
    )


@dataclass
class ChurnDataset:
    """Training, validation and test snapshots with labels, and how they were made."""

    plan: SnapshotPlan
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    numeric_features: list[str]
    categorical_features: list[str]
    training_share: float = 1.0  # share of customers kept in the training snapshots (max_train_rows)
    window: ChurnWindow | None = None
    season: SeasonRule | None = None  # whether the cutoff's calendar features are used, and why (D46)

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]


def _training_share(ingested: IngestResult, plan: SnapshotPlan, max_rows: int | None) -> float:
    """Share of customers kept in the training snapshots so they hold about ``max_rows`` rows."""
    if max_rows is None:
        return 1.0
    latest_end = plan.train[-1] + dt.timedelta(days=1)
    customers = ingested.con.execute(
        "SELECT count(DISTINCT customer_id) FROM order_candidates "
        f"WHERE amount >= 0 AND order_ts < TIMESTAMP '{latest_end.isoformat()}'"
    ).fetchall()[0][0]
    # An upper bound on the rows: every customer known at the latest cutoff, at every cutoff.
    return min(1.0, max_rows / max(1, customers * len(plan.train)))


def build_churn_dataset(ingested: IngestResult, settings: ChurnSettings) -> ChurnDataset:
    """Plan the snapshots from the data's span and build all of them in one pass."""
    first = ingested.con.execute("SELECT min(order_ts) FROM orders").fetchall()[0][0]
    data_end = ingested.report.cutoff
    window = choose_window(ingested, settings, (data_end - first.date()).days)
    settings = settings.model_copy(update={"window_days": window.days})
    plan = plan_snapshots(
        first.date(),
        data_end,
        window_days=window.days,
        train_cutoffs=settings.train_cutoffs,
        cutoff_step_days=settings.cutoff_step_days,
        min_history_days=settings.min_history_days,
    )
    share = _training_share(ingested, plan, settings.max_train_rows)
    frame = churn_snapshots(
        ingested,
        [*plan.train, plan.validation, plan.test],
        window_days=settings.window_days,
        customer_share={cutoff: share for cutoff in plan.train},
    )
    numeric, categorical = feature_columns(frame)
    season = season_rule(settings.season_features, plan)
    if season.on:
        from clv_models.features.calendar import CALENDAR_FEATURES, add_calendar_features

        add_calendar_features(frame, "cutoff")
        numeric = [*numeric, *CALENDAR_FEATURES]

    def part(dates: Sequence[dt.date]) -> pd.DataFrame:
        selected = frame[frame["cutoff"].isin(set(dates))].reset_index(drop=True)
        selected.attrs["unit"] = "D"
        return selected

    return ChurnDataset(
        plan=plan,
        training_share=share,
        train=part(plan.train),
        validation=part([plan.validation]),
        test=part([plan.test]),
        numeric_features=numeric,
        categorical_features=categorical,
        window=window,
        season=season,
    )
