"""The LTV evaluation report as files: ``ltv_report.md``, ``ltv_metrics.json`` and one PNG per plot.

Everything in it is out-of-time: the models are fitted on the calibration part of a
:func:`clv_models.features.calibration_holdout` split and judged on the holdout.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.data.io import atomic_target
from clv_models.evaluation.cumulative import cumulative_repeat_purchases
from clv_models.evaluation.fit import repeat_purchase_histogram
from clv_models.evaluation.holdout import HoldoutReport, evaluate_holdout, holdout_revenue

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.models import BetaGeoModel, GammaGammaModel

PLOTS = (
    "repeat_purchases",
    "calibration_vs_holdout",
    "cumulative_purchases",
    "frequency_recency_matrix",
    "probability_alive_matrix",
)


@dataclass(frozen=True)
class LtvReportFiles:
    markdown: Path
    metrics: Path
    plots: dict[str, Path]
    report: HoldoutReport


def _save(ax: object, path: Path) -> Path:
    with atomic_target(path) as tmp:
        ax.figure.savefig(tmp, dpi=110, format="png", bbox_inches="tight")  # type: ignore[attr-defined]
    return path


def write_ltv_report(
    out_dir: str | Path,
    *,
    purchases: BetaGeoModel,
    spend: GammaGammaModel,
    split: pd.DataFrame,
    orders: pd.DataFrame | str | Path,
    title: str = "Lifetime-value models: out-of-time evaluation",
) -> LtvReportFiles:
    """Evaluate on the holdout and write the report, its metrics and its plots into ``out_dir``.

    ``orders`` are the canonical orders the split was built from (for holdout revenue and the
    cumulative tracking plot).
    """
    from clv_models import plotting

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    revenue = holdout_revenue(orders, split)
    report = evaluate_holdout(purchases, spend, split, actual_revenue=revenue)
    calibration_end = dt.date.fromisoformat(split.attrs["as_of"])
    tracking = cumulative_repeat_purchases(
        purchases, orders, end=dt.date.fromisoformat(split.attrs["holdout_end"]), cohort_end=calibration_end
    )
    typical_age = float(np.median(split["T"]))
    max_frequency = int(max(5, np.quantile(split["frequency"], 0.99)))
    axes = {
        "repeat_purchases": plotting.plot_repeat_purchases(repeat_purchase_histogram(purchases, split)),
        "calibration_vs_holdout": plotting.plot_calibration_vs_holdout(report.frequency_table),
        "cumulative_purchases": plotting.plot_cumulative_purchases(tracking, calibration_end=calibration_end),
        "frequency_recency_matrix": plotting.plot_frequency_recency_matrix(
            purchases, T=typical_age, max_frequency=max_frequency
        ),
        "probability_alive_matrix": plotting.plot_probability_alive_matrix(
            purchases, T=typical_age, max_frequency=max_frequency
        ),
    }
    plots = {name: _save(ax, out / f"{name}.png") for name, ax in axes.items()}
    metrics_path = out / "ltv_metrics.json"
    with atomic_target(metrics_path) as tmp:
        tmp.write_text(json.dumps(report.metrics(), indent=2) + "\n")
    markdown = out / "ltv_report.md"
    with atomic_target(markdown) as tmp:
        tmp.write_text(_markdown(title, purchases, spend, split, report, plots), encoding="utf-8")
    return LtvReportFiles(markdown=markdown, metrics=metrics_path, plots=plots, report=report)


def _markdown(
    title: str,
    purchases: BetaGeoModel,
    spend: GammaGammaModel,
    split: pd.DataFrame,
    report: HoldoutReport,
    plots: dict[str, Path],
) -> str:
    unit = purchases.unit_
    lines = [
        f"# {title}",
        "",
        f"Calibration to {split.attrs.get('as_of')}, holdout to {split.attrs.get('holdout_end')} "
        f"({report.clv_horizon}); {report.n_customers:,} customers; time unit {unit}.",
        "",
        "## Parameters",
        "",
        "| model | parameter | estimate | standard error |",
        "|---|---|---|---|",
    ]
    label = {"ModifiedBetaGeoModel": "MBG/NBD", "ParetoNBDModel": "Pareto/NBD"}.get(type(purchases).__name__, "BG/NBD")
    for name, model in ((label, purchases), ("Gamma-Gamma", spend)):
        for key, value in model.params_.items():
            lines.append(f"| {name} | {key} | {value:.6g} | {model.standard_errors_.get(key, float('nan')):.3g} |")
    lines += [
        "",
        f"{label} log-likelihood {purchases.log_likelihood_:,.2f}; converged: {purchases.converged_} "
        f"({purchases.diagnostic_}). Gamma-Gamma converged: {spend.converged_}.",
        "",
        "## Holdout metrics",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| `{name}` | {value:.4f} |" for name, value in report.metrics().items()),
        "",
        "## Mean holdout purchases by calibration frequency",
        "",
        _table(report.frequency_table),
        "",
        "## Predicted CLV deciles against actual holdout revenue",
        "",
        _table(report.decile_table),
        "",
        "## Plots",
        "",
        *(f"![{name}]({path.name})" for name, path in plots.items()),
        "",
    ]
    return "\n".join(lines)


def _table(frame: pd.DataFrame) -> str:
    """Markdown table; whole-number columns (counts, decile numbers) are shown as integers."""
    shown = frame.copy()
    for column in shown.columns:
        values = shown[column]
        if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            shown[column] = values.astype("int64")
    return shown.to_markdown(index=False, floatfmt=".3f")


def write_report_files(
    out_dir: str | Path, prefix: str, figures: Mapping[str, Any], metrics: Mapping[str, float], markdown: str
) -> dict[str, Path]:
    """``<prefix>_<name>.png`` per figure, ``<prefix>_metrics.json`` and ``<prefix>_report.md`` in
    ``out_dir``, each written atomically; the paths by figure name, ``metrics`` and ``report``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, figure in figures.items():
        path = out / f"{prefix}_{name}.png"
        with atomic_target(path) as tmp:
            figure.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
        written[name] = path
    written["metrics"] = out / f"{prefix}_metrics.json"
    with atomic_target(written["metrics"]) as tmp:
        tmp.write_text(json.dumps(dict(metrics), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    written["report"] = out / f"{prefix}_report.md"
    with atomic_target(written["report"]) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    return written
