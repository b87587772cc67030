"""``order_products`` (decisions D43): the products of the canonical orders, kept beside them."""

from __future__ import annotations

import pandas as pd

from clv_models.config import ColumnMap
from clv_models.data.ingest import ingest
from clv_models.data.order_products import customer_products, has_order_products

COLUMNS = "customer_id=cust,order_id=invoice,order_ts=ts,quantity=qty,unit_price=price"
LINES = pd.DataFrame(
    [
        # cust, invoice, ts, qty, price, sku
        ("1", "A1", "2024-01-01 10:00:00", 2, 5.0, "P1"),
        ("1", "A1", "2024-01-01 10:00:00", 1, 5.0, " P2 "),  # trimmed
        ("1", "A1", "2024-01-01 10:00:00", 1, 5.0, "P1"),  # same product twice in one order: one row
        ("1", "A1", "2024-01-01 10:00:00", -1, 5.0, "P3"),  # handed back inside the order: not bought
        ("1", "A2", "2024-02-01 10:00:00", 1, 7.0, "P4"),
        ("1", "C3", "2024-02-02 10:00:00", -1, 3.0, "P4"),  # a partial credit note: no order, no products
        ("2", "B1", "2024-01-05 10:00:00", 1, 9.0, "P1"),
        ("2", "B1", "2024-01-05 10:00:00", 1, 1.0, ""),  # no product id: skipped
        ("3", "D1", "2024-01-06 10:00:00", 1, 4.0, "P5"),  # returned in full: not an order
        ("3", "C4", "2024-01-07 10:00:00", -1, 4.0, "P5"),
        (None, "E1", "2024-01-08 10:00:00", 1, 4.0, "P6"),  # guest: quarantined
        ("4", "F1", "2024-03-01 10:00:00", 1, 4.0, "P7"),  # after the cutoff
    ],
    columns=["cust", "invoice", "ts", "qty", "price", "sku"],
)


def test_products_of_the_canonical_orders_only() -> None:
    columns = ColumnMap.parse(COLUMNS + ",product_id=sku")
    with ingest(LINES, columns=columns, as_of=pd.Timestamp("2024-02-28").date(), threads=1) as ingested:
        rows = ingested.con.execute(
            "SELECT customer_id, order_id, CAST(order_ts AS VARCHAR), product_id FROM order_products ORDER BY ALL"
        ).fetchall()
        orders = ingested.con.execute("SELECT customer_id, order_id FROM orders ORDER BY ALL").fetchall()
        pairs = customer_products(ingested.con, start=pd.Timestamp("2024-01-02"))
    assert rows == [
        ("1", "A1", "2024-01-01 10:00:00", "P1"),
        ("1", "A1", "2024-01-01 10:00:00", "P2"),
        ("1", "A2", "2024-02-01 10:00:00", "P4"),
        ("2", "B1", "2024-01-05 10:00:00", "P1"),
    ]
    assert orders == [("1", "A1"), ("1", "A2"), ("2", "B1")]
    assert pairs.values.tolist() == [["1", "P4"], ["2", "P1"]]


def test_nothing_changes_without_a_product_column() -> None:
    with ingest(LINES, columns=ColumnMap.parse(COLUMNS), as_of=pd.Timestamp("2024-02-28").date(), threads=1) as plain:
        assert not has_order_products(plain.con)
        before = plain.orders_frame()
    columns = ColumnMap.parse(COLUMNS + ",product_id=sku")
    with ingest(LINES, columns=columns, as_of=pd.Timestamp("2024-02-28").date(), threads=1) as with_products:
        assert has_order_products(with_products.con)
        pd.testing.assert_frame_equal(with_products.orders_frame(), before)
