"""Benchmark: churn snapshot features, classifier training and scoring at 100k and 1M customers.

What is measured
----------------
For each size in ``--sizes`` (customers), on one synthetic order table per size, three stages,
every run in its own fresh process:

* **features** - ``ingest(<parquet>, columns=ColumnMap(order_id="order_id", country="country"))``
  (DuckDB reads the Parquet file itself: the read is inside the clock), then
  ``build_churn_dataset(ingested, ChurnSettings(n_trials=--trials))`` - the snapshot plan (12
  training cutoffs 30 days apart, validation, test; 90-day window), the point-in-time features and
  labels of every (cutoff, customer) - then ``clv_models.training.churn.add_btyd_features(dataset,
  settings)``, the per-cutoff BG/NBD + Gamma-Gamma fits behind the BTYD features (what
  ``train_churn`` does before fitting). The three calls are timed separately; "build" is the
  snapshots plus the BTYD features, "snapshots excl. BTYD" the ``build_churn_dataset`` call alone.
* **pandas baseline** (reference for the snapshot features' *core* only) - on a DataFrame from
  ``pandas.read_parquet`` (the read is timed and shown on its own row, outside the baseline's
  clock): ``order_ts`` floored to the day, distinct (customer_id, day) pairs once, then for *each*
  cutoff of the same plan (computed before the clock with ``plan_snapshots``, as ours does) the
  pairs with day <= cutoff, ``groupby("customer_id")`` min/max/size of day, and frequency =
  size − 1, recency = max − min, T = cutoff − min (days). That is all it computes: no netting of
  returns as known at each cutoff, no monetary value, window counts/spends, gaps, trend,
  basket, return share or country mode, no labels, no BTYD fits, no validation/quarantine.
  It computes *much less* than ours; it shows what the RFM core costs in plain pandas. It does
  compute every customer at every cutoff, whereas ours keeps only a hash-chosen share of the
  customers at the training cutoffs when ``ChurnSettings.max_train_rows`` applies (the share is
  printed). A check worker compares (cutoff, customer_id, frequency, recency, T) of every row of
  ours with the baseline's.
* **train** - ``ChurnClassifier.from_settings(settings, dataset.categorical_features).fit(
  dataset.train[features], dataset.train["churned"], groups=dataset.train["customer_id"],
  X_calibration=dataset.validation[features], y_calibration=dataset.validation["churned"])`` with
  ``n_trials=--trials`` and every other setting default (4 grouped folds, early stopping 50,
  up to 1000 rounds, 1 LightGBM thread, Platt calibration). The dataset is not rebuilt: the
  first features run saves ``dataset.train/validation/test`` as Parquet in a scratch directory
  (after its clock and RSS reading) and each train worker reads them before its clock, so the
  train worker's peak RSS is the fit's (plus the frames), not the snapshot build's.
* **predict** - the first train run pickles the fitted classifier to the scratch directory (after
  its clock); each predict worker loads it and the test snapshot, tiles the test rows to exactly
  ``--predict-rows`` (default 1,000,000; the first rows if the test snapshot is larger), all
  before the clock, then times ``model.predict_proba(X)`` and ``model.contributions(X)``
  separately. Its peak RSS is read after ``predict_proba`` and again at the end.

How
---
Orders are simulated by ``clv_models.datasets.simulate_orders(size, seed=seed, profile="retail")``
with its season, credit notes, duplicate lines and guest checkouts switched off and one line of
quantity 1 per order (``CANONICAL_ORDERS``), so each export line is one order. The process, per
customer, vectorised with ``numpy.random.default_rng([seed, size])`` (no Python loop per
customer): first purchase uniform over two years (2023-01-01 + 730 days); purchase rate lambda ~
Gamma(2, mean 1/50 per day); drop-out after J ~ Geometric(p) purchases in all (J <= 200), p ~
Beta(2, 5); purchase times = first purchase + cumulative Exponential(lambda) gaps, kept if before
the end of the two years (so about 3 orders per customer, and many customers stop buying long
before the end: the labels are far from trivial). Times have second resolution; amounts are
lognormal (customer mean x order noise) in cents; ``country`` is one of 10 codes per customer
(Zipf-like shares); ``order_id`` is "O" + a zero-padded running number, ``customer_id`` "C" + 8
digits; rows in time order. The tables are byte-identical to those of the generator this script
had before it moved into ``clv_models.datasets`` (checked for seed 7 and the default seed), so
``GENERATOR_VERSION`` is unchanged. The table is cached as Parquet in ``--data-dir`` (default under
/tmp, keyed by size, seed and generator version).

Each worker (this script in ``--worker`` mode) reads its inputs and imports its libraries before
the clock, times the call(s) with ``time.perf_counter`` and its own CPU time (user + system, all
threads) and prints one JSON line with those and ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
(peak RSS of that worker alone, interpreter and libraries included). Ours and the pandas baseline
alternate; the parent reports medians over ``--repeats`` (``--train-repeats`` for the train
stage, default the same). Like ``bench_ltv.py``, each worker reads the machine-wide busy CPU
time around each timed call (``/proc/stat``); before each run the parent waits (up to
``--quiet-wait`` s) for other processes to go idle and reruns (``--retries``) a run in which
they used more than 0.1 s + 10 % of its wall time. The train stage is held to the same rule although
LightGBM runs on one thread by default. Each worker also reports a hash of the ``clv_models``
sources it imported, and the report warns when they changed during the run.

Usage::

    python benchmarks/bench_churn.py                                   # 100k and 1M customers, 3 repeats, 10 trials
    python benchmarks/bench_churn.py --sizes 100000 --repeats 1 --trials 3   # quick
    python benchmarks/bench_churn.py --train-repeats 1                 # the train stage once per size
    python benchmarks/bench_churn.py --json-out benchmarks/results/churn.json   # also save results (git-ignored)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _harness  # benchmarks/ is on sys.path when run as a script
from _harness import cpu_model, format_load, versions

GENERATOR_VERSION = 1
DEFAULT_SEED = 20240601
DEFAULT_SIZES = "100000,1000000"
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "clv-bench-churn-data"
RESULT_MARKER = "BENCH_RESULT "
# clv_models.datasets.simulate_orders(profile="retail") overrides that give one canonical order per line
CANONICAL_ORDERS = {
    "season": 0.0,
    "return_share": 0.0,
    "duplicate_share": 0.0,
    "guest_share": 0.0,
    "lines_per_order": 1.0,
    "units_per_line": 1.0,
}
COLUMNS = {"order_id": "order_id", "country": "country"}  # ColumnMap(...) keyword arguments
DISTURBED_ABS_S, DISTURBED_REL = 0.1, 0.10  # other processes' CPU during a run that makes it "disturbed"


# --------------------------------------------------------------------------------------------
# Data


def simulate_orders(n_customers: int, seed: int):  # -> pyarrow.Table
    """Canonical orders from the purchase / drop-out process in the module docstring."""
    import pyarrow as pa

    from clv_models.datasets import simulate_orders as simulate_shop

    shop = simulate_shop(n_customers, seed=seed, profile="retail", future_days=0, **CANONICAL_ORDERS)
    lines = shop.orders  # one line of quantity 1 per order: the unit price is the order's amount
    return pa.table(
        {
            "customer_id": pa.array(lines["customer_id"], type=pa.string()),
            "order_id": pa.array(lines["invoice_id"], type=pa.string()),
            "order_ts": pa.array(lines["invoice_ts"], type=pa.timestamp("us")),
            "amount": pa.array((lines["quantity"] * lines["unit_price"]).to_numpy(), type=pa.float64()),
            "country": pa.array(lines["country"], type=pa.string()),
        }
    )


def ensure_dataset(data_dir: Path, n_customers: int, seed: int) -> Path:
    """Path of the cached Parquet for these parameters, generating it (atomically) if missing."""
    import pyarrow.parquet as pq

    path = data_dir / f"churn_orders_c{n_customers}_s{seed}_v{GENERATOR_VERSION}.parquet"
    if path.exists():
        print(f"data: reusing {path}", flush=True)
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"data: simulating orders of {n_customers:,} customers -> {path}", flush=True)
    started = time.perf_counter()
    table = simulate_orders(n_customers, seed)
    partial = path.with_suffix(f".tmp{os.getpid()}")
    pq.write_table(table, partial)
    partial.replace(path)
    print(f"data: simulated {table.num_rows:,} orders in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def describe_dataset(path: Path) -> dict[str, Any]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["customer_id", "order_ts"])
    customers = pc.count_distinct(table["customer_id"]).as_py()
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "orders": table.num_rows,
        "customers_with_orders": customers,
        "orders_per_customer": table.num_rows / customers,
        "first_order": pc.min(table["order_ts"]).as_py().isoformat(),
        "last_order": pc.max(table["order_ts"]).as_py().isoformat(),
    }


# --------------------------------------------------------------------------------------------
# Workers (each runs in its own process)


def own_usage() -> dict[str, float]:
    """Peak RSS (KiB on Linux) and CPU seconds (user + system, all threads) of this process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_kib": usage.ru_maxrss, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot (``/proc/stat``), or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def timed(call: Any) -> tuple[Any, dict[str, float]]:
    """Run ``call()``: its result, wall and own CPU seconds, and CPU used by other processes meanwhile."""
    busy_before, cpu_before = machine_busy_seconds(), own_usage()["cpu_seconds"]
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    cpu = own_usage()["cpu_seconds"] - cpu_before
    busy_after = machine_busy_seconds()
    other = None if busy_before is None or busy_after is None else max(busy_after - busy_before - cpu, 0.0)
    return result, {"seconds": seconds, "cpu_seconds": cpu, "other_cpu_seconds": other}


def combine(*parts: dict[str, float]) -> dict[str, float]:
    """Sum of several ``timed`` measurements (None stays None)."""
    out: dict[str, Any] = {}
    for key in ("seconds", "cpu_seconds", "other_cpu_seconds"):
        values = [p[key] for p in parts]
        out[key] = None if any(v is None for v in values) else sum(values)
    return out


def code_hash() -> str:
    """SHA-256 (12 hex digits) of the installed ``clv_models`` sources: shows whether the code under
    test changed during a run (every worker imports it afresh)."""
    import hashlib

    import clv_models

    digest = hashlib.sha256()
    root = Path(clv_models.__file__).parent
    for source in sorted(root.rglob("*.py")):
        digest.update(str(source.relative_to(root)).encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:12]


def settings_for(trials: int):  # -> ChurnSettings
    from clv_models.config import ChurnSettings

    return ChurnSettings(n_trials=trials)


DATASET_PARTS = ("train", "validation", "test")


def worker_features(path: Path, trials: int, save_dir: Path | None) -> dict[str, Any]:
    """ingest, build_churn_dataset and add_btyd_features, each timed (build = the last two)."""
    import duckdb  # noqa: F401  (imported before the clock: our modules import lazily)
    import pandas as pd  # noqa: F401

    from clv_models.config import ColumnMap
    from clv_models.data.ingest import ingest
    from clv_models.features.churn import build_churn_dataset
    from clv_models.models import BetaGeoModel, GammaGammaModel  # noqa: F401
    from clv_models.training.churn import add_btyd_features

    settings = settings_for(trials)
    ingested, ingest_times = timed(lambda: ingest(path, columns=ColumnMap(**COLUMNS)))
    rss_after_ingest = own_usage()["peak_rss_kib"]
    dataset, snapshot_times = timed(lambda: build_churn_dataset(ingested, settings))
    fits, btyd = timed(lambda: add_btyd_features(dataset, settings))
    build_times = combine(snapshot_times, btyd)
    usage = own_usage()
    parts = {name: getattr(dataset, name) for name in DATASET_PARTS}
    result = {
        **combine(ingest_times, build_times),
        "peak_rss_kib": usage["peak_rss_kib"],
        "peak_rss_after_ingest_kib": rss_after_ingest,
        "ingest": ingest_times,
        "build": build_times,
        "btyd": btyd,
        "build_excl_btyd": snapshot_times,
        "orders": ingested.report.orders,
        "snapshot_rows": sum(len(frame) for frame in parts.values()),
        "rows": {name: len(frame) for name, frame in parts.items()},
        "churn_rate": {name: float(frame["churned"].mean()) for name, frame in parts.items()},
        "plan": dataset.plan.as_dict(),
        "features": dataset.features,
        "categorical_features": dataset.categorical_features,
        "btyd_warnings": sum(len(fitted.diagnostics_) for fitted in fits.values()),
        "training_share": getattr(dataset, "training_share", 1.0),
    }
    if save_dir is not None:  # after the clock and the RSS reading
        save_dir.mkdir(parents=True, exist_ok=True)
        for name, frame in parts.items():
            frame.to_parquet(save_dir / f"{name}.parquet", index=False)
        meta = {
            "features": dataset.features,
            "categorical_features": dataset.categorical_features,
            "plan": dataset.plan.as_dict(),
            "training_share": result["training_share"],
        }
        (save_dir / "meta.json").write_text(json.dumps(meta))
    ingested.close()
    return result


def plan_cutoffs(orders: Any, trials: int) -> list[dt.date]:
    """The snapshot cutoffs ``build_churn_dataset`` uses for these orders (no returns in the data)."""
    from clv_models.features.churn import plan_snapshots

    settings = settings_for(trials)
    plan = plan_snapshots(
        orders["order_ts"].min().date(),
        orders["order_ts"].max().date(),
        window_days=settings.window_days,
        train_cutoffs=settings.train_cutoffs,
        cutoff_step_days=settings.cutoff_step_days,
        min_history_days=settings.min_history_days,
    )
    return [*plan.train, plan.validation, plan.test]


def pandas_rfm_core(orders: Any, cutoffs: list[dt.date]):  # -> pandas.DataFrame
    """The baseline: frequency, recency, T per customer per cutoff (see the module docstring)."""
    import pandas as pd

    days = pd.DataFrame({"customer_id": orders["customer_id"], "day": orders["order_ts"].dt.floor("D")})
    days = days.drop_duplicates()
    frames = []
    for cutoff in cutoffs:
        end = pd.Timestamp(cutoff)
        known = days[days["day"] <= end]
        grouped = known.groupby("customer_id", sort=True)["day"].agg(["min", "max", "size"])
        frames.append(
            pd.DataFrame(
                {
                    "cutoff": cutoff,
                    "customer_id": grouped.index,
                    "frequency": (grouped["size"] - 1).to_numpy(float),
                    "recency": (grouped["max"] - grouped["min"]).dt.days.to_numpy(float),
                    "T": (end - grouped["min"]).dt.days.to_numpy(float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def worker_pandas(path: Path, trials: int, save_result: Path | None) -> dict[str, Any]:
    import pandas as pd

    orders, read_times = timed(lambda: pd.read_parquet(path))
    cutoffs = plan_cutoffs(orders, trials)
    frame, times = timed(lambda: pandas_rfm_core(orders, cutoffs))
    result = {
        **times,
        "peak_rss_kib": own_usage()["peak_rss_kib"],
        "read": read_times,
        "snapshot_rows": len(frame),
        "cutoffs": [c.isoformat() for c in cutoffs],
    }
    if save_result is not None:  # after the clock and the RSS reading
        frame.to_parquet(save_result, index=False)
    return result


def worker_rfm_check(dataset_dir: Path, reference: Path) -> dict[str, Any]:
    """Our snapshots' daily frequency, recency and T vs the pandas baseline's, row for row.

    The baseline computes every customer at every cutoff. Ours keeps every customer at the validation
    and test cutoffs, and at the training cutoffs a hash-chosen share of them when
    ``ChurnSettings.max_train_rows`` applies: there ours must be a subset of the baseline's rows.
    """
    import pandas as pd

    meta = json.loads((dataset_dir / "meta.json").read_text())
    daily = {"frequency_days": "frequency", "recency_days": "recency", "T_days": "T"}  # the snapshots' names
    columns = ["cutoff", "customer_id", *daily]
    ours = pd.concat(
        [pd.read_parquet(dataset_dir / f"{name}.parquet", columns=columns) for name in DATASET_PARTS],
        ignore_index=True,
    ).rename(columns=daily)
    theirs = pd.read_parquet(reference)
    report: dict[str, Any] = {"rows_ours": len(ours), "rows_pandas": len(theirs), "problems": []}
    for frame in (ours, theirs):
        frame["cutoff"] = pd.to_datetime(frame["cutoff"])
        frame["customer_id"] = frame["customer_id"].astype(str)
    both = ours.merge(theirs, on=["cutoff", "customer_id"], how="left", suffixes=("", "_pandas"), indicator=True)
    missing = int((both["_merge"] != "both").sum())
    if missing:
        report["problems"].append(f"{missing:,} of our rows are not in the baseline")
    for column in ("frequency", "recency", "T"):
        differ = int((both[column].to_numpy(float) != both[f"{column}_pandas"].to_numpy(float)).sum()) - missing
        if differ:
            report["problems"].append(f"{column}: {differ:,} rows differ")
    complete = pd.to_datetime([meta["plan"]["validation"], meta["plan"]["test"]])
    if meta.get("training_share", 1.0) >= 1.0:
        complete = complete.union(pd.to_datetime(meta["plan"]["train"]))
    for cutoff in complete:
        n_ours, n_theirs = int((ours["cutoff"] == cutoff).sum()), int((theirs["cutoff"] == cutoff).sum())
        if n_ours != n_theirs:
            report["problems"].append(f"cutoff {cutoff.date()}: {n_ours:,} rows vs {n_theirs:,} in the baseline")
    report["passed"] = not report["problems"]
    report["rows"] = len(ours)
    return report


def read_dataset(dataset_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    import pandas as pd

    meta = json.loads((dataset_dir / "meta.json").read_text())
    parts = {name: pd.read_parquet(dataset_dir / f"{name}.parquet") for name in DATASET_PARTS}
    return parts, meta


def worker_train(dataset_dir: Path, trials: int, save_model: Path | None) -> dict[str, Any]:
    import pickle

    import lightgbm  # noqa: F401
    import optuna
    import sklearn.isotonic  # noqa: F401
    import sklearn.model_selection  # noqa: F401

    from clv_models.models.churn import ChurnClassifier

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parts, meta = read_dataset(dataset_dir)
    train, validation = parts["train"], parts["validation"]
    features = meta["features"]
    settings = settings_for(trials)
    model, times = timed(
        lambda: ChurnClassifier.from_settings(settings, meta["categorical_features"]).fit(
            train[features],
            train["churned"],
            groups=train["customer_id"],
            X_calibration=validation[features],
            y_calibration=validation["churned"],
        )
    )
    states = model.trials_["state"].value_counts().to_dict()
    result = {
        **times,
        "peak_rss_kib": own_usage()["peak_rss_kib"],
        "train_rows": len(train),
        "calibration_rows": len(validation),
        "train_churn_rate": float(train["churned"].mean()),
        "trials": {str(k): int(v) for k, v in states.items()},
        "best_score_cv": model.best_score_,
        "tuning_metric": settings.tuning_metric,
        "best_iteration": model.best_iteration_,
        "best_params": model.best_params_,
    }
    if save_model is not None:  # after the clock and the RSS reading
        from sklearn.metrics import roc_auc_score

        test = parts["test"]
        result["test_auc"] = float(roc_auc_score(test["churned"], model.predict_proba(test[features])[:, 1]))
        with open(save_model, "wb") as handle:
            pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return result


def worker_predict(dataset_dir: Path, model_path: Path, rows: int) -> dict[str, Any]:
    import math
    import pickle

    import lightgbm  # noqa: F401
    import pandas as pd
    import sklearn.isotonic  # noqa: F401

    parts, meta = read_dataset(dataset_dir)
    with open(model_path, "rb") as handle:
        model = pickle.load(handle)
    test = parts["test"][meta["features"]]
    copies = math.ceil(rows / len(test))
    X = pd.concat([test] * copies, ignore_index=True).iloc[:rows] if copies > 1 else test.iloc[:rows]
    del parts
    proba, proba_times = timed(lambda: model.predict_proba(X))
    rss_after_proba = own_usage()["peak_rss_kib"]
    contributions, contrib_times = timed(lambda: model.contributions(X))
    assert proba.shape == (rows, 2) and len(contributions) == rows
    return {
        **combine(proba_times, contrib_times),
        "peak_rss_kib": own_usage()["peak_rss_kib"],
        "peak_rss_after_proba_kib": rss_after_proba,
        "predict_proba": proba_times,
        "contributions": contrib_times,
        "rows": rows,
        "test_rows": len(test),
        "copies": copies,
        "contribution_columns": list(contributions.columns[len(meta["features"]) :]),
    }


def run_worker_mode(args: argparse.Namespace) -> None:
    started_hash = code_hash()
    path = Path(args.parquet) if args.parquet else None
    dataset_dir = Path(args.dataset_dir) if args.dataset_dir else None
    save = Path(args.save) if args.save else None
    if args.worker == "features":
        result = worker_features(path, args.trials, save)
    elif args.worker == "pandas":
        result = worker_pandas(path, args.trials, save)
    elif args.worker == "rfm-check":
        result = worker_rfm_check(dataset_dir, Path(args.reference))
    elif args.worker == "train":
        result = worker_train(dataset_dir, args.trials, save)
    else:
        result = worker_predict(dataset_dir, Path(args.model), args.predict_rows)
    result["code_hash"] = started_hash if code_hash() == started_hash else f"{started_hash}→{code_hash()}"
    print(RESULT_MARKER + json.dumps(result, default=str), flush=True)


# --------------------------------------------------------------------------------------------
# Parent: orchestration and report


def spawn_worker(kind: str, *extra: str) -> dict[str, Any]:
    """Run this script as a ``kind`` worker in a fresh interpreter; its JSON result."""
    return _harness.spawn_worker(__file__, RESULT_MARKER, kind, *extra)


def disturbed(run: dict[str, Any]) -> bool:
    other = run.get("other_cpu_seconds")
    return other is not None and other > DISTURBED_ABS_S + DISTURBED_REL * run["seconds"]


def wait_for_quiet(max_wait: float, window: float = 0.5) -> float:
    """Wait until other processes use < 0.1 CPU for ``window`` s (at most ``max_wait`` s); seconds waited."""
    started = time.perf_counter()
    while True:
        before = machine_busy_seconds()
        time.sleep(window)
        after = machine_busy_seconds()
        waited = time.perf_counter() - started
        if before is None or after is None or after - before < 0.1 * window or waited >= max_wait:
            return waited


def measure(task: str, args: argparse.Namespace, label: str, *extra: str) -> dict[str, Any]:
    """One measurement on a quiet machine if possible, rerun (``--retries``) while others disturbed it."""
    discarded: list[dict[str, Any]] = []
    for attempt in range(args.retries + 1):
        waited = wait_for_quiet(args.quiet_wait)
        if waited > 1.0:
            print(f"  (waited {waited:.0f} s for other processes to finish)", flush=True)
        run = spawn_worker(task, "--trials", str(args.trials), "--predict-rows", str(args.predict_rows), *extra)
        run["attempts"] = attempt + 1
        other = run.get("other_cpu_seconds")
        note = "" if other is None else f", other processes {other:.2f} CPU s"
        flag = disturbed(run)
        print(
            f"  {label} {task:<9} {run['seconds']:9.3f} s (CPU {run['cpu_seconds']:.2f} s{note}, "
            f"peak RSS {run['peak_rss_kib'] / 1024:.0f} MiB)"
            + (" DISTURBED" + (", rerunning" if attempt < args.retries else ", kept") if flag else ""),
            flush=True,
        )
        run["disturbed"] = flag
        if not flag or attempt == args.retries:
            break
        discarded.append({"seconds": run["seconds"], "other_cpu_seconds": other})
    run["discarded_attempts"] = discarded
    return run


def summarize(runs: list[dict[str, Any]], part: str | None = None, rss_key: str = "peak_rss_kib") -> dict[str, Any]:
    """Medians of the whole run (``part=None``) or of one timed part of it."""
    timings = [r if part is None else r[part] for r in runs]
    others = [t["other_cpu_seconds"] for t in timings if t.get("other_cpu_seconds") is not None]
    return {
        "median_s": statistics.median(t["seconds"] for t in timings),
        "runs_s": [t["seconds"] for t in timings],
        "median_cpu_s": statistics.median(t["cpu_seconds"] for t in timings),
        "max_other_cpu_s": max(others) if others else None,
        "peak_rss_mib": max(r[rss_key] for r in runs) / 1024 if rss_key else None,
        "disturbed_runs": sum(bool(r.get("disturbed")) for r in runs),
        "reruns": sum(r.get("attempts", 1) - 1 for r in runs),
    }


def run_size(args: argparse.Namespace, size: int, scratch: Path) -> dict[str, Any]:
    """All stages for one size."""
    path = ensure_dataset(Path(args.data_dir), size, args.seed)
    out: dict[str, Any] = {"data": describe_dataset(path), "load_before": os.getloadavg()}
    dataset_dir, reference, model_path = (
        scratch / f"dataset_{size}",
        scratch / f"rfm_{size}.parquet",
        scratch / f"model_{size}.pkl",
    )
    label = f"{size:>9,}"
    runs: dict[str, list[dict[str, Any]]] = {"features": [], "pandas": [], "train": [], "predict": []}
    for i in range(args.repeats):  # ours and the pandas baseline alternate
        save = ["--save", str(dataset_dir)] if i == 0 else []
        runs["features"].append(
            measure("features", args, f"{label} run {i + 1}/{args.repeats}", "--parquet", str(path), *save)
        )
        save = ["--save", str(reference)] if i == 0 else []
        runs["pandas"].append(
            measure("pandas", args, f"{label} run {i + 1}/{args.repeats}", "--parquet", str(path), *save)
        )
    out["rfm_check"] = spawn_worker("rfm-check", "--dataset-dir", str(dataset_dir), "--reference", str(reference))
    train_repeats = args.train_repeats or args.repeats
    for i in range(train_repeats):
        save = ["--save", str(model_path)] if i == 0 else []
        runs["train"].append(
            measure("train", args, f"{label} run {i + 1}/{train_repeats}", "--dataset-dir", str(dataset_dir), *save)
        )
    for i in range(args.repeats):
        runs["predict"].append(
            measure(
                "predict",
                args,
                f"{label} run {i + 1}/{args.repeats}",
                "--dataset-dir",
                str(dataset_dir),
                "--model",
                str(model_path),
            )
        )
    out["load_after"] = os.getloadavg()
    first = runs["features"][0]
    out["dataset"] = {
        k: first[k]
        for k in (
            "orders",
            "snapshot_rows",
            "rows",
            "churn_rate",
            "plan",
            "features",
            "btyd_warnings",
            "training_share",
        )
    }
    out["model"] = {
        k: runs["train"][0].get(k)
        for k in (
            "train_rows",
            "calibration_rows",
            "trials",
            "best_score_cv",
            "tuning_metric",
            "best_iteration",
            "best_params",
            "test_auc",
        )
    }
    out["predict_info"] = {k: runs["predict"][0][k] for k in ("rows", "test_rows", "copies", "contribution_columns")}
    out["results"] = {
        "ingest": summarize(runs["features"], "ingest", "peak_rss_after_ingest_kib"),
        "build": summarize(runs["features"], "build", None),
        "btyd": summarize(runs["features"], "btyd", None),
        "build_excl_btyd": summarize(runs["features"], "build_excl_btyd", None),
        "features": summarize(runs["features"]),
        "pandas_read": summarize(runs["pandas"], "read", None),
        "pandas": summarize(runs["pandas"]),
        "train": summarize(runs["train"]),
        "predict_proba": summarize(runs["predict"], "predict_proba", "peak_rss_after_proba_kib"),
        "contributions": summarize(runs["predict"], "contributions"),
    }
    out["runs"] = runs
    out["pandas_rows"] = runs["pandas"][0]["snapshot_rows"]
    out["code_hashes"] = sorted({r.get("code_hash", "?") for stage in runs.values() for r in stage})
    return out


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    threads_env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ}
    info: dict[str, Any] = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform()},
        "versions": versions(
            ("numpy", "pandas", "pyarrow", "duckdb", "lightgbm", "optuna", "scikit-learn", "scipy", "clv_models")
        ),
        "thread_env": threads_env,
        "params": {
            "sizes": args.sizes,
            "seed": args.seed,
            "repeats": args.repeats,
            "train_repeats": args.train_repeats or args.repeats,
            "trials": args.trials,
            "predict_rows": args.predict_rows,
            "retries": args.retries,
            "quiet_wait": args.quiet_wait,
            "churn_settings": settings_for(args.trials).model_dump(),
        },
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="clv-bench-churn-") as scratch:
        for size in args.sizes:
            info["sizes"][str(size)] = run_size(args, size, Path(scratch))
    return info


def short(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def format_table(info: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    trials, predict_rows = info["params"]["trials"], info["params"]["predict_rows"]
    lines = [
        "| customers | stage | timed call | median s | runs s | CPU s | peak RSS | rows |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size, out in info["sizes"].items():
        r, d, m = out["results"], out["dataset"], out["model"]
        rows = [
            ("features", "`ingest` (incl. Parquet read)", "ingest", f"{d['orders']:,} orders"),
            ("", "`build_churn_dataset` + `add_btyd_features`", "build", f"{d['snapshot_rows']:,} snapshots"),
            ("", "… of which `add_btyd_features` (per-cutoff fits)", "btyd", ""),
            ("", "… of which `build_churn_dataset` (SQL features, labels)", "build_excl_btyd", ""),
            ("", "ingest + build (peak RSS: whole worker)", "features", ""),
            ("pandas baseline", "`pd.read_parquet` (outside its clock)", "pandas_read", ""),
            ("", "RFM core per cutoff (F, R, T only)", "pandas", f"{out['pandas_rows']:,} snapshots"),
            (
                "train",
                f"`ChurnClassifier.fit`, {trials} trials",
                "train",
                f"{m['train_rows']:,} train + {m['calibration_rows']:,} calib.",
            ),
            ("predict", "`predict_proba`", "predict_proba", f"{predict_rows:,}"),
            ("", "`contributions` (peak RSS: whole worker)", "contributions", f"{predict_rows:,}"),
        ]
        for i, (stage, call, key, count) in enumerate(rows):
            s = r[key]
            runs = ", ".join(f"{t:.2f}" for t in s["runs_s"])
            rss = "–" if s["peak_rss_mib"] is None else f"{s['peak_rss_mib']:,.0f} MiB"
            flag = " !" if s["disturbed_runs"] else ""
            lines.append(
                f"| {short(int(size)) if i == 0 else ''} | {stage} | {call} | {s['median_s']:.2f}{flag} | {runs} | "
                f"{s['median_cpu_s']:.1f} | {rss} | {count} |"
            )
    return "\n".join(lines)


def print_report(info: dict[str, Any]) -> bool:
    """Print the report; True when the pandas check passes at every size."""
    machine, v, p = info["machine"], info["versions"], info["params"]
    print()
    print(f"command : {info['command']}")
    print(f"machine : {machine['nproc']} CPUs, {machine['cpu']} ({machine['platform']})")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    if info["thread_env"]:
        print("threads : " + ", ".join(f"{k}={val}" for k, val in info["thread_env"].items()))
    print(
        f"run     : {p['repeats']} repeats (train {p['train_repeats']}), each in a fresh process; "
        f"{p['trials']} Optuna trials; predict {p['predict_rows']:,} rows; seed {p['seed']}"
    )
    print("settings: ChurnSettings(" + ", ".join(f"{k}={val!r}" for k, val in p["churn_settings"].items()) + ")")
    for size, out in info["sizes"].items():
        d, ds, m, pi = out["data"], out["dataset"], out["model"], out["predict_info"]
        rates = ", ".join(f"{k} {val:.1%}" for k, val in ds["churn_rate"].items())
        rows = ", ".join(f"{k} {val:,}" for k, val in ds["rows"].items())
        plan = ds["plan"]
        print(
            f"{int(size):,} customers: {d['orders']:,} orders ({d['orders_per_customer']:.2f} per customer), "
            f"{d['first_order'][:10]} – {d['last_order'][:10]}; {len(plan['train'])} training cutoffs "
            f"{plan['train'][0]} – {plan['train'][-1]}, validation {plan['validation']}, test {plan['test']}"
        )
        print(
            f"          snapshot rows {rows}; churn rate {rates}; {len(ds['features'])} features; "
            f"BTYD warnings {ds['btyd_warnings']}; training snapshots keep {ds['training_share']:.1%} of customers"
        )
        print(
            f"          model: trials {m['trials']}, CV {m['tuning_metric']} {m['best_score_cv']:.4f}, test AUC "
            f"{m['test_auc']:.4f}, {m['best_iteration']} rounds; predict: {pi['test_rows']:,} test rows "
            f"x{pi['copies']} -> {pi['rows']:,}, extra contribution columns {pi['contribution_columns']}; "
            f"load avg 1/5/15 before {format_load(out['load_before'])}, after {format_load(out['load_after'])}"
        )
    print()
    print(format_table(info))
    print()
    print(
        "CPU s = median user+system CPU of the timed call (all threads); peak RSS = max ru_maxrss of the worker\n"
        "(ingest row: read right after ingest; predict_proba row: right after it); ! = a run stayed disturbed."
    )
    reruns = sum(s["reruns"] for out in info["sizes"].values() for s in out["results"].values())
    print(f"runs disturbed by other processes and rerun: {reruns}")
    hashes = sorted({h for out in info["sizes"].values() for h in out["code_hashes"]})
    if len(hashes) == 1 and "→" not in hashes[0]:
        print(f"clv_models sources: {hashes[0]} (sha256 prefix), unchanged during the run")
    else:
        print(f"WARNING: the clv_models sources changed during the run ({', '.join(hashes)}): results mix versions")
    all_ok = True
    for size, out in info["sizes"].items():
        r, chk = out["results"], out["rfm_check"]
        all_ok &= chk["passed"]
        state = "PASS" if chk["passed"] else "FAIL: " + "; ".join(chk["problems"])
        print(
            f"{int(size):,}: pandas RFM core {r['pandas']['median_s']:.2f} s vs our build "
            f"{r['build']['median_s']:.2f} s "
            f"({r['build_excl_btyd']['median_s']:.2f} s without BTYD fits); "
            f"F/R/T of ours == pandas for our {chk['rows']:,} snapshot rows (baseline: {chk['rows_pandas']:,}): {state}"
        )
    return all_ok


# --------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1000:
        raise argparse.ArgumentTypeError("sizes must be a comma-separated list of integers >= 1000")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes(DEFAULT_SIZES),
        help=f"customers per table, comma-separated (default {DEFAULT_SIZES})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="numpy default_rng seed")
    parser.add_argument("--repeats", type=int, default=3, help="runs per stage and size, each in a fresh process")
    parser.add_argument("--train-repeats", type=int, default=None, help="runs of the train stage (default: --repeats)")
    parser.add_argument("--trials", type=int, default=10, help="Optuna trials of the classifier (default 10)")
    parser.add_argument(
        "--predict-rows", type=int, default=1_000_000, help="rows scored in the predict stage (default 1,000,000)"
    )
    parser.add_argument(
        "--retries", type=int, default=2, help="reruns of a measurement disturbed by other processes (default 2)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="before each run, wait up to this many seconds for other processes to go idle (default 120)",
    )
    parser.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help=f"where the simulated Parquet tables are cached (default {DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--json-out", default=None, help="also write all results as JSON here (e.g. benchmarks/results/churn.json)"
    )
    # Worker mode (internal).
    parser.add_argument(
        "--worker", choices=("features", "pandas", "rfm-check", "train", "predict"), help=argparse.SUPPRESS
    )
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    parser.add_argument("--dataset-dir", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or (args.train_repeats is not None and args.train_repeats < 1):
        parser.error("--repeats and --train-repeats must be >= 1")
    if args.trials < 1 or args.predict_rows < 1:
        parser.error("--trials and --predict-rows must be >= 1")
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        run_worker_mode(args)
        return 0
    info = run_benchmark(args)
    ok = print_report(info)
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(info, indent=2, default=str) + "\n")
        print(f"results : {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
