"""A known uplift is recovered, a null effect is not called significant (issue 19), over many
random assignments of one simulated shop: the coverage of the 95 % intervals and the rate of
false positives are measured, not assumed.

The shop (``simulate_orders``, 20,000 customers, canonical orders, a 90-day future window) is
drawn once; each of 20 salts assigns every customer to treatment or control afresh (the hash of
``clv score``), :func:`inject_uplift` writes the effect into the treated customers' future orders,
and the outcomes are computed by the SQL of ``clv evaluate-actions``. The bounds below are set
from the binomial law before looking at the results: with a true coverage of 95 %, 4 or more
misses of 20 happen with probability 1.6 %; with a nominal 5 % false-positive rate, 4 or more
"significant" nulls of 20 likewise. With the effect (2-3 MDEs) every assignment should find it.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from clv_models.config import ExperimentSettings
from clv_models.datasets import Uplift, inject_uplift, simulate_orders
from clv_models.experiments import OUTCOMES, assign_groups, compare_groups
from clv_models.scoring.action_effects import window_outcomes

SALTS = [f"salt-{k}" for k in range(20)]
WINDOW_DAYS = 90
EFFECT = Uplift(extra_order_probability=0.05, extra_order_value=40.0, spend_multiplier=1.1)


@pytest.fixture(scope="module")
def future() -> dict:
    shop = simulate_orders(20_000, seed=3, future_days=WINDOW_DAYS, return_share=0, duplicate_share=0, guest_share=0,
                           lines_per_order=1, units_per_line=1)  # fmt: skip
    lines = shop.future
    orders = pd.DataFrame({
        "customer_id": lines["customer_id"].astype(str), "order_id": lines["invoice_id"].astype(str),
        "order_ts": lines["invoice_ts"], "amount": lines["unit_price"] * lines["quantity"],
    })  # fmt: skip
    start = dt.datetime.combine(shop.end + dt.timedelta(days=1), dt.time())
    return {"orders": orders, "ids": shop.truth["customer_id"].astype(str).to_numpy(dtype=object),
            "as_of": shop.end, "start": start}  # fmt: skip


def _evaluate(future: dict, uplift: Uplift) -> pd.DataFrame:
    """Per salt and outcome: the truth, the estimate, its interval and p-value."""
    ids, as_of = future["ids"], future["as_of"]
    until = as_of + dt.timedelta(days=WINDOW_DAYS)
    con = duckdb.connect()
    rows = []
    for k, salt in enumerate(SALTS):
        spec = ExperimentSettings(name="t", actions=["win_back"], holdout_share=0.5, salt=salt)
        _, group = assign_groups(ids, np.full(len(ids), "win_back", dtype=object), [spec])
        groups = pd.DataFrame({"customer_id": ids, "experiment_group": group})
        injected = inject_uplift(future["orders"], groups, uplift, start=future["start"],
                                 end=future["start"] + dt.timedelta(days=WINDOW_DAYS), seed=k)  # fmt: skip
        con.register("window_orders", injected.orders)
        outcomes = window_outcomes(con, "window_orders", groups.assign(experiment="t", action="win_back"), as_of, until)
        for row in compare_groups(outcomes).itertuples(index=False):
            rows.append({"salt": salt, "outcome": row.outcome, "truth": injected.truth[row.outcome],
                         "difference": row.difference, "ci_low": row.ci_low, "ci_high": row.ci_high,
                         "p_value": row.p_value, "mde": row.mde})  # fmt: skip
        con.unregister("window_orders")
    result = pd.DataFrame(rows)
    result["covered"] = (result["ci_low"] <= result["truth"]) & (result["truth"] <= result["ci_high"])
    return result


def test_a_known_uplift_is_recovered_within_its_interval(future: dict) -> None:
    result = _evaluate(future, EFFECT)
    for outcome, rows in result.groupby("outcome"):
        truth = rows["truth"].iloc[0]
        assert truth > 0 and (rows["truth"] == truth).all(), outcome  # the truth does not depend on the salt
        assert (~rows["covered"]).sum() <= 3, (outcome, rows)
        assert (rows["p_value"] < 0.05).all(), (outcome, rows)  # the test has the power to fail a wrong truth
        assert (rows["ci_low"] > 0).all(), outcome  # … such as "no effect"
        assert abs(rows["difference"].mean() - truth) < 2 * rows["mde"].mean() / np.sqrt(len(rows)), outcome
    assert set(result["outcome"]) == set(OUTCOMES)
    truth = result.groupby("outcome")["truth"].first()
    assert truth["orders"] == pytest.approx(0.05)
    assert 0 < truth["retention"] < 0.05  # only customers who bought nothing untreated gain retention


def test_a_null_experiment_is_not_called_significant(future: dict) -> None:
    result = _evaluate(future, Uplift())
    assert (result["truth"] == 0).all()
    for outcome, rows in result.groupby("outcome"):
        assert (rows["p_value"] < 0.05).sum() <= 3, (outcome, rows)
        assert rows["covered"].sum() >= 17, (outcome, rows)
