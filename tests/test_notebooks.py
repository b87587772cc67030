"""The analysts' notebooks: stored without outputs, equal to what build_notebooks.py writes, and
executed end to end on Online Retail as shipped in the package (MLflow into a temporary store)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = {
    "01_orders_quality": ("of customers bring 80 % of net revenue", "missing_customer_id"),
    "02_ltv_models": ("holdout_clv_gini", "metrics.holdout_purchases_mae"),
    "03_churn": ("bgnbd_p_no_purchase", "recency_rule", "dtype: float64"),
    "04_segments_tiers": ("core", "高价值"),
    "05_experiments": ("winback_coupon", "newsletter_null", "covered", "MLflow run"),
}


def test_the_notebooks_are_stored_without_outputs() -> None:
    assert [p.stem for p in NOTEBOOKS] == list(EXPECTED)
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


def test_notebooks_match_their_builder(tmp_path: Path) -> None:
    import importlib.util

    builder = REPO_ROOT / "notebooks" / "build_notebooks.py"
    spec = importlib.util.spec_from_file_location("build_notebooks", builder)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    for written in module.build(tmp_path):
        assert written.read_text("utf-8") == (REPO_ROOT / "notebooks" / written.name).read_text("utf-8"), written.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(
    path: Path, online_retail_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("CLV_ORDERS", str(online_retail_path))
    monkeypatch.setenv("CLV_NOTEBOOK_MLRUNS", str(tmp_path / "mlruns"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    notebook = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources=resources)
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    data = [output.get("data", {}) for output in outputs]
    text = "\n".join(
        [str(output.get("text", "")) for output in outputs]
        + [str(d.get("text/plain", "")) + str(d.get("text/html", "")) for d in data]
    )
    for fragment in EXPECTED[path.stem]:
        assert fragment in text, (path.name, fragment)
    assert sum("image/png" in d for d in data) >= 1, path.name
    # Nothing lands in the repository (MLflow and the quarantine go to CLV_NOTEBOOK_MLRUNS).
    present = {p.name for p in (REPO_ROOT / "notebooks").iterdir()} - {"__pycache__", ".gitkeep"}
    assert present == {*(p.name for p in NOTEBOOKS), "build_notebooks.py"}
