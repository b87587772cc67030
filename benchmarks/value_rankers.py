"""Out-of-time value rankers across shops: past spend, BTYD CLV and the learned value model.

What is measured
----------------
For each shop, in this process, through the library (``clv_models.training.value``):

1. ingestion of the shop's export (lenient validation: every bad line is quarantined, none fails
   the run), the churn window of ``build_churn_dataset`` (decisions D33) for the BTYD churn
   features, and the value snapshots of ``build_value_dataset``: the value window W is the longest
   whole-week window ≤ 365 days leaving 6 training cutoffs (or ``--window``), labels = revenue net
   of returns in (cutoff, cutoff + W];
2. ``train_value`` once per ``--methods`` entry (``two_part``, ``tweedie``) and ``--boost`` entry
   (``btyd``, ``none``), all on the same snapshots, ``--trials`` Optuna trials per part, 4 folds,
   every other setting at its default;
3. on the test snapshot (the outcome window after every other, every customer known at its
   cutoff), each ranker's normalised Gini, Spearman, top-decile revenue capture, decile MAPE and
   aggregate error (``value_<ranker>_<metric>``), the ranker ``choose_ranker`` picks for the tiers
   and why, the model's calibration factor and the wall time of the training.

Rankers: ``past_spend_total`` (``total_spend``), ``past_spend_recent`` (``spend_90d`` or
``spend_180d``, whichever ranks the validation snapshot better), ``btyd_clv`` (BG/NBD E[X(W)] ×
Gamma-Gamma E[order value] of the fit at the cutoff), ``model`` (``ValueRegressor``).

The shops
---------
* ``cdnow``: ``load_cdnow_master()`` (lifetimes' CDNOW master, 23,570 customers, 18 months);
* ``online_retail``: the shipped UCI Online Retail export (``online_retail_path()``,
  ``ONLINE_RETAIL_COLUMNS``), about 4,300 customers with an id, 12 months;
* ``retail``, ``weekly_grocery``, ``one_time``, ``wholesale``: ``simulate_orders(n, seed=7,
  profile=…)``, the observed export only (two years); sizes in :data:`SIMULATED`.

Reproduce::

    .venv/bin/python benchmarks/value_rankers.py                         # all shops, two_part, 10 trials
    .venv/bin/python benchmarks/value_rankers.py --shops retail,one_time --methods two_part,tweedie \\
        --boost btyd,none --trials 8 --json-out /tmp/value_rankers.json --markdown-out /tmp/value_table.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

SHOPS = ("cdnow", "online_retail", "retail", "weekly_grocery", "one_time", "wholesale")
SIMULATED = {"retail": 6_000, "weekly_grocery": 2_000, "one_time": 8_000, "wholesale": 600}
SEED = 7
RANKER_ORDER = ("model", "btyd_clv", "past_spend_recent", "past_spend_total")
SHOWN = ("gini", "spearman", "top_decile_capture", "aggregate_error")


def ingest_shop(name: str) -> Any:
    """An open ingestion (context manager) of the shop's export."""
    from clv_models.config import ColumnMap, ValidationSettings
    from clv_models.data.ingest import ingest
    from clv_models.datasets import (
        CDNOW_COLUMNS,
        ONLINE_RETAIL_COLUMNS,
        load_cdnow_master,
        online_retail_path,
        simulate_orders,
    )

    lenient = ValidationSettings(max_bad_share=1.0)
    if name == "cdnow":
        return ingest(load_cdnow_master(), columns=ColumnMap.parse(CDNOW_COLUMNS), validation=lenient)
    if name == "online_retail":
        return ingest(online_retail_path(), columns=ColumnMap.parse(ONLINE_RETAIL_COLUMNS), validation=lenient)
    shop = simulate_orders(SIMULATED[name], seed=SEED, profile=name)
    return ingest(shop.orders, columns=ColumnMap.parse(shop.columns), validation=lenient)


def run_shop(name: str, methods: list[str], boosts: list[str], trials: int, window: int | None) -> list[dict[str, Any]]:
    from clv_models.config import ChurnSettings
    from clv_models.training.value import ValueTrainingSettings, build_value_dataset, train_value

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with ingest_shop(name) as ingested:
        churn = ChurnSettings()
        base = ValueTrainingSettings(n_trials=trials, window_days=window)
        dataset = build_value_dataset(ingested, churn, settings=base)
        built = time.perf_counter() - started
        print(
            f"\n## {name}: {ingested.report.cutoff} data end, W = {dataset.window_days} days "
            f"(churn window {dataset.churn_window_days}), {len(dataset.plan.train)} training cutoffs, "
            f"{len(dataset.train):,} training rows, {len(dataset.test):,} test customers "
            f"({(dataset.test['future_orders'] > 0).mean():.1%} buy); snapshots in {built:.1f} s",
            flush=True,
        )
        for method in methods:
            for boost in boosts:
                settings = ValueTrainingSettings(
                    n_trials=trials, window_days=dataset.window_days, method=method,
                    boost_from=None if boost == "none" else boost,
                )  # fmt: skip
                clock = time.perf_counter()
                result = train_value(ingested, churn, settings=settings, dataset=dataset)
                seconds = time.perf_counter() - clock
                table = result.comparison
                print(f"\n### {name} — method {method}, boost_from {boost}: {seconds:.0f} s; tiers: {result.shipped}")
                print(table[list(SHOWN)].to_markdown(floatfmt=".4f"))
                print(f"reason: {result.choice.reason}")
                rows.append(
                    {
                        "shop": name,
                        "method": method,
                        "boost_from": boost,
                        "window_days": dataset.window_days,
                        "churn_window_days": dataset.churn_window_days,
                        "train_cutoffs": len(dataset.plan.train),
                        "train_rows": len(dataset.train),
                        "test_customers": len(dataset.test),
                        "test_buyer_share": float((dataset.test["future_orders"] > 0).mean()),
                        "recent_column": result.recent_column,
                        "calibration_factor": float(result.model.calibration_factor_),
                        "chosen": result.shipped,
                        "reason": result.choice.reason,
                        "seconds": seconds,
                        "metrics": {k: float(v) for k, v in result.metrics.items()},
                    }
                )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """One table: per shop (and variant when several ran), each ranker's Gini / Spearman / capture."""
    variants = {(r["method"], r["boost_from"]) for r in rows}
    head = ["shop", *(["variant"] if len(variants) > 1 else []), "W (days)", "test customers", "buy"]
    for ranker in RANKER_ORDER:
        head.append(f"{ranker}: Gini / Spearman / top-10 % capture")
    head += ["model aggregate error (before calibration)", "tiers rank by"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m = r["metrics"]
        cells = [r["shop"], *([f"{r['method']}, boost {r['boost_from']}"] if len(variants) > 1 else []),
                 str(r["window_days"]), f"{r['test_customers']:,}", f"{r['test_buyer_share']:.0%}"]  # fmt: skip
        best = max(RANKER_ORDER, key=lambda k: m[f"value_{k}_gini"])
        for ranker in RANKER_ORDER:
            text = (
                f"{m[f'value_{ranker}_gini']:.3f} / {m[f'value_{ranker}_spearman']:.3f} / "
                f"{m[f'value_{ranker}_top_decile_capture']:.3f}"
            )
            cells.append(f"**{text}**" if ranker == best else text)
        raw = m.get("value_model_raw_aggregate_error", float("nan"))
        cells += [f"{m['value_model_aggregate_error']:+.3f} ({raw:+.3f})", r["chosen"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shops", default=",".join(SHOPS))
    parser.add_argument("--methods", default="two_part")
    parser.add_argument("--boost", default="btyd")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--window", type=int, default=None, help="value window in days (default: the rule)")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--markdown-out", type=Path)
    args = parser.parse_args(argv)

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    print(f"load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    rows: list[dict[str, Any]] = []
    for shop in args.shops.split(","):
        try:
            rows += run_shop(shop, args.methods.split(","), args.boost.split(","), args.trials, args.window)
        except Exception as exc:  # one shop's failure must not hide the others
            print(f"\n## {shop}: failed: {type(exc).__name__}: {exc}", flush=True)
        if args.json_out:
            args.json_out.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    table = markdown(rows) if rows else "(no shop finished)\n"
    print("\n" + table)
    if args.markdown_out:
        args.markdown_out.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
