"""In-sample fit of the BG/NBD: the distribution of repeat purchases and its unconditional mean.

Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way", Marketing Science 24(2).
Equation numbers refer to that paper. Times are in the model's unit (``model.unit_``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.special import betaln
from scipy.stats import nbinom
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError
from clv_models.models._validation import rfm_arrays

if TYPE_CHECKING:
    from clv_models.models import BetaGeoModel


def _params(model: BetaGeoModel) -> tuple[float, float, float, float]:
    check_is_fitted(model, "params_")
    params = model.params_
    return params["r"], params["alpha"], params["a"], params["b"]


def probability_of_purchases(model: BetaGeoModel, t: np.ndarray | float, x: np.ndarray | int) -> np.ndarray:
    """P(X(t) = x): probability of exactly ``x`` repeat purchases in (0, t] after the first
    purchase, for a randomly chosen customer (FHL 2005, eq. 8). Broadcasts ``t`` against ``x``.

    P = B(a, b+x)/B(a, b) · NB(x; r, α/(α+t))
        + δ(x>0) · B(a+1, b+x−1)/B(a, b) · [1 − Σ_{j<x} NB(j; r, α/(α+t))],

    with NB the negative binomial pmf Γ(r+j)/(Γ(r) j!) (α/(α+t))^r (t/(α+t))^j. The bracket is the
    NB survival function, taken from scipy in log-gamma form: the paper's finite sum of gamma
    functions overflows beyond x ≈ 170.
    """
    own = getattr(model, "probability_of_purchases", None)
    if own is not None:  # MBG/NBD and Pareto/NBD give their own P(X(t) = x)
        t, x = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(x, dtype=float))
        if (t < 0).any() or (x < 0).any() or (x != np.floor(x)).any():
            raise ClvInputError("P(X(t) = x) needs t ≥ 0 and whole numbers x ≥ 0")
        return np.asarray(own(t, x), dtype=float)
    r, alpha, a, b = _params(model)
    t, x = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(x, dtype=float))
    if (t < 0).any() or (x < 0).any() or (x != np.floor(x)).any():
        raise ClvInputError("P(X(t) = x) needs t ≥ 0 and whole numbers x ≥ 0")
    p = alpha / (alpha + t)
    still_active = np.exp(betaln(a, b + x) - betaln(a, b) + nbinom.logpmf(x, r, p))
    # Dropped out right after the x-th purchase: needs at least x purchases while active.
    dropped = np.where(
        x > 0,
        np.exp(betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b)) * nbinom.sf(x - 1, r, p),
        0.0,
    )
    return still_active + dropped


def expected_repeat_purchases(model: BetaGeoModel, t: np.ndarray | float) -> np.ndarray:
    """E[X(t)] for a customer just acquired, at each of ``t`` (model units), vectorised (FHL 2005,
    eq. 9); see :meth:`BetaGeoModel.unconditional_expected_purchases`."""
    check_is_fitted(model, "params_")
    return model.unconditional_expected_purchases(t)


def _bin_labels(max_frequency: int) -> list[str]:
    return [str(k) for k in range(max_frequency)] + [f"{max_frequency}+"]


def frequency_bins(frequency: np.ndarray, max_frequency: int) -> tuple[np.ndarray, list[str]]:
    """Bin index 0..max_frequency of each frequency (the last bin is "max_frequency+") and labels."""
    if int(max_frequency) != max_frequency or max_frequency < 1:
        raise ClvInputError(f"max_frequency must be a whole number ≥ 1, got {max_frequency}")
    max_frequency = int(max_frequency)
    bins = np.minimum(np.floor(np.asarray(frequency, dtype=float)), max_frequency).astype(int)
    return bins, _bin_labels(max_frequency)


def repeat_purchase_histogram(model: BetaGeoModel, rfm: pd.DataFrame, *, max_frequency: int = 7) -> pd.DataFrame:
    """Actual vs expected number of customers by repeat purchases in the calibration period
    (FHL 2005, Figure 2), bins 0, 1, …, max_frequency−1 and "max_frequency+".

    Expected count of bin x = Σᵢ P(X(Tᵢ) = x) over customers, each at their own age Tᵢ (eq. 8);
    the last bin takes the remaining probability. Computed once per distinct T. Columns:
    ``repeat_purchases`` (label), ``actual``, ``expected`` (customers).
    """
    x, T = rfm_arrays(rfm, ("frequency", "T"), expected_unit=getattr(model, "unit_", None))
    bins, labels = frequency_bins(x, max_frequency)
    ages, counts = np.unique(T, return_counts=True)
    below = probability_of_purchases(model, ages[:, None], np.arange(len(labels) - 1)[None, :])
    per_T = np.column_stack([below, np.clip(1.0 - below.sum(axis=1), 0.0, None)])
    return pd.DataFrame(
        {
            "repeat_purchases": labels,
            "actual": np.bincount(bins, minlength=len(labels)).astype(float),
            "expected": counts @ per_T,
        }
    )
