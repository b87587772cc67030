"""Check the Gamma-Gamma assumption that spend per order is independent of purchase frequency.

Fader, Hardie & Lee (2005b, JMR 42(4), section "Spend") and Fader & Hardie (2013, note 025) fit
the spend model only after checking that frequency and average spend are (nearly) uncorrelated
among repeat buyers (they report r = 0.11 on CDNOW). A strong correlation means CLV = E[purchases]
× E[spend] misstates value, because the two factors are not independent.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from clv_models.models._validation import rfm_arrays

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_THRESHOLD = 0.3


class IndependenceWarning(UserWarning):
    """Frequency and spend per order are correlated: the Gamma-Gamma model's assumption fails."""


def frequency_monetary_correlation(rfm: pd.DataFrame, *, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Pearson correlation of ``frequency`` and ``monetary_value`` among the customers the
    Gamma-Gamma model is fitted on (frequency > 0 and monetary_value > 0).

    Emits :class:`IndependenceWarning` when |correlation| > ``threshold``. Returns NaN (and does
    not warn) when fewer than 3 such customers exist or either column is constant among them.
    """
    x, m = rfm_arrays(rfm, ("frequency", "monetary_value"))
    repeat = (x > 0) & (m > 0)
    if repeat.sum() < 3:
        return float("nan")
    x, m = x[repeat] - x[repeat].mean(), m[repeat] - m[repeat].mean()
    norm = np.sqrt((x @ x) * (m @ m))
    if norm == 0:
        return float("nan")
    correlation = float(x @ m / norm)
    if abs(correlation) > threshold:
        warnings.warn(
            f"frequency and monetary_value correlate (Pearson r = {correlation:.3f} over {int(repeat.sum()):,} "
            f"repeat buyers, |r| > {threshold}): Gamma-Gamma assumes they are independent",
            IndependenceWarning,
            stacklevel=2,
        )
    return correlation
