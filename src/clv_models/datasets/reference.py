"""Real order data: Online Retail (shipped inside the package) and CDNOW (from ``lifetimes``).

Nothing is read at import: each function opens its file when called.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

ONLINE_RETAIL_FILE = "online_retail_2010_2011.parquet"
#: sha256 of the shipped file, as published with the shared copy (data/README.md beside it).
ONLINE_RETAIL_SHA256 = "399de155a1c07e4bc89d8ef4f75d619c70a6b4ed39cc76ea54d56c2c939fb72b"
ONLINE_RETAIL_ATTRIBUTION = (
    'Online Retail: UCI Machine Learning Repository, id 352; Chen, Sain & Guo (2012), "Data mining for '
    'the online retail industry", Journal of Database Marketing and Customer Strategy Management '
    "19(3):197-208. Licence CC BY 4.0."
)

#: How ingestion reads Online Retail's columns (the same mapping as ``pipelines/train.toml``):
#: canonical field -> column of the export. ``amount`` is Quantity × UnitPrice.
ONLINE_RETAIL_COLUMN_MAP: Mapping[str, str] = MappingProxyType(
    {
        "customer_id": "CustomerID",
        "order_id": "InvoiceNo",
        "order_ts": "InvoiceDate",
        "quantity": "Quantity",
        "unit_price": "UnitPrice",
        "country": "Country",
        "category": "StockCode",
    }
)
#: The same mapping as a ``--columns`` value (``ColumnMap.parse`` reads it).
ONLINE_RETAIL_COLUMNS = ",".join(f"{field}={column}" for field, column in ONLINE_RETAIL_COLUMN_MAP.items())

#: Online Retail stock codes that are not products (postage, manual entries, discounts, fees,
#: charity, samples): never recommended as a cross-sell (``xsell.exclude_products``, D43).
ONLINE_RETAIL_NOT_PRODUCTS = ("POST", "DOT", "M", "m", "D", "C2", "CRUK", "PADS", "BANK CHARGES", "AMAZONFEE", "S", "B")

#: ``--columns`` for :func:`load_cdnow_master`'s frame (no order id: each row is one order).
CDNOW_COLUMNS = "customer_id=customer_id,order_ts=order_ts,amount=amount"


class MissingDependencyError(ClvInputError, ModuleNotFoundError):
    """An optional package a data set comes from is not installed (one line, with the fix)."""


def online_retail_path() -> Path:
    """Path of the Online Retail export shipped inside the package (a real file in the installed
    package, so DuckDB and ``clv --orders`` can read it). Read-only: never write to it."""
    resource = resources.files("clv_models.datasets").joinpath("data", ONLINE_RETAIL_FILE)
    if not isinstance(resource, Path):  # e.g. a zipped install: there is no file to hand out
        raise ClvInputError(
            f"{ONLINE_RETAIL_FILE}: clv_models is installed in a form without plain files ({resource}); "
            "install it from a wheel or a source tree (pip install clv_models)"
        )
    if not resource.is_file():
        raise ClvInputError(
            f"{resource}: the bundled Online Retail file is missing from this installation; "
            "reinstall clv_models (a wheel or `pip install -e .` includes it)"
        )
    return resource


def load_online_retail() -> pd.DataFrame:
    """The Online Retail invoice lines exactly as exported (541,909 rows): ``InvoiceNo``,
    ``StockCode``, ``Description``, ``Quantity``, ``InvoiceDate``, ``UnitPrice``, ``CustomerID``
    (float, NaN for lines without a customer), ``Country``.

    Raw input, not canonical orders: pass it (or :func:`online_retail_path`) to
    ``clv_models.data.ingest`` with ``ColumnMap.parse(ONLINE_RETAIL_COLUMNS)``. CC BY 4.0: keep the
    attribution (:data:`ONLINE_RETAIL_ATTRIBUTION`) wherever the data or results from it are shown.
    """
    import pandas as pd

    return pd.read_parquet(online_retail_path())


def cdnow_master_path() -> Path:
    """Path of ``CDNOW_master.txt`` inside the installed ``lifetimes`` package (not imported)."""
    spec = importlib.util.find_spec("lifetimes")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "datasets" / "CDNOW_master.txt"
        if candidate.is_file():
            return candidate
    if spec is None:
        raise MissingDependencyError(
            "CDNOW_master.txt comes with the lifetimes package, which is not installed; "
            "install it with: pip install lifetimes==0.11.3 (or the dev extra: pip install 'clv_models[dev]')",
            name="lifetimes",
        )
    raise ClvInputError(
        f"the installed lifetimes package ({', '.join(locations) or spec.origin}) has no "
        "datasets/CDNOW_master.txt; reinstall it: pip install --force-reinstall lifetimes==0.11.3"
    )


def load_cdnow_master() -> pd.DataFrame:
    """CDNOW's master file (69,659 purchases of 23,570 customers, 1997-01 to 1998-06), one row per
    purchase: ``customer_id`` (string, zero-padded as published), ``order_ts`` (the day),
    ``amount`` (dollars; a few are 0 - ingestion quarantines them as ``non_positive_order``).

    There is no order id: ingest with :data:`CDNOW_COLUMNS` (each row is one order). Needs the
    ``lifetimes`` package (a development dependency), which ships the file.

    Raises:
        MissingDependencyError: ``lifetimes`` is not installed (a ``ClvInputError`` and a
            ``ModuleNotFoundError``; the message says how to install it).
    """
    import pandas as pd

    path = cdnow_master_path()
    # customer id, date YYYYMMDD, number of CDs, dollar value; whitespace separated, one header line
    raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype("str"),
            "order_ts": pd.to_datetime(raw["date"], format="%Y%m%d").astype("datetime64[us]"),
            "amount": raw["dollar_value"].astype("float64"),
        }
    )
