"""BG/NBD: published CDNOW numbers, lifetimes parity, numerical stability, recovery, persistence."""

from __future__ import annotations

import pickle
from importlib import resources

import joblib
import mpmath
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from clv_models.errors import ClvInputError
from clv_models.models import BetaGeoModel
from clv_models.models.bgnbd import log_likelihood_gradient, log_likelihood_hessian, log_likelihood_terms


@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    """lifetimes' CDNOW sample: 2,357 customers, time in weeks (Fader, Hardie & Lee 2005)."""
    path = resources.files("lifetimes.datasets").joinpath("cdnow_customers_summary.csv")
    frame = pd.read_csv(str(path))
    frame.attrs["unit"] = "W"
    return frame


@pytest.fixture(scope="module")
def fitted(cdnow_summary: pd.DataFrame) -> BetaGeoModel:
    return BetaGeoModel().fit(cdnow_summary)


def test_published_cdnow_parameters(fitted: BetaGeoModel) -> None:
    # Fader, Hardie & Lee (2005), section 5: r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = −9582.4
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert fitted.params_[name] == pytest.approx(value, abs=5e-4), name
    assert fitted.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)
    assert fitted.converged_ and fitted.unit_ == "W"
    assert fitted.n_customers_ == 2357 and fitted.n_distinct_ <= 2357


def test_published_conditional_expectation(fitted: BetaGeoModel) -> None:
    # FHL 2005, section 5: a customer with x = 2, t_x = 30.43, T = 38.86 buys 1.226 times in 39 weeks.
    one = pd.DataFrame({"frequency": [2.0], "recency": [30.43], "T": [38.86]})
    assert fitted.expected_purchases(one, horizon="39W")[0] == pytest.approx(1.226, abs=5e-4)


def test_same_as_lifetimes_fit_and_standard_errors(cdnow_summary: pd.DataFrame, fitted: BetaGeoModel) -> None:
    from lifetimes import BetaGeoFitter

    reference = BetaGeoFitter().fit(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])
    for name in ("r", "alpha", "a", "b"):
        assert fitted.params_[name] == pytest.approx(reference.params_[name], rel=1e-4)
        assert fitted.standard_errors_[name] == pytest.approx(reference.summary.loc[name, "se(coef)"], rel=1e-3)


def test_predictions_equal_lifetimes(cdnow_summary: pd.DataFrame, fitted: BetaGeoModel) -> None:
    reference = fitted.to_lifetimes()
    f, r, T = cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
    for weeks in (1, 39, 104):
        np.testing.assert_allclose(
            fitted.expected_purchases(cdnow_summary, horizon=f"{weeks}W"),
            reference.conditional_expected_number_of_purchases_up_to_time(weeks, f, r, T), rtol=1e-6, atol=1e-9,
        )
    np.testing.assert_allclose(
        fitted.probability_alive(cdnow_summary), reference.conditional_probability_alive(f, r, T), rtol=1e-6
    )
    assert fitted.expected_purchases_new_customer(horizon="39W") == pytest.approx(
        reference.expected_number_of_purchases_up_to_time(39), rel=1e-6
    )


def test_horizon_units_convert(fitted: BetaGeoModel, cdnow_summary: pd.DataFrame) -> None:
    # A weekly model: 91 days = 13 weeks; "3M" = 3 × 30.4375 days = 13.044642857 weeks.
    np.testing.assert_allclose(
        fitted.expected_purchases(cdnow_summary, horizon="91D"), fitted.expected_purchases(cdnow_summary, horizon="13W")
    )
    reference = fitted.to_lifetimes()
    np.testing.assert_allclose(
        fitted.expected_purchases(cdnow_summary, horizon="3M"),
        reference.conditional_expected_number_of_purchases_up_to_time(
            3 * 30.4375 / 7, cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
        ),
        rtol=1e-9,
    )
    with pytest.raises(ClvInputError, match="horizon '12' is not a number with a unit"):
        fitted.expected_purchases(cdnow_summary, horizon="12")


def test_probability_no_purchase_by_numerical_integration(fitted: BetaGeoModel) -> None:
    """Integrate the posterior over λ numerically for one customer. The drop-out probability p
    enters only through the Beta integrals E[(1−p)^x] and E[p(1−p)^(x−1)], taken in closed form."""
    r, alpha, a, b = (fitted.params_[k] for k in ("r", "alpha", "a", "b"))
    x, t_x, T, t = 2, 30.43, 38.86, 10.0
    survive = special.beta(a, b + x) / special.beta(a, b)  # E[(1−p)^x]
    drop = special.beta(a + 1, b + x - 1) / special.beta(a, b)  # E[p (1−p)^(x−1)]

    def over_lambda(silent_until: float) -> float:
        density = lambda lam: stats.gamma.pdf(lam, r, scale=1 / alpha) * lam**x * np.exp(-lam * silent_until)  # noqa: E731
        return integrate.quad(density, 0, np.inf, epsabs=0, epsrel=1e-12, limit=200)[0]

    alive = survive * over_lambda(T)
    dead = drop * over_lambda(t_x)
    alive_and_silent = survive * over_lambda(T + t)
    one = pd.DataFrame({"frequency": [x], "recency": [t_x], "T": [T]})
    assert fitted.probability_no_purchase(one, horizon=f"{t}W")[0] == pytest.approx(
        (dead + alive_and_silent) / (alive + dead), rel=1e-8
    )
    assert fitted.probability_alive(one)[0] == pytest.approx(alive / (alive + dead), rel=1e-8)


def test_likelihood_is_finite_where_the_naive_formula_overflows() -> None:
    params = np.array([0.25, 4.0, 0.8, 2.5])  # r, α, a, b
    x, t_x, T = np.array([200.0]), np.array([38.0]), np.array([40.0])
    r, alpha, a, b = params
    with np.errstate(all="ignore"):  # the spreadsheet formula: Γ(200.25) overflows, (α+T)^−200 underflows
        naive = (
            special.gamma(r + x) / special.gamma(r) * alpha**r
            * special.beta(a, b + x) / special.beta(a, b) / (alpha + T) ** (r + x)
        )
    assert not np.isfinite(naive).all()
    ours = log_likelihood_terms(params, x, t_x, T)[0]
    assert np.isfinite(ours)
    # The exact value with 50 significant digits (mpmath), from the same closed form.
    mpmath.mp.dps = 50
    rm, am, aa, bm = (mpmath.mpf(v) for v in params)
    xm, tm, Tm = mpmath.mpf(200), mpmath.mpf(38), mpmath.mpf(40)
    beta_part = mpmath.beta(aa, bm + xm) / mpmath.beta(aa, bm)
    lam_part = mpmath.gamma(rm + xm) * am**rm / mpmath.gamma(rm)
    exact = mpmath.log(
        beta_part * lam_part / (am + Tm) ** (rm + xm)
        + mpmath.beta(aa + 1, bm + xm - 1) / mpmath.beta(aa, bm) * lam_part / (am + tm) ** (rm + xm)
    )
    assert ours == pytest.approx(float(exact), rel=1e-12)


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 20, 50).astype(float)
    T = rng.uniform(5, 60, 50)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, 50), 0.0)
    w = rng.integers(1, 5, 50).astype(float)
    params = np.array([0.4, 5.0, 0.9, 2.2])
    _, gradient = log_likelihood_gradient(params, x, t_x, T, w)
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-6 * params[i]
        numeric = (
            log_likelihood_gradient(params + step, x, t_x, T, w)[0]
            - log_likelihood_gradient(params - step, x, t_x, T, w)[0]
        ) / (2 * step[i])
        assert gradient[i] == pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize("params", [[0.4, 5.0, 0.9, 2.2], [0.24, 4.4, 0.79, 2.4], [2.0, 0.5, 3.0, 0.7]])
def test_hessian_matches_finite_differences_of_the_gradient(params) -> None:
    """The analytic Hessian (used by Newton and for the standard errors) against central
    differences of the analytic gradient, on rows with and without repeat purchases."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 30, 60).astype(float)
    T = rng.uniform(5, 60, 60)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, 60), 0.0)
    w = rng.integers(1, 5, 60).astype(float)
    params = np.array(params)
    hessian = log_likelihood_hessian(params, x, t_x, T, w)
    numeric = np.empty((4, 4))
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-5 * params[i]
        numeric[:, i] = (
            log_likelihood_gradient(params + step, x, t_x, T, w)[1]
            - log_likelihood_gradient(params - step, x, t_x, T, w)[1]
        ) / (2 * step[i])
    np.testing.assert_allclose(hessian, numeric, rtol=1e-6, atol=1e-7 * np.abs(numeric).max())
    np.testing.assert_array_equal(hessian, hessian.T)


def test_quasi_newton_fallback_gives_the_same_fit(cdnow_summary: pd.DataFrame, fitted: BetaGeoModel,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """When Newton gives up, BFGS (the previous optimiser) runs; both reach the same optimum."""
    from clv_models.models import _mle

    monkeypatch.setattr(_mle, "NEWTON_MAX_ITERATIONS", 0)
    fallback = BetaGeoModel().fit(cdnow_summary)
    assert fallback.diagnostic_.startswith("BFGS") and fitted.diagnostic_.startswith("Newton")
    assert fallback.converged_
    for name in ("r", "alpha", "a", "b"):
        assert fallback.params_[name] == pytest.approx(fitted.params_[name], rel=1e-6)
        assert fallback.standard_errors_[name] == pytest.approx(fitted.standard_errors_[name], rel=1e-6)
    assert fallback.log_likelihood_ == pytest.approx(fitted.log_likelihood_, rel=1e-12)


def simulate(n: int, r: float, alpha: float, a: float, b: float, seed: int) -> pd.DataFrame:
    """BG/NBD data: repeat purchases = min(K, N(T)), where K ~ Geometric(p) on 1, 2, … is the repeat
    purchase after which the customer drops out (P(alive after x repeats) = (1−p)^x) and
    N(T) ~ Poisson(λT) counts the purchase opportunities; given N(T) = n, the x-th arrival time
    is T·Beta(x, n−x+1)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(20, 80, n)
    last_repeat = rng.geometric(p)
    arrivals = rng.poisson(lam * T)
    x = np.minimum(last_repeat, arrivals)
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(arrivals - x + 1, 1)), 0.0)
    frame = pd.DataFrame({"frequency": x.astype(float), "recency": t_x, "T": T})
    frame.attrs["unit"] = "W"
    return frame


def test_parameter_recovery_within_standard_errors() -> None:
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 3.0}
    model = BetaGeoModel().fit(simulate(30_000, **truth, seed=11))
    for name, value in truth.items():
        z = (model.params_[name] - value) / model.standard_errors_[name]
        assert abs(z) < 3.5, f"{name}: {model.params_[name]:.4f} vs {value} (z = {z:.2f})"


def test_unit_is_enforced(fitted: BetaGeoModel, cdnow_summary: pd.DataFrame) -> None:
    daily = cdnow_summary.copy()
    daily.attrs["unit"] = "D"
    with pytest.raises(ClvInputError, match="trained in unit 'W' but the RFM table is in 'D'"):
        fitted.probability_alive(daily)
    unlabeled = cdnow_summary.copy()
    unlabeled.attrs.clear()
    with pytest.raises(ClvInputError, match="does not say its time unit"):
        BetaGeoModel().fit(unlabeled)
    assert BetaGeoModel(unit="W").fit(unlabeled).unit_ == "W"


def test_bad_input_is_a_clear_error(cdnow_summary: pd.DataFrame) -> None:
    broken = cdnow_summary.assign(recency=cdnow_summary["T"] + 1)
    with pytest.raises(ClvInputError, match="recency > T"):
        BetaGeoModel().fit(broken)
    with pytest.raises(ClvInputError, match="lacks column"):
        BetaGeoModel().fit(cdnow_summary.drop(columns="T"))


def test_sklearn_contract_and_persistence(fitted: BetaGeoModel, cdnow_summary: pd.DataFrame, tmp_path) -> None:
    with pytest.raises(NotFittedError):
        BetaGeoModel().probability_alive(cdnow_summary)
    assert clone(fitted).get_params() == {"penalizer": 0.0, "unit": None}
    expected = fitted.expected_purchases(cdnow_summary, horizon="10W")
    blob = pickle.dumps(fitted)
    assert len(blob) < 5_000  # parameters and metadata, no training rows
    np.testing.assert_array_equal(pickle.loads(blob).expected_purchases(cdnow_summary, horizon="10W"), expected)
    joblib.dump(fitted, tmp_path / "bgnbd.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "bgnbd.joblib").expected_purchases(cdnow_summary, horizon="10W"), expected
    )
    restored = BetaGeoModel.from_dict(fitted.to_dict())
    np.testing.assert_array_equal(restored.expected_purchases(cdnow_summary, horizon="10W"), expected)


def test_from_lifetimes(cdnow_summary: pd.DataFrame, fitted: BetaGeoModel) -> None:
    imported = BetaGeoModel.from_lifetimes(fitted.to_lifetimes(), unit="W")
    assert imported.params_ == pytest.approx(fitted.params_)


def test_penalized_fit_matches_lifetimes(cdnow_summary: pd.DataFrame) -> None:
    from lifetimes import BetaGeoFitter

    ours = BetaGeoModel(penalizer=0.1).fit(cdnow_summary)
    reference = BetaGeoFitter(penalizer_coef=0.1).fit(
        cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
    )
    for name in ("r", "alpha", "a", "b"):
        assert ours.params_[name] == pytest.approx(reference.params_[name], rel=1e-4)


@pytest.mark.parametrize(
    "frequency, recency",
    [
        ([0.0] * 50, [0.0] * 50),  # no repeat purchases at all: drop-out is not identified
        ([0.0] * 49 + [300.0], [0.0] * 49 + [0.001]),  # one absurd heavy buyer
    ],
)
def test_degenerate_data_warns_instead_of_failing(frequency, recency) -> None:
    from clv_models.models import ConvergenceWarning

    frame = pd.DataFrame({"frequency": frequency, "recency": recency, "T": np.linspace(5, 50, 50)})
    with pytest.warns(ConvergenceWarning):
        model = BetaGeoModel(unit="W").fit(frame)
    assert not model.converged_
    assert "gradient" in model.diagnostic_
    assert np.isfinite(model.probability_alive(frame)).all()


def test_large_fit_with_warm_start_equals_lifetimes() -> None:
    """Above 40,000 distinct rows the fit starts from a subsample; the optimum must not move."""
    from lifetimes import BetaGeoFitter

    from clv_models.models._mle import warm_up_sample

    frame = simulate(60_000, r=0.3, alpha=5.0, a=0.8, b=2.5, seed=23)
    assert warm_up_sample(np.ones(len(frame))) is not None  # the warm-start path is taken
    ours = BetaGeoModel().fit(frame)
    reference = BetaGeoFitter().fit(frame["frequency"], frame["recency"], frame["T"])
    for name in ("r", "alpha", "a", "b"):
        assert ours.params_[name] == pytest.approx(reference.params_[name], rel=1e-5)
    assert ours.converged_


def test_sample_weight_equals_repeated_rows(cdnow_summary: pd.DataFrame) -> None:
    head = cdnow_summary.iloc[:800]
    doubled = pd.concat([head, head.iloc[:300]], ignore_index=True)
    doubled.attrs["unit"] = "W"
    weights = np.r_[np.full(300, 2.0), np.ones(500)]
    by_weight = BetaGeoModel().fit(head, sample_weight=weights)
    by_rows = BetaGeoModel().fit(doubled)
    assert by_weight.params_ == pytest.approx(by_rows.params_, rel=1e-7)
    assert by_weight.log_likelihood_ == pytest.approx(by_rows.log_likelihood_, rel=1e-10)


@pytest.mark.parametrize("params", [
    {"r": 0.2469, "alpha": 19.49, "a": 0.8368, "b": 2.696},  # a typical daily fit
    {"r": 0.7364, "alpha": 62.31, "a": 0.0019, "b": 8.96e6},  # Online Retail: drop-out not identified
    {"r": 0.7364, "alpha": 62.31, "a": 0.0305, "b": 6.31e8},  # the same ridge further out
    {"r": 0.7364, "alpha": 1.0, "a": 0.0305, "b": 2.0e3},  # some (x, T, t) by the series, the rest closed-form
])
def test_expected_purchases_equal_high_precision_where_b_is_huge(params: dict[str, float]) -> None:
    """E[Y(t) | x, t_x, T] and E[X(t)] against FHL's closed form evaluated with 60 digits (mpmath).
    In double precision the closed form loses ~log10(b) digits: at b = 6.3e8 it was off by 2,200 %
    and gave negative CLVs on Online Retail; the model switches to the series in p there."""
    model = BetaGeoModel.from_dict({"model": "BetaGeoModel", "penalizer": 0.0, "unit": "D", "params": params})
    rfm = pd.DataFrame({"frequency": [0.0, 3.0, 50.0, 200.0, 10.0], "recency": [0.0, 60.0, 290.0, 350.0, 4.0],
                        "T": [10.0, 100.0, 300.0, 360.0, 5.0]})
    mpmath.mp.dps = 60
    r, alpha, a, b = (mpmath.mpf(params[k]) for k in ("r", "alpha", "a", "b"))

    def alive_expectation(x: float, T: float, t: float) -> float:
        x, T, t = mpmath.mpf(x), mpmath.mpf(T), mpmath.mpf(t)
        z = t / (alpha + T + t)
        series = mpmath.hyp2f1(r + x, b + x, a + b + x - 1, z)
        return float((a + b + x - 1) / (a - 1) * (1 - (1 - z) ** (r + x) * series))

    alive = model.probability_alive(rfm)
    for t in (30.0, 180.0):
        expected = [alive_expectation(x, T, t) * p for x, T, p in zip(rfm["frequency"], rfm["T"], alive, strict=True)]
        np.testing.assert_allclose(model.expected_purchases(rfm, horizon=f"{t:.0f}D"), expected, rtol=1e-10)
        assert model.expected_purchases_new_customer(horizon=f"{t:.0f}D") == pytest.approx(
            alive_expectation(0.0, 0.0, t), rel=1e-10
        )
