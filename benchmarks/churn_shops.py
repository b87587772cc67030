"""Out-of-time churn metrics of ``clv train`` on three shops, through the command line only.

What is measured
----------------
For each shop, one ``clv train`` run in a subprocess (the interpreter given by ``--python``, with
this process's environment, so ``PYTHONPATH`` selects the code under test; working directory
``--repo``), with every setting at its product default except ``churn.n_trials=--trials`` and a
fresh MLflow store and quarantine file in a temporary directory. From the parent run of
experiment ``clv-train`` in that store the script reads, on the test snapshot (the outcome window
after every other):

* the calibrated classifier: ``churn_auc``, ``churn_brier``, ``churn_ece``;
* the BG/NBD P(no purchase in the window) baseline: ``churn_baseline_bgnbd_p_no_purchase_{auc,brier,ece}``;
* the recency rule baseline: ``churn_baseline_recency_rule_{auc,brier,ece}``;
* when logged, the model with its BTYD features one window old: ``churn_lagged_btyd_{auc,brier,ece}``;

and ``data_customers`` (customers after validation). The wall time of each training (the whole
``clv train`` process) is printed and saved too. A shop whose training fails gets clv's error line
instead of numbers, and the script goes on.

The shops
---------
* ``cdnow``: ``CDNOW_master.txt`` of the installed ``lifetimes`` package, written to Parquet as
  ``customer_id`` (string), ``order_ts`` (timestamp), ``amount`` (float); no order id, so each
  line is one order.
* ``online_retail``: ``--config pipelines/train.toml`` (the shared Online Retail data and its
  column mapping; paths relative to ``--repo``).
* ``simulated``: ``simulate_orders(20000, seed=7)`` from ``<repo>/benchmarks/bench_churn.py``,
  written to Parquet (``customer_id``, ``order_id``, ``order_ts``, ``amount``, ``country``).

Reproduce (here for a worktree of the commit to measure at /work/before)::

    git worktree add /work/before HEAD
    PYTHONPATH=/work/before/src .venv/bin/python benchmarks/churn_shops.py --repo /work/before \\
        --json-out /tmp/churn_before.json
    python benchmarks/churn_shops.py --shops cdnow --trials 5      # quick, the code installed in this env
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHOPS = ("cdnow", "online_retail", "simulated")
EXPERIMENT = "clv-train"
PARENT_RUN_TAG = "mlflow.parentRunId"
CLV_MAIN = "from clv_models.cli import main; main()"  # the `clv` entry point (pyproject [project.scripts])
SIMULATED_CUSTOMERS, SIMULATED_SEED = 20_000, 7
SIMULATED_COLUMNS = "customer_id=customer_id,order_id=order_id,order_ts=order_ts,amount=amount,country=country"
CDNOW_COLUMNS = "customer_id=customer_id,order_ts=order_ts,amount=amount"
SCORERS = {  # table label -> MLflow metric name prefix
    "model": "churn_",
    "bgnbd_p_no_purchase": "churn_baseline_bgnbd_p_no_purchase_",
    "recency_rule": "churn_baseline_recency_rule_",
}
METRICS = ("auc", "brier", "ece")
# Shown when the code under test logs them (issue 16 on): the model with BTYD features one window old.
OPTIONAL_SCORERS = {"model, BTYD one window old": "churn_lagged_btyd_"}


# --------------------------------------------------------------------------------------------
# Shops: each writes its data (if any) into `work` and returns the `clv train` source arguments


def cdnow_source(repo: Path, work: Path) -> list[str]:
    import pandas as pd

    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        raise RuntimeError("the lifetimes package is not installed")
    master = Path(spec.origin).parent / "datasets" / "CDNOW_master.txt"
    # customer id, date YYYYMMDD, number of CDs, dollar amount; whitespace separated, one header line
    raw = pd.read_csv(master, sep=r"\s+", dtype=str)
    orders = pd.DataFrame(
        {
            "customer_id": raw.iloc[:, 0].astype(str),
            "order_ts": pd.to_datetime(raw.iloc[:, 1], format="%Y%m%d"),
            "amount": raw.iloc[:, 3].astype(float),
        }
    )
    path = work / "cdnow_orders.parquet"
    orders.to_parquet(path, index=False)
    return ["--orders", str(path), "--columns", CDNOW_COLUMNS]


def online_retail_source(repo: Path, work: Path) -> list[str]:
    return ["--config", "pipelines/train.toml"]


def simulated_source(repo: Path, work: Path) -> list[str]:
    import pyarrow.parquet as pq

    sys.path.insert(0, str(repo / "benchmarks"))
    try:
        import bench_churn
    finally:
        sys.path.pop(0)
    path = work / "simulated_orders.parquet"
    pq.write_table(bench_churn.simulate_orders(SIMULATED_CUSTOMERS, SIMULATED_SEED), path)
    return ["--orders", str(path), "--columns", SIMULATED_COLUMNS]


SOURCES = {"cdnow": cdnow_source, "online_retail": online_retail_source, "simulated": simulated_source}


# --------------------------------------------------------------------------------------------
# Running clv and reading the store


def error_line(stderr: str, stdout: str, returncode: int) -> str:
    """clv's one-line error (``error: ...``), else the last line it printed."""
    lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors or lines or [f"exit code {returncode}, no output"])[-1]


def parent_run_metrics(uri: str) -> tuple[str, dict[str, float]]:
    """Run id and metrics of the (only, else latest) parent run of experiment clv-train."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise RuntimeError(f"no experiment {EXPERIMENT!r} in {uri}")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    parents = [run for run in runs if PARENT_RUN_TAG not in run.data.tags]
    if not parents:
        raise RuntimeError(f"no parent run in experiment {EXPERIMENT!r} of {uri}")
    return parents[0].info.run_id, dict(parents[0].data.metrics)


def train_shop(python: str, repo: Path, source_args: list[str], trials: int, store: Path) -> dict[str, Any]:
    uri = f"sqlite:///{(store / 'mlruns' / 'mlflow.db').as_posix()}"
    command = [
        python, "-c", CLV_MAIN, "train", *source_args,
        "--set", f"tracking.root={store}",
        "--set", f"churn.n_trials={trials}",
        "--quarantine", str(store / "quarantine" / "{source}.parquet"),
    ]  # fmt: skip
    # The same store as tracking.root gives; set explicitly so an inherited URI cannot win.
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False)
    result: dict[str, Any] = {
        "command": command,
        "train_seconds": round(time.perf_counter() - started, 1),
        "returncode": done.returncode,
    }
    if done.returncode != 0:
        result["error"] = error_line(done.stderr, done.stdout, done.returncode)
        result["output_tail"] = (done.stdout + done.stderr)[-3000:]
        return result
    run_id, metrics = parent_run_metrics(uri)
    wanted = [f"{prefix}{metric}" for prefix in SCORERS.values() for metric in METRICS]
    missing = [name for name in wanted if name not in metrics]
    result.update(run_id=run_id, metrics=metrics, customers=metrics.get("data_customers"))
    if missing:
        result["error"] = f"metrics not logged in run {run_id}: {', '.join(missing)}"
    return result


def measure(shop: str, python: str, repo: Path, trials: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"clv-churn-shops-{shop}-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        try:
            source_args = SOURCES[shop](repo, work)
        except Exception as exc:  # noqa: BLE001 - reported in the table, the other shops go on
            return {"error": f"preparing the data: {type(exc).__name__}: {exc}"}
        prepare_seconds = round(time.perf_counter() - started, 1)
        try:
            result = train_shop(python, repo, source_args, trials, work)
        except Exception as exc:  # noqa: BLE001
            return {"prepare_seconds": prepare_seconds, "error": f"{type(exc).__name__}: {exc}"}
    return {"prepare_seconds": prepare_seconds, **result}


# --------------------------------------------------------------------------------------------
# Report


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    prefixes = {**SCORERS, **OPTIONAL_SCORERS}
    metric_columns = [(label, metric) for label in prefixes for metric in METRICS]
    header = ["shop", "customers", *(f"{label} {metric}" for label, metric in metric_columns), "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for shop, result in results.items():
        seconds = f"{result['train_seconds']:.0f}" if "train_seconds" in result else "–"
        if "error" in result:
            cells = [shop, f"error: {result['error']}", *([""] * len(metric_columns)), seconds]
        else:
            metrics = result["metrics"]
            values = [
                f"{metrics[prefixes[label] + metric]:.4f}" if prefixes[label] + metric in metrics else "–"
                for label, metric in metric_columns
            ]
            cells = [shop, f"{result['customers']:,.0f}", *values, seconds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_code(python: str, repo: Path) -> dict[str, str]:
    """Which clv_models the subprocesses import, and the commit of --repo."""
    imported = subprocess.run(
        [python, "-c", "import clv_models; print(clv_models.__file__)"],
        cwd=repo, capture_output=True, text=True, check=False,
    )  # fmt: skip
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
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs clv (default: this one)")
    parser.add_argument("--shops", default=",".join(SHOPS), help=f"comma list of {', '.join(SHOPS)}")
    parser.add_argument("--trials", type=int, default=30, help="Optuna trials (churn.n_trials; product default 30)")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1],
                        help="checkout measured: working directory of clv and source of benchmarks/bench_churn.py")
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    shops = [s.strip() for s in args.shops.split(",") if s.strip()]
    unknown = sorted(set(shops) - set(SHOPS))
    if unknown:
        parser.error(f"unknown shop(s) {', '.join(unknown)}; choose from {', '.join(SHOPS)}")
    repo = args.repo.resolve()
    started = dt.datetime.now().isoformat(timespec="seconds")

    code = describe_code(args.python, repo)
    print(f"repo {repo} at {code['commit']}; clv_models from {code['clv_models_file']}", flush=True)
    if not code["clv_models_file"].startswith(str(repo)):
        print(f"warning: clv_models is not imported from under {repo} (set PYTHONPATH={repo}/src?)", flush=True)
    print(f"python {args.python}; churn.n_trials={args.trials}; PYTHONPATH={os.environ.get('PYTHONPATH', '')}")

    results: dict[str, dict[str, Any]] = {}
    for shop in shops:
        print(f"{shop}: training ...", flush=True)
        results[shop] = measure(shop, args.python, repo, args.trials)
        outcome = results[shop].get("error") or f"run {results[shop]['run_id']}"
        print(f"{shop}: {results[shop].get('train_seconds', '–')} s; {outcome}", flush=True)

    print()
    print(markdown_table(results))
    if args.json_out:
        report = {
            "started": started,
            "repo": str(repo),
            **code,
            "python": args.python,
            "pythonpath": os.environ.get("PYTHONPATH", ""),
            "trials": args.trials,
            "shops": results,
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nresults written to {args.json_out}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
