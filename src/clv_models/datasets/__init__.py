"""Data to try clv_models on: a real shop shipped with the package, and simulated shops whose
futures are known.

* :func:`load_online_retail` / :func:`online_retail_path`: the UCI "Online Retail" invoice lines
  (CC BY 4.0, Chen, Sain & Guo 2012), as exported; ingest them with
  :data:`ONLINE_RETAIL_COLUMNS`.
* :func:`load_cdnow_master`: CDNOW's purchases from the ``lifetimes`` package, when installed.
* :func:`simulate_orders`: a seeded raw export of a simulated shop (profiles ``retail``,
  ``weekly_grocery``, ``one_time``, ``wholesale``, ``seasonal``) with each customer's latent
  purchase rate, drop-out and future purchases.
* :func:`inject_uplift`: a known effect of an action (extra orders, larger orders) written into
  the treated customers' orders after a cutoff, with the true effect an A/B evaluation must find.

Importing this package reads and computes nothing.
"""

from clv_models.datasets.reference import (
    CDNOW_COLUMNS,
    ONLINE_RETAIL_ATTRIBUTION,
    ONLINE_RETAIL_COLUMN_MAP,
    ONLINE_RETAIL_COLUMNS,
    ONLINE_RETAIL_NOT_PRODUCTS,
    ONLINE_RETAIL_SHA256,
    MissingDependencyError,
    cdnow_master_path,
    load_cdnow_master,
    load_online_retail,
    online_retail_path,
)
from clv_models.datasets.simulate import (
    EXPORT_COLUMNS,
    PROFILES,
    SIMULATED_COLUMNS,
    ShopProfile,
    SimulatedShop,
    SimulationSettingsError,
    simulate_orders,
)
from clv_models.datasets.uplift import InjectedUplift, Uplift, inject_uplift

__all__ = [
    "CDNOW_COLUMNS",
    "EXPORT_COLUMNS",
    "InjectedUplift",
    "ONLINE_RETAIL_ATTRIBUTION",
    "ONLINE_RETAIL_COLUMNS",
    "ONLINE_RETAIL_COLUMN_MAP",
    "ONLINE_RETAIL_NOT_PRODUCTS",
    "ONLINE_RETAIL_SHA256",
    "PROFILES",
    "SIMULATED_COLUMNS",
    "MissingDependencyError",
    "ShopProfile",
    "SimulatedShop",
    "SimulationSettingsError",
    "Uplift",
    "cdnow_master_path",
    "inject_uplift",
    "load_cdnow_master",
    "load_online_retail",
    "online_retail_path",
    "simulate_orders",
]
