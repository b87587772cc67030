"""clv_models.datasets: the shipped Online Retail file, CDNOW, and simulated shops whose futures are
known (determinism, the truth recovered from the export, each profile's rhythm, ingestion)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv_models.config import ColumnMap
from clv_models.data import ingest
from clv_models.datasets import (
    CDNOW_COLUMNS,
    EXPORT_COLUMNS,
    ONLINE_RETAIL_COLUMN_MAP,
    ONLINE_RETAIL_COLUMNS,
    ONLINE_RETAIL_SHA256,
    PROFILES,
    MissingDependencyError,
    SimulatedShop,
    SimulationSettingsError,
    load_cdnow_master,
    load_online_retail,
    online_retail_path,
    simulate_orders,
)
from clv_models.errors import ClvInputError

REPO = Path(__file__).resolve().parents[1]
# Published with the shared copy (../shared/data/README.md), typed in here rather than read from the
# package, so the test compares two independent numbers.
PUBLISHED_ONLINE_RETAIL_SHA256 = "399de155a1c07e4bc89d8ef4f75d619c70a6b4ed39cc76ea54d56c2c939fb72b"
# sha256 of `bench_churn.simulate_orders(n, seed).to_pandas().to_csv(index=False)` computed with the
# generator benchmarks/bench_churn.py had before it moved into clv_models.datasets.
BENCH_CHURN_DIGESTS = {
    (2_000, 7): "8011d398d54b88fae9eaeed3c4943081b5690f4ad11918aca69cc0e49bb636c8",
    (20_000, 7): "5ef0902d5500f0e93df964c6cc9350b53d607a1b34bcae6b3630ac3b11a34b54",
}
# Customers per profile in the tests below: enough for 4-sigma checks, fast (a few seconds in all).
SIZES = {"retail": 20_000, "weekly_grocery": 3_000, "one_time": 20_000, "wholesale": 1_500, "seasonal": 20_000}


@pytest.fixture(scope="module")
def shops() -> dict[str, SimulatedShop]:
    return {name: simulate_orders(size, seed=11, profile=name) for name, size in SIZES.items()}


def purchases_of(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per purchase invoice of a known customer (credit notes are ``C…``), from a raw export."""
    known = lines[lines["customer_id"].notna() & lines["invoice_id"].str.startswith("O")]
    return known.drop_duplicates("invoice_id")[["customer_id", "invoice_id", "invoice_ts"]]


def repeat_gaps_days(lines: pd.DataFrame) -> pd.Series:
    purchases = purchases_of(lines).sort_values(["customer_id", "invoice_ts", "invoice_id"])
    return purchases.groupby("customer_id")["invoice_ts"].diff().dropna().dt.total_seconds() / 86_400


# --------------------------------------------------------------------------------------------
# Real data


def test_the_shipped_online_retail_file_is_the_published_one() -> None:
    path = online_retail_path()
    assert path.is_file() and path.parent.name == "data"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == PUBLISHED_ONLINE_RETAIL_SHA256
    assert ONLINE_RETAIL_SHA256 == PUBLISHED_ONLINE_RETAIL_SHA256
    notice = (path.parent / "README.md").read_text()
    assert PUBLISHED_ONLINE_RETAIL_SHA256 in notice and "CC BY 4.0" in notice and "Chen" in notice


def test_load_online_retail_gives_the_raw_export() -> None:
    frame = load_online_retail()
    assert list(frame.columns) == [
        "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country",
    ]  # fmt: skip
    assert len(frame) == 541_909
    assert frame["CustomerID"].notna().sum() < len(frame)  # blank ids kept, as exported
    assert frame["CustomerID"].dropna().nunique() == 4_372
    assert frame["InvoiceNo"].astype(str).str.startswith("C").any()  # cancellations kept


def test_online_retail_columns_are_the_pipelines_mapping() -> None:
    config = tomllib.loads((REPO / "pipelines" / "train.toml").read_text())
    assert dict(ONLINE_RETAIL_COLUMN_MAP) == config["orders"]["columns"]
    assert ColumnMap.parse(ONLINE_RETAIL_COLUMNS) == ColumnMap(amount=None, **ONLINE_RETAIL_COLUMN_MAP)


def test_online_retail_ingests_with_the_exposed_mapping() -> None:
    with ingest(online_retail_path(), columns=ColumnMap.parse(ONLINE_RETAIL_COLUMNS)) as result:
        counts = result.report.reason_counts
        assert counts["duplicate_line"] == 5_225  # docs/decisions.md D4
        assert counts["return_without_purchase"] == 407  # D3
        assert result.report.customers == 4_325  # the README's demo scores this many
        assert result.report.zero_amount_orders == 4  # free orders are purchases by default (D41)


def test_load_cdnow_master() -> None:
    pytest.importorskip("lifetimes")
    frame = load_cdnow_master()
    assert list(frame.columns) == ["customer_id", "order_ts", "amount"]
    assert len(frame) == 69_659 and frame["customer_id"].nunique() == 23_570
    assert frame["customer_id"].iloc[0] == "00001"  # zero-padded, as published
    assert frame["order_ts"].min() == pd.Timestamp("1997-01-01")
    assert frame["order_ts"].max() < pd.Timestamp("1998-07-01")
    with ingest(frame, columns=ColumnMap.parse(CDNOW_COLUMNS)) as result:  # the $0 rows are purchases
        assert result.report.reason_counts == {} and result.report.zero_amount_orders == 80
        assert result.report.customers == 23_570


def test_load_cdnow_master_without_lifetimes_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import clv_models.datasets.reference as reference

    monkeypatch.setattr(reference.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError) as caught:
        load_cdnow_master()
    assert isinstance(caught.value, ClvInputError) and isinstance(caught.value, ModuleNotFoundError)
    assert "pip install lifetimes" in str(caught.value) and "\n" not in str(caught.value)


def test_importing_the_package_reads_and_imports_nothing_heavy() -> None:
    code = (
        "import sys, clv_models.datasets; "
        "print(sorted(m for m in ('numpy', 'pandas', 'pyarrow', 'duckdb', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# Simulation: determinism, shape


def test_same_seed_gives_byte_identical_frames_and_files(tmp_path: Path) -> None:
    first = simulate_orders(3_000, seed=5, profile="retail")
    again = simulate_orders(3_000, seed=5, profile="retail")
    for name in ("orders", "future", "truth"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(again, name), check_exact=True)
    a = first.write(tmp_path / "a.parquet")
    b = again.write(tmp_path / "b.parquet")
    assert a.read_bytes() == b.read_bytes()
    assert first.write(tmp_path / "a.csv").read_bytes() == again.write(tmp_path / "b.csv").read_bytes()
    other = simulate_orders(3_000, seed=6, profile="retail")
    assert not first.orders.equals(other.orders)
    assert not np.array_equal(first.truth["rate_per_day"], other.truth["rate_per_day"])


def test_export_shape_and_windows(shops: dict[str, SimulatedShop]) -> None:
    for name, shop in shops.items():
        assert tuple(shop.orders.columns) == EXPORT_COLUMNS == tuple(shop.future.columns), name
        cutoff = pd.Timestamp(shop.end) + pd.Timedelta(days=1)
        assert shop.orders["invoice_ts"].max() < cutoff <= shop.future["invoice_ts"].min(), name
        assert shop.future["invoice_ts"].max() < cutoff + pd.Timedelta(days=shop.future_days), name
        assert shop.orders["invoice_ts"].is_monotonic_increasing, name  # invoices numbered in time order
        assert shop.orders["invoice_ts"].min() >= pd.Timestamp(shop.start), name
        assert len(shop.truth) == SIZES[name] and shop.truth["customer_id"].is_unique, name
        assert shop.truth["purchases"].min() >= 1, name  # everyone is acquired before the cutoff
        # The truth's counts are the export's counts.
        observed = purchases_of(shop.orders).groupby("customer_id").size()
        future = purchases_of(shop.future).groupby("customer_id").size()
        truth = shop.truth.set_index("customer_id")
        assert observed.reindex(truth.index, fill_value=0).tolist() == truth["purchases"].tolist(), name
        assert future.reindex(truth.index, fill_value=0).tolist() == truth["future_purchases"].tolist(), name


def test_a_short_history() -> None:
    shop = simulate_orders(2_000, seed=3, profile="retail", start="2024-03-01", days=270, future_days=90)
    assert shop.start.isoformat() == "2024-03-01" and shop.end.isoformat() == "2024-11-25"
    assert shop.orders["invoice_ts"].min() >= pd.Timestamp("2024-03-01")
    assert shop.orders["invoice_ts"].max() < pd.Timestamp("2024-11-26") <= shop.future["invoice_ts"].min()
    assert shop.future["invoice_ts"].max() < pd.Timestamp("2025-02-24")


def test_a_custom_profile_and_the_season_clock() -> None:
    import dataclasses

    from clv_models.datasets.simulate import _SeasonClock

    quick = dataclasses.replace(PROFILES["retail"], name="quick", rate_mean=1 / 10, season=0.0)
    shop = simulate_orders(4_000, seed=1, profile=quick)
    assert shop.profile == quick
    assert abs(shop.truth["rate_per_day"].mean() - 0.1) < 4 * 0.1 / np.sqrt(2 * 4_000)
    plain = simulate_orders(4_000, seed=1, profile="retail", season=0.0)
    assert shop.truth["purchases"].mean() > 1.3 * plain.truth["purchases"].mean()  # drop-out caps the gain
    clock = _SeasonClock(0.9, 350, PROFILES["seasonal"].start)
    t = np.linspace(0.0, 2_000.0, 100_001)
    np.testing.assert_allclose(clock.inverse(clock.forward(t)), t, rtol=0, atol=1e-8)
    assert abs(clock.forward(365.25 * 4) - 365.25 * 4) < 1e-9  # the season averages 1 over whole years


def test_settings_out_of_range_are_one_line_errors() -> None:
    with pytest.raises(SimulationSettingsError, match="unknown profile 'grocery'.*weekly_grocery"):
        simulate_orders(10, seed=1, profile="grocery")
    with pytest.raises(SimulationSettingsError, match="season=1.5"):
        simulate_orders(10, seed=1, season=1.5)
    with pytest.raises(SimulationSettingsError, match="n_customers=0"):
        simulate_orders(0, seed=1)
    with pytest.raises(ClvInputError, match="start='2024-13-01'"):
        simulate_orders(10, seed=1, start="2024-13-01")


# --------------------------------------------------------------------------------------------
# Simulation: the truth is recovered


@pytest.mark.parametrize("name", list(SIZES))
def test_future_buyers_match_the_simulated_truth(shops: dict[str, SimulatedShop], name: str) -> None:
    shop = shops[name]
    truth = shop.truth
    buyers = set(purchases_of(shop.future)["customer_id"])
    p = truth["p_future_purchase"].to_numpy()
    # A sum of independent Bernoulli(p_i): within 4 standard deviations of its mean.
    assert abs(len(buyers) - p.sum()) <= 4 * np.sqrt((p * (1 - p)).sum()), (len(buyers), p.sum())
    # Nobody who dropped out before the cutoff buys afterwards.
    assert buyers <= set(truth.loc[truth["alive_at_end"], "customer_id"])
    assert (truth.loc[~truth["alive_at_end"], "p_future_purchase"] == 0).all()
    if PROFILES[name].regularity == 1.0:  # expected counts are exact for Poisson purchasing
        residual = truth["future_purchases"] - truth["expected_future_purchases"]
        assert abs(residual.sum()) <= 4 * np.sqrt((residual**2).sum())
    else:
        assert truth["expected_future_purchases"].isna().all()


@pytest.mark.parametrize("name", list(SIZES))
def test_latent_parameters_follow_the_profile(shops: dict[str, SimulatedShop], name: str) -> None:
    profile, truth = PROFILES[name], shops[name].truth
    n = len(truth)
    rate = truth["rate_per_day"]
    rate_se = profile.rate_mean / np.sqrt(profile.rate_shape) / np.sqrt(n)
    assert abs(rate.mean() - profile.rate_mean) <= 4 * rate_se
    a, b = profile.dropout_a, profile.dropout_b
    p_sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert abs(truth["dropout_probability"].mean() - profile.mean_dropout) <= 4 * p_sd / np.sqrt(n)


@pytest.mark.parametrize("name", ["retail", "one_time", "seasonal"])
def test_repeat_purchases_match_the_latent_rates(shops: dict[str, SimulatedShop], name: str) -> None:
    """For Poisson purchasing, N(τ) − λ·Λ(τ) is a martingale stopped at drop-out or at the horizon,
    so the customers' repeat purchases add up to Σ λ_i × their exposure in operational time."""
    from clv_models.datasets.simulate import _SeasonClock

    shop = shops[name]
    profile, truth = shop.profile, shop.truth
    clock = _SeasonClock(profile.season, profile.season_peak, profile.start)
    start = pd.Timestamp(profile.start)
    horizon = float(profile.days + shop.future_days)
    first = (truth["first_purchase_ts"] - start).dt.total_seconds().to_numpy() / 86_400
    stop = ((truth["dropout_ts"] - start).dt.total_seconds() / 86_400).fillna(horizon).to_numpy()
    exposure = clock.forward(stop) - clock.forward(first)
    expected = float((truth["rate_per_day"] * exposure).sum())
    repeats = len(purchases_of(pd.concat([shop.orders, shop.future]))) - len(truth)
    assert abs(repeats - expected) <= 4 * np.sqrt(expected), (repeats, expected)


# --------------------------------------------------------------------------------------------
# Simulation: each profile's rhythm


def test_profiles_have_their_rhythms(shops: dict[str, SimulatedShop]) -> None:
    gaps = {name: repeat_gaps_days(shop.orders) for name, shop in shops.items()}
    purchases = {name: shop.truth["purchases"] for name, shop in shops.items()}

    def gap_cv(name: str) -> float:  # median over customers with 5+ gaps of std/mean of their gaps
        bought = purchases_of(shops[name].orders).sort_values(["customer_id", "invoice_ts"])
        gap = bought.groupby("customer_id")["invoice_ts"].diff().dt.total_seconds()
        stats = gap.groupby(bought["customer_id"]).agg(["std", "mean", "count"])
        stats = stats[stats["count"] >= 5]
        return float((stats["std"] / stats["mean"]).median())

    def basket_total(name: str) -> pd.Series:
        lines = shops[name].orders
        return (lines["quantity"] * lines["unit_price"]).groupby(lines["invoice_id"]).sum()

    # weekly_grocery: a basket about every week, regular gaps, long histories.
    assert 6.0 <= gaps["weekly_grocery"].median() <= 8.0
    assert purchases["weekly_grocery"].mean() > 20
    assert gap_cv("weekly_grocery") < 0.7 < gap_cv("retail")
    # one_time: most customers buy once; months between purchases.
    assert (purchases["one_time"] == 1).mean() > 0.6
    assert gaps["one_time"].median() > 45
    # wholesale: large baskets, regular orders.
    lines_per_invoice = shops["wholesale"].orders.groupby("invoice_id").size()
    assert lines_per_invoice.median() >= 8
    assert basket_total("wholesale").median() > 10 * basket_total("retail").median()
    assert gap_cv("wholesale") < 0.7
    # seasonal: at least two years, most buying around the December peak.
    seasonal = shops["seasonal"]
    assert (seasonal.end - seasonal.start).days + 1 >= 730
    months = purchases_of(seasonal.orders)["invoice_ts"].dt.month.value_counts()
    assert months[12] > 3 * months[6]
    # retail: a mild season only.
    retail_months = purchases_of(shops["retail"].orders)["invoice_ts"].dt.month.value_counts()
    assert retail_months[12] < 2 * retail_months[6]


def test_retail_with_artefacts_off_is_the_benchmark_generator() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_churn
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    for (n, seed), digest in BENCH_CHURN_DIGESTS.items():
        text = bench_churn.simulate_orders(n, seed).to_pandas().to_csv(index=False)
        assert hashlib.sha256(text.encode()).hexdigest() == digest, (n, seed)


# --------------------------------------------------------------------------------------------
# Simulation: the raw export goes through ingestion


def test_the_export_ingests_with_its_column_map(tmp_path: Path) -> None:
    shop = simulate_orders(5_000, seed=2, profile="retail")
    lines, truth = shop.orders, shop.truth.set_index("customer_id")
    known = lines["customer_id"].notna()
    duplicates = lines.duplicated()
    credits = lines.loc[known & lines["invoice_id"].str.startswith("C"), "invoice_id"].nunique()
    assert duplicates.sum() > 0 and (~known).sum() > 0 and credits > 0  # the artefacts are there
    columns = shop.column_map()
    assert columns.order_id == "invoice_id" and columns.amount is None and columns.quantity == "quantity"

    reports = []
    for source in (lines, shop.write(tmp_path / "orders.parquet"), shop.write(tmp_path / "orders.csv")):
        with ingest(source, columns=columns, as_of=shop.end) as result:
            reports.append(result.report)
            orders = result.orders_frame()
        report = result.report
        # Guest lines are reported as missing ids (first reason), repeated lines as duplicates.
        assert report.reason_counts == {
            "missing_customer_id": int((~known).sum()),
            "duplicate_line": int((duplicates & known).sum()),
        }
        assert report.customers == len(truth) and report.credits_netted == credits
        assert report.orders_with_returns == credits  # each credit note refunds its own purchase
        per_customer = orders.groupby("customer_id").size().reindex(truth.index, fill_value=0)
        assert per_customer.tolist() == truth["purchases"].tolist()
        assert (orders["amount"] > 0).all() and orders["returned_amount"].sum() > 0
    assert len({(r.orders, r.net_revenue, r.returned_revenue) for r in reports}) == 1  # frame, Parquet, CSV

    # Observation and future together: every simulated purchase survives the netting of returns;
    # with the cutoff, the future window's lines of known customers are `after_cutoff`.
    both = pd.concat([shop.orders, shop.future], ignore_index=True)
    with ingest(both, columns=columns) as result:
        per_customer = result.orders_frame().groupby("customer_id").size().reindex(truth.index, fill_value=0)
    assert per_customer.tolist() == (truth["purchases"] + truth["future_purchases"]).tolist()
    with ingest(both, columns=columns, as_of=shop.end) as result:
        assert result.report.reason_counts["after_cutoff"] == int(shop.future["customer_id"].notna().sum())
        assert result.report.orders == report.orders
