"""Pareto/NBD: published CDNOW numbers, lifetimes parity, the likelihood against ₂F₁ and 60-digit
arithmetic, predictions against numerical integrals, recovery, units and persistence."""

from __future__ import annotations

import math
import pickle
from importlib import resources

import joblib
import mpmath
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from clv_models.errors import ClvInputError
from clv_models.models import ParetoNBDModel
from clv_models.models.pnbd import log_likelihood_gradient, log_likelihood_hessian, log_likelihood_terms

PARAMS = ("r", "alpha", "s", "beta")


@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    """lifetimes' CDNOW sample: 2,357 customers, time in weeks."""
    path = resources.files("lifetimes.datasets").joinpath("cdnow_customers_summary.csv")
    frame = pd.read_csv(str(path))
    frame.attrs["unit"] = "W"
    return frame


@pytest.fixture(scope="module")
def fitted(cdnow_summary: pd.DataFrame) -> ParetoNBDModel:
    return ParetoNBDModel().fit(cdnow_summary)


def _columns(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(frame[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))  # type: ignore[return-value]


def hypergeometric_log_likelihood(params, x, t_x, T) -> np.ndarray:
    """FH note 009 eq. 22-23 as pymc-marketing arranges it: two positive terms, no difference,

    L = Γ(r+x) α^r β^s / (Γ(r) (c+t_x)^(r+s+x)) · [ s/(r+s+x) ₂F₁(r+s+x, b₁; r+s+x+1; (c−m)/(c+t_x))
        + (r+x)/(r+s+x) ₂F₁(r+s+x, b₂; r+s+x+1; (c−m)/(c+T)) ((c+t_x)/(c+T))^(r+s+x) ],

    c = max(α, β), m = min(α, β), (b₁, b₂) = (s+1, s) if α ≥ β else (r+x, r+x+1)."""
    r, alpha, s, beta = params
    rsx, r_x = r + s + x, r + x
    c, m = max(alpha, beta), min(alpha, beta)
    b1, b2 = (s + 1, s) if alpha >= beta else (r_x, r_x + 1)
    first = np.log(s / rsx) + np.log(special.hyp2f1(rsx, b1, rsx + 1, (c - m) / (c + t_x)))
    second = (
        np.log(r_x / rsx) + np.log(special.hyp2f1(rsx, b2, rsx + 1, (c - m) / (c + T)))
        + rsx * (np.log(c + t_x) - np.log(c + T))
    )
    common = special.gammaln(r_x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta) - rsx * np.log(c + t_x)
    return common + np.logaddexp(first, second)


def test_published_cdnow_parameters(fitted: ParetoNBDModel, cdnow_summary: pd.DataFrame) -> None:
    # The published Pareto/NBD estimates on this sample (as pinned in the project's design notes).
    published = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    for name, value in published.items():
        assert fitted.params_[name] == pytest.approx(value, rel=1e-3), name
    assert fitted.converged_ and fitted.unit_ == "W" and fitted.diagnostic_.startswith("Newton")
    assert fitted.n_customers_ == 2357 and fitted.n_distinct_ <= 2357
    x, t_x, T = _columns(cdnow_summary)
    assert fitted.log_likelihood_ == pytest.approx(
        hypergeometric_log_likelihood(tuple(fitted.params_.values()), x, t_x, T).sum(), rel=1e-12
    )


def test_likelihood_equals_the_hypergeometric_form(cdnow_summary: pd.DataFrame) -> None:
    x, t_x, T = _columns(cdnow_summary)
    for params in ([0.553, 10.578, 0.606, 11.669], [0.553, 11.669, 0.606, 10.578], [2.0, 5.0, 0.3, 60.0]):
        np.testing.assert_allclose(
            log_likelihood_terms(np.array(params), x, t_x, T),
            hypergeometric_log_likelihood(params, x, t_x, T), rtol=1e-12, atol=1e-12,
        )


def _exact_log_likelihood(params, x: float, t_x: float, T: float) -> float:
    """FH eq. 18-20 with 60 digits: I(t_x, T) = J(t_x) − J(T), J(t) = ∫_t^∞ (α+τ)^−(r+x) (β+τ)^−(s+1) dτ
    = (c+t)^−(r+s+x) ₂F₁(r+s+x, b; r+s+x+1; (c−m)/(c+t)) / (r+s+x), b the exponent of the m factor."""
    with mpmath.workdps(60):
        r, alpha, s, beta, x, t_x, T = (mpmath.mpf(v) for v in (*params, x, t_x, T))
        c, m = max(alpha, beta), min(alpha, beta)
        b = s + 1 if alpha >= beta else r + x
        a = r + s + x

        def tail(t):
            return (c + t) ** (-a) * mpmath.hyp2f1(a, b, a + 1, (c - m) / (c + t)) / a

        alive = (alpha + T) ** (-(r + x)) * (beta + T) ** (-s)
        common = mpmath.loggamma(r + x) - mpmath.loggamma(r) + r * mpmath.log(alpha) + s * mpmath.log(beta)
        return float(common + mpmath.log(alive + s * (tail(t_x) - tail(T))))


@pytest.mark.parametrize(
    "params, row",
    [
        ((0.55, 0.5, 0.6, 200.0), (300.0, 10.0, 400.0)),  # α ≪ β, a heavy buyer long silent
        ((2.0, 1.0, 0.5, 1000.0), (150.0, 5.0, 300.0)),
        ((0.55, 10.0, 0.6, 11.0), (300.0, 38.0, 39.0)),
        ((7.3, 0.0117, 1.73, 992.0), (2.0, 0.0749, 0.613)),
        ((0.3, 50.0, 0.2, 0.01), (0.0, 0.0, 700.0)),  # β ≪ α, no repeat purchase
        ((0.55, 70.0, 0.6, 700.0), (1.0, 1e-9, 2e-9)),  # t_x and T a billionth apart
    ],
)
def test_likelihood_where_the_hypergeometric_form_fails(params, row) -> None:
    """lifetimes' ₂F₁ form returns NaN on the first two rows (₂F₁ overflows where its argument
    (β−α)/(β+t) is near 1 and b = r+x is in the hundreds); the quadrature stays within rounding
    of the 60-digit value on all."""
    from lifetimes import ParetoNBDFitter

    x, t_x, T = (np.array([v]) for v in row)
    ours = log_likelihood_terms(np.array(params), x, t_x, T)[0]
    assert ours == pytest.approx(_exact_log_likelihood(params, *row), rel=1e-13, abs=1e-12)
    if row[0] >= 150 and row[1] < 10:
        with np.errstate(all="ignore"):
            assert not np.isfinite(ParetoNBDFitter._conditional_log_likelihood(np.array(params), x, t_x, T)[0])


def test_heavy_buyer_at_the_cutoff_where_lifetimes_gives_nan() -> None:
    """A customer of CDNOW's daily RFM (x = 170, t_x = T = 496 days) under CDNOW's daily fit:
    lifetimes' P(alive) and E[Y] are NaN; a purchase at T means alive at T."""
    model = ParetoNBDModel.from_dict(
        {"model": "ParetoNBDModel", "unit": "D", "params": {"r": 0.611, "alpha": 95.3, "s": 0.3126, "beta": 43.04}}
    )
    rows = pd.DataFrame({"frequency": [170.0, 170.0], "recency": [496.0, 495.0], "T": [496.0, 496.0]})
    reference = model.to_lifetimes()
    alive = model.probability_alive(rows)
    assert alive[0] == 1.0 and 0.99 < alive[1] < 1.0
    assert np.isnan(reference.conditional_probability_alive(rows["frequency"], rows["recency"], rows["T"])[0])
    assert alive[1] == pytest.approx(
        reference.conditional_probability_alive(rows["frequency"], rows["recency"], rows["T"])[1], rel=1e-12
    )
    expected = model.expected_purchases(rows, horizon="90D")
    # Alive at T: E[Y] = (r+x)(β+T)/((α+T)(s−1)) [1 − ((β+T)/(β+T+t))^(s−1)] (FH eq. 41).
    r, alpha, s, beta = 0.611, 95.3, 0.3126, 43.04
    alive_expectation = (r + 170) * (beta + 496) / ((alpha + 496) * (s - 1))
    assert expected[0] == pytest.approx(alive_expectation * (1 - ((beta + 496) / (beta + 586)) ** (s - 1)), rel=1e-12)


def _rows(seed: int, n: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 30, n).astype(float)
    T = rng.uniform(5, 60, n)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, n), 0.0)
    t_x[:3] = np.where(x[:3] > 0, T[:3], 0.0)  # a purchase at the cutoff: no death term
    return x, t_x, T, rng.integers(1, 5, n).astype(float)


@pytest.mark.parametrize("params", [[0.55, 10.6, 0.6, 11.7], [0.4, 5.0, 0.9, 2.2], [2.0, 0.5, 3.0, 70.0],
                                    [0.05, 80.0, 0.3, 1.0]])
def test_gradient_and_hessian_match_finite_differences(params) -> None:
    """Five-point differences of the value (gradient) and central differences of the analytic
    gradient (Hessian), on rows with and without repeat purchases, α < β and α > β."""
    x, t_x, T, w = _rows(3, 60)
    params = np.array(params)
    _, gradient = log_likelihood_gradient(params, x, t_x, T, w)
    hessian = log_likelihood_hessian(params, x, t_x, T, w)
    numeric_gradient, numeric_hessian = np.empty(4), np.empty((4, 4))
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-4 * params[i]

        def value(p):
            return log_likelihood_gradient(p, x, t_x, T, w)[0]

        numeric_gradient[i] = (
            8 * (value(params + step) - value(params - step)) - (value(params + 2 * step) - value(params - 2 * step))
        ) / (12 * step[i])
        step[i] = 1e-5 * params[i]
        numeric_hessian[:, i] = (
            log_likelihood_gradient(params + step, x, t_x, T, w)[1]
            - log_likelihood_gradient(params - step, x, t_x, T, w)[1]
        ) / (2 * step[i])
    np.testing.assert_allclose(gradient, numeric_gradient, rtol=1e-8, atol=1e-10 * np.abs(gradient).max())
    np.testing.assert_allclose(hessian, numeric_hessian, rtol=1e-6, atol=1e-8 * np.abs(numeric_hessian).max())
    np.testing.assert_array_equal(hessian, hessian.T)


def test_same_fit_as_lifetimes(cdnow_summary: pd.DataFrame, fitted: ParetoNBDModel) -> None:
    """lifetimes' Nelder-Mead with its default tolerance stops ~1e-4 short (s, β); run to a tight
    tolerance from a fixed start (its default start is random) it agrees to ~1e-7."""
    from lifetimes import ParetoNBDFitter

    x, t_x, T = _columns(cdnow_summary)
    reference = ParetoNBDFitter().fit(x, t_x, T, tol=1e-10, initial_params=[1.0, 1.0, 1.0, 1.0])
    for name in PARAMS:
        assert fitted.params_[name] == pytest.approx(reference.params_[name], rel=1e-6), name
    lifetimes_ll = ParetoNBDFitter._conditional_log_likelihood
    ours = lifetimes_ll(np.array(list(fitted.params_.values())), x, t_x, T).sum()
    theirs = lifetimes_ll(reference.params_.to_numpy(), x, t_x, T).sum()
    assert fitted.log_likelihood_ == pytest.approx(ours, rel=1e-12)
    assert ours >= theirs - 1e-9


def test_standard_errors_equal_the_inverse_numerical_hessian(fitted: ParetoNBDModel, cdnow_summary) -> None:
    """lifetimes' Pareto/NBD reports no standard errors: central differences of its own (₂F₁)
    log-likelihood give the observed information instead."""
    from lifetimes import ParetoNBDFitter

    x, t_x, T = _columns(cdnow_summary)
    theta = np.array([fitted.params_[k] for k in PARAMS])

    def total(p):
        return ParetoNBDFitter._conditional_log_likelihood(p, x, t_x, T).sum()

    steps = 1e-4 * theta
    hessian = np.empty((4, 4))
    for i in range(4):
        for j in range(4):
            ei, ej = np.eye(4)[i] * steps[i], np.eye(4)[j] * steps[j]
            hessian[i, j] = (
                total(theta + ei + ej) - total(theta + ei - ej) - total(theta - ei + ej) + total(theta - ei - ej)
            ) / (4 * steps[i] * steps[j])
    errors = np.sqrt(np.diag(np.linalg.inv(-hessian)))
    for name, error in zip(PARAMS, errors, strict=True):
        assert fitted.standard_errors_[name] == pytest.approx(error, rel=1e-4), name


def test_penalized_fit_matches_lifetimes(cdnow_summary: pd.DataFrame) -> None:
    """Our penalty is on the mean negative log-likelihood (as BetaGeoModel's), lifetimes'
    ParetoNBDFitter's on the total over its n unweighted rows: coefficient c there is c/n here."""
    from lifetimes import ParetoNBDFitter

    x, t_x, T = _columns(cdnow_summary)
    ours = ParetoNBDModel(penalizer=0.1).fit(cdnow_summary)
    reference = ParetoNBDFitter(penalizer_coef=0.1 * len(x)).fit(
        x, t_x, T, tol=1e-10, initial_params=[1.0, 1.0, 1.0, 1.0]
    )
    for name in PARAMS:
        assert ours.params_[name] == pytest.approx(reference.params_[name], rel=1e-5), name
    assert ours.params_["s"] < 0.5  # the penalty bites (unpenalised: s = 0.606)
    assert ParetoNBDModel.from_lifetimes(reference, unit="W").penalizer == pytest.approx(0.1)
    assert ParetoNBDModel.from_lifetimes(ours.to_lifetimes(), unit="W").penalizer == 0.1


def test_predictions_equal_lifetimes(cdnow_summary: pd.DataFrame, fitted: ParetoNBDModel) -> None:
    reference = fitted.to_lifetimes()
    f, r, T = cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
    np.testing.assert_allclose(
        fitted.probability_alive(cdnow_summary), reference.conditional_probability_alive(f, r, T), rtol=1e-12
    )
    for weeks in (1, 39, 104):
        np.testing.assert_allclose(
            fitted.expected_purchases(cdnow_summary, horizon=f"{weeks}W"),
            reference.conditional_expected_number_of_purchases_up_to_time(weeks, f, r, T), rtol=1e-12,
        )
        assert fitted.expected_purchases_new_customer(horizon=f"{weeks}W") == pytest.approx(
            reference.expected_number_of_purchases_up_to_time(weeks), rel=1e-12
        )
    head = cdnow_summary.iloc[:300]
    for weeks in (5.0, 39.0):
        np.testing.assert_allclose(
            fitted.probability_no_purchase(head, horizon=f"{weeks:g}W"),
            reference.conditional_probability_of_n_purchases_up_to_time(
                0, weeks, head["frequency"], head["recency"], head["T"]
            ),
            rtol=1e-12,
        )
    # Unlike the BG/NBD, customers without repeat purchases can be dead.
    assert (fitted.probability_alive(cdnow_summary)[cdnow_summary["frequency"].to_numpy() == 0] < 1).all()


def _gamma_variable(shape: float, rate: float):
    """(v ↦ λ, density of v) for λ ~ Gamma(shape, rate). Below shape 1 the density of λ is
    infinite at 0; in v = λ^shape it is e^{−rate·v^(1/shape)}·rate^shape/Γ(shape+1), finite."""
    constant = shape * math.log(rate) - math.lgamma(shape)
    if shape >= 1:
        return (lambda v: v), (lambda v: math.exp(constant + (shape - 1) * math.log(v) - rate * v) if v > 0 else 0.0)
    return (lambda v: v ** (1 / shape)), (lambda v: math.exp(constant - rate * v ** (1 / shape)) / shape)


def _over_prior(function, r, alpha, s, beta) -> float:
    """E[function(λ, μ)] under λ ~ Gamma(r, α), μ ~ Gamma(s, β), by nested adaptive quadrature."""
    (lam, density_l), (mu, density_m) = _gamma_variable(r, alpha), _gamma_variable(s, beta)
    value, _ = integrate.dblquad(
        lambda u, v: density_l(u) * density_m(v) * function(lam(u), mu(v)), 0, np.inf, 0, np.inf,
        epsabs=0, epsrel=1e-11,
    )
    return value


@pytest.mark.parametrize("row", [(2, 30.43, 38.86, 10.0), (0, 0.0, 38.86, 26.0), (7, 20.0, 38.86, 4.0)])
def test_probability_no_purchase_by_numerical_integration(fitted: ParetoNBDModel, row) -> None:
    """P(alive) from the individual-level likelihood, λ^x e^{−(λ+μ)T} (alive at T) plus
    λ^x μ/(λ+μ) (e^{−(λ+μ)t_x} − e^{−(λ+μ)T}) (died in (t_x, T]), integrated over the prior;
    then P(no purchase in (T, T+w]) = P(dead) + P(alive)·E[μ/(λ+μ) + λ/(λ+μ)·e^{−(λ+μ)w}] with
    λ | alive ~ Gamma(r+x, α+T), μ | alive ~ Gamma(s, β+T), both by 2-D adaptive quadrature."""
    x, t_x, T, w = row
    r, alpha, s, beta = (fitted.params_[k] for k in PARAMS)

    def alive(lam, mu):
        return lam**x * math.exp(-(lam + mu) * T)

    def dead(lam, mu):
        rate = lam + mu
        return lam**x * mu / rate * (math.exp(-rate * t_x) - math.exp(-rate * T))

    p_alive = _over_prior(alive, r, alpha, s, beta)
    p_alive /= p_alive + _over_prior(dead, r, alpha, s, beta)

    def silent(lam, mu):
        rate = lam + mu
        return mu / rate + lam / rate * math.exp(-rate * w)

    expected = (1 - p_alive) + p_alive * _over_prior(silent, r + x, alpha + T, s, beta + T)
    one = pd.DataFrame({"frequency": [float(x)], "recency": [t_x], "T": [T]})
    assert fitted.probability_alive(one)[0] == pytest.approx(p_alive, rel=1e-9)
    assert fitted.probability_no_purchase(one, horizon=f"{w:g}W")[0] == pytest.approx(expected, rel=1e-9)


def test_probability_of_purchases(fitted: ParetoNBDModel) -> None:
    """P(X(t) = x) sums to one over x, has mean E[X(t)] (FH eq. 27), and equals a direct numerical
    integral over the time of death."""
    t = np.array([1.0, 39.0, 80.0])
    counts = np.arange(0, 3000)
    table = fitted.probability_of_purchases(t[:, None], counts[None, :])
    np.testing.assert_allclose(table.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(table @ counts, fitted.unconditional_expected_purchases(t), rtol=1e-10)
    r, alpha, s, beta = (fitted.params_[k] for k in PARAMS)
    for horizon, x in ((39.0, 0), (39.0, 1), (80.0, 5)):
        nb = math.exp(special.gammaln(r + x) - special.gammaln(r) - special.gammaln(x + 1)) * (
            alpha / (alpha + horizon)) ** r * (horizon / (alpha + horizon)) ** x
        died = integrate.quad(
            lambda tau, x=x: s * beta**s / (beta + tau) ** (s + 1) * math.exp(
                special.gammaln(r + x) - special.gammaln(r) - special.gammaln(x + 1)
            ) * alpha**r * tau**x / (alpha + tau) ** (r + x),
            0, horizon, epsabs=0, epsrel=1e-12, limit=200,
        )[0]
        expected = nb * (beta / (beta + horizon)) ** s + died
        assert fitted.probability_of_purchases(horizon, x) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ClvInputError, match="whole numbers"):
        fitted.probability_of_purchases(1.0, 0.5)


def test_clv_and_discounting_accept_the_model(fitted: ParetoNBDModel, cdnow_summary: pd.DataFrame) -> None:
    """Drop-in for BetaGeoModel in the CLV: the monthly discounted sum equals E[Y] step by step."""
    from clv_models.timeunits import parse_horizon
    from clv_models.valuation.clv import customer_lifetime_value, monthly_steps

    class Spend:  # a constant order value, to isolate the purchase model
        unit_ = "W"

        def expected_order_value(self, rfm):
            return np.full(len(rfm), 50.0)

    clv = customer_lifetime_value(fitted, Spend(), cdnow_summary, horizon="12M", annual_discount_rate=0.1)
    steps = monthly_steps(parse_horizon("12M"), "W")
    cumulative = np.column_stack(
        [fitted.expected_purchases(cdnow_summary, horizon=f"{step * 7:.12f}D") for step in steps]
    )
    discount = 1.1 ** -(steps * 7 / 365.25)
    expected = 50.0 * (np.diff(cumulative, axis=1, prepend=0.0) @ discount)
    np.testing.assert_allclose(clv, expected, rtol=1e-10)


def simulate(n: int, r: float, alpha: float, s: float, beta: float, seed: int) -> pd.DataFrame:
    """Pareto/NBD data: λ ~ Gamma(r, α), μ ~ Gamma(s, β), lifetime ~ Exp(μ); x ~ Poisson(λ·a) over
    the active time a = min(lifetime, T), and given x the last of x uniform purchase times on
    (0, a] is a·Beta(x, 1)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    mu = rng.gamma(s, 1 / beta, n)
    T = rng.uniform(20, 80, n)
    active = np.minimum(rng.exponential(1 / mu), T)
    x = rng.poisson(lam * active)
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1), 0.0)
    frame = pd.DataFrame({"frequency": x.astype(float), "recency": t_x, "T": T})
    frame.attrs["unit"] = "W"
    return frame


def test_parameter_recovery_within_standard_errors() -> None:
    truth = {"r": 0.5, "alpha": 6.0, "s": 0.8, "beta": 12.0}
    model = ParetoNBDModel().fit(simulate(20_000, **truth, seed=11))
    assert model.converged_
    for name, value in truth.items():
        z = (model.params_[name] - value) / model.standard_errors_[name]
        assert abs(z) < 3.5, f"{name}: {model.params_[name]:.4f} vs {value} (z = {z:.2f})"


def test_days_and_weeks_give_the_same_predictions(fitted: ParetoNBDModel, cdnow_summary: pd.DataFrame) -> None:
    daily = cdnow_summary.assign(recency=cdnow_summary["recency"] * 7, T=cdnow_summary["T"] * 7)
    daily.attrs["unit"] = "D"
    by_day = ParetoNBDModel(penalizer=0.05).fit(daily)
    by_week = ParetoNBDModel(penalizer=0.05).fit(cdnow_summary)
    for name, factor in zip(PARAMS, (1, 7, 1, 7), strict=True):
        assert by_day.params_[name] == pytest.approx(by_week.params_[name] * factor, rel=1e-7), name
    np.testing.assert_allclose(
        by_day.expected_purchases(daily, horizon="13W"), by_week.expected_purchases(cdnow_summary, horizon="91D"),
        rtol=1e-7,
    )
    np.testing.assert_allclose(
        by_day.probability_no_purchase(daily, horizon="12M"),
        by_week.probability_no_purchase(cdnow_summary, horizon="12M"), rtol=1e-7,
    )
    np.testing.assert_allclose(by_day.probability_alive(daily), by_week.probability_alive(cdnow_summary), rtol=1e-7)
    # A weekly model: 91 days = 13 weeks exactly.
    np.testing.assert_allclose(
        fitted.expected_purchases(cdnow_summary, horizon="91D"), fitted.expected_purchases(cdnow_summary, horizon="13W")
    )


def test_unit_is_enforced(fitted: ParetoNBDModel, cdnow_summary: pd.DataFrame) -> None:
    daily = cdnow_summary.copy()
    daily.attrs["unit"] = "D"
    with pytest.raises(ClvInputError, match="trained in unit 'W' but the RFM table is in 'D'"):
        fitted.probability_alive(daily)
    unlabeled = cdnow_summary.copy()
    unlabeled.attrs.clear()
    with pytest.raises(ClvInputError, match="does not say its time unit"):
        ParetoNBDModel().fit(unlabeled)
    with pytest.raises(ClvInputError, match="horizon '12' is not a number with a unit"):
        fitted.expected_purchases(cdnow_summary, horizon="12")


def test_bad_input_is_a_clear_error(cdnow_summary: pd.DataFrame) -> None:
    with pytest.raises(ClvInputError, match="recency > T"):
        ParetoNBDModel().fit(cdnow_summary.assign(recency=cdnow_summary["T"] + 1))
    with pytest.raises(ClvInputError, match="lacks column"):
        ParetoNBDModel().fit(cdnow_summary.drop(columns="T"))
    with pytest.raises(ClvInputError, match="negative or non-finite"):
        ParetoNBDModel().fit(cdnow_summary.assign(frequency=np.nan))
    with pytest.raises(ClvInputError, match="penalizer must be ≥ 0"):
        ParetoNBDModel(penalizer=-1.0).fit(cdnow_summary)
    with pytest.raises(ClvInputError, match="not a ParetoNBDModel description"):
        ParetoNBDModel.from_dict({"model": "BetaGeoModel", "unit": "W", "params": {}})
    with pytest.raises(ClvInputError, match="lacks s, beta"):
        ParetoNBDModel.from_dict({"model": "ParetoNBDModel", "unit": "W", "params": {"r": 1.0, "alpha": 1.0}})


def test_sklearn_contract_and_persistence(fitted: ParetoNBDModel, cdnow_summary: pd.DataFrame, tmp_path) -> None:
    with pytest.raises(NotFittedError):
        ParetoNBDModel().probability_alive(cdnow_summary)
    assert clone(fitted).get_params() == {"penalizer": 0.0, "unit": None}
    expected = fitted.expected_purchases(cdnow_summary, horizon="10W")
    alive = fitted.probability_alive(cdnow_summary)
    blob = pickle.dumps(fitted)
    assert len(blob) < 5_000  # parameters and metadata, no training rows
    restored = [pickle.loads(blob), ParetoNBDModel.from_dict(fitted.to_dict())]
    joblib.dump(fitted, tmp_path / "pnbd.joblib")
    restored.append(joblib.load(tmp_path / "pnbd.joblib"))
    for model in restored:
        np.testing.assert_array_equal(model.expected_purchases(cdnow_summary, horizon="10W"), expected)
        np.testing.assert_array_equal(model.probability_alive(cdnow_summary), alive)
        assert model.standard_errors_ == fitted.standard_errors_ and model.n_distinct_ == fitted.n_distinct_
    imported = ParetoNBDModel.from_lifetimes(fitted.to_lifetimes(), unit="W")
    assert imported.params_ == pytest.approx(fitted.params_)


def test_sample_weight_equals_repeated_rows(cdnow_summary: pd.DataFrame) -> None:
    head = cdnow_summary.iloc[:800]
    doubled = pd.concat([head, head.iloc[:300]], ignore_index=True)
    doubled.attrs["unit"] = "W"
    weights = np.r_[np.full(300, 2.0), np.ones(500)]
    by_weight = ParetoNBDModel().fit(head, sample_weight=weights)
    by_rows = ParetoNBDModel().fit(doubled)
    assert by_weight.params_ == pytest.approx(by_rows.params_, rel=1e-7)
    assert by_weight.log_likelihood_ == pytest.approx(by_rows.log_likelihood_, rel=1e-10)


def test_quasi_newton_fallback_gives_the_same_fit(cdnow_summary: pd.DataFrame, fitted: ParetoNBDModel,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from clv_models.models import _mle

    monkeypatch.setattr(_mle, "NEWTON_MAX_ITERATIONS", 0)
    fallback = ParetoNBDModel().fit(cdnow_summary)
    assert fallback.diagnostic_.startswith("BFGS") and fallback.converged_
    for name in PARAMS:
        assert fallback.params_[name] == pytest.approx(fitted.params_[name], rel=1e-6)
    assert fallback.log_likelihood_ == pytest.approx(fitted.log_likelihood_, rel=1e-12)


def test_warm_start_reaches_the_same_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 40,000 distinct rows the fit starts from a subsample; the optimum must not move."""
    from clv_models.models import _mle, _repeat_purchase_fit

    frame = simulate(41_000, r=0.5, alpha=6.0, s=0.8, beta=12.0, seed=23)
    assert _mle.warm_up_sample(np.ones(len(frame))) is not None
    warm = ParetoNBDModel().fit(frame)
    monkeypatch.setattr(_repeat_purchase_fit, "warm_up_sample", lambda weights: None)
    cold = ParetoNBDModel().fit(frame)
    assert warm.converged_ and cold.converged_
    for name in PARAMS:
        assert warm.params_[name] == pytest.approx(cold.params_[name], rel=1e-7)


@pytest.mark.parametrize(
    "frequency, recency",
    [
        ([0.0] * 50, [0.0] * 50),  # no repeat purchases at all
        ([0.0] * 49 + [300.0], [0.0] * 49 + [0.001]),  # one absurd heavy buyer
    ],
)
def test_degenerate_data_warns_instead_of_failing(frequency, recency) -> None:
    from clv_models.models import ConvergenceWarning

    frame = pd.DataFrame({"frequency": frequency, "recency": recency, "T": np.linspace(5, 50, 50)})
    with pytest.warns(ConvergenceWarning):
        model = ParetoNBDModel(unit="W").fit(frame)
    assert not model.converged_
    assert np.isfinite(model.probability_alive(frame)).all()
    assert np.isfinite(model.expected_purchases(frame, horizon="10W")).all()
