"""Benchmark: ``clv_models.features.rfm.rfm_summary`` vs lifetimes' RFM summary, same run.

What is measured
----------------
* **ours** - ``rfm_summary(<parquet path>, as_of=..., unit=...)``: DuckDB SQL run straight on the
  Parquet file, *including* reading it, up to the returned pandas DataFrame.
* **lifetimes** - ``lifetimes.utils.summary_data_from_transaction_data(df, "customer_id",
  "order_ts", monetary_value_col="amount", observation_period_end=<as_of>, freq=<unit>)`` on a
  DataFrame read from the same file, *excluding* the read. The read (``pandas.read_parquet``) is
  timed separately and reported on its own row.

Both get the same explicit cutoff ``as_of`` (the date of the last order in the data), so neither
pays for deriving it. Imports are done before the clock starts.

How
---
The data are synthetic canonical orders (``customer_id`` string, ``order_ts`` naive timestamp,
``amount`` float64 > 0), generated deterministically from ``numpy.random.default_rng(seed)``:
per-customer order counts are geometric (mean orders/customers), first orders uniform over two
years, later orders uniform between the first order and the end, with seconds-resolution times
of day (so several orders can fall in one day), amounts lognormal per customer and order,
rounded to cents. Rows are in time order, like a transaction log. The file is cached in
``--data-dir`` (keyed by size, seed and generator version) and reused by later runs.

Every measurement runs in a fresh subprocess (this script in ``--worker`` mode), so the peak
resident set size - ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end of the worker -
belongs to one tool alone (it includes the interpreter and the imported libraries). The worker
measures wall time (``time.perf_counter``) and CPU time (user + system, all threads) of the
timed call and prints one JSON line; the parent reports the median wall time, the median CPU
time and the maximum peak RSS over ``--repeats`` runs. The tools alternate (ours, lifetimes,
ours, ...) so that background load changes hit both alike; the load average before and after
is printed, since other work on the machine inflates wall times.

Correctness is checked once on the benchmark data: the first lifetimes run saves its result
(after its clock and RSS are read), and a separate check worker runs ``rfm_summary`` and compares
row for row, sorted by customer_id: frequency, recency and T exactly, monetary_value within
1e-9 (absolute or relative).

Usage::

    python benchmarks/bench_rfm.py                        # 10M orders, 3M customers, 3 repeats
    python benchmarks/bench_rfm.py --orders 1000000 --customers 300000 --repeats 1
    python benchmarks/bench_rfm.py --skip-lifetimes --threads 1
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
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "clv-bench-rfm-data"
START = dt.datetime(2022, 1, 1)
SPAN_DAYS = 730
RESULT_MARKER = "BENCH_RESULT "
SPEED_TARGET = 10.0  # lifetimes / ours
MEMORY_TARGET_BYTES = 2 * 10**9  # "2 GB" read strictly (1907 MiB)


# --------------------------------------------------------------------------------------------
# Data


def generate_orders(n_orders: int, n_customers: int, seed: int):  # -> pyarrow.Table
    """Synthetic canonical orders: exactly ``n_orders`` rows over ``n_customers`` customers."""
    import numpy as np
    import pyarrow as pa

    if n_customers < 1 or n_orders < n_customers:
        raise ValueError("need 1 <= customers <= orders (every customer has at least one order)")
    rng = np.random.default_rng(seed)

    # Orders per customer: geometric (>= 1) with mean orders/customers, then nudged to the exact total.
    counts = rng.geometric(n_customers / n_orders, n_customers).astype(np.int64)
    surplus = int(counts.sum()) - n_orders
    if surplus < 0:
        counts += np.bincount(rng.integers(0, n_customers, -surplus), minlength=n_customers)
    elif surplus > 0:
        repeat_owner = np.repeat(np.arange(n_customers), counts - 1)  # one entry per repeat order
        dropped = rng.choice(repeat_owner.size, surplus, replace=False)
        counts -= np.bincount(repeat_owner[dropped], minlength=n_customers)
    customer = np.repeat(np.arange(n_customers), counts)
    first = np.zeros(n_orders, dtype=bool)
    first[np.cumsum(counts) - counts] = True

    # Times: first order uniform over the span, later ones uniform between it and the end.
    span_s = SPAN_DAYS * 86_400
    birth_s = rng.integers(0, span_s, n_customers)[customer]
    later_s = birth_s + (rng.random(n_orders) * (span_s - birth_s)).astype(np.int64)
    offset_s = np.where(first, birth_s, later_s)
    order_ts = np.datetime64(START, "s") + offset_s.astype("timedelta64[s]")

    # Amounts: lognormal, customer-level mean times order-level noise, in cents.
    log_mean = rng.normal(3.5, 0.7, n_customers)[customer]
    amount = np.maximum(np.round(np.exp(log_mean + rng.normal(0.0, 0.5, n_orders)), 2), 0.01)

    order = np.argsort(offset_s, kind="stable")  # a transaction log, in time order
    ids = pa.array([f"C{i:08d}" for i in range(n_customers)], type=pa.string())
    return pa.table(
        {
            "customer_id": ids.take(pa.array(customer[order])),
            "order_ts": pa.array(order_ts[order].astype("datetime64[us]"), type=pa.timestamp("us")),
            "amount": pa.array(amount[order], type=pa.float64()),
        }
    )


def ensure_dataset(data_dir: Path, n_orders: int, n_customers: int, seed: int) -> Path:
    """Path of the cached Parquet for these parameters, generating it (atomically) if missing."""
    import pyarrow.parquet as pq

    path = data_dir / f"orders_n{n_orders}_c{n_customers}_s{seed}_v{GENERATOR_VERSION}.parquet"
    if path.exists():
        print(f"data: reusing {path}", flush=True)
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"data: generating {n_orders:,} orders for {n_customers:,} customers -> {path}", flush=True)
    started = time.perf_counter()
    table = generate_orders(n_orders, n_customers, seed)
    partial = path.with_suffix(f".tmp{os.getpid()}")
    pq.write_table(table, partial)
    partial.replace(path)
    print(f"data: generated in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def last_order_date(path: Path) -> dt.date:
    """Date of the latest order in the file: the cutoff given to both tools."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return pc.max(pq.read_table(path, columns=["order_ts"])["order_ts"]).as_py().date()


# --------------------------------------------------------------------------------------------
# Workers (each runs in its own process)


def resource_usage() -> dict[str, float]:
    """Peak RSS (KiB on Linux) and CPU seconds (user + system, all threads) of this process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_kib": usage.ru_maxrss, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def duckdb_default_threads() -> int:
    import duckdb

    with duckdb.connect(":memory:") as con:
        return int(con.execute("SELECT current_setting('threads')").fetchone()[0])


def run_ours(path: Path, as_of: dt.date, unit: str, threads: int | None) -> tuple[Any, float, float]:
    """``rfm_summary`` on the file: (frame, wall seconds, CPU seconds), imports done beforehand."""
    import duckdb  # noqa: F401  (imported before the clock starts, as rfm_summary imports lazily)
    import pandas  # noqa: F401

    from clv_models.features.rfm import rfm_summary

    cpu_before = resource_usage()["cpu_seconds"]
    started = time.perf_counter()
    frame = rfm_summary(path, as_of=as_of, unit=unit, threads=threads)
    seconds = time.perf_counter() - started
    return frame, seconds, resource_usage()["cpu_seconds"] - cpu_before


def worker_ours(path: Path, as_of: dt.date, unit: str, threads: int | None) -> dict[str, Any]:
    frame, seconds, cpu_seconds = run_ours(path, as_of, unit, threads)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_kib": resource_usage()["peak_rss_kib"],
        "rows": len(frame),
        "threads": threads or duckdb_default_threads(),
    }


def worker_lifetimes(path: Path, as_of: dt.date, unit: str, save_result: Path | None) -> dict[str, Any]:
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        # lifetimes sets a pandas option at import that pandas 3 deprecates (FutureWarning).
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from lifetimes.utils import summary_data_from_transaction_data

        started = time.perf_counter()
        orders = pd.read_parquet(path)
        read_seconds = time.perf_counter() - started

        cpu_before = resource_usage()["cpu_seconds"]
        started = time.perf_counter()
        summary = summary_data_from_transaction_data(
            orders,
            "customer_id",
            "order_ts",
            monetary_value_col="amount",
            observation_period_end=pd.Timestamp(as_of),
            freq=unit,
        )
        seconds = time.perf_counter() - started
    usage = resource_usage()
    result = {
        "seconds": seconds,
        "cpu_seconds": usage["cpu_seconds"] - cpu_before,
        "read_seconds": read_seconds,
        "peak_rss_kib": usage["peak_rss_kib"],
        "rows": len(summary),
    }
    if save_result is not None:  # after the clock and the RSS reading
        summary.rename_axis("customer_id").reset_index().to_parquet(save_result, index=False)
    return result


def compare_summaries(ours, reference) -> dict[str, Any]:
    """Row-for-row comparison of two RFM summaries: customer_id, frequency, recency, T, monetary_value."""
    import numpy as np

    report: dict[str, Any] = {"rows_ours": len(ours), "rows_lifetimes": len(reference), "problems": []}
    if not ours["customer_id"].is_monotonic_increasing:
        report["problems"].append("ours is not sorted by customer_id")
    ours = ours.sort_values("customer_id", kind="stable").reset_index(drop=True)
    reference = reference.sort_values("customer_id", kind="stable").reset_index(drop=True)
    if len(ours) != len(reference):
        report["problems"].append(f"row counts differ: {len(ours)} vs {len(reference)}")
    elif not np.array_equal(ours["customer_id"].to_numpy(str), reference["customer_id"].to_numpy(str)):
        report["problems"].append("customer_id sequences differ")
    else:
        for column in ("frequency", "recency", "T"):
            differ = int((ours[column].to_numpy(float) != reference[column].to_numpy(float)).sum())
            if differ:
                report["problems"].append(f"{column}: {differ} rows differ")
        a = ours["monetary_value"].to_numpy(float)
        b = reference["monetary_value"].to_numpy(float)
        abs_diff = np.abs(a - b)
        rel_diff = abs_diff / np.maximum(np.abs(b), np.finfo(float).tiny)
        outside = int((~((abs_diff <= 1e-9) | (rel_diff <= 1e-9))).sum())
        report["monetary_max_abs_diff"] = float(abs_diff.max(initial=0.0))
        report["monetary_max_rel_diff"] = float(rel_diff.max(initial=0.0))
        if outside:
            report["problems"].append(f"monetary_value: {outside} rows differ by more than 1e-9")
    report["passed"] = not report["problems"]
    return report


def worker_check(path: Path, as_of: dt.date, unit: str, threads: int | None, reference: Path) -> dict[str, Any]:
    import pandas as pd

    ours, _, _ = run_ours(path, as_of, unit, threads)
    return compare_summaries(ours, pd.read_parquet(reference))


def run_worker_mode(args: argparse.Namespace) -> None:
    path, as_of = Path(args.parquet), dt.date.fromisoformat(args.as_of)
    if args.worker == "ours":
        result = worker_ours(path, as_of, args.unit, args.threads)
    elif args.worker == "lifetimes":
        result = worker_lifetimes(path, as_of, args.unit, Path(args.save_result) if args.save_result else None)
    else:
        result = worker_check(path, as_of, args.unit, args.threads, Path(args.reference))
    print(RESULT_MARKER + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------
# Parent: orchestration and report


def spawn_worker(kind: str, path: Path, as_of: dt.date, unit: str, *extra: str) -> dict[str, Any]:
    """Run this script as a ``kind`` worker in a fresh interpreter; its JSON result."""
    return _harness.spawn_worker(
        __file__, RESULT_MARKER, kind, "--parquet", str(path), "--as-of", as_of.isoformat(), "--unit", unit, *extra
    )


def summarize(runs: list[dict[str, Any]], key: str = "seconds") -> dict[str, Any]:
    times = [run[key] for run in runs]
    stats: dict[str, Any] = {"median_s": statistics.median(times), "runs_s": times}
    if key == "seconds":
        stats["median_cpu_s"] = statistics.median(run["cpu_seconds"] for run in runs)
        stats["peak_rss_mib"] = max(run["peak_rss_kib"] for run in runs) / 1024
    return stats


def format_table(rows: list[tuple[str, dict[str, Any] | None]]) -> str:
    header = f"{'tool':<36} {'median s':>8}  {'runs s':<22} {'CPU s':>6} {'peak RSS MiB':>12}"
    lines = [header, "-" * len(header)]
    for name, stats in rows:
        if stats is None:
            continue
        runs = ", ".join(f"{t:.2f}" for t in stats["runs_s"])
        cpu = f"{stats['median_cpu_s']:.1f}" if "median_cpu_s" in stats else "-"
        rss = f"{stats['peak_rss_mib']:.0f}" if "peak_rss_mib" in stats else "-"
        lines.append(f"{name:<36} {stats['median_s']:>8.2f}  {runs:<22} {cpu:>6} {rss:>12}")
    return "\n".join(lines)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Generate or reuse the data, run the workers (ours and lifetimes alternating), check once."""
    info: dict[str, Any] = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform()},
        "versions": versions(("duckdb", "pandas", "pyarrow", "numpy", "lifetimes", "clv_models")),
        "params": {
            "orders": args.orders,
            "customers": args.customers,
            "seed": args.seed,
            "repeats": args.repeats,
            "unit": args.unit,
            "threads": args.threads,
        },
    }
    path = ensure_dataset(Path(args.data_dir), args.orders, args.customers, args.seed)
    as_of = last_order_date(path)
    info["data"] = {"path": str(path), "bytes": path.stat().st_size, "as_of": as_of.isoformat()}
    thread_args = ["--threads", str(args.threads)] if args.threads else []
    info["load_before"] = os.getloadavg()

    ours_runs: list[dict[str, Any]] = []
    lifetimes_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="clv-bench-rfm-") as scratch:
        reference = Path(scratch) / "lifetimes_summary.parquet"
        # Alternate the tools so that any change in background load hits both alike.
        for i in range(args.repeats):
            run = spawn_worker("ours", path, as_of, args.unit, *thread_args)
            ours_runs.append(run)
            print(
                f"run {i + 1}/{args.repeats} ours     : {run['seconds']:6.2f} s (CPU {run['cpu_seconds']:.1f} s)",
                flush=True,
            )
            if args.skip_lifetimes:
                continue
            save = ["--save-result", str(reference)] if i == 0 else []
            run = spawn_worker("lifetimes", path, as_of, args.unit, *save)
            lifetimes_runs.append(run)
            print(
                f"run {i + 1}/{args.repeats} lifetimes: {run['seconds']:6.2f} s "
                f"(CPU {run['cpu_seconds']:.1f} s; + read {run['read_seconds']:.2f} s)",
                flush=True,
            )
        info["load_after"] = os.getloadavg()
        if lifetimes_runs:
            info["check"] = spawn_worker("check", path, as_of, args.unit, *thread_args, "--reference", str(reference))
    info["ours"] = summarize(ours_runs) | {"rows": ours_runs[0]["rows"], "threads": ours_runs[0]["threads"]}
    if lifetimes_runs:
        info["lifetimes"] = summarize(lifetimes_runs) | {"rows": lifetimes_runs[0]["rows"]}
        info["lifetimes_read"] = summarize(lifetimes_runs, "read_seconds")
    return info


def print_report(info: dict[str, Any]) -> None:
    machine, v, params, data = info["machine"], info["versions"], info["params"], info["data"]
    print()
    print(f"command : {info['command']}")
    print(
        f"machine : {machine['nproc']} CPUs, {machine['cpu']} ({machine['platform']}); "
        f"load avg 1/5/15 min before {format_load(info['load_before'])}, after {format_load(info['load_after'])}"
    )
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print(
        f"data    : {params['orders']:,} orders, {params['customers']:,} customers, seed {params['seed']}, "
        f"{data['bytes'] / 2**20:.0f} MiB Parquet ({data['path']})"
    )
    print(
        f"run     : as_of {data['as_of']}, unit {params['unit']}, {params['repeats']} repeats per tool, "
        f"each in a fresh process, tools alternating"
    )
    print()
    print(
        format_table(
            [
                (f"ours: rfm_summary (DuckDB {info['ours']['threads']} thr) *", info["ours"]),
                (f"lifetimes {v['lifetimes']} summary **", info.get("lifetimes")),
                ("lifetimes' pd.read_parquet", info.get("lifetimes_read")),
            ]
        )
    )
    print(
        "  *  includes reading the Parquet file"
        + ("   ** excludes pd.read_parquet (timed on the row below)" if "lifetimes" in info else "")
    )
    print("  CPU s = median user+system CPU of the timed call; peak RSS = max over runs of the whole worker")
    print(
        f"  rows: ours {info['ours']['rows']:,}"
        + (f", lifetimes {info['lifetimes']['rows']:,}" if "lifetimes" in info else "")
    )
    print()
    ours = info["ours"]
    memory_ok = ours["peak_rss_mib"] * 2**20 <= MEMORY_TARGET_BYTES
    print(
        f"memory  : ours peak RSS {ours['peak_rss_mib']:.0f} MiB = {ours['peak_rss_mib'] * 2**20 / 1e9:.2f} GB "
        f"(target <= 2 GB: {'met' if memory_ok else 'MISSED'})"
    )
    if "lifetimes" not in info:
        print("speed   : lifetimes skipped (--skip-lifetimes)\ncheck   : SKIPPED")
        return
    ratio = info["lifetimes"]["median_s"] / ours["median_s"]
    with_read = (info["lifetimes"]["median_s"] + info["lifetimes_read"]["median_s"]) / ours["median_s"]
    print(
        f"speed   : lifetimes/ours = {ratio:.1f}x on median wall time "
        f"(target >= {SPEED_TARGET:.0f}x: {'met' if ratio >= SPEED_TARGET else 'MISSED'}); "
        f"{with_read:.1f}x counting lifetimes' read"
    )
    check = info["check"]
    verdict = "PASS" if check["passed"] else "FAIL: " + "; ".join(check["problems"])
    details = ""
    if "monetary_max_abs_diff" in check:
        details = (
            f" ({check['rows_ours']:,} rows; monetary_value max abs diff "
            f"{check['monetary_max_abs_diff']:.3g}, max rel diff {check['monetary_max_rel_diff']:.3g})"
        )
    print(f"check   : ours == lifetimes row for row: {verdict}{details}")


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000_000, help="orders to generate (default 10M)")
    parser.add_argument("--customers", type=int, default=3_000_000, help="customers (default 3M)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="numpy default_rng seed")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool, each in a fresh process")
    parser.add_argument("--unit", choices=("D", "W"), default="D", help="period unit (lifetimes freq)")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all)")
    parser.add_argument("--skip-lifetimes", action="store_true", help="time ours only (no check)")
    parser.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help=f"where the generated Parquet is cached (default {DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--json-out", default=None, help="also write all results as JSON here (e.g. benchmarks/results/rfm.json)"
    )
    # Worker mode (internal).
    parser.add_argument("--worker", choices=("ours", "lifetimes", "check"), help=argparse.SUPPRESS)
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--save-result", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        run_worker_mode(args)
        return 0
    info = run_benchmark(args)
    print_report(info)
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(info, indent=2) + "\n")
        print(f"results : {out}")
    return 0 if info.get("check", {}).get("passed", True) else 1


if __name__ == "__main__":
    sys.exit(main())
