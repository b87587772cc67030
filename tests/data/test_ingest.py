"""Ingestion: lines -> orders, the returns policy, reasons, quarantine, and every source kind."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from clv_models.config import ColumnMap, ValidationSettings
from clv_models.data import ingest
from clv_models.errors import ClvInputError, TooManyBadRowsError

COLUMNS = ColumnMap.parse(
    "customer_id=cust,order_id=invoice,order_ts=ts,quantity=qty,unit_price=price"
)

# Hand-made invoice lines (as strings, as a CSV export would carry them). Expected outcome per
# line is in the comment; the totals are worked out by hand in the tests below.
LINES = [
    # cust,   invoice, ts,                   qty,  price
    ("101.0", "1", "2024-01-01 10:00:00", "2", "5.0"),  # order 1 = 2*5 + 1*5 = 15
    ("101.0", "1", "2024-01-01 10:00:00", "1", "5.0"),
    ("101", "2", "2024-01-01 15:00:00", "1", "5.0"),  # order 2 = 5 (same day as order 1)
    ("101", "3", "2024-01-03 09:00:00", "3", "10.0"),  # order 3 = 30
    ("101", "3", "2024-01-03 09:00:00", "3", "10.0"),  # exact repeat -> duplicate_line
    ("101", "4", "2024-01-10 12:00:00", "4", "10.0"),  # order 4 = 40, then 10 returned -> 30
    ("101", "C5", "2024-01-11 08:00:00", "-1", "10.0"),  # credit -10 netted into order 4
    ("202", "6", "2024-01-20 11:00:00", "5", "10.0"),  # single buyer, 50
    ("303", "7", "2024-01-05 10:00:00", "1", "25.0"),  # bought 25 …
    ("303", "C8", "2024-01-06 10:00:00", "-1", "25.0"),  # … returned in full -> non_positive_order
    ("404", "C9", "2024-01-07 10:00:00", "-2", "4.0"),  # return_without_purchase
    ("", "10", "2024-01-08 10:00:00", "1", "3.0"),  # missing_customer_id (guest)
    ("505", "11", "not a date", "1", "3.0"),  # bad_timestamp
    ("505", "12", "2024-01-09 10:00:00", "x", "3.0"),  # bad_amount
    ("606", "13", "2024-01-12 10:00:00", "1", "0.0"),  # zero-priced: a purchase worth 0 (zero_amount default)
    ("707", "14", "2024-02-05 10:00:00", "1", "9.0"),  # after_cutoff (as_of 2024-01-31)
]


def lines_frame() -> pd.DataFrame:
    return pd.DataFrame(LINES, columns=["cust", "invoice", "ts", "qty", "price"])


def write_csv(path: Path, frame: pd.DataFrame, **kwargs) -> Path:
    frame.to_csv(path, index=False, **kwargs)
    return path


@pytest.fixture
def lines_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "lines.csv", lines_frame())


def test_orders_returns_and_reasons(lines_csv: Path, tmp_path: Path) -> None:
    lenient = ValidationSettings(max_bad_share=1.0)
    quarantine = tmp_path / "q.parquet"
    with ingest(lines_csv, columns=COLUMNS, as_of=dt.date(2024, 1, 31), validation=lenient,
                quarantine_path=quarantine) as result:
        orders = result.orders_frame()
        report = result.report

    # "101.0" and "101" are one customer; line items summed; the credit netted into order 4;
    # customer 303's purchase was returned in full and is no purchase; 606's free order is one.
    got = orders[["customer_id", "order_id", "amount", "returned_amount"]].values.tolist()
    assert got == [
        ["101", "1", 15.0, 0.0],
        ["101", "2", 5.0, 0.0],
        ["101", "3", 30.0, 0.0],
        ["101", "4", 30.0, 10.0],
        ["202", "6", 50.0, 0.0],
        ["606", "13", 0.0, 0.0],
    ]
    assert orders.loc[orders.order_id == "1", "order_ts"].item() == pd.Timestamp("2024-01-01 10:00")
    assert orders["n_lines"].tolist() == [2, 1, 1, 1, 1, 1]

    # Customer 303's purchase line is quarantined as non_positive_order; its credit-note line
    # was consumed by the netting.
    assert report.reason_counts == {
        "after_cutoff": 1,
        "bad_amount": 1,
        "bad_timestamp": 1,
        "duplicate_line": 1,
        "missing_customer_id": 1,
        "non_positive_order": 1,
        "return_without_purchase": 1,
    }
    assert report.rows_read == len(LINES)
    assert report.malformed_rows == 3  # bad_timestamp, bad_amount, duplicate_line
    assert report.orders == 6 and report.customers == 3 and report.zero_amount_orders == 1
    assert report.net_revenue == pytest.approx(130.0)
    assert report.returned_revenue == pytest.approx(10.0)

    # The quarantine holds the raw rows, untouched, with reason and source row number.
    q = pd.read_parquet(quarantine)
    assert sorted(q["source_row"]) == [5, 9, 11, 12, 13, 14, 16]
    dup = q[q.reason == "duplicate_line"].iloc[0]
    assert (dup["cust"], dup["invoice"], dup["qty"]) == ("101", "3", "3")
    assert q.loc[q.reason == "bad_amount", "qty"].item() == "x"
    assert q.loc[q.reason == "missing_customer_id", "cust"].isna().item()


def test_source_is_not_modified(lines_csv: Path) -> None:
    before = lines_csv.read_bytes()
    with ingest(lines_csv, columns=COLUMNS, validation=ValidationSettings(max_bad_share=1.0),
                quarantine_path=None):
        pass
    assert lines_csv.read_bytes() == before


def test_malformed_share_limit(lines_csv: Path, tmp_path: Path) -> None:
    # 3 malformed of 16 rows = 18.75 % > 5 %: fails, but the quarantine is written first.
    quarantine = tmp_path / "q.parquet"
    with pytest.raises(TooManyBadRowsError, match=r"3 of 16 rows \(18.8%\) are malformed"):
        ingest(lines_csv, columns=COLUMNS, quarantine_path=quarantine)
    assert quarantine.exists()


def test_guest_lines_do_not_fail_the_run(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "cust": [None] * 60 + ["1"] * 40,
            "invoice": [str(i) for i in range(100)],
            "ts": ["2024-03-01 10:00"] * 100,
            "qty": ["1"] * 100,
            "price": ["2.5"] * 100,
        }
    )
    with ingest(write_csv(tmp_path / "g.csv", frame), columns=COLUMNS, quarantine_path=None) as result:
        assert result.report.reason_counts == {"missing_customer_id": 60}
        assert result.report.orders == 40


def test_without_order_id_each_row_is_an_order(tmp_path: Path) -> None:
    # CDNOW style: two identical rows are two purchases, not a duplicate.
    frame = pd.DataFrame(
        {"customer_id": ["7", "7", "7"], "order_ts": ["1997-01-01"] * 3, "amount": [10.0, 10.0, 5.0]}
    )
    with ingest(frame, quarantine_path=None) as result:
        orders = result.orders_frame()
    assert len(orders) == 3 and orders["amount"].sum() == 25.0


def _orders_via(source_path: str | Path, **kwargs) -> pd.DataFrame:
    with ingest(str(source_path), columns=COLUMNS, validation=ValidationSettings(max_bad_share=1.0),
                quarantine_path=None, as_of=dt.date(2024, 1, 31), **kwargs) as result:
        return result.orders_frame()


def test_every_source_kind_gives_the_same_orders(tmp_path: Path, lines_csv: Path) -> None:
    frame = lines_frame()
    expected = _orders_via(lines_csv)

    frame.to_parquet(tmp_path / "lines.parquet", index=False)
    semicolon = write_csv(tmp_path / "lines_semicolon.csv", frame, sep=";")
    latin1 = frame.assign(extra="Café crème")
    write_csv(tmp_path / "lines_latin1.csv", latin1, encoding="latin-1")
    with sqlite3.connect(tmp_path / "lines.sqlite") as db:
        frame.to_sql("order_lines", db, index=False)
    with duckdb.connect(str(tmp_path / "lines.duckdb")) as db:
        db.register("f", frame)
        db.execute("CREATE TABLE order_lines AS SELECT * FROM f")

    sources = [
        tmp_path / "lines.parquet",
        semicolon,
        tmp_path / "lines_latin1.csv",
        tmp_path / "lines.sqlite",
        f"sqlite:///{tmp_path / 'lines.sqlite'}",
        tmp_path / "lines.duckdb",
    ]
    for source in sources:
        got = _orders_via(source)
        pd.testing.assert_frame_equal(got, expected, obj=str(source))

    # A query against a database source names its tables as the database knows them.
    from clv_models.config import SourceSettings

    for path in (tmp_path / "lines.duckdb", tmp_path / "lines.sqlite"):
        source = SourceSettings(path=str(path), query="SELECT * FROM order_lines WHERE cust <> '505'",
                                columns=COLUMNS)
        got = _orders_via_settings(source)
        pd.testing.assert_frame_equal(got, expected, obj=f"query on {path.name}")


def _orders_via_settings(source) -> pd.DataFrame:
    with ingest(source, validation=ValidationSettings(max_bad_share=1.0), quarantine_path=None,
                as_of=dt.date(2024, 1, 31)) as result:
        return result.orders_frame()


def test_explicit_encoding_and_delimiter(tmp_path: Path) -> None:
    from clv_models.config import SourceSettings

    path = write_csv(tmp_path / "pipe.csv", lines_frame().assign(note="ß"), sep="|", encoding="cp1252")
    source = SourceSettings(path=str(path), delimiter="|", encoding="cp1252", columns=COLUMNS)
    with ingest(source, validation=ValidationSettings(max_bad_share=1.0), quarantine_path=None,
                as_of=dt.date(2024, 1, 31)) as result:
        assert result.report.orders == 6


def test_wrong_explicit_encoding_is_a_clear_error(tmp_path: Path) -> None:
    from clv_models.config import SourceSettings

    path = tmp_path / "bad.csv"
    path.write_bytes(b"cust,invoice,ts,qty,price\n1,1,2024-01-01,1,2\n" + b"\xff\xfe,1,2024-01-01,1,2\n")
    source = SourceSettings(path=str(path), encoding="utf-8", columns=COLUMNS)
    with pytest.raises(ClvInputError, match=r"bad.csv: .*not valid UTF-8.*--encoding"):
        ingest(source, quarantine_path=None)


def test_timestamp_format_detected_and_ambiguity_reported(tmp_path: Path) -> None:
    frame = lines_frame().iloc[[0, 2, 3, 5, 7]].copy()
    frame["ts"] = ["1/1/2024 10:00", "1/1/2024 15:00", "1/3/2024 9:00", "1/10/2024 12:00", "1/20/2024 11:00"]
    with ingest(write_csv(tmp_path / "us.csv", frame), columns=COLUMNS, quarantine_path=None) as result:
        assert result.report.timestamp_format == "%m/%d/%Y %H:%M"
        assert result.orders_frame()["order_ts"].max() == pd.Timestamp("2024-01-20 11:00")

    frame["ts"] = ["1/2/2024 10:00"] * len(frame)  # both m/d and d/m parse
    with pytest.raises(ClvInputError, match="ambiguous"):
        ingest(write_csv(tmp_path / "amb.csv", frame), columns=COLUMNS, quarantine_path=None)


def test_timezone_aware_timestamps_become_naive_utc(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["1"],
            "order_ts": pd.to_datetime(["2024-01-01 01:30"]).tz_localize("Europe/Berlin"),
            "amount": [3.0],
        }
    )
    with ingest(frame, quarantine_path=None) as result:
        assert result.orders_frame()["order_ts"].item() == pd.Timestamp("2024-01-01 00:30")


def test_reruns_are_byte_identical(online_retail_path: Path, tmp_path: Path) -> None:
    columns = ColumnMap.parse(
        "customer_id=CustomerID,order_id=InvoiceNo,order_ts=InvoiceDate,quantity=Quantity,unit_price=UnitPrice"
    )
    outputs = []
    for run in range(2):
        with ingest(online_retail_path, columns=columns, quarantine_path=tmp_path / f"q{run}.parquet") as result:
            outputs.append(result.write_orders(tmp_path / f"orders{run}.parquet").read_bytes())
    assert outputs[0] == outputs[1]
    assert (tmp_path / "q0.parquet").read_bytes() == (tmp_path / "q1.parquet").read_bytes()


def test_online_retail_report(online_retail_path: Path) -> None:
    """Counts checked independently with pandas on the raw file."""
    raw = pd.read_parquet(online_retail_path)
    columns = ColumnMap.parse(
        "customer_id=CustomerID,order_id=InvoiceNo,order_ts=InvoiceDate,quantity=Quantity,unit_price=UnitPrice"
    )
    with ingest(online_retail_path, columns=columns, quarantine_path=None) as result:
        report = result.report
        orders = result.orders_frame()
    assert report.rows_read == len(raw) == 541_909
    assert report.reason_counts["missing_customer_id"] == raw["CustomerID"].isna().sum()
    with_id = raw[raw["CustomerID"].notna()]
    assert report.reason_counts["duplicate_line"] == with_id.duplicated().sum()
    # Ids are strings without the float's ".0"; no cancellation invoice survives as a purchase.
    assert orders["customer_id"].str.fullmatch(r"\d{5}").all()
    assert not orders["order_id"].str.startswith("C").any()
    assert (orders["amount"] >= 0).all()
    # Every customer with at least one positive (or free) invoice keeps at least one order; the
    # invoices whose lines sum to exactly 0 are the orders worth 0 (validation.zero_amount default).
    lines = with_id.drop_duplicates().assign(amount=lambda f: f.Quantity * f.UnitPrice)
    totals = lines.groupby(["CustomerID", "InvoiceNo"])["amount"].sum()
    assert report.customers <= totals[totals >= 0].index.get_level_values(0).nunique()
    assert (orders["amount"] == 0).sum() == report.zero_amount_orders == (totals == 0).sum() == 4
    assert report.customers > 4_300


def test_quarantine_available_without_a_file(lines_csv: Path, tmp_path: Path) -> None:
    with ingest(lines_csv, columns=COLUMNS, as_of=dt.date(2024, 1, 31),
                validation=ValidationSettings(max_bad_share=1.0)) as result:
        assert result.quarantine_path is None
        frame = result.quarantine_frame()
        written = result.write_quarantine(tmp_path / "later.parquet")
    assert frame["reason"].value_counts().to_dict() == result.report.reason_counts
    pd.testing.assert_frame_equal(pd.read_parquet(written), frame, check_dtype=False)
    assert set(tmp_path.iterdir()) == {lines_csv, written}  # nothing else was written


def test_database_table_must_be_named_when_ambiguous(tmp_path: Path) -> None:
    from clv_models.config import SourceSettings

    with sqlite3.connect(tmp_path / "two.sqlite") as db:
        lines_frame().to_sql("a", db, index=False)
        lines_frame().to_sql("b", db, index=False)
    with pytest.raises(ClvInputError, match=r"two.sqlite: holds 2 tables \(a, b\); name one with --table"):
        ingest(SourceSettings(path=str(tmp_path / "two.sqlite"), columns=COLUMNS))
    with pytest.raises(ClvInputError, match=r"no table 'c'; tables are: a, b"):
        ingest(SourceSettings(path=str(tmp_path / "two.sqlite"), table="c", columns=COLUMNS))
