"""Write the analysts' notebooks (outputs empty) from the cells below: `python notebooks/build_notebooks.py`.

The notebooks read Online Retail as shipped in the package (clv_models.datasets; $CLV_ORDERS may
name another copy of the same export) and put MLflow runs in $CLV_NOTEBOOK_MLRUNS (default: a temporary
directory), so executing them never writes into the repository. The test suite executes all of them.
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
    "05_experiments": [
        ("md", "# 05 · Experiments: did the actions work?\n\nFrom scores to an A/B test to its result "
               "(docs/experiments.md). A simulated shop, so the true effect is known: the treated customers of a "
               "win-back action get a known uplift written into their orders after the cutoff, and the evaluation "
               "must find it; a second experiment has no effect and must not be called significant.\n\n"
               "In production the first two steps are `clv score --config score.toml` (with `[[experiments]]`) and "
               "the last is `clv evaluate-actions --scores OLD_SCORES --orders ORDERS --until DAY`. Here the action "
               "comes from a one-line rule instead of a trained scorer, so the notebook runs in seconds; the groups "
               "come from the same function `clv score` applies."),
        ("code", '''import datetime as dt
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Image

from clv_models.config import load_settings
from clv_models.data import ingest
from clv_models.datasets import Uplift, inject_uplift, simulate_orders
from clv_models.experiments import assign_groups
from clv_models.tracking.mlflow_tracking import quiet_store_logs

quiet_store_logs()  # no notes from MLflow's store while it creates its tables
MLRUNS = Path(os.environ.get("CLV_NOTEBOOK_MLRUNS") or tempfile.mkdtemp(prefix="clv-notebook-"))
MLRUNS.mkdir(parents=True, exist_ok=True)
pd.set_option("display.width", 160)  # this notebook's display only


def show(figure):
    """A matplotlib Figure (the library never touches pyplot) as an inline PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return Image(buffer.getvalue())


shop = simulate_orders(20_000, seed=7, future_days=90)
cutoff, until = shop.end, shop.end + dt.timedelta(days=90)
print(f"{len(shop.orders):,} export lines up to {cutoff}, {len(shop.future):,} in the 90 days after")'''),
        ("md", "## 1. The experiments, in the scoring config\n\n`[[experiments]]` is a score-time section: it may "
               "differ from training's. Each names the actions it tests, the share held out as control and a salt."),
        ("code", '''config = MLRUNS / "score.toml"
config.write_text("""
[[experiments]]
name = "winback_coupon"
actions = ["automated_win_back"]
holdout_share = 0.5
salt = "2026-12"

[[experiments]]
name = "newsletter_null"
actions = ["newsletter"]
holdout_share = 0.2
salt = "2026-12-news"
""")
settings = load_settings(config, [f'tracking.root="{MLRUNS}"', f'validation.quarantine="{MLRUNS}/q/{{source}}.parquet"'])
settings.experiments'''),
        ("md", "## 2. Scores with groups\n\nThe action here: customers silent for more than 120 days get "
               "`automated_win_back`, the others `newsletter`. The group is a hash of the salt and the customer id: "
               "the same customer is in the same group in every run and on both engines."),
        ("code", '''with ingest(shop.orders, columns=shop.column_map()) as observed:
    last = observed.con.execute("SELECT customer_id, max(order_ts) AS last_order FROM orders GROUP BY 1").df()
silent = (pd.Timestamp(cutoff) + pd.Timedelta(days=1) - last["last_order"]).dt.days
actions = np.where(silent > 120, "automated_win_back", "newsletter").astype(object)
experiment, group = assign_groups(last["customer_id"], actions, settings.experiments)
scores = pd.DataFrame({"customer_id": last["customer_id"], "as_of": pd.Timestamp(cutoff), "next_best_action": actions,
                       "experiment": experiment, "experiment_group": group})
scores_path = MLRUNS / "scores.parquet"
scores.to_parquet(scores_path)
pd.crosstab(scores["experiment"], scores["experiment_group"], margins=True)'''),
        ("md", "## 3. What happened next, with a known effect\n\nThe orders of the 90 days after the cutoff as "
               "the shop placed them, plus a known uplift for the treated win-back customers: a 10 % chance of an "
               "extra order worth 40 and 20 % larger orders. `truth` is the effect the evaluation should find."),
        ("code", '''everything = MLRUNS / "all_orders.parquet"
shop.write(everything, which="all")
with ingest(everything, columns=shop.column_map(), quarantine_path=None) as canonical:
    orders = canonical.orders_frame()[["customer_id", "order_id", "order_ts", "amount"]]
start = dt.datetime.combine(cutoff + dt.timedelta(days=1), dt.time())
winback = scores.loc[scores["experiment"] == "winback_coupon", ["customer_id", "experiment_group"]]
injected = inject_uplift(orders, winback, Uplift(0.10, 40.0, 1.2), start=start, end=start + dt.timedelta(days=90),
                         seed=1)
after = MLRUNS / "orders_after.parquet"
injected.orders.to_parquet(after)
injected.truth'''),
        ("md", "## 4. The evaluation\n\n`clv evaluate-actions` in a function: treatment − control per experiment, "
               "action and outcome, Welch's 95 % interval and p-value, and the minimum detectable effect at 80 % "
               "power; logged as a `clv-actions` MLflow run."),
        ("code", '''from clv_models.scoring.action_effects import evaluate_actions

evaluation = load_settings(config, [f'tracking.root="{MLRUNS}"', f'orders.path="{after}"',
                                    f'validation.quarantine="{MLRUNS}/q/{{source}}.parquet"'])
result = evaluate_actions(evaluation, scores_path, until)
print(f"MLflow run {result.run_id}")
result.effects.round(4)'''),
        ("code", '''from clv_models.plotting import plot_action_effects
show(plot_action_effects(result.effects, "revenue").figure)'''),
        ("md", "## 5. Found, or not?\n\nThe uplift's interval covers the truth; the null experiment's covers 0."),
        ("code", '''columns = ["difference", "ci_low", "ci_high", "p_value", "mde"]
found = result.effects.set_index(["experiment", "outcome"])[columns]
found["truth"] = [injected.truth[o] if e == "winback_coupon" else 0.0 for e, o in found.index]
found["covered"] = (found["ci_low"] <= found["truth"]) & (found["truth"] <= found["ci_high"])
found.round(4)'''),
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
