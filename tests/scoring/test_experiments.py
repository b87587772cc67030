"""A/B tests of the next best actions end to end (issue 19): ``clv score`` with ``[[experiments]]``
writes each covered customer's group, the same at any chunk size and whatever the display labels;
``clv evaluate-actions`` on the orders that followed recovers an uplift written into them (a
known truth) within its interval and does not call a null experiment significant; it logs a
``clv-actions`` run, and keeps its table when the tracking store is down.

The shop is the scoring tests' shared one (8,000 simulated customers, a scorer trained on them):
scored 90 days before its last order, so the orders of those 90 days are the untreated outcome
window, into which :func:`clv_models.datasets.inject_uplift` writes the treatment's effect.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv_models.errors import ClvInputError
from tests.scoring.test_batch_independence import COLUMNS, STAMP, settings_for

WINDOW_DAYS = 90
# Fixed before the first run: the null experiment's verdict is whatever this draw gives.
EXPERIMENTS = """
[[experiments]]
name = "winback_coupon"
actions = ["automated_win_back", "reactivation_offer"]
holdout_share = 0.5
salt = "2026-12"

[[experiments]]
name = "vip_null"
actions = ["vip_service_early_access", "cross_sell_bundles"]
holdout_share = 0.3
salt = "2026-12-vip"
"""
MAPPING = ",".join(f"{k}={v}" for k, v in COLUMNS.items())


def clv(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clv_models.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def experiment(shop: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shop scored with the experiments at ``as_of − 90 days``, twice: in one chunk with
    codes, and in chunks of 700 with Chinese labels."""
    from clv_models.scoring.job import score

    base = tmp_path_factory.mktemp("experiments")
    config = base / "score.toml"
    config.write_text(EXPERIMENTS, encoding="utf-8")
    cutoff = shop["as_of"] - dt.timedelta(days=WINDOW_DAYS)
    written = {}
    for name, extra in (("codes", ["scoring.labels_in_output=false"]),
                        ("labels", ["scoring.chunk_customers=700", 'labels.language="zh"'])):  # fmt: skip
        settings = settings_for(shop["orders"], shop["root"], cutoff, *extra)
        settings = settings.model_copy(update={"experiments": _experiments(config)})
        out = base / f"{name}.parquet"
        result = score(settings, model_uri=str(shop["model"]), out=out, scored_at=STAMP, log_run=False)
        written[name], written[f"{name}_groups"] = out, result.experiment_groups
    return {"base": base, "config": config, "cutoff": cutoff, **written}


def test_the_job_counts_each_experiment_s_groups_as_written(experiment: dict) -> None:
    from clv_models.scoring.batch import ScoreResult, scoring_record

    for name in ("codes", "labels"):  # one chunk, and chunks of 700 whose tallies are merged
        written = pd.read_parquet(experiment[name]).dropna(subset=["experiment"])
        counted = written.groupby(["experiment", "experiment_group"]).size()
        expected = {e: {"control": int(counted.get((e, "control"), 0)), "treatment": int(counted.get((e, "treatment"), 0))}
                    for e in ("vip_null", "winback_coupon")}  # fmt: skip
        assert experiment[f"{name}_groups"] == expected, name
    assert sum(expected["winback_coupon"].values()) > 0 and sum(expected["vip_null"].values()) > 0
    # The clv-score run logs each count under a fixed name.
    result = ScoreResult(out=Path("s.parquet"), customers=1, chunks=1, model_uri="m", model_version="1",
                         as_of=dt.date(2024, 1, 1), scored_at=dt.datetime(2024, 1, 2),
                         experiment_groups=experiment["codes_groups"])  # fmt: skip
    no_data = type("Report", (), {"metrics": lambda self: {}})()
    metrics = scoring_record(result, no_data, "clv-score")["metrics"]
    for name, groups in experiment["codes_groups"].items():
        for group, count in groups.items():
            assert metrics[f"experiment_{name}_{group}"] == count


def _experiments(config: Path) -> tuple:
    from clv_models.config import load_settings

    return load_settings(config).experiments


def _values(column: pd.Series) -> list:
    return column.astype(object).where(column.notna(), None).tolist()


def test_groups_are_written_and_do_not_depend_on_chunks_or_labels(experiment: dict) -> None:
    from clv_models.experiments import assign_groups

    codes, labels = pd.read_parquet(experiment["codes"]), pd.read_parquet(experiment["labels"])
    assert list(codes.columns[-2:]) == ["experiment", "experiment_group"]
    assert codes["customer_id"].tolist() == labels["customer_id"].tolist()
    for column in ("experiment", "experiment_group"):
        assert _values(codes[column]) == _values(labels[column]), column
    assert not labels["next_best_action"].isin(codes["next_best_action"]).any()  # labels, not codes, were written
    # The groups are the pure function of id and salt, applied to the action codes.
    specs = _experiments(experiment["config"])
    named, group = assign_groups(codes["customer_id"], codes["next_best_action"], specs)
    assert _values(codes["experiment_group"]) == group.tolist() and _values(codes["experiment"]) == named.tolist()
    covered = codes["next_best_action"].isin(["automated_win_back", "reactivation_offer"])
    assert (codes.loc[covered, "experiment"] == "winback_coupon").all()
    untested = codes.loc[codes["experiment"].isna(), "next_best_action"]
    assert untested.isin(["newsletter", "onboarding_second_purchase"]).all() and len(untested) > 0
    control = (codes.loc[covered, "experiment_group"] == "control").mean()
    assert abs(control - 0.5) < 4 * np.sqrt(0.25 / covered.sum())
    vip = codes["experiment"] == "vip_null"
    assert abs((codes.loc[vip, "experiment_group"] == "control").mean() - 0.3) < 4 * np.sqrt(0.21 / vip.sum())


def test_an_experiment_on_an_action_the_model_never_gives_is_refused(shop: dict) -> None:
    from clv_models.config import ExperimentSettings
    from clv_models.scoring.job import score

    settings = settings_for(shop["orders"], shop["root"], shop["as_of"])
    wrong = ExperimentSettings(name="typo", actions=["win_back_offer"], salt="s")
    with pytest.raises(ClvInputError, match="unknown action.s. win_back_offer; the actions of model .* are "):
        score(settings.model_copy(update={"experiments": (wrong,)}), model_uri=str(shop["model"]),
              out=Path(shop["base"]) / "never.parquet", log_run=False)  # fmt: skip


@pytest.fixture(scope="module")
def treated_orders(shop: dict, experiment: dict) -> dict:
    """The shop's orders with a known uplift written into the window after the scores' cutoff for
    the treated customers of winback_coupon (per action: the truth is per action); vip_null none."""
    from clv_models.datasets import Uplift, inject_uplift

    scores = pd.read_parquet(experiment["codes"])
    frame = shop["frame"]
    start = dt.datetime.combine(experiment["cutoff"] + dt.timedelta(days=1), dt.time())
    end = start + dt.timedelta(days=WINDOW_DAYS)
    uplift = Uplift(extra_order_probability=0.15, extra_order_value=50.0, spend_multiplier=1.2)
    truth = {}
    for k, action in enumerate(("automated_win_back", "reactivation_offer")):
        groups = scores.loc[scores["next_best_action"] == action, ["customer_id", "experiment_group"]]
        injected = inject_uplift(frame, groups, uplift, start=start, end=end, seed=k)
        frame, truth[action] = injected.orders, injected.truth
    frame = frame.assign(order_id=frame["order_id"].astype(str))
    path = experiment["base"] / "orders_after.parquet"
    frame.to_parquet(path)
    return {"path": path, "truth": truth}


def test_evaluate_actions_recovers_the_uplift_and_not_a_null_effect(
    experiment: dict, treated_orders: dict, shop: dict, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    out, store = tmp_path / "effects.csv", tmp_path / "store"
    run = clv("evaluate-actions", "--scores", str(experiment["labels"]), "--orders", str(treated_orders["path"]),
              "--columns", MAPPING, "--until", shop["as_of"].isoformat(), "--out", str(out),
              "--set", f'tracking.root="{store}"', "--quarantine", str(tmp_path / "q.parquet"),
              cwd=tmp_path, env={"MLFLOW_TRACKING_URI": ""})  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Treatment − control per action" in run.stdout and "MLflow run" in run.stdout
    effects = pd.read_csv(out)
    # The zh scores name actions by their labels; the truth is keyed by code, in the same order.
    coupon = effects[effects["experiment"] == "winback_coupon"]
    null = effects[effects["experiment"] == "vip_null"]
    assert len(coupon) == len(null) == 6  # two actions × three outcomes each
    labels = dict(zip(*(pd.read_parquet(experiment[k])["next_best_action"] for k in ("codes", "labels"))))
    for row in coupon.itertuples(index=False):
        code = next(c for c, label in labels.items() if label == row.action)
        truth = treated_orders["truth"][code][row.outcome]
        assert row.ci_low <= truth <= row.ci_high, (row, truth)
        assert row.p_value < 0.05 and truth > row.mde, row  # the effect is there to be found
    assert (null["p_value"] >= 0.05).all(), null
    assert ((null["ci_low"] <= 0) & (null["ci_high"] >= 0)).all()

    client = MlflowClient(f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("clv-actions").experiment_id])
    assert len(runs) == 1
    metrics, tags = runs[0].data.metrics, runs[0].data.tags
    first = coupon.iloc[0]
    key = f"winback_coupon.{first['action']}.{first['outcome']}_difference"
    assert metrics[key] == pytest.approx(first["difference"])
    assert tags["cutoff"] == experiment["cutoff"].isoformat() and tags["until"] == shop["as_of"].isoformat()
    artifacts = [a.path for a in client.list_artifacts(runs[0].info.run_id)]
    assert {"action_effects.csv", "action_effects.png"} <= set(artifacts)


def test_evaluate_actions_keeps_its_table_when_the_tracking_store_is_down(
    experiment: dict, treated_orders: dict, shop: dict, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "effects.csv"
    run = clv("evaluate-actions", "--scores", str(experiment["codes"]), "--orders", str(treated_orders["path"]),
              "--columns", MAPPING, "--until", shop["as_of"].isoformat(), "--out", str(out),
              "--quarantine", str(tmp_path / "q.parquet"), cwd=tmp_path,
              env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}/"})  # fmt: skip
    assert run.returncode == 5, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "Treatment − control per action" in run.stdout
    warning = [line for line in run.stderr.splitlines() if line.startswith("warning: effects computed, but not logged")]
    assert len(warning) == 1 and "cannot reach the MLflow tracking store" in warning[0]
    assert len(pd.read_csv(out)) == 12 and Path(f"{out}.clv-actions-run.json").is_file()


@pytest.mark.parametrize("case", ["plain_scores", "until_before_cutoff", "bad_until"])
def test_bad_input_is_one_line_and_exit_2(case: str, experiment: dict, shop: dict, tmp_path: Path) -> None:
    scores = experiment["codes"]
    until = shop["as_of"].isoformat()
    if case == "plain_scores":
        scores = tmp_path / "plain.parquet"
        pd.read_parquet(experiment["codes"]).drop(columns=["experiment", "experiment_group"]).to_parquet(scores)
    elif case == "until_before_cutoff":
        until = experiment["cutoff"].isoformat()
    else:
        until = "30/12/2024"
    run = clv("evaluate-actions", "--scores", str(scores), "--orders", str(shop["orders"]), "--columns", MAPPING,
              "--until", until, cwd=tmp_path)  # fmt: skip
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    expected = {"plain_scores": "no column(s) experiment, experiment_group; score with an [[experiments]]",
                "until_before_cutoff": "is not after the scores' cutoff",
                "bad_until": "did you mean --until 2024-12-30"}[case]  # fmt: skip
    assert expected in lines[0], lines[0]
