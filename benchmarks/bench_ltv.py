"""Benchmark: BG/NBD fit, Gamma-Gamma fit and 12-month CLV, ``clv_models`` vs lifetimes, same run.

What is measured
----------------
For each size in ``--sizes`` (customers), on one simulated daily RFM table per size:

* **BG/NBD fit** - ours: ``BetaGeoModel(unit="D").fit(rfm)`` (it compresses to distinct
  (frequency, recency, T) rows itself). lifetimes: ``BetaGeoFitter().fit(frequency, recency, T)``,
  its default fit on one row per customer; and, labelled as such, lifetimes given the distinct
  rows and their counts as ``weights=`` (lifetimes 0.11 has no helper: a pandas
  ``groupby([...]).size()``, which is *inside* the clock).
* **Gamma-Gamma fit** - ours: ``GammaGammaModel(unit="D").fit(rfm)`` (it selects the repeat
  buyers itself); lifetimes: ``GammaGammaFitter().fit(frequency[rep], monetary_value[rep])`` with
  ``rep = frequency > 0`` (the selection is inside the clock too).
* **CLV, 12 months, every customer** - ours: ``customer_lifetime_value(bg, gg, rfm, horizon="12M",
  annual_discount_rate=(1+m)**12-1, margin=1.0, days_per_month=30)``; lifetimes:
  ``gg.customer_lifetime_value(bg, frequency, recency, T, monetary_value, time=12,
  discount_rate=m, freq="D")`` with the monthly rate m = 1.10**(1/12) - 1, i.e. 10 % a year.
  Both use *the same* fitted parameters (our fit's, passed to the lifetimes fitters with
  ``to_lifetimes()``), so only the CLV computation is timed. The settings reproduce lifetimes'
  arithmetic (30-day months, discounting by month index), which is what makes the numbers
  comparable; ours costs the same with its default 30.4375-day months.

Checks: the parameters of our fits against lifetimes' default fits (max relative difference,
target 1e-4), and our CLV against lifetimes' CLV for every customer (relative 1e-6, PASS/FAIL).
The script exits 1 when a check fails. Speed targets (from the issue): fits >= 20x faster than
lifetimes' default fit, CLV >= 15x faster; the report says met/missed for each size.

How
---
Data are simulated from the BG/NBD process with parameters like a real shop's in days
(r=0.25, alpha=20, a=0.8, b=2.5), vectorised with ``numpy.random.default_rng([seed, size])``:
T ~ uniform whole days 1..730; lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b); N ~ Poisson(lambda T)
purchases in (0, T] had the customer stayed; J ~ Geometric(p) >= 1, the repeat purchase after which
they drop out; frequency x = min(N, J). Given N = n the purchase times are n sorted uniforms on
(0, T], so the x-th is T * Beta(x, n - x + 1); recency is that time rounded up to whole days
(1..T), 0 when x = 0. Whole-day recency and T are what real daily data look like, and what
makes compression to distinct rows effective. Mean spend of repeat buyers follows Gamma-Gamma
(p=6, q=4, gamma=15): nu ~ Gamma(q, rate gamma), m | x, nu ~ Gamma(p x, rate nu x); 0 for the
others. Tables are cached as Parquet in ``--data-dir`` (keyed by size, seed, generator version).

Every measurement runs in a fresh subprocess (this script in ``--worker`` mode): it reads the
Parquet file and builds its inputs before the clock starts, times one call with
``time.perf_counter`` and its own CPU time (user + system, all threads), and prints one JSON
line with those and ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (peak RSS of that worker alone,
interpreter and libraries included). The tools alternate (ours, lifetimes, ..., repeat) so that
background load changes hit both alike; the parent reports medians over ``--repeats``.

Contamination: each worker also reads the machine-wide busy CPU time (``/proc/stat``) around
the timed call; busy time not its own is CPU used by *other* processes meanwhile ("other s").
Before each run the parent waits (up to ``--quiet-wait`` s) until other processes are idle; a run
where they still used more than 0.1 s + 10 % of its wall time is disturbed and rerun
(``--retries``); the load average is printed before and after each size. Numbers from a busy machine are only
indicative - the 2-core machine these ran on is shared with test runs.

Usage::

    python benchmarks/bench_ltv.py                               # 10k, 100k, 1M customers, 3 repeats
    python benchmarks/bench_ltv.py --sizes 10000,100000 --repeats 1   # quick
    python benchmarks/bench_ltv.py --json-out benchmarks/results/ltv.json   # also save results (git-ignored)
    python benchmarks/bench_ltv.py --quiet-wait 0 --retries 0                # don't wait for an idle machine
"""

from __future__ import annotations

import argparse
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
DEFAULT_SIZES = "10000,100000,1000000"
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "clv-bench-ltv-data"
RESULT_MARKER = "BENCH_RESULT "
MAX_T_DAYS = 730
TRUE_BG = {"r": 0.25, "alpha": 20.0, "a": 0.8, "b": 2.5}  # alpha in days
TRUE_GG = {"p": 6.0, "q": 4.0, "gamma": 15.0}
ANNUAL_DISCOUNT = 0.10
MONTHLY_DISCOUNT = (1 + ANNUAL_DISCOUNT) ** (1 / 12) - 1  # lifetimes' discount_rate is per month
HORIZON_MONTHS = 12
FIT_TARGET = 20.0  # lifetimes default fit / ours
CLV_TARGET = 15.0  # lifetimes CLV / ours
PARAM_TARGET = 1e-4  # max relative difference of the fitted parameters
CLV_PARITY = 1e-6  # max relative difference of CLV per customer
DISTURBED_ABS_S, DISTURBED_REL = 0.1, 0.10  # other processes' CPU during a run that makes it "disturbed"

# task -> (group, tool label); the order is the order of the table and of the runs.
TASKS = {
    "bg-ours": ("BG/NBD fit", "ours BetaGeoModel.fit"),
    "bg-lifetimes": ("BG/NBD fit", "lifetimes BetaGeoFitter.fit (default)"),
    "bg-lifetimes-weighted": ("BG/NBD fit", "lifetimes, weights=distinct rows *"),
    "gg-ours": ("Gamma-Gamma fit", "ours GammaGammaModel.fit"),
    "gg-lifetimes": ("Gamma-Gamma fit", "lifetimes GammaGammaFitter.fit"),
    "clv-ours": ("CLV 12 months", "ours customer_lifetime_value"),
    "clv-lifetimes": ("CLV 12 months", "lifetimes customer_lifetime_value"),
}


# --------------------------------------------------------------------------------------------
# Data


def simulate_rfm(n_customers: int, seed: int):  # -> pandas.DataFrame
    """Daily RFM table from the BG/NBD and Gamma-Gamma processes (see the module docstring)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, n_customers])
    n = n_customers
    T = rng.integers(1, MAX_T_DAYS + 1, n).astype(float)
    lam = rng.gamma(TRUE_BG["r"], 1.0 / TRUE_BG["alpha"], n)
    drop = rng.beta(TRUE_BG["a"], TRUE_BG["b"], n)
    potential = rng.poisson(lam * T)  # purchases in (0, T] had the customer stayed active
    dropout_after = rng.geometric(drop)  # the repeat purchase after which they leave (>= 1)
    x = np.minimum(potential, dropout_after)
    repeat = x > 0
    position = np.zeros(n)
    # x-th of `potential` sorted uniforms on (0, 1]: Beta(x, potential - x + 1)
    position[repeat] = rng.beta(x[repeat], potential[repeat] - x[repeat] + 1)
    recency = np.where(repeat, np.clip(np.ceil(position * T), 1.0, T), 0.0)
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["gamma"], n)
    monetary = np.zeros(n)
    monetary[repeat] = rng.gamma(TRUE_GG["p"] * x[repeat], 1.0 / (nu[repeat] * x[repeat]))
    frame = pd.DataFrame({"frequency": x.astype(float), "recency": recency, "T": T, "monetary_value": monetary})
    assert (frame["recency"] <= frame["T"]).all() and (frame.loc[~repeat, "recency"] == 0).all()
    return frame


def ensure_dataset(data_dir: Path, n_customers: int, seed: int) -> Path:
    """Path of the cached Parquet for these parameters, generating it (atomically) if missing."""
    path = data_dir / f"rfm_daily_c{n_customers}_s{seed}_v{GENERATOR_VERSION}.parquet"
    if path.exists():
        print(f"data: reusing {path}", flush=True)
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"data: simulating {n_customers:,} customers -> {path}", flush=True)
    started = time.perf_counter()
    frame = simulate_rfm(n_customers, seed)
    partial = path.with_suffix(f".tmp{os.getpid()}")
    frame.to_parquet(partial, index=False)
    partial.replace(path)
    print(f"data: simulated in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def describe_dataset(path: Path) -> dict[str, Any]:
    import pandas as pd

    rfm = pd.read_parquet(path)
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "customers": len(rfm),
        "repeat_buyers": int((rfm["frequency"] > 0).sum()),
        "distinct_rows": int(rfm.groupby(["frequency", "recency", "T"]).ngroups),
        "max_frequency": float(rfm["frequency"].max()),
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


def import_lifetimes():  # -> module
    import warnings

    with warnings.catch_warnings():
        # lifetimes sets a pandas option at import that pandas 3 deprecates (FutureWarning).
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import lifetimes
    return lifetimes


def our_models(params_path: Path):  # -> (BetaGeoModel, GammaGammaModel)
    """Our two models with the parameters of the first fit (no refit)."""
    import clv_models.valuation  # noqa: F401  (imported before the clock, as lifetimes is)
    from clv_models.models import BetaGeoModel, GammaGammaModel

    params = json.loads(params_path.read_text())
    bg = BetaGeoModel.from_dict({"model": "BetaGeoModel", "penalizer": 0.0, "unit": "D", "params": params["bg"]})
    gg = GammaGammaModel.from_dict({"model": "GammaGammaModel", "penalizer": 0.0, "unit": "D", "params": params["gg"]})
    return bg, gg


def ours_clv(bg: Any, gg: Any, rfm: Any):  # -> numpy array
    from clv_models.valuation import customer_lifetime_value

    return customer_lifetime_value(
        bg,
        gg,
        rfm,
        horizon=f"{HORIZON_MONTHS}M",
        annual_discount_rate=(1 + MONTHLY_DISCOUNT) ** 12 - 1,
        margin=1.0,
        days_per_month=30,
    )


def run_task(task: str, path: Path, params_path: Path | None, save_result: Path | None) -> dict[str, Any]:
    """One timed call of ``task`` on the table at ``path``; inputs are prepared before the clock."""
    import warnings

    import numpy as np
    import pandas as pd

    rfm = pd.read_parquet(path)
    frequency, recency, T, monetary = (rfm[c] for c in ("frequency", "recency", "T", "monetary_value"))
    extra: dict[str, Any] = {}
    warnings.simplefilter("ignore", FutureWarning)  # lifetimes on pandas 3

    if task == "bg-ours":
        from clv_models.models import BetaGeoModel

        model, times = timed(lambda: BetaGeoModel(unit="D").fit(rfm))
        extra = {"params": model.params_, "distinct_rows": model.n_distinct_, "diagnostic": model.diagnostic_}
    elif task == "gg-ours":
        from clv_models.models import GammaGammaModel

        model, times = timed(lambda: GammaGammaModel(unit="D").fit(rfm))
        extra = {"params": model.params_, "diagnostic": model.diagnostic_}
    elif task == "bg-lifetimes":
        lifetimes = import_lifetimes()
        fitter, times = timed(lambda: lifetimes.BetaGeoFitter().fit(frequency, recency, T))
        extra = {"params": {k: float(v) for k, v in fitter.params_.items()}}
    elif task == "bg-lifetimes-weighted":
        lifetimes = import_lifetimes()

        def fit_weighted():  # -> (fitter, distinct rows, groupby seconds)
            started = time.perf_counter()
            rows = rfm.groupby(["frequency", "recency", "T"], sort=False).size().reset_index(name="weights")
            grouping = time.perf_counter() - started
            fitted = lifetimes.BetaGeoFitter().fit(
                rows["frequency"], rows["recency"], rows["T"], weights=rows["weights"]
            )
            return fitted, len(rows), grouping

        (fitter, distinct, grouping), times = timed(fit_weighted)
        extra = {
            "params": {k: float(v) for k, v in fitter.params_.items()},
            "distinct_rows": distinct,
            "groupby_seconds": grouping,
        }
    elif task == "gg-lifetimes":
        lifetimes = import_lifetimes()

        def fit_repeat_buyers():
            repeat = frequency > 0
            return lifetimes.GammaGammaFitter().fit(frequency[repeat], monetary[repeat])

        fitter, times = timed(fit_repeat_buyers)
        extra = {"params": {("gamma" if k == "v" else k): float(v) for k, v in fitter.params_.items()}}
    elif task == "clv-ours":
        bg, gg = our_models(params_path)
        clv, times = timed(lambda: ours_clv(bg, gg, rfm))
        extra = {"customers": len(clv)}
    elif task == "clv-lifetimes":
        import_lifetimes()
        bg, gg = our_models(params_path)
        bg_lt, gg_lt = bg.to_lifetimes(), gg.to_lifetimes()
        clv, times = timed(
            lambda: gg_lt.customer_lifetime_value(
                bg_lt, frequency, recency, T, monetary, time=HORIZON_MONTHS, discount_rate=MONTHLY_DISCOUNT, freq="D"
            )
        )
        extra = {"customers": len(clv)}
    else:
        raise ValueError(f"unknown task {task!r}")

    result = times | {"peak_rss_kib": own_usage()["peak_rss_kib"]} | extra
    if save_result is not None:  # after the clock and the RSS reading
        np.save(save_result, np.asarray(clv, dtype=float))
    return result


def check_clv(path: Path, params_path: Path, reference: Path) -> dict[str, Any]:
    """Our CLV (parity settings) against the saved lifetimes CLV, customer by customer."""
    import numpy as np
    import pandas as pd

    rfm = pd.read_parquet(path)
    bg, gg = our_models(params_path)
    ours = np.asarray(ours_clv(bg, gg, rfm), dtype=float)
    theirs = np.load(reference)
    report: dict[str, Any] = {"customers": len(ours), "problems": []}
    if ours.shape != theirs.shape:
        report["problems"].append(f"shapes differ: {ours.shape} vs {theirs.shape}")
    else:
        finite = np.isfinite(ours) & np.isfinite(theirs)
        if not finite.all():
            report["problems"].append(f"{int((~finite).sum())} non-finite values")
        rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), np.finfo(float).tiny)
        report["max_rel_diff"] = float(np.max(rel[finite], initial=0.0))
        report["max_abs_diff"] = float(np.max(np.abs(ours - theirs)[finite], initial=0.0))
        report["total_ours"], report["total_lifetimes"] = float(ours.sum()), float(theirs.sum())
        outside = int((rel[finite] > CLV_PARITY).sum())
        if outside:
            report["problems"].append(f"{outside} customers differ by more than {CLV_PARITY:g} relative")
    report["passed"] = not report["problems"]
    return report


def run_worker_mode(args: argparse.Namespace) -> None:
    path = Path(args.parquet)
    params = Path(args.params) if args.params else None
    if args.worker == "clv-check":
        result = check_clv(path, params, Path(args.reference))
    else:
        result = run_task(args.worker, path, params, Path(args.save_result) if args.save_result else None)
    print(RESULT_MARKER + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------
# Parent: orchestration and report


def spawn_worker(kind: str, path: Path, *extra: str) -> dict[str, Any]:
    """Run this script as a ``kind`` worker on ``path`` in a fresh interpreter; its JSON result."""
    return _harness.spawn_worker(__file__, RESULT_MARKER, kind, "--parquet", str(path), *extra)


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


def measure(task: str, path: Path, args: argparse.Namespace, label: str, *extra: str) -> dict[str, Any]:
    """One measurement on a quiet machine if possible, rerun (``--retries``) while others disturbed it."""
    discarded: list[dict[str, Any]] = []
    for attempt in range(args.retries + 1):
        waited = wait_for_quiet(args.quiet_wait)
        if waited > 1.0:
            print(f"  (waited {waited:.0f} s for other processes to finish)", flush=True)
        run = spawn_worker(task, path, *extra)
        run["attempts"] = attempt + 1
        other = run.get("other_cpu_seconds")
        note = "" if other is None else f", other processes {other:.2f} CPU s"
        flag = disturbed(run)
        print(
            f"  {label} {task:<22} {run['seconds']:8.3f} s (CPU {run['cpu_seconds']:.2f} s{note})"
            + (" DISTURBED" + (", rerunning" if attempt < args.retries else ", kept") if flag else ""),
            flush=True,
        )
        run["disturbed"] = flag
        if not flag or attempt == args.retries:
            break
        discarded.append({"seconds": run["seconds"], "other_cpu_seconds": other})
    run["discarded_attempts"] = discarded
    return run


def max_rel_diff(ours: dict[str, float], theirs: dict[str, float]) -> float:
    return max(abs(ours[k] - theirs[k]) / abs(theirs[k]) for k in ours)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    others = [r["other_cpu_seconds"] for r in runs if r.get("other_cpu_seconds") is not None]
    return {
        "median_s": statistics.median(r["seconds"] for r in runs),
        "runs_s": [r["seconds"] for r in runs],
        "median_cpu_s": statistics.median(r["cpu_seconds"] for r in runs),
        "max_other_cpu_s": max(others) if others else None,
        "peak_rss_mib": max(r["peak_rss_kib"] for r in runs) / 1024,
        "disturbed_runs": sum(bool(r.get("disturbed")) for r in runs),
        "reruns": sum(r.get("attempts", 1) - 1 for r in runs),
    }


def run_size(args: argparse.Namespace, size: int, scratch: Path) -> dict[str, Any]:
    """All measurements and checks for one size."""
    path = ensure_dataset(Path(args.data_dir), size, args.seed)
    out: dict[str, Any] = {"data": describe_dataset(path), "load_before": os.getloadavg()}
    runs: dict[str, list[dict[str, Any]]] = {task: [] for task in TASKS}
    groups = [
        ["bg-ours", "bg-lifetimes", "bg-lifetimes-weighted"],
        ["gg-ours", "gg-lifetimes"],
        ["clv-ours", "clv-lifetimes"],
    ]
    params_path = scratch / f"params_{size}.json"
    reference = scratch / f"clv_lifetimes_{size}.npy"
    for group in groups:
        if group[0] == "clv-ours":  # CLV uses our fitted parameters in both tools
            params = {"bg": runs["bg-ours"][0]["params"], "gg": runs["gg-ours"][0]["params"]}
            params_path.write_text(json.dumps(params))
        # Alternate the tools so that any change in background load hits both alike.
        for i in range(args.repeats):
            for task in group:
                extra = ["--params", str(params_path)] if task.startswith("clv") else []
                if task == "clv-lifetimes" and i == 0:
                    extra += ["--save-result", str(reference)]
                runs[task].append(measure(task, path, args, f"{size:>9,} run {i + 1}/{args.repeats}", *extra))
    out["load_after"] = os.getloadavg()
    out["results"] = {task: summarize(task_runs) for task, task_runs in runs.items()}
    out["results"]["bg-lifetimes-weighted"]["median_groupby_s"] = statistics.median(
        r["groupby_seconds"] for r in runs["bg-lifetimes-weighted"]
    )
    out["clv_check"] = spawn_worker("clv-check", path, "--params", str(params_path), "--reference", str(reference))

    bg_ours, gg_ours = runs["bg-ours"][0]["params"], runs["gg-ours"][0]["params"]
    out["params"] = {
        "bg_ours": bg_ours,
        "bg_lifetimes": runs["bg-lifetimes"][0]["params"],
        "bg_lifetimes_weighted": runs["bg-lifetimes-weighted"][0]["params"],
        "gg_ours": gg_ours,
        "gg_lifetimes": runs["gg-lifetimes"][0]["params"],
        "bg_diagnostic": runs["bg-ours"][0]["diagnostic"],
        "gg_diagnostic": runs["gg-ours"][0]["diagnostic"],
        "bg_max_rel_diff": max_rel_diff(bg_ours, runs["bg-lifetimes"][0]["params"]),
        "bg_weighted_max_rel_diff": max_rel_diff(bg_ours, runs["bg-lifetimes-weighted"][0]["params"]),
        "gg_max_rel_diff": max_rel_diff(gg_ours, runs["gg-lifetimes"][0]["params"]),
        "ours_identical_across_runs": all(r["params"] == bg_ours for r in runs["bg-ours"])
        and all(r["params"] == gg_ours for r in runs["gg-ours"]),
    }
    med = {task: stats["median_s"] for task, stats in out["results"].items()}
    out["ratios"] = {
        "bg_vs_default": med["bg-lifetimes"] / med["bg-ours"],
        "bg_vs_weighted": med["bg-lifetimes-weighted"] / med["bg-ours"],
        "gg": med["gg-lifetimes"] / med["gg-ours"],
        "clv": med["clv-lifetimes"] / med["clv-ours"],
    }
    return out


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    threads_env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ}
    info: dict[str, Any] = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform()},
        "versions": versions(("numpy", "scipy", "pandas", "pyarrow", "lifetimes", "autograd", "clv_models")),
        "thread_env": threads_env,
        "params": {
            "sizes": args.sizes,
            "seed": args.seed,
            "repeats": args.repeats,
            "retries": args.retries,
            "quiet_wait": args.quiet_wait,
            "true_bg": TRUE_BG,
            "true_gg": TRUE_GG,
            "monthly_discount": MONTHLY_DISCOUNT,
        },
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="clv-bench-ltv-") as scratch:
        for size in args.sizes:
            info["sizes"][str(size)] = run_size(args, size, Path(scratch))
    return info


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def format_table(info: dict[str, Any]) -> str:
    header = (
        f"{'customers':>9}  {'task':<15} {'tool':<37} {'median s':>8}  {'runs s':<24} {'CPU s':>6} "
        f"{'other s':>7} {'RSS MiB':>7}  {'lt/ours':>7}"
    )
    lines = [header, "-" * len(header)]
    for size, out in info["sizes"].items():
        results = out["results"]
        previous_group = None
        for task, (group, tool) in TASKS.items():
            stats = results[task]
            ours_median = results[task.split("-")[0] + "-ours"]["median_s"]
            ratio = "" if task.endswith("-ours") else f"{stats['median_s'] / ours_median:.1f}x"
            runs = ", ".join(f"{t:.3f}" if t < 10 else f"{t:.2f}" for t in stats["runs_s"])
            other = "-" if stats["max_other_cpu_s"] is None else f"{stats['max_other_cpu_s']:.2f}"
            first_of_size = previous_group is None
            first_of_group = group != previous_group
            lines.append(
                f"{f'{int(size):,}' if first_of_size else '':>9}  {group if first_of_group else '':<15} "
                f"{tool:<37} {stats['median_s']:>8.3f}  {runs:<24} {stats['median_cpu_s']:>6.2f} {other:>7} "
                f"{stats['peak_rss_mib']:>7.0f}  {ratio:>7}{' !' if stats['disturbed_runs'] else ''}"
            )
            previous_group = group
    return "\n".join(lines)


def print_report(info: dict[str, Any]) -> bool:
    """Print the report; True when both checks pass at every size."""
    machine, v = info["machine"], info["versions"]
    print()
    print(f"command : {info['command']}")
    print(f"machine : {machine['nproc']} CPUs, {machine['cpu']} ({machine['platform']})")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    if info["thread_env"]:
        print("threads : " + ", ".join(f"{k}={val}" for k, val in info["thread_env"].items()))
    p = info["params"]
    print(
        f"data    : simulated BG/NBD r={TRUE_BG['r']}, alpha={TRUE_BG['alpha']} d, a={TRUE_BG['a']}, "
        f"b={TRUE_BG['b']}; T 1..{MAX_T_DAYS} whole days; Gamma-Gamma p={TRUE_GG['p']}, q={TRUE_GG['q']}, "
        f"gamma={TRUE_GG['gamma']}; seed {p['seed']}"
    )
    for size, out in info["sizes"].items():
        d = out["data"]
        print(
            f"          {int(size):>9,} customers: {d['repeat_buyers']:,} repeat buyers, "
            f"{d['distinct_rows']:,} distinct (frequency, recency, T) rows, max frequency {d['max_frequency']:.0f}; "
            f"load avg 1/5/15 before {format_load(out['load_before'])}, after {format_load(out['load_after'])}"
        )
    print(
        f"run     : {p['repeats']} repeats per tool, each in a fresh process, tools alternating; "
        f"CLV horizon {HORIZON_MONTHS} months, monthly discount {MONTHLY_DISCOUNT:.6f} (= 10 %/year)"
    )
    print()
    print(format_table(info))
    print(
        "  * lifetimes BetaGeoFitter.fit(weights=counts) on the distinct rows, timed including the pandas\n"
        "    groupby that finds them. CPU s = median user+system CPU of the timed call (all threads);\n"
        "    other s = max CPU used by other processes during a run; RSS = max peak RSS of the worker;\n"
        "    lt/ours = lifetimes median / ours median; ! = a run stayed disturbed after reruns."
    )
    reruns = sum(stats["reruns"] for out in info["sizes"].values() for stats in out["results"].values())
    kept = sum(stats["disturbed_runs"] for out in info["sizes"].values() for stats in out["results"].values())
    print(f"  runs disturbed by other processes and rerun: {reruns}; still disturbed after reruns: {kept}")
    print()
    all_ok = True
    for size, out in info["sizes"].items():
        r, prm, chk = out["ratios"], out["params"], out["clv_check"]
        params_ok = max(prm["bg_max_rel_diff"], prm["gg_max_rel_diff"]) <= PARAM_TARGET
        all_ok &= params_ok and chk["passed"]
        print(f"{int(size):,} customers:")
        print(
            f"  speed : BG/NBD fit {r['bg_vs_default']:.1f}x vs lifetimes' default fit "
            f"(target >= {FIT_TARGET:.0f}x: {verdict(r['bg_vs_default'] >= FIT_TARGET)}), "
            f"{r['bg_vs_weighted']:.1f}x vs lifetimes with weights; "
            f"Gamma-Gamma fit {r['gg']:.1f}x (target >= {FIT_TARGET:.0f}x: {verdict(r['gg'] >= FIT_TARGET)}); "
            f"CLV {r['clv']:.1f}x (target >= {CLV_TARGET:.0f}x: {verdict(r['clv'] >= CLV_TARGET)})"
        )
        print(
            f"  params: max rel diff vs lifetimes' default fit BG/NBD {prm['bg_max_rel_diff']:.1e}, "
            f"Gamma-Gamma {prm['gg_max_rel_diff']:.1e} (target <= {PARAM_TARGET:g}: {verdict(params_ok)}); "
            f"BG/NBD vs lifetimes with weights {prm['bg_weighted_max_rel_diff']:.1e}"
        )
        print(
            "          ours BG/NBD "
            + ", ".join(f"{k}={val:.6g}" for k, val in prm["bg_ours"].items())
            + "; Gamma-Gamma "
            + ", ".join(f"{k}={val:.6g}" for k, val in prm["gg_ours"].items())
        )
        details = (
            f" ({chk['customers']:,} customers, max rel diff {chk['max_rel_diff']:.1e}, "
            f"total {chk['total_ours']:,.2f} vs {chk['total_lifetimes']:,.2f})"
            if "max_rel_diff" in chk
            else ""
        )
        state = "PASS" if chk["passed"] else "FAIL: " + "; ".join(chk["problems"])
        print(f"  CLV   : ours == lifetimes within {CLV_PARITY:g} relative: {state}{details}")
    return all_ok


# --------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError("sizes must be a comma-separated list of integers >= 100")
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
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool and size, each in a fresh process")
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
        "--json-out", default=None, help="also write all results as JSON here (e.g. benchmarks/results/ltv.json)"
    )
    # Worker mode (internal).
    parser.add_argument("--worker", choices=(*TASKS, "clv-check"), help=argparse.SUPPRESS)
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--save-result", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
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
        out.write_text(json.dumps(info, indent=2) + "\n")
        print(f"results : {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
