"""Horizons carry their unit; a month is 30.4375 days."""

import pytest

from clv_models.errors import ClvInputError
from clv_models.timeunits import Horizon, parse_horizon


@pytest.mark.parametrize(
    "text, days", [("90D", 90.0), ("52W", 364.0), ("12M", 365.25), ("1.5m", 45.65625), (" 7 d ", 7.0)]
)
def test_parse(text: str, days: float) -> None:
    assert parse_horizon(text).days == pytest.approx(days)


def test_in_unit() -> None:
    assert parse_horizon("12M").in_unit("W") == pytest.approx(365.25 / 7)
    assert Horizon(3, "W").in_unit("D") == 21


@pytest.mark.parametrize("bad", ["12", "M12", "-3D", "0W", "3Y", ""])
def test_rejects(bad: str) -> None:
    with pytest.raises(ClvInputError):
        parse_horizon(bad)
