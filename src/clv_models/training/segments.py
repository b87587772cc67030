"""Train the decision layer on scored customers: segmenter, value-tier cut points; then assign
tiers, risk bands, segments, lifecycle stages and next best actions, and report them.

``train_segmentation(values, settings, previous=...)`` takes the table of
:func:`clv_models.scorer.customer_values` (features plus ``clv_h``, ``p_alive``,
``churn_probability``, ``value_forecast``), fits :class:`~clv_models.models.segments.CustomerSegmenter`
and :class:`~clv_models.valuation.tiers.ValueTiers` on it (the tiers, the tier summary and the Pareto
view on ``value_forecast``, the value the tiers rank by: decisions D42; it is ``clv_h`` with
``value.ranker = "btyd_clv"``), and returns everything a marketing report needs. Metric names
(fixed, for MLflow): ``segments_silhouette``, ``segments_k``,
``segments_inherited``, ``tiers_high_cut_point``, ``tiers_medium_cut_point``,
``tiers_high_value_share``, ``pareto_top20_value_share``, ``pareto_customers_for_80pct_value``,
the naming metrics (``segments_neutral``: segments with a neutral name;
``segments_neutral_customer_share``; ``segments_churn_from_probability``: 1 when the names' churn
checks used the churn probability, 0 when they used the share of overdue customers;
``segments_typical_gap_days``; ``segments_overdue_days``), and the share of customers per
segment, tier, risk band, stage and action (``share_segment_core``, ``share_value_tier_high``, …).
Artifacts under ``segments/``: ``profiles.csv``, ``k_selection.csv``, ``centroids.csv``,
``name_checks.csv`` (every check of every name for every segment, measured),
``name_definitions.csv``, ``member_statistics.csv``, ``pareto.csv``, ``tiers.csv``,
``action_rules.csv`` and the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.evaluation.segments import decision_mix, name_check_table, name_fit_matrix, segment_profiles
from clv_models.models._segment_names import definitions_table
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
    # The segment `new` and the lifecycle stage `new` share one new-customer threshold.
    segmenter = CustomerSegmenter.from_settings(
        settings.segments, new_max_tenure_days=settings.lifecycle.new_max_tenure_days
    ).fit(values, previous=previous)
    tiers = ValueTiers.from_settings(settings.tiers).fit(tier_basis(values))
    models.segmenter, models.tiers = segmenter, tiers
    table = assign_decisions(values, models, settings)
    result = SegmentationResult(
        segmenter=segmenter,
        tiers=tiers,
        table=table,
        profiles=segment_profiles(table),
        pareto=pareto_table(tier_basis(table)),
        tier_summary=tier_summary(table["value_tier"], tier_basis(table), table["total_spend"]),
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


def tier_basis(table: pd.DataFrame) -> pd.Series:
    """The value the tiers are cut from: ``value_forecast`` (decisions D42), else ``clv_h`` (a
    table valued before it existed)."""
    return table["value_forecast"] if "value_forecast" in table.columns else table["clv_h"]


def _metrics(result: SegmentationResult) -> dict[str, float]:
    table = result.table
    top20 = result.pareto.loc[result.pareto["top_customer_share"].round(6) == 0.2, "value_share"]
    metrics = {
        "segments_silhouette": float(result.segmenter.silhouette_),
        "segments_k": float(result.segmenter.k_),
        "segments_inherited": float(len(result.segmenter.inherited_)),
        **_naming_metrics(result.segmenter, table),
        "tiers_high_cut_point": result.tiers.cut_points_["high"],
        "tiers_medium_cut_point": result.tiers.cut_points_["medium"],
        "tiers_high_value_share": float(result.tier_summary.set_index("value_tier").loc["high", "value_share"]),
        "pareto_top20_value_share": float(top20.iloc[0]) if len(top20) else float("nan"),
        "pareto_customers_for_80pct_value": customers_for_value_share(tier_basis(table), 0.8),
    }
    for column in DECISION_COLUMNS:
        for code, share in table[column].value_counts(normalize=True).sort_index().items():
            metrics[f"share_{column}_{code}"] = float(share)
    return metrics


def _naming_metrics(segmenter: CustomerSegmenter, table: pd.DataFrame) -> dict[str, float]:
    neutral = [segmenter.names_[c] for c in segmenter.neutral_]
    context = segmenter.naming_context_
    return {
        "segments_neutral": float(len(neutral)),
        "segments_neutral_customer_share": float(table["segment"].isin(neutral).mean()),
        "segments_churn_from_probability": float(context["churn_statistic"] == "mean_churn_probability"),
        "segments_typical_gap_days": float(context["typical_gap_days"]),
        "segments_overdue_days": float(context["overdue_days"]),
    }


def _log(run: Any, result: SegmentationResult, settings: Settings) -> None:
    for section in ("segments", "tiers", "churn_risk", "lifecycle"):
        run.log_params({section: getattr(settings, section).model_dump(mode="json")})
    run.log_metrics(result.metrics)
    run.log_table(result.profiles, "segments/profiles.csv")
    run.log_table(result.segmenter.selection_, "segments/k_selection.csv")
    run.log_table(result.segmenter.centroids_, "segments/centroids.csv")
    run.log_table(result.segmenter.name_checks_, "segments/name_checks.csv")
    run.log_table(definitions_table(), "segments/name_definitions.csv")
    run.log_table(result.segmenter.member_statistics_.reset_index(), "segments/member_statistics.csv")
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
        "pareto": plot_pareto(pareto_curve(tier_basis(result.table)), cut_shares=cuts).figure,
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
        "Centroids (back-transformed cluster means; tenure is the members' median) and the centroid profile "
        "scores (which rank the names whose checks hold):",
        "",
        seg.centroids_.to_markdown(index=False, floatfmt=".2f"),
        "",
        seg.name_scores_.set_axis(seg.names_).to_markdown(floatfmt=".2f"),
        "",
        "k selection (nameable: every segment gets a name of the vocabulary):",
        "",
        seg.selection_.to_markdown(index=False, floatfmt=".4f"),
        "",
        *naming_markdown(seg),
        "## Value tiers and the Pareto view",
        "",
        f"Cut points of `{'value_forecast' if 'value_forecast' in table.columns else 'clv_h'}` (the value the tiers "
        "rank by; fitted on this population, stored with the model): "
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


def naming_markdown(segmenter: CustomerSegmenter) -> list[str]:
    """Lines of the report's section on the segment names: what was measured, the checks of each
    segment's name, which names fit each segment, and the member statistics."""
    context = segmenter.naming_context_
    if context["churn_statistic"] == "mean_churn_probability":
        churn = "the members' mean churn probability (`mean_churn_probability`)"
    else:
        churn = (
            "the share of overdue members (`share_overdue`): no churn probability was available when the "
            "segments were fitted, so silence is measured against the shop's purchase rhythm"
        )
    gap = context["typical_gap_days"]
    rhythm = (
        f"the typical repeat gap is {gap:.1f} days (median over repeat buyers), so a customer is overdue after "
        f"{context['overdue_days']:.1f} days of silence"
        if np.isfinite(gap) and gap > 0
        else f"no customer bought twice, so a customer is overdue after {context['overdue_days']:.0f} days of silence"
    )
    neutral = [segmenter.names_[c] for c in segmenter.neutral_]
    return [
        "## Segment names and their checks",
        "",
        "A segment gets a name only when every check of the name holds for its members: a statistic over the "
        "segment's customers against the same statistic over all customers (`base`), or a threshold. A segment "
        "for which no free name holds gets a neutral name that describes its members (its words are checks "
        f"too). Churn is {churn}; {rhythm}; new customers have a tenure of at most "
        f"{context['new_max_tenure_days']:g} days; `lost` needs a median silence of at least "
        f"{context['lost_min_days_since_last']:g} days.",
        "",
        f"Neutral names: {', '.join(f'`{n}`' for n in neutral) if neutral else 'none'}.",
        "",
        "Checks of each segment's name:",
        "",
        name_check_table(segmenter.name_checks_).to_markdown(index=False, floatfmt=".3f"),
        "",
        "Which names' checks hold for each segment (✓), and otherwise the checks that fail:",
        "",
        name_fit_matrix(segmenter.name_checks_).to_markdown(),
        "",
        "Member statistics:",
        "",
        segmenter.member_statistics_.dropna(axis=1, how="all").to_markdown(index=False, floatfmt=".3f"),
        "",
    ]


def write_segmentation_report(result: SegmentationResult, settings: Settings, out_dir: str | Path) -> dict[str, Path]:
    """``segments_report.md``, ``segments_metrics.json`` and one PNG per figure, written atomically."""
    from clv_models.evaluation.report import write_report_files

    return write_report_files(
        out_dir, "segments", segmentation_figures(result), result.metrics, segmentation_markdown(result, settings)
    )
