"""P(alive) is reported only from an identified purchase fit (decisions D45)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from clv_models.models import BetaGeoModel
from clv_models.scorer.values import reported_p_alive


def _rfm(n: int, seed: int, dropout: tuple[float, float] | None) -> pd.DataFrame:
    """Daily RFM of customers buying at Gamma(0.8, 1/70)-distributed Poisson rates for 200-370 days
    after a first purchase; after each purchase a customer leaves with a probability drawn from
    Beta(*dropout) per customer (BG/NBD's process), or never (``None``)."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(0.8, 1 / 70, n)
    leave = rng.beta(*dropout, n) if dropout else np.zeros(n)
    T = rng.uniform(200, 370, n).round()
    frequency, recency = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while rng.random() >= leave[i]:
            t += rng.exponential(1 / rates[i])
            if t > T[i]:
                break
            frequency[i] += 1
            recency[i] = t
    rfm = pd.DataFrame({"frequency": frequency, "recency": np.floor(recency), "T": T})
    rfm.attrs["unit"] = "D"
    return rfm


def test_no_p_alive_from_a_fit_that_does_not_identify_drop_out() -> None:
    # Nobody ever leaves: the likelihood runs to b → ∞ (no drop-out), the fit is not identified
    # and P(alive) = 1 would be the edge speaking.
    rfm = _rfm(3000, 5, dropout=None)
    fit = BetaGeoModel().fit(rfm)
    assert not fit.converged_ and "not identified" in fit.diagnostic_
    assert np.isnan(reported_p_alive(fit, rfm)).all()


def test_p_alive_of_an_identified_fit_is_the_model_s() -> None:
    rfm = _rfm(3000, 5, dropout=(1.0, 3.0))
    fit = BetaGeoModel().fit(rfm)
    assert fit.converged_, fit.diagnostic_
    reported = reported_p_alive(fit, rfm)
    np.testing.assert_array_equal(reported, fit.probability_alive(rfm))
    silent = (rfm["T"] - rfm["recency"] > 300) & (rfm["frequency"] > 0)
    assert reported[silent.to_numpy()].max() < 0.5  # the silent repeat buyers are most likely gone
