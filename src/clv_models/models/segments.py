"""Customer segments: KMeans on log-scaled RFM and predicted CLV, with stable human names.

Features (one row per customer, DESIGN.md §2 'segment'):

    recency   = days since the last purchase        (``days_since_last``, days)
    frequency = repeat purchases                    (``frequency``, BTYD definition)
    monetary  = mean spend per order                (``avg_order_value``, currency)
    clv       = predicted discounted value           (``clv_h``, currency, clipped at 0)

each ``log1p``-transformed, then standardised (z-scores of the training population). Tenure
(``T_days``, days since the first purchase) is not clustered on; it only helps to name clusters.

k is chosen in ``[k_min, k_max]`` by the silhouette coefficient (Rousseeuw 1987) on a seeded
sample of customers (the silhouette is quadratic in rows), among the k whose clusters can each
be given a name of the vocabulary (a segmentation a marketer cannot name is of less use to them;
when no k qualifies, the best silhouette wins with a :class:`SegmentNamingWarning` and the
clusters without a name get neutral, descriptive ones). The inertia curve is kept in
``selection_``. Above ``minibatch_threshold`` customers MiniBatchKMeans replaces KMeans.

Names (:mod:`clv_models.models._segment_names`) are never taken from the cluster index, and a
name is given only when its definition, a list of checks over the cluster's *members* (churn,
silence, repeat purchases, value, tenure against the whole base or a threshold), holds: a
centroid can look like ``at_risk`` while most members are loyal buyers. Among the names whose
checks hold, the centroid profile scores pick one per cluster (Hungarian method); a cluster
whose checks hold for no free name gets a neutral name built from its members' profile
(``lapsed_frequent_high_value``). With a previous model, clusters are first matched to its
centroids (Hungarian on Euclidean distance in the new standardised space) and inherit their
names where the names' checks still hold. The checks and their measured values are kept on the
fitted model (``name_checks_``), so the scorer carries them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError
from clv_models.models._segment_names import (
    NamingContext,
    NamingInputs,
    assign_names,
    check_names,
    checks_table,
    eligibility,
    group_statistics,
    match_previous,
    member_statistics,
    neutral_names,
)

if TYPE_CHECKING:
    import pandas as pd

FEATURES = ("days_since_last", "frequency", "avg_order_value", "clv_h")
TENURE = "T_days"


class SegmentNamingWarning(UserWarning):
    """No candidate k gave clusters that can each get a name of the vocabulary (some get neutral names)."""


# The k-selection table's columns.
SELECTION_COLUMNS = ("k", "inertia", "silhouette")


def _matrix(table: pd.DataFrame, columns: Sequence[str], what: str) -> np.ndarray:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ClvInputError(f"{what} lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, table.columns))}")
    values = table[list(columns)].to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        column = columns[int(np.argmax(bad.any(axis=0)))]
        raise ClvInputError(
            f"{what}: {int(bad.any(axis=1).sum())} row(s) have missing or infinite values (first in column "
            f"'{column}'); score or drop them before segmenting"
        )
    return values


def log_features(table: pd.DataFrame, what: str = "segment input") -> np.ndarray:
    """The clustering features, ``log1p`` of values clipped at 0 (a negative CLV or recency is 0)."""
    return np.log1p(np.clip(_matrix(table, FEATURES, what), 0.0, None))


class CustomerSegmenter(ClusterMixin, BaseEstimator):
    """KMeans segmenter with silhouette-chosen k and names whose checks hold for the members.

    Parameters mirror :class:`clv_models.config.SegmentSettings`, plus the naming thresholds
    ``new_max_tenure_days`` (the new-customer threshold; training passes the lifecycle stage's)
    and ``lost_min_days_since_last``. ``fit(table, previous=...)`` takes a customer table with
    :data:`FEATURES` and ``T_days`` (and uses ``churn_probability`` when every customer has one);
    ``predict`` returns segment names (strings), ``predict_cluster`` cluster indices.

    Fitted attributes: ``k_``, ``names_`` (name of each cluster index), ``neutral_`` (clusters
    whose name is neutral), ``mean_``/``scale_`` of the standardisation, ``cluster_centers_``
    (standardised), ``centroids_`` (a table in original units: back-transformed cluster means,
    plus median tenure), ``selection_`` (k, inertia, silhouette per k tried), ``silhouette_``,
    ``name_scores_`` (cluster × name centroid profile scores), ``name_eligible_`` (cluster ×
    name: do all the name's checks hold), ``name_checks_`` (every check, measured; see
    :data:`clv_models.models._segment_names.CHECK_COLUMNS`), ``member_statistics_`` (per cluster
    and of the base), ``naming_context_`` (churn statistic used, typical repeat gap, overdue and
    naming thresholds), ``inherited_`` (clusters whose names came from the previous model).
    """

    def __init__(
        self,
        k_min: int = 3,
        k_max: int = 6,
        silhouette_sample: int = 10_000,
        minibatch_threshold: int = 200_000,
        n_init: int = 10,
        seed: int = 42,
        keep_previous_k: bool = True,
        new_max_tenure_days: float = 90.0,
        lost_min_days_since_last: float = 365.0,
    ) -> None:
        self.k_min = k_min
        self.k_max = k_max
        self.silhouette_sample = silhouette_sample
        self.minibatch_threshold = minibatch_threshold
        self.n_init = n_init
        self.seed = seed
        self.keep_previous_k = keep_previous_k
        self.new_max_tenure_days = new_max_tenure_days
        self.lost_min_days_since_last = lost_min_days_since_last

    @classmethod
    def from_settings(cls, settings: Any, **naming: float) -> CustomerSegmenter:
        """From :class:`clv_models.config.SegmentSettings` (``naming``: the naming thresholds)."""
        return cls(**settings.model_dump(), **naming)

    def _kmeans(self, k: int, rows: int) -> Any:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        if rows > self.minibatch_threshold:
            return MiniBatchKMeans(
                n_clusters=k, n_init=max(3, self.n_init // 3), batch_size=4096, random_state=self.seed
            )
        return KMeans(n_clusters=k, n_init=self.n_init, random_state=self.seed)

    def _candidate_ks(self, rows: int, previous: CustomerSegmenter | None) -> list[int]:
        from clv_models.config import SEGMENT_NAMES

        if not 2 <= self.k_min <= self.k_max <= len(SEGMENT_NAMES):
            raise ClvInputError(
                f"segments: need 2 ≤ k_min ≤ k_max ≤ {len(SEGMENT_NAMES)}, got k_min={self.k_min}, k_max={self.k_max}"
            )
        if previous is not None and self.keep_previous_k:
            ks = [previous.k_]
        else:
            ks = list(range(self.k_min, self.k_max + 1))
        if rows <= max(ks):
            raise ClvInputError(f"segments: {rows} customers cannot form {max(ks)} segments; need more customers")
        return ks

    def fit(self, table: pd.DataFrame, y: Any = None, previous: CustomerSegmenter | None = None) -> CustomerSegmenter:
        """Choose k, cluster, and name the clusters (matching ``previous`` when given)."""
        from sklearn.metrics import silhouette_score

        logged = log_features(table)
        inputs = NamingInputs.from_table(table, _matrix)
        tenure = inputs.tenure_days
        context = NamingContext.of(
            inputs,
            new_max_tenure_days=self.new_max_tenure_days,
            lost_min_days_since_last=self.lost_min_days_since_last,
        )
        base = group_statistics(inputs, slice(None), context)  # the same for every k
        if previous is not None:
            check_is_fitted(previous, "cluster_centers_")
        ks = self._candidate_ks(len(logged), previous)
        self.mean_ = logged.mean(axis=0)
        scale = logged.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        standard = (logged - self.mean_) / self.scale_

        rng = np.random.default_rng(self.seed)
        sample = (
            np.sort(rng.choice(len(standard), self.silhouette_sample, replace=False))
            if len(standard) > self.silhouette_sample
            else np.arange(len(standard))
        )
        tenure_log = np.log1p(tenure)
        tenure_z = (tenure_log - tenure_log.mean()) / (tenure_log.std() or 1.0)
        rows, candidates = [], []
        for k in ks:
            model = self._kmeans(k, len(standard)).fit(standard)
            sampled = model.labels_[sample]
            silhouette = (
                float(silhouette_score(standard[sample], sampled)) if len(np.unique(sampled)) > 1 else float("nan")
            )
            centers = np.asarray(model.cluster_centers_, dtype=float)
            # A canonical cluster order (by centroid), so the same clusters found from another
            # seed get the same indices and the stored model is byte-identical.
            centers = centers[np.lexsort(centers.T[::-1])]
            # Members as predict() will assign them (not model.labels_), so profiles match scoring.
            labels = _nearest(standard, centers)
            centroids = self._centroid_table(centers, labels, tenure)
            profile = np.column_stack(
                [centers, [tenure_z[labels == c].mean() if (labels == c).any() else 0.0 for c in range(k)]]
            )
            statistics = member_statistics(inputs, labels, k, context, base)
            checks = check_names(statistics, context)
            eligible = eligibility(checks, k)
            names, _ = assign_names(profile, [None] * k, eligible)
            nameable = all(name is not None for name in names)
            rows.append((k, float(model.inertia_), silhouette, nameable))
            candidates.append((k, centers, centroids, profile, silhouette, nameable, statistics, checks, eligible))
        import pandas as pd

        self.selection_ = pd.DataFrame(rows, columns=[*SELECTION_COLUMNS, "nameable"])
        pool = [c for c in candidates if c[5]] or candidates
        if not any(c[5] for c in candidates):
            warnings.warn(
                f"segments: no k in {ks} gives clusters that can all be named (a name needs its checks to hold "
                "for the members); the others get neutral names (see name_checks_)",
                SegmentNamingWarning,
                stacklevel=2,
            )
        # Highest silhouette; ties (and NaN) keep the smaller k (fewer words for a marketer to learn).
        best = max(pool, key=lambda c: (np.nan_to_num(c[4], nan=-np.inf), -c[0]))
        self.k_, self.cluster_centers_, self.centroids_, profile, self.silhouette_ = best[:5]
        statistics, checks, self.name_eligible_ = best[6:]
        self.n_features_in_ = len(FEATURES)

        names: list[str | None] = [None] * self.k_
        self.inherited_: list[int] = []
        if previous is not None:
            previous_in_ours = previous.cluster_centers_ * previous.scale_ + previous.mean_
            previous_standard = (previous_in_ours - self.mean_) / self.scale_
            for ours, theirs in match_previous(self.cluster_centers_, previous_standard):
                name = previous.names_[theirs]
                # Only a name whose checks hold for the new members is kept (neutral names are
                # re-derived from the members).
                if name in self.name_eligible_.columns and self.name_eligible_.loc[ours, name]:
                    names[ours] = name
                    self.inherited_.append(ours)
        assigned, self.name_scores_ = assign_names(profile, names, self.name_eligible_)
        self.name_scores_.columns.name = "name"
        self.name_eligible_.columns.name = "name"
        self.neutral_ = [c for c, name in enumerate(assigned) if name is None]
        neutral = neutral_names(statistics, self.neutral_, context, taken=[n for n in assigned if n is not None])
        self.names_ = [str(name) if name is not None else neutral[c][0] for c, name in enumerate(assigned)]
        self.name_checks_ = checks_table(checks, self.names_, neutral)
        self.member_statistics_ = statistics.copy()
        self.member_statistics_.insert(0, "segment", [*self.names_, "(all customers)"])
        self.naming_context_ = {
            "churn_statistic": context.churn_statistic,
            "typical_gap_days": context.typical_gap_days,
            "overdue_days": context.overdue_days,
            "new_max_tenure_days": context.new_max_tenure_days,
            "lost_min_days_since_last": context.lost_min_days_since_last,
        }
        self.centroids_.insert(0, "segment", self.names_)
        return self

    def _centroid_table(self, centers: np.ndarray, labels: np.ndarray, tenure: np.ndarray) -> pd.DataFrame:
        import pandas as pd

        k = len(centers)
        table = pd.DataFrame(np.expm1(centers * self.scale_ + self.mean_), columns=list(FEATURES))
        table.insert(0, "cluster", np.arange(k))
        table["T_days_median"] = [
            float(np.median(tenure[labels == c])) if (labels == c).any() else np.nan for c in range(k)
        ]
        table["customers"] = np.bincount(labels, minlength=k)
        return table

    def _standard(self, table: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "cluster_centers_")
        return (log_features(table, "table to segment") - self.mean_) / self.scale_

    def predict_cluster(self, table: pd.DataFrame) -> np.ndarray:
        """Index of the nearest centroid per customer (ties go to the lower index)."""
        return _nearest(self._standard(table), self.cluster_centers_)

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """Segment name per customer (object array of strings)."""
        return np.asarray(self.names_, dtype=object)[self.predict_cluster(table)]

    def fit_predict(self, table: pd.DataFrame, y: Any = None, previous: CustomerSegmenter | None = None) -> np.ndarray:
        return self.fit(table, previous=previous).predict(table)


def _nearest(standard: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest center per row (ties go to the lower index)."""
    # One cluster at a time: memory stays O(rows), not O(rows × k × features).
    best = np.full(len(standard), np.inf)
    nearest = np.zeros(len(standard), dtype=np.int64)
    for index, center in enumerate(centers):
        distance = ((standard - center) ** 2).sum(axis=1)
        closer = distance < best
        best[closer] = distance[closer]
        nearest[closer] = index
    return nearest
