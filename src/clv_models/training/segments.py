"""Train the decision layer on scored customers: segmenter, value-tier cut points; then assign
tiers, risk bands, segments, lifecycle stages and next best actions, and report them.

``train_segmentation(values, settings, previous=...)`` takes the table of
:func:`clv_models.scorer.customer_values` (features plus ``clv_h``, ``p_alive``,
``churn_probability``), fits :class:`~clv_models.models.segments.CustomerSegmenter` and
:class:`~clv_models.valuation.tiers.ValueTiers` on it, and returns everything a marketing report
needs. Metric names (fixed, for MLflow): ``segments_silhouette``, ``segments_k``,
``segments_inherited``, ``tiers_high_cut_point``, ``tiers_medium_cut_point``,
``tiers_high_value_share``, ``pareto_top20_value_share``, ``pareto_customers_for_80pct_value``,
and the share of customers per segment, tier, risk band, stage and action
(``share_segment_core``, ``share_value_tier_high``, …).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv_models.evaluation.segments import decision_mix, segment_profiles
from clv_models.models.segments import CustomerSegmenter
from clv_models.scorer.values import CustomerModels, assign_decisions
from clv_models.valuation.actions import action_table
from clv_models.valuation.tiers import ValueTiers, customers_for_value_share, pareto_curve, pareto_table, tier_summary

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import Settings

DECISION_COLUMNS = ("segment", "value_tier", "churn_risk", "lifecycle_stage", "next_best_action")


@dataclass
class SegmentationResult:
    """Fitted decision models, the decided table, and the report's tables."""

    segmenter: CustomerSegmenter
    tiers: ValueTiers
    table: pd.DataFrame
    profiles: pd.DataFrame
    pareto: pd.DataFrame
    tier_summary: pd.DataFrame
    mixes: dict[str, pd.DataFrame] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def train_segmentation(
    values: pd.DataFrame,
    settings: Settings,
    models: CustomerModels,
    *,
    previous: CustomerSegmenter | None = None,
    run: Any = None,
) -> SegmentationResult:
    """Fit the segmenter and tiers on ``values``, store them in ``models``, decide every customer."""
    segmenter = CustomerSegmenter.from_settings(settings.segments).fit(values, previous=previous)
    tiers = ValueTiers.from_settings(settings.tiers).fit(values["clv_h"])
    models.segmenter, models.tiers = segmenter, tiers
    table = assign_decisions(values, models, settings)
    result = SegmentationResult(
        segmenter=segmenter,
        tiers=tiers,
        table=table,
        profiles=segment_profiles(table),
        pareto=pareto_table(table["clv_h"]),
        tier_summary=tier_summary(table["value_tier"], table["clv_h"], table["total_spend"]),
        mixes={
            "segment_by_tier": decision_mix(table, "segment", "value_tier"),
            "stage_by_risk": decision_mix(table, "lifecycle_stage", "churn_risk"),
            "action_by_tier": decision_mix(table, "next_best_action", "value_tier"),
        },
    )
    result.metrics = _metrics(result)
    if run is not None:
        _log(run, result, settings)
    return result


def _metrics(result: SegmentationResult) -> dict[str, float]:
    table = result.table
    top20 = result.pareto.loc[result.pareto["top_customer_share"].round(6) == 0.2, "value_share"]
    metrics = {
        "segments_silhouette": float(result.segmenter.silhouette_),
        "segments_k": float(result.segmenter.k_),
        "segments_inherited": float(len(result.segmenter.inherited_)),
        "tiers_high_cut_point": result.tiers.cut_points_["high"],
        "tiers_medium_cut_point": result.tiers.cut_points_["medium"],
        "tiers_high_value_share": float(result.tier_summary.set_index("value_tier").loc["high", "value_share"]),
        "pareto_top20_value_share": float(top20.iloc[0]) if len(top20) else float("nan"),
        "pareto_customers_for_80pct_value": customers_for_value_share(table["clv_h"], 0.8),
    }
    for column in DECISION_COLUMNS:
        for code, share in table[column].value_counts(normalize=True).sort_index().items():
            metrics[f"share_{column}_{code}"] = float(share)
    return metrics


def _log(run: Any, result: SegmentationResult, settings: Settings) -> None:
    for section in ("segments", "tiers", "churn_risk", "lifecycle"):
        run.log_params({section: getattr(settings, section).model_dump(mode="json")})
    run.log_metrics(result.metrics)
    run.log_table(result.profiles, "segments/profiles.csv")
    run.log_table(result.segmenter.selection_, "segments/k_selection.csv")
    run.log_table(result.segmenter.centroids_, "segments/centroids.csv")
    run.log_table(result.pareto, "segments/pareto.csv")
    run.log_table(result.tier_summary, "segments/tiers.csv")
    run.log_table(action_table(settings.actions.rules, settings.actions.default), "segments/action_rules.csv")
    for name, figure in segmentation_figures(result).items():
        run.log_figure(figure, f"segments/{name}.png")


def segmentation_figures(result: SegmentationResult) -> dict[str, Any]:
    """Segment profiles, the Pareto curve with tier boundaries, k selection, the customer map."""
    from clv_models.plotting.segments import plot_k_selection, plot_pareto, plot_segment_map, plot_segment_profiles

    shares = result.tier_summary.set_index("value_tier")["customer_share"]
    cuts = {"high": float(shares["high"]), "high + medium": float(shares["high"] + shares["medium"])}
    return {
        "segment_profiles": plot_segment_profiles(result.profiles).figure,
        "pareto": plot_pareto(pareto_curve(result.table["clv_h"]), cut_shares=cuts).figure,
        "k_selection": plot_k_selection(result.segmenter.selection_, chosen=result.segmenter.k_).figure,
        "segment_map": plot_segment_map(result.table, seed=result.segmenter.seed).figure,
    }


def segmentation_markdown(result: SegmentationResult, settings: Settings) -> str:
    """The marketing report: profiles, Pareto, tiers, mixes, the action table, the naming scores."""
    table = result.table
    seg = result.segmenter
    lines = [
        "# Segments, value tiers, lifecycle and next best action",
        "",
        f"{len(table):,} customers at {table.attrs.get('as_of', '?')}; CLV over {settings.valuation.horizon} "
        f"(margin {settings.valuation.margin:g}, annual discount {settings.valuation.annual_discount_rate:g}).",
        "",
        f"## Segments (k = {seg.k_}, silhouette {seg.silhouette_:.3f} on a sample of "
        f"{min(seg.silhouette_sample, len(table)):,})",
        "",
        result.profiles.to_markdown(index=False, floatfmt=".3f"),
        "",
        "Centroids (back-transformed cluster means; tenure is the members' median) and the naming scores:",
        "",
        seg.centroids_.to_markdown(index=False, floatfmt=".2f"),
        "",
        seg.name_scores_.set_axis(seg.names_).to_markdown(floatfmt=".2f"),
        "",
        "k selection:",
        "",
        seg.selection_.to_markdown(index=False, floatfmt=".4f"),
        "",
        "## Value tiers and the Pareto view",
        "",
        "Cut points (fitted on this population, stored with the model): "
        f"high ≥ {result.tiers.cut_points_['high']:.2f}, medium ≥ {result.tiers.cut_points_['medium']:.2f}.",
        "",
        result.tier_summary.to_markdown(index=False, floatfmt=".3f"),
        "",
        result.pareto.to_markdown(index=False, floatfmt=".3f"),
        "",
        f"{result.metrics['pareto_customers_for_80pct_value']:.1%} of customers hold 80 % of predicted value.",
        "",
    ]
    for name, mix in result.mixes.items():
        lines += [f"## {name.replace('_', ' ')}", "", mix.to_markdown(), ""]
    lines += [
        "## Next-best-action rules (first match wins)",
        "",
        action_table(settings.actions.rules, settings.actions.default).to_markdown(index=False),
        "",
    ]
    return "\n".join(lines)


def write_segmentation_report(result: SegmentationResult, settings: Settings, out_dir: str | Path) -> dict[str, Path]:
    """``segments_report.md``, ``segments_metrics.json`` and one PNG per figure, written atomically."""
    from clv_models.evaluation.report import write_report_files

    return write_report_files(
        out_dir, "segments", segmentation_figures(result), result.metrics, segmentation_markdown(result, settings)
    )
