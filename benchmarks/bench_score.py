"""Benchmark: `clv score` end to end on 1M customers (about 3M orders), against a straightforward
lifetimes + pandas pipeline, each run in a fresh process.

What is measured
----------------
* **ours** - ``clv_models.scoring.job.score(settings, model_uri=<exported model dir>, out=...)``:
  the whole batch job as ``clv score --model DIR`` runs it: DuckDB reads the Parquet file
  (inside the clock), validation and quarantine, RFM and the point-in-time churn features per
  chunk of 250,000 customers, the pyfunc model (MLflow signature enforcement, BG/NBD +
  Gamma-Gamma + CLV, the stored daily BTYD feature models, the LightGBM churn classifier,
  segments, tiers, risk bands, lifecycle, next best action, labels), the Parquet output written
  atomically, and the MLflow scoring run (counts, shares, PSI) in a scratch store.
* **lifetimes + pandas** - ``pandas.read_parquet`` (inside the clock), lifetimes'
  ``summary_data_from_transaction_data`` (daily), ``BetaGeoFitter`` / ``GammaGammaFitter`` with
  our scorer's fitted parameters set (no fitting), ``conditional_probability_alive``,
  ``conditional_expected_number_of_purchases_up_to_time`` (365.25 days),
  ``conditional_expected_average_profit``, ``customer_lifetime_value`` (12 months, 10 % a year
  as 0.1/12 a month, lifetimes' 30-day months), value tiers from the same cut points, and
  ``DataFrame.to_parquet``. It does *less* than ours: no validation or quarantine, no churn
  features or churn model, no segments, lifecycle stages or actions, no MLflow.

The scorer is trained once per dataset (``train`` with ``--trials`` Optuna trials on the same
synthetic orders, into a scratch MLflow store) and exported to a directory; that set-up is not
timed. Orders come from ``bench_churn.simulate_orders`` (cached Parquet, same generator). Each
worker imports its libraries before the clock and reports wall time, its own CPU time and its
peak RSS (``ru_maxrss``, interpreter and libraries included); other processes' CPU during a run
is measured and a disturbed run is rerun (as in ``bench_churn.py``). Medians over ``--repeats``.

Usage::

    python benchmarks/bench_score.py                              # 1M customers, 3 repeats
    python benchmarks/bench_score.py --customers 100000 --repeats 1 --trials 2   # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_churn  # noqa: E402  (the order simulator and the worker/measurement helpers)
from _harness import cpu_model, versions  # noqa: E402

RESULT_MARKER = "BENCH_SCORE_RESULT "
STAMP = "2026-01-01T00:00:00"


def settings_for(orders: Path, root: Path, trials: int, extra: Sequence[str] = ()) -> Any:
    """The benchmark's settings; ``extra`` are further ``section.key=value`` overrides."""
    from clv_models.config import load_settings

    return load_settings(
        None,
        [
            f'orders.path="{orders}"',
            f"churn.n_trials={trials}",
            f'tracking.root="{root}"',
            f'validation.quarantine="{root}/quarantine.parquet"',
            *extra,
        ],
        {"orders.columns": {"customer_id": "customer_id", "order_id": "order_id", "order_ts": "order_ts",
                            "amount": "amount", "country": "country"}},  # fmt: skip
    )


def prepare_model(orders: Path, scratch: Path, trials: int) -> Path:
    """Train and export a scorer for this dataset (cached); not timed."""
    model_dir = scratch / f"model_{orders.stem}_t{trials}"
    if (model_dir / "MLmodel").is_file():
        print(f"model: reusing {model_dir}", flush=True)
        return model_dir
    from clv_models.tracking.mlflow_tracking import tracking_uri
    from clv_models.tracking.registry import export_scorer
    from clv_models.training.pipeline import train

    root = scratch / f"train_{orders.stem}"
    print(f"model: training on {orders.name} ({trials} trials), not timed ...", flush=True)
    started = time.perf_counter()
    result = train(settings_for(orders, root, trials), force=True)
    export_scorer(f"models:/clv-customer-scorer/{result.model_version}", model_dir, tracking_uri=tracking_uri(root))
    print(f"model: trained and exported in {time.perf_counter() - started:.0f} s -> {model_dir}", flush=True)
    return model_dir


def worker_ours(orders: Path, model_dir: Path, out: Path, root: Path) -> dict[str, Any]:
    from clv_models.scoring.job import score

    settings = settings_for(orders, root, 1)
    result, timing = bench_churn.timed(
        lambda: score(settings, model_uri=str(model_dir), out=out, scored_at=dt.datetime.fromisoformat(STAMP))
    )
    return {**timing, **bench_churn.own_usage(), "customers": result.customers, "chunks": result.chunks}


def worker_lifetimes(orders: Path, model_dir: Path, out: Path) -> dict[str, Any]:
    import joblib
    import numpy as np
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    scorer = joblib.load(next(model_dir.rglob("customer_scorer.joblib")))
    bgnbd, gamma_gamma = scorer.models.purchases.params_, scorer.models.gamma_gamma.params_
    cuts = scorer.models.tiers.cut_points_

    def run() -> int:
        frame = pd.read_parquet(orders, columns=["customer_id", "order_ts", "amount"])
        rfm = summary_data_from_transaction_data(
            frame, "customer_id", "order_ts", monetary_value_col="amount", freq="D",
            observation_period_end=frame["order_ts"].max().normalize(),
        )  # fmt: skip
        bgf = BetaGeoFitter()
        bgf.params_ = pd.Series({k: bgnbd[k] for k in ("r", "alpha", "a", "b")})
        bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time  # what fit() would attach
        ggf = GammaGammaFitter()
        ggf.params_ = pd.Series({"p": gamma_gamma["p"], "q": gamma_gamma["q"], "v": gamma_gamma["gamma"]})
        x, t_x, T, m = rfm["frequency"], rfm["recency"], rfm["T"], rfm["monetary_value"]
        out_frame = pd.DataFrame(index=rfm.index)
        out_frame["p_alive"] = bgf.conditional_probability_alive(x, t_x, T)
        expected = bgf.conditional_expected_number_of_purchases_up_to_time(365.25, x, t_x, T)
        out_frame["expected_purchases_h"] = expected
        out_frame["expected_order_value"] = ggf.conditional_expected_average_profit(x, m)
        clv = ggf.customer_lifetime_value(bgf, x, t_x, T, m, time=12, discount_rate=0.1 / 12, freq="D")
        out_frame["clv_h"] = clv.to_numpy()
        medium_or_low = np.where(clv >= cuts["medium"], "medium", "low")
        out_frame["value_tier"] = np.where(clv >= cuts["high"], "high", medium_or_low)
        out_frame.reset_index().to_parquet(out, index=False)
        return len(out_frame)

    customers, timing = bench_churn.timed(run)
    return {**timing, **bench_churn.own_usage(), "customers": customers}


def run_worker_mode(args: argparse.Namespace) -> None:
    if args.worker == "prepare":
        prepare_model(Path(args.orders), Path(args.model_dir), args.trials)
        return
    orders, model_dir, out = Path(args.orders), Path(args.model_dir), Path(args.out)
    if args.worker == "ours":
        result = worker_ours(orders, model_dir, out, Path(args.root))
    else:
        result = worker_lifetimes(orders, model_dir, out)
    print(RESULT_MARKER + json.dumps(result), flush=True)


def spawn(kind: str, orders: Path, model_dir: Path, out: Path, root: Path) -> dict[str, Any]:
    import subprocess

    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--orders", str(orders),
               "--model-dir", str(model_dir), "--out", str(out), "--root", str(root)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} worker failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_MARKER) :])


def measure(
    kind: str, args: argparse.Namespace, orders: Path, model_dir: Path, out: Path, root: Path
) -> dict[str, Any]:
    for _ in range(args.retries + 1):
        bench_churn.wait_for_quiet(args.quiet_wait)
        run = spawn(kind, orders, model_dir, out, root)
        flag = bench_churn.disturbed(run)
        other = run.get("other_cpu_seconds")
        print(f"  {kind:<10} {run['seconds']:8.2f} s (CPU {run['cpu_seconds']:.1f} s, other processes "
              f"{other if other is None else round(other, 2)} CPU s, peak RSS {run['peak_rss_kib'] / 1024:.0f} MiB)"
              + (" DISTURBED" if flag else ""), flush=True)  # fmt: skip
        run["disturbed"] = flag
        if not flag:
            break
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3, help="Optuna trials of the (untimed) training")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "clv-bench-data"))
    parser.add_argument("--scratch", default=str(Path(tempfile.gettempdir()) / "clv-bench-score"))
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--json-out")
    parser.add_argument("--worker", choices=["ours", "lifetimes", "prepare"], help=argparse.SUPPRESS)
    parser.add_argument("--orders", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker_mode(args)
        return 0
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    orders = bench_churn.ensure_dataset(Path(args.data_dir), args.customers, args.seed)
    described = bench_churn.describe_dataset(orders)
    print(f"data: {described['orders']:,} orders of {described['customers_with_orders']:,} customers", flush=True)
    # Trained in a child process: Linux keeps ru_maxrss across fork + exec, so a parent that had
    # trained in-process would hand its multi-GB peak to every worker it starts.
    model_dir = scratch / f"model_{orders.stem}_t{args.trials}"
    if not (model_dir / "MLmodel").is_file():
        import subprocess

        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", "prepare", "--orders", str(orders),
                        "--model-dir", str(scratch), "--trials", str(args.trials)], check=True)  # fmt: skip
    print(f"model: {model_dir}", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "lifetimes": []}
    for repeat in range(args.repeats):
        print(f"repeat {repeat + 1}/{args.repeats}", flush=True)
        for kind in ("ours", "lifetimes"):
            out = scratch / f"scores_{kind}.parquet"
            runs[kind].append(measure(kind, args, orders, model_dir, out, scratch / "score_store"))
    summary = {
        kind: {
            "median_s": statistics.median(r["seconds"] for r in rs),
            "runs_s": [round(r["seconds"], 2) for r in rs],
            "peak_rss_mib": max(r["peak_rss_kib"] for r in rs) / 1024,
            "customers": rs[0]["customers"],
        }
        for kind, rs in runs.items()
    }
    ratio = summary["lifetimes"]["median_s"] / summary["ours"]["median_s"]
    packages = ("duckdb", "pandas", "numpy", "lightgbm", "mlflow", "lifetimes")
    info = {"machine": cpu_model(), "versions": versions(packages), "data": described, "summary": summary,
            "ratio_lifetimes_over_ours": ratio}  # fmt: skip
    print(json.dumps(info, indent=2))
    ours = summary["ours"]
    print(f"\nours: {ours['median_s']:.1f} s median, peak RSS {ours['peak_rss_mib']:.0f} MiB for {ours['customers']:,} "
          f"customers; lifetimes + pandas (less work): {summary['lifetimes']['median_s']:.1f} s, "
          f"{summary['lifetimes']['peak_rss_mib']:.0f} MiB; ratio {ratio:.2f}x. "
          f"Targets: <= 30 s {'met' if ours['median_s'] <= 30 else 'NOT met'}, <= 2 GB "
          f"{'met' if ours['peak_rss_mib'] <= 2048 else 'NOT met'}")  # fmt: skip
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
