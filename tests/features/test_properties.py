"""Property tests: invariants of the RFM summary over random order histories."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from clv_models.config import ColumnMap, ValidationSettings
from clv_models.data import ingest
from clv_models.errors import ClvInputError
from clv_models.features import rfm_summary

START = dt.datetime(2023, 1, 1)
AS_OF = dt.date(2023, 6, 30)
COLUMNS = ColumnMap.parse("customer_id=cust,order_id=invoice,order_ts=ts,amount=value")

lines = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),  # customer
        st.integers(0, 30),  # invoice number
        st.integers(0, 200 * 24 * 60),  # minutes after START (some after the cutoff)
        st.integers(-20_00, 500_00).map(lambda cents: cents / 100),  # amount, returns included
    ),
    min_size=1,
    max_size=60,
)


def frame_of(rows: list[tuple[str, int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cust": [r[0] for r in rows],
            # An invoice belongs to one customer and one instant, as in a real export.
            "invoice": [f"{r[0]}-{r[1]}" for r in rows],
            "ts": [START + dt.timedelta(minutes=r[2] - r[2] % 1440 + r[1]) for r in rows],
            "value": [r[3] for r in rows],
        }
    )


def summary(frame: pd.DataFrame, unit: str = "D") -> pd.DataFrame | None:
    """The RFM summary, or None when no line is a usable purchase (ingest refuses that)."""
    try:
        result = ingest(frame, columns=COLUMNS, as_of=AS_OF, quarantine_path=None,
                        validation=ValidationSettings(max_bad_share=1.0))
    except ClvInputError as exc:
        assert "no usable orders" in str(exc)
        return None
    with result:
        return rfm_summary(result, as_of=AS_OF, unit=unit)


def assert_same(left: pd.DataFrame | None, right: pd.DataFrame | None) -> None:
    if left is None or right is None:
        assert left is None and right is None
    else:
        pd.testing.assert_frame_equal(left, right)


@settings(max_examples=60)
@given(lines, st.sampled_from(["D", "W"]))
def test_recency_within_t_and_frequency_consistent(rows, unit) -> None:
    got = summary(frame_of(rows), unit)
    if got is None:
        return
    assert (got["recency"] <= got["T"]).all()
    assert (got["recency"] >= 0).all() and (got["frequency"] >= 0).all()
    assert (got.loc[got["frequency"] == 0, ["recency", "monetary_value"]] == 0).all().all()
    assert (got.loc[got["frequency"] > 0, "monetary_value"] > 0).all()


@settings(max_examples=40)
@given(lines, st.randoms(use_true_random=False))
def test_invariant_to_row_order(rows, rnd) -> None:
    frame = frame_of(rows)
    shuffled = frame.sample(frac=1.0, random_state=rnd.randint(0, 2**31)).reset_index(drop=True)
    assert_same(summary(frame), summary(shuffled))


@settings(max_examples=40)
@given(lines, st.lists(st.integers(0, 59), min_size=1, max_size=10))
def test_invariant_to_duplicated_lines(rows, picks) -> None:
    frame = frame_of(rows)
    repeated = frame.iloc[[p % len(frame) for p in picks]]
    doubled = pd.concat([frame, repeated], ignore_index=True)
    assert_same(summary(frame), summary(doubled))
