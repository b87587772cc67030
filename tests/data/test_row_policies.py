"""Period numbers as dates, exact duplicate rows without an order id, zero-amount orders and the
customers left with no usable purchase: each against numbers worked out apart from ingestion (by
hand, by the simulator's own truth, by lifetimes, by pandas)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv_models.config import ColumnMap, SourceSettings, ValidationSettings, load_settings
from clv_models.data import ingest
from clv_models.data.quality import report_listener
from clv_models.errors import ClvInputError

LENIENT = ValidationSettings(max_bad_share=1.0)
WEEKS = ColumnMap.parse("customer_id=cust,order_ts=week,amount=amount")


# ---------------------------------------------------------------------------------------------
# Integer period columns


def test_the_period_error_names_the_whole_column_s_range(tmp_path: Path) -> None:
    # A time-ordered export: the first 2,000 rows (what detection samples) are weeks 1-15.
    weeks = np.repeat(np.arange(1, 106), 30)
    path = tmp_path / "panel.csv"
    pd.DataFrame({"cust": "a", "week": weeks, "amount": 1.0}).to_csv(path, index=False)
    assert weeks[:2000].max() == 67 and weeks.max() == 105
    with pytest.raises(ClvInputError, match=r"column 'week' holds whole numbers \(1 to 105\)"):
        ingest(path, columns=WEEKS, validation=LENIENT, quarantine_path=None)


def test_week_numbers_become_the_dates_a_hand_computation_gives(tmp_path: Path) -> None:
    path = tmp_path / "weeks.csv"
    pd.DataFrame(
        {
            "cust": ["a", "a", "b", "c", "d"],
            "week": ["1", "2", "53", "104", "x"],
            "amount": ["10", "5", "7", "3", "4"],
        }
    ).to_csv(path, index=False)
    # Without the settings: one line that detects the numbers and names both flags.
    with pytest.raises(ClvInputError, match=r"weeks.csv: column 'week' holds whole numbers \(1 to 104\), not "
                       r"timestamps; .*--period-unit day\|week and --period-origin YYYY-MM-DD"):  # fmt: skip
        ingest(path, columns=WEEKS, validation=LENIENT, quarantine_path=None)

    source = SourceSettings(path=str(path), columns=WEEKS, period_unit="week", period_origin=dt.date(2024, 1, 1))
    with ingest(source, validation=LENIENT, quarantine_path=None) as result:
        orders = result.orders_frame()
        report = result.report
    # By hand: week n starts (n - 1) * 7 days after 2024-01-01; 2024 has 366 days, so week 53 is
    # 2024-12-30 (364 days on) and week 104 is 721 days on: 2025-01-01 + 355 days = 2025-12-22.
    assert dict(zip(orders["customer_id"] + orders["amount"].astype(str), orders["order_ts"], strict=True)) == {
        "a10.0": pd.Timestamp("2024-01-01"),
        "a5.0": pd.Timestamp("2024-01-08"),
        "b7.0": pd.Timestamp("2024-12-30"),
        "c3.0": pd.Timestamp("2025-12-22"),
    }
    assert report.reason_counts == {"bad_timestamp": 1}  # "x" is no period number
    assert report.periods == "week n = 2024-01-01 + (n - 1) weeks (period 1 is 2024-01-01)"

    days = SourceSettings(path=str(path), columns=WEEKS, period_unit="day", period_origin=dt.date(2024, 1, 1))
    with ingest(days, validation=LENIENT, quarantine_path=None) as result:
        stamps = sorted(result.orders_frame()["order_ts"])
    # Day 53 is Feb 22; day 104 is 103 days on, April 13 (2024 is a leap year).
    assert stamps == [pd.Timestamp(d) for d in ("2024-01-01", "2024-01-02", "2024-02-22", "2024-04-13")]


def test_period_settings_are_checked() -> None:
    with pytest.raises(ClvInputError, match="period_unit needs period_origin"):
        load_settings(None, ['orders.period_unit="week"'])
    with pytest.raises(ClvInputError, match="period_origin needs period_unit"):
        load_settings(None, ["orders.period_origin=2024-01-01"])


def test_period_unit_on_real_timestamps_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "dates.csv"
    pd.DataFrame({"cust": ["a"], "week": ["2024-03-01 10:00:00"], "amount": ["1"]}).to_csv(path, index=False)
    source = SourceSettings(path=str(path), columns=WEEKS, period_unit="week", period_origin=dt.date(2024, 1, 1))
    with pytest.raises(ClvInputError, match="--period-unit week is set but column 'week' holds values like"):
        ingest(source, quarantine_path=None)


# ---------------------------------------------------------------------------------------------
# Exact duplicate rows without an order id: the simulator's truth


@pytest.fixture(scope="module")
def duplicated_export(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same simulated export with and without its duplicated lines (duplicates are the
    simulator's last random draw, so everything else is identical). No credit notes: without an
    order id each line is an order, and which equal-time line a credit is netted into depends on
    row numbers, which the copies shift."""
    from clv_models.datasets import simulate_orders

    root = tmp_path_factory.mktemp("duplicates")
    shop = {"profile": "retail", "days": 365, "return_share": 0.0}
    with_copies = simulate_orders(800, seed=7, duplicate_share=0.02, **shop)
    clean = simulate_orders(800, seed=7, duplicate_share=0.0, **shop)
    with_copies.orders.to_parquet(root / "copies.parquet", index=False)
    clean.orders.to_parquet(root / "clean.parquet", index=False)
    return {"copies": with_copies.orders, "clean": clean.orders, "root": root, "columns": with_copies.columns}


def _no_order_id(columns: str) -> ColumnMap:
    mapped = ColumnMap.parse(columns)
    return mapped.model_copy(update={"order_id": None})


def test_duplicate_rows_without_order_id_are_counted_and_handled_by_policy(duplicated_export: dict) -> None:
    copies, clean, root = duplicated_export["copies"], duplicated_export["clean"], duplicated_export["root"]
    # The truth: the lines the simulator wrote twice (guests' copies are guest lines first).
    written = int(copies["customer_id"].notna().sum() - clean["customer_id"].notna().sum())
    pd.testing.assert_frame_equal(copies.drop_duplicates().reset_index(drop=True), clean)
    assert written > 50
    columns = _no_order_id(duplicated_export["columns"])

    with ingest(root / "copies.parquet", columns=columns, validation=LENIENT, quarantine_path=None) as kept:
        assert kept.report.duplicate_rows == kept.report.duplicate_rows_kept == written
        assert "duplicate_row" not in kept.report.reason_counts
        assert any(f"{written:,} exact duplicate rows without an order id kept" in n for n in kept.report.notes())
        assert kept.report.metrics()["data_duplicate_rows_kept"] == written

    drop = ValidationSettings(max_bad_share=1.0, duplicate_rows="drop")
    with ingest(root / "copies.parquet", columns=columns, validation=drop, quarantine_path=None) as dropped:
        report = dropped.report
        assert report.duplicate_rows == report.reason_counts["duplicate_row"] == written
        assert report.duplicate_rows_kept == 0
        assert (dropped.quarantine_frame()["reason"] == "duplicate_row").sum() == written
        deduplicated = dropped.orders_frame()
    with ingest(root / "clean.parquet", columns=columns, validation=LENIENT, quarantine_path=None) as reference:
        assert reference.report.duplicate_rows == 0
        expected = reference.orders_frame()
    # Dropping the copies gives the clean export's purchases (order ids are row numbers, which the
    # copies shift: compared without them).
    key = ["customer_id", "order_ts", "amount", "n_lines"]
    pd.testing.assert_frame_equal(
        deduplicated[key].sort_values(key).reset_index(drop=True), expected[key].sort_values(key).reset_index(drop=True)
    )


# ---------------------------------------------------------------------------------------------
# Zero-amount orders: CDNOW master against lifetimes


@pytest.fixture(scope="module")
def cdnow_csv(cdnow_master: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cdnow") / "cdnow_master.csv"
    cdnow_master.to_csv(path, index=False)
    return path


CDNOW_COLUMNS = ColumnMap.parse("customer_id=customer_id,order_ts=date,amount=dollar_value")


def test_cdnow_zero_dollar_customers_are_reported_and_listed(cdnow_master: pd.DataFrame, cdnow_csv: Path) -> None:
    only_zero = set(cdnow_master.groupby("customer_id")["dollar_value"].max().loc[lambda s: s == 0].index)
    assert len(only_zero) == 68
    not_zero = ValidationSettings(zero_amount="quarantine")
    with ingest(cdnow_csv, columns=CDNOW_COLUMNS, validation=not_zero, quarantine_path=None) as result:
        report = result.report
        quarantine = result.quarantine_frame()
    assert report.reason_counts == {"non_positive_order": int((cdnow_master["dollar_value"] == 0).sum())} == {
        "non_positive_order": 80
    }
    assert report.customers_dropped == {"only_zero_amount": 68}
    assert report.metrics()["data_customers_dropped_only_zero_amount"] == 68
    assert set(quarantine.loc[quarantine["customer_dropped"].notna(), "customer_id"]) == only_zero
    # 255 rows repeat an earlier one exactly; without an order id they stay purchases by default.
    assert report.duplicate_rows == report.duplicate_rows_kept == cdnow_master.duplicated().sum() == 255


def test_cdnow_summary_equals_lifetimes_row_for_row(cdnow_master: pd.DataFrame, cdnow_csv: Path) -> None:
    from lifetimes.utils import summary_data_from_transaction_data

    from clv_models.features import rfm_summary

    transactions = cdnow_master.assign(date=pd.to_datetime(cdnow_master["date"], format="%Y%m%d"))
    expected = summary_data_from_transaction_data(
        transactions, "customer_id", "date", monetary_value_col="dollar_value",
        observation_period_end="1998-06-30", freq="D",
    )  # fmt: skip
    assert ValidationSettings().zero_amount == "purchase"  # the default: CDNOW as lifetimes reads it
    with ingest(cdnow_csv, columns=CDNOW_COLUMNS, quarantine_path=None) as result:
        assert result.report.reason_counts == {} and result.report.customers_dropped == {}
        assert result.report.zero_amount_orders == 80
        ours = rfm_summary(result, as_of=dt.date(1998, 6, 30), unit="D").set_index("customer_id")
    ours.index = ours.index.astype(str)
    assert len(ours) == len(expected) == 23_570 and set(ours.index) == set(expected.index)
    ours = ours.loc[expected.index]
    for column in ("frequency", "recency", "T"):
        assert (ours[column].to_numpy() == expected[column].to_numpy()).all(), column
    pd.testing.assert_series_equal(ours["monetary_value"], expected["monetary_value"], rtol=1e-12, atol=1e-9,
                                   check_names=False, check_index_type=False)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Customers with no usable purchase, by reason, on a crafted file

CRAFTED = [
    # cust, invoice, ts,               amount   -> what happens to the customer
    ("A", "1", "2024-01-02 10:00", "10"),  # bought 10 …
    ("A", "C2", "2024-01-03 10:00", "-10"),  # … returned it in full: returned_in_full
    ("B", "3", "2024-01-04 10:00", "0"),  # only an order worth 0: only_zero_amount
    ("C", "C4", "2024-01-05 10:00", "-5"),  # only a credit: only_returns
    ("D", "5", "2024-01-06 10:00", "abc"),  # only a bad amount: only_malformed_rows
    ("E", "6", "2024-03-01 10:00", "8"),  # only after the cutoff: only_after_cutoff
    ("F", "7", "2024-01-07 10:00", "20"),  # a purchase: kept
    ("G", "8", "2024-01-08 10:00", "0"),  # worth 0 …
    ("G", "9", "not a date", "12"),  # … and a bad timestamp: only_zero_amount (tested first)
    ("", "10", "2024-01-09 10:00", "4"),  # a guest: no customer to lose
]


@pytest.fixture
def crafted_csv(tmp_path: Path) -> Path:
    path = tmp_path / "crafted.csv"
    pd.DataFrame(CRAFTED, columns=["cust", "invoice", "ts", "amount"]).to_csv(path, index=False)
    return path


CRAFTED_SPEC = "customer_id=cust,order_id=invoice,order_ts=ts,amount=amount"
CRAFTED_COLUMNS = ColumnMap.parse(CRAFTED_SPEC)


def test_customers_without_a_usable_purchase_by_reason(crafted_csv: Path, tmp_path: Path) -> None:
    heard = []
    zero_is_no_purchase = ValidationSettings(max_bad_share=1.0, zero_amount="quarantine")
    with report_listener(heard.append), ingest(
        crafted_csv, columns=CRAFTED_COLUMNS, as_of=dt.date(2024, 1, 31), validation=zero_is_no_purchase,
        quarantine_path=tmp_path / "q" / "{source}.parquet",
    ) as result:  # fmt: skip
        report = result.report
    assert heard == [report]
    assert report.customers == 1
    assert report.customers_dropped == {
        "returned_in_full": 1,
        "only_zero_amount": 2,
        "only_returns": 1,
        "only_malformed_rows": 1,
        "only_after_cutoff": 1,
    }
    metrics = report.metrics()
    assert metrics["data_customers_dropped"] == 6 and metrics["data_customers_dropped_only_returns"] == 1
    assert report.to_dict()["customers_dropped_total"] == 6
    quarantine = pd.read_parquet(tmp_path / "q" / "crafted.parquet")
    listed = quarantine.dropna(subset=["customer_dropped"]).groupby("cust")["customer_dropped"].agg(set)
    assert listed.to_dict() == {
        "A": {"returned_in_full"},
        "B": {"only_zero_amount"},
        "C": {"only_returns"},
        "D": {"only_malformed_rows"},
        "E": {"only_after_cutoff"},
        "G": {"only_zero_amount"},
    }
    assert quarantine.loc[quarantine["cust"] == "C", "reason"].tolist() == ["return_without_purchase"]
    assert quarantine.loc[quarantine["cust"] == "F"].empty  # a customer who keeps a purchase is not listed
    assert report.dropped_line().startswith("customers with no usable purchase: 6 (returned_in_full: 1, ")

    # Orders worth 0 as purchases: B and G keep a purchase; nothing else changes.
    zero_buys = ValidationSettings(max_bad_share=1.0, zero_amount="purchase")
    with ingest(crafted_csv, columns=CRAFTED_COLUMNS, as_of=dt.date(2024, 1, 31), validation=zero_buys,
                quarantine_path=None) as result:  # fmt: skip
        assert result.report.customers == 3 and result.report.zero_amount_orders == 2
        assert result.report.customers_dropped == {
            "returned_in_full": 1, "only_returns": 1, "only_malformed_rows": 1, "only_after_cutoff": 1,
        }  # fmt: skip


def test_clv_validate_prints_dropped_customers_and_reads_period_flags(crafted_csv: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clv_models.cli import app

    runner = CliRunner()
    result = runner.invoke(app, [
        "validate", "--orders", str(crafted_csv), "--columns", CRAFTED_SPEC,
        "--as-of", "2024-01-31", "--max-bad-share", "1", "--quarantine", str(tmp_path / "q.parquet"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    # By default B's and G's orders worth 0 are purchases (validation.zero_amount = purchase).
    assert "customers with no usable purchase: 4 (returned_in_full: 1, only_returns: 1, " \
           "only_malformed_rows: 1, only_after_cutoff: 1)" in result.output  # fmt: skip

    weeks = tmp_path / "weeks"
    weeks.mkdir()
    for part, rows in enumerate((["a", "1", "5"], ["a", "3", "6"])):
        pd.DataFrame([rows], columns=["cust", "week", "amount"]).to_csv(weeks / f"part-{part}.csv", index=False)
    result = runner.invoke(app, [
        "validate", "--orders", f"{weeks}/*.csv", "--columns", "customer_id=cust,order_ts=week,amount=amount",
        "--period-unit", "week", "--period-origin", "2024-01-01", "--orders-out", str(tmp_path / "orders.csv"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(2 files)" in result.output and "order_ts from period numbers: week n = 2024-01-01" in result.output
    written = pd.read_csv(tmp_path / "orders.csv")
    assert written["order_ts"].tolist() == ["2024-01-01 00:00:00", "2024-01-15 00:00:00"]


def test_zero_amount_purchases_reach_the_churn_features(cdnow_master: pd.DataFrame, cdnow_csv: Path) -> None:
    """With validation.zero_amount = purchase the 68 customers who only bought for $0 are in the
    point-in-time features too, so train and score see the same customers as the RFM summary."""
    from clv_models.features.customer import customer_features

    zero_is_a_purchase = ValidationSettings(zero_amount="purchase")
    with ingest(cdnow_csv, columns=CDNOW_COLUMNS, validation=zero_is_a_purchase, quarantine_path=None) as result:
        table = customer_features(result, as_of=dt.date(1998, 6, 30), unit="D")
    assert len(table) == table["customer_id"].nunique() == cdnow_master["customer_id"].nunique() == 23_570
    only_zero = set(cdnow_master.groupby("customer_id")["dollar_value"].max().loc[lambda s: s == 0].index.astype(str))
    zero_rows = table[table["customer_id"].astype(str).isin(only_zero)]
    assert len(zero_rows) == 68 and (zero_rows["total_spend"] == 0).all()
