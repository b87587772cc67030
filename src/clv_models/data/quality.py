"""The data-quality report of one ingestion: what was read, what was kept, what was set aside."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

# Reasons that mean the export itself is broken; they count against ``max_bad_share``.
MALFORMED_REASONS = frozenset({"bad_timestamp", "bad_amount", "duplicate_line", "missing_order_id"})

REASON_DESCRIPTIONS = {
    "missing_customer_id": "no customer id (guest checkout); cannot be attributed",
    "bad_timestamp": "order timestamp missing or unparseable",
    "bad_amount": "amount missing, not a number, infinite or absurdly large",
    "missing_order_id": "order id column mapped but empty",
    "after_cutoff": "placed after the cutoff (as_of); not read for features",
    "duplicate_line": "exact repeat of an earlier line of the same order",
    "non_positive_order": "order net amount <= 0 (zero-priced, or returned in full)",
    "return_without_purchase": "credit/return with no earlier purchase by that customer to net against",
}


@dataclass
class QualityReport:
    """Counts are source rows (lines) unless named ``orders``/``customers``; money in source units."""

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

    def reason_summary(self) -> str:
        return ", ".join(f"{reason}: {n:,}" for reason, n in self.reason_counts.items()) or "none"

    def malformed_summary(self) -> str:
        return ", ".join(
            f"{reason}: {n:,}" for reason, n in self.reason_counts.items() if reason in MALFORMED_REASONS
        )

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.update(
            rows_quarantined=self.rows_quarantined,
            malformed_rows=self.malformed_rows,
            malformed_share=self.malformed_share,
        )
        return data
