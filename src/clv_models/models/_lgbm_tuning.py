"""The LightGBM + Optuna tuning pieces shared by the churn classifier
(:class:`~clv_models.models.churn.ChurnClassifier`) and the value model
(:class:`~clv_models.models.value.ValueRegressor`): fixed booster parameters, the searched space,
the customer-level tuning sample, the study, the per-fold pruning steps of a trial and the
summary of a finished study. Plain functions of their arguments; lightgbm is never imported here
and optuna only inside the functions that need it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clv_models.errors import ClvInputError


def base_params(objective: str, *, seed: int, threads: int) -> dict[str, Any]:
    """Returns a new dict of the LightGBM parameters every booster of a study and the final
    booster share: ``objective``, no logging, ``seed``, deterministic row-wise histograms on
    ``threads`` threads, no feature pre-filter (the searched ``min_child_samples`` may go below
    the one a Dataset was built with) and bagging at every iteration (so the searched
    ``bagging_fraction`` applies)."""
    return {
        "objective": objective,
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": threads,
        "feature_pre_filter": False,
        "bagging_freq": 1,
    }


def search_space(trial: Any) -> dict[str, Any]:
    """LightGBM parameters Optuna searches (log scales where the effect is multiplicative).

    Suggests them on the Optuna ``trial`` and returns them as a dict of LightGBM parameters (the
    Optuna parameter names), in the order they are suggested."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 256, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 12),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 300, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l1": trial.suggest_float("lambda_l1", 1e-8, 10.0, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-8, 10.0, log=True),
    }


def tuning_sample(n_rows: int, groups: np.ndarray | None, *, tuning_rows: int | None, seed: int) -> np.ndarray:
    """Returns the sorted row indices (into ``n_rows`` rows) the trials use: every row when
    ``tuning_rows`` is None or not below ``n_rows``; otherwise whole customers (``groups``), in an
    order drawn with ``seed``, until ``tuning_rows`` rows (at least one customer), or, without
    groups, ``tuning_rows`` rows drawn with ``seed``. Tuning cost grows with rows; the final
    booster sees every row."""
    if tuning_rows is None or n_rows <= tuning_rows:
        return np.arange(n_rows)
    rng = np.random.default_rng(seed)
    if groups is None:
        return np.sort(rng.choice(n_rows, size=tuning_rows, replace=False))
    codes, _ = pd.factorize(groups, sort=True)
    order = rng.permutation(codes.max() + 1)
    sizes = np.bincount(codes)[order]
    chosen = order[: max(1, int(np.searchsorted(np.cumsum(sizes), tuning_rows, side="right")))]
    return np.flatnonzero(np.isin(codes, chosen))


def create_study(direction: str, *, seed: int, study_name: str | None = None) -> Any:
    """Returns a new in-memory Optuna study toward ``direction`` ("minimize" or "maximize"):
    TPE sampler seeded with ``seed``, median pruner (after 5 trials, from the second fold on);
    ``study_name`` None lets Optuna name it."""
    import optuna

    return optuna.create_study(
        direction=direction,
        study_name=study_name,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )


def report_fold(trial: Any, scores: list[float], iterations: list[int], step: int) -> None:
    """Reports the mean of the fold ``scores`` so far as ``trial``'s value at ``step`` and returns
    None; when the pruner stops the trial, records ``iterations`` (the folds' early-stopping
    rounds) as user attribute ``best_iterations`` and raises ``optuna.TrialPruned``."""
    import optuna

    trial.report(float(np.mean(scores)), step)
    if trial.should_prune():
        trial.set_user_attr("best_iterations", iterations)
        raise optuna.TrialPruned()


def finish_trial(trial: Any, scores: list[float], iterations: list[int], **user_attrs: Any) -> float:
    """Records ``iterations`` (user attribute ``best_iterations``), ``scores`` (``fold_scores``)
    and then any further ``user_attrs`` on ``trial``; returns the mean fold score, the trial's
    value."""
    trial.set_user_attr("best_iterations", iterations)
    trial.set_user_attr("fold_scores", scores)
    for key, value in user_attrs.items():
        trial.set_user_attr(key, value)
    return float(np.mean(scores))


def best_trial(study: Any, message: str) -> Any:
    """Returns ``study.best_trial``; raises :class:`ClvInputError` with ``message`` when no trial
    of the study completed."""
    import optuna

    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise ClvInputError(message)
    return study.best_trial


def best_iteration(trial: Any) -> int:
    """Returns the boosting rounds for the final booster: the mean of ``trial``'s per-fold
    early-stopping rounds (user attribute ``best_iterations``), rounded, at least 1."""
    return max(1, int(round(float(np.mean(trial.user_attrs["best_iterations"])))))


def trials_frame(study: Any, **leading: Any) -> pd.DataFrame:
    """Returns one row per trial of ``study``, in trial order: the ``leading`` columns (the same
    value on every row, e.g. ``part="buy"``), then ``number``, ``state`` (its name, e.g.
    COMPLETE or PRUNED), ``value`` (None unless complete) and ``param_<name>`` per suggested
    parameter."""
    return pd.DataFrame(
        [
            {
                **leading,
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                **{f"param_{k}": v for k, v in t.params.items()},
            }
            for t in study.trials
        ]
    )
