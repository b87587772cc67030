"""Event logs without amounts (``orders.frequency_only``, decisions D41): from raw file to scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from clv_models.config import ColumnMap, SourceSettings, load_settings
from clv_models.data.ingest import ingest
from clv_models.errors import ClvInputError

EVENT_COLUMNS = {"customer_id": "user", "order_ts": "event_time", "order_id": "session"}


def event_log(n_customers: int, seed: int) -> pd.DataFrame:
    """A simulated shop's purchases as an event log: who, when, which session, which product; no money."""
    from clv_models.datasets import simulate_orders

    shop = simulate_orders(n_customers, seed=seed, profile="retail", guest_share=0.0)
    lines = shop.orders.dropna(subset=["customer_id"])
    lines = lines[~lines["invoice_id"].str.startswith("C")]  # credit notes are no events
    return lines.rename(columns={"customer_id": "user", "invoice_ts": "event_time", "invoice_id": "session"})[
        ["user", "session", "event_time", "sku"]
    ]


def test_an_event_log_without_amounts_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    event_log(50, 1).to_csv(path, index=False)
    with pytest.raises(ClvInputError) as caught:
        ingest(SourceSettings(path=str(path), columns=ColumnMap(**EVENT_COLUMNS)))
    message = str(caught.value)
    assert "no amount column 'amount'" in message and "--frequency-only" in message
    assert "user, session, event_time, sku" in message


def test_frequency_only_counts_each_order_once_whatever_its_lines(tmp_path: Path) -> None:
    # Hand-made: a has 2 sessions (one of 3 lines, one repeated line), b has 1; no amount column.
    lines = pd.DataFrame(
        {
            "user": ["a", "a", "a", "a", "b"],
            "session": ["s1", "s1", "s1", "s2", "s3"],
            "event_time": ["2024-01-01 10:00", "2024-01-01 10:05", "2024-01-01 10:06", "2024-02-01", "2024-01-15"],
            "sku": ["x", "y", "z", "x", "y"],
        }
    )
    path = tmp_path / "events.csv"
    lines.to_csv(path, index=False)
    settings = SourceSettings(path=str(path), frequency_only=True, columns=ColumnMap(**EVENT_COLUMNS))
    with ingest(settings) as result:
        orders = result.orders_frame()
        assert result.report.frequency_only
    assert orders["order_id"].tolist() == ["s1", "s2", "s3"]
    assert orders["amount"].tolist() == [1.0, 1.0, 1.0]
    assert orders["n_lines"].tolist() == [3, 1, 1]
    assert orders["order_ts"].iloc[0] == pd.Timestamp("2024-01-01 10:00")


@pytest.fixture(scope="module")
def events_trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from clv_models.training.pipeline import train

    base = tmp_path_factory.mktemp("frequency_only")
    frame = event_log(1500, 7)
    orders = base / "events.csv"
    frame.to_csv(orders, index=False)
    as_of = pd.to_datetime(frame["event_time"]).max().date()
    settings = load_settings(
        None,
        [f'orders.path="{orders}"', f'tracking.root="{base / "store"}"', f"features.as_of={as_of.isoformat()}",
         "orders.frequency_only=true", "churn.n_trials=2", "churn.n_folds=2", "churn.train_cutoffs=2",
         "churn.max_rounds=60", "segments.n_init=2"],
        {"orders.columns": EVENT_COLUMNS},
    )  # fmt: skip
    result = train(settings, force=True)
    return {"base": base, "orders": orders, "as_of": as_of, "result": result, "settings": settings}


def test_training_says_it_ran_without_amounts(events_trained: dict) -> None:
    result = events_trained["result"]
    assert result.notices[0].startswith("frequency-only (no amounts were read)")
    assert "frequency-only" in result.report.split("## Data quality")[0]  # in "Read first"
    # The tiers' line names what they rank by, not clv_h (null in these scores).
    tier_line = next(line for line in result.choices if line.startswith("value_tier:"))
    assert "expected purchases" in tier_line and "cut from clv_h" not in tier_line
    assert np.isnan(result.metrics["gamma_gamma_frequency_monetary_corr"])
    assert result.scorer.models.gamma_gamma.expected_order_value(
        pd.DataFrame({"frequency": [0.0, 3.0], "recency": [0.0, 40.0]})
    ).tolist() == [1.0, 1.0]
    assert result.model_version == "1"


def test_scores_of_an_event_log_have_tiers_from_purchases_and_no_money(events_trained: dict) -> None:
    from clv_models.scoring.job import score

    base = events_trained["base"]
    # The scoring config does not repeat frequency_only: the scorer fixes how orders are read.
    settings = load_settings(
        None,
        [f'orders.path="{events_trained["orders"]}"', f'tracking.root="{base / "store"}"',
         f"features.as_of={events_trained['as_of'].isoformat()}"],
        {"orders.columns": EVENT_COLUMNS},
    )  # fmt: skip
    done = score(settings, model_uri="models:/clv-customer-scorer/1", out=base / "scores.parquet", log_run=False)
    scores = pd.read_parquet(done.out)
    assert len(scores) == 1500
    for money in ("monetary_value", "expected_order_value", "clv_h", "value_forecast"):
        assert scores[money].isna().all(), money
    for column in ("p_alive", "expected_purchases_h", "churn_probability"):
        assert scores[column].notna().all(), column
    # Scored at the training cutoff the population is the training one: the configured shares.
    shares = scores["value_tier"].value_counts(normalize=True)
    assert shares.to_dict() == pytest.approx({"high": 0.2, "medium": 0.3, "low": 0.5}, abs=0.002)
    # The tiers rank by discounted expected purchases: in step with the undiscounted expectation.
    tier_rank = scores["value_tier"].map({"low": 0, "medium": 1, "high": 2})
    assert spearmanr(tier_rank, scores["expected_purchases_h"]).statistic > 0.9
    low, high = scores.groupby("value_tier")["expected_purchases_h"].median()[["low", "high"]]
    assert high > 5 * low


def test_a_scorer_trained_on_amounts_refuses_orders_without_them(shop: dict) -> None:
    from clv_models.scoring.job import score
    from tests.scoring.test_batch_independence import settings_for

    settings = settings_for(shop["orders"], shop["root"], shop["as_of"], "orders.frequency_only=true")
    with pytest.raises(ClvInputError, match="was trained on order amounts; it cannot score orders without them"):
        score(settings, model_uri=str(shop["model"]), out=shop["base"] / "never.parquet", log_run=False)
    assert not (shop["base"] / "never.parquet").exists()
