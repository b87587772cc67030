"""Which calibration serves the next window best? (docs/decisions.md D37)

For each shop: train the churn classifier on the data cut one window before its end (as_of =
L - w, w from the shop's rhythm, D33), then judge on the window that follows, (L - w, L], which
training never saw: the classifier calibrated on its validation snapshot (as trained), recalibrated
on its test snapshot (the latest complete window), and calibrated on both pooled; the recency rule
fitted on either snapshot. Prints AUC, Brier and ECE per shop.

    .venv/bin/python benchmarks/churn_recalibration.py        # Online Retail, CDNOW, 2 simulated shops
"""
import copy, datetime as dt, sys, tempfile
from pathlib import Path
import numpy as np, pandas as pd
from clv_models.config import ChurnSettings, ColumnMap
from clv_models.data import ingest
from clv_models.features.churn import churn_snapshots, LABEL
from clv_models.training.churn import train_churn
from clv_models.evaluation.churn_metrics import compare_scores
from clv_models.models.churn_baseline import BaselineChurnModel

def run(name, source, columns, trials=5):
    with ingest(source, columns=columns) as full:
        L = full.report.cutoff
        first = full.con.execute("SELECT min(order_ts) FROM orders").fetchall()[0][0].date()
    # window from the rhythm on the full data
    from clv_models.features.churn import choose_window
    with ingest(source, columns=columns) as full:
        w = choose_window(full, ChurnSettings(), (L - first).days).days
    cut = L - dt.timedelta(days=w)
    settings = ChurnSettings(window_days=w, n_trials=trials)
    with ingest(source, columns=columns, as_of=cut) as past:
        result = train_churn(past, settings)
    model = result.model
    with ingest(source, columns=columns) as full:
        nxt = churn_snapshots(full, [cut], window_days=w)
    from clv_models.training.churn import add_btyd_features
    # BTYD features for the next snapshot from a fit at its cutoff
    from clv_models.models.btyd_features import BtydChurnFeatures, BTYD_FEATURES
    fit = BtydChurnFeatures(window_days=w).fit(nxt)
    b = fit.transform(nxt)
    for c in BTYD_FEATURES: nxt[c] = b[c].to_numpy()
    X = nxt[result.dataset.features]; y = nxt[LABEL].to_numpy()
    a = model.predict_proba(X)[:, 1]
    recal = copy.deepcopy(model); test = result.dataset.test
    recal._fit_calibrator(recal.predict_raw(test[result.dataset.features]), test[LABEL].to_numpy())
    r = recal.predict_proba(X)[:, 1]
    pooled = copy.deepcopy(model); both = pd.concat([result.dataset.validation, test])
    pooled._fit_calibrator(pooled.predict_raw(both[result.dataset.features]), both[LABEL].to_numpy())
    pl = pooled.predict_proba(X)[:, 1]
    rec_v = BaselineChurnModel("recency_rule", w).fit(result.dataset.validation, result.dataset.validation[LABEL]).predict_proba(nxt)[:, 1]
    rec_t = BaselineChurnModel("recency_rule", w).fit(test, test[LABEL]).predict_proba(nxt)[:, 1]
    table = compare_scores({"calibrated_at_validation": a, "recalibrated_at_test": r, "pooled_validation_test": pl,
                            "recency_rule_at_validation": rec_v, "recency_rule_at_test": rec_t}, y)
    rates = dict(validation=float(result.dataset.validation[LABEL].mean()), test=float(test[LABEL].mean()), next=float(y.mean()))
    print(f"== {name}: window {w}, next cutoff {cut}, churn rates {rates}")
    print(table[["auc", "brier", "ece"]].round(4).to_string())
    sys.stdout.flush()

def main() -> None:
    from clv_models.datasets import online_retail_path, ONLINE_RETAIL_COLUMNS, load_cdnow_master, simulate_orders
    run("online_retail", str(online_retail_path()), ColumnMap.parse(ONLINE_RETAIL_COLUMNS))
    cd = load_cdnow_master(); work = Path(tempfile.mkdtemp(prefix="clv-recal-")); cd.to_parquet(work / "cdnow.parquet")
    run("cdnow", str(work / "cdnow.parquet"), ColumnMap.parse("customer_id=customer_id,order_ts=order_ts,amount=amount"))
    for prof, n in (("seasonal", 8000), ("retail", 8000)):
        shop = simulate_orders(n, seed=5, profile=prof); p = str(work / f"{prof}.parquet"); shop.write(p)
        run(prof, p, ColumnMap.parse(shop.columns))


if __name__ == "__main__":
    main()
