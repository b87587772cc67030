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
