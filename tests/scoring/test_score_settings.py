"""``clv score`` is honest about its settings (issue 16): sections the model fixed at training are
refused when a scoring config changes them, score-time settings (labels, columns) are applied, and
scoring orders that lack an optional column the model's features read are refused unless the user
accepts it, which is then a printed and logged warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.scoring.test_batch_independence import COLUMNS, STAMP


def clv_score(shop: dict, orders: Path, out: Path, *extra: str, columns: dict | None = None):
    mapping = ",".join(f"{k}={v}" for k, v in (columns or COLUMNS).items())
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "SOURCE_DATE_EPOCH": str(int(STAMP.timestamp()))}
    command = [sys.executable, "-m", "clv_models.cli", "score", "--orders", str(orders), "--columns", mapping,
               "--as-of", shop["as_of"].isoformat(), "--model", str(shop["model"]), "--out", str(out),
               "--set", f'tracking.root="{shop["root"]}"', *extra]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=out.parent, env=env)


def test_a_changed_training_section_is_one_line_and_exit_2(shop: dict, tmp_path: Path) -> None:
    run = clv_score(shop, shop["orders"], tmp_path / "s.parquet", "--set", "churn_risk.high=0.5")
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert "[churn_risk] is fixed when the model is trained" in run.stderr and "high = 0.5 (trained: 0.6)" in run.stderr
    assert "retrain" in run.stderr
    assert not (tmp_path / "s.parquet").exists()
    # Repeating the trained value is not a change: one config may serve training and scoring.
    same = clv_score(shop, shop["orders"], tmp_path / "same.parquet", "--set", "churn_risk.high=0.6",
                     "--set", "scoring.columns=['customer_id','churn_risk']", "--set", 'labels.language="zh"')  # fmt: skip
    assert same.returncode == 0, same.stderr
    written = pd.read_parquet(tmp_path / "same.parquet")
    assert list(written.columns) == ["customer_id", "churn_risk"]  # scoring.columns applied
    codes = {"高流失风险", "中流失风险", "低流失风险"}
    assert set(written["churn_risk"]) <= codes and len(set(written["churn_risk"])) >= 2  # labels applied


def test_a_missing_optional_column_is_refused_unless_accepted(shop: dict, tmp_path: Path) -> None:
    orders = tmp_path / "no_country.parquet"
    shop["frame"].drop(columns=["country"]).to_parquet(orders)
    columns = {k: v for k, v in COLUMNS.items() if k != "country"}
    refused = clv_score(shop, orders, tmp_path / "r.parquet", columns=columns)
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert "country" in refused.stderr and "--columns country=<source column>" in refused.stderr
    assert "--accept-missing-column country" in refused.stderr
    accepted = clv_score(shop, orders, tmp_path / "a.parquet", "--accept-missing-column", "country", columns=columns)
    assert accepted.returncode == 0, accepted.stderr
    assert "warning: order column 'country' is missing" in accepted.stderr
    scores = pd.read_parquet(tmp_path / "a.parquet")
    assert len(scores) == len(shop["scores"])


def test_the_value_section_is_fixed_at_training() -> None:
    """A scoring config that changes [value] (the tiers' ranker and the model behind
    value_forecast are in the scorer) is refused, as [churn] is; repeating it is accepted."""
    import types

    import pytest

    from clv_models.config import load_settings
    from clv_models.errors import ClvInputError
    from clv_models.scoring.batch import check_training_sections

    trained = types.SimpleNamespace(settings=load_settings(None, ["value.n_trials=3"]))
    with pytest.raises(ClvInputError, match=r"\[value\] is fixed when the model is trained.*ranker = \"btyd_clv\""):
        check_training_sections(load_settings(None, ['value.ranker="btyd_clv"']), trained, "m")
    check_training_sections(load_settings(None, ["value.n_trials=3"]), trained, "m")
