"""Figures of BG/NBD fit and holdout quality, and the numbers behind them (checked against lifetimes)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from clv_models.errors import ClvInputError
from clv_models.evaluation import (
    cumulative_repeat_purchases,
    expected_repeat_purchases,
    frequency_table,
    probability_of_purchases,
    repeat_purchase_histogram,
)
from clv_models.features import calibration_holdout
from clv_models.models import BetaGeoModel
from clv_models.plotting import (
    plot_calibration_vs_holdout,
    plot_cumulative_purchases,
    plot_frequency_recency_matrix,
    plot_probability_alive_matrix,
    plot_repeat_purchases,
)

# Published CDNOW parameters (DESIGN.md §7), weekly.
BGNBD = BetaGeoModel.from_dict(
    {"model": "BetaGeoModel", "penalizer": 0.0, "unit": "W",
     "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}}
)


@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    """The 2,357-customer CDNOW sample as lifetimes ships it (weeks)."""
    path = resources.files("lifetimes.datasets").joinpath("cdnow_customers_summary.csv")
    frame = pd.read_csv(str(path)).rename(columns={"ID": "customer_id"})
    frame.attrs["unit"] = "W"
    return frame


@pytest.fixture(scope="module")
def cdnow_tenth(cdnow_master: pd.DataFrame) -> pd.DataFrame:
    """Every tenth CDNOW customer as canonical orders ($0 rows are not purchases)."""
    frame = cdnow_master[(cdnow_master["dollar_value"] > 0) & (cdnow_master["customer_id"].astype(int) % 10 == 0)]
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "order_ts": pd.to_datetime(frame["date"], format="%Y%m%d"),
            "amount": frame["dollar_value"].astype(float),
        }
    )


# --- P(X(t) = x) and E[X(t)] ------------------------------------------------------------------


def test_probability_of_purchases_matches_lifetimes() -> None:
    reference = BGNBD.to_lifetimes()
    times, counts = np.array([0.0, 0.5, 10.0, 39.0, 78.0]), np.arange(31)
    ours = probability_of_purchases(BGNBD, times[:, None], counts[None, :])
    expected = np.array([[reference.probability_of_n_purchases_up_to_time(t, n) for n in counts] for t in times])
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-8)
    # Relative agreement too, except in the far tail, where lifetimes' 1 − Σ loses digits to
    # cancellation; there the exact value (below) sides with the survival function.
    tail = expected < 1e-9
    np.testing.assert_allclose(ours[~tail], expected[~tail], rtol=1e-8)
    assert ours[0].tolist() == [1.0] + [0.0] * 30  # nothing happens in no time


def test_probability_of_purchases_far_tail_is_exact() -> None:
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    r, alpha, a, b = (mpmath.mpf(v) for v in ("0.243", "4.414", "0.793", "2.426"))
    t, n = mpmath.mpf("0.5"), 12

    def nb(j: int) -> mpmath.mpf:
        return mpmath.gamma(r + j) / mpmath.gamma(r) / mpmath.factorial(j) * (alpha / (alpha + t)) ** r * (
            t / (alpha + t)
        ) ** j

    exact = mpmath.beta(a, b + n) / mpmath.beta(a, b) * nb(n) + mpmath.beta(a + 1, b + n - 1) / mpmath.beta(
        a, b
    ) * (1 - mpmath.fsum(nb(j) for j in range(n)))  # FHL 2005, eq. 8 in 40 digits
    assert probability_of_purchases(BGNBD, 0.5, n) == pytest.approx(float(exact), rel=1e-9)


def test_distribution_sums_to_one_and_its_mean_is_eq_9() -> None:
    counts = np.arange(3000)
    for t in (1.0, 39.0, 78.0):
        p = probability_of_purchases(BGNBD, t, counts)
        assert p.sum() == pytest.approx(1.0, abs=1e-10)
        assert counts @ p == pytest.approx(BGNBD.expected_purchases_new_customer(horizon=f"{t}W"), rel=1e-9)
    # Far beyond where the paper's finite sum of gamma functions overflows.
    assert np.isfinite(probability_of_purchases(BGNBD, 500.0, 400)).all()


def test_expected_repeat_purchases_is_vectorised_eq_9() -> None:
    times = np.array([0.0, 1.0, 13.0, 39.0, 52.0, 78.0])
    expected = BGNBD.to_lifetimes().expected_number_of_purchases_up_to_time(times)
    np.testing.assert_allclose(expected_repeat_purchases(BGNBD, times), expected, rtol=1e-10)
    assert expected_repeat_purchases(BGNBD, 39.0) == pytest.approx(
        BGNBD.expected_purchases_new_customer(horizon="39W"), rel=1e-12
    )


def test_repeat_purchase_histogram_against_lifetimes(cdnow_summary: pd.DataFrame) -> None:
    sample = cdnow_summary.iloc[:300]
    got = repeat_purchase_histogram(BGNBD, sample, max_frequency=7)
    assert got["repeat_purchases"].tolist() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    reference = BGNBD.to_lifetimes()
    below = np.array(
        [[reference.probability_of_n_purchases_up_to_time(T, n) for n in range(7)] for T in sample["T"]]
    ).sum(axis=0)
    np.testing.assert_allclose(got["expected"].to_numpy(), np.r_[below, len(sample) - below.sum()], rtol=1e-8)
    actual = np.bincount(np.minimum(sample["frequency"].to_numpy(), 7), minlength=8)
    assert got["actual"].tolist() == actual.tolist()


def test_histogram_on_the_full_sample_is_close_to_the_paper(cdnow_summary: pd.DataFrame) -> None:
    got = repeat_purchase_histogram(BGNBD, cdnow_summary).set_index("repeat_purchases")
    assert got["expected"].sum() == pytest.approx(2357)
    # FHL (2005), Figure 2: 1,411 customers with no repeat purchase, the model a little above.
    assert got.loc["0", "actual"] == 1411
    assert got.loc["0", "expected"] == pytest.approx(1411, rel=0.05)


# --- cumulative tracking --------------------------------------------------------------------


def orders(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": [r[0] for r in rows], "order_ts": pd.to_datetime([r[1] for r in rows]), "amount": 10.0}
    )


def test_cumulative_tracking_by_hand() -> None:
    daily = BetaGeoModel.from_dict(
        {"model": "BetaGeoModel", "penalizer": 0.0, "unit": "D",
         "params": {"r": 0.25, "alpha": 30.0, "a": 0.8, "b": 2.4}}
    )
    history = orders(
        ("A", "2024-01-01 09:00"), ("A", "2024-01-01 18:00"),  # one purchase day
        ("A", "2024-01-03 10:00"), ("A", "2024-01-05 10:00"),
        ("B", "2024-01-02 12:00"), ("B", "2024-01-05 08:00"),
        ("C", "2024-01-04 12:00"),
        ("D", "2024-01-06 12:00"),  # acquired after the cohort end below
    )
    got = cumulative_repeat_purchases(daily, history, end=dt.date(2024, 1, 6), cohort_end=dt.date(2024, 1, 5))
    assert got["period_start"].tolist() == list(pd.date_range("2024-01-01", "2024-01-06"))
    # Repeat days: A on the 3rd and 5th, B on the 5th.
    assert got["actual"].tolist() == [0, 0, 1, 1, 3, 3]
    # Customers acquired on days 0 (A), 1 (B), 3 (C): expected(c) = Σ E[X(c − f)].
    def ex(lag: int) -> float:
        return daily.expected_purchases_new_customer(horizon=f"{lag}D") if lag > 0 else 0.0

    expected = [sum(ex(c - f) for f in (0, 1, 3) if f <= c) for c in range(6)]
    np.testing.assert_allclose(got["expected"].to_numpy(), expected, rtol=1e-12)
    assert got.attrs["unit"] == "D"


@pytest.mark.parametrize("unit", ["D", "W"])
def test_cumulative_tracking_matches_lifetimes(cdnow_tenth: pd.DataFrame, unit: str) -> None:
    from lifetimes.utils import expected_cumulative_transactions

    split = calibration_holdout(cdnow_tenth, calibration_end=dt.date(1997, 9, 30), holdout_end=dt.date(1998, 6, 30),
                                unit=unit)
    model = BetaGeoModel().fit(split)
    ours = cumulative_repeat_purchases(model, cdnow_tenth)
    reference = expected_cumulative_transactions(
        model.to_lifetimes(), cdnow_tenth, "order_ts", "customer_id", t=len(ours) - 1, freq=unit
    )
    # lifetimes pairs the actual count through period c with the expectation at lag c + 1 − f.
    np.testing.assert_allclose(ours["expected"].to_numpy()[1:], reference["predicted"].to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(ours["actual"].to_numpy()[:-1], reference["actual"].to_numpy())


def test_tracking_without_customers_is_a_clear_error() -> None:
    with pytest.raises(ClvInputError, match="no customers acquired"):
        cumulative_repeat_purchases(BGNBD, orders(("A", "2024-01-10")), cohort_end=dt.date(2024, 1, 1))


# --- figures --------------------------------------------------------------------------------


def saved(ax: Axes, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    ax.figure.savefig(path, dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_repeat_purchase_histogram_plot(cdnow_summary: pd.DataFrame, tmp_path: Path) -> None:
    ax = plot_repeat_purchases(repeat_purchase_histogram(BGNBD, cdnow_summary))
    assert isinstance(ax, Axes)
    assert len(ax.containers) == 2  # actual, model
    heights = [[bar.get_height() for bar in container] for container in ax.containers]
    assert [len(h) for h in heights] == [8, 8]
    assert np.isfinite(heights).all()
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "7+"
    saved(ax, tmp_path, "histogram")


def test_calibration_vs_holdout_plot(cdnow_summary: pd.DataFrame, tmp_path: Path) -> None:
    split = cdnow_summary.assign(frequency_holdout=cdnow_summary["frequency"] / 2, duration_holdout=39.0)
    fig = Figure()
    given = fig.subplots()
    ax = plot_calibration_vs_holdout(frequency_table(BGNBD, split), ax=given)
    assert ax is given
    assert len(ax.lines) == 2
    for line in ax.lines:
        assert len(line.get_ydata()) == 8
        assert np.isfinite(line.get_ydata()).all()
    saved(ax, tmp_path, "calibration_vs_holdout")


def test_cumulative_purchases_plot(cdnow_tenth: pd.DataFrame, tmp_path: Path) -> None:
    tracking = cumulative_repeat_purchases(BGNBD, cdnow_tenth, cohort_end=dt.date(1997, 9, 30))
    ax = plot_cumulative_purchases(tracking, calibration_end=dt.date(1997, 9, 30))
    assert len(ax.lines) == 3  # actual, expected, calibration end marker
    for line in ax.lines[:2]:
        assert len(line.get_ydata()) == len(tracking) == 79
        assert np.isfinite(np.asarray(line.get_ydata(), dtype=float)).all()
    assert len(plot_cumulative_purchases(tracking).lines) == 2
    saved(ax, tmp_path, "cumulative")


@pytest.mark.parametrize("kind", ["expected", "alive"])
def test_matrix_plots(kind: str, tmp_path: Path) -> None:
    if kind == "expected":
        ax = plot_frequency_recency_matrix(BGNBD, T=39, max_frequency=12, horizon="13W")
    else:
        ax = plot_probability_alive_matrix(BGNBD, T=39, max_frequency=12)
    assert len(ax.images) == 1
    data = ax.images[0].get_array()
    assert data.shape == (13, 40)  # frequency 0..12, recency 0..39
    assert np.isfinite(data.compressed()).all()
    # Impossible cells are blank: no repeats means recency 0, and x repeats need recency ≥ x.
    assert data.mask[0, 1:].all() and not data.mask[0, 0]
    assert data.mask[5, 4] and not data.mask[5, 5]
    if kind == "alive":
        assert data[0, 0] == 1.0 and (data.compressed() <= 1).all()
        alive = BGNBD.probability_alive(pd.DataFrame({"frequency": [5.0], "recency": [20.0], "T": [39.0]}))
        assert data[5, 20] == pytest.approx(alive[0])
    saved(ax, tmp_path, kind)


def test_bad_tables_are_clear_errors() -> None:
    with pytest.raises(ClvInputError, match="frequency_table"):
        plot_calibration_vs_holdout(pd.DataFrame({"x": [1]}))
    with pytest.raises(ClvInputError, match="T > 0"):
        plot_probability_alive_matrix(BGNBD, T=0, max_frequency=3)


def test_imports_have_no_side_effects() -> None:
    code = (
        "import sys, warnings\n"
        # Third-party libraries register filters of their own at import; ours must add none.
        "import duckdb, numpy, pandas, scipy.optimize, scipy.special, scipy.stats, sklearn.base\n"
        "filters = list(warnings.filters)\n"
        "import clv_models.evaluation\n"
        "assert 'matplotlib' not in sys.modules, 'evaluation imports matplotlib'\n"
        "import matplotlib\n"
        # Reading rcParams['backend'] would itself import pyplot to resolve the default backend.
        "def settings(): return {k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != 'backend'}\n"
        "params = settings()\n"
        "import clv_models.plotting\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'plotting imports pyplot'\n"
        "assert settings() == params, 'rcParams changed'\n"
        "assert warnings.filters == filters, 'warning filters changed'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
