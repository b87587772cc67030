"""Run settings: frozen pydantic models loaded from TOML, with dotted overrides.

Precedence, lowest first: the defaults below, the TOML file (``--config``), ``--set
section.key=value`` overrides, then dedicated CLI flags (``--orders``, ``--columns``, ``--as-of``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clv_models.errors import ClvInputError

CANONICAL_FIELDS = (
    "customer_id",
    "order_id",
    "order_ts",
    "amount",
    "quantity",
    "unit_price",
    "channel",
    "country",
    "category",
    "product_id",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnMap(_Frozen):
    """Which source column holds each canonical field (DESIGN.md §4).

    ``amount`` is either given, or computed as ``quantity × unit_price``. Without ``order_id``
    every source row is one order (as in CDNOW).
    """

    customer_id: str = "customer_id"
    order_ts: str = "order_ts"
    order_id: str | None = None
    amount: str | None = "amount"
    quantity: str | None = None
    unit_price: str | None = None
    channel: str | None = None
    country: str | None = None
    category: str | None = None
    # The product of each line (Online Retail: StockCode): kept per order for cross-sell (D43).
    product_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _quantity_times_price_replaces_default_amount(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("quantity") and data.get("unit_price") and "amount" not in data:
            return {**data, "amount": None}
        return data

    @classmethod
    def parse(cls, spec: str, base: ColumnMap | None = None) -> ColumnMap:
        """Parse ``customer_id=CustomerID,order_ts=InvoiceDate,...`` on top of ``base``.

        Giving ``quantity``/``unit_price`` without ``amount`` clears the default ``amount``.
        """
        values = (base or cls()).model_dump()
        given: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not value:
                raise ClvInputError(
                    f"--columns: '{part}' is not of the form field=SourceColumn "
                    f"(fields: {', '.join(CANONICAL_FIELDS)})"
                )
            if key not in CANONICAL_FIELDS:
                raise ClvInputError(
                    f"--columns: unknown field '{key}'; known fields: {', '.join(CANONICAL_FIELDS)}"
                )
            given[key] = value
        if ("quantity" in given or "unit_price" in given) and "amount" not in given:
            values["amount"] = None
        values.update(given)
        return cls(**values)


class SourceSettings(_Frozen):
    """Where the orders come from and how to read them."""

    path: str | None = Field(
        None,
        description="File path (CSV, Parquet, DuckDB, SQLite), a glob ('exports/*.csv') or directory of CSV or "
        "Parquet files (Hive partitions such as year=2024/month=01/ become columns), or a SQLAlchemy URL.",
    )
    format: Literal["auto", "csv", "parquet", "duckdb", "sql"] = "auto"
    table: str | None = Field(None, description="Table to read from a database source.")
    query: str | None = Field(None, description="SQL query to read from a database source.")
    delimiter: str | None = Field(None, description="CSV delimiter; detected when unset.")
    encoding: str | None = Field(None, description="CSV text encoding; detected when unset.")
    timestamp_format: str | None = Field(
        None, description="strptime format of order_ts text (e.g. '%m/%d/%Y %H:%M'); ISO when unset."
    )
    period_unit: Literal["day", "week"] | None = Field(
        None,
        description="order_ts holds whole period numbers (1, 2, …) counted in this unit; needs period_origin.",
    )
    period_origin: dt.date | None = Field(
        None,
        description="The date of period 1: period n is period_origin + (n - 1) days or weeks.",
    )
    frequency_only: bool = Field(
        False,
        description="An event log without amounts: no amount, quantity or unit_price is read and every order counts "
        "as one unit of value; the purchase models, churn, segments and tiers run on what is there (tiers rank by "
        "discounted expected purchases) and the money columns of the scores are null (docs/data.md).",
    )
    columns: ColumnMap = ColumnMap()

    @model_validator(mode="after")
    def _periods_need_an_origin(self) -> SourceSettings:
        if self.period_unit is not None and self.period_origin is None:
            raise ValueError("period_unit needs period_origin, the date of period 1 (e.g. 2024-01-01)")
        if self.period_origin is not None and self.period_unit is None:
            raise ValueError("period_origin needs period_unit (day or week)")
        if self.period_unit is not None and self.timestamp_format is not None:
            raise ValueError("period_unit and timestamp_format exclude each other: order_ts is either numbers or text")
        return self


class ValidationSettings(_Frozen):
    """Row-level validation and the quarantine (DESIGN.md §4 'Bad input')."""

    max_bad_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Fail when malformed rows (bad timestamp/amount, duplicate line) exceed this share.",
    )
    quarantine: str | None = Field(
        "quarantine/{source}.parquet",
        description="Quarantine Parquet path written by the CLI; '{source}' is the source file's stem (a "
        "directory's name, or a glob's fixed part).",
    )
    drop_duplicate_lines: bool = Field(
        True, description="Quarantine exact repeats of a line within one order (needs order_id)."
    )
    duplicate_rows: Literal["keep", "drop"] = Field(
        "keep",
        description="Without an order id, exact repeats of a row (every column equal) are counted and reported; "
        "'keep' makes each one an order (two equal purchases on a day, as lifetimes counts them), 'drop' "
        "quarantines the repeats as duplicate_row.",
    )
    zero_amount: Literal["quarantine", "purchase"] = Field(
        "purchase",
        description="Orders whose lines sum to exactly 0 (and nothing was returned): 'purchase' (default: a purchase "
        "worth 0, as lifetimes and the BTYD literature count CDNOW's $0 rows; then CDNOW master's RFM equals "
        "lifetimes' summary row for row) or 'quarantine' (non_positive_order; not a purchase).",
    )


class FeatureSettings(_Frozen):
    """RFM summary settings (DESIGN.md §2)."""

    unit: Literal["D", "W"] = "D"
    as_of: dt.date | None = Field(None, description="Cutoff (end of that day); default: last order date.")
    holdout_end: dt.date | None = Field(None, description="End of the holdout window (inclusive day).")

    @field_validator("holdout_end")
    @classmethod
    def _holdout_after_cutoff(cls, value: dt.date | None, info: Any) -> dt.date | None:
        as_of = info.data.get("as_of")
        if value is not None and as_of is not None and value <= as_of:
            raise ValueError(f"holdout_end {value} must be after as_of {as_of}")
        return value


class ValuationSettings(_Frozen):
    """CLV: expected discounted margin over a horizon. The field names are the keyword arguments
    of :func:`clv_models.valuation.customer_lifetime_value` (pass ``**settings.model_dump()``)."""

    horizon: str = Field("12M", description="CLV horizon with its unit: '12M' (month = 30.4375 days), '52W', '365D'.")
    annual_discount_rate: float = Field(0.10, ge=0.0, le=1.0, description="Yearly discount rate, e.g. 0.10.")
    margin: float = Field(1.0, gt=0.0, le=1.0, description="Share of revenue kept as margin (1.0 = revenue).")

    @field_validator("horizon")
    @classmethod
    def _horizon_has_unit(cls, value: str) -> str:
        from clv_models.timeunits import parse_horizon

        try:
            parse_horizon(value)
        except ClvInputError as exc:
            raise ValueError(str(exc)) from None
        return value


class ChurnSettings(_Frozen):
    """Churn classifier (DESIGN.md §2 'churn'): labels, rolling-origin snapshots, LightGBM tuned
    with Optuna, calibration. See ``clv_models.features.churn`` and ``clv_models.models.churn``."""

    window_days: int | None = Field(
        None,
        ge=1,
        description="A customer churns if they place no order in (cutoff, cutoff + window] (days). Unset: from the "
        "shop's rhythm, the 80th percentile of repeat-purchase gaps in whole weeks, 14-365 (decisions D33).",
    )
    train_cutoffs: int = Field(12, ge=1, description="Number of rolling-origin training snapshots (at most).")
    cutoff_step_days: int = Field(30, ge=1, description="Days between consecutive training snapshots.")
    min_history_days: int = Field(
        30, ge=0, description="A training snapshot needs this many days of orders before it."
    )
    n_trials: int = Field(30, ge=1, description="Optuna trials (upper bound).")
    timeout_seconds: float | None = Field(
        None, gt=0, description="Optuna time budget; unset = trials only (a budget makes results machine-dependent)."
    )
    n_folds: int = Field(4, ge=2, description="Cross-validation folds over training snapshots, grouped by customer.")
    seed: int = Field(42, description="Seed for folds, the TPE sampler and LightGBM.")
    tuning_metric: Literal["auc", "log_loss"] = Field(
        "log_loss", description="Cross-validated score Optuna optimises (log loss rewards calibrated probabilities)."
    )
    calibration: Literal["isotonic", "sigmoid"] = Field(
        "sigmoid", description="Platt scaling (keeps the ranking) or isotonic; fitted on the validation snapshot."
    )
    class_balance: Literal["balanced", "none"] = Field(
        "none",
        description="'balanced' weights classes equally in training (for rare churn; tune on auc then); "
        "calibration restores probabilities.",
    )
    early_stopping_rounds: int = Field(50, ge=1)
    max_rounds: int = Field(1000, ge=10)
    threads: int = Field(
        1,
        ge=1,
        description="LightGBM threads. 1 by default: with 2+ OpenMP threads on a busy machine LightGBM slows 100×.",
    )
    btyd_penalizer: float = Field(
        0.0, ge=0.0, description="L2 penalizer of the per-snapshot BG/NBD and Gamma-Gamma fits."
    )
    max_categories: int = Field(
        30, ge=1, description="Most frequent values kept per categorical feature; the rest 'other'."
    )
    max_train_rows: int | None = Field(
        2_000_000,
        ge=1000,
        description="Training snapshots keep a fixed hash-chosen share of customers so they hold at most about "
        "this many rows (validation and test keep everyone).",
    )
    tuning_rows: int | None = Field(
        200_000,
        ge=1000,
        description="Optuna trials use whole customers sampled up to this many rows; the final fit uses all.",
    )
    boost_from: Literal["bgnbd_p_no_purchase_w", "none"] = Field(
        "bgnbd_p_no_purchase_w",
        description="Start boosting from this BTYD probability's log-odds (the trees learn corrections); "
        "'none' = from 0.",
    )
    season_shift: Literal["auto", "off"] = Field(
        "auto",
        description="Shift the calibrated churn log-odds by the churn rate's move between the calibration cutoff "
        "and the cutoff scored, as measured on the same dates a year earlier. 'auto': when the history reaches a "
        "year before the calibration cutoff and that move exceeds 5 points (decisions D46).",
    )
    season_features: Literal["auto", "on", "off"] = Field(
        "off",
        description="Calendar features of the cutoff (day of the year as sin/cos) so the classifier learns a "
        "seasonal churn rate; 'auto': on when the training cutoffs span every season (330 days). Off by default: "
        "their calibration gain did not hold across sample sizes and tuning budgets (decisions D46).",
    )


class ValueSettings(_Frozen):
    """What the value tiers rank customers by (decisions D40, D42): a learned value model (LightGBM,
    tuned with Optuna) judged out of time beside past spend and BTYD CLV, the tiers cut from the
    best that is never worse than past spend. The keys besides ``ranker`` are those of
    ``clv_models.training.value.ValueTrainingSettings``; the snapshot schedule comes from ``[churn]``."""

    ranker: Literal["auto", "btyd_clv"] = Field(
        "auto",
        description="'auto': train the value model, compare it with past spend and BTYD CLV out of time and cut the "
        "tiers from the best never worse than past spend; 'btyd_clv': no value model, tiers cut from clv_h as "
        "before (decisions D42).",
    )
    window_days: int | None = Field(
        None,
        ge=7,
        description="Value window W (days): revenue in (cutoff, cutoff + W] is what the model predicts. Unset: the "
        "longest whole-week window ≤ horizon_days leaving min_train_cutoffs training snapshots.",
    )
    horizon_days: int = Field(365, ge=7, description="Longest value window (days).")
    min_train_cutoffs: int = Field(6, ge=1, description="Training snapshots the chosen window must leave.")
    method: Literal["two_part", "tweedie"] = Field(
        "two_part", description="P(buy) × E[revenue | buy] (two LightGBM heads) or one Tweedie regressor."
    )
    n_trials: int = Field(
        10, ge=1, description="Optuna trials per part (two parts for two_part); the main cost of the value model."
    )
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        description="Optuna time budget per part; unset = trials only (a budget makes results machine-dependent).",
    )
    n_folds: int = Field(4, ge=2, description="Cross-validation folds over training snapshots, grouped by customer.")
    seed: int = Field(42, description="Seed for folds, the TPE sampler, LightGBM and the tuning sample.")
    early_stopping_rounds: int = Field(50, ge=1)
    max_rounds: int = Field(1000, ge=10)
    threads: int = Field(1, ge=1, description="LightGBM threads (1: see churn.threads).")
    max_categories: int = Field(30, ge=1, description="Most frequent values kept per categorical feature.")
    boost_from: Literal["btyd", "none"] = Field(
        "btyd", description="Start both heads from the BTYD expectation over W (the trees learn corrections), or 0."
    )
    calibration: Literal["scale", "none"] = Field(
        "scale", description="One factor matching the validation snapshot's total revenue, or none."
    )
    tuning_rows: int | None = Field(
        200_000, ge=1000, description="Optuna trials use whole customers sampled up to this many rows."
    )
    bootstrap_replicates: int = Field(
        200, ge=20, description="Paired bootstrap resamples of the test customers behind 'worse than' (D40)."
    )


SEGMENT_NAMES = ("core", "potential", "new", "at_risk", "sleeping", "lost")
VALUE_TIERS = ("high", "medium", "low")
RISK_BANDS = ("high", "medium", "low")
LIFECYCLE_STAGES = ("new", "growing", "mature", "at_risk", "churned")


class SegmentSettings(_Frozen):
    """KMeans segmenter (``clv_models.models.segments``): k by silhouette, names from centroids."""

    k_min: int = Field(3, ge=2, description="Smallest number of segments tried.")
    k_max: int = Field(
        6, ge=2, le=len(SEGMENT_NAMES), description=f"Largest number tried (≤ {len(SEGMENT_NAMES)}: one name each)."
    )
    silhouette_sample: int = Field(
        10_000, ge=100, description="Customers sampled (seeded) to compute the silhouette (quadratic in rows)."
    )
    minibatch_threshold: int = Field(
        200_000, ge=1000, description="MiniBatchKMeans above this many customers, KMeans below."
    )
    n_init: int = Field(10, ge=1, description="KMeans restarts per k (the best inertia is kept).")
    seed: int = Field(42, description="Seed of the silhouette sample and the KMeans initialisations.")
    keep_previous_k: bool = Field(
        True, description="When retraining against a previous model, keep its number of segments."
    )

    @model_validator(mode="after")
    def _range(self) -> SegmentSettings:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min {self.k_min} must be ≤ k_max {self.k_max}")
        return self


class TierSettings(_Frozen):
    """Value tiers from predicted CLV: cut points fitted once on the training population.

    Either shares (top ``high_share`` high, next ``medium_share`` medium, the rest low) or explicit
    CLV thresholds (currency) when both ``high_threshold`` and ``medium_threshold`` are set."""

    high_share: float = Field(0.20, gt=0.0, lt=1.0)
    medium_share: float = Field(0.30, gt=0.0, lt=1.0)
    high_threshold: float | None = Field(None, description="CLV at or above which a customer is high value.")
    medium_threshold: float | None = Field(None, description="CLV at or above which a customer is medium value.")

    @model_validator(mode="after")
    def _consistent(self) -> TierSettings:
        if self.high_share + self.medium_share >= 1.0:
            raise ValueError(f"high_share + medium_share must be < 1, got {self.high_share + self.medium_share:g}")
        given = (self.high_threshold is not None) + (self.medium_threshold is not None)
        if given == 1:
            raise ValueError("set both high_threshold and medium_threshold, or neither")
        if given == 2 and not self.medium_threshold < self.high_threshold:  # type: ignore[operator]
            raise ValueError(
                f"medium_threshold {self.medium_threshold} must be below high_threshold {self.high_threshold}"
            )
        return self


class ChurnRiskSettings(_Frozen):
    """Churn-risk bands of the calibrated churn probability, cut points fitted at training
    (``clv_models.valuation.risk.ChurnRiskBands``, decisions D33): ``share`` (default) makes the
    ``high_share`` riskiest customers of the training base ``high`` and the next ``medium_share``
    ``medium``; ``absolute`` uses high ≥ ``high``, medium ≥ ``medium``."""

    mode: Literal["share", "absolute"] = "share"
    high_share: float = Field(0.15, gt=0.0, lt=1.0)
    medium_share: float = Field(0.25, gt=0.0, lt=1.0)
    high: float = Field(0.6, gt=0.0, lt=1.0)
    medium: float = Field(0.3, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> ChurnRiskSettings:
        if not self.medium < self.high:
            raise ValueError(f"medium {self.medium} must be below high {self.high}")
        if self.high_share + self.medium_share >= 1.0:
            raise ValueError(f"high_share + medium_share must be < 1, got {self.high_share + self.medium_share:g}")
        return self


class LifecycleSettings(_Frozen):
    """Lifecycle stage rules (``clv_models.valuation.lifecycle``), applied in this order:

    1. ``new``: tenure (days since the first purchase) ≤ ``new_max_tenure_days``;
    2. ``churned``: P(alive) < ``churned_max_p_alive`` or churn probability ≥ ``churned_min_churn_probability``;
    3. ``at_risk``: P(alive) < ``at_risk_max_p_alive`` or churn probability ≥ ``at_risk_min_churn_probability``;
    4. ``growing``: more orders in the last 180 days than in the 180 before, or tenure ≤ ``growing_max_tenure_days``;
    5. ``mature``: everyone else."""

    new_max_tenure_days: int = Field(90, ge=0)
    churned_max_p_alive: float = Field(0.15, ge=0.0, le=1.0)
    churned_min_churn_probability: float = Field(0.9, ge=0.0, le=1.0)
    at_risk_max_p_alive: float = Field(0.5, ge=0.0, le=1.0)
    at_risk_min_churn_probability: float = Field(0.6, ge=0.0, le=1.0)
    growing_max_tenure_days: int = Field(180, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleSettings:
        if self.churned_max_p_alive > self.at_risk_max_p_alive:
            raise ValueError("churned_max_p_alive must be ≤ at_risk_max_p_alive (churned is the stronger signal)")
        if self.churned_min_churn_probability < self.at_risk_min_churn_probability:
            raise ValueError(
                "churned_min_churn_probability must be ≥ at_risk_min_churn_probability (churned is the stronger signal)"
            )
        if self.growing_max_tenure_days < self.new_max_tenure_days:
            raise ValueError("growing_max_tenure_days must be ≥ new_max_tenure_days")
        return self


class ActionRule(_Frozen):
    """One row of the next-best-action table: every given field must match ('*' matches anything)."""

    value_tier: str = "*"
    churn_risk: str = "*"
    lifecycle_stage: str = "*"
    segment: str = "*"
    action: str

    @model_validator(mode="after")
    def _known_values(self) -> ActionRule:
        allowed = {
            "value_tier": VALUE_TIERS,
            "churn_risk": RISK_BANDS,
            "lifecycle_stage": LIFECYCLE_STAGES,
            "segment": SEGMENT_NAMES,
        }
        for name, values in allowed.items():
            value = getattr(self, name)
            if value != "*" and value not in values:
                raise ValueError(f"{name} '{value}' is not one of {', '.join(values)} or '*'")
        if not self.action.strip():
            raise ValueError("action must not be empty")
        return self


DEFAULT_ACTION_RULES = (
    ActionRule(value_tier="high", churn_risk="high", action="personal_retention_outreach"),
    ActionRule(value_tier="high", churn_risk="low", action="vip_service_early_access"),
    ActionRule(value_tier="high", churn_risk="medium", action="loyalty_rewards"),
    ActionRule(lifecycle_stage="new", action="onboarding_second_purchase"),
    ActionRule(segment="sleeping", action="reactivation_offer"),
    ActionRule(value_tier="low", churn_risk="high", action="automated_win_back"),
    ActionRule(lifecycle_stage="churned", action="automated_win_back"),
    ActionRule(value_tier="medium", action="cross_sell_bundles"),
)


class ActionSettings(_Frozen):
    """Next best action: the first rule whose fields all match wins; ``default`` otherwise."""

    rules: tuple[ActionRule, ...] = DEFAULT_ACTION_RULES
    default: str = Field("newsletter", min_length=1)


class LabelSettings(_Frozen):
    """Display labels of tiers, risk bands, segments, stages and actions in the scores table."""

    language: Literal["en", "zh"] = "en"
    overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Code (or column.code) → label replacing the language's label, "
        'e.g. "segment.core" = "Champions".',
    )


class LtvSettings(_Frozen):
    """BG/NBD and Gamma-Gamma in the training pipeline: an out-of-time evaluation split, then the
    production fit on all orders up to the cutoff."""

    holdout_days: int = Field(
        180, ge=7, description="Evaluation: models fitted on orders up to cutoff − holdout_days, judged on the rest."
    )
    penalizer: float = Field(0.0, ge=0.0, description="L2 penalizer of both fits (0 = plain maximum likelihood).")
    model: Literal["auto", "bgnbd", "mbgnbd", "pnbd"] = Field(
        "auto",
        description="Purchase model: auto = the one of BG/NBD, MBG/NBD, Pareto/NBD with the lowest holdout purchases "
        "RMSE among fits the data identify (decisions D31); or name one.",
    )


class TrackingSettings(_Frozen):
    """Where MLflow runs and registered models go (DESIGN.md §5)."""

    uri: str | None = Field(
        None, description="Tracking URI; unset = $MLFLOW_TRACKING_URI, else sqlite:///<root>/mlruns/mlflow.db."
    )
    root: str = Field(".", description="Directory holding mlruns/ (the SQLite store and the artifacts).")
    train_experiment: str = "clv-train"
    score_experiment: str = "clv-score"
    actions_experiment: str = Field("clv-actions", description="Experiment of clv evaluate-actions runs.")
    model_name: str = Field("clv-customer-scorer", min_length=1, description="Registered model name.")
    request_timeout_seconds: int = Field(
        5, ge=1, description="Seconds one request to an HTTP tracking server may take (MLFLOW_HTTP_REQUEST_TIMEOUT)."
    )
    request_retries: int = Field(
        1, ge=0, description="Retries of a failed tracking request (MLFLOW_HTTP_REQUEST_MAX_RETRIES; backoff 1 s, 2 s, …)."
    )


class GateSettings(_Frozen):
    """Quality gate before a trained scorer may become the ``champion``.

    The gate passes when every metric in ``minimum`` is ≥ its bound and every metric in
    ``maximum`` is ≤ its bound. The champion alias then moves only if ``compare_metric`` beats
    the current champion's by at least ``min_improvement`` (or there is no champion yet)."""

    minimum: dict[str, float] = Field(
        default_factory=lambda: {
            "churn_shipped_auc": 0.6,
            "holdout_clv_spearman": 0.2,
            "churn_shipped_not_worse_than_baselines": 1.0,
        }
    )
    maximum: dict[str, float] = Field(default_factory=lambda: {"churn_shipped_ece": 0.2})
    compare_metric: str = "churn_shipped_auc"
    higher_is_better: bool = True
    min_improvement: float = Field(0.0, ge=0.0)


class ScoringSettings(_Frozen):
    """``clv score``: chunked, atomic, deterministic output and drift checks."""

    model: str = Field("models:/clv-customer-scorer@champion", description="Model URI or exported model directory.")
    out: str = Field("scores/scores.parquet", description="Output path; .parquet or .csv.")
    chunk_customers: int = Field(250_000, ge=1, description="Customers scored per chunk (bounds memory).")
    psi_warning: float = Field(0.2, gt=0.0, description="Warn when a PSI vs training exceeds this.")
    labels_in_output: bool = Field(True, description="Write display labels ([labels]) instead of codes.")
    columns: tuple[str, ...] = Field(
        (), description="Scores columns to write (customer_id is always first); empty: every column."
    )
    accept_missing_columns: tuple[Literal["quantity", "category", "country", "channel"], ...] = Field(
        (),
        description="Optional order columns (quantity, category, country, channel) the model's features read that "
        "may be missing from the scoring orders; their features are then scored as missing, with a warning.",
    )
    engine: Literal["embedded", "spark"] = Field(
        "embedded", description="embedded (DuckDB + pandas, one machine) or spark ([spark] section)."
    )
    duckdb_memory_limit: str | None = Field(
        "1GB", description="DuckDB memory cap while scoring (tables spill to a temp dir beyond it); unset: 80 % of RAM."
    )


EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ExperimentSettings(_Frozen):
    """One A/B test of next best actions (``[[experiments]]``, a score-time setting): every
    customer whose action is in ``actions`` is assigned to ``control`` (a hash of ``salt`` and the
    customer id below ``holdout_share``) or ``treatment``; see ``clv_models.experiments``."""

    name: str = Field(
        ..., description="Experiment name written to the scores' experiment column (letters, digits, _ -)."
    )
    actions: tuple[str, ...] = Field(..., min_length=1, description="Next-best-action codes the experiment covers.")
    holdout_share: float = Field(
        0.5, gt=0.0, lt=1.0, description="Share of the covered customers held out as control (not contacted)."
    )
    salt: str = Field(..., min_length=1, description="Hashed with the customer id: a new salt draws new groups.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not EXPERIMENT_NAME.fullmatch(value):
            raise ValueError(f"experiment name {value!r}: use 1-64 letters, digits, '_' or '-'")
        return value


def _experiments_apart(experiments: tuple[ExperimentSettings, ...]) -> tuple[ExperimentSettings, ...]:
    """Refuse two experiments with one name, or two covering one action (a customer's group would
    depend on which one is read first)."""
    names: set[str] = set()
    owner: dict[str, str] = {}
    for experiment in experiments:
        if experiment.name in names:
            raise ValueError(f"two experiments are named {experiment.name!r}; give each its own name")
        names.add(experiment.name)
        for action in experiment.actions:
            if action in owner:
                raise ValueError(
                    f"action {action!r} is in experiments {owner[action]!r} and {experiment.name!r}; "
                    "an action may be tested by one experiment at a time"
                )
            owner[action] = experiment.name
    return experiments


Experiments = typing.Annotated[tuple[ExperimentSettings, ...], AfterValidator(_experiments_apart)]


class SparkSettings(_Frozen):
    """The Spark engine (``--engine spark``): where it runs and how it writes.

    ``master``: ``local[2]``, ``spark://host:7077``, ``yarn``, … (empty: whatever spark-submit
    or the Databricks cluster configured). ``conf``: extra Spark properties, e.g.
    ``{"spark.driver.memory" = "8g"}``. ``partition_by``: Hive-style partition columns of the
    scores directory (``value_tier``, ``churn_risk``, ``segment``, ``lifecycle_stage``, ``as_of``)."""

    master: str = "local[2]"
    conf: dict[str, str] = Field(default_factory=dict)
    partition_by: tuple[str, ...] = ()


class CrossSellSettings(_Frozen):
    """Cross-sell from co-purchases (decisions D43); used only when ``orders.columns.product_id`` is
    mapped."""

    method: Literal["cosine", "lift", "popularity"] = Field(
        "cosine",
        description="Item-item cosine similarity (chosen by measurement, D43), association lift, or popularity.",
    )
    k: int = Field(5, ge=1, le=50, description="Products recommended per cross-sell customer.")
    neighbours: int = Field(20, ge=1, description="Most similar products stored per product (measured: D43).")
    holdout_days: int = Field(
        90, ge=7, description="Out-of-time evaluation: fit before cutoff − holdout_days, judge on the days after."
    )
    exclude_products: tuple[str, ...] = Field(
        (), description="Product ids never recommended (postage, fees, vouchers: e.g. Online Retail's POST, M, D)."
    )
    actions: tuple[str, ...] = Field(
        ("cross_sell_bundles",), description="next_best_action codes that get recommended_products."
    )


class Settings(_Frozen):
    orders: SourceSettings = SourceSettings()
    validation: ValidationSettings = ValidationSettings()
    features: FeatureSettings = FeatureSettings()
    valuation: ValuationSettings = ValuationSettings()
    churn: ChurnSettings = ChurnSettings()
    value: ValueSettings = ValueSettings()
    segments: SegmentSettings = SegmentSettings()
    tiers: TierSettings = TierSettings()
    churn_risk: ChurnRiskSettings = ChurnRiskSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    actions: ActionSettings = ActionSettings()
    labels: LabelSettings = LabelSettings()
    ltv: LtvSettings = LtvSettings()
    tracking: TrackingSettings = TrackingSettings()
    gate: GateSettings = GateSettings()
    scoring: ScoringSettings = ScoringSettings()
    spark: SparkSettings = SparkSettings()
    xsell: CrossSellSettings = CrossSellSettings()
    experiments: Experiments = ()  # score-time: [[experiments]] may differ from training's


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ClvInputError(f"--set {dotted}: '{key}' is not a section")
    node[keys[-1]] = value


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ClvInputError(f"--set '{item}' is not of the form section.key=value")
    raw = raw.strip()
    try:  # TOML literal first (numbers, booleans, quoted strings, dates) …
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:  # … otherwise a bare string
        value = raw
    return key.strip(), value


ISO_DATE_EXAMPLE = "2019-03-31"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATE_AND_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[T ]\d")
# Other common ways of writing a day, with how each reads it. A value that only one of them reads
# (or that all read as the same day) is told that day's ISO form; one read two ways is told both.
_OTHER_DATE_FORMATS = (
    ("%Y-%m-%d", "year-month-day"),  # 2019-3-31: unpadded
    ("%Y/%m/%d", "year/month/day"),
    ("%Y.%m.%d", "year.month.day"),
    ("%Y%m%d", "YYYYMMDD"),
    ("%m/%d/%Y", "month/day/year"),
    ("%d/%m/%Y", "day/month/year"),
    ("%m-%d-%Y", "month-day-year"),
    ("%d-%m-%Y", "day-month-year"),
    ("%d.%m.%Y", "day.month.year"),
    ("%m/%d/%y", "month/day/year"),
    ("%d/%m/%y", "day/month/year"),
    ("%d %b %Y", "day month year"),
    ("%d %B %Y", "day month year"),
    ("%b %d %Y", "month day year"),
    ("%B %d %Y", "month day year"),
    ("%b %d, %Y", "month day, year"),
    ("%B %d, %Y", "month day, year"),
    ("%d-%b-%Y", "day-month-year"),
    ("%d-%b-%y", "day-month-year"),
)
_DATE_ERRORS = {"date_type", "date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact"}


def _readings(text: str) -> dict[dt.date, str]:
    """The days ``text`` means in the common formats above (first reading's name per day)."""
    days: dict[dt.date, str] = {}
    for fmt, name in _OTHER_DATE_FORMATS:
        if fmt == "%Y%m%d" and not re.fullmatch(r"\d{8}", text):
            continue  # strptime would read 2019111 as Nov 1 or Jan 11 without saying
        try:
            days.setdefault(dt.datetime.strptime(text, fmt).date(), name)
        except ValueError:
            pass
    return days


def bad_date_message(value: Any, flag: str = "") -> str:
    """One line saying why ``value`` is not a date setting and what to write instead: the format
    YYYY-MM-DD and, when the value reads as a day in another common format, that day in ISO form.
    ``flag`` (e.g. ``"--as-of "``) is put before the value and before every suggested fix."""
    example = f"write it as {flag}YYYY-MM-DD, e.g. {flag}{ISO_DATE_EXAMPLE}"
    if isinstance(value, dt.datetime):
        shown = f"{flag}{value.isoformat()!r}"
        return f"{shown} is a time, not a day (a date means the end of that day); write {flag}{value.date()}"
    text = str(value).strip()
    shown = f"{flag}{text!r}"
    if _ISO_DATE.fullmatch(text):
        try:
            dt.date.fromisoformat(text)
        except ValueError as exc:
            return f"{shown} is not a day of the calendar ({exc}); write a real day, e.g. {flag}{ISO_DATE_EXAMPLE}"
    moment = _ISO_DATE_AND_TIME.match(text)
    if moment:
        try:
            day = dt.date.fromisoformat(moment.group(1))
        except ValueError:
            pass
        else:
            return f"{shown} is a time, not a day (a date means the end of that day); write {flag}{day}"
    days = _readings(text)
    if len(days) == 1:
        day, name = next(iter(days.items()))
        return f"{shown} is not a date in the form YYYY-MM-DD; did you mean {flag}{day} ({name})?"
    if len(days) > 1:
        ways = " or ".join(f"{flag}{day} ({name})" for day, name in days.items())
        return (
            f"{shown} is not a date in the form YYYY-MM-DD and reads {len(days)} ways: {ways}; write the one you mean"
        )
    return f"{shown} is not a date; {example}"


def parse_date_flag(value: str | None, flag: str) -> dt.date | None:
    """A command-line date (``--as-of``): exactly YYYY-MM-DD, else the one-line error of
    :func:`bad_date_message` naming the flag."""
    if value is None:
        return None
    text = value.strip()
    if _ISO_DATE.fullmatch(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise ClvInputError(bad_date_message(value, flag=f"{flag} "))


def _model_under(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The settings model that holds the last key of ``loc`` (``Settings`` for a section name)."""

    def model_in(annotation: Any) -> type[BaseModel] | None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
        return next(filter(None, map(model_in, typing.get_args(annotation))), None)

    model: type[BaseModel] | None = Settings
    for key in loc[:-1]:
        if isinstance(key, int):  # an item of a list of models, e.g. actions.rules.0
            continue
        field = model.model_fields.get(key) if model else None
        model = model_in(field.annotation) if field else None
    return model


def _unknown_key_message(loc: tuple[Any, ...]) -> str:
    """Which key is unknown and the closest valid one, else the section's valid keys."""
    key = str(loc[-1])
    parents = [str(p) for p in loc[:-1]]
    model = _model_under(loc)
    if model is None:
        return "unknown key"
    known = list(model.model_fields)
    if not parents:
        what, valid = f"unknown section '{key}'", "sections"
    else:
        what, valid = f"unknown key '{key}' in [{'.'.join(parents)}]", "valid keys"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"{what}; did you mean {'.'.join([*parents, close[0]])}?"
    if len(parents) == 1:  # the right key in the wrong section, e.g. features.n_trials
        sections = {name: _model_under((name, key)) for name in Settings.model_fields}
        elsewhere = [name for name, section in sections.items() if section and key in section.model_fields]
        if elsewhere:
            return f"{what}; did you mean {elsewhere[0]}.{key}?"
    return f"{what}; {valid}: {', '.join(known)}"


def _explain(error: Any) -> str:
    """A pydantic error as the fix a user needs: unknown keys and dates get their own words."""
    if error["type"] == "extra_forbidden":
        return _unknown_key_message(tuple(error["loc"]))
    if error["type"] in _DATE_ERRORS:
        return bad_date_message(error["input"])
    return error["msg"]


def load_settings(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> Settings:
    """Load settings from a TOML file (optional), then apply ``section.key=value`` overrides
    (TOML literals), then ``values`` (already-typed dotted keys, e.g. from CLI flags)."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ClvInputError(f"{path}: config file not found; pass an existing TOML file to --config")
        try:
            tree = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ClvInputError(f"{path}: invalid TOML ({exc}); fix the file") from None
    for item in overrides or []:
        _set_dotted(tree, *_parse_override(item))
    for key, value in (values or {}).items():
        if value is not None:
            _set_dotted(tree, key, value)
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        source = f"{path}: " if path else ""
        more = f" (1 of {exc.error_count()} errors)" if exc.error_count() > 1 else ""
        raise ClvInputError(f"{source}config error at '{where}': {_explain(first)}{more}") from None


def settings_to_toml(settings: Settings) -> str:
    """The effective settings as TOML (``None`` values are omitted: TOML has no null)."""
    import tomli_w

    def drop_none(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: drop_none(v) for k, v in node.items() if v is not None}
        return node

    return tomli_w.dumps(drop_none(settings.model_dump(mode="python")))
