"""The maximum-likelihood fit the repeat-purchase models share (BG/NBD, MBG/NBD, Pareto/NBD): on
the distinct (frequency, recency, T) rows with counts as weights, a penalty measured in units of
max(T) as lifetimes does, a warm-up on a fixed-seed subsample of large data (decisions D12), the
observed information for standard errors, and the identification check of ``_store_fit``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from clv_models.errors import ClvInputError
from clv_models.models._mle import PenalizedObjective, compress, maximise, warm_up_sample
from clv_models.models._validation import rfm_arrays, training_unit


def fit_repeat_purchases(
    model: Any,
    rfm: pd.DataFrame,
    sample_weight: np.ndarray | None,
    *,
    data_type: Any,
    derivatives: Callable[..., Any],
    penalty_scale: Callable[[float], np.ndarray],
    start: Callable[[Any, np.ndarray], np.ndarray],
) -> None:
    """Fit ``model`` (its ``penalizer`` and ``unit``) on ``rfm`` and store the fitted attributes.

    ``data_type.build(x, t_x, T, weights)`` makes the model's data object; ``derivatives`` is its
    log-likelihood with derivatives (``PenalizedObjective``); ``penalty_scale(1 / max T)`` the
    per-parameter scale of the L2 penalty; ``start(data, weights)`` the log-parameter start."""
    if model.penalizer < 0:
        raise ClvInputError(f"penalizer must be ≥ 0, got {model.penalizer}")
    x, t_x, T = rfm_arrays(rfm, ("frequency", "recency", "T"))
    weights_in = np.ones_like(x) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    distinct, counts, codes = compress({"x": x, "t_x": t_x, "T": T})
    weights = np.bincount(codes, weights=weights_in, minlength=len(counts))
    data = data_type.build(distinct["x"], distinct["t_x"], distinct["T"], weights)
    # lifetimes measures time parameters in units of max(T) inside its penalty; so do we (unit-free).
    scale = penalty_scale(1.0 / data.T.max() if data.T.max() > 0 else 1.0)
    total_weight = weights.sum()

    def objective_on(part: Any) -> PenalizedObjective:
        return PenalizedObjective(derivatives, part, model.penalizer, scale)

    sample = warm_up_sample(weights)
    warm_up = None
    if sample is not None:
        keep = sample > 0
        warm_up = objective_on(data_type.build(data.x[keep], data.t_x[keep], data.T[keep], sample[keep]))
    objective = objective_on(data)
    result = maximise(objective, start(data, weights), warm_up=warm_up)
    params = np.exp(result.log_params)
    log_likelihood, _, hessian = objective.natural(params)
    # Observed information of the total penalised negative log-likelihood (natural parameters).
    total_hessian = -hessian + total_weight * objective.penalty_hessian()
    model._store_fit(result, log_likelihood, total_hessian, training_unit(rfm, model.unit), total_weight)
    model.n_distinct_ = len(counts)
