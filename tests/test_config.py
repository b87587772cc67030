"""Settings: TOML, overrides and the column map."""

from __future__ import annotations

from pathlib import Path

import pytest

from clv_models.config import ColumnMap, load_settings, parse_date_flag
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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("churn.trials=5",
         "config error at 'churn.trials': unknown key 'trials' in [churn]; did you mean churn.n_trials?"),
        ("chrun.n_trials=5", "config error at 'chrun': unknown section 'chrun'; did you mean churn?"),
        ("features.n_trials=5",
         "config error at 'features.n_trials': unknown key 'n_trials' in [features]; did you mean churn.n_trials?"),
        ("orders.columns.custmer_id=C", "config error at 'orders.columns.custmer_id': unknown key 'custmer_id' in "
         "[orders.columns]; did you mean orders.columns.customer_id?"),
        ('actions.rules=[{segmnt = "core", action = "x"}]', "config error at 'actions.rules.0.segmnt': unknown key "
         "'segmnt' in [actions.rules.0]; did you mean actions.rules.0.segment?"),
        ("tiers.cutoff=3", "config error at 'tiers.cutoff': unknown key 'cutoff' in [tiers]; valid keys: high_share, "
         "medium_share, high_threshold, medium_threshold"),
    ],
)  # fmt: skip
def test_unknown_keys_name_the_closest_valid_key(override: str, message: str) -> None:
    with pytest.raises(ClvInputError) as caught:
        load_settings(None, [override])
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("features.as_of=03/31/2019",
         "'03/31/2019' is not a date in the form YYYY-MM-DD; did you mean 2019-03-31 (month/day/year)?"),
        ("features.as_of=31.03.2019",
         "'31.03.2019' is not a date in the form YYYY-MM-DD; did you mean 2019-03-31 (day.month.year)?"),
        ('features.as_of="31 Mar 2019"',
         "'31 Mar 2019' is not a date in the form YYYY-MM-DD; did you mean 2019-03-31 (day month year)?"),
        ("features.as_of=2019-3-31",
         "'2019-3-31' is not a date in the form YYYY-MM-DD; did you mean 2019-03-31 (year-month-day)?"),
        ("features.as_of=20190331",  # a TOML integer
         "'20190331' is not a date in the form YYYY-MM-DD; did you mean 2019-03-31 (YYYYMMDD)?"),
        ("features.as_of=03/04/2019", "'03/04/2019' is not a date in the form YYYY-MM-DD and reads 2 ways: "
         "2019-03-04 (month/day/year) or 2019-04-03 (day/month/year); write the one you mean"),
        ("features.as_of=2024-02-30",
         "'2024-02-30' is not a day of the calendar (day is out of range for month); "
         "write a real day, e.g. 2019-03-31"),
        ("features.as_of=2019-03-31T10:00:00",  # a TOML date-time
         "'2019-03-31T10:00:00' is a time, not a day (a date means the end of that day); write 2019-03-31"),
        ("features.as_of=yesterday", "'yesterday' is not a date; write it as YYYY-MM-DD, e.g. 2019-03-31"),
    ],
)  # fmt: skip
def test_bad_dates_say_the_format_and_the_iso_day(override: str, message: str) -> None:
    with pytest.raises(ClvInputError) as caught:
        load_settings(None, [override])
    assert str(caught.value) == f"config error at 'features.as_of': {message}"


def test_toml_mistakes_name_the_file_the_key_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text('[churn]\ntrials = 5\n')
    with pytest.raises(ClvInputError) as caught:
        load_settings(tmp_path / "run.toml")
    assert str(caught.value) == (
        f"{tmp_path / 'run.toml'}: config error at 'churn.trials': unknown key 'trials' in [churn]; "
        "did you mean churn.n_trials?"
    )
    (tmp_path / "run.toml").write_text('[features]\nholdout_end = "31/12/2019"\nunit = "M"\n')
    with pytest.raises(ClvInputError) as caught:
        load_settings(tmp_path / "run.toml")
    assert str(caught.value) == (
        f"{tmp_path / 'run.toml'}: config error at 'features.unit': Input should be 'D' or 'W' (1 of 2 errors)"
    )
    (tmp_path / "run.toml").write_text('[features]\nholdout_end = "31/12/2019"\n')
    with pytest.raises(ClvInputError, match=r"holdout_end': '31/12/2019' is not a date in the form YYYY-MM-DD; "
                       r"did you mean 2019-12-31 \(day/month/year\)\?$"):  # fmt: skip
        load_settings(tmp_path / "run.toml")


def test_date_flags_take_iso_days_only() -> None:
    assert str(parse_date_flag(" 2019-03-31", "--as-of")) == "2019-03-31"
    assert parse_date_flag(None, "--as-of") is None
    for value in ("1553990400", "20190331", "2019-W13-7"):  # a Unix time, ISO forms without dashes
        with pytest.raises(ClvInputError, match=f"^--as-of '{value}' is not a date"):
            parse_date_flag(value, "--as-of")
