"""Which purchase model: BG/NBD, MBG/NBD or Pareto/NBD, chosen out of time, never one the data do
not identify without saying so (decisions D31).

Every candidate (``[ltv] model = "auto"``: all three; otherwise the one named) is fitted on the
calibration period of the LTV evaluation split and judged on its holdout by the root mean squared
error of each customer's predicted against actual holdout purchases (conditional E[Y(t)], in
purchases per customer). A fit the data do not identify (a parameter at the edge of its space or
a singular Hessian, :func:`clv_models.models._mle.check_identified`) is a candidate only after the
remedy: the penalizers of :data:`PENALTY_LADDER` are tried and each identified one competes on the
same holdout, so the penalty is chosen out of time too. The winner has the lowest holdout RMSE
among identified fits; when no fit is identified the lowest RMSE is taken and the choice says so
(``identified`` False), for the command line and the run to show.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

PURCHASE_MODELS = ("bgnbd", "mbgnbd", "pnbd")
# Holdout RMSEs within this share of the best are a tie; ties go to the model that lets a customer
# without a repeat purchase be dead (MBG/NBD, then Pareto/NBD), BG/NBD last: its P(alive) = 1 for
# every one-time buyer is a property of the model, not something the data said (decisions D31).
RMSE_TIE = 0.001
TIE_PREFERENCE = ("mbgnbd", "pnbd", "bgnbd")
PENALTY_LADDER = (0.001, 0.01, 0.1)  # tried, in order, when a fit is not identified
CRITERION = "holdout_purchases_rmse"


def purchase_model_class(name: str) -> type:
    """The estimator class of a purchase model name (:data:`PURCHASE_MODELS`)."""
    from clv_models.models.bgnbd import BetaGeoModel
    from clv_models.models.mbgnbd import ModifiedBetaGeoModel
    from clv_models.models.pnbd import ParetoNBDModel

    classes: dict[str, type] = {"bgnbd": BetaGeoModel, "mbgnbd": ModifiedBetaGeoModel, "pnbd": ParetoNBDModel}
    if name not in classes:
        raise ClvInputError(f"ltv.model {name!r}: choose auto or one of {', '.join(classes)}")
    return classes[name]


def purchase_model_name(model: Any) -> str:
    """The name (:data:`PURCHASE_MODELS`) of a fitted purchase model."""
    for name in PURCHASE_MODELS:
        if type(model) is purchase_model_class(name):
            return name
    raise ValueError(f"not a purchase model: {type(model).__name__}")


@dataclass
class CandidateFit:
    """One fit judged on the holdout. ``rmse``/``mae`` in purchases per customer; ``aggregate_error``
    is (predicted − actual) / actual over all customers."""

    model: str
    penalizer: float
    identified: bool
    diagnostic: str
    rmse: float
    mae: float
    aggregate_error: float
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class PurchaseModelChoice:
    """The chosen model and penalizer, every candidate, and what the user must be told."""

    model: str
    penalizer: float
    identified: bool
    candidates: list[CandidateFit]
    notes: list[str]

    @property
    def reason(self) -> str:
        chosen = self.chosen
        plain = [c for c in self.candidates if c is not chosen and (c.penalizer == self.candidates[0].penalizer)]
        others = ", ".join(
            f"{c.model} {c.rmse:.4f}{'' if c.identified else ' (not identified)'}" for c in plain if c.model != chosen.model
        )
        return (
            f"purchase model {self.model} (penalizer {self.penalizer:g}{'' if chosen.identified else ', not identified'}): "
            f"holdout purchases RMSE {chosen.rmse:.4f}" + (f" against {others}" if others else "")
        )

    @property
    def chosen(self) -> CandidateFit:
        return next(c for c in self.candidates if c.model == self.model and c.penalizer == self.penalizer)

    def table(self) -> pd.DataFrame:
        import pandas as pd

        rows = [
            {
                "model": c.model,
                "penalizer": c.penalizer,
                "identified": c.identified,
                "holdout_purchases_rmse": c.rmse,
                "holdout_purchases_mae": c.mae,
                "holdout_purchases_aggregate_error": c.aggregate_error,
                "chosen": c is self.chosen,
                "diagnostic": c.diagnostic,
            }
            for c in self.candidates
        ]
        return pd.DataFrame(rows)

    def markdown(self) -> str:
        lines = [
            "| model | penalizer | identified | holdout RMSE | holdout MAE | aggregate error | chosen |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in self.candidates:
            lines.append(
                f"| {c.model} | {c.penalizer:g} | {'yes' if c.identified else 'no'} | {c.rmse:.4f} | {c.mae:.4f} "
                f"| {c.aggregate_error:+.4f} | {'**yes**' if c is self.chosen else ''} |"
            )
        return "\n".join(lines)


def fit_purchase_model(name: str, rfm: pd.DataFrame, penalizer: float) -> Any:
    """Fit one purchase model; its convergence warnings are kept on the model (``diagnostic_``)."""
    from clv_models.models import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return purchase_model_class(name)(penalizer=penalizer).fit(rfm)


def _judge(name: str, penalizer: float, split: pd.DataFrame) -> CandidateFit:
    import numpy as np

    from clv_models.evaluation.holdout import holdout_purchase_predictions
    from clv_models.evaluation.metrics import aggregate_error, mean_absolute_error, root_mean_squared_error

    model = fit_purchase_model(name, split, penalizer)
    predicted = holdout_purchase_predictions(model, split)
    actual = split["frequency_holdout"].to_numpy(dtype=float)
    finite = bool(np.all(np.isfinite(predicted)))
    nan = float("nan")
    return CandidateFit(
        model=name,
        penalizer=penalizer,
        identified=bool(model.converged_) and finite,
        diagnostic=str(model.diagnostic_) if finite else f"{model.diagnostic_}; non-finite predictions",
        rmse=root_mean_squared_error(predicted, actual) if finite else nan,
        mae=mean_absolute_error(predicted, actual) if finite else nan,
        aggregate_error=aggregate_error(predicted, actual) if finite else nan,
        params=dict(model.params_),
    )


def choose_purchase_model(split: pd.DataFrame, setting: str, penalizer: float) -> PurchaseModelChoice:
    """Fit the candidates on ``split``'s calibration columns and choose on its holdout (module
    docstring). ``setting``: ``"auto"`` or a name of :data:`PURCHASE_MODELS`."""
    names = PURCHASE_MODELS if setting == "auto" else (setting,)
    for name in names:
        purchase_model_class(name)  # an unknown name is one line before any fit
    candidates: list[CandidateFit] = []
    for name in names:
        first = _judge(name, penalizer, split)
        candidates.append(first)
        if not first.identified:
            candidates.extend(_judge(name, p, split) for p in PENALTY_LADDER if p > penalizer)
    usable = [c for c in candidates if c.identified and math.isfinite(c.rmse)]
    # Nothing identified: a penalty did not help either (it shrinks towards 0, another edge), so
    # the plain maximum-likelihood fits compete.
    pool = usable or [c for c in candidates if math.isfinite(c.rmse) and c.penalizer == penalizer] or candidates
    best_rmse = min((c.rmse for c in pool if math.isfinite(c.rmse)), default=math.inf)
    tied = [c for c in pool if math.isfinite(c.rmse) and c.rmse <= best_rmse * (1 + RMSE_TIE)] or pool
    best = min(tied, key=lambda c: (TIE_PREFERENCE.index(c.model), c.penalizer))
    notes = [_summary(candidates, names)] if any(not c.identified for c in candidates if c.penalizer == penalizer) else []
    if not usable:
        notes.append(f"no purchase model is identified by these data: {best.model} (plain maximum likelihood) is used "
                     "as the least bad for expected purchases and CLV; its P(alive) is not reported (decisions D45)")
    elif best.penalizer != penalizer:
        notes.append(f"{best.model} with penalizer {best.penalizer:g}, chosen on the holdout, is used")
    return PurchaseModelChoice(
        model=best.model, penalizer=best.penalizer, identified=best.identified, candidates=candidates, notes=notes
    )


def _summary(candidates: list[CandidateFit], names: tuple[str, ...]) -> str:
    """One sentence on the fits the data do not identify and what the penalties did."""
    parts = []
    for name in names:
        plain = next(c for c in candidates if c.model == name)
        if plain.identified:
            continue
        remedied = [c for c in candidates if c.model == name and c.identified]
        after = f"identified with penalizer {remedied[0].penalizer:g}" if remedied else "not with a penalty either"
        parts.append(f"{name} ({_problem(plain.diagnostic)}; {after})")
    return "not identified by these data: " + "; ".join(parts)


def _problem(diagnostic: str) -> str:
    _, _, problem = diagnostic.partition("not identified: ")
    return problem or diagnostic
