"""Faults of the environment end cleanly (issue 20, item 2): a write the machine refuses — a
file-size limit, a full disk, a directory that cannot be created, a tracking store that cannot be
opened — is one line naming the path and the fix, exit code 4, no traceback; the previous output
stays and no partial file is left. The faults are real: ``RLIMIT_FSIZE`` on the child process, a
64 KiB tmpfs (when this machine lets the test mount one), paths under ``/proc``."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.scoring.test_batch_independence import COLUMNS

PREVIOUS = b"the previous scores\n"


def clv(*args: str, cwd: Path, env: dict[str, str] | None = None, file_limit: int | None = None):
    def limit() -> None:  # runs in the child: a write past `file_limit` bytes fails with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run(
        [sys.executable, "-m", "clv_models.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
        preexec_fn=limit if file_limit is not None else None,
    )  # fmt: skip


def score_args(shop: dict, out: Path) -> list[str]:
    mapping = ",".join(f"{k}={v}" for k, v in COLUMNS.items())
    return ["score", "--orders", str(shop["orders"]), "--columns", mapping, "--as-of", shop["as_of"].isoformat(),
            "--model", str(shop["model"]), "--out", str(out), "--set", f'tracking.root="{shop["root"]}"']  # fmt: skip


def assert_one_line(run: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 4, run.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_untouched(directory: Path, out: Path) -> None:
    assert out.read_bytes() == PREVIOUS
    assert sorted(p.name for p in directory.iterdir()) == [out.name], "a partial file was left behind"


def test_scores_over_a_file_size_limit(shop: dict, tmp_path: Path) -> None:
    out = tmp_path / "out" / "scores.parquet"
    out.parent.mkdir()
    out.write_bytes(PREVIOUS)
    run = clv(*score_args(shop, out), cwd=tmp_path, file_limit=64 * 1024)
    assert_one_line(run, f"cannot write the scores to {out}", "file too large", "nothing was replaced")
    assert_untouched(out.parent, out)


def test_scores_on_a_full_disk(shop: dict, tmp_path: Path) -> None:
    disk = tmp_path / "tiny"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        out = disk / "scores.parquet"
        out.write_bytes(PREVIOUS)
        run = clv(*score_args(shop, out), cwd=tmp_path)
        assert_one_line(run, f"cannot write the scores to {out}", "no space left on the device")
        assert_untouched(disk, out)
        # The quarantine of `clv validate` on the same disk blames the disk, not the input file.
        lines = tmp_path / "lines.csv"
        rng = np.random.default_rng(20)
        rows = [f"c{i % 500},2024-01-{1 + i % 28:02d},{rng.random() * 100:.6f}\n" for i in range(5_000)]
        rows += [f",2024-01-01,{rng.random() * 100:.6f}\n" for _ in range(20_000)]  # guests: quarantined
        lines.write_text("customer_id,order_ts,amount\n" + "".join(rows))
        run = clv("validate", "--orders", str(lines), "--quarantine", str(disk / "q.parquet"), cwd=tmp_path)
        assert run.returncode != 0 and "Traceback" not in run.stderr
        assert f"cannot write the quarantine to {disk / 'q.parquet'}: no space left" in run.stderr
        assert_untouched(disk, out)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_an_output_directory_that_cannot_be_created(shop: dict, tmp_path: Path) -> None:
    out = Path("/proc/clv-no-such-dir/scores.parquet")
    run = clv(*score_args(shop, out), cwd=tmp_path)
    assert_one_line(run, f"cannot write the scores to {out}")


def test_a_tracking_store_that_cannot_be_created(shop: dict, tmp_path: Path) -> None:
    store = "sqlite:////proc/clv-no-such-dir/mlflow.db"
    run = clv(*score_args(shop, tmp_path / "s.parquet")[:-2], "--model", "models:/clv-customer-scorer@champion",
              cwd=tmp_path, env={"MLFLOW_TRACKING_URI": store})  # fmt: skip
    assert_one_line(run, f"cannot open the MLflow tracking store {store}", "MLFLOW_TRACKING_URI")
    mapping = ",".join(f"{k}={v}" for k, v in COLUMNS.items())
    run = clv("train", "--orders", str(shop["orders"]), "--columns", mapping, cwd=tmp_path,
              env={"MLFLOW_TRACKING_URI": store})  # fmt: skip
    assert_one_line(run, f"cannot open the MLflow tracking store {store}")
