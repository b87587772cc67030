"""``recommended_products`` in the scores (decisions D43).

A scorer trained with products (``product_id`` mapped) holds a fitted
:class:`~clv_models.models.affinity.ProductAffinity`. For each customer whose
``next_best_action`` code is one of ``xsell.actions`` (default ``cross_sell_bundles``), the column
holds the top ``xsell.k`` products they have not bought, ids joined by ``|`` in rank order
(e.g. ``22423|85123A|47566``); null for every other customer. It is computed from the customer's
own products up to the cutoff and the stored model only, so a customer gets the same answer
alone, in any chunk or in the whole base. Nothing is fitted here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.scorer import CustomerScorer

XSELL_COLUMN = "recommended_products"
#: The input warning of a run whose scorer recommends but whose orders map no product (both engines).
NO_PRODUCTS_WARNING = (
    "the model recommends products but the scoring orders map no product_id: "
    f"{XSELL_COLUMN} is empty (add --columns product_id=<source column>)"
)


def affinity_of(scorer: CustomerScorer) -> Any:
    """The scorer's product-affinity model, or None (scorers trained without products, or
    before D43)."""
    return getattr(scorer.models, "affinity", None)


def with_cross_sell_column(columns: list[str], scorer: CustomerScorer, chosen: tuple[str, ...]) -> list[str]:
    """The output columns plus ``recommended_products`` when the scorer recommends and the user
    did not choose columns (``scoring.columns``) without it."""
    if affinity_of(scorer) is None or XSELL_COLUMN in columns or (chosen and XSELL_COLUMN not in chosen):
        return columns
    return [*columns, XSELL_COLUMN]


def chunk_products(con: Any, customer_ids: Any) -> pd.DataFrame | None:
    """Distinct ``(customer_id, product_id)`` of the given customers' canonical orders (all up to
    the ingestion cutoff), or None when ingestion kept no products."""
    import pandas as pd

    from clv_models.data.order_products import ORDER_PRODUCTS_TABLE, has_order_products

    if not has_order_products(con):
        return None
    wanted = pd.DataFrame({"customer_id": pd.Series(customer_ids, dtype=object).astype(str).unique()})
    con.register("xsell_customers", wanted)
    try:
        return con.execute(
            f"SELECT DISTINCT p.customer_id, p.product_id FROM {ORDER_PRODUCTS_TABLE} p "
            "JOIN xsell_customers c ON c.customer_id = p.customer_id ORDER BY 1, 2"
        ).df()
    finally:
        con.unregister("xsell_customers")


def products_from_lists(customer_ids: Any, lists: Any) -> pd.DataFrame:
    """Distinct ``(customer_id, product_id)`` rows from one list of product ids per customer (the
    Spark engine's per-customer arrays; a missing list: no products), in the given order.

    The same pairs :func:`chunk_products` reads for those customers, so :func:`recommended_products`
    gives the same answer on either engine."""
    import pandas as pd

    customers: list[str] = []
    products: list[str] = []
    for customer, items in zip(customer_ids, lists, strict=True):
        if items is None or isinstance(items, float):  # null: a customer without kept products
            continue
        for product in dict.fromkeys(str(p) for p in items):
            customers.append(str(customer))
            products.append(product)
    return pd.DataFrame(
        {"customer_id": pd.Series(customers, dtype=object), "product_id": pd.Series(products, dtype=object)}
    )


def recommended_products(codes: pd.DataFrame, products: pd.DataFrame | None, scorer: CustomerScorer) -> np.ndarray:
    """``recommended_products`` for the rows of ``codes`` (scores with action codes, not labels):
    ``|``-joined ids for cross-sell actions, None elsewhere (and everywhere without a model or
    products)."""
    from clv_models.models.affinity import join_products

    out = np.full(len(codes), None, dtype=object)
    model = affinity_of(scorer)
    if model is None or products is None:
        return out
    settings = scorer.settings.xsell
    wanted = np.isin(codes["next_best_action"].to_numpy(dtype=object), list(settings.actions))
    if not wanted.any():
        return out
    ids = codes["customer_id"].astype(str).to_numpy(dtype=object)
    mine = products[products["customer_id"].astype(str).isin(set(ids[wanted]))]
    ranked = model.recommend_many(mine, settings.k)  # a customer's answer depends on them alone
    for row in np.flatnonzero(wanted):
        # A customer with no known product (not in ``products``) gets the most popular ones.
        out[row] = join_products(ranked[ids[row]] if ids[row] in ranked else model.recommend([], settings.k))
    return out
