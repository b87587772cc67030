"""MLflow tracking behind one small object: a :class:`Tracker` owns a client for one store and one
experiment, and hands out :class:`RunHandle` objects inside ``with`` blocks.

Why not the fluent API (``mlflow.start_run``, ``mlflow.log_metric``): it keeps the tracking URI and
the active run in process-global state, so two trackers (or a test and the code under test) would
leak into each other, and a run left open by an exception stays RUNNING. Here every call goes
through ``MlflowClient`` with an explicit run id, and every run is ended when its block exits:
FINISHED, FAILED on an exception (re-raised), KILLED on ``KeyboardInterrupt``.

mlflow is imported inside functions only (this is the one module of the package allowed to import
it), so ``import clv_models`` stays cheap and has no side effects. optuna is never imported: the
callback only reads the trial it is given.

Store layout (see DESIGN.md §5): by default a SQLite database ``<root>/mlruns/mlflow.db`` with
artifacts under ``<root>/mlruns/artifacts/<run_id>/artifacts/``; ``MLFLOW_TRACKING_URI`` overrides
both, and then the store decides where artifacts go.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import numbers
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv_models.errors import ClvEnvironmentError, ClvInputError, environment_error

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from mlflow import MlflowClient

__all__ = [
    "NONFINITE_METRICS_TAG",
    "NullRunHandle",
    "NullTracker",
    "RunHandle",
    "Tracker",
    "artifact_location",
    "flatten_params",
    "tracking_uri",
]

_log = logging.getLogger(__name__)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
STORE_DIR = "mlruns"
NONFINITE_METRICS_TAG = "nonfinite_metrics"
OFFLINE_RUN_ID = "not-logged"  # the run id of a run opened after the store failed (Tracker.call)
PARENT_RUN_TAG = "mlflow.parentRunId"  # mlflow.utils.mlflow_tags.MLFLOW_PARENT_RUN_ID: the UI nests on it

# MLflow's limits (mlflow.utils.validation, 3.x). Longer values are refused, or truncated with a log
# line only when MLFLOW_TRUNCATE_LONG_VALUES is on; we truncate ourselves so the outcome is the same
# on every store and visibly marked.
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 8000
_MAX_PARAMS_TAGS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_TRUNCATED = "...[truncated]"

# Optuna's trial state -> MLflow run status. A pruned trial is a normal outcome of tuning, not an error.
_TRIAL_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


def _default_uri(root: str | Path) -> str:
    # Absolute path: "sqlite:///" + "/abs/..." gives the four slashes SQLAlchemy wants for an absolute file.
    return f"sqlite:///{(Path(root).resolve() / STORE_DIR / 'mlflow.db').as_posix()}"


STORE_FIX = "point MLFLOW_TRACKING_URI or tracking.root at a place this user can write"
UNREACHABLE_FIX = "start the tracking server, or point MLFLOW_TRACKING_URI (or tracking.uri) at one that answers"
REQUEST_BOUNDS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "request_timeout_seconds",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "request_retries",
}


def bound_tracking_requests(settings: Any) -> dict[str, str]:
    """Bound every request to an HTTP tracking server (MLflow's defaults retry for minutes): set
    MLflow's timeout, retry and backoff variables from ``[tracking]`` unless the environment sets
    them already. Returns what it set. Called by the command line, never at import."""
    applied = {}
    for variable, field in REQUEST_BOUNDS.items():
        if variable not in os.environ:
            applied[variable] = os.environ[variable] = str(getattr(settings, field))
    if "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR" not in os.environ:
        applied["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    return applied


def quiet_store_logs() -> None:
    """Silence MLflow's SQL store logger below CRITICAL: it logs a failing statement with a
    traceback before raising, and :func:`store_errors` already turns the error into one line
    (its "Creating initial MLflow database tables" notes go too). Called by the command line."""
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def _unreachable(exc: Exception) -> bool:
    from mlflow.exceptions import MlflowException

    text = str(exc)
    return isinstance(exc, MlflowException) and ("API request to" in text or "Max retries exceeded" in text)


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn a tracking store that cannot be created or opened (a directory that cannot be made, a
    read-only or full disk, a database that refuses) into one line naming the store and the fix."""
    try:
        yield
    except OSError as exc:
        raise environment_error(exc, uri, "the MLflow tracking store", STORE_FIX) from None
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        # MLflow's SQL store wraps the driver's error in an MlflowException (TEMPORARILY_UNAVAILABLE).
        cause = exc if isinstance(exc, OperationalError) else exc.__cause__
        if isinstance(cause, OperationalError):
            raise environment_error(cause.orig or cause, uri, "the MLflow tracking store", STORE_FIX) from None
        if _unreachable(exc):
            raise ClvEnvironmentError(
                f"cannot reach the MLflow tracking store {uri} (no answer within the request bounds of [tracking]); "
                f"{UNREACHABLE_FIX}"
            ) from None
        raise


@contextlib.contextmanager
def store_creation_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` beside a SQLite store while a client opens it:
    MLflow creates a new store's tables on first use, and two processes doing that at the same
    moment fail ("duplicate column name"). Other stores need no lock (their server creates them)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    database = Path(uri[len("sqlite:///") :])
    database.parent.mkdir(parents=True, exist_ok=True)  # as MLflow would for the database itself
    with open(database.with_name(database.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tracking_uri(root: str | Path = ".") -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<abs root>/mlruns/mlflow.db``.

    In the default case ``<root>/mlruns`` is created, since SQLite will not create the directory
    of its database file. (MLflow refuses the plain file store ``file:./mlruns``.)
    """
    env = os.environ.get(TRACKING_URI_ENV, "").strip()
    if env:
        return env
    with store_errors(_default_uri(root)):
        (Path(root).resolve() / STORE_DIR).mkdir(parents=True, exist_ok=True)
    return _default_uri(root)


def artifact_location(root: str | Path = ".") -> str:
    """File URI of ``<abs root>/mlruns/artifacts``: where experiments of the default store keep artifacts."""
    return (Path(root).resolve() / STORE_DIR / "artifacts").as_uri()


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings to one level with dotted keys, values as strings cut to MLflow's 6000 characters.

    ``{"bgnbd": {"penalizer": 0.1}}`` -> ``{"bgnbd.penalizer": "0.1"}``. Lists and other values are
    logged as ``str(value)``. Two spellings of one key (``{"a.b": 1, "a": {"b": 2}}``) raise
    ``ValueError`` rather than silently dropping one value.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items = flatten_params(value, f"{name}.")
        else:
            items = {name: _clip(value, _MAX_PARAM_VALUE)}
        for flat_key, flat_value in items.items():
            if flat_key in flat and flat[flat_key] != flat_value:
                raise ValueError(f"param {flat_key!r} is given twice with different values")
            flat[flat_key] = flat_value
    return flat


def _clip(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ms(moment: dt.datetime | None) -> int | None:
    # Optuna stamps trials with naive local datetime.now(); .timestamp() reads a naive value as local time.
    return None if moment is None else int(moment.timestamp() * 1000)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _as_metric(key: str, value: Any) -> float | None:
    """The value as a float, or None when it is missing or not finite."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, numbers.Real):
        raise TypeError(f"metric {key!r} must be a real number, got {type(value).__name__}: {value!r}")
    number = float(value)
    return number if math.isfinite(number) else None


class RunHandle:
    """One open MLflow run. Obtained from :meth:`Tracker.start_run` or :meth:`RunHandle.child`.

    Params are immutable in MLflow: logging a key again with a different value raises
    ``MlflowException``. Metrics may be logged many times (a history per step).
    """

    def __init__(self, tracker: Tracker, run_id: str) -> None:
        self._tracker = tracker
        self._run_id = run_id
        self._nonfinite: set[str] = set()

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self._run_id!r})"

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def _client(self) -> MlflowClient:
        return self._tracker.client

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params, flattened with dotted keys and stringified (see :func:`flatten_params`)."""
        from mlflow.entities import Param

        entities = [Param(key, value) for key, value in flatten_params(params).items()]
        for chunk in _chunks(entities, _MAX_PARAMS_TAGS_PER_BATCH):
            self._tracker.call(self._client.log_batch, self._run_id, params=chunk)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log finite metrics at ``step`` (0 when None); skip None, NaN and ±inf.

        Skipped names are kept, sorted and comma-separated, in the run tag ``nonfinite_metrics``
        (accumulated over calls). Why skip: the SQLite store keeps NaN as 0 with a flag, so NaN
        runs match filters like ``metrics.x < 0.1``, the run page of the MLflow 3 UI fails to
        load on NaN metrics, and ±inf is stored as ±1.8e308.
        """
        self._log_points([(key, value, step) for key, value in metrics.items()])

    def _log_points(self, points: Iterable[tuple[str, Any, int | None]]) -> None:
        from mlflow.entities import Metric

        timestamp = _now_ms()
        entities, skipped = [], set()
        for key, value, step in points:
            number = _as_metric(key, value)
            if number is None:
                skipped.add(key)
            else:
                entities.append(Metric(key, number, timestamp, 0 if step is None else int(step)))
        for chunk in _chunks(entities, _MAX_METRICS_PER_BATCH):
            self._tracker.call(self._client.log_batch, self._run_id, metrics=chunk)
        if not skipped <= self._nonfinite:
            self._nonfinite |= skipped
            self.set_tags({NONFINITE_METRICS_TAG: ",".join(sorted(self._nonfinite))})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags; values are stringified and cut to MLflow's 8000 characters."""
        from mlflow.entities import RunTag

        entities = [RunTag(str(key), _clip(value, _MAX_TAG_VALUE)) for key, value in tags.items()]
        for chunk in _chunks(entities, _MAX_PARAMS_TAGS_PER_BATCH):
            self._tracker.call(self._client.log_batch, self._run_id, tags=chunk)

    def log_figure(self, fig: Any, artifact_file: str) -> None:
        """Save a matplotlib (or plotly) figure as the artifact ``artifact_file``; the suffix picks the format."""
        self._tracker.call(self._client.log_figure, self._run_id, fig, artifact_file)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Log a JSON-serialisable object as ``artifact_file`` (``.json``; ``.yaml``/``.yml`` give YAML)."""
        self._tracker.call(self._client.log_dict, self._run_id, obj, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Log a string as the artifact ``artifact_file`` (UTF-8)."""
        self._tracker.call(self._client.log_text, self._run_id, text, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a local file into the run's artifacts, under the directory ``artifact_path`` if given."""
        self._tracker.call(self._client.log_artifact, self._run_id, str(path), artifact_path)

    def log_table(self, df: pd.DataFrame, artifact_file: str) -> None:
        """Log a frame as CSV text (UTF-8, header row, ``.`` decimals) at ``artifact_file``, e.g. ``deciles.csv``.

        The index is written as the first column(s) unless it is a plain ``RangeIndex``. CSV rather
        than ``MlflowClient.log_table``: that one writes MLflow's own JSON layout and *appends* to an
        existing artifact of the same name, while a CSV opens anywhere and logging again replaces it.
        """
        import pandas as pd

        self.log_text(df.to_csv(index=not isinstance(df.index, pd.RangeIndex)), artifact_file)

    def child(self, name: str, tags: Mapping[str, Any] | None = None) -> contextlib.AbstractContextManager[RunHandle]:
        """A nested run under this one (tag ``mlflow.parentRunId``), ended when its ``with`` block exits."""
        return self._tracker._run(name, tags, parent_id=self._run_id)


class Tracker:
    """An MLflow client bound to one tracking URI and one experiment (created if missing).

    ``uri`` defaults to :func:`tracking_uri` of ``root``. An experiment created in the default
    SQLite store of ``root`` keeps its artifacts under ``<root>/mlruns/artifacts``; with any other
    URI the store's own default applies (for a ``sqlite:`` URI given through the environment that
    is ``./mlruns`` of the working directory at creation time, so pass ``root`` or an http server).
    """

    def __init__(self, experiment: str, *, root: str | Path = ".", uri: str | None = None) -> None:
        from mlflow import MlflowClient

        self.uri = uri if uri is not None else tracking_uri(root)
        self.experiment_name = experiment
        # The registry lives in the same store; without registry_uri MLflow 3 falls back to ./mlflow.db.
        location = artifact_location(root) if self.uri == _default_uri(root) else None
        with store_errors(self.uri), store_creation_lock(self.uri):
            self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            self.experiment_id = self._experiment_id(experiment, location)
        self._local = threading.local()  # stack of open runs per thread, for start_run(nested=True)
        self.continue_offline = False
        self.store_failure: str | None = None

    def call(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the store. When it cannot be reached or written (:func:`store_errors`) and
        ``continue_offline`` is set, remember the failure in ``store_failure``, return None and
        skip every later call, so a training outlives its tracking store (decisions D29);
        otherwise the one-line :class:`ClvEnvironmentError` is raised."""
        if self.store_failure is not None:
            return None
        try:
            with store_errors(self.uri):
                return action(*args, **kwargs)
        except ClvEnvironmentError as exc:
            if not self.continue_offline:
                raise
            self.store_failure = str(exc)
            _log.info("tracking store failed, going on without it: %s", exc)
            return None

    def __repr__(self) -> str:
        return f"Tracker(experiment={self.experiment_name!r}, uri={self.uri!r})"

    def _experiment_id(self, name: str, location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self.client.create_experiment(name, artifact_location=location)
            except MlflowException:
                # Another process may have created it since the lookup; anything else is re-raised.
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage != "active":
            raise ClvInputError(
                f"MLflow experiment {name!r} in {self.uri} is deleted: restore it "
                f"(`mlflow experiments restore --experiment-id {experiment.experiment_id}`) or use another name"
            )
        return experiment.experiment_id

    def _stack(self) -> list[RunHandle]:
        if not hasattr(self._local, "runs"):
            self._local.runs = []
        return self._local.runs

    def start_run(
        self, name: str, *, tags: Mapping[str, Any] | None = None, nested: bool = False
    ) -> contextlib.AbstractContextManager[RunHandle]:
        """A run named ``name``, ended when the ``with`` block exits.

        ``nested=True`` makes it a child of the innermost run this tracker has open in the current
        thread (a top-level run when there is none, as in ``mlflow.start_run``). Without
        ``nested`` the run is top-level even inside another run. Prefer :meth:`RunHandle.child`,
        which names the parent explicitly.
        """
        stack = self._stack()
        parent_id = stack[-1].run_id if nested and stack else None
        return self._run(name, tags, parent_id=parent_id)

    @contextlib.contextmanager
    def _run(self, name: str, tags: Mapping[str, Any] | None, *, parent_id: str | None) -> Iterator[RunHandle]:
        run_tags = {str(key): _clip(value, _MAX_TAG_VALUE) for key, value in (tags or {}).items()}
        if parent_id is not None:
            run_tags[PARENT_RUN_TAG] = parent_id
        run = self.call(self.client.create_run, self.experiment_id, tags=run_tags, run_name=name)
        handle = RunHandle(self, run.info.run_id if run is not None else OFFLINE_RUN_ID)
        stack = self._stack()
        stack.append(handle)
        try:
            yield handle
        except Exception:
            self._end(handle.run_id, "FAILED", quiet=True)
            raise
        except BaseException:  # KeyboardInterrupt, SystemExit, generator closed
            self._end(handle.run_id, "KILLED", quiet=True)
            raise
        else:
            self._end(handle.run_id, "FINISHED")
        finally:
            stack.remove(handle)

    def _end(self, run_id: str, status: str, *, quiet: bool = False, end_time: int | None = None) -> None:
        if run_id == OFFLINE_RUN_ID:
            return
        try:
            self.call(self.client.set_terminated, run_id, status, end_time=end_time)
        except Exception:
            if not quiet:
                raise
            # An exception is already on its way out; do not replace it with a tracking error.
            _log.warning("could not mark MLflow run %s as %s", run_id, status, exc_info=True)

    def optuna_callback(
        self, parent: RunHandle, *, prefix: str = "trial"
    ) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
        """An Optuna study callback logging each finished trial as a child run of ``parent``.

        Child run ``f"{prefix}-{number:04d}"`` with tags ``trial_number``, ``trial_state``
        (COMPLETE / PRUNED / FAIL) and ``optuna_study``; the trial's params as params and its
        scalar user attrs as params ``user_attrs.<key>``; metric ``trial_value`` (``trial_value_<i>``
        per objective in multi-objective studies) when the trial has a value, and metric
        ``trial_intermediate`` at each reported step. The run's start and end times are the
        trial's, its status FINISHED (COMPLETE, PRUNED) or FAILED (FAIL).

        Use: ``study.optimize(objective, n_trials=50, callbacks=[tracker.optuna_callback(run)])``.
        Optuna calls callbacks for failed trials only when their exception is in ``catch``.
        """
        if parent.run_id is None:
            raise ValueError("optuna_callback needs an open MLflow run as parent, got a null run handle")
        parent_id = parent.run_id

        def log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            state = trial.state.name
            tags = {"trial_number": str(trial.number), "trial_state": state, "optuna_study": study.study_name,
                    PARENT_RUN_TAG: parent_id}
            run = self.call(self.client.create_run, self.experiment_id, start_time=_ms(trial.datetime_start),
                            tags=tags, run_name=f"{prefix}-{trial.number:04d}")
            if run is None:  # the store failed and this tracker goes on without it
                return
            handle = RunHandle(self, run.info.run_id)
            try:
                scalars = {key: value for key, value in trial.user_attrs.items() if _is_scalar(value)}
                handle.log_params({**trial.params, **{f"user_attrs.{key}": value for key, value in scalars.items()}})
                values = trial.values or []
                names = ["trial_value"] if len(values) == 1 else [f"trial_value_{i}" for i in range(len(values))]
                points = [(name, value, None) for name, value in zip(names, values, strict=True)]
                steps = sorted(trial.intermediate_values.items())
                points += [("trial_intermediate", value, step) for step, value in steps]
                handle._log_points(points)
            except Exception:
                self._end(handle.run_id, "FAILED", quiet=True)
                raise
            self._end(handle.run_id, _TRIAL_STATUS.get(state, "FINISHED"), end_time=_ms(trial.datetime_complete))

        return log_trial


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | numbers.Number)


class NullRunHandle:
    """Stands in for :class:`RunHandle` when tracking is off: same methods, nothing recorded.

    ``run_id`` is ``None``, so code can tell (``if run.run_id: ...``).
    """

    run_id: str | None = None

    def __repr__(self) -> str:
        return "NullRunHandle()"

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_figure(self, fig: Any, artifact_file: str) -> None:
        pass

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def log_table(self, df: pd.DataFrame, artifact_file: str) -> None:
        pass

    def child(
        self, name: str, tags: Mapping[str, Any] | None = None
    ) -> contextlib.AbstractContextManager[NullRunHandle]:
        return contextlib.nullcontext(NullRunHandle())


class NullTracker:
    """Stands in for :class:`Tracker` when tracking is off: no store, no mlflow import, exceptions pass through."""

    uri: str | None = None
    experiment_id: str | None = None
    continue_offline = False
    store_failure: str | None = None

    def __init__(self, experiment: str = "", *, root: str | Path = ".", uri: str | None = None) -> None:
        self.experiment_name = experiment

    def call(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return None  # there is no store to call

    def __repr__(self) -> str:
        return f"NullTracker(experiment={self.experiment_name!r})"

    def start_run(
        self, name: str, *, tags: Mapping[str, Any] | None = None, nested: bool = False
    ) -> contextlib.AbstractContextManager[NullRunHandle]:
        return contextlib.nullcontext(NullRunHandle())

    def optuna_callback(
        self, parent: RunHandle | NullRunHandle, *, prefix: str = "trial"
    ) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
        def ignore(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            pass

        return ignore
