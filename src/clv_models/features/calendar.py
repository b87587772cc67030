"""Calendar features of a churn cutoff: where in the year the outcome window starts.

A shop with a strong season churns at a rate that moves with the cutoff's time of year (a
customer silent in October is not lost; the same silence in January is). The snapshot features
describe the customer only, so a classifier trained on them cannot learn that rate; these two
columns let it, once its training cutoffs cover every season (docs/decisions.md D46).

``cutoff_doy_sin`` and ``cutoff_doy_cos`` place the cutoff's day of the year on the unit circle
(a year = 365.25 days, so 31 December and 1 January are neighbours). They are a function of the
cutoff alone: training reads it from the snapshot's ``cutoff`` column, scoring from ``as_of``,
through :func:`add_calendar_features` in both places, so both engines get the same numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

CALENDAR_FEATURES = ("cutoff_doy_sin", "cutoff_doy_cos")
YEAR_DAYS = 365.25


def day_of_year_angle(dates: Iterable[dt.date | str]) -> np.ndarray:
    """2π · (day of the year − 1) / 365.25 per date (radians); strings are ISO dates."""
    days = [
        (dt.date.fromisoformat(d) if isinstance(d, str) else d).timetuple().tm_yday for d in dates
    ]
    return 2.0 * np.pi * (np.asarray(days, dtype=float) - 1.0) / YEAR_DAYS


def add_calendar_features(frame: pd.DataFrame, date_column: str) -> pd.DataFrame:
    """``frame`` with :data:`CALENDAR_FEATURES` computed from ``date_column`` (dates or ISO
    strings; a cutoff repeats over many rows, so each distinct value is converted once). The
    frame is modified in place and returned."""
    import pandas as pd

    values = frame[date_column]
    codes, distinct = pd.factorize(values.astype(object), sort=False)
    angle = day_of_year_angle(distinct)[codes] if len(distinct) else np.empty(0)
    frame[CALENDAR_FEATURES[0]] = np.sin(angle)
    frame[CALENDAR_FEATURES[1]] = np.cos(angle)
    return frame


__all__ = ["CALENDAR_FEATURES", "add_calendar_features", "day_of_year_angle"]
