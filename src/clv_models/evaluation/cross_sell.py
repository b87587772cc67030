"""Out-of-time evaluation of cross-sell recommendations (decisions D43).

Fit on who bought what before a cutoff; judge on what the same customers bought for the first
time in the window after it. The customers judged are those who bought before the cutoff *and*
bought at least one product in the window that they had not bought before (a customer with no
new product has nothing a recommendation could hit). For each, with R the top-k recommendations
(from their products before the cutoff only) and N their new products in the window:

* ``hit rate@k``: share of judged customers with R ∩ N non-empty;
* ``recall@k``: mean over judged customers of |R ∩ N| / |N|.

Every new product counts, also ones the model never saw or may not recommend (so the numbers are
not flattered by what the model cannot know). Fixed metric names (:func:`metric_names`):
``xsell_hit_rate_at_{k}``, ``xsell_recall_at_{k}`` for the model,
``xsell_popularity_hit_rate_at_{k}``, ``xsell_popularity_recall_at_{k}`` for the popularity
baseline, ``xsell_eval_customers`` and ``xsell_eval_products``, for k in :data:`EVAL_KS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

EVAL_KS = (5, 10)


def metric_names(ks: Sequence[int] = EVAL_KS) -> tuple[str, ...]:
    names = []
    for prefix in ("xsell", "xsell_popularity"):
        for k in ks:
            names += [f"{prefix}_hit_rate_at_{k}", f"{prefix}_recall_at_{k}"]
    return (*names, "xsell_eval_customers", "xsell_eval_products")


def _pairs(frame: pd.DataFrame) -> zip[tuple[str, str]]:
    """(customer_id, product_id) as Python strings (iterating Arrow-backed columns is slow)."""
    customers = frame["customer_id"].astype(str).to_numpy(dtype=object)
    return zip(customers, frame["product_id"].astype(str).to_numpy(dtype=object), strict=True)


def new_purchases(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, set[str]]:
    """``customer_id -> products bought after but never before``, for customers in both frames
    with at least one such product (frames of ``customer_id``, ``product_id``)."""
    seen: dict[str, set[str]] = {}
    for customer, product in _pairs(before):
        seen.setdefault(customer, set()).add(product)
    new: dict[str, set[str]] = {}
    for customer, product in _pairs(after):
        if customer in seen and product not in seen[customer]:
            new.setdefault(customer, set()).add(product)
    return new


def hit_rate_and_recall(
    recommended: dict[str, Sequence[str]], truth: dict[str, set[str]], k: int
) -> tuple[float, float]:
    """(hit rate@k, recall@k) of ``recommended`` (ranked lists, only the first k read) against
    ``truth`` (the customers judged and their new products); NaN when nobody is judged."""
    if not truth:
        return float("nan"), float("nan")
    hits, recall = 0, 0.0
    for customer, new in truth.items():
        found = len(set(list(recommended.get(customer, ()))[:k]) & new)
        hits += found > 0
        recall += found / len(new)
    return hits / len(truth), recall / len(truth)


@dataclass
class CrossSellEvaluation:
    """Metrics under their fixed names, and the line that says how the model did."""

    metrics: dict[str, float]
    method: str
    k: int

    def beats_popularity(self) -> bool:
        k = self.k
        return self.metrics[f"xsell_hit_rate_at_{k}"] > self.metrics[f"xsell_popularity_hit_rate_at_{k}"]

    def summary(self) -> str:
        k, m = self.k, self.metrics
        customers = int(m["xsell_eval_customers"])
        if customers == 0:
            return "cross-sell: no customer bought a new product after the evaluation cutoff; not judged"
        model, base = m[f"xsell_hit_rate_at_{k}"], m[f"xsell_popularity_hit_rate_at_{k}"]
        verdict = "beats popularity" if model > base else "DOES NOT beat popularity"
        return (
            f"cross-sell ({self.method}): out-of-time hit rate@{k} {model:.1%} vs popularity {base:.1%}, "
            f"recall@{k} {m[f'xsell_recall_at_{k}']:.1%} vs {m[f'xsell_popularity_recall_at_{k}']:.1%} "
            f"({customers:,} customers): {verdict}"
        )


def evaluate_cross_sell(
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    method: str = "cosine",
    k: int = 5,
    ks: Sequence[int] = EVAL_KS,
    **model_params: Any,
) -> CrossSellEvaluation:
    """Fit ``method`` and the popularity baseline on ``before``, judge both on ``after``
    (module docstring); ``model_params`` go to :class:`ProductAffinity`."""
    from clv_models.models.affinity import ProductAffinity

    truth = new_purchases(before, after)
    judged = before[before["customer_id"].astype(str).isin(truth)]
    metrics: dict[str, float] = {
        "xsell_eval_customers": float(len(truth)),
        "xsell_eval_products": float(before["product_id"].nunique()),
    }
    depth = max([k, *ks])
    for prefix, name in (("xsell", method), ("xsell_popularity", "popularity")):
        model = ProductAffinity(name, **model_params).fit(before)
        recommended = model.recommend_many(judged, depth)
        for at in ks:
            hit, recall = hit_rate_and_recall(recommended, truth, at)
            metrics[f"{prefix}_hit_rate_at_{at}"] = hit
            metrics[f"{prefix}_recall_at_{at}"] = recall
        if k not in ks:
            hit, recall = hit_rate_and_recall(recommended, truth, k)
            metrics[f"{prefix}_hit_rate_at_{k}"] = hit
            metrics[f"{prefix}_recall_at_{k}"] = recall
    return CrossSellEvaluation(metrics=metrics, method=method, k=k)

