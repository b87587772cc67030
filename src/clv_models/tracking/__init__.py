"""Experiment tracking: the only part of clv_models that talks to MLflow.

``Tracker`` / ``RunHandle`` log runs, child runs and Optuna trials through ``MlflowClient``;
``NullTracker`` / ``NullRunHandle`` do nothing, for runs without MLflow. The fingerprint helpers
give the provenance tags (data digest, git commit, package version). mlflow is imported lazily,
on first use, so importing this package costs nothing.
"""

from clv_models.tracking.fingerprint import file_sha256, frame_sha256, git_commit, package_version
from clv_models.tracking.mlflow_tracking import (
    NONFINITE_METRICS_TAG,
    NullRunHandle,
    NullTracker,
    RunHandle,
    Tracker,
    artifact_location,
    flatten_params,
    tracking_uri,
)

__all__ = [
    "NONFINITE_METRICS_TAG",
    "NullRunHandle",
    "NullTracker",
    "RunHandle",
    "Tracker",
    "artifact_location",
    "file_sha256",
    "flatten_params",
    "frame_sha256",
    "git_commit",
    "package_version",
    "tracking_uri",
]
