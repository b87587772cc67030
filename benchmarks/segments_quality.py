"""Segments, value tiers, lifecycle stages and next best actions on CDNOW and Online Retail.

    python benchmarks/segments_quality.py                       # both datasets, default settings
    python benchmarks/segments_quality.py --dataset online_retail --set churn.n_trials=5
    python benchmarks/segments_quality.py --out /tmp/clv-segments   # reports land there (default)

Per dataset: ingest → customer features at the last order date → BG/NBD and Gamma-Gamma (days)
fitted on them → churn classifier (``train_churn``) and the BTYD feature models it reads, fitted
at the same date (as ``clv train`` stores them in the scorer) → customer values → segmenter and tier cut
points → decisions. Prints the segment profiles, the Pareto table, the tier summary and the
decision mixes, a sample of the decided table in English and Chinese labels, and checks that the
segment names survive retraining with five other seeds (share of customers whose name is
unchanged). Each dataset's full report (Markdown, metrics JSON, figures) is written under --out.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from clv_models.config import ColumnMap, load_settings
from clv_models.data.ingest import ingest
from clv_models.features.customer import customer_features
from clv_models.models import BetaGeoModel, CustomerSegmenter, GammaGammaModel
from clv_models.models.btyd_features import BtydChurnFeatures
from clv_models.scorer import CustomerModels, customer_values
from clv_models.training.churn import train_churn
from clv_models.training.segments import train_segmentation, write_segmentation_report
from clv_models.valuation.labels import apply_labels

sys.path.insert(0, str(Path(__file__).resolve().parent))
from churn_quality import ONLINE_RETAIL_COLUMNS, cdnow_orders, online_retail_path  # noqa: E402

SAMPLE_COLUMNS = [
    "customer_id", "frequency", "days_since_last", "avg_order_value", "clv_h", "p_alive", "churn_probability",
    "value_tier", "churn_risk", "segment", "lifecycle_stage", "next_best_action",
]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["cdnow", "online_retail", "both"], default="both")
    parser.add_argument("--set", action="append", default=[], help="settings override, e.g. churn.n_trials=10")
    parser.add_argument("--out", default="/tmp/clv-segments")
    args = parser.parse_args()
    settings = load_settings(None, args.set)
    names = ["cdnow", "online_retail"] if args.dataset == "both" else [args.dataset]
    for name in names:
        source = cdnow_orders() if name == "cdnow" else online_retail_path()
        columns = None if name == "cdnow" else ColumnMap.parse(ONLINE_RETAIL_COLUMNS)
        started = time.perf_counter()
        with ingest(source, columns=columns) as ingested, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BG/NBD's a → 0 on Online Retail is reported in the churn report
            features = customer_features(ingested)
            rfm = features[["frequency", "recency", "T", "monetary_value"]]
            rfm.attrs["unit"] = "D"
            churn = train_churn(ingested, settings.churn).model
            models = CustomerModels(
                purchases=BetaGeoModel().fit(rfm),
                gamma_gamma=GammaGammaModel().fit(rfm[rfm["frequency"] > 0]),
                churn=churn,
                btyd_features=BtydChurnFeatures(
                    window_days=churn.window_days, penalizer=settings.churn.btyd_penalizer
                ).fit(features),
            )
        model_seconds = time.perf_counter() - started
        values = customer_values(features, models, settings)
        started = time.perf_counter()
        result = train_segmentation(values, settings, models)
        segment_seconds = time.perf_counter() - started
        written = write_segmentation_report(result, settings, Path(args.out) / name)
        print(f"\n# {name}: {len(values):,} customers at {values.attrs['as_of']}; models {model_seconds:.0f} s, "
              f"segments + tiers + decisions {segment_seconds:.1f} s; report {written['report']}\n")
        print(result.profiles.to_markdown(index=False, floatfmt=".3f"), "\n")
        print(result.tier_summary.to_markdown(index=False, floatfmt=".3f"), "\n")
        print(result.pareto.to_markdown(index=False, floatfmt=".3f"), "\n")
        print(f"{result.metrics['pareto_customers_for_80pct_value']:.1%} of customers hold 80 % of predicted value\n")
        for mix_name, mix in result.mixes.items():
            print(f"{mix_name}:\n{mix.to_markdown()}\n")
        sample = result.table.sort_values("clv_h", ascending=False).iloc[[0, 10, 100, 1000, 2000, 3000]]
        print(sample[SAMPLE_COLUMNS].to_markdown(index=False, floatfmt=".3f"), "\n")
        print(apply_labels(sample[SAMPLE_COLUMNS], "zh").to_markdown(index=False, floatfmt=".3f"), "\n")
        reference = result.table["segment"].to_numpy()
        for seed in (1, 2, 3, 4, 5):
            other = CustomerSegmenter.from_settings(settings.segments.model_copy(update={"seed": seed})).fit(values)
            agree = float(np.mean(other.predict(values) == reference))
            print(f"seed {seed}: k={other.k_}, names {sorted(other.names_)}, same name for {agree:.2%} of customers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
