"""``clv train``'s value step: what the value tiers are cut from (decisions D40, D42).

``[value] ranker = "auto"`` (default): :func:`clv_models.training.value.train_value` builds the
value snapshots, trains the value model, judges it beside past spend (total and recent) and BTYD
CLV on the same out-of-time customers and chooses, by ``choose_ranker``'s rule, the ranker the
tiers use (never worse than past spend on normalised Gini or Spearman). The chosen
:class:`~clv_models.models.value.ValueRanker` is stored in the scorer
(``CustomerModels.value_ranker``): scoring computes ``value_forecast`` (its revenue over the value
window W, currency) row by row from the feature table and the stored fits, and the tiers are cut
from it with cut points fitted on the training base.

``ranker = "btyd_clv"``: no value model is trained and nothing is evaluated; ``value_forecast`` is
``clv_h`` (the 12-month discounted BTYD CLV of ``[valuation]``) and the tiers are those of
before D42, cut point for cut point.

When the history is too short for value snapshots (or their windows hold no revenue), ``auto``
falls back to ``clv_h`` with a notice: the training goes on as with ``btyd_clv``.

Names: the basis is ``model``, ``btyd_clv``, ``past_spend_recent``, ``past_spend_total`` (the
rankers of D40; ``btyd_clv`` there is E[X(W)] × E[order value] of the daily BG/NBD, over W) or
``clv_h``. It is the parent run's tag ``value_tier_basis``, the scorer's
``metadata["value_tier_basis"]`` and the ``value_tier_basis`` line of the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import Settings
    from clv_models.data.ingest import IngestResult
    from clv_models.models.value import ValueRanker
    from clv_models.scorer import CustomerModels
    from clv_models.training.value import ValueTrainResult

LEGACY_BASIS = "clv_h"
FREQUENCY_ONLY_REASON = "discounted expected purchases over the valuation horizon (frequency-only: no amounts, D41)"
LEGACY_REASON = "the BTYD CLV over the valuation horizon (value.ranker = \"btyd_clv\")"
FALLBACK_REASON = "the BTYD CLV over the valuation horizon (the value model could not be used)"


@dataclass
class ValueStep:
    """What the value step decided: the ranker the scorer stores (None: ``clv_h``), its name, the
    evaluation behind it, the metrics for the parent run, what the user must read, and the wall
    time of the step (seconds)."""

    ranker: ValueRanker | None
    basis: str
    reason: str
    result: ValueTrainResult | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def choice(self) -> str:
        """One line for ``clv train``: what the value tiers rank by, and why."""
        if self.reason == FREQUENCY_ONLY_REASON:  # clv_h with one unit per order: null in the scores
            return f"value_tier: cut from {self.reason}; clv_h and value_forecast are null in the scores"
        return f"value_tier: cut from {self.basis}: {self.reason}"

    @property
    def tags(self) -> dict[str, str]:
        return {"value_tier_basis": self.basis, "value_tier_basis_reason": self.reason[:5000]}

    def markdown(self) -> str:
        """The report's value section (the rankers' table when they were compared)."""
        if self.result is None:
            return f"## Customer value\n\nValue tiers cut from `{self.basis}`: {self.reason}.\n"
        from clv_models.training.value import value_markdown

        text = value_markdown(self.result).replace("# Customer value", "## Customer value", 1)
        if self.ranker is None:  # compared, then set aside at the cutoff (value_table)
            return f"{text}\nValue tiers cut from `{self.basis}` instead: {self.reason}.\n"
        window = self.result.dataset.window_days
        return f"{text}\nScores column `value_forecast` = the {self.basis} ranker's value over {window} days.\n"


def per_study_callback(tracker: Any, run: Any) -> Callable[[Any, Any], None]:
    """An Optuna callback logging each trial of the value studies (``value_buy``, ``value_spend``,
    ``value_value``) as a child run of ``run`` named ``<study>-NNNN``: the studies' trial numbers
    restart at 0, so one prefix per study keeps the names unique."""
    callbacks: dict[str, Callable[[Any, Any], None]] = {}

    def log(study: Any, trial: Any) -> None:
        name = str(study.study_name)
        if name not in callbacks:
            callbacks[name] = tracker.optuna_callback(run, prefix=name)
        callbacks[name](study, trial)

    return log


def train_value_step(
    ingested: IngestResult,
    churn: Any,
    settings: Settings,
    *,
    run: Any = None,
    trial_callbacks: tuple[Callable[[Any, Any], None], ...] = (),
) -> ValueStep:
    """The value step of ``clv train`` (module docstring). ``churn``: the ``ChurnTrainResult``
    (its snapshots' window w is the BTYD churn features'); ``run``: the ``value`` child run."""
    from clv_models.training.value import train_value

    started = time.perf_counter()
    if settings.value.ranker == "btyd_clv":
        return ValueStep(ranker=None, basis=LEGACY_BASIS, reason=LEGACY_REASON)
    if settings.orders.frequency_only:  # no money to forecast: the tiers rank by expected purchases (D41)
        return ValueStep(ranker=None, basis=LEGACY_BASIS, reason=FREQUENCY_ONLY_REASON)
    try:
        result = train_value(
            ingested, churn.dataset, churn_settings=settings.churn, settings=settings.value, run=run,
            trial_callbacks=trial_callbacks,
        )  # fmt: skip
    except ClvInputError as exc:
        # Too short a history for three value windows, or no revenue in one: the tiers stay on clv_h.
        notice = f"no value model: {exc}; the value tiers are cut from clv_h as with value.ranker = \"btyd_clv\""
        return ValueStep(ranker=None, basis=LEGACY_BASIS, reason=FALLBACK_REASON,
                         notices=[notice], seconds=time.perf_counter() - started)  # fmt: skip
    seconds = time.perf_counter() - started
    metrics = {**result.metrics, "value_training_seconds": seconds}
    return ValueStep(
        ranker=result.ranker, basis=result.shipped, reason=result.choice.reason,
        result=result, metrics=metrics, seconds=seconds,
    )  # fmt: skip


def value_table(features: pd.DataFrame, models: CustomerModels, settings: Settings, step: ValueStep) -> pd.DataFrame:
    """:func:`clv_models.scorer.customer_values` of the training base with the step's ranker
    stored in ``models``. A ranker whose value is not finite for every customer (its BTYD fit at
    the cutoff failed) is replaced by ``clv_h``, and ``step`` says so."""
    from clv_models.scorer import customer_values

    models.value_ranker = step.ranker
    values = customer_values(features, models, settings)
    if step.ranker is not None and not np.isfinite(values["value_forecast"].to_numpy(dtype=float)).all():
        bad = int((~np.isfinite(values["value_forecast"].to_numpy(dtype=float))).sum())
        step.notices.append(
            f"the value ranker {step.basis} has no value for {bad:,} customers at the cutoff (its BTYD fit failed); "
            "the value tiers are cut from clv_h instead"
        )
        step.ranker, step.basis, step.reason = None, LEGACY_BASIS, FALLBACK_REASON
        models.value_ranker = None
        values = customer_values(features, models, settings)
    return values


__all__ = ["LEGACY_BASIS", "ValueStep", "per_study_callback", "train_value_step", "value_table"]
