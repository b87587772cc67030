"""Out-of-time quality of the churn classifier against the BTYD baselines on CDNOW and Online Retail.

    python benchmarks/churn_quality.py                         # both datasets, settings from ChurnSettings()
    python benchmarks/churn_quality.py --dataset cdnow --set n_trials=10
    python benchmarks/churn_quality.py --out /tmp/clv-churn-quality   # reports land there (default)

Prints, per dataset, the snapshot plan and the comparison table (model and baselines on the test
snapshot), and writes each dataset's churn report (Markdown, metrics JSON, figures) under --out.
Online Retail ships with the package (clv_models.datasets); CDNOW ships with lifetimes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tomllib
from importlib import resources
from pathlib import Path

import pandas as pd

from clv_models.config import ChurnSettings, ColumnMap
from clv_models.data.ingest import ingest
from clv_models.training.churn import comparison_markdown, summarise_comparison, train_churn, write_churn_report

ONLINE_RETAIL_COLUMNS = (
    "customer_id=CustomerID,order_id=InvoiceNo,order_ts=InvoiceDate,quantity=Quantity,unit_price=UnitPrice,"
    "country=Country,category=StockCode"
)


def cdnow_orders() -> pd.DataFrame:
    path = resources.files("lifetimes.datasets").joinpath("CDNOW_master.txt")
    master = pd.read_csv(str(path), sep=r"\s+", dtype={"customer_id": str, "date": str})
    return pd.DataFrame(
        {
            "customer_id": master["customer_id"],
            "order_ts": pd.to_datetime(master["date"], format="%Y%m%d"),
            "amount": master["dollar_value"].astype(float),
        }
    )


def online_retail_path() -> Path:
    from clv_models.datasets import online_retail_path as shipped

    return shipped()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["cdnow", "online_retail", "both"], default="both")
    parser.add_argument("--set", action="append", default=[], help="ChurnSettings override, e.g. n_trials=10")
    parser.add_argument("--out", default="/tmp/clv-churn-quality")
    args = parser.parse_args()
    overrides = tomllib.loads("\n".join(args.set)) if args.set else {}
    settings = ChurnSettings(**overrides)
    print(f"settings: {settings.model_dump()}")
    names = ["cdnow", "online_retail"] if args.dataset == "both" else [args.dataset]
    results = {}
    for name in names:
        source = cdnow_orders() if name == "cdnow" else online_retail_path()
        columns = None if name == "cdnow" else ColumnMap.parse(ONLINE_RETAIL_COLUMNS)
        started = time.perf_counter()
        with ingest(source, columns=columns) as ingested:
            result = train_churn(ingested, settings)
        elapsed = time.perf_counter() - started
        written = write_churn_report(result, Path(args.out) / name)
        plan = result.dataset.plan
        print(f"\n## {name}: {elapsed:.0f} s; train cutoffs {[d.isoformat() for d in plan.train]} "
              f"({len(result.dataset.train):,} rows), validation {plan.validation}, test {plan.test} "
              f"({len(result.dataset.test):,} customers); report {written['report']}")
        print(comparison_markdown(result.comparison))
        print(f"raw ECE {result.raw_ece:.4f}; beats best BTYD baseline: {result.beats_btyd}")
        results[name] = result
    print("\n" + summarise_comparison(results).to_markdown(floatfmt=".4f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
