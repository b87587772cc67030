"""RFM summary and calibration/holdout: hand-computed cases and row-for-row parity with lifetimes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv_models.config import ColumnMap, ValidationSettings
from clv_models.data import ingest
from clv_models.errors import ClvInputError
from clv_models.features import calibration_holdout, rfm_summary

SUMMARY = ["frequency", "recency", "T", "monetary_value"]


def orders(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "order_ts": pd.to_datetime([r[1] for r in rows]),
            "amount": [float(r[2]) for r in rows],
        }
    )


# 2024-01-01 is a Monday, so ISO weeks start on Jan 1, 8, 15, 22, 29.
HAND = orders(
    ("A", "2024-01-01 10:00", 15),
    ("A", "2024-01-01 15:00", 5),  # same day: one purchase period worth 20
    ("A", "2024-01-03 09:00", 30),
    ("A", "2024-01-10 12:00", 30),
    ("A", "2024-01-31 23:59", 7),  # on the cutoff day: included (end-of-day semantics)
    ("A", "2024-02-01 00:00", 99),  # after the cutoff: never read
    ("B", "2024-01-20 11:00", 50),  # single buyer
    ("C", "2024-02-02 10:00", 10),  # first purchase after the cutoff: not a customer yet
)


def by_customer(frame: pd.DataFrame) -> dict[str, list[float]]:
    return {row.customer_id: [getattr(row, c) for c in SUMMARY] for row in frame.itertuples()}


def test_hand_computed_daily() -> None:
    got = rfm_summary(HAND, as_of=dt.date(2024, 1, 31), unit="D")
    # A: periods Jan 1 (20), Jan 3 (30), Jan 10 (30), Jan 31 (7): 3 repeats, mean (30+30+7)/3.
    assert by_customer(got) == {
        "A": [3.0, 30.0, 30.0, pytest.approx(67 / 3, abs=1e-12)],
        "B": [0.0, 0.0, 11.0, 0.0],
    }
    assert got.attrs == {"as_of": "2024-01-31", "unit": "D"}


def test_hand_computed_weekly() -> None:
    got = rfm_summary(HAND, as_of=dt.date(2024, 1, 31), unit="W")
    # A: weeks of Jan 1 (20+30=50), Jan 8 (30), Jan 29 (7); cutoff week Jan 29.
    # B: week of Jan 15; T = (Jan 29 - Jan 15) / 7 = 2.
    assert by_customer(got) == {
        "A": [2.0, 4.0, 4.0, pytest.approx(18.5, abs=1e-12)],
        "B": [0.0, 0.0, 2.0, 0.0],
    }


def test_default_cutoff_is_last_order_date() -> None:
    got = rfm_summary(HAND)
    assert got.attrs["as_of"] == "2024-02-02"
    assert set(got.customer_id) == {"A", "B", "C"}


def test_hand_computed_calibration_holdout() -> None:
    got = calibration_holdout(
        HAND, calibration_end=dt.date(2024, 1, 10), holdout_end=dt.date(2024, 2, 1), unit="D"
    ).set_index("customer_id")
    # Calibration (≤ Jan 10): A has periods Jan 1, 3, 10. Holdout (Jan 11 .. Feb 1): A buys on
    # Jan 31 (7) and Feb 1 (99): 2 periods, mean order 53. B is not yet a customer on Jan 10.
    assert list(got.index) == ["A"]
    assert (got.dtypes == "float64").all()  # every feature is float64, as model signatures expect
    a = got.loc["A"]
    assert [a["frequency"], a["recency"], a["T"], a["monetary_value"]] == [2.0, 9.0, 9.0, 30.0]
    assert [a["frequency_holdout"], a["monetary_value_holdout"], a["duration_holdout"]] == [2.0, 53.0, 22.0]


def test_returns_reach_the_summary_through_ingestion(tmp_path: Path) -> None:
    lines = pd.DataFrame(
        {
            "cust": ["9", "9", "9", "9"],
            "inv": ["1", "2", "C3", "4"],
            "ts": ["2024-01-01", "2024-01-05", "2024-01-06", "2024-01-09"],
            "value": [10.0, 40.0, -15.0, 20.0],
        }
    )
    columns = ColumnMap.parse("customer_id=cust,order_id=inv,order_ts=ts,amount=value")
    with ingest(lines, columns=columns, quarantine_path=None) as result:
        got = rfm_summary(result, as_of=dt.date(2024, 1, 9))
    # Order 2 is worth 40 - 15 = 25 after the return; repeats are 25 and 20.
    assert by_customer(got) == {"9": [2.0, 8.0, 8.0, 22.5]}


def test_unit_is_checked() -> None:
    with pytest.raises(ClvInputError, match="unit 'M'"):
        rfm_summary(HAND, unit="M")  # type: ignore[arg-type]


def test_missing_canonical_columns_are_a_clear_error() -> None:
    with pytest.raises(ClvInputError, match="missing amount"):
        rfm_summary(HAND.drop(columns="amount"))


def test_reads_parquet_and_csv_files(tmp_path: Path) -> None:
    HAND.to_parquet(tmp_path / "o.parquet", index=False)
    HAND.to_csv(tmp_path / "o.csv", index=False)
    expected = rfm_summary(HAND, as_of=dt.date(2024, 1, 31))
    for name in ("o.parquet", "o.csv"):
        got = rfm_summary(tmp_path / name, as_of=dt.date(2024, 1, 31))
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)


# --- parity with lifetimes ------------------------------------------------------------------


def assert_same_as_lifetimes(ours: pd.DataFrame, reference: pd.DataFrame, columns: dict[str, str]) -> None:
    ours = ours.set_index("customer_id").sort_index()
    reference = reference.sort_index()
    assert len(ours) == len(reference) > 0
    assert list(ours.index) == [str(i) for i in reference.index]
    for our_column, reference_column in columns.items():
        np.testing.assert_allclose(
            ours[our_column].to_numpy(), reference[reference_column].to_numpy(dtype=float),
            rtol=1e-9, atol=1e-9, err_msg=our_column,
        )


def lifetimes_summary(frame: pd.DataFrame, as_of: dt.date, unit: str) -> pd.DataFrame:
    from lifetimes.utils import summary_data_from_transaction_data

    return summary_data_from_transaction_data(
        frame, "customer_id", "order_ts", monetary_value_col="amount",
        observation_period_end=pd.Timestamp(as_of), freq=unit,
    )


def lifetimes_calibration(frame: pd.DataFrame, cal: dt.date, end: dt.date, unit: str) -> pd.DataFrame:
    from lifetimes.utils import calibration_and_holdout_data

    # lifetimes compares raw timestamps with midnight of the given dates; feeding it day-floored
    # timestamps gives the end-of-day meaning of a cutoff date that clv_models uses.
    return calibration_and_holdout_data(
        frame.assign(order_ts=frame["order_ts"].dt.floor("D")), "customer_id", "order_ts",
        calibration_period_end=pd.Timestamp(cal), observation_period_end=pd.Timestamp(end),
        monetary_value_col="amount", freq=unit,
    )


CALIBRATION_COLUMNS = {
    "frequency": "frequency_cal", "recency": "recency_cal", "T": "T_cal",
    "monetary_value": "monetary_value_cal", "frequency_holdout": "frequency_holdout",
    "monetary_value_holdout": "monetary_value_holdout", "duration_holdout": "duration_holdout",
}


@pytest.fixture(scope="module")
def cdnow_orders(cdnow_master: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CDNOW master through our ingestion (no order id: each row is one purchase)."""
    path = tmp_path_factory.mktemp("cdnow") / "cdnow_master.csv"
    cdnow_master.to_csv(path, index=False)
    columns = ColumnMap.parse("customer_id=customer_id,order_ts=date,amount=dollar_value")
    out = path.with_name("orders.parquet")
    # The $0 rows quarantined, as the pandas reference (conftest) leaves them out.
    not_zero = ValidationSettings(zero_amount="quarantine")
    with ingest(path, columns=columns, validation=not_zero, quarantine_path=None) as result:
        assert result.report.timestamp_format == "%Y%m%d"
        assert result.report.reason_counts == {"non_positive_order": 80}  # the $0 rows
        result.write_orders(out)
    return out


@pytest.fixture(scope="module")
def cdnow_reference(cdnow_orders_frame: pd.DataFrame) -> pd.DataFrame:
    """The same orders derived independently with pandas (conftest)."""
    return cdnow_orders_frame


@pytest.mark.parametrize("unit", ["D", "W"])
def test_cdnow_summary_matches_lifetimes(cdnow_orders: Path, cdnow_reference: pd.DataFrame, unit: str) -> None:
    as_of = dt.date(1998, 6, 30)
    ours = rfm_summary(cdnow_orders, as_of=as_of, unit=unit)
    # 68 of the 23,570 customers only ever "bought" for $0 and are no customers here.
    assert len(ours) == cdnow_reference["customer_id"].nunique() == 23_502
    assert_same_as_lifetimes(ours, lifetimes_summary(cdnow_reference, as_of, unit), {c: c for c in SUMMARY})


@pytest.mark.parametrize("unit", ["D", "W"])
def test_cdnow_calibration_holdout_matches_lifetimes(
    cdnow_orders: Path, cdnow_reference: pd.DataFrame, unit: str
) -> None:
    cal, end = dt.date(1997, 9, 30), dt.date(1998, 6, 30)
    ours = calibration_holdout(cdnow_orders, calibration_end=cal, holdout_end=end, unit=unit)
    assert_same_as_lifetimes(ours, lifetimes_calibration(cdnow_reference, cal, end, unit), CALIBRATION_COLUMNS)


@pytest.fixture(scope="module")
def online_retail_orders(online_retail_path: Path) -> pd.DataFrame:
    columns = ColumnMap.parse(
        "customer_id=CustomerID,order_id=InvoiceNo,order_ts=InvoiceDate,quantity=Quantity,unit_price=UnitPrice"
    )
    with ingest(online_retail_path, columns=columns, quarantine_path=None) as result:
        return result.orders_frame()


@pytest.mark.parametrize("unit", ["D", "W"])
def test_online_retail_summary_matches_lifetimes(online_retail_orders: pd.DataFrame, unit: str) -> None:
    as_of = dt.date(2011, 12, 9)
    ours = rfm_summary(online_retail_orders, as_of=as_of, unit=unit)
    assert_same_as_lifetimes(
        ours, lifetimes_summary(online_retail_orders, as_of, unit), {c: c for c in SUMMARY}
    )


@pytest.mark.parametrize("unit", ["D", "W"])
def test_online_retail_calibration_holdout_matches_lifetimes(online_retail_orders: pd.DataFrame, unit: str) -> None:
    cal, end = dt.date(2011, 9, 8), dt.date(2011, 12, 9)  # Thursday: holdout starts mid-week
    ours = calibration_holdout(online_retail_orders, calibration_end=cal, holdout_end=end, unit=unit)
    assert_same_as_lifetimes(
        ours, lifetimes_calibration(online_retail_orders, cal, end, unit), CALIBRATION_COLUMNS
    )
