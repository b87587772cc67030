"""Churn snapshots: hand-computed labels and features, RFM parity, the schedule, and leakage.

The leakage tests compare features computed at a cutoff c from the full ingestion (which has
netted returns dated after c) with features computed from an ingestion truncated at c (which
never saw anything after c): point-in-time features must not tell them apart.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv_models.config import ChurnSettings, ColumnMap, ValidationSettings
from clv_models.data import ingest
from clv_models.errors import ClvInputError
from clv_models.features import rfm_summary
from clv_models.features.churn import (
    CUTOFFS_TABLE,
    LABEL,
    ChurnDataset,
    SnapshotPlan,
    build_churn_dataset,
    churn_snapshots,
    feature_columns,
    plan_snapshots,
    point_in_time_orders_sql,
)
from clv_models.models.btyd_features import BTYD_FEATURES, DAILY_RFM
from clv_models.training.churn import add_btyd_features
from tests.conftest import ONLINE_RETAIL_COLUMNS

AMOUNT_COLUMNS = ColumnMap.parse("customer_id=cust,order_id=inv,order_ts=ts,amount=value")
LENIENT = ValidationSettings(max_bad_share=1.0)


def lines(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    """Raw lines (customer, invoice, timestamp, amount); credit notes have negative amounts."""
    return pd.DataFrame(
        {
            "cust": [r[0] for r in rows],
            "inv": [r[1] for r in rows],
            "ts": pd.to_datetime([r[2] for r in rows]),
            "value": [float(r[3]) for r in rows],
        }
    )


def one_row(frame: pd.DataFrame, customer: str) -> pd.Series:
    row = frame[frame["customer_id"] == customer]
    assert len(row) == 1, customer
    return row.iloc[0]


# --- 1. labels on hand-made orders ----------------------------------------------------------

CUTOFF = dt.date(2024, 3, 10)  # end of that day; window w = 10: outcome window is Mar 11 .. Mar 20
WINDOW = 10
LABEL_LINES = lines(
    # Every snapshot customer first buys on Mar 1 (before the cutoff).
    ("A", "a1", "2024-03-01 12:00", 10),
    ("A", "a2", "2024-03-10 23:59", 10),  # end of cutoff day: before the cutoff, not in the window
    ("B", "b1", "2024-03-01 12:00", 10),
    ("B", "b2", "2024-03-11 00:00", 10),  # c+1 00:00: first instant of the window
    ("C", "c1", "2024-03-01 12:00", 10),
    ("C", "c2", "2024-03-20 23:59", 10),  # day c+10, late: still in the window
    ("D", "d1", "2024-03-01 12:00", 10),
    ("D", "d2", "2024-03-21 00:00", 10),  # day c+11: after the window
    ("E", "e1", "2024-03-12 09:00", 10),  # first purchase after c: not in the snapshot
    ("F", "f1", "2024-03-01 12:00", 10),
    ("F", "f2", "2024-03-15 12:00", 30),  # in the window …
    ("F", "cf", "2024-03-25 12:00", -30),  # … refunded in full after c+w: was a purchase at c+w
    ("G", "g1", "2024-03-01 12:00", 10),
    ("G", "g2", "2024-03-15 12:00", 30),  # in the window …
    ("G", "cg", "2024-03-18 12:00", -30),  # … refunded in full within it: never a purchase by c+w
)


@pytest.fixture(scope="module")
def label_snapshot() -> pd.DataFrame:
    with ingest(LABEL_LINES, columns=AMOUNT_COLUMNS, as_of=dt.date(2024, 3, 31), quarantine_path=None,
                validation=LENIENT) as result:
        frame = churn_snapshots(result, [CUTOFF], window_days=WINDOW)
    # The snapshots fit no model: no BTYD feature comes out of them.
    assert not set(BTYD_FEATURES) & set(frame.columns)
    return frame


def test_labels_hand_computed(label_snapshot: pd.DataFrame) -> None:
    # A: nothing in (Mar 10, Mar 20]; its 23:59 order belongs to the features  -> churned 1
    # B: order at Mar 11 00:00, first instant of the window                    -> stays 0
    # C: order Mar 20 23:59, last day of the window                             -> stays 0
    # D: next order Mar 21 00:00, one day after the window                       -> churned 1
    # E: first purchase Mar 12 > c                                               -> no row
    # F: Mar 15 purchase refunded on Mar 25 (after Mar 20): an order as known then -> stays 0
    # G: Mar 15 purchase refunded on Mar 18 (within the window): no order         -> churned 1
    got = dict(zip(label_snapshot["customer_id"], label_snapshot[LABEL].tolist(), strict=True))
    assert got == {"A": 1, "B": 0, "C": 0, "D": 1, "F": 0, "G": 1}
    assert label_snapshot[LABEL].dtype == np.int8
    assert set(label_snapshot["cutoff"]) == {CUTOFF}
    # A's 23:59 order is a feature: two purchase days, the last on the cutoff day itself.
    a = one_row(label_snapshot, "A")
    assert (a["frequency_days"], a["days_since_last"], a["n_orders"], a["T_days"]) == (1.0, 0.0, 2.0, 9.0)
    # Nobody else has anything on or before c beyond the Mar 1 order.
    for customer in "BCDFG":
        assert one_row(label_snapshot, customer)["n_orders"] == 1.0


def test_labels_need_the_whole_window_in_the_data() -> None:
    with ingest(LABEL_LINES, columns=AMOUNT_COLUMNS, as_of=dt.date(2024, 3, 31), quarantine_path=None,
                validation=LENIENT) as result:
        # Mar 21 + 10 = Mar 31 = data end: allowed.
        frame = churn_snapshots(result, [dt.date(2024, 3, 21)], window_days=WINDOW)
        assert LABEL in frame.columns
        with pytest.raises(ClvInputError, match=r"2024-03-22 \+ 10 days ends after the data \(2024-03-31\)"):
            churn_snapshots(result, [dt.date(2024, 3, 1), dt.date(2024, 3, 22)], window_days=WINDOW)
        # Without labels the late cutoff is fine.
        frame = churn_snapshots(result, [dt.date(2024, 3, 22)], window_days=WINDOW, labels=False)
        assert LABEL not in frame.columns
        with pytest.raises(ClvInputError, match="no churn cutoffs"):
            churn_snapshots(result, [])


# --- 2. hand-computed features ----------------------------------------------------------------

FEATURE_CUTOFF = dt.date(2024, 6, 30)
FEATURE_LINES = lines(
    ("X", "o1", "2024-03-01 10:00", 40),  # o1: 2 lines, 100
    ("X", "o1", "2024-03-01 10:00", 60),
    ("X", "o2", "2024-04-15 09:00", 50),  # o2: 1 line, 50
    ("X", "o3", "2024-06-10 11:00", 10),  # o3: 3 lines, 60
    ("X", "o3", "2024-06-10 11:00", 20),
    ("X", "o3", "2024-06-10 11:00", 30),
    ("X", "o4", "2024-06-10 16:00", 40),  # o4: same day as o3, 1 line, 40 …
    ("X", "c5", "2024-06-12 08:00", -20),  # … 20 returned before c: net 20
    ("X", "o6", "2024-06-25 08:00", 10),  # o6: 2 lines, 30 …
    ("X", "o6", "2024-06-25 08:00", 20),
    ("X", "c7", "2024-07-05 08:00", -30),  # … refunded in full after c: still 30 at c
    ("X", "o8", "2024-07-20 08:00", 100),  # after c: never read
    ("Y", "y1", "2024-06-01 08:00", 5),
)


def test_features_hand_computed() -> None:
    with ingest(FEATURE_LINES, columns=AMOUNT_COLUMNS, quarantine_path=None, validation=LENIENT) as result:
        frame = churn_snapshots(result, [FEATURE_CUTOFF], labels=False)
        final = result.orders_frame()
    assert frame["customer_id"].tolist() == ["X", "Y"]
    x = one_row(frame, "X")
    # Orders at c (net): o1 100 (Mar 1), o2 50 (Apr 15), o3 60 + o4 20 (Jun 10), o6 30 (Jun 25).
    # Purchase days Mar 1, Apr 15, Jun 10, Jun 25 -> frequency 3.
    # Gaps: Mar 1 -> Apr 15 = 30 + 15 = 45; Apr 15 -> Jun 10 = 30 + 26 = 56; Jun 10 -> Jun 25 = 15.
    gaps = [45, 56, 15]
    expected = {
        "frequency_days": 3,
        "recency_days": 116,  # Mar 1 -> Jun 25 = 45 + 56 + 15
        "T_days": 121,  # Mar 1 -> Jun 30 = 116 + 5
        "days_since_last": 5,
        "monetary_value_days": (50 + 80 + 30) / 3,  # repeat days: Apr 15 (50), Jun 10 (60+20), Jun 25 (30)
        "n_orders": 5,  # o3 and o4 share a day but are two orders
        "total_spend": 260,  # 100 + 50 + 60 + 20 + 30
        "avg_order_value": 52,
        "gap_mean": 116 / 3,
        # sample standard deviation: (Σg² − (Σg)²/3) / 2 = (5386 − 13456/3) / 2 = 1351/3
        "gap_std": math.sqrt(1351 / 3),
        "last_gap_ratio": 5 / (116 / 3),
        # end = Jul 1 00:00; 30d = [Jun 1, Jul 1): o3, o4, o6; 30_60d = [May 2, Jun 1): none;
        # 60_90d = [Apr 2, May 2): o2; 90d = [Apr 2, Jul 1); 90_180d = [Jan 3, Apr 2): o1.
        "orders_30d": 3,
        "orders_30_60d": 0,
        "orders_60_90d": 1,
        "orders_90d": 4,
        "orders_90_180d": 1,
        "orders_180d": 5,
        "orders_180_360d": 0,
        "spend_30d": 110,  # 60 + 20 + 30
        "spend_90d": 160,  # + 50
        "spend_90_180d": 100,
        "spend_180d": 260,
        "orders_trend_90d": 3,  # 4 − 1
        "months_declining": 1,  # (3 < 0) = 0, (0 < 1) = 1
        "basket_lines": 9 / 5,  # 2 + 1 + 3 + 1 + 2 lines (credit lines are not basket lines)
        "return_share": 20 / 280,  # returned by c / gross 100 + 50 + 60 + 40 + 30
    }
    assert np.std(gaps, ddof=1) == pytest.approx(expected["gap_std"], rel=1e-12)
    for name, value in expected.items():
        assert x[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    # Y: a single purchase: no gaps -> NaN gap features, no repeat -> monetary 0.
    y = one_row(frame, "Y")
    assert (y["frequency_days"], y["T_days"], y["monetary_value_days"], y["total_spend"]) == (0.0, 29.0, 0.0, 5.0)
    assert y[["gap_mean", "gap_std", "last_gap_ratio"]].isna().all()
    # The final orders table knows the Jul 5 refund: o6 is gone there (why the snapshots rebuild).
    assert "o6" not in set(final["order_id"])


# --- 3. RFM parity on CDNOW -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow(cdnow_orders_frame: pd.DataFrame):
    with ingest(cdnow_orders_frame, quarantine_path=None) as result:
        yield result


@pytest.mark.parametrize("cutoff", [dt.date(1997, 6, 30), dt.date(1998, 3, 31)])
def test_rfm_parity_on_cdnow(cdnow, cutoff: dt.date) -> None:
    frame = churn_snapshots(cdnow, [cutoff], labels=False)
    reference = rfm_summary(cdnow, as_of=cutoff, unit="D").sort_values("customer_id").reset_index(drop=True)
    frame = frame.sort_values("customer_id").reset_index(drop=True)
    assert len(frame) == len(reference) > 1000
    assert frame["customer_id"].tolist() == reference["customer_id"].astype(str).tolist()
    for daily, column in zip(DAILY_RFM, ("frequency", "recency", "T", "monetary_value"), strict=True):
        np.testing.assert_allclose(
            frame[daily].to_numpy(float), reference[column].to_numpy(float), rtol=1e-9, atol=1e-9,
            err_msg=column,
        )


# --- 4. leakage -------------------------------------------------------------------------------

LEAK_CUTOFF = dt.date(2023, 9, 30)
SYNTH_COLUMNS = ColumnMap.parse(
    "customer_id=cust,order_id=inv,order_ts=ts,quantity=qty,unit_price=price,country=country,category=cat"
)


def synthetic_lines() -> pd.DataFrame:
    """Random purchases over 2023 with partial and full credit notes, some dated after the
    cutoff, plus hand-placed cases around the cutoff (see the comments)."""
    rng = np.random.default_rng(20230930)
    countries = ["DE", "FR", "UK", "NL"]
    categories = [f"cat{i}" for i in range(8)]
    start = pd.Timestamp("2023-01-01")
    rows: list[tuple] = []
    for k in range(160):
        cust = f"c{k:03d}"
        home = countries[k % len(countries)]
        n = int(rng.integers(1, 9))
        minutes = np.sort(rng.integers(0, 364 * 24 * 60, size=n))
        for j, minute in enumerate(minutes):
            ts = start + pd.Timedelta(minutes=int(minute))
            country = home if rng.random() < 0.8 else countries[int(rng.integers(len(countries)))]
            basket = []
            for _ in range(int(rng.integers(1, 4))):
                qty = int(rng.integers(1, 6))
                price = float(rng.choice([1.25, 2.5, 4.99, 9.95, 19.0]))
                cat = categories[int(rng.integers(len(categories)))]
                rows.append((cust, f"{cust}-{j}", ts, qty, price, country, cat))
                basket.append((qty, price, cat))
            if rng.random() < 0.3:  # a credit note 1-45 days later, partial or full
                when = ts + pd.Timedelta(days=int(rng.integers(1, 46)), minutes=int(rng.integers(0, 600)))
                full = rng.random() < 0.4
                for qty, price, cat in basket if full else basket[:1]:
                    back = qty if full else max(1, qty // 2)
                    rows.append((cust, f"C{cust}-{j}", when, -back, price, country, cat))
    hand = [
        # r1: a purchase before c refunded in full after c (the final orders table drops it).
        ("r1", "r1-0", "2023-03-01 10:00", 4, 25.0, "DE", "cat0"),
        ("r1", "r1-1", "2023-09-20 10:00", 2, 25.0, "DE", "cat1"),
        ("r1", "Cr1-1", "2023-10-05 10:00", -2, 25.0, "DE", "cat1"),
        # r2: a partial refund after c of a purchase before c.
        ("r2", "r2-0", "2023-05-01 10:00", 8, 10.0, "FR", "cat2"),
        ("r2", "r2-1", "2023-09-28 10:00", 12, 10.0, "FR", "cat3"),
        ("r2", "Cr2-1", "2023-10-15 10:00", -4, 10.0, "FR", "cat3"),
        # r3: one purchase, refunded in part before c and in part after c.
        ("r3", "r3-0", "2023-06-01 10:00", 6, 10.0, "UK", "cat4"),
        ("r3", "r3-0", "2023-06-01 10:00", 1, 5.0, "UK", "cat5"),
        ("r3", "Cr3-a", "2023-06-10 10:00", -2, 10.0, "UK", "cat4"),
        ("r3", "Cr3-b", "2023-11-01 10:00", -1, 10.0, "UK", "cat4"),
        # r4: the last minute of the cutoff day, refunded in full in the first minute after it.
        ("r4", "r4-0", "2023-02-01 10:00", 1, 30.0, "NL", "cat6"),
        ("r4", "r4-1", "2023-09-30 23:59", 3, 10.0, "DE", "cat7"),
        ("r4", "Cr4-1", "2023-10-01 00:00", -3, 10.0, "DE", "cat7"),
        # r5: mostly buys in the UK before c, mostly in FR after c (the country mode must not move).
        ("r5", "r5-0", "2023-04-01 10:00", 1, 10.0, "UK", "cat0"),
        ("r5", "r5-1", "2023-05-01 10:00", 1, 10.0, "UK", "cat0"),
        ("r5", "r5-2", "2023-10-01 10:00", 1, 10.0, "FR", "cat1"),
        ("r5", "r5-3", "2023-10-02 10:00", 1, 10.0, "FR", "cat2"),
        ("r5", "r5-4", "2023-10-03 10:00", 1, 10.0, "FR", "cat3"),
    ]
    rows.extend((c, i, pd.Timestamp(t), q, p, co, ca) for c, i, t, q, p, co, ca in hand)
    return pd.DataFrame(rows, columns=["cust", "inv", "ts", "qty", "price", "country", "cat"])


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return synthetic_lines()


@pytest.fixture(scope="module")
def synthetic_full(synthetic: pd.DataFrame):
    with ingest(synthetic, columns=SYNTH_COLUMNS, quarantine_path=None, validation=LENIENT) as result:
        yield result


def assert_same_features(full: pd.DataFrame, truncated: pd.DataFrame) -> None:
    assert list(full.columns) == list(truncated.columns)
    assert full["cutoff"].tolist() == truncated["cutoff"].tolist()
    assert full["customer_id"].tolist() == truncated["customer_id"].tolist()
    numeric, categorical = feature_columns(full)
    numeric += [c for c in BTYD_FEATURES if c in full.columns]  # added by training (add_btyd_features)
    assert set(full.columns) == {"cutoff", "customer_id", *numeric, *categorical}
    for column in numeric:
        left, right = full[column].to_numpy(float), truncated[column].to_numpy(float)
        np.testing.assert_array_equal(np.isnan(left), np.isnan(right), err_msg=f"NaN positions of {column}")
        np.testing.assert_allclose(left, right, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=column)
    for column in categorical:
        assert full[column].fillna("<NA>").tolist() == truncated[column].fillna("<NA>").tolist(), column


def final_spend_at(result, cutoff: dt.date) -> pd.Series:
    """Total spend per customer at ``cutoff`` read from the final (fully netted) orders table."""
    orders = result.orders_frame()
    orders = orders[orders["order_ts"] < pd.Timestamp(cutoff + dt.timedelta(days=1))]
    return orders.groupby("customer_id")["amount"].sum()


def with_btyd_features(snapshot: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The snapshot with the BTYD features training adds to it (training.churn.add_btyd_features:
    a fit per cutoff on that cutoff's customers), and the fits by cutoff."""
    cutoff = snapshot["cutoff"].iat[0]
    empty = snapshot.iloc[:0].copy()
    numeric, categorical = feature_columns(snapshot)
    dataset = ChurnDataset(
        plan=SnapshotPlan((cutoff,), cutoff, cutoff, 90, cutoff),
        train=empty,
        validation=empty.copy(),
        test=snapshot.copy(),
        numeric_features=numeric,
        categorical_features=categorical,
    )
    fits = add_btyd_features(dataset, ChurnSettings())
    assert set(dataset.numeric_features) >= set(BTYD_FEATURES)
    return dataset.test, fits


def test_no_leakage_synthetic_with_btyd(synthetic: pd.DataFrame, synthetic_full) -> None:
    full, full_fits = with_btyd_features(churn_snapshots(synthetic_full, [LEAK_CUTOFF], labels=False))
    with ingest(synthetic, columns=SYNTH_COLUMNS, as_of=LEAK_CUTOFF, quarantine_path=None,
                validation=LENIENT) as truncated_result:
        assert truncated_result.report.reason_counts.get("after_cutoff", 0) > 0
        truncated, truncated_fits = with_btyd_features(
            churn_snapshots(truncated_result, [LEAK_CUTOFF], labels=False)
        )
    # Every kind of feature is there: base, quantity, category, country and the BTYD ones.
    for column in ("basket_quantity", "category_breadth", "country", *BTYD_FEATURES):
        assert column in full.columns
    assert full[list(BTYD_FEATURES)].notna().all().all()  # both fits succeeded
    assert list(full_fits) == list(truncated_fits) == [LEAK_CUTOFF]
    full_params, truncated_params = full_fits[LEAK_CUTOFF].params, truncated_fits[LEAK_CUTOFF].params
    assert any(name.startswith("bgnbd_") for name in full_params)
    assert any(name.startswith("gamma_gamma_") for name in full_params)
    assert full_params == pytest.approx(truncated_params, rel=1e-9)
    assert_same_features(full, truncated)

    # The hand-placed cases, as known at c.
    r1, r2, r3, r4, r5 = (one_row(full, c) for c in ("r1", "r2", "r3", "r4", "r5"))
    assert (r1["n_orders"], r1["total_spend"], r1["return_share"]) == (2.0, 150.0, 0.0)
    assert (r2["total_spend"], r2["return_share"]) == (200.0, 0.0)
    assert (r3["total_spend"], r3["return_share"]) == (45.0, pytest.approx(20 / 65))
    assert (r4["n_orders"], r4["days_since_last"], r4["total_spend"]) == (2.0, 0.0, 60.0)
    assert (r5["country"], r5["n_orders"]) == ("UK", 2.0)
    assert r1["category_breadth"] == 2.0  # cat0, cat1 (the refunded order's lines still count at c)

    # Not vacuous: the final orders table (netted with every later return) disagrees at c.
    final = final_spend_at(synthetic_full, LEAK_CUTOFF)
    assert final["r1"] == 100.0 and final["r2"] == 160.0 and final["r3"] == 35.0 and final["r4"] == 30.0
    pit = full.set_index("customer_id")["total_spend"]
    differs = (final.reindex(pit.index).fillna(0.0) - pit).abs() > 1e-9
    assert differs.sum() >= 4


@pytest.fixture(scope="module")
def online_retail_full(online_retail_path: Path):
    columns = ColumnMap.parse(ONLINE_RETAIL_COLUMNS + ",country=Country,category=StockCode")
    with ingest(online_retail_path, columns=columns, quarantine_path=None) as result:
        yield result


def test_no_leakage_online_retail(online_retail_path: Path, online_retail_full) -> None:
    cutoff = dt.date(2011, 6, 30)
    columns = ColumnMap.parse(ONLINE_RETAIL_COLUMNS + ",country=Country,category=StockCode")
    # Online Retail does have credits after c that refund purchases made on or before c.
    late_credits = online_retail_full.con.execute(
        """SELECT count(*) FROM credit_matches c JOIN order_candidates p
           ON p.customer_id = c.customer_id AND p.order_id = c.purchase_order_id
           WHERE c.credit_ts >= TIMESTAMP '2011-07-01' AND p.order_ts < TIMESTAMP '2011-07-01'"""
    ).fetchall()[0][0]
    assert late_credits > 50
    full = churn_snapshots(online_retail_full, [cutoff], labels=False)
    with ingest(online_retail_path, columns=columns, as_of=cutoff, quarantine_path=None) as truncated_result:
        truncated = churn_snapshots(truncated_result, [cutoff], labels=False)
    assert len(full) > 2000
    for column in ("basket_quantity", "category_breadth", "country"):
        assert column in full.columns
    assert_same_features(full, truncated)
    # Not vacuous: the final orders table gives other totals at c for some customers.
    final = final_spend_at(online_retail_full, cutoff)
    pit = full.set_index("customer_id")["total_spend"]
    assert ((final.reindex(pit.index).fillna(0.0) - pit).abs() > 1e-6).sum() > 10


def test_no_leakage_for_an_order_whose_lines_straddle_the_cutoff() -> None:
    raw = lines(
        ("S", "s1", "2023-09-01 10:00", 10),
        ("S", "s2", "2023-09-30 23:59", 10),  # order s2: one line on the cutoff day …
        ("S", "s2", "2023-10-01 00:01", 90),  # … and one after it (unknown at c)
    )
    with ingest(raw, columns=AMOUNT_COLUMNS, quarantine_path=None) as full_result:
        full = churn_snapshots(full_result, [LEAK_CUTOFF], labels=False)
    with ingest(raw, columns=AMOUNT_COLUMNS, as_of=LEAK_CUTOFF, quarantine_path=None, validation=LENIENT) as cut:
        truncated = churn_snapshots(cut, [LEAK_CUTOFF], labels=False)
    # Known at the end of Sep 30: s1 (10) and the first line of s2 (10).
    assert one_row(truncated, "S")["total_spend"] == 20.0
    assert one_row(full, "S")["total_spend"] == 20.0  # full ingestion gives 110


# --- 5. point-in-time orders at the ingestion cutoff = the orders table -------------------------


@pytest.mark.parametrize("dataset", ["synthetic", "online_retail"])
def test_point_in_time_orders_at_the_end_equal_the_orders_table(request: pytest.FixtureRequest, dataset: str) -> None:
    result = request.getfixturevalue("synthetic_full" if dataset == "synthetic" else "online_retail_full")
    con = result.con
    last = con.execute("SELECT CAST(max(order_ts) AS DATE) FROM lines WHERE reason IS DISTINCT FROM 'after_cutoff'")
    last_day = last.fetchall()[0][0]
    con.execute(f"CREATE OR REPLACE TEMP TABLE {CUTOFFS_TABLE} AS SELECT DATE '{last_day.isoformat()}' AS cutoff")
    pit = con.execute(
        f"""SELECT customer_id, order_id, order_ts, CAST(net AS DOUBLE) AS net, CAST(returned AS DOUBLE) AS returned
            FROM ({point_in_time_orders_sql(0, zero_purchases=result.report.zero_amount_orders > 0)})
            ORDER BY customer_id, order_ts, order_id"""
    ).df()
    orders = result.orders_frame()
    assert len(pit) == len(orders) > 0
    assert pit["customer_id"].tolist() == orders["customer_id"].tolist()
    assert pit["order_id"].tolist() == orders["order_id"].tolist()
    assert (pit["order_ts"] == orders["order_ts"]).all()
    np.testing.assert_allclose(pit["net"], orders["amount"], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(pit["returned"], orders["returned_amount"], rtol=1e-12, atol=1e-9)
    assert (orders["returned_amount"] > 0).any()  # returns were netted in both
    con.execute(f"DROP TABLE {CUTOFFS_TABLE}")


# --- 6. the schedule --------------------------------------------------------------------------


def test_plan_snapshots_hand_computed() -> None:
    plan = plan_snapshots(
        dt.date(2024, 1, 1), dt.date(2024, 12, 31), window_days=60, train_cutoffs=12, cutoff_step_days=30,
        min_history_days=30,
    )
    # test = Dec 31 − 60 = Nov 1; validation = Nov 1 − 60 = Sep 2; latest train = Sep 2 − 60 = Jul 4;
    # then every 30 days back while ≥ Jan 1 + 30 = Jan 31: Jun 4, May 5, Apr 5, Mar 6, Feb 5
    # (Jan 6 < Jan 31 is dropped).
    assert plan.test == dt.date(2024, 11, 1)
    assert plan.validation == dt.date(2024, 9, 2)
    assert plan.train == (
        dt.date(2024, 2, 5), dt.date(2024, 3, 6), dt.date(2024, 4, 5), dt.date(2024, 5, 5),
        dt.date(2024, 6, 4), dt.date(2024, 7, 4),
    )
    assert (plan.window_days, plan.data_end) == (60, dt.date(2024, 12, 31))
    assert plan.as_dict()["train"][0] == "2024-02-05"
    # At most train_cutoffs snapshots, the latest ones.
    assert plan_snapshots(dt.date(2024, 1, 1), dt.date(2024, 12, 31), window_days=60, train_cutoffs=2).train == (
        dt.date(2024, 6, 4), dt.date(2024, 7, 4),
    )


def test_plan_snapshots_minimum_span() -> None:
    # Span exactly 3 windows + history (3·60 + 30 = 210 days): one training cutoff, Jan 31.
    first = dt.date(2024, 1, 1)
    plan = plan_snapshots(first, first + dt.timedelta(days=210), window_days=60, min_history_days=30)
    assert plan.train == (dt.date(2024, 1, 31),)
    with pytest.raises(ClvInputError) as excinfo:
        plan_snapshots(first, first + dt.timedelta(days=209), window_days=60, min_history_days=30)
    message = str(excinfo.value)
    assert "orders span 209 days (2024-01-01 – 2024-07-28)" in message
    assert "need at least 210 days" in message
    assert "lower churn.window_days or churn.min_history_days" in message


# --- 7. the dataset on CDNOW ------------------------------------------------------------------


def test_build_churn_dataset_on_cdnow_is_out_of_time(cdnow, cdnow_orders_frame: pd.DataFrame) -> None:
    settings = ChurnSettings(window_days=90)  # the schedule of a given window (the rhythm rule is tested below)
    dataset = build_churn_dataset(cdnow, settings)
    plan, w = dataset.plan, dt.timedelta(days=settings.window_days)
    # CDNOW: Jan 1 1997 – Jun 30 1998; test = Jun 30 − 90 = Apr 1 1998, validation Jan 1 1998,
    # latest training cutoff Oct 3 1997.
    assert plan.data_end == dt.date(1998, 6, 30)
    assert (plan.test, plan.validation, max(plan.train)) == (
        dt.date(1998, 4, 1), dt.date(1998, 1, 1), dt.date(1997, 10, 3),
    )
    assert len(plan.train) == 9  # Oct 3 back by 30 days while ≥ Jan 31 1997: down to Feb 5
    assert max(plan.train) + w <= plan.validation
    assert plan.validation + w <= plan.test
    assert plan.test + w <= plan.data_end
    assert set(dataset.train["cutoff"]) == set(plan.train)
    assert set(dataset.validation["cutoff"]) == {plan.validation}
    assert set(dataset.test["cutoff"]) == {plan.test}
    first_purchase = cdnow_orders_frame.groupby("customer_id")["order_ts"].min()
    for part in (dataset.train, dataset.validation, dataset.test):
        assert len(part) > 0
        assert set(part[LABEL].unique()) == {0, 1}
        assert (part["T_days"] >= 0).all()
        firsts = first_purchase.reindex(part["customer_id"].to_numpy()).dt.date.to_numpy()
        assert (firsts <= part["cutoff"].to_numpy()).all()
        assert part[["frequency_days", "recency_days", "T_days", "n_orders"]].notna().all().all()
    # Every CDNOW customer joined in Q1 1997: all of them are in the validation snapshot.
    assert len(dataset.validation) == first_purchase.size
    assert "frequency_days" in dataset.numeric_features
    assert not set(BTYD_FEATURES) & set(dataset.numeric_features)  # the snapshots fit no model
    assert dataset.categorical_features == []
    # Training adds them: one fit per cutoff, on that cutoff's customers only.
    fits = add_btyd_features(dataset, settings)
    assert sorted(fits) == sorted([*plan.train, plan.validation, plan.test])
    assert set(dataset.numeric_features) >= {"frequency_days", *BTYD_FEATURES}
    for part in (dataset.train, dataset.validation, dataset.test):
        assert part["bgnbd_p_alive"].notna().all()


def test_training_snapshots_keep_a_fixed_share_of_customers(cdnow_orders_frame: pd.DataFrame) -> None:
    from clv_models.config import ChurnSettings
    from clv_models.features.churn import build_churn_dataset

    with ingest(cdnow_orders_frame) as ingested:
        full = build_churn_dataset(ingested, ChurnSettings(window_days=90, max_train_rows=None))
        capped = build_churn_dataset(ingested, ChurnSettings(window_days=90, max_train_rows=50_000))
        again = build_churn_dataset(ingested, ChurnSettings(window_days=90, max_train_rows=50_000))
    # Customers with a purchase by the latest training cutoff, counted with pandas.
    latest = pd.Timestamp(max(full.plan.train)) + pd.Timedelta(days=1)
    known = cdnow_orders_frame.loc[cdnow_orders_frame["order_ts"] < latest, "customer_id"].nunique()
    assert full.training_share == 1.0 and len(full.plan.train) == 9
    assert capped.training_share == pytest.approx(50_000 / (known * 9), rel=1e-12)
    expected_rows = capped.training_share * len(full.train)
    assert 0.9 * expected_rows < len(capped.train) < 1.1 * expected_rows
    # The same customers at every training cutoff and on every run; validation and test complete.
    kept = capped.train.groupby("cutoff")["customer_id"].apply(set)
    for cutoff, customers in kept.items():
        everyone = set(full.train.loc[full.train["cutoff"] == cutoff, "customer_id"])
        assert customers <= everyone
        assert customers == everyone & set(capped.train["customer_id"])
    pd.testing.assert_frame_equal(capped.train, again.train)
    assert len(capped.validation) == len(full.validation) and len(capped.test) == len(full.test)
    # Kept rows carry the same RFM features as in the full snapshots.
    merged = capped.train.merge(full.train, on=["cutoff", "customer_id"], suffixes=("", "_full"))
    assert len(merged) == len(capped.train)
    np.testing.assert_array_equal(merged["frequency_days"], merged["frequency_days_full"])
    np.testing.assert_array_equal(merged["churned"], merged["churned_full"])


@pytest.mark.parametrize(
    ("profile", "days", "low", "high"),
    [("weekly_grocery", None, 14, 14), ("one_time", None, 120, 365), ("retail", None, 56, 112)],
)
def test_the_churn_window_follows_the_shop_rhythm(tmp_path, profile: str, days, low: int, high: int) -> None:
    """The window is the 80th percentile of the repeat gaps in whole weeks (decisions D33),
    recomputed here from the simulated export's orders by pandas."""
    import numpy as np

    from clv_models.datasets import simulate_orders
    from clv_models.features.churn import choose_window

    shop = simulate_orders(1500, seed=3, profile=profile, days=days)
    path = tmp_path / "orders.parquet"
    shop.write(path)
    with ingest(str(path), columns=ColumnMap.parse(shop.columns), quarantine_path=None, validation=LENIENT) as result:
        orders = result.con.execute("SELECT customer_id, CAST(order_ts AS DATE) AS day FROM orders WHERE amount > 0").df()
        window = choose_window(result, ChurnSettings(), 729)
        short = choose_window(result, ChurnSettings(), 150)
        explicit = choose_window(result, ChurnSettings(window_days=3), 729)
    days_ = orders.drop_duplicates().sort_values(["customer_id", "day"])
    gaps = days_.groupby("customer_id")["day"].diff().dt.days.dropna().to_numpy()
    expected = int(min(max(7 * np.ceil(np.quantile(gaps, 0.8) / 7), 14), 365))
    assert window.days == expected and low <= window.days <= high
    assert window.median_gap_days == pytest.approx(np.median(gaps))
    assert short.days == min(expected, (150 - 30) // 3)
    assert (short.notes != ()) == (expected > 40)
    assert explicit.days == 3 and any("shorter than the median gap" in note for note in explicit.notes)
