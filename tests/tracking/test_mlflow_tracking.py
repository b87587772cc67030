"""MLflow tracking through `clv_models.tracking`: store location, nested runs, params, metrics, artifacts,
Optuna trials, and the provenance fingerprints. Every store lives under a pytest temporary directory."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from clv_models.tracking import (
    NONFINITE_METRICS_TAG,
    NullRunHandle,
    NullTracker,
    RunHandle,
    Tracker,
    artifact_location,
    file_sha256,
    frame_sha256,
    git_commit,
    package_version,
    tracking_uri,
)
from tests.conftest import REPO_ROOT

PARENT = "mlflow.parentRunId"


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store for the module: creating its tables takes about a second."""
    return tmp_path_factory.mktemp("mlflow-store")


@pytest.fixture
def tracker(store_root: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Tracker:
    """A tracker on the shared store, with an experiment of its own so searches see only this test's runs."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Tracker(f"test-{request.node.name}", root=store_root)


def runs(tracker: Tracker) -> list:
    return MlflowClient(tracker.uri).search_runs([tracker.experiment_id])


def under(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def test_default_uri_is_sqlite_under_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    assert tracking_uri(root) == f"sqlite:///{root.resolve()}/mlruns/mlflow.db"
    assert (root / "mlruns").is_dir()
    assert artifact_location(root) == (root.resolve() / "mlruns" / "artifacts").as_uri()
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"  # "." is the working directory


def test_env_var_overrides_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert tracking_uri(tmp_path / "project") == uri
    assert not (tmp_path / "project").exists()  # nothing created for a store we do not use


def test_importing_the_package_does_not_import_mlflow_or_optuna() -> None:
    code = "import sys, clv_models, clv_models.tracking; print(sorted({'mlflow', 'optuna'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_parent_with_two_children(tracker: Tracker, store_root: Path) -> None:
    with tracker.start_run("train", tags={"cutoff": "2011-12-09"}) as parent:
        with parent.child("bgnbd", tags={"model": "bgnbd"}) as first:
            first.log_metrics({"holdout_purchases_mae": 0.5})
        with parent.child("gamma_gamma") as second:
            assert second.run_id != first.run_id
    found = {run.info.run_id: run for run in runs(tracker)}
    assert set(found) == {parent.run_id, first.run_id, second.run_id}
    assert found[first.run_id].data.tags[PARENT] == parent.run_id
    assert found[second.run_id].data.tags[PARENT] == parent.run_id
    assert PARENT not in found[parent.run_id].data.tags
    assert found[parent.run_id].data.tags["cutoff"] == "2011-12-09"
    assert found[first.run_id].info.run_name == "bgnbd" and found[first.run_id].data.tags["model"] == "bgnbd"
    assert {run.info.status for run in found.values()} == {"FINISHED"}
    assert under(Path(tracker.uri.removeprefix("sqlite:///")), store_root)


def test_nested_start_run_uses_innermost_open_run(tracker: Tracker) -> None:
    with tracker.start_run("outer") as outer:
        with tracker.start_run("inner", nested=True) as inner:
            pass
        with tracker.start_run("separate") as separate:  # not nested: top level even inside another run
            pass
    tags = {run.info.run_id: run.data.tags for run in runs(tracker)}
    assert tags[inner.run_id][PARENT] == outer.run_id
    assert PARENT not in tags[separate.run_id]


def test_params_flattened_stringified_truncated_and_batched(tracker: Tracker) -> None:
    many = {f"p{i:03d}": i for i in range(250)}  # more than one batch of 100
    with tracker.start_run("params") as run:
        run.log_params({"bgnbd": {"penalizer": 0.1, "fit": {"maxiter": 200}}, "unit": "D", "long": "x" * 7000,
                        "none": None, "grid": [1, 2], **many})
    params = MlflowClient(tracker.uri).get_run(run.run_id).data.params
    assert params["bgnbd.penalizer"] == "0.1" and params["bgnbd.fit.maxiter"] == "200"
    assert params["unit"] == "D" and params["none"] == "None" and params["grid"] == "[1, 2]"
    assert len(params["long"]) == 6000 and params["long"].endswith("[truncated]")
    assert all(params[key] == str(value) for key, value in many.items())
    with pytest.raises(ValueError, match="twice"):
        run.log_params({"a.b": 1, "a": {"b": 2}})


def test_nonfinite_metrics_are_skipped_and_named_in_a_tag(tracker: Tracker) -> None:
    with tracker.start_run("metrics") as run:
        run.log_metrics({"churn_auc": 0.8, "holdout_clv_gini": float("nan"), "x": float("inf")})
        run.log_metrics({"churn_auc": 0.9, "y": None}, step=1)
        with pytest.raises(TypeError, match="churn_brier"):
            run.log_metrics({"churn_brier": "0.1"})
    data = MlflowClient(tracker.uri).get_run(run.run_id).data
    assert data.metrics == {"churn_auc": 0.9}
    assert data.tags[NONFINITE_METRICS_TAG] == "holdout_clv_gini,x,y"
    history = MlflowClient(tracker.uri).get_metric_history(run.run_id, "churn_auc")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.8), (1, 0.9)]


def test_failed_run_is_marked_failed_and_the_error_re_raised(tracker: Tracker) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with tracker.start_run("parent") as parent:
            with parent.child("child") as child:
                raise RuntimeError("boom")
    status = {run.info.run_id: run.info.status for run in runs(tracker)}
    assert status == {parent.run_id: "FAILED", child.run_id: "FAILED"}


def test_artifacts_land_under_the_store_root(tracker: Tracker, store_root: Path, tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [0, 1])
    local = tmp_path / "notes.txt"
    local.write_text("hello")
    repo_files_before = {p for p in (REPO_ROOT / "mlruns").rglob("*")} | {p for p in REPO_ROOT.glob("mlflow.db")}
    with tracker.start_run("artifacts") as run:
        run.log_figure(fig, "plots/lift.png")
        run.log_dict({"a": 1, "b": [1, 2]}, "report/metrics.json")
        run.log_table(pd.DataFrame({"decile": [1, 2], "clv": [10.5, 3.25]}), "report/deciles.csv")
        run.log_table(pd.DataFrame({"n": [3]}, index=pd.Index(["c1"], name="customer_id")), "report/indexed.csv")
        run.log_text("plain", "report/note.txt")
        run.log_artifact(local, "inputs")
    artifact_uri = MlflowClient(tracker.uri).get_run(run.run_id).info.artifact_uri
    assert artifact_uri == f"{artifact_location(store_root)}/{run.run_id}/artifacts"
    base = Path(artifact_uri.removeprefix("file://"))
    assert under(base, store_root)
    assert (base / "plots/lift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (base / "report/metrics.json").read_text().replace(" ", "").replace("\n", "") == '{"a":1,"b":[1,2]}'
    assert (base / "report/deciles.csv").read_text() == "decile,clv\n1,10.5\n2,3.25\n"
    assert (base / "report/indexed.csv").read_text() == "customer_id,n\nc1,3\n"
    assert (base / "report/note.txt").read_text() == "plain"
    assert (base / "inputs/notes.txt").read_text() == "hello"
    repo_files_after = {p for p in (REPO_ROOT / "mlruns").rglob("*")} | {p for p in REPO_ROOT.glob("mlflow.db")}
    assert repo_files_after == repo_files_before
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()  # nothing in the cwd


def test_optuna_trials_become_child_runs(tracker: Tracker) -> None:
    optuna = pytest.importorskip("optuna")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the expected FAIL and PRUNED lines; restored below

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10, 10)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        trial.set_user_attr("note", f"trial {trial.number}")
        trial.set_user_attr("curve", [1, 2])  # not a scalar: not logged
        trial.report((x - 2) ** 2 + 1, step=0)
        if trial.number == 2:
            raise optuna.TrialPruned()
        if trial.number == 3:
            raise ValueError("diverged")
        trial.report((x - 2) ** 2 + 0.5, step=1)
        return (x - 2) ** 2 + (kind == "b")

    try:
        with tracker.start_run("tune") as parent:
            study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
            study.optimize(objective, n_trials=5, callbacks=[tracker.optuna_callback(parent)], catch=(ValueError,))
    finally:
        optuna.logging.set_verbosity(verbosity)

    client = MlflowClient(tracker.uri)
    children = client.search_runs([tracker.experiment_id], filter_string=f"tags.`{PARENT}` = '{parent.run_id}'")
    by_name = {run.info.run_name: run for run in children}
    assert sorted(by_name) == [f"trial-{n:04d}" for n in range(5)]
    expected_state = {0: "COMPLETE", 1: "COMPLETE", 2: "PRUNED", 3: "FAIL", 4: "COMPLETE"}
    for trial in study.trials:
        run = by_name[f"trial-{trial.number:04d}"]
        assert trial.state.name == expected_state[trial.number]
        assert run.data.tags["trial_state"] == expected_state[trial.number]
        assert run.data.tags["trial_number"] == str(trial.number)
        assert run.info.status == ("FAILED" if trial.number == 3 else "FINISHED")
        assert float(run.data.params["x"]) == trial.params["x"] and run.data.params["kind"] == trial.params["kind"]
        assert run.data.params["user_attrs.note"] == f"trial {trial.number}"
        assert "user_attrs.curve" not in run.data.params
        if trial.value is None:
            assert "trial_value" not in run.data.metrics
        else:
            assert run.data.metrics["trial_value"] == trial.value
        history = client.get_metric_history(run.info.run_id, "trial_intermediate")
        assert sorted((m.step, m.value) for m in history) == sorted(trial.intermediate_values.items())
    assert len(by_name["trial-0002"].data.params) == 3  # x, kind, user_attrs.note
    assert [m.step for m in client.get_metric_history(by_name["trial-0002"].info.run_id, "trial_intermediate")] == [0]


def test_null_tracker_has_the_same_interface_and_does_nothing(tracker: Tracker, tmp_path: Path) -> None:
    def public(obj: object) -> set[str]:
        return {name for name in dir(obj) if not name.startswith("_")}

    def parameters(obj: object, name: str) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(getattr(obj, name)).parameters.values()]

    null = NullTracker("anything", root=tmp_path)
    assert public(tracker) - {"client"} <= public(null)  # the client is MLflow's own; a null tracker has none
    for name in ("start_run", "optuna_callback"):
        assert parameters(tracker, name) == parameters(null, name)
    assert public(RunHandle) <= public(NullRunHandle)
    for name in public(RunHandle) - {"run_id"}:
        assert parameters(RunHandle, name) == parameters(NullRunHandle, name), name
    tracker = null
    with tracker.start_run("run", tags={"a": "b"}, nested=True) as run:
        assert run.run_id is None
        run.log_params({"a": {"b": 1}})
        run.log_metrics({"m": float("nan")}, step=3)
        run.set_tags({"t": 1})
        run.log_dict({}, "x.json")
        run.log_text("", "x.txt")
        run.log_table(pd.DataFrame(), "x.csv")
        run.log_artifact(tmp_path, None)
        run.log_figure(None, "x.png")
        with run.child("child") as child:
            assert child.run_id is None
        tracker.optuna_callback(run)(None, None)
    with pytest.raises(KeyError):
        with tracker.start_run("fails"):
            raise KeyError("passes through")
    assert list(tmp_path.iterdir()) == []


def test_frame_sha256_is_stable_and_sensitive() -> None:
    frame = pd.DataFrame({"customer_id": ["a", "b", "c"], "amount": [1.0, 2.5, 3.0]})
    digest = frame_sha256(frame)
    assert len(digest) == 64 and digest == frame_sha256(frame.copy())
    changed = frame.copy()
    changed.loc[1, "amount"] = 2.6
    assert frame_sha256(changed) != digest
    assert frame_sha256(frame.rename(columns={"amount": "value"})) != digest
    assert frame_sha256(frame.astype({"amount": "float32"})) != digest
    assert frame_sha256(frame.set_axis([1, 2, 3])) != digest


def test_file_sha256(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 * (1 << 20) + 17)  # spans several 1 MiB chunks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_git_commit_none_outside_a_repo_or_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # do not find a repo above tmp_path
    assert git_commit(tmp_path) is None
    assert git_commit(tmp_path / "missing") is None
    monkeypatch.setenv("PATH", "")
    assert git_commit(REPO_ROOT) is None


def test_package_version() -> None:
    import clv_models

    assert package_version() == clv_models.__version__
