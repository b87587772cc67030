"""Which products each canonical order holds: the table ``order_products`` (decisions D43).

Ingestion sums the lines of an order into one amount, so the products are gone from ``orders``.
When ``product_id`` is mapped, this keeps them beside it, one row per distinct
``(customer_id, order_id, product_id)`` with the order's ``order_ts``:

* only lines that survived validation (no quarantine reason on the line or its order) and with a
  positive amount (a negative line inside an order is a product handed back, not bought);
* only orders of the canonical ``orders`` table (credit notes and rejected orders have none);
* product ids are the source text, trimmed; empty ids are skipped.

Without a mapped product column nothing is created and ingestion is exactly as before.
"""

from __future__ import annotations

from typing import Any

ORDER_PRODUCTS_TABLE = "order_products"


def order_products_sql(product_column: str) -> str:
    """DuckDB SQL of ``order_products`` from the final ``lines``, ``raw_source`` and ``orders``."""
    from clv_models.data.sources import RAW_VIEW, ROW_COLUMN, quote_ident

    product = f"NULLIF(trim(CAST(r.{quote_ident(product_column)} AS VARCHAR)), '')"
    return f"""
        SELECT DISTINCT o.customer_id, o.order_id, o.order_ts, p.product_id
        FROM (
            SELECT l.customer_id, l.order_id, {product} AS product_id
            FROM lines l JOIN {RAW_VIEW} r ON r.{ROW_COLUMN} = l.row_number
            WHERE l.reason IS NULL AND l.amount > 0
        ) p
        JOIN orders o ON o.customer_id = p.customer_id AND o.order_id = p.order_id
        WHERE p.product_id IS NOT NULL
    """


def build_order_products(con: Any, product_column: str | None) -> bool:
    """Create ``order_products`` in ``con`` when a product column is mapped; returns whether it did."""
    if not product_column:
        return False
    con.execute(f"CREATE TEMP TABLE {ORDER_PRODUCTS_TABLE} AS {order_products_sql(product_column)}")
    return True


def has_order_products(con: Any) -> bool:
    """Whether ingestion kept the products of the orders (a product column was mapped)."""
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [ORDER_PRODUCTS_TABLE]
    ).fetchall()
    return bool(rows[0][0])


def customer_products(con: Any, *, start: Any = None, end: Any = None) -> Any:
    """Distinct ``(customer_id, product_id)`` pairs of orders with ``start <= order_ts < end``
    (timestamps; each bound optional), sorted by customer then product; a DataFrame."""
    where, params = [], []
    if start is not None:
        where.append("order_ts >= ?")
        params.append(start)
    if end is not None:
        where.append("order_ts < ?")
        params.append(end)
    condition = f"WHERE {' AND '.join(where)}" if where else ""
    return con.execute(
        f"SELECT DISTINCT customer_id, product_id FROM {ORDER_PRODUCTS_TABLE} {condition} "
        "ORDER BY customer_id, product_id",
        params,
    ).df()
