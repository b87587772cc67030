"""Population stability index (PSI) of a feature or score between training and scoring.

    PSI = Σ_b (a_b − e_b) · ln(a_b / e_b)

over bins b cut at the training distribution's deciles, e_b and a_b the training ("expected")
and scoring ("actual") shares of rows per bin, each floored at 1e-4 so an empty bin contributes a
large but finite term (Yurdakul 2018, "Statistical properties of the population stability
index"). Rules of thumb: < 0.1 stable, 0.1–0.2 a moderate shift, > 0.2 a significant shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SHARE_FLOOR = 1e-4


@dataclass(frozen=True)
class DriftReference:
    """Bin edges (inner cut points) and training shares of one column."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    missing_share: float

    @classmethod
    def fit(cls, values: Any, bins: int = 10) -> DriftReference:
        data = np.asarray(values, dtype=float)
        finite = data[np.isfinite(data)]
        missing = 1.0 - len(finite) / max(1, len(data))
        if len(finite) == 0:
            return cls(edges=(), shares=(1.0,), missing_share=missing)
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
        return cls(
            edges=tuple(map(float, edges)), shares=tuple(map(float, counts / len(finite))), missing_share=missing
        )

    def actual_shares(self, values: Any) -> np.ndarray:
        data = np.asarray(values, dtype=float)
        finite = data[np.isfinite(data)]
        if len(finite) == 0:
            return np.zeros(len(self.shares))
        counts = np.bincount(np.searchsorted(np.asarray(self.edges), finite, side="right"), minlength=len(self.shares))
        return counts / len(finite)


def population_stability_index(reference: DriftReference, values: Any) -> float:
    """PSI of ``values`` against ``reference`` (see the module docstring); NaN without data."""
    actual = reference.actual_shares(values)
    if actual.sum() == 0:
        return float("nan")
    expected = np.maximum(np.asarray(reference.shares), SHARE_FLOOR)
    actual = np.maximum(actual, SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def population_stability_from_counts(reference: DriftReference, counts: Any) -> float:
    """PSI from per-bin counts accumulated over chunks (same bins as ``reference``)."""
    counts = np.asarray(counts, dtype=float)
    if counts.sum() == 0:
        return float("nan")
    expected = np.maximum(np.asarray(reference.shares), SHARE_FLOOR)
    actual = np.maximum(counts / counts.sum(), SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def bin_counts(reference: DriftReference, values: Any) -> np.ndarray:
    """Rows of ``values`` per bin of ``reference`` (non-finite values are not counted)."""
    data = np.asarray(values, dtype=float)
    finite = data[np.isfinite(data)]
    return np.bincount(
        np.searchsorted(np.asarray(reference.edges), finite, side="right"), minlength=len(reference.shares)
    )
