"""Cross-sell in ``clv train`` (decisions D43): judged out of time, then fitted at the cutoff.

When ingestion kept the products of the orders (``product_id`` mapped), :func:`train_cross_sell`

1. fits ``xsell.method`` and the popularity baseline on who bought what before
   ``cutoff + 1 day − xsell.holdout_days`` and judges both on the products customers bought for the
   first time from then to the end of the cutoff day (:mod:`clv_models.evaluation.cross_sell`;
   fixed metric names ``xsell_…``);
2. fits the model shipped in the scorer on every order up to the cutoff.

Without products it returns None and training is as before.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clv_models.config import Settings
    from clv_models.data.ingest import IngestResult
    from clv_models.models.affinity import ProductAffinity


@dataclass
class CrossSellResult:
    model: ProductAffinity
    metrics: dict[str, float]
    summary: str  # one line: the model's hit rate beside popularity's, and whether it beats it
    notes: list[str] = field(default_factory=list)


def train_cross_sell(
    ingested: IngestResult, settings: Settings, cutoff: dt.date, run: Any = None
) -> CrossSellResult | None:
    """Evaluate and fit the cross-sell model (module docstring); ``run``: where to log params."""
    from clv_models.data.order_products import customer_products, has_order_products
    from clv_models.evaluation.cross_sell import evaluate_cross_sell, metric_names
    from clv_models.models.affinity import ProductAffinity

    if not has_order_products(ingested.con):
        return None
    xsell = settings.xsell
    end = dt.datetime.combine(cutoff + dt.timedelta(days=1), dt.time())  # the cutoff day is included
    start = end - dt.timedelta(days=xsell.holdout_days)
    params = {"neighbours": xsell.neighbours, "exclude": xsell.exclude_products}
    before = customer_products(ingested.con, end=start)
    after = customer_products(ingested.con, start=start, end=end)
    notes: list[str] = []
    if before.empty:
        metrics: dict[str, float] = {**dict.fromkeys(metric_names(), float("nan")), "xsell_eval_customers": 0.0}
        summary = f"cross-sell: no order before {start.date()} (cutoff − xsell.holdout_days); not judged out of time"
        notes.append(summary)
    else:
        evaluation = evaluate_cross_sell(before, after, method=xsell.method, k=xsell.k, **params)
        metrics, summary = evaluation.metrics, evaluation.summary()
        if metrics["xsell_eval_customers"] > 0 and not evaluation.beats_popularity():
            notes.append(summary)
    model = ProductAffinity(xsell.method, **params).fit(customer_products(ingested.con, end=end))
    if run is not None:
        run.log_params(
            {"xsell": {**xsell.model_dump(mode="json"), "eval_start": start.date().isoformat(),
                       "products": len(model.products_)}}  # fmt: skip
        )
    return CrossSellResult(model=model, metrics=metrics, summary=summary, notes=notes)
