"""Time units and horizons: every model stores its unit, every horizon names its own.

Units are ``D`` (days) and ``W`` (weeks). A horizon is a string such as ``"90D"``, ``"52W"`` or
``"12M"``; a month is 30.4375 days (365.25 / 12), never 30.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clv_models.errors import ClvInputError

DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12}
MODEL_UNITS = ("D", "W")
_HORIZON = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([DWM])\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Horizon:
    """A length of time: ``value`` in ``unit`` (D, W or M)."""

    value: float
    unit: str

    @property
    def days(self) -> float:
        return self.value * DAYS_PER_UNIT[self.unit]

    def in_unit(self, model_unit: str) -> float:
        """This horizon expressed in a model's unit (D or W)."""
        check_model_unit(model_unit)
        return self.days / DAYS_PER_UNIT[model_unit]

    def __str__(self) -> str:
        return f"{self.value:g}{self.unit}"


def parse_horizon(horizon: str | Horizon) -> Horizon:
    """Parse ``"90D"``, ``"52W"``, ``"12M"`` (case-insensitive) into a :class:`Horizon`."""
    if isinstance(horizon, Horizon):
        return horizon
    match = _HORIZON.match(str(horizon))
    if not match:
        raise ClvInputError(
            f"horizon {horizon!r} is not a number with a unit; use e.g. '90D', '52W' or '12M' (month = 30.4375 days)"
        )
    value, unit = float(match.group(1)), match.group(2).upper()
    if value <= 0:
        raise ClvInputError(f"horizon {horizon!r} must be positive")
    return Horizon(value, unit)


def check_model_unit(unit: str) -> str:
    if unit not in MODEL_UNITS:
        raise ClvInputError(f"time unit {unit!r} is not supported; use D (days) or W (weeks)")
    return unit
