"""The ``clv`` command line, run as a real subprocess: exit codes, one-line errors, outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ONLINE_RETAIL_COLUMNS

LINES_CSV = (
    "CustomerID,InvoiceNo,InvoiceDate,Quantity,UnitPrice\n"
    "1,10,2024-01-01 10:00,2,5\n"
    "1,11,2024-01-05 10:00,1,5\n"
    "2,12,2024-01-02 10:00,1,7\n"
)


def clv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clv_models.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def lines_csv(tmp_path: Path) -> Path:
    path = tmp_path / "lines.csv"
    path.write_text(LINES_CSV)
    return path


def test_missing_file(tmp_path: Path) -> None:
    result = clv("validate", "--orders", "nope.csv", "--columns", ONLINE_RETAIL_COLUMNS, cwd=tmp_path)
    assert_user_error(result, 2, "nope.csv: file not found")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    result = clv("validate", "--orders", "empty.csv", "--columns", ONLINE_RETAIL_COLUMNS, cwd=tmp_path)
    assert_user_error(result, 2, "empty.csv: file is empty")


def test_header_only_file(tmp_path: Path) -> None:
    (tmp_path / "header.csv").write_text(LINES_CSV.splitlines()[0] + "\n")
    result = clv("validate", "--orders", "header.csv", "--columns", ONLINE_RETAIL_COLUMNS, cwd=tmp_path)
    assert_user_error(result, 2, "header.csv: no data rows")


def test_missing_column_lists_columns_and_suggests(lines_csv: Path, tmp_path: Path) -> None:
    columns = ONLINE_RETAIL_COLUMNS.replace("CustomerID", "CustomerId")
    result = clv("validate", "--orders", str(lines_csv), "--columns", columns, cwd=tmp_path)
    assert_user_error(
        result, 2, "lines.csv: column 'CustomerId' (mapped to customer_id) not found",
        "did you mean 'CustomerID'?", "columns are: CustomerID, InvoiceNo, InvoiceDate, Quantity, UnitPrice",
        "--columns customer_id=",
    )


def test_undecodable_text(tmp_path: Path) -> None:
    (tmp_path / "bin.csv").write_bytes(LINES_CSV.encode() + b"3,13,2024-01-03 10:00,1,\xff\xfe\n")
    result = clv("validate", "--orders", "bin.csv", "--columns", ONLINE_RETAIL_COLUMNS,
                 "--encoding", "utf-8", cwd=tmp_path)
    assert_user_error(result, 2, "bin.csv", "not valid UTF-8", "--encoding")


def test_not_a_parquet_file(tmp_path: Path) -> None:
    (tmp_path / "fake.parquet").write_text("this is not parquet")
    result = clv("validate", "--orders", "fake.parquet", "--columns", ONLINE_RETAIL_COLUMNS, cwd=tmp_path)
    assert_user_error(result, 2, "fake.parquet: cannot read as parquet")


def test_bad_flags_and_config(lines_csv: Path, tmp_path: Path) -> None:
    assert_user_error(
        clv("validate", "--orders", str(lines_csv), "--columns", "customer_id", cwd=tmp_path),
        2, "--columns: 'customer_id' is not of the form field=SourceColumn",
    )
    assert_user_error(
        clv("validate", "--orders", str(lines_csv), "--columns", "client=CustomerID", cwd=tmp_path),
        2, "unknown field 'client'",
    )
    assert_user_error(
        clv("validate", "--orders", str(lines_csv), "--columns", ONLINE_RETAIL_COLUMNS,
            "--as-of", "2024-13-01", cwd=tmp_path),
        2, "--as-of '2024-13-01' is not a day of the calendar (month must be in 1..12)",
    )
    (tmp_path / "bad.toml").write_text("[orders\npath = 1")
    assert_user_error(clv("config", "show", "--config", "bad.toml", cwd=tmp_path), 2, "bad.toml: invalid TOML")
    assert_user_error(
        clv("config", "show", "--set", "validation.max_bad_share=2", cwd=tmp_path),
        2, "config error at 'validation.max_bad_share'",
    )


def test_messages_that_fix_the_mistake(lines_csv: Path, tmp_path: Path) -> None:
    """A newcomer's typos: the unknown key gets the closest valid one, a date in another format its ISO day."""
    cases = {
        ("config", "show", "--set", "churn.trials=5"):
            "error: config error at 'churn.trials': unknown key 'trials' in [churn]; did you mean churn.n_trials?",
        ("validate", "--orders", str(lines_csv), "--as-of", "03/31/2019"):
            "error: --as-of '03/31/2019' is not a date in the form YYYY-MM-DD; did you mean --as-of 2019-03-31 "
            "(month/day/year)?",
        ("features", "--out", "f.parquet", "--orders", str(lines_csv), "--as-of", "2019-03-31",
         "--holdout-end", "31/12/2019"):
            "error: --holdout-end '31/12/2019' is not a date in the form YYYY-MM-DD; did you mean "
            "--holdout-end 2019-12-31 (day/month/year)?",
        ("config", "show", "--set", "features.as_of=03/31/2019"):
            "error: config error at 'features.as_of': '03/31/2019' is not a date in the form YYYY-MM-DD; "
            "did you mean 2019-03-31 (month/day/year)?",
    }  # fmt: skip
    for args, line in cases.items():
        result = clv(*args, cwd=tmp_path)
        assert_user_error(result, 2)
        assert result.stderr.strip() == line


def test_too_many_malformed_rows(tmp_path: Path) -> None:
    bad = LINES_CSV + "3,13,yesterday,1,2\n3,14,2024-01-03,one,2\n"
    (tmp_path / "bad.csv").write_text(bad)
    result = clv("validate", "--orders", "bad.csv", "--columns", ONLINE_RETAIL_COLUMNS,
                 "--quarantine", "q/bad.parquet", cwd=tmp_path)
    assert_user_error(result, 3, "2 of 5 rows (40.0%) are malformed", "bad_timestamp: 1", "bad_amount: 1",
                      "see q/bad.parquet", "validation.max_bad_share")
    quarantined = pd.read_parquet(tmp_path / "q" / "bad.parquet")
    assert quarantined["reason"].tolist() == ["bad_timestamp", "bad_amount"]
    assert quarantined["InvoiceDate"].tolist() == ["yesterday", "2024-01-03"]

    relaxed = clv("validate", "--orders", "bad.csv", "--columns", ONLINE_RETAIL_COLUMNS,
                  "--quarantine", "q/bad.parquet", "--max-bad-share", "0.5", cwd=tmp_path)
    assert relaxed.returncode == 0, relaxed.stderr


def test_features_writes_parquet_and_csv(lines_csv: Path, tmp_path: Path) -> None:
    result = clv("features", "--orders", str(lines_csv), "--columns", ONLINE_RETAIL_COLUMNS,
                 "--as-of", "2024-01-10", "--out", "out/rfm.parquet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "RFM summary at 2024-01-10" in result.stdout
    rfm = pd.read_parquet(tmp_path / "out" / "rfm.parquet")
    assert rfm.to_dict("list") == {
        "customer_id": ["1", "2"], "frequency": [1.0, 0.0], "recency": [4.0, 0.0],
        "T": [9.0, 8.0], "monetary_value": [5.0, 0.0],
    }
    holdout = clv("features", "--orders", str(lines_csv), "--columns", ONLINE_RETAIL_COLUMNS,
                  "--as-of", "2024-01-02", "--holdout-end", "2024-01-10", "--unit", "W",
                  "--out", "out/rfm.csv", cwd=tmp_path)
    assert holdout.returncode == 0, holdout.stderr
    split = pd.read_csv(tmp_path / "out" / "rfm.csv", dtype={"customer_id": str})
    assert split["frequency_holdout"].tolist() == [1.0, 0.0]  # customer 1 buys again in week 2
    assert split["duration_holdout"].tolist() == [1.0, 1.0]
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no temporary left behind


def test_config_show_applies_file_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text('[orders]\npath = "a.csv"\n[features]\nunit = "W"\n')
    result = clv("config", "show", "--config", "run.toml", "--set", "validation.max_bad_share=0.1",
                 "--set", "features.as_of=2024-01-31", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'path = "a.csv"' in result.stdout
    assert 'unit = "W"' in result.stdout
    assert "max_bad_share = 0.1" in result.stdout
    assert "as_of = 2024-01-31" in result.stdout


def test_validate_online_retail(online_retail_path: Path, tmp_path: Path) -> None:
    result = clv("validate", "--orders", str(online_retail_path), "--columns", ONLINE_RETAIL_COLUMNS,
                 "--quarantine", "q.parquet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rows read 541,909" in result.stdout
    assert "missing_customer_id" in result.stdout and "135,080" in result.stdout
    assert "quarantine written to q.parquet" in result.stdout
    assert pd.read_parquet(tmp_path / "q.parquet", columns=["reason"])["reason"].value_counts()[
        "missing_customer_id"] == 135_080


def test_help_on_every_option() -> None:
    for command in ("validate", "features"):
        result = subprocess.run([sys.executable, "-m", "clv_models.cli", command, "--help"],
                                capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
        assert result.returncode == 0
        for option in ("--orders", "--columns", "--as-of", "--config", "--set"):
            assert option in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--simulate", "800", "--profile", "one_time"]], ids=["bundled", "simulated"])
def test_demo_runs_with_nothing_beside_the_repository(tmp_path: Path, extra: list[str]) -> None:
    """`clv demo` (what `make demo` runs) trains and scores on the data shipped in the package, or
    on a simulated shop, from an empty working directory."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CLV_SHARED_DATA": str(tmp_path / "nothing-here")}
    env.pop("MLFLOW_TRACKING_URI", None)
    run = subprocess.run([sys.executable, "-m", "clv_models.cli", "demo", *extra, "--set", "churn.n_trials=2",
                          "--set", "segments.n_init=2", "--set", "value.n_trials=1", "--set", "value.n_folds=2"],
                         capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "registered clv-customer-scorer version 1" in run.stdout and "Traceback" not in run.stderr
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assert len(scores) == 4_325 if not extra else 400 < len(scores) <= 800
    assert scores["customer_id"].is_unique and scores["clv_h"].notna().all()
