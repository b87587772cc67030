"""Treatment − control statistics (issue 19): Welch's t-test from scipy with its interval, and the
minimum detectable effect, on outcome tables whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clv_models.errors import ClvInputError
from clv_models.experiments import compare_groups, minimum_detectable_effect


def _outcomes(treated: np.ndarray, control: np.ndarray, experiment: str = "e", action: str = "a") -> pd.DataFrame:
    n_t, n_c = len(treated), len(control)
    values = np.concatenate([treated, control]).astype(float)
    return pd.DataFrame({
        "experiment": experiment, "action": action,
        "experiment_group": ["treatment"] * n_t + ["control"] * n_c,
        "retention": (values > 0).astype(float), "orders": np.ceil(values / 50.0), "revenue": values,
    })  # fmt: skip


def test_the_effects_are_welchs_test_and_interval() -> None:
    rng = np.random.default_rng(3)
    treated, control = rng.gamma(0.5, 120.0, 900), rng.gamma(0.5, 100.0, 1100)
    row = compare_groups(_outcomes(treated, control)).set_index("outcome").loc["revenue"]
    expected = stats.ttest_ind(treated, control, equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert row["difference"] == pytest.approx(treated.mean() - control.mean())
    assert (row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx(
        (interval.low, interval.high, expected.pvalue)
    )
    assert (row["n_treatment"], row["n_control"]) == (900, 1100)
    assert row["relative_difference"] == pytest.approx(row["difference"] / control.mean())


def test_the_mde_is_the_effect_found_with_the_stated_power() -> None:
    # (z_0.975 + z_0.8) · sd · sqrt(2/n) for equal groups: 2.8016 · sd · sqrt(2/n)
    assert minimum_detectable_effect(1.0, 1000, 1000) == pytest.approx(2.80158 * math.sqrt(2 / 1000), rel=1e-5)
    # Simulated: a true difference equal to the MDE is found in about 80 % of experiments.
    rng = np.random.default_rng(11)
    n, sd = 400, 1.0
    mde = minimum_detectable_effect(sd, n, n)
    found = sum(
        stats.ttest_ind(rng.normal(mde, sd, n), rng.normal(0.0, sd, n), equal_var=False).pvalue < 0.05
        for _ in range(400)
    )
    assert 0.74 < found / 400 < 0.86


def test_one_row_per_experiment_action_and_outcome_and_missing_tests_are_nan() -> None:
    frame = pd.concat([
        _outcomes(np.array([10.0, 0.0, 30.0]), np.array([0.0, 20.0]), action="b"),
        _outcomes(np.array([5.0]), np.array([0.0, 1.0]), action="a"),  # one treated customer: no test
        _outcomes(np.zeros(5), np.zeros(5), experiment="f"),  # nobody bought: nothing to test
    ])  # fmt: skip
    effects = compare_groups(frame)
    assert list(zip(effects["experiment"], effects["action"], effects["outcome"])) == [
        (e, a, o) for e, a in (("e", "a"), ("e", "b"), ("f", "a")) for o in ("retention", "orders", "revenue")
    ]
    assert effects.loc[effects["action"].eq("a") & effects["experiment"].eq("e"), "p_value"].isna().all()
    quiet = effects[effects["experiment"] == "f"]
    assert quiet["p_value"].isna().all() and (quiet["difference"] == 0).all()
    assert effects.loc[(effects["action"] == "b") & (effects["experiment"] == "e"), "p_value"].notna().all()
    with pytest.raises(ClvInputError, match="alpha"):
        compare_groups(frame, alpha=1.5)
