"""Benchmark: scoring at scale - 10M customers (about 31M orders) scored out of core, each run in
a fresh process: wall time, peak memory, throughput and where the time goes.

What is measured
----------------
* **embedded** - ``clv_models.scoring.job.score(settings, model_uri=<exported model dir>,
  out=...)``, the whole batch job as ``clv score --model DIR`` runs it (see ``bench_score.py``):
  DuckDB reads the Parquet file (inside the clock), validation and quarantine, RFM of every
  customer, then per chunk of ``scoring.chunk_customers`` (250,000) customers the point-in-time
  churn features in DuckDB, the pyfunc model (which applies the BTYD feature models stored in
  the scorer: nothing is fitted at scoring) and one Parquet row group; the atomic rename and the
  MLflow scoring run (counts, shares, PSI) in a scratch store. DuckDB is capped by ``scoring.duckdb_memory_limit`` (default 1GB) and spills to
  a temporary directory beyond it; ``--set scoring.duckdb_memory_limit='"2GB"'`` and other
  ``section.key=value`` overrides change the settings of every run.
* **spark** - ``clv_models.scoring.spark_job.score_spark`` on ``local[2]`` (``--engines spark`` or
  ``embedded,spark``, alternating on the same data and model): the session start, Spark's
  ingestion, features, ``mapInPandas`` scoring, the Parquet directory and
  the MLflow run. Memory is the peak over the whole process tree (driver, JVM, Python workers),
  sampled every 0.2 s; CPU is the tree's. Phases are the job's own progress steps.

Reported per run: wall time, CPU time of the worker (all threads), CPU used by other processes
meanwhile (a run where they used more than 0.1 s + 10 % of its wall time is "disturbed" and rerun,
``--retries``), peak RSS (``ru_maxrss`` of the worker: interpreter, libraries, pandas frames and
DuckDB's buffers), customers per second, the 1/5/15-minute load average before and after, and a
phase breakdown: the worker wraps ``load_scorer``, ``ingest``, ``rfm_summary``,
``churn_snapshots`` (the per-chunk features SQL), ``join_features`` (the per-chunk feature
table), ``predict_codes`` (the pyfunc model, BTYD feature values included) and the Parquet
writer and the sort that clusters the orders by customer with timers (cumulative wall and process
CPU seconds, calls, and ``ru_maxrss`` when each phase last ended, which shows where the peak was
reached); "other" is the wall time outside every timed call (the chunk table, labels and drift
counts, the MLflow run). Medians over
``--repeats`` (at least 2 at 10M).

The model is trained on a *smaller* base from the same generator (``--train-customers``, default
1M, ``--trials`` Optuna trials) with ``bench_score.prepare_model`` in a child process and
exported; the set-up is not timed and is cached under ``--scratch``. Orders come from
``bench_churn.simulate_orders`` (cached Parquet in ``--data-dir``; the 10M file is about 0.6 GB,
simulating it takes about 1 min and 5.5 GB of RAM, in a child process so no worker inherits that
peak). Targets (from the issue, 2 cores): embedded <= 5 minutes and <= 6 GB peak RSS (read
strictly as 6e9 bytes).

Usage::

    python benchmarks/bench_scale.py                                  # 10M customers, 2 repeats
    python benchmarks/bench_scale.py --customers 1000000 --repeats 1  # quick
    python benchmarks/bench_scale.py --set scoring.chunk_customers=500000 --json-out /tmp/scale.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_churn  # noqa: E402  (the order simulator and the measurement helpers)
import bench_score  # noqa: E402  (settings and the untimed model training)
from _harness import cpu_model, format_load, spawn_worker, versions  # noqa: E402

RESULT_MARKER = "BENCH_SCALE_RESULT "
STAMP = bench_score.STAMP
TARGET_SECONDS = 300.0
TARGET_RSS_BYTES = 6e9


# --------------------------------------------------------------------------------------------
# Workers (each runs in its own process)


class PhaseClock:
    """Per wrapped function: cumulative wall seconds, process CPU seconds (all threads, so a call
    that overlaps another thread's work is charged for both), calls, and ``ru_maxrss`` (KiB) when
    it last returned."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}
        self.intervals: list[tuple[float, float]] = []

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), bench_churn.own_usage()["cpu_seconds"]
            try:
                return function(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                entry = self.phases.setdefault(
                    name, {"seconds": 0.0, "cpu_seconds": 0.0, "calls": 0, "rss_kib_after": 0}
                )
                entry["seconds"] += ended - started
                entry["cpu_seconds"] += bench_churn.own_usage()["cpu_seconds"] - cpu
                entry["calls"] += 1
                entry["rss_kib_after"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                self.intervals.append((started, ended))

        return timed_call

    def covered_seconds(self) -> float:
        """Wall time inside at least one wrapped call (overlapping calls counted once)."""
        total, reach = 0.0, float("-inf")
        for start, end in sorted(self.intervals):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total

    def patch(self, owner: Any, attribute: str, name: str) -> None:
        setattr(owner, attribute, self.wrap(name, getattr(owner, attribute)))


def worker_embedded(orders: Path, model_dir: Path, out: Path, root: Path, overrides: list[str]) -> dict[str, Any]:
    """``score`` in this process; job.py imports these functions at call time, so patching the
    modules' attributes times them."""
    from importlib import import_module  # the modules (packages re-export functions of the same names)

    ingest_module = import_module("clv_models.data.ingest")
    churn_module = import_module("clv_models.features.churn")
    customer_module = import_module("clv_models.features.customer")
    rfm_module = import_module("clv_models.features.rfm")
    job_module = import_module("clv_models.scoring.job")
    registry_module = import_module("clv_models.tracking.registry")

    clock = PhaseClock()
    clock.patch(registry_module, "load_scorer", "load_model")
    clock.patch(ingest_module, "ingest", "ingest")
    clock.patch(rfm_module, "rfm_summary", "rfm")
    if hasattr(job_module, "_cluster_by_customer"):
        clock.patch(job_module, "_cluster_by_customer", "cluster")
    clock.patch(churn_module, "churn_snapshots", "chunk_features_sql")
    clock.patch(customer_module, "join_features", "chunk_join")
    clock.patch(registry_module.LoadedScorer, "predict_codes", "predict")
    clock.patch(job_module._Writer, "write", "write")
    clock.patch(job_module._Writer, "commit", "write")
    chunk_ends: list[float] = []
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        chunk_ends.append(time.perf_counter() - started)

    settings = bench_score.settings_for(orders, root, 1, overrides)
    result, timing = bench_churn.timed(
        lambda: job_module.score(
            settings, model_uri=str(model_dir), out=out, scored_at=dt.datetime.fromisoformat(STAMP), progress=progress
        )
    )
    phases = clock.phases
    phases["other"] = {  # chunk bookkeeping, labels, drift counts, the MLflow run
        "seconds": max(timing["seconds"] - clock.covered_seconds(), 0.0),
        "cpu_seconds": max(timing["cpu_seconds"] - sum(p["cpu_seconds"] for p in phases.values()), 0.0),
        "calls": 1,
        "rss_kib_after": 0,
    }
    chunk_seconds = [b - a for a, b in zip(chunk_ends, chunk_ends[1:], strict=False)]
    return {
        **timing,
        **bench_churn.own_usage(),
        "customers": result.customers,
        "chunks": result.chunks,
        "phases": phases,
        "first_chunk_done_s": chunk_ends[0] if chunk_ends else None,
        "chunk_seconds": chunk_seconds,
        "out_bytes": out.stat().st_size,
        "drift_warnings": result.drift_warnings,
        "settings": {
            "chunk_customers": settings.scoring.chunk_customers,
            "duckdb_memory_limit": settings.scoring.duckdb_memory_limit,
        },
    }


def _tree_usage(root_pid: int) -> tuple[int, float]:
    """(resident KiB, CPU seconds) of a process and all its live descendants (the JVM, Spark's
    Python workers); CPU includes the children each has waited for."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    cpu: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as handle:
                pages = int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        pid, parent = int(entry), int(fields[1])
        children.setdefault(parent, []).append(pid)
        rss[pid] = pages * (os.sysconf("SC_PAGE_SIZE") // 1024)
        cpu[pid] = sum(int(value) for value in fields[11:15]) / ticks
    total_rss, total_cpu, stack = 0, 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        total_rss += rss.get(pid, 0)
        total_cpu += cpu.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total_rss, total_cpu


def worker_spark(orders: Path, model_dir: Path, out: Path, root: Path, overrides: list[str]) -> dict[str, Any]:
    """``score_spark`` on ``local[2]`` in this process, session start inside the clock. Peak memory
    is sampled every 0.2 s over the whole process tree (this interpreter, the JVM, Spark's Python
    workers), since ``ru_maxrss`` sees neither the running JVM nor its workers."""
    import threading

    from clv_models.scoring.spark_job import score_spark

    phases: dict[str, dict[str, Any]] = {}
    last = [time.perf_counter(), "start"]
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_usage(os.getpid())[0])

    def progress(step: str) -> None:
        now = time.perf_counter()
        phases[last[1]] = {"seconds": now - last[0], "cpu_seconds": 0.0, "calls": 1, "rss_kib_after": 0}
        last[:] = [now, step]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    settings = bench_score.settings_for(orders, root, 1, [*overrides, 'spark.master="local[2]"'])
    out_dir = out.with_suffix("")
    tree_cpu_before = _tree_usage(os.getpid())[1]
    try:
        result, timing = bench_churn.timed(
            lambda: score_spark(
                settings, model_uri=str(model_dir), out=out_dir, scored_at=dt.datetime.fromisoformat(STAMP),
                progress=progress,
            )  # fmt: skip
        )
    finally:
        done.set()
        sampler.join()
    progress("end")
    phases.pop("start", None)
    usage = bench_churn.own_usage()
    # The JVM and the Python workers are this process's children: their memory and CPU count as
    # the worker's, not as other processes'.
    usage["peak_rss_kib"] = max(peak[0], usage.get("peak_rss_kib", 0))
    tree_cpu = _tree_usage(os.getpid())[1] - tree_cpu_before
    if timing.get("other_cpu_seconds") is not None:
        timing["other_cpu_seconds"] = max(timing["other_cpu_seconds"] - (tree_cpu - timing["cpu_seconds"]), 0.0)
    timing["cpu_seconds"] = usage["cpu_seconds"] = tree_cpu
    return {
        **timing,
        **usage,
        "customers": result.customers,
        "chunks": result.chunks,
        "phases": phases,
        "out_bytes": sum(p.stat().st_size for p in out_dir.rglob("*.parquet")),
        "drift_warnings": result.drift_warnings,
        "settings": {"chunk_customers": settings.scoring.chunk_customers, "spark_master": "local[2]"},
    }


# The engines this benchmark can run: name -> worker(orders, model_dir, out, root, overrides) -> result
# dict with at least seconds, cpu_seconds, other_cpu_seconds, peak_rss_kib, customers and phases.
# The Spark-local engine registers "spark" here; everything else (data, model, repeats, report)
# is shared.
ENGINES: dict[str, Callable[[Path, Path, Path, Path, list[str]], dict[str, Any]]] = {
    "embedded": worker_embedded,
    "spark": worker_spark,
}


def worker_data(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate (or reuse) the scoring and training bases and describe the scoring base."""
    import duckdb

    data_dir = Path(args.data_dir)
    orders = bench_churn.ensure_dataset(data_dir, args.customers, args.seed)
    train = bench_churn.ensure_dataset(data_dir, args.train_customers, args.seed)
    row = duckdb.execute(
        f"SELECT count(*), count(DISTINCT customer_id), min(order_ts), max(order_ts) FROM read_parquet('{orders}')"
    ).fetchall()[0]
    return {
        "orders_path": str(orders),
        "train_path": str(train),
        "bytes": orders.stat().st_size,
        "orders": row[0],
        "customers_with_orders": row[1],
        "orders_per_customer": row[0] / row[1],
        "first_order": row[2].isoformat(),
        "last_order": row[3].isoformat(),
    }


def run_worker_mode(args: argparse.Namespace) -> None:
    if args.worker == "data":
        result = worker_data(args)
    else:
        result = ENGINES[args.worker](
            Path(args.orders), Path(args.model_dir), Path(args.out), Path(args.root), list(args.set)
        )
    print(RESULT_MARKER + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------
# Parent


def spawn(kind: str, *extra: str) -> dict[str, Any]:
    return spawn_worker(__file__, RESULT_MARKER, kind, *extra)


def measure(engine: str, args: argparse.Namespace, orders: Path, model_dir: Path, scratch: Path) -> dict[str, Any]:
    """One run on a quiet machine if possible; rerun (``--retries``) while others disturbed it."""
    discarded: list[dict[str, Any]] = []
    out = scratch / f"scores_{engine}.parquet"
    extra = ["--orders", str(orders), "--model-dir", str(model_dir), "--out", str(out),
             "--root", str(scratch / "score_store"), *(f"--set={item}" for item in args.set)]  # fmt: skip
    for attempt in range(args.retries + 1):
        waited = bench_churn.wait_for_quiet(args.quiet_wait)
        load_before = os.getloadavg()
        run = spawn(engine, *extra)
        run.update(attempt=attempt + 1, waited_s=waited, load_before=load_before, load_after=os.getloadavg())
        run["disturbed"] = flag = bench_churn.disturbed(run)
        other = run.get("other_cpu_seconds")
        print(
            f"  {engine:<9} {run['seconds']:8.1f} s (CPU {run['cpu_seconds']:.0f} s, other processes "
            f"{'?' if other is None else f'{other:.1f}'} CPU s, peak RSS {run['peak_rss_kib'] / 1024:,.0f} MiB, "
            f"{run['customers'] / run['seconds']:,.0f} customers/s, load {format_load(load_before)} -> "
            f"{format_load(run['load_after'])})" + (" DISTURBED" if flag else ""),
            flush=True,
        )
        print("            " + format_phases(run), flush=True)
        if not flag or attempt == args.retries:
            break
        discarded.append({"seconds": run["seconds"], "other_cpu_seconds": other})
    run["discarded_attempts"] = discarded
    return run


def format_phases(run: dict[str, Any]) -> str:
    parts = []
    for name, phase in run["phases"].items():
        calls = f" x{phase['calls']}" if phase["calls"] > 1 else ""
        rss = f" @{phase['rss_kib_after'] / 1024:,.0f} MiB" if phase["rss_kib_after"] else ""
        parts.append(f"{name}{calls} {phase['seconds']:.1f} s (CPU {phase['cpu_seconds']:.0f}){rss}")
    return "; ".join(parts)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    median_s = statistics.median(r["seconds"] for r in runs)
    peak = max(r["peak_rss_kib"] for r in runs) * 1024
    customers = runs[0]["customers"]
    phases = {
        name: statistics.median(r["phases"].get(name, {"seconds": 0.0})["seconds"] for r in runs)
        for name in runs[0]["phases"]
    }
    return {
        "median_s": median_s,
        "runs_s": [round(r["seconds"], 1) for r in runs],
        "median_cpu_s": statistics.median(r["cpu_seconds"] for r in runs),
        "peak_rss_mib": peak / 2**20,
        "customers": customers,
        "customers_per_s": customers / median_s,
        "median_phase_s": phases,
        "disturbed_runs": sum(bool(r["disturbed"]) for r in runs),
        "reruns": sum(r["attempt"] - 1 for r in runs),
        "met_time": median_s <= TARGET_SECONDS,
        "met_memory": peak <= TARGET_RSS_BYTES,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--train-customers", type=int, default=1_000_000, help="base the (untimed) model is trained on")
    parser.add_argument("--engines", default="embedded", help=f"comma-separated, of: {', '.join(ENGINES)}")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--trials", type=int, default=3, help="Optuna trials of the (untimed) training")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "clv-bench-data"))
    parser.add_argument("--scratch", default=str(Path(tempfile.gettempdir()) / "clv-bench-scale"))
    parser.add_argument("--model-dir", help="an exported model to use instead of training one")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="settings override for every run, e.g. scoring.chunk_customers=500000")  # fmt: skip
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--json-out")
    parser.add_argument("--worker", choices=[*ENGINES, "data"], help=argparse.SUPPRESS)
    parser.add_argument("--orders", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker_mode(args)
        return 0
    engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    unknown = [name for name in engines if name not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)}; available: {', '.join(ENGINES)}")
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    # Data and model in child processes: Linux keeps ru_maxrss across fork + exec, so a parent
    # that had simulated 10M customers in-process would hand its peak to every worker.
    data = spawn("data", "--customers", str(args.customers), "--train-customers", str(args.train_customers),
                 "--seed", str(args.seed), "--data-dir", args.data_dir)  # fmt: skip
    orders, train = Path(data["orders_path"]), Path(data["train_path"])
    print(f"data: {data['orders']:,} orders of {data['customers_with_orders']:,} customers "
          f"({data['bytes'] / 2**20:,.0f} MiB Parquet)", flush=True)  # fmt: skip
    model_dir = Path(args.model_dir) if args.model_dir else scratch / f"model_{train.stem}_t{args.trials}"
    if not (model_dir / "MLmodel").is_file():
        if args.model_dir:
            parser.error(f"--model-dir {model_dir}: no MLmodel file")
        subprocess.run([sys.executable, str(Path(bench_score.__file__).resolve()), "--worker", "prepare",
                        "--orders", str(train), "--model-dir", str(scratch), "--trials", str(args.trials)],
                       check=True)  # fmt: skip
    print(f"model: {model_dir} (trained on {train.name})", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {engine: [] for engine in engines}
    load_start = os.getloadavg()
    for repeat in range(args.repeats):
        print(f"repeat {repeat + 1}/{args.repeats}", flush=True)
        for engine in engines:
            runs[engine].append(measure(engine, args, orders, model_dir, scratch))
    summary = {engine: summarize(rs) for engine, rs in runs.items()}
    packages = ("duckdb", "pandas", "numpy", "pyarrow", "lightgbm", "mlflow", "pyspark")
    info = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform()},
        "versions": versions(packages),
        "code_hash": bench_churn.code_hash(),
        "data": data,
        "model": str(model_dir),
        "overrides": args.set,
        "load_before": load_start,
        "load_after": os.getloadavg(),
        "summary": summary,
        "runs": runs,
    }
    print()
    print(f"command : {info['command']}")
    print(f"machine : {os.cpu_count()} CPUs, {info['machine']['cpu']}; load {format_load(load_start)} -> "
          f"{format_load(info['load_after'])}; clv_models {info['code_hash']}")  # fmt: skip
    for engine, s in summary.items():
        phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in s["median_phase_s"].items())
        print(
            f"{engine}: {s['median_s']:.1f} s median (runs {', '.join(map(str, s['runs_s']))}), "
            f"peak RSS {s['peak_rss_mib']:,.0f} MiB, {s['customers_per_s']:,.0f} customers/s "
            f"({s['customers']:,} customers); disturbed runs kept {s['disturbed_runs']}, reruns {s['reruns']}\n"
            f"  median phase s: {phases}\n"
            f"  targets: <= 5 min {'met' if s['met_time'] else 'NOT met'}, <= 6 GB peak "
            f"{'met' if s['met_memory'] else 'NOT met'}"
        )
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
