"""Naming rules for customer segments: a cluster's name comes from its centroid.

Each cluster is described by five standardised coordinates (z-scores against the training
population): ``recency`` (log days since the last purchase; high = silent), ``frequency``
(log repeat purchases), ``monetary`` (log mean order value), ``clv`` (log predicted value) and
``tenure`` (log days since the first purchase). Each name has a profile of weights over these
coordinates, the vocabulary of customer tiering:

============  ========  =========  ========  =====  ======  ==========================================
name          recency   frequency  monetary  clv    tenure  reads as
============  ========  =========  ========  =====  ======  ==========================================
core          −1        +1         +0.5      +1      0      recent, frequent, high spend and value
potential     −0.5      +0.5       −1         0      0      buys often enough, spends little per order
new           −1        −0.5        0         0     −1.5    recent first purchases, short tenure
at_risk       +1        +1         +0.5      +0.5   +0.5    used to be good, silent lately
sleeping      +1        −0.5        0        −0.5    0      long silent, low frequency
lost          +1.5      −1         −0.5      −1     +0.5    longest silent, lowest value, old
============  ========  =========  ========  =====  ======  ==========================================

A cluster's score for a name is the dot product of its coordinates with the name's profile, but a
name is only *eligible* for a cluster whose centroid also passes an absolute test (z-scores alone
would call the most silent cluster ``lost`` even if it were silent for a month):

============  ===========================================================================
name          eligible when
============  ===========================================================================
core          days since last purchase ≤ 90 and ≥ 1 repeat purchase
potential     ≥ 1 repeat purchase ("frequent")
new           median tenure ≤ 365 days and days since last purchase ≤ 90
at_risk       ≥ 1 repeat purchase ("used to be good") and days since last purchase ≥ 30
sleeping      days since last purchase ≥ 90 ("a customer silent for six months is sleeping")
lost          days since last purchase ≥ 365
============  ===========================================================================

(days since last purchase and repeat purchases of the back-transformed centroid). An ineligible
pair's score is lowered by :data:`INELIGIBLE`, so it is used only when no eligible assignment
exists. Names are assigned one per cluster, maximising the total score (Hungarian method,
``scipy.optimize.linear_sum_assignment``): unique within a model, and a function of the centroids
only, so another seed that finds the same clusters gives the same names. Names already fixed
(inherited from a previous model) are kept and removed from the choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from clv_models.config import SEGMENT_NAMES

PROFILE_FEATURES = ("recency", "frequency", "monetary", "clv", "tenure")

PROFILES = pd.DataFrame(
    {
        "core": (-1.0, 1.0, 0.5, 1.0, 0.0),
        "potential": (-0.5, 0.5, -1.0, 0.0, 0.0),
        "new": (-1.0, -0.5, 0.0, 0.0, -1.5),
        "at_risk": (1.0, 1.0, 0.5, 0.5, 0.5),
        "sleeping": (1.0, -0.5, 0.0, -0.5, 0.0),
        "lost": (1.5, -1.0, -0.5, -1.0, 0.5),
    },
    index=list(PROFILE_FEATURES),
)[list(SEGMENT_NAMES)]


INELIGIBLE = -1000.0
# name -> (centroid column, "max" or "min", bound in days)
ELIGIBILITY: dict[str, tuple[tuple[str, str, float], ...]] = {
    "core": (("days_since_last", "max", 90.0), ("frequency", "min", 1.0)),
    "potential": (("frequency", "min", 1.0),),
    "new": (("T_days_median", "max", 365.0), ("days_since_last", "max", 90.0)),
    "at_risk": (("frequency", "min", 1.0), ("days_since_last", "min", 30.0)),
    "sleeping": (("days_since_last", "min", 90.0),),
    "lost": (("days_since_last", "min", 365.0),),
}


def name_scores(coordinates: np.ndarray, centroids: pd.DataFrame | None = None) -> pd.DataFrame:
    """Score of every cluster (rows) for every name (columns): coordinates · profile, and
    lowered by :data:`INELIGIBLE` where ``centroids`` (original units) fail the name's absolute tests."""
    scores = pd.DataFrame(np.asarray(coordinates) @ PROFILES.to_numpy(), columns=PROFILES.columns)
    if centroids is not None:
        for name, tests in ELIGIBILITY.items():
            eligible = np.ones(len(scores), dtype=bool)
            for column, kind, bound in tests:
                values = centroids[column].to_numpy(dtype=float)
                eligible &= values <= bound if kind == "max" else values >= bound
            scores.loc[~eligible, name] += INELIGIBLE
    return scores


def assign_names(
    coordinates: np.ndarray, fixed: Sequence[str | None], centroids: pd.DataFrame | None = None
) -> tuple[list[str], pd.DataFrame]:
    """One distinct name per cluster: ``fixed`` entries are kept, the rest maximise the total score."""
    scores = name_scores(coordinates, centroids)
    names = list(fixed)
    open_clusters = [i for i, name in enumerate(names) if name is None]
    open_names = [name for name in PROFILES.columns if name not in set(names)]
    if open_clusters:
        rows, cols = linear_sum_assignment(scores.iloc[open_clusters][open_names].to_numpy(), maximize=True)
        for row, col in zip(rows, cols, strict=True):
            names[open_clusters[row]] = open_names[col]
    return [str(name) for name in names], scores


def match_previous(centers: np.ndarray, previous_centers: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (our cluster, previous cluster) minimising the total Euclidean distance between
    centroids (both in our standardised space); with different k, the extra clusters stay unpaired."""
    distance = np.sqrt(((centers[:, None, :] - previous_centers[None, :, :]) ** 2).sum(axis=2))
    rows, cols = linear_sum_assignment(distance)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]
