"""Settings: TOML, overrides and the column map."""

from __future__ import annotations

from pathlib import Path

import pytest

from clv_models.config import ColumnMap, load_settings
from clv_models.errors import ClvInputError


def test_quantity_and_price_replace_the_default_amount(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text(
        '[orders.columns]\ncustomer_id = "C"\norder_ts = "T"\nquantity = "Q"\nunit_price = "P"\n'
    )
    assert load_settings(tmp_path / "run.toml").orders.columns.amount is None
    assert ColumnMap.parse("quantity=Q,unit_price=P").amount is None
    assert ColumnMap.parse("amount=Total").amount == "Total"
    assert ColumnMap().amount == "amount"


def test_overrides_are_typed_and_flags_win(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text('[features]\nunit = "W"\n[validation]\nmax_bad_share = 0.2\n')
    settings = load_settings(
        tmp_path / "run.toml",
        ["validation.max_bad_share=0.01", "features.as_of=2024-02-29"],
        {"features.unit": "D"},
    )
    assert settings.validation.max_bad_share == 0.01
    assert str(settings.features.as_of) == "2024-02-29"
    assert settings.features.unit == "D"


def test_config_errors_are_one_line() -> None:
    with pytest.raises(ClvInputError, match=r"config error at 'features.unit'"):
        load_settings(None, ["features.unit=M"])
    with pytest.raises(ClvInputError, match=r"holdout_end 2024-01-01 must be after as_of 2024-02-01"):
        load_settings(None, ["features.as_of=2024-02-01", "features.holdout_end=2024-01-01"])
    with pytest.raises(ClvInputError, match=r"config error at 'orders.colums'"):
        load_settings(None, ["orders.colums.customer_id=x"])


def test_valuation_settings_are_checked() -> None:
    settings = load_settings(None, ["valuation.horizon=52W", "valuation.margin=0.3"])
    assert settings.valuation.horizon == "52W" and settings.valuation.margin == 0.3
    with pytest.raises(ClvInputError, match="config error at 'valuation.horizon'"):
        load_settings(None, ["valuation.horizon=12"])
    with pytest.raises(ClvInputError, match="config error at 'valuation.margin'"):
        load_settings(None, ["valuation.margin=0"])


def test_churn_settings_are_checked() -> None:
    settings = load_settings(None, ["churn.window_days=60", "churn.calibration=isotonic", "churn.boost_from=none"])
    assert settings.churn.window_days == 60 and settings.churn.calibration == "isotonic"
    assert settings.churn.boost_from == "none"
    with pytest.raises(ClvInputError, match="config error at 'churn.calibration'"):
        load_settings(None, ["churn.calibration=platt"])
    with pytest.raises(ClvInputError, match="config error at 'churn.window_days'"):
        load_settings(None, ["churn.window_days=0"])
    with pytest.raises(ClvInputError, match="config error at 'churn.n_foldz'"):
        load_settings(None, ["churn.n_foldz=3"])


def test_decision_settings_are_checked() -> None:
    settings = load_settings(None, ["segments.k_min=2", "tiers.high_share=0.1", "churn_risk.high=0.7"])
    assert settings.segments.k_min == 2 and settings.tiers.high_share == 0.1 and settings.churn_risk.high == 0.7
    cases = {
        "segments.k_max=7": "config error at 'segments.k_max'",
        "segments.k_min=5": None,  # with k_max 6: fine
        "tiers.medium_share=0.8": "config error at 'tiers': .*high_share \\+ medium_share must be < 1",
        "tiers.high_threshold=100": "set both high_threshold and medium_threshold",
        "churn_risk.medium=0.7": "config error at 'churn_risk': .*medium 0.7 must be below high 0.6",
        "lifecycle.churned_max_p_alive=0.6": "churned_max_p_alive must be ≤ at_risk_max_p_alive",
        "labels.language=fr": "config error at 'labels.language'",
    }
    for override, message in cases.items():
        if message is None:
            load_settings(None, [override])
            continue
        with pytest.raises(ClvInputError, match=message):
            load_settings(None, [override])
    with pytest.raises(ClvInputError, match="config error at 'segments': .*k_min 6 must be ≤ k_max 5"):
        load_settings(None, ["segments.k_min=6", "segments.k_max=5"])
    with pytest.raises(ClvInputError, match="segment 'champions' is not one of"):
        load_settings(None, ['actions.rules=[{segment = "champions", action = "x"}]'])
