"""Input checks shared by the estimators: required columns, sane values, and the time unit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from clv_models.errors import ClvInputError
from clv_models.timeunits import check_model_unit

if TYPE_CHECKING:
    import pandas as pd


def rfm_arrays(
    rfm: pd.DataFrame, columns: tuple[str, ...], expected_unit: str | None = None
) -> tuple[np.ndarray, ...]:
    """The named columns as float64 arrays, after checking they exist and make sense.

    When ``expected_unit`` is given and the table declares a unit (``attrs["unit"]``, set by
    :func:`clv_models.features.rfm_summary`), the two must agree: a weekly model never scores
    daily features.
    """
    missing = [c for c in columns if c not in rfm.columns]
    if missing:
        raise ClvInputError(
            f"RFM table lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, rfm.columns))}"
        )
    declared = getattr(rfm, "attrs", {}).get("unit")
    if expected_unit is not None and declared is not None and declared != expected_unit:
        raise ClvInputError(
            f"the model was trained in unit {expected_unit!r} but the RFM table is in {declared!r}; "
            f"recompute features with unit={expected_unit!r}"
        )
    arrays = tuple(rfm[c].to_numpy(dtype=float) for c in columns)
    for name, values in zip(columns, arrays, strict=True):
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            raise ClvInputError(
                f"RFM column {name!r} has {int(bad.sum()):,} negative or non-finite value(s); "
                "features must come from clv_models.features"
            )
    if {"recency", "T"} <= set(columns):
        t_x, T = arrays[columns.index("recency")], arrays[columns.index("T")]
        late = t_x > T + 1e-9
        if late.any():
            raise ClvInputError(f"{int(late.sum()):,} customer(s) have recency > T; recompute the features")
    return arrays


def training_unit(rfm: pd.DataFrame, unit: str | None) -> str:
    """The unit a model is trained in: explicit, else the RFM table's ``attrs['unit']``."""
    declared = getattr(rfm, "attrs", {}).get("unit")
    if unit is not None and declared is not None and unit != declared:
        raise ClvInputError(f"unit={unit!r} was given but the RFM table is in {declared!r}")
    chosen = unit or declared
    if chosen is None:
        raise ClvInputError(
            "the RFM table does not say its time unit: pass unit='D' or 'W' to the model, "
            "or build the table with clv_models.features.rfm_summary"
        )
    return check_model_unit(chosen)
