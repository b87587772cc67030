"""Globs, directories and Hive-partitioned trees read as one source, and every missing column at once.

A simulated export (``clv_models.datasets.simulate_orders``: invoice lines with credit notes,
exact duplicate lines and guest checkouts) is written once as one file and once split by month
into CSV files, Parquet parts and a Hive tree. Every multi-file source must give what the one
concatenated file gives: the same canonical orders row for row, the same reasons per row, the
same quarantine (source row numbers included), also without an order id, where a row's number
is its order id.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clv_models.config import ColumnMap, SourceSettings, ValidationSettings
from clv_models.data import ingest
from clv_models.errors import ClvInputError

WITH_ORDER_ID = ColumnMap.parse(
    "customer_id=customer_id,order_id=invoice_id,order_ts=invoice_ts,quantity=quantity,unit_price=unit_price"
)
WITHOUT_ORDER_ID = WITH_ORDER_ID.model_copy(update={"order_id": None})
HIVE_COLUMNS = ["year", "month"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from clv_models.datasets import simulate_orders

    root = tmp_path_factory.mktemp("exports")
    shop = simulate_orders(600, seed=5, profile="retail", days=365)
    lines = shop.orders
    lines.to_csv(root / "all.csv", index=False)
    month = lines["invoice_ts"].dt.strftime("%Y-%m")
    (root / "csv").mkdir()
    (root / "parts").mkdir()
    for index, (name, part) in enumerate(lines.groupby(month, sort=True)):
        part.to_csv(root / "csv" / f"orders-{name}.csv", index=False)
        # Unpadded part numbers: part-10 must come after part-9 (natural order), not after part-1.
        part.to_parquet(root / "parts" / f"part-{index}.parquet", index=False)
        year, number = name.split("-")
        hive = root / "hive" / f"year={year}" / f"month={number}"
        hive.mkdir(parents=True)
        part.to_parquet(hive / "part-0.parquet", index=False)
        hive_csv = root / "hive_csv" / f"year={year}" / f"month={number}"
        hive_csv.mkdir(parents=True)
        # One month in another encoding: transcoded apart, its partition columns kept.
        part.to_csv(hive_csv / "part-0.csv", index=False, encoding="cp1252" if number == "03" else "utf-8")
    # What writers leave beside their parts: skipped (a name starting with '_' or '.', or 0 bytes).
    (root / "parts" / "_SUCCESS").write_bytes(b"")
    (root / "parts" / ".part-0.parquet.crc").write_bytes(b"crc")
    (root / "parts" / "part-99.parquet").write_bytes(b"")
    return {"root": root, "lines": lines, "months": month.nunique()}


def _ingest(path: str | Path, columns: ColumnMap, quarantine: Path | None = None):
    return ingest(
        SourceSettings(path=str(path), columns=columns),
        validation=ValidationSettings(max_bad_share=1.0),
        quarantine_path=quarantine,
    )


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Raw columns as the text a CSV holds (Parquet keeps types; the values must be the same)."""
    return frame.astype(object).where(frame.notna(), None).map(lambda v: None if v is None else str(v))


def _read(path: str | Path, columns: ColumnMap) -> tuple[pd.DataFrame, pd.DataFrame, dict, int]:
    with _ingest(path, columns) as result:
        report = result.report
        quarantine = _as_text(result.quarantine_frame().drop(columns=HIVE_COLUMNS, errors="ignore"))
        counts = {"rows_read": report.rows_read, "duplicate_rows": report.duplicate_rows, **report.reason_counts}
        return result.orders_frame(), quarantine, counts, report.source_files


@pytest.mark.parametrize("columns", [WITH_ORDER_ID, WITHOUT_ORDER_ID], ids=["order_id", "no_order_id"])
def test_globs_directories_and_hive_trees_read_like_one_file(exports: dict, columns: ColumnMap) -> None:
    root, lines = exports["root"], exports["lines"]
    expected_orders, expected_quarantine, expected_reasons, files = _read(root / "all.csv", columns)
    assert files == 1
    # Independent numbers: every raw line read, every guest line set aside, every exact repeat seen.
    assert expected_reasons["rows_read"] == len(lines)
    assert expected_reasons["missing_customer_id"] == lines["customer_id"].isna().sum()
    assert expected_reasons["duplicate_rows"] == lines[lines["customer_id"].notna()].duplicated().sum() > 0

    sources = [
        f"{root}/csv/*.csv",  # a glob of CSV files
        f"{root}/csv/",  # a directory of CSV files
        root / "parts",  # a directory of Parquet parts (with _SUCCESS, a .crc and an empty part)
        root / "hive",  # a Hive tree of Parquet files
        f"{root}/hive/year=*/month=*/*.parquet",  # a glob over a Hive tree
        root / "hive_csv",  # a Hive tree of CSV files, one of them cp1252
    ]
    for source in sources:
        orders, quarantine, reasons, files = _read(source, columns)
        assert files == exports["months"], source
        pd.testing.assert_frame_equal(orders, expected_orders, obj=str(source))
        assert reasons == expected_reasons, source
        pd.testing.assert_frame_equal(quarantine, expected_quarantine, obj=str(source))


def test_hive_keys_become_columns_and_the_quarantine_is_named_after_the_source(exports: dict, tmp_path: Path) -> None:
    root = exports["root"]
    target = tmp_path / "q" / "{source}.parquet"
    with _ingest(root / "hive", WITH_ORDER_ID, quarantine=target) as result:
        assert result.quarantine_path == tmp_path / "q" / "hive.parquet"
        assert {"year", "month"} <= set(result.source.column_types)
        written = pd.read_parquet(result.quarantine_path)
    # The partition of a quarantined row is the month of its timestamp.
    stamp = pd.to_datetime(written["invoice_ts"])
    assert (stamp.dt.month == written["month"].astype(int)).all()
    with _ingest(f"{root}/csv/orders-*.csv", WITH_ORDER_ID, quarantine=target) as result:
        assert result.quarantine_path == tmp_path / "q" / "orders.parquet"
    with _ingest(f"{root}/csv/*.csv", WITH_ORDER_ID, quarantine=target) as result:
        assert result.quarantine_path == tmp_path / "q" / "csv.parquet"


def _one_line_error(path: str | Path, columns: ColumnMap = WITH_ORDER_ID) -> str:
    with pytest.raises(ClvInputError) as caught:
        _ingest(path, columns)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_file_set_errors_are_one_line(exports: dict, tmp_path: Path) -> None:
    lines = exports["lines"]
    message = _one_line_error(f"{tmp_path}/nothing-*.csv")
    assert message.startswith(f"{tmp_path}/nothing-*.csv: no file matches this pattern")

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    lines.iloc[:50].to_csv(mixed / "a.csv", index=False)
    lines.iloc[50:100].rename(columns={"unit_price": "price"}).to_csv(mixed / "b.csv", index=False)
    message = _one_line_error(mixed)
    assert "the files do not have the same columns" in message
    assert f"{mixed / 'b.csv'} lacks 'unit_price' and has 'price' in addition compared with {mixed / 'a.csv'}" in (
        message
    )

    parquet_too = tmp_path / "kinds"
    parquet_too.mkdir()
    lines.iloc[:50].to_csv(parquet_too / "a.csv", index=False)
    lines.iloc[50:100].to_parquet(parquet_too / "b.parquet", index=False)
    message = _one_line_error(parquet_too)
    assert "mixes CSV" in message and "b.parquet" in message and f"--orders '{parquet_too}/*.parquet'" in message

    (parquet_too / "notes.md").write_text("not data")
    assert "notes.md" in _one_line_error(parquet_too)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "_SUCCESS").write_bytes(b"")
    assert "holds no data file" in _one_line_error(empty)


def test_every_missing_column_is_named_at_once(exports: dict) -> None:
    columns = ColumnMap.parse(
        "customer_id=CustomerId,order_id=invoice_id,order_ts=Date,quantity=qty,unit_price=unit_price"
    )
    message = _one_line_error(exports["root"] / "all.csv", columns)
    assert "3 mapped columns not found" in message
    assert "'CustomerId' (mapped to customer_id; did you mean 'customer_id'?)" in message
    assert "'Date' (mapped to order_ts)" in message
    assert "'qty' (mapped to quantity; did you mean 'quantity'?)" in message
    assert message.endswith("fix with --columns customer_id=<column>,order_ts=<column>,quantity=<column>")
