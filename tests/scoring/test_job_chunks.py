"""Chunked scoring features (:mod:`clv_models.scoring.job`): whatever the chunk size, the
customer-range filter on the clustered tables gives exactly the features of one pass over every
customer - with ids that need quoting or sort in surprising ways, credit notes, zero-value orders
and lines after the cutoff."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from clv_models.config import ColumnMap, ValidationSettings
from clv_models.data import ingest
from clv_models.features import rfm_summary
from clv_models.models.btyd_features import BTYD_FEATURES, DAILY_RFM, BtydChurnFeatures
from clv_models.scoring.job import _chunk_features, _chunk_table, _cluster_by_customer

COLUMNS = ColumnMap.parse("customer_id=cust,order_id=inv,order_ts=ts,amount=value,country=country")
AS_OF = dt.date(2024, 6, 30)
ODD_IDS = ("O'Brien", "a", "B", "ä-1", "10", "9", "Z z", "'", "x''y", "c001")


def raw_lines(customers: int = 120, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [*ODD_IDS, *(f"C{n:03d}" for n in range(customers - len(ODD_IDS)))]
    rows = []
    for k, cid in enumerate(ids):
        start = dt.datetime(2023, 1, 1) + dt.timedelta(days=int(rng.integers(0, 400)), hours=int(rng.integers(0, 24)))
        for j in range(int(rng.integers(1, 6))):
            ts = start + dt.timedelta(days=int(rng.integers(0, 500)) if j else 0, minutes=j)  # first by the cutoff
            invoice = f"I{k}-{j}"
            for _ in range(int(rng.integers(1, 3))):  # one or two lines per order
                rows.append((cid, invoice, ts, round(float(rng.lognormal(3, 0.5)), 2), "DE" if k % 3 else "FR"))
            if rng.random() < 0.2:  # a credit note some days later, netted into a purchase
                rows.append((cid, f"C{invoice}", ts + dt.timedelta(days=3), -5.0, "DE"))
        if k % 17 == 0:  # a zero-value order: a candidate, never a purchase
            rows.append((cid, f"Z{k}", start, 0.0, "DE"))
        if k % 11 == 0:  # a line after the cutoff (quarantined)
            rows.append((cid, f"L{k}", dt.datetime(2024, 7, 5), 20.0, "DE"))
    frame = pd.DataFrame(rows, columns=["cust", "inv", "ts", "value", "country"])
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # not in customer order


def chunked_features(chunk_size: int) -> pd.DataFrame:
    with ingest(
        raw_lines(), columns=COLUMNS, as_of=AS_OF, quarantine_path=None,
        validation=ValidationSettings(max_bad_share=1.0),
    ) as ingested:  # fmt: skip
        rfm = rfm_summary(ingested, as_of=AS_OF, unit="D")
        ingested.con.execute("DROP TABLE orders")
        chunks = _chunk_table(ingested.con, rfm, chunk_size)
        assert chunks == -(-len(rfm) // chunk_size)
        if chunks > 1:
            _cluster_by_customer(ingested.con)
        parts = [
            _chunk_features(ingested, k, rfm.iloc[k * chunk_size : (k + 1) * chunk_size].reset_index(drop=True),
                            AS_OF, "D")
            for k in range(chunks)
        ]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def one_pass() -> pd.DataFrame:
    return chunked_features(10_000)


@pytest.mark.parametrize("chunk_size", [1, 7, 50])
def test_chunks_equal_one_pass(one_pass: pd.DataFrame, chunk_size: int) -> None:
    chunked = chunked_features(chunk_size)
    pd.testing.assert_frame_equal(chunked, one_pass, check_exact=True)


def test_one_pass_covers_every_customer_once(one_pass: pd.DataFrame) -> None:
    ids = one_pass["customer_id"].tolist()
    assert ids == sorted(set(ids)) and len(ids) == 120  # UTF-8 byte order = code point order
    assert set(ODD_IDS) <= set(ids)
    assert (one_pass["as_of"] == AS_OF.isoformat()).all()
    assert one_pass[list(DAILY_RFM)].notna().all().all()
    # The feature table fits nothing: the scorer computes the BTYD features from its stored models.
    assert not set(BTYD_FEATURES) & set(one_pass.columns)
    btyd = BtydChurnFeatures().fit(one_pass).transform(one_pass)
    assert btyd["bgnbd_p_alive"].notna().all()
