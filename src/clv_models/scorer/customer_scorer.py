"""The customer scorer: every fitted model, the decision rules and the drift reference in one
picklable object. Logged to MLflow as the ``clv-customer-scorer`` pyfunc (DESIGN.md §5); its
``score`` turns the feature table of :func:`clv_models.features.customer.customer_features` into
the scores table of DESIGN.md §4. It fits nothing: a row's scores depend on that row alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clv_models.errors import ClvInputError
from clv_models.evaluation.drift import DriftReference
from clv_models.features.calendar import CALENDAR_FEATURES
from clv_models.features.churn import OPTIONAL_SOURCES
from clv_models.features.customer import RFM_COLUMNS
from clv_models.models.btyd_features import BTYD_FEATURES, DAILY_RFM
from clv_models.scorer.values import CustomerModels, assign_decisions, customer_values

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import LabelSettings, Settings

# DESIGN.md §4 scores table, in order (provenance columns are added by the scoring job).
SCORE_COLUMNS = (
    "customer_id",
    "as_of",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "p_alive",
    "expected_purchases_h",
    "expected_order_value",
    "clv_h",
    "value_forecast",
    "value_tier",
    "churn_probability",
    "churn_risk",
    "segment",
    "lifecycle_stage",
    "next_best_action",
)
# Null in the scores of a frequency-only scorer (an event log without amounts, decisions D41).
MONEY_COLUMNS = ("monetary_value", "expected_order_value", "clv_h", "value_forecast")
PROVENANCE_COLUMNS = ("model_uri", "model_version", "scored_at")
# Features and scores whose drift against training is measured at scoring time.
DRIFT_COLUMNS = (
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "days_since_last",
    "avg_order_value",
    "p_alive",
    "clv_h",
    "value_forecast",
    "churn_probability",
)
SEGMENT_INPUTS = ("days_since_last", "frequency", "avg_order_value", "T_days")
LIFECYCLE_INPUTS = ("T_days", "orders_180d", "orders_180_360d")


@dataclass
class CustomerScorer:
    """Fitted models + the settings that shape decisions + what scoring needs to check input.

    ``settings``: the training settings; the decision sections (valuation, churn risk, lifecycle,
    actions, tiers) are fixed by them, only the labels may change at scoring."""

    models: CustomerModels
    settings: Settings
    unit: str
    trained_as_of: str
    drift_reference: dict[str, DriftReference] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def _feature_models(self) -> list[Any]:
        """The fitted models that read snapshot features by name: the churn classifier and the
        value model (when the tiers rank by it)."""
        ranker = getattr(self.models, "value_ranker", None)
        return [m for m in (self.models.churn, getattr(ranker, "model", None)) if m is not None]

    @property
    def optional_columns(self) -> tuple[str, ...]:
        """The optional order columns (quantity, category, country, channel) whose features the
        models read: scoring orders must map them too."""
        read = {str(c) for model in self._feature_models for c in model.feature_names_}
        return tuple(source for source, feature in OPTIONAL_SOURCES.items() if feature in read)

    @property
    def categorical_inputs(self) -> list[str]:
        names = [str(c) for model in self._feature_models for c in model.categorical_features]
        return list(dict.fromkeys(names))

    @property
    def input_columns(self) -> list[str]:
        """Columns ``score`` reads besides ``customer_id``: numeric (float64) then categorical."""
        names = list(RFM_COLUMNS)
        if self.models.churn is not None:
            # The BTYD features are computed here from the daily RFM, by the stored models.
            names += list(DAILY_RFM)
            # The calendar features are computed here too, from as_of (D46).
            names += [c for c in self.models.churn.feature_names_ if c not in (*BTYD_FEATURES, *CALENDAR_FEATURES)]
        ranker = getattr(self.models, "value_ranker", None)
        if ranker is not None:
            names += [c for c in ranker.input_columns() if c not in CALENDAR_FEATURES]  # BTYD: it derives them
        names += [*SEGMENT_INPUTS, *LIFECYCLE_INPUTS]
        seen: dict[str, None] = {}
        for name in names:
            seen.setdefault(name, None)
        categorical = self.categorical_inputs
        numeric = [c for c in seen if c not in categorical]
        return ["as_of", *numeric, *categorical]

    @property
    def frequency_only(self) -> bool:
        """Trained on an event log without amounts (decisions D41); older scorers had amounts."""
        return bool(getattr(self.settings.orders, "frequency_only", False))

    def fit_drift_reference(self, scored: pd.DataFrame) -> None:
        """Decile bins of the training population's features and scores (for PSI at scoring)."""
        # Without amounts the money columns are null in the scores: nothing to compare.
        skip = MONEY_COLUMNS if self.frequency_only else ()
        self.drift_reference = {
            c: DriftReference.fit(scored[c])
            for c in DRIFT_COLUMNS
            if c in scored.columns and c not in skip and scored[c].notna().any()  # p_alive of a fit not identified
        }

    def check_input(self, features: pd.DataFrame) -> None:
        missing = [c for c in ("customer_id", *self.input_columns) if c not in features.columns]
        if missing:
            raise ClvInputError(
                f"scoring input lacks column(s) {', '.join(missing)}; build it with "
                "clv_models.features.customer.customer_features (or `clv score`)"
            )
        declared = features.attrs.get("unit")
        if declared is not None and declared != self.unit:
            raise ClvInputError(
                f"the scorer was trained in unit {self.unit!r} but the features are in {declared!r}; "
                f"compute features with unit={self.unit!r}"
            )

    def score(
        self, features: pd.DataFrame, *, codes: bool = False, labels: LabelSettings | None = None
    ) -> pd.DataFrame:
        """Scores table (DESIGN.md §4 columns, codes or display labels) for ``features``.

        ``as_of`` comes from the table's ``as_of`` column and is returned as ``YYYY-MM-DD``. ``labels``: the display labels (default:
        the training settings' ``[labels]``); ignored with ``codes=True``. Rows keep the input
        order.
        """
        import pandas as pd

        from clv_models.valuation.labels import apply_labels

        self.check_input(features)
        table = features.copy(deep=False)
        table.attrs["unit"] = self.unit
        # The cutoff is one date (or a few) repeated: check the distinct values, pass the text on.
        cutoffs = table["as_of"].astype(object)
        distinct = pd.unique(cutoffs)
        parsed = pd.to_datetime(pd.Series(distinct, dtype=object), format="%Y-%m-%d", errors="coerce")
        if parsed.isna().any():
            bad = int(cutoffs.isin(distinct[parsed.isna().to_numpy()]).sum())
            raise ClvInputError(f"scoring input: {bad:,} row(s) have no as_of date YYYY-MM-DD")
        values = customer_values(table, self.models, self.settings)
        decided = assign_decisions(values, self.models, self.settings)
        # An ISO date string: what a Spark struct (spark_udf) can carry; the jobs write a timestamp.
        decided["as_of"] = cutoffs.to_numpy(dtype=object)
        out = decided[list(SCORE_COLUMNS)].reset_index(drop=True)
        if self.frequency_only:
            # No amounts were read: the unit values behind tiers and segments are no money (D41).
            out[list(MONEY_COLUMNS)] = float("nan")
        if not codes:
            labels = labels or self.settings.labels
            out = apply_labels(out, labels.language, labels.overrides)
        return out
