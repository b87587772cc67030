"""`clv train` then `clv score` on shops of different rhythms, through the command line only.

What is measured
----------------
For each shop, in a fresh temporary directory (MLflow store, quarantine, scores):

1. ``clv validate --orders-out``: the canonical orders clv keeps (read here for the repeat gaps
   and the days since the last purchase);
2. ``clv train`` with every setting at its product default except ``churn.n_trials=--trials``;
3. ``clv score`` with ``models:/clv-customer-scorer@champion`` on the same orders. In a fresh
   store there is no champion when the training's gate failed (the new version is then
   ``@challenger``): the champion's error line is kept and the challenger is scored instead, and
   the table says so.

Each ``clv`` command is a subprocess (the interpreter given by ``--python``, with this process's
environment, so ``PYTHONPATH`` selects the code under test). From the parent run of experiment
``clv-train`` the script reads the tags ``purchase_model``, ``fits_not_identified``,
``churn_window_days``, ``churn_window_rule``, ``churn_score_shipped``, ``gate_passed``,
``gate_failures``, ``model_alias`` and the metrics ``data_customers``, ``churn_{auc,brier,ece}``
(the classifier), ``churn_baseline_<name>_{auc,brier,ece}`` (best per metric among the
baselines), ``churn_shipped_{auc,brier,ece}``, ``churn_shipped_gap_{auc,brier,ece}[_q05|_q95]`` (the shipped
score minus the best baseline, worse-positive, and its bootstrap band) and
``churn_shipped_not_worse_than_baselines``; from
the ``ltv`` child run ``ltv/purchase_models.csv`` (whether the chosen fit is identified); from the
``segments`` child run ``segments/name_checks.csv``, ``segments/name_definitions.csv`` and the
metrics ``segments_k``, ``segments_neutral``. From the scores file: the share of customers with
``churn_risk`` ``high``, and ``p_alive`` of the customers silent for longer than the 90th
percentile of the shop's repeat-purchase gaps.

Definitions
-----------
* **repeat gaps**: days between consecutive distinct purchase days of a customer in the canonical
  orders (every canonical order is a purchase, net of its returns, ``amount >= 0``; a zero-amount
  order is there only when ``validation.zero_amount`` keeps it as one), all customers pooled; the 90th percentile is numpy's
  (linear interpolation).
* **days since last purchase**: ``as_of`` of the scores file minus the customer's last purchase
  day in the canonical orders. It is checked against ``T - recency`` of the scores file (both in
  days); the number of customers where they differ is reported (``silent_check_mismatches``).
* **old silent customers**: days since last purchase > that 90th percentile. Reported: how many,
  the median ``p_alive``, the share with ``p_alive >= 0.9``, and the same split into customers
  without a repeat purchase (``frequency == 0``) and repeat buyers. For simulated shops also the
  share of them that are truly alive at the cutoff (``truth.alive_at_end`` of the simulator).
* **history days**: ``as_of`` minus the first order day (the span ``clv train`` plans its churn
  snapshots on).
* **failed name checks**: rows of ``name_checks.csv`` with ``assigned`` true whose name is in the
  segment vocabulary (``name_definitions.csv`` without the neutral words) and ``passed`` false;
  it should be 0 (docs/decisions.md D34). Failed word checks of neutral names are counted apart.

The shops
---------
* ``cdnow``: ``CDNOW_master.txt`` of the installed ``lifetimes`` package, written to Parquet as
  ``benchmarks/churn_shops.py`` does (one line = one order, no order id).
* ``online_retail``: the Online Retail export shipped in the package
  (``clv_models.datasets.online_retail_path()``, ``--columns ONLINE_RETAIL_COLUMNS``).
* simulated (``clv_models.datasets.simulate_orders``, the observed export written to Parquet,
  ``--columns`` its ``.columns``): ``retail`` 20,000 customers, ``weekly_grocery`` 4,000,
  ``one_time`` 20,000, ``wholesale`` 2,000, ``seasonal`` 10,000, and ``retail_270d``
  (``profile="retail", days=270``) 10,000; all with seed ``--seed`` (default 7).

Usage::

    .venv/bin/python benchmarks/shops_across_rhythms.py                      # every shop, 10 trials
    .venv/bin/python benchmarks/shops_across_rhythms.py --shops cdnow,wholesale --trials 3
    .venv/bin/python benchmarks/shops_across_rhythms.py --json-out /tmp/rhythms.json --markdown-out /tmp/rhythms.md
    .venv/bin/python benchmarks/shops_across_rhythms.py --shops cdnow --keep /tmp/rhythms-kept   # keep store + scores

A shop whose command fails gets clv's error line (printed, and in the table's notes), and the
script goes on with the next shop; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from churn_shops import CLV_MAIN, EXPERIMENT, PARENT_RUN_TAG, cdnow_source, error_line  # noqa: E402

SEED = 7
SIMULATED = {  # shop -> (profile, customers, days of history or None for the profile's)
    "retail": ("retail", 20_000, None),
    "weekly_grocery": ("weekly_grocery", 4_000, None),
    "one_time": ("one_time", 20_000, None),
    "wholesale": ("wholesale", 2_000, None),
    "seasonal": ("seasonal", 10_000, None),
    "retail_270d": ("retail", 10_000, 270),
}
SHOPS = ("cdnow", "online_retail", *SIMULATED)
MODEL_NAME = "clv-customer-scorer"  # tracking.model_name's default
METRICS = ("auc", "brier", "ece")
BEST = {"auc": max, "brier": min, "ece": min}
BASELINE_SHORT = {
    "bgnbd_p_no_purchase": "P0",
    "calibrated_bgnbd_p_no_purchase": "P0 cal",
    "bgnbd_1_minus_p_alive": "1-Pa",
    "recency_rule": "recency",
}
SILENT_QUANTILE = 0.9
P_ALIVE_NEAR_ONE = 0.9


# --------------------------------------------------------------------------------------------
# Shops: each writes its orders into `work` and returns the source arguments of clv


def simulated_source(shop: str, work: Path, seed: int) -> tuple[list[str], dict[str, Any]]:
    from clv_models.datasets import simulate_orders

    profile, customers, days = SIMULATED[shop]
    simulated = simulate_orders(customers, seed=seed, profile=profile, days=days)
    path = simulated.write(work / f"{shop}_orders.parquet")
    simulated.truth[["customer_id", "alive_at_end"]].to_parquet(work / "truth.parquet", index=False)
    info = {
        "profile": profile, "customers_simulated": customers, "seed": seed, "days": simulated.profile.days,
        "start": simulated.start.isoformat(), "end": simulated.end.isoformat(), "export_lines": len(simulated.orders),
    }  # fmt: skip
    return ["--orders", str(path), "--columns", simulated.columns], info


def source_args(shop: str, work: Path, seed: int) -> tuple[list[str], dict[str, Any]]:
    if shop == "cdnow":
        return cdnow_source(Path(__file__).resolve().parents[1], work), {"data": "lifetimes CDNOW_master.txt"}
    if shop == "online_retail":
        from clv_models.datasets import ONLINE_RETAIL_COLUMNS, online_retail_path

        return ["--orders", str(online_retail_path()), "--columns", ONLINE_RETAIL_COLUMNS], {
            "data": "clv_models.datasets.online_retail_path()"
        }
    return simulated_source(shop, work, seed)


# --------------------------------------------------------------------------------------------
# Running clv


def run_clv(python: str, args: list[str], work: Path) -> dict[str, Any]:
    """One ``clv`` command in a subprocess; its store is the one under ``work``."""
    uri = f"sqlite:///{(work / 'mlruns' / 'mlflow.db').as_posix()}"
    command = [python, "-c", CLV_MAIN, *args]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}  # the store tracking.root gives; an inherited URI cannot win
    started = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    result: dict[str, Any] = {
        "args": args,
        "seconds": round(time.perf_counter() - started, 1),
        "returncode": done.returncode,
        "warnings": [line.strip() for line in done.stderr.splitlines() if line.strip().startswith("warning:")],
        "output_tail": (done.stdout + "\n" + done.stderr)[-4000:],
    }
    if done.returncode != 0:
        result["error"] = error_line(done.stderr, done.stdout, done.returncode)
    return result


def store_args(work: Path) -> list[str]:
    return ["--set", f"tracking.root={work}", "--quarantine", str(work / "quarantine" / "{source}.parquet")]


# --------------------------------------------------------------------------------------------
# Reading the store


def read_training(work: Path) -> dict[str, Any]:
    """Tags and metrics of the parent run, the ltv and segments child runs and their tables."""
    import pandas as pd
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = f"sqlite:///{(work / 'mlruns' / 'mlflow.db').as_posix()}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise RuntimeError(f"no experiment {EXPERIMENT!r} in {uri}")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=5000)
    parents = [run for run in runs if PARENT_RUN_TAG not in run.data.tags]
    if not parents:
        raise RuntimeError(f"no parent run in experiment {EXPERIMENT!r} of {uri}")
    parent = parents[0]
    children = {
        run.info.run_name: run for run in runs if run.data.tags.get(PARENT_RUN_TAG) == parent.info.run_id
    }
    out: dict[str, Any] = {
        "run_id": parent.info.run_id,
        "tags": {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")},
        "metrics": dict(parent.data.metrics),
        "params": {k: v for k, v in parent.data.params.items() if k in ("purchase_model", "purchase_penalizer")},
        "risk_cut_points": {  # params churn_risk_cut_points.high / .medium (bands by share, D33)
            key.rpartition(".")[2]: float(value)
            for key, value in parent.data.params.items()
            if key.startswith("churn_risk_cut_points.")
        },
    }
    tables = work / "artifacts"
    if "ltv" in children:
        path = client.download_artifacts(children["ltv"].info.run_id, "ltv/purchase_models.csv", str(tables))
        out["purchase_models"] = pd.read_csv(path).to_dict(orient="records")
    if "segments" in children:
        segments = children["segments"]
        out["segments_metrics"] = dict(segments.data.metrics)
        checks = pd.read_csv(client.download_artifacts(segments.info.run_id, "segments/name_checks.csv", str(tables)))
        definitions = pd.read_csv(
            client.download_artifacts(segments.info.run_id, "segments/name_definitions.csv", str(tables))
        )
        out["name_checks"] = checks
        out["vocabulary"] = sorted({str(n) for n in definitions["name"] if not str(n).startswith("(neutral word)")})
    return out


def truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0", "yes")


def segment_summary(training: dict[str, Any]) -> dict[str, Any]:
    checks = training.get("name_checks")
    if checks is None:
        return {"error": "no segments child run with segments/name_checks.csv"}
    vocabulary = set(training["vocabulary"])
    assigned = checks[checks["assigned"].map(truthy)]
    passed = assigned["passed"].map(truthy)
    in_vocabulary = assigned["name"].astype(str).isin(vocabulary)
    failed = assigned[in_vocabulary & ~passed]
    names = list(dict.fromkeys(str(s) for s in checks.sort_values("cluster", kind="stable")["segment"]))
    metrics = training.get("segments_metrics", {})
    return {
        "names": names,
        "vocabulary_names": [n for n in names if n in vocabulary],
        "assigned_vocabulary_checks": int(in_vocabulary.sum()),
        "failed_vocabulary_checks": int(len(failed)),
        "failed_vocabulary_check_rows": failed.to_dict(orient="records"),
        "failed_neutral_word_checks": int((~in_vocabulary & ~passed).sum()),
        "neutral": metrics.get("segments_neutral"),
        "k": metrics.get("segments_k"),
    }


def purchase_summary(training: dict[str, Any]) -> dict[str, Any]:
    tags = training["tags"]
    model = tags.get("purchase_model")
    chosen = [row for row in training.get("purchase_models", []) if truthy(row.get("chosen"))]
    notices = tags.get("fits_not_identified", "")
    notice_list = [] if notices in ("", "none") else [n.strip() for n in notices.split(" | ")]
    # The production fit at the cutoff: a notice when it is not identified, which says when a
    # penalty remedied it ("refitted with penalizer ...").
    at_cutoff = [n for n in notice_list if n.startswith(f"{model} at the cutoff is not identified")]
    remedied = [n for n in at_cutoff if "refitted with penalizer" in n]
    daily = [n for n in notice_list if n.startswith("the daily BG/NBD behind")]
    return {
        "model": model,
        "penalizer": chosen[0].get("penalizer") if chosen else None,
        "production_penalizer": training.get("params", {}).get("purchase_penalizer"),
        "chosen_identified_on_holdout": truthy(chosen[0].get("identified")) if chosen else None,
        "production_fit_identified": len(at_cutoff) == len(remedied),
        "production_fit_remedied": bool(remedied),
        "daily_bgnbd_identified": not daily,
        "fits_not_identified_is_none": notices == "none",
        "notices": notice_list,
        "choice": tags.get("purchase_model_choice"),
    }


def churn_summary(training: dict[str, Any]) -> dict[str, Any]:
    metrics, tags = training["metrics"], training["tags"]
    # Baseline names from the Brier keys: ``_auc`` would also match ``<name>_pr_auc``.
    baselines = sorted(
        key[len("churn_baseline_") : -len("_brier")]
        for key in metrics
        if key.startswith("churn_baseline_") and key.endswith("_brier")
    )
    best = {}
    for metric in METRICS:
        values = {b: metrics.get(f"churn_baseline_{b}_{metric}", math.nan) for b in baselines}
        values = {b: v for b, v in values.items() if math.isfinite(v)}
        if values:
            name = BEST[metric](values, key=values.__getitem__)
            best[metric] = {"baseline": name, "value": values[name]}
    return {
        "window_days": tags.get("churn_window_days"),
        "window_rule": tags.get("churn_window_rule"),
        "shipped": tags.get("churn_score_shipped"),
        "shipped_reason": tags.get("churn_shipped_reason"),
        "model": {m: metrics.get(f"churn_{m}") for m in METRICS},
        "best_baseline": best,
        "baselines": {b: {m: metrics.get(f"churn_baseline_{b}_{m}") for m in METRICS} for b in baselines},
        "shipped_metrics": {m: metrics.get(f"churn_shipped_{m}") for m in METRICS},
        "shipped_not_worse_than_baselines": metrics.get("churn_shipped_not_worse_than_baselines"),
        "shipped_gaps": {
            m: {q: metrics.get(f"churn_shipped_gap_{m}{'' if q == 'gap' else '_' + q}") for q in ("gap", "q05", "q95")}
            for m in METRICS
        },
        "model_not_worse_than_baselines": metrics.get("churn_model_not_worse_than_baselines"),
        "test_positive_rate": metrics.get("churn_test_positive_rate"),
    }


# --------------------------------------------------------------------------------------------
# Scores and canonical orders


def scores_summary(scores_path: Path, canonical_path: Path, truth_path: Path | None) -> dict[str, Any]:
    import duckdb
    import numpy as np
    import pandas as pd

    columns = ["customer_id", "as_of", "frequency", "recency", "T", "p_alive", "churn_probability", "churn_risk"]
    scores = pd.read_parquet(scores_path, columns=columns)
    as_of_values = pd.to_datetime(scores["as_of"]).dt.date.unique()
    if len(as_of_values) != 1:
        raise RuntimeError(f"scores have {len(as_of_values)} distinct as_of values")
    as_of = as_of_values[0]
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE days AS SELECT DISTINCT customer_id, CAST(order_ts AS DATE) AS day "
        f"FROM read_parquet('{canonical_path.as_posix()}') WHERE amount >= 0"
    )
    gaps = con.execute(
        "SELECT gap FROM (SELECT date_diff('day', lag(day) OVER (PARTITION BY customer_id ORDER BY day), day) AS gap "
        "FROM days) WHERE gap IS NOT NULL"
    ).fetchnumpy()["gap"].astype(float)
    last = con.execute(
        "SELECT customer_id, max(day) AS last_day, min(day) AS first_day FROM days GROUP BY customer_id"
    ).df()
    first_order = con.execute(
        f"SELECT min(CAST(order_ts AS DATE)) FROM read_parquet('{canonical_path.as_posix()}')"
    ).fetchone()[0]
    con.close()
    last["days_since_last"] = (pd.Timestamp(as_of) - pd.to_datetime(last["last_day"])).dt.days
    merged = scores.merge(last[["customer_id", "days_since_last"]], on="customer_id", how="left")
    missing = int(merged["days_since_last"].isna().sum())
    from_scores = merged["T"] - merged["recency"]
    mismatches = int((np.abs(from_scores - merged["days_since_last"]) > 1e-9).sum())
    p90 = float(np.quantile(gaps, SILENT_QUANTILE)) if len(gaps) else float("nan")
    silent = merged[merged["days_since_last"] > p90] if len(gaps) else merged.iloc[0:0]

    def describe(frame: pd.DataFrame) -> dict[str, Any]:
        return {
            "n": int(len(frame)),
            "median_p_alive": float(frame["p_alive"].median()) if len(frame) else None,
            "mean_p_alive": float(frame["p_alive"].mean()) if len(frame) else None,
            "share_p_alive_ge_0_9": float((frame["p_alive"] >= P_ALIVE_NEAR_ONE).mean()) if len(frame) else None,
        }

    risk = scores["churn_risk"].astype(str)
    # Customers sharing one churn probability (a step function, e.g. an isotonic baseline, has few values).
    ties = scores["churn_probability"].dropna().round(12).value_counts()
    out: dict[str, Any] = {
        "as_of": str(as_of),
        "scored_customers": int(len(scores)),
        "history_days": int((as_of - first_order).days),
        "churn_risk_shares": {k: float(v) for k, v in risk.value_counts(normalize=True).items()},
        "distinct_churn_probabilities": int(len(ties)),
        "largest_churn_probability_tie": {
            "value": float(ties.index[0]) if len(ties) else None,
            "share": float(ties.iloc[0] / ties.sum()) if len(ties) else None,
        },
        "high_share": float((risk == "high").mean()),
        "repeat_gaps": int(len(gaps)),
        "repeat_gap_median": float(np.median(gaps)) if len(gaps) else None,
        "repeat_gap_p90": p90,
        "customers_without_canonical_purchase": missing,
        "silent_check_mismatches": mismatches,
        "old_silent": describe(silent),
        "old_silent_one_time": describe(silent[silent["frequency"] == 0]),
        "old_silent_repeat": describe(silent[silent["frequency"] > 0]),
        "all_customers": describe(merged),
    }
    if truth_path is not None and truth_path.is_file():
        truth = pd.read_parquet(truth_path)
        joined = silent.merge(truth, on="customer_id", how="left")
        out["old_silent"]["truly_alive_share"] = float(joined["alive_at_end"].mean()) if len(joined) else None
        near_one = joined[joined["p_alive"] >= P_ALIVE_NEAR_ONE]
        out["old_silent"]["truly_alive_share_of_p_alive_ge_0_9"] = (
            float(near_one["alive_at_end"].mean()) if len(near_one) else None
        )
        out["all_customers"]["truly_alive_share"] = float(merged.merge(truth, on="customer_id")["alive_at_end"].mean())
    return out


# --------------------------------------------------------------------------------------------
# One shop


def measure(shop: str, python: str, trials: int, seed: int, keep: Path | None) -> dict[str, Any]:
    result: dict[str, Any] = {"shop": shop, "errors": []}
    tmp = tempfile.TemporaryDirectory(prefix=f"clv-rhythms-{shop}-")
    work = Path(tmp.name)
    try:
        started = time.perf_counter()
        try:
            source, info = source_args(shop, work, seed)
        except Exception as exc:  # noqa: BLE001 - reported, the other shops go on
            result["errors"].append(f"preparing the data: {type(exc).__name__}: {exc}")
            return result
        result.update(source=info, source_args=source, prepare_seconds=round(time.perf_counter() - started, 1))

        canonical = work / "canonical_orders.parquet"
        validate = run_clv(python, ["validate", *source, *store_args(work), "--orders-out", str(canonical)], work)
        result["validate"] = validate
        if "error" in validate:
            result["errors"].append(f"clv validate: {validate['error']}")
            return result

        train = run_clv(python, ["train", *source, *store_args(work), "--set", f"churn.n_trials={trials}"], work)
        result["train"] = train
        print(f"  {shop}: clv train {train['seconds']} s, exit {train['returncode']}", flush=True)
        if "error" in train:
            result["errors"].append(f"clv train: {train['error']}")
            return result
        try:
            training = read_training(work)
        except Exception as exc:  # noqa: BLE001
            result["errors"].append(f"reading the training run: {type(exc).__name__}: {exc}")
            return result
        result["run_id"] = training["run_id"]
        result["tags"] = training["tags"]
        result["customers"] = training["metrics"].get("data_customers")
        result["purchase"] = purchase_summary(training)
        result["churn"] = churn_summary(training)
        result["segments"] = segment_summary(training)
        result["purchase_models"] = training.get("purchase_models")
        result["risk_cut_points"] = training["risk_cut_points"]
        result["gate"] = {
            "passed": training["tags"].get("gate_passed"),
            "failures": training["tags"].get("gate_failures"),
            "alias": training["tags"].get("model_alias"),
            "version": training["tags"].get("model_version"),
        }

        scores_path = work / "scores.parquet"
        model = f"models:/{MODEL_NAME}@champion"
        score_args = ["score", *source, *store_args(work), "--out", str(scores_path)]
        score = run_clv(python, [*score_args, "--model", model], work)
        result["score"] = score
        result["scored_model"] = model
        if "error" in score and result["gate"]["alias"] == "challenger":
            result["champion_score_error"] = score["error"]
            gate_failures = result["gate"]["failures"]
            result["errors"].append(f"clv score @champion: {score['error']} (gate failed: {gate_failures})")
            model = f"models:/{MODEL_NAME}@challenger"
            score = run_clv(python, [*score_args, "--model", model], work)
            result["score"] = score
            result["scored_model"] = model
        print(f"  {shop}: clv score ({model}) {score['seconds']} s, exit {score['returncode']}", flush=True)
        if "error" in score:
            result["errors"].append(f"clv score {model}: {score['error']}")
            return result
        try:
            result["scores"] = scores_summary(scores_path, canonical, work / "truth.parquet")
        except Exception as exc:  # noqa: BLE001
            result["errors"].append(f"reading the scores: {type(exc).__name__}: {exc}")
        return result
    finally:
        if keep is not None:
            import shutil

            shutil.copytree(work, keep / shop, dirs_exist_ok=True)
        tmp.cleanup()


# --------------------------------------------------------------------------------------------
# Report


def _f(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _triple(values: dict[str, Any]) -> str:
    return " / ".join(_f(values.get(m)) for m in METRICS)


def _best_triple(best: dict[str, Any]) -> str:
    cells = []
    for metric in METRICS:
        item = best.get(metric)
        label = None if item is None else BASELINE_SHORT.get(item["baseline"], item["baseline"])
        cells.append("–" if item is None else f"{_f(item['value'])} {label}")
    return " / ".join(cells)


def _identified(purchase: dict[str, Any]) -> str:
    parts = []
    if purchase.get("chosen_identified_on_holdout") is False:
        parts.append("no (holdout)")
    if not purchase.get("production_fit_identified", True):
        parts.append("no (at cutoff)")
    elif purchase.get("production_fit_remedied"):
        parts.append("penalised at cutoff")
    if not purchase.get("daily_bgnbd_identified", True):
        parts.append("daily BG/NBD not")
    verdict = "; ".join(parts) if parts else "yes"
    tag = "none" if purchase.get("fits_not_identified_is_none") else f"{len(purchase.get('notices', []))} notice(s)"
    return f"{verdict}; tag: {tag}"


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    header = [
        "shop", "customers", "history days", "purchase model", "identified; fits_not_identified",
        "churn window", "shipped churn score", "model AUC / Brier / ECE", "best baseline AUC / Brier / ECE",
        "shipped AUC / Brier / ECE", "high share", "p90 repeat gap (d)", "silent > p90: n",
        "their median / mean P(alive)", "their share P(alive) ≥ 0.9", "truly alive (sim.)", "segments",
        "failed checks of assigned names", "neutral", "train s",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for shop, r in results.items():
        if "purchase" not in r:
            error = r["errors"][-1] if r["errors"] else "no result"
            lines.append("| " + " | ".join([shop, f"error: {error}", *([""] * (len(header) - 2))]) + " |")
            continue
        p, c, seg = r["purchase"], r["churn"], r.get("segments", {})
        s = r.get("scores", {})
        silent = s.get("old_silent", {})
        try:  # the production fit's penalizer (param purchase_penalizer), else the holdout choice's
            penalty = float(p.get("production_penalizer") or p.get("penalizer") or 0.0)
        except ValueError:
            penalty = 0.0
        penalizer = f" (pen. {penalty:g})" if penalty else ""
        shipped = c["shipped"] if c["shipped"] == "model" else f"**{c['shipped']}**"
        if r.get("scored_model", "").endswith("@challenger"):
            shipped += " (scored @challenger: no champion)"
        cells = [
            shop,
            f"{r['customers']:,.0f}" if r.get("customers") is not None else "–",
            str(s.get("history_days", "–")),
            f"{p['model']}{penalizer}",
            _identified(p),
            f"{c['window_days']} d: {c['window_rule']}",
            shipped,
            _triple(c["model"]),
            _best_triple(c["best_baseline"]),
            _triple(c["shipped_metrics"]),
            f"{s['high_share']:.1%}" if "high_share" in s else "–",
            _f(s.get("repeat_gap_p90"), 1),
            f"{silent['n']:,}" if "n" in silent else "–",
            f"{_f(silent.get('median_p_alive'), 3)} / {_f(silent.get('mean_p_alive'), 3)}",
            f"{silent['share_p_alive_ge_0_9']:.1%}" if silent.get("share_p_alive_ge_0_9") is not None else "–",
            f"{silent['truly_alive_share']:.1%}" if silent.get("truly_alive_share") is not None else "–",
            ", ".join(seg.get("names", [])) or "–",
            (
                f"{seg['failed_vocabulary_checks']} of {seg['assigned_vocabulary_checks']}"
                if "failed_vocabulary_checks" in seg
                else "–"
            ),
            _f(seg.get("neutral"), 0),
            f"{r['train']['seconds']:.0f}" if "train" in r else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gap_table(results: dict[str, dict[str, Any]]) -> str:
    """The shipped churn score minus the best baseline per metric (worse-positive: for AUC the
    baseline's minus ours), the paired bootstrap's 5th-95th percentiles, and D32's verdict."""
    from clv_models.training.churn import MATERIAL_GAP  # D32's margins: AUC/ECE points, Brier a share

    header = ["shop", "shipped", "AUC gap [q05, q95]", "Brier gap [q05, q95]", "ECE gap [q05, q95]",
              "worse beyond noise", "worse beyond noise and margin (D32)"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for shop, r in results.items():
        c = r.get("churn")
        gaps = (c or {}).get("shipped_gaps") or {}
        if not gaps or gaps["auc"]["gap"] is None:
            continue
        cells, noise, material = [shop, c["shipped"]], [], []
        for m in METRICS:
            g = gaps[m]
            cells.append(f"{g['gap']:+.4f} [{g['q05']:+.4f}, {g['q95']:+.4f}]")
            best = c["best_baseline"][m]["value"]
            margin = MATERIAL_GAP[m] * (best if m == "brier" else 1.0)
            if g["q05"] > 0:
                noise.append(m)
                if g["gap"] > margin:
                    material.append(m)
        cells += [", ".join(noise) or "none", ", ".join(material) or "none"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def split_table(results: dict[str, dict[str, Any]]) -> str:
    """Old silent customers split into one-time buyers and repeat buyers."""
    header = ["shop", "as_of", "repeat gaps", "median gap (d)", "p90 gap (d)",
              "silent one-time: n / median P(alive) / ≥ 0.9", "silent repeat buyers: n / median P(alive) / ≥ 0.9",
              "silent with P(alive) ≥ 0.9: truly alive (sim.)", "all customers: mean P(alive) / truly alive (sim.)",
              "churn_risk shares", "cut points high / medium", "distinct churn probabilities",
              "largest tie: share at value", "T − recency ≠ days since last"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for shop, r in results.items():
        s = r.get("scores")
        if not s:
            continue

        def part(d: dict[str, Any]) -> str:
            share = f"{d['share_p_alive_ge_0_9']:.1%}" if d.get("share_p_alive_ge_0_9") is not None else "–"
            return f"{d['n']:,} / {_f(d.get('median_p_alive'), 3)} / {share}"

        shares = ", ".join(f"{k} {v:.1%}" for k, v in sorted(s["churn_risk_shares"].items()))
        cuts = r.get("risk_cut_points", {})
        tie = s["largest_churn_probability_tie"]
        near_one = s["old_silent"].get("truly_alive_share_of_p_alive_ge_0_9")
        everyone = s["all_customers"]
        truly = everyone.get("truly_alive_share")
        lines.append("| " + " | ".join([
            shop, s["as_of"], f"{s['repeat_gaps']:,}",
            _f(s.get("repeat_gap_median"), 1), _f(s.get("repeat_gap_p90"), 1),
            part(s["old_silent_one_time"]), part(s["old_silent_repeat"]),
            "–" if near_one is None else f"{near_one:.1%}",
            f"{_f(everyone['mean_p_alive'], 3)} / {'–' if truly is None else f'{truly:.1%}'}",
            shares, f"{_f(cuts.get('high'))} / {_f(cuts.get('medium'))}", f"{s['distinct_churn_probabilities']:,}",
            "–" if tie["share"] is None else f"{tie['share']:.1%} at {tie['value']:.4f}",
            str(s["silent_check_mismatches"]),
        ]) + " |")  # fmt: skip
    return "\n".join(lines)


def notes(results: dict[str, dict[str, Any]]) -> str:
    lines = []
    for shop, r in results.items():
        for error in r.get("errors", []):
            lines.append(f"* {shop}: {error}")
        p = r.get("purchase")
        if p:
            for notice in p["notices"]:
                lines.append(f"* {shop}, notice: {notice}")
        gate = r.get("gate")
        if gate and gate.get("passed") != "true":
            lines.append(f"* {shop}, gate failed: {gate.get('failures')} (registered as @{gate.get('alias')})")
        seg = r.get("segments", {})
        for row in seg.get("failed_vocabulary_check_rows", []):
            lines.append(f"* {shop}, segment {row.get('segment')}: check failed: {row.get('check')}")
    return "\n".join(lines)


def describe_code(python: str) -> dict[str, str]:
    imported = subprocess.run(
        [python, "-c", "import clv_models; print(clv_models.__file__)"], capture_output=True, text=True, check=False
    )
    repo = Path(__file__).resolve().parents[1]
    commit = subprocess.run(
        ["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=12"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return {
        "clv_models_file": imported.stdout.strip() or imported.stderr.strip()[-300:],
        "commit": commit.stdout.strip() or "unknown",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", default=",".join(SHOPS), help=f"comma list of {', '.join(SHOPS)}")
    parser.add_argument("--trials", type=int, default=10, help="Optuna trials (churn.n_trials; product default 30)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the simulated shops")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs clv (default: this one)")
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--markdown-out", type=Path, help="also write the markdown tables here")
    parser.add_argument("--keep", type=Path, help="copy each shop's working directory (store, scores) here")
    args = parser.parse_args()
    shops = [s.strip() for s in args.shops.split(",") if s.strip()]
    unknown = sorted(set(shops) - set(SHOPS))
    if unknown:
        parser.error(f"unknown shop(s) {', '.join(unknown)}; choose from {', '.join(SHOPS)}")
    started = dt.datetime.now().isoformat(timespec="seconds")
    clock = time.perf_counter()

    code = describe_code(args.python)
    print(f"commit {code['commit']}; clv_models from {code['clv_models_file']}", flush=True)
    print(f"python {args.python}; churn.n_trials={args.trials}; PYTHONPATH={os.environ.get('PYTHONPATH', '')}")
    for shop in shops:
        if shop in SIMULATED:
            profile, customers, days = SIMULATED[shop]
            history = f", days={days}" if days else ""
            print(f"  {shop}: simulate_orders({customers}, seed={args.seed}, profile={profile!r}{history})")

    results: dict[str, dict[str, Any]] = {}
    for shop in shops:
        print(f"{shop}: ...", flush=True)
        shop_clock = time.perf_counter()
        results[shop] = measure(shop, args.python, args.trials, args.seed, args.keep)
        results[shop]["shop_seconds"] = round(time.perf_counter() - shop_clock, 1)
        for error in results[shop]["errors"]:
            print(f"{shop}: {error}", flush=True)
        print(f"{shop}: done in {results[shop]['shop_seconds']} s", flush=True)

    wall = round(time.perf_counter() - clock, 1)
    text = "\n\n".join([
        markdown_table(results),
        "Old silent customers (days since last purchase > p90 of repeat gaps) by repeat purchases:",
        split_table(results),
        "Shipped churn score minus the best baseline on each metric (positive = worse), paired bootstrap of the "
        "test customers:\n\n" + gap_table(results),
        "Notes:\n\n" + (notes(results) or "(none)"),
    ])  # fmt: skip
    print()
    print(text)
    print(f"\nwall time {wall} s")
    if args.markdown_out:
        args.markdown_out.parent.mkdir(parents=True, exist_ok=True)
        args.markdown_out.write_text(text + "\n")
        print(f"markdown written to {args.markdown_out}")
    if args.json_out:
        report = {
            "started": started, "wall_seconds": wall, **code, "python": args.python,
            "pythonpath": os.environ.get("PYTHONPATH", ""), "trials": args.trials, "seed": args.seed,
            "simulated": {shop: SIMULATED[shop] for shop in shops if shop in SIMULATED}, "shops": results,
        }  # fmt: skip
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"results written to {args.json_out}")
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
