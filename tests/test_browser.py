"""The MLflow UI in a real browser: two small `clv train` runs into a temporary store, `mlflow
server` on 127.0.0.1 with one worker, the runs found through the REST API, and headless Chromium
(Debian's `chromium`, installed by `.ci/run`) rendering the run-comparison page (screenshot saved)
and the run page, whose rendered DOM must show the documented metric names."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.training.test_pipeline import make_settings

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
DOCUMENTED = ("holdout_purchases_mae", "holdout_clv_gini", "churn_auc", "churn_brier", "segments_silhouette")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args, url],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_mlflow_ui_shows_the_runs_and_metrics(online_retail_path: Path, tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    from clv_models.training.pipeline import train

    root = tmp_path / "store"
    runs = [train(make_settings(online_retail_path, root, f"ltv.holdout_days={days}"), register=False)
            for days in (120, 180)]  # fmt: skip
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", runs[0].tracking_uri,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("mlflow server did not answer on /health within 120 s")
        body = json.dumps({"experiment_ids": [runs[0].experiment_id], "filter": "tags.cutoff = '2011-12-09'"})
        request = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", data=body.encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            found = json.load(response)["runs"]
        ids = sorted(run["info"]["run_id"] for run in found)
        assert ids == sorted(run.run_id for run in runs)
        metrics = {m["key"] for m in found[0]["data"]["metrics"]}
        assert set(DOCUMENTED) <= metrics

        quote = urllib.parse.quote
        experiments = quote(json.dumps([runs[0].experiment_id]))
        compare = f"{base}/#/compare-runs?runs={quote(json.dumps(ids))}&experiments={experiments}"
        screenshot = tmp_path / "mlflow_compare_runs.png"
        shot = _chromium(compare, tmp_path / "profile1", "--window-size=1600,1400", f"--screenshot={screenshot}")
        assert screenshot.is_file() and screenshot.stat().st_size > 50_000, shot.stderr[-2000:]
        if os.environ.get("CLV_BROWSER_SCREENSHOT"):  # to refresh the README's picture on purpose
            shutil.copyfile(screenshot, os.environ["CLV_BROWSER_SCREENSHOT"])
        dom = _chromium(compare, tmp_path / "profile2", "--window-size=1600,4000", "--dump-dom").stdout
        assert f"Comparing {len(ids)} Runs" in dom and all(run_id in dom for run_id in ids)
        run_page = f"{base}/#/experiments/{runs[0].experiment_id}/runs/{ids[0]}"
        dom = _chromium(run_page, tmp_path / "profile3", "--window-size=1600,6000", "--dump-dom").stdout
        for name in DOCUMENTED:
            assert name in dom, name
        # The run's self-contained report opens in the browser with every section and plot.
        from clv_models.tracking import Tracker

        client = Tracker("clv-train", root=root).client
        report = Path(client.download_artifacts(ids[0], "report.html", str(tmp_path)))
        dom = _chromium(report.as_uri(), tmp_path / "profile4", "--window-size=1200,3000", "--dump-dom").stdout
        for heading in ("Data quality", "Lifetime value", "Churn", "Segments and tiers"):
            assert f">{heading}" in dom, heading
        assert dom.count("<img") == 13
    finally:
        server.terminate()
        server.wait(timeout=30)
