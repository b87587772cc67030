"""Calibration that survives a season shift: churn variants judged on the test snapshot (D46).

For each shop, ``train_churn`` (the churn part of ``clv train`` only) is run once per variant
and the classifier's test-snapshot AUC, Brier and ECE are printed, beside the best baseline per
metric. The test snapshot's outcome window is the last one; the calibration (Platt, on the
validation snapshot one window earlier) never saw it. Variants:

* ``default``: ``churn.season_features = "off"``, ``season_shift = "off"`` (the classifier as
  before D46), the schedule of the settings (12 cutoffs, 30 days);
* ``calendar``: ``season_features = "on"`` with the same schedule (no shift);
* ``calendar_Nc``: ``season_features = "on"`` and ``train_cutoffs = N`` (reaching further back);
* ``season_shift``: ``season_shift = "auto"``, no calendar features: the shift as ``clv train``
  computes it (``training.churn.season_shift``: rates from ``features.churn.churn_rates``);
* ``prior_shift``: the ``default`` classifier, its calibrated log-odds shifted by the change of
  the churn rate's log-odds between the calibration and test cutoffs' dates one year earlier
  (``logit r(test − 1y) − logit r(validation − 1y)``, observed labels; no shift when the history
  does not reach that far);
* ``auto``: the product default (``season_features = "auto"``).

Also printed: churn rates at the validation and test cutoffs (the base-rate shift) and seconds.

    PYTHONPATH=src .venv/bin/python benchmarks/season_calibration.py                  # all shops
    PYTHONPATH=src .venv/bin/python benchmarks/season_calibration.py --shops seasonal --variants default,calendar
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Simulated shops (seed 7) and their customers, as in shops_across_rhythms.py.
SIMULATED = {"seasonal": 10_000, "retail": 20_000, "one_time": 20_000, "wholesale": 2_000, "weekly_grocery": 4_000}
SHOPS = ("seasonal", "retail", "cdnow", "online_retail")
VARIANTS = ("default", "prior_shift", "season_shift", "calendar", "calendar_24c", "auto")


def source(shop: str, work: Path) -> tuple[str, Any]:
    from clv_models.config import ColumnMap
    from clv_models.datasets import ONLINE_RETAIL_COLUMNS, load_cdnow_master, online_retail_path, simulate_orders

    if shop == "online_retail":
        return str(online_retail_path()), ColumnMap.parse(ONLINE_RETAIL_COLUMNS)
    if shop == "cdnow":
        path = work / "cdnow.parquet"
        load_cdnow_master().to_parquet(path)
        return str(path), ColumnMap.parse("customer_id=customer_id,order_ts=order_ts,amount=amount")
    customers = SIMULATED[shop]
    simulated = simulate_orders(customers, seed=7, profile=shop)
    path = simulated.write(work / f"{shop}.parquet")
    return str(path), ColumnMap.parse(simulated.columns)


def logit(p: np.ndarray | float) -> Any:
    q = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(q) - np.log1p(-q)


def year_earlier_shift(ingested: Any, result: Any) -> tuple[float, str]:
    """logit r(test − 1y) − logit r(validation − 1y) from labelled snapshots a year earlier."""
    from clv_models.features.churn import LABEL, churn_snapshots

    plan = result.dataset.plan
    first = ingested.con.execute("SELECT min(order_ts) FROM orders").fetchall()[0][0].date()
    dates = [plan.validation - dt.timedelta(days=365), plan.test - dt.timedelta(days=365)]
    if dates[0] < first + dt.timedelta(days=30):
        return 0.0, f"no shift: {dates[0]} is before the history"
    frame = churn_snapshots(ingested, dates, window_days=plan.window_days)
    rates = frame.groupby("cutoff")[LABEL].mean()
    shift = float(logit(rates[dates[1]]) - logit(rates[dates[0]]))
    return shift, f"rates a year earlier {rates[dates[0]]:.3f} -> {rates[dates[1]]:.3f}, logit shift {shift:+.3f}"


def run_shop(shop: str, variants: list[str], trials: int, work: Path) -> list[dict[str, Any]]:
    from clv_models.config import ChurnSettings
    from clv_models.data import ingest
    from clv_models.evaluation.churn_metrics import compare_scores
    from clv_models.features.churn import LABEL
    from clv_models.training.churn import BASELINES, base_rate_shift_notice, train_churn

    path, columns = source(shop, work)
    rows: list[dict[str, Any]] = []
    default_result = None
    with ingest(path, columns=columns) as ingested:
        for variant in variants:
            if variant == "prior_shift":
                if default_result is None:
                    continue
                shift, note = year_earlier_shift(ingested, default_result)
                score = default_result.test_scores["model"]
                shifted = 1.0 / (1.0 + np.exp(-(logit(score) + shift)))
                outcome = default_result.dataset.test[LABEL].to_numpy()
                table = compare_scores({"model": shifted}, outcome)
                rows.append(_row(shop, variant, table.loc["model"], default_result, 0.0, note))
                print(json.dumps(rows[-1]), flush=True)
                continue
            update: dict[str, Any] = {"n_trials": trials}
            if variant == "default":
                update.update(season_features="off", season_shift="off")
            elif variant.startswith("calendar"):
                update.update(season_features="on", season_shift="off")
                if variant != "calendar":
                    update["train_cutoffs"] = int(variant.split("_")[1].rstrip("c"))
            elif variant == "season_shift":
                update.update(season_features="off", season_shift="auto")
            started = time.perf_counter()
            result = train_churn(ingested, ChurnSettings(**update))
            seconds = time.perf_counter() - started
            if variant == "default":
                default_result = result
            season = result.dataset.season
            note = (season.rule if season else "") + f"; {len(result.dataset.plan.train)} training cutoffs"
            if result.season_shift is not None:
                note += f"; season shift {result.season_shift.evaluation:+.3f} ({result.season_shift.rule})"
            notice = base_rate_shift_notice(result)
            if notice:
                note += f"; notice printed: {notice}"
            row = _row(shop, variant, result.comparison.loc["model"], result, seconds, note)
            best = result.comparison.loc[list(BASELINES)]
            row["best_baseline"] = {
                "auc": round(float(best["auc"].max()), 4),
                "brier": round(float(best["brier"].min()), 4),
                "ece": round(float(best["ece"].min()), 4),
            }
            row["not_worse"] = result.not_worse("model") or "yes"
            row["shipped"] = result.shipped
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _row(shop: str, variant: str, metrics: Any, result: Any, seconds: float, note: str) -> dict[str, Any]:
    from clv_models.features.churn import LABEL

    dataset = result.dataset
    return {
        "shop": shop,
        "variant": variant,
        "auc": round(float(metrics["auc"]), 4),
        "brier": round(float(metrics["brier"]), 4),
        "ece": round(float(metrics["ece"]), 4),
        "window_days": dataset.plan.window_days,
        "rate_validation": round(float(dataset.validation[LABEL].mean()), 4),
        "rate_test": round(float(dataset.test[LABEL].mean()), 4),
        "mean_score_test": round(float(np.mean(result.test_scores["model"])), 4) if variant != "prior_shift" else None,
        "seconds": round(seconds, 1),
        "note": note,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", default=",".join(SHOPS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="clv-season-") as tmp:
        for shop in args.shops.split(","):
            rows += run_shop(shop, args.variants.split(","), args.trials, Path(tmp))
    print("| shop | variant | AUC | Brier | ECE | churn rate validation → test | s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['shop']} | {r['variant']} | {r['auc']:.4f} | {r['brier']:.4f} | {r['ece']:.4f} | "
            f"{r['rate_validation']:.1%} → {r['rate_test']:.1%} | {r['seconds']:.0f} |"
        )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
