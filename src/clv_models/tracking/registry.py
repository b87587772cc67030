"""The customer scorer as an MLflow pyfunc model: save, log to a run, register, alias, load, export.

The model directory holds the pickled :class:`~clv_models.scorer.CustomerScorer`
(joblib), the ``clv_models`` package itself as ``code_paths`` (so a fresh process loads it even
where the package is not installed, e.g. a Spark executor), pinned pip requirements, a signature
(``customer_id`` and ``as_of`` strings, numeric inputs float64, categorical inputs string; params
``codes`` and ``language``) and
an input example.

Everything goes through ``MlflowClient`` with an explicit URI (no fluent global state): the model
is saved locally with :func:`mlflow.pyfunc.save_model`, uploaded as run artifacts, and registered
with :meth:`MlflowClient.create_model_version`. Loading resolves ``models:/name@alias`` (or a
``runs:/`` URI, or a local directory) by downloading the artifacts to a temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.scorer import CustomerScorer
    from clv_models.tracking.mlflow_tracking import Tracker

SCORER_ARTIFACT = "scorer"
SCORER_FILE = "customer_scorer.joblib"
EXPORT_INFO = "clv_export.json"
CHAMPION = "champion"
CHALLENGER = "challenger"
# Installed distributions the scorer needs at load time (pinned to the versions that trained it).
RUNTIME_DISTRIBUTIONS = (
    "mlflow",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "lightgbm",
    "joblib",
    "pydantic",
    "duckdb",
)


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's advice and progress bars for one call (restored afterwards): it warns about
    type hints and cloudpickle on every save and load, which users cannot act on."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    progress = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    logger.setLevel(logging.ERROR)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"mlflow\..*")
            yield
    finally:
        logger.setLevel(level)
        if progress is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = progress


def _python_model() -> Any:
    from clv_models.tracking._pyfunc import CustomerScorerModel

    return CustomerScorerModel()


def _requirements() -> list[str]:
    pins = []
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def _package_dir() -> str:
    import clv_models

    return str(Path(clv_models.__file__).resolve().parent)


def signature_frame(scorer: CustomerScorer, features: pd.DataFrame) -> pd.DataFrame:
    """The model input as the signature describes it: customer_id, as_of, numeric as float64,
    categorical as strings."""
    import pandas as pd

    scorer.check_input(features)  # missing columns, another unit: one line
    columns = ["customer_id", *scorer.input_columns]
    frame = features[columns].copy()
    categorical = {"as_of", *scorer.categorical_inputs}
    for column in columns:
        if column == "customer_id" or column in categorical:
            if not pd.api.types.is_string_dtype(frame[column]):
                frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        elif frame[column].dtype != "float64":
            frame[column] = frame[column].astype("float64")
    return frame


def save_scorer(scorer: CustomerScorer, path: str | Path, example: pd.DataFrame) -> Path:
    """Write the scorer as an MLflow pyfunc model directory at ``path`` (must not exist)."""
    import joblib
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    path = Path(path)
    example = signature_frame(scorer, example)
    output = scorer.score(example)
    signature = infer_signature(example, output, params={"codes": False, "language": scorer.settings.labels.language})
    with tempfile.TemporaryDirectory(prefix="clv-scorer-") as tmp, _quiet_mlflow():
        pickled = Path(tmp) / SCORER_FILE
        joblib.dump(scorer, pickled)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=_python_model(),
            artifacts={"scorer": str(pickled)},
            code_paths=[_package_dir()],
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(),
            metadata={"unit": scorer.unit, "trained_as_of": scorer.trained_as_of},
        )
    return path


@dataclass(frozen=True)
class RegisteredScorer:
    name: str
    version: str
    source: str
    run_id: str


def log_and_register(
    tracker: Tracker,
    run_id: str,
    scorer: CustomerScorer,
    example: pd.DataFrame | None,
    name: str,
    *,
    saved: str | Path | None = None,
) -> RegisteredScorer:
    """Upload the pyfunc model as artifacts of ``run_id`` and register a new version of ``name``.
    ``saved``: a model directory :func:`save_scorer` already wrote for this scorer (then
    ``example`` is not used)."""
    from mlflow.exceptions import MlflowException

    client = tracker.client
    if saved is not None:
        client.log_artifacts(run_id, str(saved), SCORER_ARTIFACT)
    else:
        if example is None:
            raise ValueError("log_and_register needs an input example or a saved model directory")
        with tempfile.TemporaryDirectory(prefix="clv-scorer-") as tmp:
            local = save_scorer(scorer, Path(tmp) / SCORER_ARTIFACT, example)
            client.log_artifacts(run_id, str(local), SCORER_ARTIFACT)
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description="clv_models customer scorer: LTV, churn, segments, actions")
        except MlflowException:  # another training registered the name since the lookup
            client.get_registered_model(name)
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{SCORER_ARTIFACT}"
    version = client.create_model_version(name, source=source, run_id=run_id)
    return RegisteredScorer(name=name, version=str(version.version), source=source, run_id=run_id)


def alias_version(tracker: Tracker, name: str, alias: str) -> str | None:
    """The version an alias points to, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(tracker.client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def set_alias(tracker: Tracker, name: str, alias: str, version: str) -> None:
    tracker.client.set_registered_model_alias(name, alias, version)


@dataclass
class LoadedScorer:
    """A loaded pyfunc model, the scorer inside it, and where it came from."""

    pyfunc: Any
    scorer: CustomerScorer
    uri: str
    version: str | None
    path: Path | None = None  # the local model directory it was loaded from

    def predict_codes(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The pyfunc model's scores (codes) through MLflow's signature enforcement; input that
        does not match (a missing column, text in a numeric column) is a one-line error."""
        from mlflow.exceptions import MlflowException

        try:
            return self.pyfunc.predict(frame, params={"codes": True})
        except MlflowException as exc:
            raise ClvInputError(f"scoring input does not match model {self.uri}: {str(exc).splitlines()[0]}") from None


class ModelEnvironmentWarning(UserWarning):
    """The running environment differs from the one the model was trained in."""


def _warn_on_version_mismatch(model_dir: Path) -> None:
    requirements = model_dir / "requirements.txt"
    if not requirements.is_file():
        return
    differences = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        name, sep, wanted = line.strip().partition("==")
        if not sep:
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != wanted:
            differences.append(f"{name} {installed} (trained with {wanted})")
    if differences:
        warnings.warn(
            f"model {model_dir.name}: {', '.join(differences)}; scores may differ from training",
            ModelEnvironmentWarning,
            stacklevel=3,
        )


def _resolve_registered(uri: str, tracker_uri: str) -> tuple[str, str]:
    """(version, artifact source) of ``models:/name@alias`` or ``models:/name/version``.

    Resolved with our own client: ``download_artifacts(models:/…)`` consults MLflow's global
    registry URI (``./mlflow.db`` by default in MLflow 3) whatever ``registry_uri`` it is given."""
    from mlflow import MlflowClient

    reference = uri[len("models:/") :].strip("/")
    client = MlflowClient(tracking_uri=tracker_uri, registry_uri=tracker_uri)
    if "@" in reference:
        name, alias = reference.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    else:
        name, _, number = reference.partition("/")
        if not number.isdigit():
            raise ClvInputError(f"{uri}: use models:/NAME@ALIAS or models:/NAME/VERSION")
        version = client.get_model_version(name, number)
    return str(version.version), str(version.source)


def load_scorer(uri: str, *, tracking_uri: str, dst: str | Path | None = None) -> LoadedScorer:
    """Load a scorer from ``models:/name@alias``, ``models:/name/3``, ``runs:/id/scorer`` or a
    local model directory (e.g. from :func:`export_scorer`). Unknown models are a one-line error."""
    import mlflow.pyfunc
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    local = Path(uri)
    version: str | None = None
    with _quiet_mlflow():
        try:
            if local.is_dir():
                if not (local / "MLmodel").is_file():
                    raise ClvInputError(
                        f"{uri}: not an MLflow model directory (no MLmodel file); pass an exported model"
                    )
                path = local
                info = local / EXPORT_INFO
                if info.is_file():
                    version = json.loads(info.read_text(encoding="utf-8")).get("version")
            elif "://" in uri or uri.startswith("models:/") or uri.startswith("runs:/"):
                from clv_models.tracking.mlflow_tracking import store_creation_lock, store_errors

                source = uri
                if uri.startswith("models:/"):
                    with store_errors(tracking_uri):
                        with store_creation_lock(tracking_uri):
                            version, source = _resolve_registered(uri, tracking_uri)
                target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="clv-model-"))
                path = Path(download_artifacts(artifact_uri=source, dst_path=str(target), tracking_uri=tracking_uri))
            else:
                raise ClvInputError(
                    f"{uri}: no such model directory; pass models:/NAME@ALIAS or an exported model path"
                )
            # MLflow's own requirement check maps every installed distribution to its modules
            # (1 s per load); ours compares the pinned versions only.
            try:
                model = mlflow.pyfunc.load_model(str(path), suppress_warnings=True)
            except (ModuleNotFoundError, AttributeError, ImportError) as exc:
                # A pickle of classes this version no longer has (e.g. before the scorer layer).
                raise ClvInputError(
                    f"model {uri!r} was saved by another version of clv_models ({exc}); retrain it with "
                    "`clv train` (or score it with the version that trained it)"
                ) from None
            _warn_on_version_mismatch(path)
        except MlflowException as exc:
            message = str(exc).splitlines()[0]
            raise ClvInputError(
                f"model {uri!r} could not be loaded from {tracking_uri}: {message}; check the name and alias "
                "(`clv train` registers clv-customer-scorer@champion)"
            ) from None
    scorer = model.unwrap_python_model().scorer
    if "btyd_features" not in getattr(getattr(scorer, "models", None), "__dict__", {}):
        raise ClvInputError(
            f"model {uri!r} was saved by an older clv_models (no stored BTYD feature models); retrain it with `clv train`"
        )
    loaded = LoadedScorer(pyfunc=model, scorer=scorer, uri=uri, version=version, path=path)
    if dst is None and not local.is_dir():
        import shutil
        import weakref

        # The downloaded copy lives as long as the loaded model.
        weakref.finalize(loaded, shutil.rmtree, str(target), True)
    return loaded


def export_scorer(uri: str, out: str | Path, *, tracking_uri: str) -> Path:
    """Copy a registered scorer into a self-contained model directory at ``out`` (replaced
    atomically when it exists) that ``clv score --model out`` loads without a tracking server."""
    import shutil

    from clv_models.errors import environment_error

    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise environment_error(exc, out, "the exported model") from None
    try:
        loaded = load_scorer(uri, tracking_uri=tracking_uri, dst=staging / "download")
        model_dir = next(p.parent for p in (staging / "download").rglob("MLmodel"))
        final = staging / "model"
        model_dir.rename(final)
        (final / EXPORT_INFO).write_text(
            json.dumps({"source": uri, "version": loaded.version, "tracking_uri": tracking_uri}, indent=2) + "\n",
            encoding="utf-8",
        )
        if out.exists():
            old = staging / "old"
            os.replace(out, old)
        os.replace(final, out)
    except OSError as exc:
        raise environment_error(exc, out, "the exported model") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
