"""Fixtures shared by the scoring tests."""

from __future__ import annotations

import datetime as dt
import os
import sys

import numpy as np
import pandas as pd
import pytest

from tests.scoring.test_batch_independence import STAMP, settings_for, simulated_orders
from tests.training.test_pipeline import TINY_VALUE


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """8,000 customers to score, a scorer trained on them 60 days earlier (tiny tuning), the full
    base's scores in one chunk, and a random 1 % of the customers."""
    from clv_models.scoring.job import score
    from clv_models.tracking.mlflow_tracking import tracking_uri
    from clv_models.tracking.registry import export_scorer
    from clv_models.training.pipeline import train

    base = tmp_path_factory.mktemp("batch_independence")
    root = base / "store"
    frame = simulated_orders(8_000, 5)
    orders = base / "orders.parquet"
    frame.to_parquet(orders)
    as_of = frame["order_ts"].max().date()
    trained_at = as_of - dt.timedelta(days=60)
    settings = settings_for(orders, root, trained_at, "churn.n_trials=2", "churn.n_folds=2", "churn.train_cutoffs=2",
                            "churn.max_rounds=80", "segments.n_init=2", *TINY_VALUE)  # fmt: skip
    result = train(settings, force=True)
    model = base / "model"
    export_scorer(f"models:/clv-customer-scorer/{result.model_version}", model, tracking_uri=tracking_uri(root))
    full = score(settings_for(orders, root, as_of), model_uri=str(model), out=base / "full.parquet",
                 scored_at=STAMP, log_run=False)  # fmt: skip
    scores = pd.read_parquet(full.out)
    rng = np.random.default_rng(16)
    subset = sorted(rng.choice(scores["customer_id"].to_numpy(), size=len(scores) // 100, replace=False))
    return {"base": base, "root": root, "orders": orders, "frame": frame, "model": model, "as_of": as_of,
            "scores": scores, "subset": subset}  # fmt: skip


@pytest.fixture(scope="module")
def spark(request: pytest.FixtureRequest):
    """A local Spark session for one module of the scoring tests (skipped, with the reason, when
    pyspark or Java 17 is missing); named after the module."""
    from tests.test_spark import _spark_available

    reason = _spark_available()
    if reason:
        pytest.skip(reason)
    from clv_models.data.spark import spark_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = spark_session("local[2]", app_name=f"clv-{request.module.__name__.rsplit('.', 1)[-1]}")
    yield session
    session.stop()
