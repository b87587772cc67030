"""Cross-sell out of time on Online Retail: item-item cosine, association lift, popularity.

What is measured
----------------
1. Ingestion of the shipped Online Retail export (``ONLINE_RETAIL_COLUMNS`` plus
   ``product_id=StockCode``) into ``order_products`` (decisions D43): products of the canonical
   orders, returned lines and rejected orders left out.
2. Distinct (customer, product) pairs of orders before ``--cutoff`` (a date: orders before that
   day) fit each method; the same customers' products bought for the first time in the
   ``--window`` days from the cutoff on are the truth (:mod:`clv_models.evaluation.cross_sell`).
3. Per method: hit rate@k and recall@k for k = 5, 10, fit time and recommendation time.

Postage, fees and manual adjustments (``--exclude``) are never recommended by any method.

Reproduce::

    .venv/bin/python benchmarks/cross_sell.py
    .venv/bin/python benchmarks/cross_sell.py --cutoff 2011-06-01 --window 90
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from clv_models.datasets import ONLINE_RETAIL_NOT_PRODUCTS

CANDIDATES = (
    ("popularity", {}),
    ("cosine", {"neighbours": 10}),
    ("cosine", {"neighbours": 20}),
    ("cosine", {"neighbours": 50}),
    ("cosine", {"neighbours": 100}),
    ("cosine", {"neighbours": 500}),
    ("lift", {"neighbours": 100, "min_pair_customers": 3}),
    ("lift", {"neighbours": 100, "min_pair_customers": 10}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutoff", default="2011-09-09")
    parser.add_argument("--window", type=int, default=90, help="days judged after the cutoff")
    parser.add_argument("--exclude", default=",".join(ONLINE_RETAIL_NOT_PRODUCTS))
    args = parser.parse_args()

    from clv_models.config import ColumnMap
    from clv_models.data.ingest import ingest
    from clv_models.data.order_products import customer_products
    from clv_models.datasets import ONLINE_RETAIL_COLUMNS, online_retail_path
    from clv_models.evaluation.cross_sell import EVAL_KS, hit_rate_and_recall, new_purchases
    from clv_models.models.affinity import ProductAffinity

    cutoff = dt.datetime.fromisoformat(args.cutoff)
    end = cutoff + dt.timedelta(days=args.window)
    exclude = tuple(filter(None, args.exclude.split(",")))
    columns = ColumnMap.parse(ONLINE_RETAIL_COLUMNS + ",product_id=StockCode")
    with ingest(str(online_retail_path()), columns=columns) as ingested:
        before = customer_products(ingested.con, end=cutoff)
        after = customer_products(ingested.con, start=cutoff, end=end)
    truth = new_purchases(before, after)
    judged = before[before["customer_id"].isin(truth)]
    print(
        f"Online Retail: fit on orders before {cutoff.date()} ({before['customer_id'].nunique():,} customers, "
        f"{before['product_id'].nunique():,} products, {len(before):,} pairs); judged on "
        f"{len(truth):,} customers with a new product in [{cutoff.date()}, {end.date()})"
    )
    header = "| method | " + " | ".join(f"hit rate@{k} | recall@{k}" for k in EVAL_KS) + " | fit s | recommend s |"
    print(header)
    print("|" + "---|" * (3 + 2 * len(EVAL_KS)))
    for method, params in CANDIDATES:
        started = time.perf_counter()
        model = ProductAffinity(method, exclude=exclude, **params).fit(before)
        fitted = time.perf_counter()
        recommended = model.recommend_many(judged, max(EVAL_KS))
        done = time.perf_counter()
        cells = []
        for k in EVAL_KS:
            hit, recall = hit_rate_and_recall(recommended, truth, k)
            cells += [f"{hit:.3f}", f"{recall:.3f}"]
        label = method + (f" ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")
        print(f"| {label} | " + " | ".join(cells) + f" | {fitted - started:.2f} | {done - fitted:.2f} |")


if __name__ == "__main__":
    main()
