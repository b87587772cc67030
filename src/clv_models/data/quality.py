"""The data-quality report of one ingestion: what was read, what was kept, what was set aside."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

# Reasons that mean the export itself is broken; they count against ``max_bad_share``.
MALFORMED_REASONS = frozenset({"bad_timestamp", "bad_amount", "duplicate_line", "missing_order_id"})

REASON_DESCRIPTIONS = {
    "missing_customer_id": "no customer id (guest checkout); cannot be attributed",
    "bad_timestamp": "order timestamp missing or unparseable (or a period number out of range)",
    "bad_amount": "amount missing, not a number, infinite or absurdly large",
    "missing_order_id": "order id column mapped but empty",
    "after_cutoff": "placed after the cutoff (as_of); not read for features",
    "duplicate_line": "exact repeat of an earlier line of the same order",
    "duplicate_row": "exact repeat of an earlier row, no order id (validation.duplicate_rows = drop)",
    "non_positive_order": "order net amount <= 0: returned in full, or zero (validation.zero_amount = quarantine)",
    "return_without_purchase": "credit/return with no earlier purchase by that customer to net against",
}

# Why a customer (an id in the source) ends with no purchase, tested in this order; the
# quarantine's ``customer_dropped`` column carries it on every quarantined row of the customer.
DROPPED_DESCRIPTIONS = {
    "returned_in_full": "every purchase was returned in full",
    "only_zero_amount": "only orders worth exactly 0 (validation.zero_amount = quarantine)",
    "only_returns": "only credits/returns, no purchase to net them against",
    "only_malformed_rows": "every row malformed (bad timestamp or amount, missing order id, duplicate)",
    "only_after_cutoff": "every row after the cutoff: a customer only later",
}


@dataclass
class QualityReport:
    """Counts are source rows (lines) unless named ``orders``/``customers``; money in source units.

    ``customers_dropped``: customers (ids in the source) with no usable purchase, per reason in
    :data:`DROPPED_DESCRIPTIONS`. ``duplicate_rows``: exact repeats of an earlier valid row (every
    source column equal); with an order id they are quarantined as ``duplicate_line``, without one
    ``validation.duplicate_rows`` keeps them as orders or quarantines them as ``duplicate_row``.
    """

    source: str
    rows_read: int
    reason_counts: dict[str, int]
    orders: int
    customers: int
    first_order_ts: dt.datetime | None
    last_order_ts: dt.datetime | None
    net_revenue: float
    returned_revenue: float
    orders_with_returns: int
    credits_netted: int
    as_of: dt.date | None = None
    timestamp_format: str | None = None
    quarantine_path: str | None = field(default=None)
    customers_dropped: dict[str, int] = field(default_factory=dict)
    duplicate_rows: int = 0
    duplicate_rows_kept: int = 0
    zero_amount_orders: int = 0  # orders worth exactly 0 kept as purchases (validation.zero_amount = purchase)
    periods: str | None = None  # how period numbers became timestamps (orders.period_unit), else None
    source_files: int | None = None  # files read (a glob or a directory: several); None for tables
    frequency_only: bool = False  # no amounts read (orders.frequency_only): revenue counts orders

    @property
    def cutoff(self) -> dt.date | None:
        """The cutoff the data describe (DESIGN.md §2): ``as_of`` when given, else the day of the
        last kept order (the end of that day); None when no order was kept. Computed here only:
        every step reads it from the report."""
        if self.as_of is not None:
            return self.as_of
        return None if self.last_order_ts is None else self.last_order_ts.date()

    @property
    def rows_quarantined(self) -> int:
        return sum(self.reason_counts.values())

    @property
    def malformed_rows(self) -> int:
        return sum(n for reason, n in self.reason_counts.items() if reason in MALFORMED_REASONS)

    @property
    def malformed_share(self) -> float:
        return self.malformed_rows / self.rows_read if self.rows_read else 0.0

    @property
    def customers_dropped_total(self) -> int:
        return sum(self.customers_dropped.values())

    def reason_summary(self) -> str:
        return ", ".join(f"{reason}: {n:,}" for reason, n in self.reason_counts.items()) or "none"

    def malformed_summary(self) -> str:
        return ", ".join(
            f"{reason}: {n:,}" for reason, n in self.reason_counts.items() if reason in MALFORMED_REASONS
        )

    def dropped_summary(self) -> str:
        """``68 (only_zero_amount: 68)`` or ``none``."""
        if not self.customers_dropped:
            return "none"
        detail = ", ".join(f"{reason}: {n:,}" for reason, n in self.customers_dropped.items())
        return f"{self.customers_dropped_total:,} ({detail})"

    def headline(self) -> str:
        """One line: what was read, kept and set aside."""
        files = f" ({self.source_files:,} files)" if self.source_files and self.source_files > 1 else ""
        return (
            f"{self.rows_read:,} rows read from {self.source}{files}: {self.orders:,} orders of {self.customers:,} "
            f"customers kept, {self.rows_quarantined:,} rows quarantined ({self.reason_summary()})"
        )

    def dropped_line(self) -> str:
        """``customers with no usable purchase: 68 (only_zero_amount: 68); listed in …`` (or none)."""
        where = (
            f"; listed in {self.quarantine_path} (column customer_dropped)"
            if self.customers_dropped and self.quarantine_path
            else ""
        )
        return f"customers with no usable purchase: {self.dropped_summary()}{where}"

    def notes(self) -> list[str]:
        """One line each on what else a user must not miss: kept duplicate rows, zero-amount
        purchases, period numbers read as dates."""
        lines = []
        if self.duplicate_rows_kept:
            lines.append(
                f"{self.duplicate_rows_kept:,} exact duplicate rows without an order id kept as separate orders "
                "(validation.duplicate_rows = keep; 'drop' quarantines them)"
            )
        if self.zero_amount_orders:
            lines.append(f"{self.zero_amount_orders:,} orders worth 0 kept as purchases (validation.zero_amount)")
        if self.periods:
            lines.append(f"order_ts from period numbers: {self.periods}")
        return lines

    def metrics(self) -> dict[str, float]:
        """The report as tracking metrics (``data_…``): counts, shares, rows per reason
        (``data_quarantined_<reason>``) and customers per reason (``data_customers_dropped_<reason>``)."""
        metrics = {
            "data_rows_read": float(self.rows_read),
            "data_orders": float(self.orders),
            "data_customers": float(self.customers),
            "data_rows_quarantined": float(self.rows_quarantined),
            "data_malformed_share": float(self.malformed_share),
            "data_duplicate_rows": float(self.duplicate_rows),
            "data_duplicate_rows_kept": float(self.duplicate_rows_kept),
            "data_customers_dropped": float(self.customers_dropped_total),
        }
        for reason, count in self.reason_counts.items():
            metrics[f"data_quarantined_{reason}"] = float(count)
        for reason, count in self.customers_dropped.items():
            metrics[f"data_customers_dropped_{reason}"] = float(count)
        return metrics

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.update(
            rows_quarantined=self.rows_quarantined,
            malformed_rows=self.malformed_rows,
            malformed_share=self.malformed_share,
            customers_dropped_total=self.customers_dropped_total,
        )
        return data


# Who hears about every report ingestion builds (both engines): the command line shows what
# `clv train` and `clv score` read without those modules printing anything themselves.
_LISTENERS: list[Callable[[QualityReport], None]] = []


@contextmanager
def report_listener(callback: Callable[[QualityReport], None]) -> Iterator[None]:
    """Call ``callback(report)`` for every quality report built while inside the block (after
    the quarantine is written, before the bad-share limit is checked)."""
    _LISTENERS.append(callback)
    try:
        yield
    finally:
        _LISTENERS.remove(callback)


def announce(report: QualityReport) -> None:
    for callback in list(_LISTENERS):
        callback(report)
