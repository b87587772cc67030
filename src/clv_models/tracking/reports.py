"""Build a training run's HTML report from what the run logged (so `clv report RUN_ID` gives the
same file as `clv train` did): the parent's ``evaluation_report.md`` and the PNG figures of its
``ltv``, ``churn`` and ``segments`` child runs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from clv_models.errors import ClvInputError

REPORT_MARKDOWN = "evaluation_report.md"
REPORT_HTML = "report.html"
FIGURE_GROUPS = ("ltv", "churn", "segments")


def _pngs(client: Any, run_id: str, folder: str, work: Path) -> list[tuple[str, bytes]]:
    files = sorted(f.path for f in client.list_artifacts(run_id, folder) if f.path.endswith(".png"))
    out = []
    for path in files:
        local = Path(client.download_artifacts(run_id, path, str(work)))
        out.append((path, local.read_bytes()))
    return out


def run_report_html(tracker: Any, run_id: str) -> str:
    """The HTML report of training run ``run_id`` (see the module docstring)."""
    from mlflow.exceptions import MlflowException

    from clv_models.evaluation.html_report import render_html
    from clv_models.tracking.registry import _quiet_mlflow

    client = tracker.client
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ClvInputError(f"no MLflow run {run_id!r} in {tracker.uri}; pick one from `clv ui`") from None
    with tempfile.TemporaryDirectory(prefix="clv-report-") as tmp, _quiet_mlflow():
        work = Path(tmp)
        try:
            markdown_text = Path(client.download_artifacts(run_id, REPORT_MARKDOWN, str(work))).read_text("utf-8")
        except (MlflowException, OSError):
            raise ClvInputError(
                f"run {run_id} has no {REPORT_MARKDOWN}: it is not a finished `clv train` run"
            ) from None
        children = client.search_runs(
            [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'", max_results=100
        )
        figures: dict[str, list[tuple[str, bytes]]] = {}
        for child in sorted(children, key=lambda r: r.info.run_name or ""):
            name = child.info.run_name
            if name in FIGURE_GROUPS:
                figures[name] = _pngs(client, child.info.run_id, name, work)
    title = f"clv train {run.data.tags.get('cutoff', '')} — run {run_id}"
    return render_html(markdown_text, {g: figures.get(g, []) for g in FIGURE_GROUPS}, title=title)
