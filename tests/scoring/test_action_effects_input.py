"""``clv evaluate-actions`` reads the scores it is given strictly (issue 19): CSV or Parquet, one
cutoff, one row per customer, the experiment columns present; anything else is one line naming
the file and the fix. Fast: no scorer, no orders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from clv_models.errors import ClvInputError
from clv_models.scoring.action_effects import read_experiment_scores


def _scores(**changes) -> pd.DataFrame:
    frame = pd.DataFrame({
        "customer_id": ["a", "b", "c"], "as_of": pd.Timestamp("2024-01-01"), "next_best_action": ["x", "x", "y"],
        "experiment": ["e", "e", None], "experiment_group": ["control", "treatment", None],
    })  # fmt: skip
    return frame.assign(**changes)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_customers_in_experiments_and_the_cutoff_are_read(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"scores{suffix}"
    frame = _scores()
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    tested, cutoff = read_experiment_scores(path)
    assert cutoff == dt.date(2024, 1, 1)
    assert tested.to_dict("list") == {"customer_id": ["a", "b"], "action": ["x", "x"], "experiment": ["e", "e"],
                                      "experiment_group": ["control", "treatment"]}  # fmt: skip


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_scores().drop(columns=["experiment", "experiment_group"]), "score with an [[experiments]] section"),
        (_scores(as_of=pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01"])), "hold 2 cutoffs"),
        (_scores(customer_id=["a", "a", "c"]), "customer a appears more than once"),
        (_scores(experiment=None, experiment_group=None), "no customer is in an experiment"),
    ],
    ids=["no_experiment_columns", "two_cutoffs", "repeated_customer", "nobody_tested"],
)
def test_bad_scores_are_one_line(tmp_path: Path, frame: pd.DataFrame, message: str) -> None:
    path = tmp_path / "scores.parquet"
    frame.to_parquet(path)
    with pytest.raises(ClvInputError, match=message.replace("[", r"\[").replace("]", r"\]")) as caught:
        read_experiment_scores(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_or_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ClvInputError, match="no such file"):
        read_experiment_scores(tmp_path / "nope.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    with pytest.raises(ClvInputError, match="cannot read it as scores"):
        read_experiment_scores(broken)
