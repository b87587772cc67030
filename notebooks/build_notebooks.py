"""Write the analysts' notebooks (outputs empty) from the cells below: `python notebooks/build_notebooks.py`.

The notebooks read Online Retail as shipped in the package (clv_models.datasets; $CLV_ORDERS may
name another copy of the same export) and put MLflow runs in $CLV_NOTEBOOK_MLRUNS (default: a temporary
directory), so executing them never writes into the repository. The test suite executes all four.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SETUP = '''import io
import os
import tempfile
import warnings
from pathlib import Path

import optuna
import pandas as pd
from IPython.display import Image

from clv_models.config import ColumnMap, load_settings
from clv_models.data import ingest
from clv_models.datasets import online_retail_path

ORDERS = Path(os.environ.get("CLV_ORDERS") or online_retail_path())
COLUMNS = ColumnMap.parse("customer_id=CustomerID,order_id=InvoiceNo,order_ts=InvoiceDate,quantity=Quantity,"
                          "unit_price=UnitPrice,country=Country")
MLRUNS = Path(os.environ.get("CLV_NOTEBOOK_MLRUNS") or tempfile.mkdtemp(prefix="clv-notebook-"))
pd.set_option("display.width", 160)  # this notebook's display only
warnings.simplefilter("ignore", FutureWarning)  # this notebook's output only
optuna.logging.set_verbosity(optuna.logging.WARNING)  # every trial is in MLflow anyway
settings = load_settings()


def show(figure):
    """A matplotlib Figure (the library never touches pyplot) as an inline PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return Image(buffer.getvalue())'''

NOTEBOOKS = {
    "01_orders_quality": [
        ("md", "# 01 · Orders and data quality\n\nWhat the raw export holds, what ingestion set aside and why, "
               "how cohorts come back, and how concentrated revenue is (the Pareto curve)."),
        ("code", SETUP),
        ("code", '''quarantine = MLRUNS / "quarantine.parquet"
orders = ingest(ORDERS, columns=COLUMNS, quarantine_path=quarantine)
report = orders.report
print(f"{report.rows_read:,} rows read, {report.orders:,} orders of {report.customers:,} customers kept")
pd.Series(report.reason_counts, name="rows").to_frame().assign(share=lambda t: t["rows"] / report.rows_read)'''),
        ("md", "## Monthly cohorts\n\nShare of each first-purchase month's customers who bought again k months later."),
        ("code", '''cohorts = orders.con.execute("""
    WITH firsts AS (SELECT customer_id, date_trunc('month', min(order_ts)) AS cohort FROM orders GROUP BY 1),
    active AS (SELECT DISTINCT o.customer_id, f.cohort,
                      date_diff('month', f.cohort, date_trunc('month', o.order_ts)) AS months_since
               FROM orders o JOIN firsts f USING (customer_id))
    SELECT cohort, months_since, count(*) AS customers FROM active GROUP BY ALL ORDER BY ALL
""").df()
table = cohorts.pivot(index="cohort", columns="months_since", values="customers")
retention = table.div(table[0], axis=0)
retention.round(3).iloc[:, :7]'''),
        ("md", "## Pareto curve of revenue"),
        ("code", '''from clv_models.valuation import customers_for_value_share, pareto_curve
from clv_models.plotting import plot_pareto
revenue = orders.con.execute("SELECT customer_id, sum(amount) AS revenue FROM orders GROUP BY 1").df()
share80 = customers_for_value_share(revenue["revenue"], 0.8)
print(f"{share80:.1%} of customers bring 80 % of net revenue")
ax = plot_pareto(pareto_curve(revenue["revenue"]), cut_shares={"top 20 %": 0.2})
ax.set_title("Pareto curve of past net revenue")
show(ax.figure)'''),
        ("code", "orders.close()"),
    ],
    "02_ltv_models": [
        ("md", "# 02 · Lifetime-value models\n\nBG/NBD and Gamma-Gamma judged out of time, their diagnostics, "
               "and two `clv train` runs compared through `mlflow.search_runs`."),
        ("code", SETUP),
        ("code", '''import datetime as dt
from clv_models.evaluation import evaluate_holdout, holdout_revenue
from clv_models.features import calibration_holdout
from clv_models.models import BetaGeoModel, GammaGammaModel
from clv_models.plotting import plot_calibration_vs_holdout, plot_probability_alive_matrix
with ingest(ORDERS, columns=COLUMNS) as orders, warnings.catch_warnings():
    warnings.simplefilter("ignore")
    split = calibration_holdout(orders, calibration_end=dt.date(2011, 6, 9), holdout_end=dt.date(2011, 12, 9))
    revenue = holdout_revenue(orders, split)
    bgnbd = BetaGeoModel().fit(split)
    gamma_gamma = GammaGammaModel().fit(split[split["frequency"] > 0])
report = evaluate_holdout(bgnbd, gamma_gamma, split, actual_revenue=revenue)
print(bgnbd.params_, gamma_gamma.params_)
pd.Series(report.metrics()).round(4).to_frame("value")'''),
        ("code", "show(plot_calibration_vs_holdout(report.frequency_table).figure)"),
        ("code", "typical_age = float(split['T'].median())\n"
                 "show(plot_probability_alive_matrix(bgnbd, T=typical_age, max_frequency=15).figure)"),
        ("md", "## Comparing training runs\n\nTwo quick `clv train` runs (2 Optuna trials each) that differ only "
               "in the LTV holdout length, pulled back with `mlflow.search_runs`."),
        ("code", '''import mlflow
from clv_models.training.pipeline import train
base = [f'orders.path="{ORDERS}"', "churn.n_trials=2", "churn.n_folds=2", "churn.train_cutoffs=2",
        "value.n_trials=1", "value.n_folds=2", f'tracking.root="{MLRUNS}"',
        f'validation.quarantine="{MLRUNS}/q.parquet"']
columns = {"orders.columns": COLUMNS.model_dump()}
for holdout in (120, 180):
    train(load_settings(None, [*base, f"ltv.holdout_days={holdout}"], columns), register=False)
mlflow.set_tracking_uri(f"sqlite:///{MLRUNS}/mlruns/mlflow.db")  # the store train() wrote to
runs = mlflow.search_runs(experiment_names=["clv-train"], filter_string="tags.cutoff = '2011-12-09'")
columns_shown = ["params.ltv.holdout_days", "metrics.holdout_purchases_mae", "metrics.holdout_clv_spearman",
                 "metrics.holdout_clv_gini", "metrics.churn_auc"]
runs[columns_shown].sort_values("params.ltv.holdout_days")'''),
    ],
    "03_churn": [
        ("md", "# 03 · Churn classifier\n\nOut-of-time comparison with the BTYD baselines, the reliability "
               "curve, the lift, and which features move the predictions."),
        ("code", SETUP),
        ("code", '''from clv_models.config import ChurnSettings
from clv_models.training.churn import train_churn
with ingest(ORDERS, columns=COLUMNS) as orders, warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = train_churn(orders, ChurnSettings(n_trials=3, n_folds=2))
result.comparison.round(4)'''),
        ("code", '''from clv_models.evaluation import lift_table, reliability_curve
from clv_models.plotting import plot_lift, plot_reliability
outcome = result.dataset.test["churned"].to_numpy()
curves = {name: reliability_curve(score, outcome) for name, score in result.test_scores.items()
          if name in ("model", "bgnbd_p_no_purchase")}
show(plot_reliability(curves).figure)'''),
        ("code", "tables = {name: lift_table(score, outcome) for name, score in result.test_scores.items()}\n"
                 "show(plot_lift(tables).figure)"),
        ("md", "## Top feature contributions (mean |SHAP| in log-odds on the test snapshot)"),
        ("code", '''mean_abs = result.contributions.drop(columns="prior").abs().mean()
mean_abs.sort_values(ascending=False).head(10).round(4)'''),
    ],
    "04_segments_tiers": [
        ("md", "# 04 · Segments, tiers and actions\n\nWho the segments are, how value concentrates in the "
               "tiers, and which action each customer gets."),
        ("code", SETUP),
        ("code", '''from clv_models.features.customer import customer_features
from clv_models.models import BetaGeoModel, GammaGammaModel
from clv_models.models.btyd_features import BtydChurnFeatures
from clv_models.scorer import CustomerModels, customer_values
from clv_models.training.churn import train_churn
from clv_models.training.segments import train_segmentation
settings = load_settings(None, ["churn.n_trials=3", "churn.n_folds=2"])
with ingest(ORDERS, columns=COLUMNS) as orders, warnings.catch_warnings():
    warnings.simplefilter("ignore")
    features = customer_features(orders)
    rfm = features[["frequency", "recency", "T", "monetary_value"]]
    rfm.attrs["unit"] = "D"
    churn = train_churn(orders, settings.churn).model
    models = CustomerModels(BetaGeoModel().fit(rfm), GammaGammaModel().fit(rfm[rfm["frequency"] > 0]), churn=churn,
                            btyd_features=BtydChurnFeatures(window_days=churn.window_days,
                                                            penalizer=settings.churn.btyd_penalizer).fit(features))
values = customer_values(features, models, settings)
result = train_segmentation(values, settings, models)
result.profiles.round(3)'''),
        ("code", '''from clv_models.plotting import plot_segment_profiles
show(plot_segment_profiles(result.profiles).figure)'''),
        ("code", "result.tier_summary.round(3)"),
        ("code", "result.mixes['segment_by_tier']"),
        ("code", "result.table['next_best_action'].value_counts().to_frame('customers')"),
        ("code", '''from clv_models.valuation import apply_labels
apply_labels(result.table.head(5)[["customer_id", "value_tier", "churn_risk", "segment", "lifecycle_stage",
                                   "next_best_action"]], "zh")'''),
    ],
}


def build(directory: Path) -> list[Path]:
    written = []
    for name, cells in NOTEBOOKS.items():
        # Fixed cell ids: rebuilding gives the same file (tested), so the notebooks never drift.
        built = [new_markdown_cell(text) if kind == "md" else new_code_cell(text) for kind, text in cells]
        for index, cell in enumerate(built):
            cell["id"] = f"{name}-{index:02d}"
        notebook = new_notebook(
            cells=built,
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        )
        path = directory / f"{name}.ipynb"
        nbformat.write(notebook, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build(Path(__file__).resolve().parent):
        print(path)
