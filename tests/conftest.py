"""Shared fixtures. Tests never write into the repository: every output goes to tmp_path."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

# Hypothesis keeps a directory of its own; point it outside the repository before importing it.
# Created here, so removed here when the session ends (a left-over directory per run piles up).
if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
    _hypothesis_dir = tempfile.mkdtemp(prefix="clv-hypothesis-")
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _hypothesis_dir
    atexit.register(shutil.rmtree, _hypothesis_dir, ignore_errors=True)

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# No example database in the working tree (tests must not write into the repo).
settings.register_profile("clv", database=None, deadline=None)
settings.load_profile("clv")

REPO_ROOT = Path(__file__).resolve().parents[1]
ONLINE_RETAIL_COLUMNS = (
    "customer_id=CustomerID,order_id=InvoiceNo,order_ts=InvoiceDate,quantity=Quantity,unit_price=UnitPrice"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (``make test``: ``-n 2 --dist loadgroup``): one worker runs a whole file, so
    its module fixtures are built once, and one worker runs every test of the scoring ``shop`` (a
    session fixture that trains a scorer), wherever they are."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        group = "scoring-shop" if "shop" in getattr(item, "fixturenames", ()) else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def online_retail_path() -> Path:
    """Online Retail as shipped in the package (clv_models.datasets): no data beside the repository."""
    from clv_models.datasets import online_retail_path as shipped

    return shipped()


@pytest.fixture(scope="session")
def cdnow_master_path() -> Path:
    return Path(str(resources.files("lifetimes.datasets").joinpath("CDNOW_master.txt")))


@pytest.fixture(scope="session")
def cdnow_master(cdnow_master_path: Path) -> pd.DataFrame:
    """CDNOW master as published: one row per purchase (no order id), dates as YYYYMMDD."""
    return pd.read_csv(
        cdnow_master_path, sep=r"\s+", dtype={"customer_id": str, "date": str}
    )


@pytest.fixture(autouse=True)
def _no_writes_into_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Relative output paths (quarantine/…, MLflow stores) land in the test's own directory.
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def cdnow_orders_frame(cdnow_master: pd.DataFrame) -> pd.DataFrame:
    """CDNOW master as canonical orders, derived with pandas alone: the $0 rows are not purchases."""
    frame = cdnow_master[cdnow_master["dollar_value"] > 0]
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "order_ts": pd.to_datetime(frame["date"], format="%Y%m%d"),
            "amount": frame["dollar_value"].astype(float),
        }
    )
