"""Calibration maps of the churn classifier judged one window later (decisions D47).

For each shop, ``train_churn`` (the churn part of ``clv train``, product defaults but
``n_trials``) is run once. Its booster's raw scores on the validation snapshot (the calibration
set) are mapped to probabilities by each map below, fitted there; the ECE (and Brier) of each is
measured on the test snapshot, whose outcome window the maps never saw, beside the best
baseline's ECE:

* ``sigmoid``: the shipped map (Platt on the raw log-odds; with D46's seasonal shift when
  ``clv train`` applies one), i.e. ``test_scores["model"]``;
* ``isotonic``: isotonic regression on the raw score;
* ``beta``: logistic regression on (ln p, −ln(1 − p)) (beta calibration, Kull et al. 2017);
* ``mean_sigmoid_isotonic``: the average of the two;
* ``trend4``: the sigmoid's log-odds plus the linear trend of logit(churn rate) over the last
  four labelled cutoffs (training and validation), extrapolated to the test cutoff;
* ``quantile_map``: each test raw score replaced by the validation raw score of the same rank,
  then the sigmoid map (assumes the rate did not move while the scores drifted);
* ``oracle``: the sigmoid's log-odds plus logit(test rate) − logit(validation rate): the true
  rate shift, which no method knows; it shows how much of the ECE the base rate explains.

For the ``seasonal`` shop the shipped map includes D46's shift; the others are not combined with
it, so only its ``sigmoid`` column compares.

    PYTHONPATH=src .venv/bin/python benchmarks/calibration_maps.py               # every shop, 5 trials
    PYTHONPATH=src .venv/bin/python benchmarks/calibration_maps.py --shops cdnow,one_time
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from season_calibration import logit, source  # noqa: E402  (the same shops, seeds and logit)

SHOPS = ("cdnow", "online_retail", "retail", "weekly_grocery", "one_time", "wholesale", "seasonal", "retail_270d")
MAPS = ("sigmoid", "isotonic", "beta", "mean_sigmoid_isotonic", "trend4", "quantile_map", "oracle")


def shop_source(shop: str, work: Path) -> tuple[str, Any]:
    if shop == "retail_270d":
        from clv_models.config import ColumnMap
        from clv_models.datasets import simulate_orders

        simulated = simulate_orders(10_000, seed=7, profile="retail", days=270)
        return str(simulated.write(work / "retail_270d.parquet")), ColumnMap.parse(simulated.columns)
    return source(shop, work)


def maps(result: Any) -> dict[str, np.ndarray]:
    """Every map's test-snapshot probabilities (module docstring)."""
    import pandas as pd
    from scipy.special import expit
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    from clv_models.features.churn import LABEL

    dataset, model = result.dataset, result.model
    features = dataset.features
    raw_validation = model.predict_raw(dataset.validation[features])
    raw_test = model.predict_raw(dataset.test[features])
    y_validation = dataset.validation[LABEL].to_numpy()
    shipped = result.test_scores["model"]
    out = {"sigmoid": shipped}
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw_validation, y_validation)
    out["isotonic"] = isotonic.predict(raw_test)

    def beta_columns(p: np.ndarray) -> np.ndarray:
        return np.column_stack([np.log(np.clip(p, 1e-6, 1)), -np.log(np.clip(1 - p, 1e-6, 1))])

    beta = LogisticRegression(C=1e6, max_iter=1000).fit(beta_columns(raw_validation), y_validation)
    out["beta"] = beta.predict_proba(beta_columns(raw_test))[:, 1]
    out["mean_sigmoid_isotonic"] = 0.5 * (shipped + out["isotonic"])
    rates = dataset.train.groupby("cutoff")[LABEL].mean()
    rates[pd.Timestamp(dataset.plan.validation)] = y_validation.mean()
    rates.index = pd.to_datetime(rates.index)
    rates = rates.sort_index().iloc[-4:]
    days = np.array([(d - rates.index[-1]).days for d in rates.index], dtype=float)
    slope, _ = np.polyfit(days, logit(rates.to_numpy()), 1) if len(rates) > 1 else (0.0, 0.0)
    ahead = (pd.Timestamp(dataset.plan.test) - rates.index[-1]).days
    out["trend4"] = expit(logit(shipped) + slope * ahead)
    rank = (np.argsort(np.argsort(raw_test, kind="stable"), kind="stable") + 0.5) / len(raw_test)
    mapped = np.quantile(raw_validation, rank)
    out["quantile_map"] = model.calibrator_.predict_proba(logit(mapped).reshape(-1, 1))[:, 1]
    y_test = dataset.test[LABEL].to_numpy()
    out["oracle"] = expit(logit(shipped) + logit(y_test.mean()) - logit(y_validation.mean()))
    return out


def run_shop(shop: str, trials: int, work: Path) -> dict[str, Any]:
    from clv_models.config import ChurnSettings
    from clv_models.data import ingest
    from clv_models.evaluation.churn_metrics import expected_calibration_error
    from clv_models.features.churn import LABEL
    from clv_models.training.churn import BASELINES, train_churn

    path, columns = shop_source(shop, work)
    started = time.perf_counter()
    with ingest(path, columns=columns) as ingested:
        result = train_churn(ingested, ChurnSettings(n_trials=trials))
    y = result.dataset.test[LABEL].to_numpy()
    row: dict[str, Any] = {
        "shop": shop,
        "rate_validation": float(result.dataset.validation[LABEL].mean()),
        "rate_test": float(y.mean()),
        "best_baseline_ece": float(result.comparison.loc[list(BASELINES), "ece"].min()),
        "best_baseline": str(result.comparison.loc[list(BASELINES), "ece"].idxmin()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    for name, p in maps(result).items():
        row[f"ece_{name}"] = float(expected_calibration_error(p, y))
        row[f"brier_{name}"] = float(np.mean((p - y) ** 2))
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| shop | churn rate validation → test | " + " | ".join(MAPS) + " | best baseline |",
        "|---|---|" + "---|" * len(MAPS) + "---|",
    ]
    for r in rows:
        cells = [f"{r[f'ece_{m}']:.4f}" for m in MAPS]
        lines.append(
            f"| {r['shop']} | {r['rate_validation']:.1%} → {r['rate_test']:.1%} | " + " | ".join(cells)
            + f" | {r['best_baseline_ece']:.4f} ({r['best_baseline']}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", default=",".join(SHOPS))
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="clv-calibration-maps-") as tmp:
        rows = [run_shop(shop, args.trials, Path(tmp)) for shop in args.shops.split(",")]
    print(markdown(rows))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
