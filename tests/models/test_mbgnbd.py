"""MBG/NBD: published CDNOW numbers, lifetimes parity, P(no purchase) by simulation, recovery,
the P(alive) < 1 property of one-time buyers, units, persistence, bad input."""

from __future__ import annotations

import json
import pickle
from importlib import resources

import joblib
import mpmath
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from clv_models.errors import ClvInputError
from clv_models.models import BetaGeoModel, ConvergenceWarning, ModifiedBetaGeoModel
from clv_models.models.mbgnbd import log_likelihood_gradient, log_likelihood_hessian, log_likelihood_terms

NAMES = ("r", "alpha", "a", "b")


@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    """lifetimes' CDNOW sample: 2,357 customers, time in weeks."""
    path = resources.files("lifetimes.datasets").joinpath("cdnow_customers_summary.csv")
    frame = pd.read_csv(str(path))
    frame.attrs["unit"] = "W"
    return frame


@pytest.fixture(scope="module")
def fitted(cdnow_summary: pd.DataFrame) -> ModifiedBetaGeoModel:
    return ModifiedBetaGeoModel().fit(cdnow_summary)


def _columns(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(frame[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))  # type: ignore[return-value]


def test_published_cdnow_parameters(fitted: ModifiedBetaGeoModel) -> None:
    # BTYDplus (Platzer), quoted in lifetimes' tests: r = 0.525, α = 6.183, a = 0.891, b = 1.614 (weeks).
    published = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
    for name, value in published.items():
        assert fitted.params_[name] == pytest.approx(value, abs=5e-4), name
    assert fitted.converged_ and fitted.diagnostic_.startswith("Newton") and fitted.unit_ == "W"
    assert fitted.n_customers_ == 2357 and fitted.n_distinct_ <= 2357


@pytest.mark.parametrize("penalizer", [0.0, 0.1])
def test_fit_equals_lifetimes(cdnow_summary: pd.DataFrame, penalizer: float) -> None:
    """Parameters, standard errors and log-likelihood against ModifiedBetaGeoFitter (same penalty)."""
    from lifetimes import ModifiedBetaGeoFitter

    f, r, T = _columns(cdnow_summary)
    ours = ModifiedBetaGeoModel(penalizer=penalizer).fit(cdnow_summary)
    reference = ModifiedBetaGeoFitter(penalizer_coef=penalizer).fit(f, r, T)
    for name in NAMES:
        assert ours.params_[name] == pytest.approx(reference.params_[name], rel=1e-5), name
        assert ours.standard_errors_[name] == pytest.approx(reference.standard_errors_[name], rel=1e-4), name
    # lifetimes' own likelihood function (mean negative log-likelihood, unscaled data, no penalty)
    # at its optimum; ours is at least as high (lifetimes stops at tol = 1e-7).
    lifetimes_total = -len(f) * ModifiedBetaGeoFitter._negative_log_likelihood(
        np.log(reference.params_[list(NAMES)].to_numpy()), f, r, T, np.ones(len(f)), 0.0
    )
    assert ours.log_likelihood_ == pytest.approx(lifetimes_total, abs=1e-3)
    if penalizer == 0:
        assert ours.log_likelihood_ >= lifetimes_total - 1e-8
        assert ours.log_likelihood_ == pytest.approx(-9582.1327, abs=5e-4)


def test_penalty_shrinks_parameters(cdnow_summary: pd.DataFrame, fitted: ModifiedBetaGeoModel) -> None:
    penalised = ModifiedBetaGeoModel(penalizer=0.1).fit(cdnow_summary)
    assert sum(penalised.params_.values()) < sum(fitted.params_.values())
    assert penalised.log_likelihood_ < fitted.log_likelihood_


def test_predictions_equal_lifetimes(cdnow_summary: pd.DataFrame, fitted: ModifiedBetaGeoModel) -> None:
    reference = fitted.to_lifetimes()
    f, r, T = _columns(cdnow_summary)
    for weeks in (1, 13, 39, 104):
        np.testing.assert_allclose(
            fitted.expected_purchases(cdnow_summary, horizon=f"{weeks}W"),
            reference.conditional_expected_number_of_purchases_up_to_time(weeks, f, r, T), rtol=1e-9, atol=1e-12,
        )
    np.testing.assert_allclose(
        fitted.probability_alive(cdnow_summary), reference.conditional_probability_alive(f, r, T), rtol=1e-12
    )
    times = np.array([0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0])
    np.testing.assert_allclose(
        fitted.unconditional_expected_purchases(times), reference.expected_number_of_purchases_up_to_time(times),
        rtol=1e-10,
    )
    assert fitted.expected_purchases_new_customer(horizon="39W") == pytest.approx(
        reference.expected_number_of_purchases_up_to_time(39), rel=1e-10
    )
    for n in (0, 1, 4, 12):
        assert fitted.probability_of_purchases(30.0, n) == pytest.approx(
            reference.probability_of_n_purchases_up_to_time(30.0, n), rel=1e-9
        )


def test_probability_of_purchases_is_a_distribution(fitted: ModifiedBetaGeoModel) -> None:
    x = np.arange(400)
    for t in (1.0, 39.0, 78.0):
        pmf = fitted.probability_of_purchases(t, x)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
        mean = float((pmf * x).sum())
        assert mean == pytest.approx(float(fitted.unconditional_expected_purchases(t)), rel=1e-8)
    # P(X(t) = 0) → a/(a+b) + … as t → 0: only those who dropped out at time zero are certain to buy nothing.
    a, b = fitted.params_["a"], fitted.params_["b"]
    assert fitted.probability_of_purchases(1e9, 0) == pytest.approx(a / (a + b), rel=1e-3)


def _posterior_simulation(params: dict[str, float], x: float, t_x: float, T: float, t: float, n: int, seed: int):
    """Self-normalised importance sampling of the posterior of (λ, p) and a simulation of the
    purchase process after T, from the model's definition alone (no closed form of ours):

    * proposal λ ~ Gamma(r+x, α+t_x), p ~ Beta(a, b+x): the prior times λ^x e^{−λ t_x} (1−p)^x,
      the part of the likelihood common to both histories;
    * weight: the rest of the likelihood, (1−p) e^{−λ(T−t_x)} (survived the drop-out chance at
      t_x, at time zero when x = 0, and no purchase in (t_x, T]) + p (dropped out at t_x);
    * alive at T with probability (1−p) e^{−λ(T−t_x)} / weight;
    * future: Poisson(λt) purchase opportunities in (T, T+t], drop-out with probability p after
      each purchase, so purchases = min(Geometric(p), opportunities) if alive, else 0.

    Returns (estimate, standard error) of P(alive), P(no purchase in (T, T+t]) and E[purchases]."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = (params[k] for k in NAMES)
    lam = rng.gamma(r + x, 1.0 / (alpha + t_x), n)
    p = rng.beta(a, b + x, n)
    survived = (1.0 - p) * np.exp(-lam * (T - t_x))
    weight = survived + p
    alive = rng.random(n) < survived / weight
    opportunities = rng.poisson(lam * t)
    last_purchase = rng.geometric(p)  # the purchase after which the customer drops out
    purchases = np.where(alive, np.minimum(opportunities, last_purchase), 0)
    w = weight / weight.sum()
    out = []
    for values in (alive.astype(float), (purchases == 0).astype(float), purchases.astype(float)):
        mean = float(w @ values)
        out.append((mean, float(np.sqrt(np.sum(w**2 * (values - mean) ** 2)))))
    return out


@pytest.mark.parametrize(
    "x, t_x, T, t",
    [
        (0.0, 0.0, 5.0, 10.0),  # a one-time buyer, young
        (0.0, 0.0, 78.0, 26.0),  # a one-time buyer silent for 78 weeks
        (2.0, 30.43, 38.86, 39.0),
        (7.0, 20.0, 70.0, 13.0),  # frequent, then silent: probably gone
        (15.0, 60.0, 62.0, 4.0),
    ],
)
def test_probability_no_purchase_by_posterior_simulation(fitted: ModifiedBetaGeoModel, x, t_x, T, t) -> None:
    """The derived P(no purchase in (T, T+t]) — and P(alive), E[Y(t)] — against a seeded
    Monte-Carlo simulation of 400,000 draws from the posterior (within 4.5 standard errors)."""
    one = pd.DataFrame({"frequency": [x], "recency": [t_x], "T": [T]})
    one.attrs["unit"] = "W"
    ours = (
        fitted.probability_alive(one)[0],
        fitted.probability_no_purchase(one, horizon=f"{t}W")[0],
        fitted.expected_purchases(one, horizon=f"{t}W")[0],
    )
    simulated = _posterior_simulation(fitted.params_, x, t_x, T, t, 400_000, seed=int(7 * x + T))
    for name, value, (estimate, error) in zip(("P(alive)", "P(no purchase)", "E[Y]"), ours, simulated, strict=True):
        assert abs(value - estimate) < 4.5 * error + 1e-12, f"{name}: {value:.5f} vs {estimate:.5f} ± {error:.5f}"


def test_one_time_buyers_can_be_dead(fitted: ModifiedBetaGeoModel, cdnow_summary: pd.DataFrame) -> None:
    """The reason for the model: P(alive) < 1 at x = 0, falling with T (1/(1 + a/b ((α+T)/α)^r)),
    where the BG/NBD says 1 for every customer without a repeat purchase."""
    r, alpha, a, b = (fitted.params_[k] for k in NAMES)
    ages = np.array([0.0, 1.0, 5.0, 20.0, 39.0, 78.0, 520.0, 1e6])
    silent = pd.DataFrame({"frequency": 0.0, "recency": 0.0, "T": ages})
    silent.attrs["unit"] = "W"
    alive = fitted.probability_alive(silent)
    np.testing.assert_allclose(alive, 1.0 / (1.0 + a / b * ((alpha + ages) / alpha) ** r), rtol=1e-12)
    assert alive[0] == pytest.approx(b / (a + b))  # at T = 0: survived the drop-out at time zero
    assert (alive < 1).all() and (np.diff(alive) < 0).all() and alive[-1] < 0.05
    bgnbd = BetaGeoModel().fit(cdnow_summary)
    np.testing.assert_array_equal(bgnbd.probability_alive(silent), 1.0)
    # The long-silent one-time buyer is more likely to stay silent than the young one.
    no_purchase = fitted.probability_no_purchase(silent, horizon="26W")
    assert (np.diff(no_purchase) > 0).all()
    # On CDNOW every one of the 1,411 customers without a repeat purchase has P(alive) < 1.
    zero = cdnow_summary[cdnow_summary["frequency"] == 0]
    assert len(zero) == 1411 and fitted.probability_alive(zero).max() < 1


def simulate(n: int, r: float, alpha: float, a: float, b: float, seed: int) -> pd.DataFrame:
    """MBG/NBD data: a customer drops out at time zero with probability p (then x = 0); otherwise
    repeat purchases = min(K, N(T)), where K ~ Geometric(p) on 1, 2, … is the repeat purchase after
    which they drop out and N(T) ~ Poisson(λT) counts the purchase opportunities; given N(T) = n,
    the x-th arrival time is T·Beta(x, n−x+1)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(20, 80, n)
    dead_at_start = rng.random(n) < p
    last_repeat = rng.geometric(p)
    arrivals = rng.poisson(lam * T)
    x = np.where(dead_at_start, 0, np.minimum(last_repeat, arrivals))
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(arrivals - x + 1, 1)), 0.0)
    frame = pd.DataFrame({"frequency": x.astype(float), "recency": t_x, "T": T})
    frame.attrs["unit"] = "W"
    return frame


def test_parameter_recovery_and_warm_start_equal_lifetimes() -> None:
    """50,000 simulated customers (all rows distinct, so the fit warms up on a subsample): the
    truth lies within 3.5 standard errors, and the optimum is lifetimes'."""
    from lifetimes import ModifiedBetaGeoFitter

    from clv_models.models._mle import warm_up_sample

    truth = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 3.0}
    frame = simulate(50_000, **truth, seed=11)
    assert warm_up_sample(np.ones(len(frame))) is not None  # the warm-start path is taken
    model = ModifiedBetaGeoModel().fit(frame)
    assert model.converged_ and model.n_distinct_ == 50_000
    for name, value in truth.items():
        z = (model.params_[name] - value) / model.standard_errors_[name]
        assert abs(z) < 3.5, f"{name}: {model.params_[name]:.4f} vs {value} (z = {z:.2f})"
    reference = ModifiedBetaGeoFitter().fit(frame["frequency"], frame["recency"], frame["T"])
    for name in NAMES:
        assert model.params_[name] == pytest.approx(reference.params_[name], rel=1e-5)


def test_days_and_weeks_give_the_same_predictions(cdnow_summary: pd.DataFrame, fitted: ModifiedBetaGeoModel) -> None:
    daily = cdnow_summary.assign(recency=cdnow_summary["recency"] * 7, T=cdnow_summary["T"] * 7)
    daily.attrs["unit"] = "D"
    by_day = ModifiedBetaGeoModel().fit(daily)
    assert by_day.unit_ == "D"
    assert by_day.params_["alpha"] == pytest.approx(7 * fitted.params_["alpha"], rel=1e-6)
    for name in ("r", "a", "b"):
        assert by_day.params_[name] == pytest.approx(fitted.params_[name], rel=1e-6)
    # Densities of purchase times in days are those in weeks / 7 per repeat purchase.
    assert by_day.log_likelihood_ == pytest.approx(
        fitted.log_likelihood_ - np.log(7) * cdnow_summary["frequency"].sum(), abs=1e-6
    )
    np.testing.assert_allclose(by_day.probability_alive(daily), fitted.probability_alive(cdnow_summary), rtol=1e-6)
    for horizon in ("13W", "91D", "12M"):
        np.testing.assert_allclose(
            by_day.expected_purchases(daily, horizon=horizon),
            fitted.expected_purchases(cdnow_summary, horizon=horizon), rtol=1e-6,
        )
        np.testing.assert_allclose(
            by_day.probability_no_purchase(daily, horizon=horizon),
            fitted.probability_no_purchase(cdnow_summary, horizon=horizon), rtol=1e-6,
        )
        assert by_day.expected_purchases_new_customer(horizon=horizon) == pytest.approx(
            fitted.expected_purchases_new_customer(horizon=horizon), rel=1e-6
        )
    # One model: 91 days are 13 weeks.
    np.testing.assert_array_equal(
        fitted.expected_purchases(cdnow_summary, horizon="91D"), fitted.expected_purchases(cdnow_summary, horizon="13W")
    )
    with pytest.raises(ClvInputError, match="trained in unit 'W' but the RFM table is in 'D'"):
        fitted.probability_alive(daily)


def test_discounted_purchases_are_the_discounted_increments(fitted: ModifiedBetaGeoModel,
                                                             cdnow_summary: pd.DataFrame) -> None:
    """What the CLV calls: Σ_k d_k (E[Y(t_k)] − E[Y(t_{k−1})]) from expected_purchases itself."""
    steps = np.array([4.0, 8.7, 13.0, 26.0, 52.0])
    discount = np.array([0.99, 0.98, 0.97, 0.95, 0.9])
    cumulative = np.array([fitted.expected_purchases(cdnow_summary, horizon=f"{s}W") for s in steps])
    expected = discount @ np.diff(cumulative, axis=0, prepend=0.0)
    np.testing.assert_allclose(fitted.discounted_expected_purchases(cdnow_summary, steps, discount), expected,
                               rtol=1e-12)


def test_drop_in_for_clv_and_fit_evaluation() -> None:
    """Where a BetaGeoModel goes, this goes: the CLV equals lifetimes' customer_lifetime_value with
    a ModifiedBetaGeoFitter (lifetimes' conventions: 4.345-week months, a monthly rate), and the
    tracking plot's E[X(t)] is lifetimes' expected_number_of_purchases_up_to_time."""
    from clv_models.evaluation.fit import expected_repeat_purchases
    from clv_models.models import GammaGammaModel
    from clv_models.valuation import customer_lifetime_value

    path = resources.files("lifetimes.datasets").joinpath("cdnow_customers_summary_with_transactions.csv")
    rfm = pd.read_csv(str(path)).rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})
    rfm.attrs["unit"] = "W"
    purchases, spend = ModifiedBetaGeoModel().fit(rfm), GammaGammaModel().fit(rfm)
    reference = spend.to_lifetimes().customer_lifetime_value(
        purchases.to_lifetimes(), rfm["frequency"], rfm["recency"], rfm["T"], rfm["monetary_value"],
        time=12, discount_rate=0.01, freq="W",
    )
    ours = customer_lifetime_value(
        purchases, spend, rfm, horizon="12M", annual_discount_rate=1.01**12 - 1, days_per_month=4.345 * 7
    )
    np.testing.assert_allclose(ours, reference, rtol=1e-6)
    t = np.arange(0.0, 80.0)
    np.testing.assert_allclose(
        expected_repeat_purchases(purchases, t), purchases.to_lifetimes().expected_number_of_purchases_up_to_time(t),
        rtol=1e-10, atol=1e-15,
    )


def test_log_likelihood_terms_equal_lifetimes_and_high_precision() -> None:
    from lifetimes import ModifiedBetaGeoFitter

    params = np.array([0.52, 6.2, 0.89, 1.6])
    x = np.array([0.0, 0.0, 1.0, 2.0, 30.0, 200.0])
    t_x = np.array([0.0, 0.0, 3.0, 30.43, 38.0, 38.0])
    T = np.array([1.0, 78.0, 50.0, 38.86, 40.0, 40.0])
    ours = log_likelihood_terms(params, x, t_x, T)
    for i in range(len(x)):
        reference = -ModifiedBetaGeoFitter._negative_log_likelihood(
            np.log(params), x[i : i + 1], t_x[i : i + 1], T[i : i + 1], np.ones(1), 0.0
        )
        assert ours[i] == pytest.approx(reference, rel=1e-12)
    # The heavy buyer from the likelihood written out with 50 digits: (Γ(r+x) α^r / Γ(r)) ·
    # [B(a, b+x+1)/B(a, b) (α+T)^−(r+x) + B(a+1, b+x)/B(a, b) (α+t_x)^−(r+x)].
    mpmath.mp.dps = 50
    r, alpha, a, b = (mpmath.mpf(v) for v in params)
    xm, tm, Tm = mpmath.mpf(200), mpmath.mpf(38), mpmath.mpf(40)
    alive = mpmath.beta(a, b + xm + 1) / (alpha + Tm) ** (r + xm)
    dropped = mpmath.beta(a + 1, b + xm) / (alpha + tm) ** (r + xm)
    exact = mpmath.log(mpmath.gamma(r + xm) * alpha**r / mpmath.gamma(r) * (alive + dropped) / mpmath.beta(a, b))
    assert ours[-1] == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize("params", [[0.4, 5.0, 0.9, 2.2], [0.52, 6.2, 0.89, 1.6], [2.0, 0.5, 3.0, 0.7]])
def test_gradient_and_hessian_match_finite_differences(params) -> None:
    """The analytic gradient against central differences of the value, and the analytic Hessian
    (used by Newton and for the standard errors) against central differences of the gradient."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 30, 60).astype(float)
    T = rng.uniform(5, 60, 60)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, 60), 0.0)
    w = rng.integers(1, 5, 60).astype(float)
    params = np.array(params)
    _, gradient = log_likelihood_gradient(params, x, t_x, T, w)
    hessian = log_likelihood_hessian(params, x, t_x, T, w)
    numeric_gradient = np.empty(4)
    numeric_hessian = np.empty((4, 4))
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-5 * params[i]
        up = log_likelihood_gradient(params + step, x, t_x, T, w)
        down = log_likelihood_gradient(params - step, x, t_x, T, w)
        numeric_gradient[i] = (up[0] - down[0]) / (2 * step[i])
        numeric_hessian[:, i] = (up[1] - down[1]) / (2 * step[i])
    np.testing.assert_allclose(gradient, numeric_gradient, rtol=1e-6, atol=1e-7 * np.abs(numeric_gradient).max())
    np.testing.assert_allclose(hessian, numeric_hessian, rtol=1e-6, atol=1e-7 * np.abs(numeric_hessian).max())
    np.testing.assert_array_equal(hessian, hessian.T)


def test_quasi_newton_fallback_gives_the_same_fit(cdnow_summary: pd.DataFrame, fitted: ModifiedBetaGeoModel,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from clv_models.models import _mle

    monkeypatch.setattr(_mle, "NEWTON_MAX_ITERATIONS", 0)
    fallback = ModifiedBetaGeoModel().fit(cdnow_summary)
    assert fallback.diagnostic_.startswith("BFGS") and fallback.converged_
    for name in NAMES:
        assert fallback.params_[name] == pytest.approx(fitted.params_[name], rel=1e-6)
    assert fallback.log_likelihood_ == pytest.approx(fitted.log_likelihood_, rel=1e-12)


@pytest.mark.parametrize("params", [
    {"r": 0.7364, "alpha": 62.31, "a": 0.0019, "b": 8.96e6},  # drop-out not identified: b runs off
    {"r": 0.7364, "alpha": 1.0, "a": 0.0305, "b": 2.0e3},  # some elements by the series, some closed-form
])
def test_expected_purchases_equal_high_precision_where_b_is_huge(params: dict[str, float]) -> None:
    """Wagner & Hoppe's closed form with 60 digits against ours, which goes through the BG/NBD's
    bracket at b + 1 and so inherits its large-b series (docs/decisions.md D27)."""
    model = ModifiedBetaGeoModel.from_dict({"model": "ModifiedBetaGeoModel", "unit": "D", "params": params})
    rfm = pd.DataFrame({"frequency": [0.0, 3.0, 50.0, 200.0, 10.0], "recency": [0.0, 60.0, 290.0, 350.0, 4.0],
                        "T": [10.0, 100.0, 300.0, 360.0, 5.0]})
    mpmath.mp.dps = 60
    r, alpha, a, b = (mpmath.mpf(params[k]) for k in NAMES)

    def closed_form(x: float, t_x: float, T: float, t: float) -> float:
        x, t_x, T, t = (mpmath.mpf(v) for v in (x, t_x, T, t))
        z = t / (alpha + T + t)
        bracket = (a + b + x) / (a - 1) * (1 - (1 - z) ** (r + x) * mpmath.hyp2f1(r + x, b + x + 1, a + b + x, z))
        return float(bracket / (1 + a / (b + x) * ((alpha + T) / (alpha + t_x)) ** (r + x)))

    for t in (30.0, 180.0):
        rows = zip(rfm["frequency"], rfm["recency"], rfm["T"], strict=True)
        expected = [closed_form(x, t_x, T, t) for x, t_x, T in rows]
        np.testing.assert_allclose(model.expected_purchases(rfm, horizon=f"{t:.0f}D"), expected, rtol=1e-10)
        z = t / (alpha + t)
        new = b / (a - 1) * (1 - (1 - z) ** r * mpmath.hyp2f1(r, b + 1, a + b, z))
        assert model.expected_purchases_new_customer(horizon=f"{t:.0f}D") == pytest.approx(float(new), rel=1e-10)


def test_sklearn_contract_and_persistence(fitted: ModifiedBetaGeoModel, cdnow_summary: pd.DataFrame, tmp_path) -> None:
    with pytest.raises(NotFittedError):
        ModifiedBetaGeoModel().probability_alive(cdnow_summary)
    assert clone(fitted).get_params() == {"penalizer": 0.0, "unit": None}
    expected = fitted.expected_purchases(cdnow_summary, horizon="10W")
    blob = pickle.dumps(fitted)
    assert len(blob) < 5_000  # parameters and metadata, no training rows
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(restored.expected_purchases(cdnow_summary, horizon="10W"), expected)
    np.testing.assert_array_equal(restored.probability_alive(cdnow_summary), fitted.probability_alive(cdnow_summary))
    joblib.dump(fitted, tmp_path / "mbgnbd.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "mbgnbd.joblib").expected_purchases(cdnow_summary, horizon="10W"), expected
    )
    description = json.loads(json.dumps(fitted.to_dict()))
    assert description["model"] == "ModifiedBetaGeoModel" and description["n_distinct"] == fitted.n_distinct_
    from_json = ModifiedBetaGeoModel.from_dict(description)
    np.testing.assert_array_equal(from_json.expected_purchases(cdnow_summary, horizon="10W"), expected)
    np.testing.assert_array_equal(
        from_json.probability_no_purchase(cdnow_summary, horizon="10W"),
        fitted.probability_no_purchase(cdnow_summary, horizon="10W"),
    )
    assert from_json.params_ == fitted.params_ and from_json.standard_errors_ == fitted.standard_errors_
    imported = ModifiedBetaGeoModel.from_lifetimes(fitted.to_lifetimes(), unit="W")
    assert imported.params_ == pytest.approx(fitted.params_) and imported.unit_ == "W"


def test_sample_weight_equals_repeated_rows(cdnow_summary: pd.DataFrame) -> None:
    head = cdnow_summary.iloc[:800]
    doubled = pd.concat([head, head.iloc[:300]], ignore_index=True)
    doubled.attrs["unit"] = "W"
    weights = np.r_[np.full(300, 2.0), np.ones(500)]
    by_weight = ModifiedBetaGeoModel().fit(head, sample_weight=weights)
    by_rows = ModifiedBetaGeoModel().fit(doubled)
    assert by_weight.params_ == pytest.approx(by_rows.params_, rel=1e-7)
    assert by_weight.log_likelihood_ == pytest.approx(by_rows.log_likelihood_, rel=1e-10)
    assert by_weight.n_customers_ == by_rows.n_customers_ == 1100


def test_bad_input_is_a_clear_error(cdnow_summary: pd.DataFrame, fitted: ModifiedBetaGeoModel) -> None:
    with pytest.raises(ClvInputError, match="recency > T"):
        ModifiedBetaGeoModel().fit(cdnow_summary.assign(recency=cdnow_summary["T"] + 1))
    with pytest.raises(ClvInputError, match="lacks column"):
        ModifiedBetaGeoModel().fit(cdnow_summary.drop(columns="T"))
    with pytest.raises(ClvInputError, match="negative or non-finite"):
        ModifiedBetaGeoModel().fit(cdnow_summary.assign(frequency=-cdnow_summary["frequency"]))
    with pytest.raises(ClvInputError, match="negative or non-finite"):
        fitted.expected_purchases(cdnow_summary.assign(T=np.nan), horizon="4W")
    with pytest.raises(ClvInputError, match="penalizer must be"):
        ModifiedBetaGeoModel(penalizer=-1.0).fit(cdnow_summary)
    unlabeled = cdnow_summary.copy()
    unlabeled.attrs.clear()
    with pytest.raises(ClvInputError, match="does not say its time unit"):
        ModifiedBetaGeoModel().fit(unlabeled)
    with pytest.raises(ClvInputError, match="unit='D' was given but the RFM table is in 'W'"):
        ModifiedBetaGeoModel(unit="D").fit(cdnow_summary)
    with pytest.raises(ClvInputError, match="not a number with a unit"):
        fitted.expected_purchases(cdnow_summary, horizon="12")
    with pytest.raises(ClvInputError, match="t ≥ 0"):
        fitted.unconditional_expected_purchases(-1.0)
    with pytest.raises(ClvInputError, match="whole numbers"):
        fitted.probability_of_purchases(10.0, 1.5)
    with pytest.raises(ClvInputError, match="not a ModifiedBetaGeoModel"):
        ModifiedBetaGeoModel.from_dict(BetaGeoModel.from_lifetimes(fitted.to_lifetimes(), unit="W").to_dict())


def test_no_repeat_purchases_at_all_warns_instead_of_failing() -> None:
    """Without repeat purchases λ and p are not told apart: a warning and finite predictions."""
    frame = pd.DataFrame({"frequency": 0.0, "recency": 0.0, "T": np.linspace(5, 50, 50)})
    with pytest.warns(ConvergenceWarning):
        model = ModifiedBetaGeoModel(unit="W").fit(frame)
    assert not model.converged_
    assert np.isfinite(model.probability_alive(frame)).all()
