"""A tracking store that is down or hangs is never the nightly job's single point of failure
(issue 20, item 1): every request is bounded (``[tracking] request_timeout_seconds``,
``request_retries``); ``clv score`` still writes its scores, says so in one warning line, saves the
run beside the output and exits 5, and ``clv log-run`` logs the saved run later; ``clv train``
stops with one line (exit 4) before any work. The faults are real: a port nothing listens on, and
a server that accepts connections and never answers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.scoring.test_batch_independence import COLUMNS
from tests.training.test_pipeline import TINY_VALUE

# A hang would run into this, not pass: the job must end by itself well before it.
HANG_GUARD_SECONDS = 300


def clv(*args: str, cwd: Path, uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": uri}
    return subprocess.run([sys.executable, "-m", "clv_models.cli", *args], capture_output=True, text=True,
                          timeout=HANG_GUARD_SECONDS, cwd=cwd, env=env)  # fmt: skip


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts TCP connections (the kernel's backlog does) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/"


def score_args(shop: dict, out: Path) -> list[str]:
    mapping = ",".join(f"{k}={v}" for k, v in COLUMNS.items())
    return ["score", "--orders", str(shop["orders"]), "--columns", mapping, "--as-of", shop["as_of"].isoformat(),
            "--model", str(shop["model"]), "--out", str(out)]  # fmt: skip


def assert_scored_but_saved(run: subprocess.CompletedProcess, out: Path, shop: dict) -> Path:
    assert run.returncode == 5, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning: scores written, but not logged")]
    assert len(warnings) == 1 and "cannot reach the MLflow tracking store" in warnings[0]
    assert len(pd.read_parquet(out)) == len(shop["scores"])
    pending = Path(f"{out}.clv-score-run.json")
    assert f"clv log-run {pending}" in warnings[0]
    return pending


def test_scoring_with_the_tracking_server_down(shop: dict, tmp_path: Path, closed_port: int) -> None:
    out = tmp_path / "scores.parquet"
    run = clv(*score_args(shop, out), cwd=tmp_path, uri=f"http://127.0.0.1:{closed_port}/")
    pending = assert_scored_but_saved(run, out, shop)
    saved = json.loads(pending.read_text())
    assert saved["metrics"]["scored_customers"] == len(shop["scores"])
    # Later, with a store that answers, the saved run is logged as it would have been.
    store = f"sqlite:///{tmp_path / 'later.db'}"
    logged = clv("log-run", str(pending), cwd=tmp_path, uri=store)
    assert logged.returncode == 0, logged.stderr[-2000:]
    assert not pending.exists()
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("clv-score").experiment_id])
    assert [r.data.metrics["scored_customers"] for r in runs] == [len(shop["scores"])]
    assert runs[0].data.metrics["share_value_tier_high"] == pytest.approx(saved["metrics"]["share_value_tier_high"])


def test_scoring_with_a_tracking_server_that_never_answers(shop: dict, tmp_path: Path, silent_server: str) -> None:
    out = tmp_path / "scores.parquet"
    run = clv(*score_args(shop, out), cwd=tmp_path, uri=silent_server)
    assert_scored_but_saved(run, out, shop)
    # A registry URI that cannot be resolved is one line, before any work.
    registry = score_args(shop, tmp_path / "r.parquet")
    registry[registry.index("--model") + 1] = "models:/clv-customer-scorer@champion"
    run = clv(*registry, cwd=tmp_path, uri=silent_server)
    assert run.returncode == 4 and len(run.stderr.strip().splitlines()) == 1, run.stderr[-2000:]
    assert f"cannot reach the MLflow tracking store {silent_server}" in run.stderr
    assert not (tmp_path / "r.parquet").exists()


def test_training_with_the_tracking_server_down_stops_before_any_work(
    shop: dict, tmp_path: Path, closed_port: int
) -> None:
    mapping = ",".join(f"{k}={v}" for k, v in COLUMNS.items())
    uri = f"http://127.0.0.1:{closed_port}/"
    run = clv("train", "--orders", str(shop["orders"]), "--columns", mapping, cwd=tmp_path, uri=uri)
    assert run.returncode == 4 and len(run.stderr.strip().splitlines()) == 1, run.stderr[-2000:]
    assert f"cannot reach the MLflow tracking store {uri}" in run.stderr
    assert "Optuna" not in run.stdout + run.stderr


@pytest.mark.slow
def test_jobs_started_together_on_a_new_store_all_succeed(shop: dict, tmp_path: Path) -> None:
    """Two trainings and a scoring run started at the same moment on a store that does not exist
    yet: all succeed, both versions are registered and ``@champion`` is on one of them."""
    mapping = ",".join(f"{k}={v}" for k, v in COLUMNS.items())
    store = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    (tmp_path / "new").mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": store}
    tiny = ["--set", "churn.n_trials=1", "--set", "churn.n_folds=2", "--set", "churn.train_cutoffs=2",
            "--set", "churn.max_rounds=50", "--set", "segments.n_init=2",
                *(item for setting in TINY_VALUE for item in ("--set", setting))]  # fmt: skip
    train = [sys.executable, "-m", "clv_models.cli", "train", "--orders", str(shop["orders"]), "--columns", mapping,
             "--as-of", shop["as_of"].isoformat(), *tiny]  # fmt: skip
    score = [sys.executable, "-m", "clv_models.cli", *score_args(shop, tmp_path / "scores.parquet")]
    jobs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for command in (train, train, score)]  # fmt: skip
    results = [(job.wait(timeout=HANG_GUARD_SECONDS), *job.communicate()) for job in jobs]
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    client = MlflowClient(store, registry_uri=store)
    versions = sorted(int(v.version) for v in client.search_model_versions("name='clv-customer-scorer'"))
    assert versions == [1, 2]
    assert int(client.get_model_version_by_alias("clv-customer-scorer", "champion").version) in versions
    assert len(pd.read_parquet(tmp_path / "scores.parquet")) == len(shop["scores"])


@pytest.mark.slow
def test_a_store_that_fails_during_training_keeps_the_trained_scorer(shop: dict, tmp_path: Path) -> None:
    """The store's disk fills up after the store was opened (a tmpfs left with 64 KiB free):
    the training goes on without tracking, saves its scorer and run under
    ``<tracking.root>/unregistered/``, says so in one warning line and exits 5; ``clv register``
    then logs and registers it on a store that works, once."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        store = f"sqlite:///{disk / 'mlflow.db'}"
        # Open the store (its tables are created) while the disk has room, then fill the disk.
        subprocess.run([sys.executable, "-c", f"from clv_models.tracking import Tracker; Tracker('clv-train', uri={store!r})"],
                       check=True, capture_output=True)  # in a child: an open connection would keep the mount busy
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * (free - 64 * 1024))
        mapping = ",".join(f"{k}={v}" for k, v in COLUMNS.items())
        tiny = ["--set", "churn.n_trials=1", "--set", "churn.n_folds=2", "--set", "churn.train_cutoffs=2",
                "--set", "churn.max_rounds=50", "--set", "segments.n_init=2",
                *(item for setting in TINY_VALUE for item in ("--set", setting))]  # fmt: skip
        root = tmp_path / "root"
        run = clv("train", "--orders", str(shop["orders"]), "--columns", mapping, "--as-of",
                  shop["as_of"].isoformat(), "--set", f"tracking.root={root}", *tiny, cwd=disk, uri=store)  # fmt: skip
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)
    assert run.returncode == 5, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert not [line for line in lines if not line.startswith("warning: ")], run.stderr[-3000:]  # no error, no trace
    ours = [line for line in lines if line.startswith("warning: trained but not registered: ")]
    assert len(ours) == 1, run.stderr[-3000:]
    assert "no space left on the device" in ours[0]
    (saved,) = (root / "unregistered").iterdir()
    assert f"clv register {saved}" in ours[0]
    assert (saved / "scorer" / "MLmodel").is_file()
    metrics = json.loads((saved / "run.json").read_text())["metrics"]
    assert 0.5 < metrics["churn_auc"] <= 1

    good = f"sqlite:///{tmp_path / 'good' / 'mlflow.db'}"
    registered = clv("register", str(saved), cwd=tmp_path, uri=good)
    assert registered.returncode == 0, registered.stderr[-3000:]
    assert "registered clv-customer-scorer version 1" in registered.stdout
    client = MlflowClient(good, registry_uri=good)
    version = client.get_model_version("clv-customer-scorer", "1")
    assert client.get_run(version.run_id).data.metrics["churn_auc"] == pytest.approx(metrics["churn_auc"])
    again = clv("register", str(saved), cwd=tmp_path, uri=good)
    assert again.returncode == 2 and "already registered (clv-customer-scorer version 1" in again.stderr
