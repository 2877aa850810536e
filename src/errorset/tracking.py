"""Experiment tracking: the one module that imports MLflow.

Every training and evaluation run goes through :func:`start_run`, which

* uses ``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else MLflow's
  own default (a local ``sqlite:///mlflow.db``);
* uses the experiment ``tracking.experiment`` (unless ``mlflow run`` already
  opened a run for this process, which is then used);
* marks the run FAILED when the body raises and KILLED on Ctrl-C / SIGTERM,
  FINISHED otherwise;
* tags the experiment as a machine-learning one (``mlflow.experimentKind``);
* logs (with :meth:`Run.log_config`) the resolved config as ``config.yaml`` and the
  git commit.

A store that cannot be used (a server that does not answer, a read-only or
locked SQLite file) is found by :func:`configure`, before any work, and every
MLflow or SQLAlchemy error of a tracking call becomes a :class:`TrackingError`
naming ``tracking.uri``: the command line prints one line instead of MLflow's
retries and tracebacks.

Nothing here runs at import time, and MLflow itself is imported lazily so that
``import errorset`` stays fast.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from errorset.config import Config, flatten, to_dict, to_yaml
from errorset.errors import TrackingError
from errorset.files import lock_beside, sqlite_path

if TYPE_CHECKING:
    import matplotlib.figure
    import torch

log = logging.getLogger(__name__)

#: config groups that are not parameters of a single run
_NOT_PARAMS = ("variants",)

#: the experiment tag by which MLflow 3's UI tells a machine-learning experiment from a GenAI one
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
#: its value for machine-learning experiments (without it the UI opens on the GenAI overview)
ML_EXPERIMENT_KIND = "custom_model_development"

#: seconds to wait for a tracking server's answer to the one probe (MLflow itself retries for minutes)
PROBE_TIMEOUT_S = 5.0
#: seconds to wait for another process's lock on a SQLite store (MLflow's own busy timeout)
SQLITE_BUSY_TIMEOUT_S = 20.0

P = ParamSpec("P")
R = TypeVar("R")


def _uri_source(cfg: Config) -> str:
    """Where the tracking URI came from, for messages."""
    if cfg.tracking.uri:
        return "set by tracking.uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return "from $MLFLOW_TRACKING_URI"
    return "MLflow's default"


def _shown(uri: str) -> str:
    """``uri`` without a user name or password, for messages."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _store_error(e: BaseException, uri: str | None = None) -> TrackingError:
    """One :class:`TrackingError` line for an MLflow / SQLAlchemy error of the store at ``uri``."""
    if uri is None:
        import mlflow

        uri = mlflow.get_tracking_uri()
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
    return TrackingError(
        f"tracking.uri: the MLflow store {_shown(uri)} failed ({first[:300]}); the run was not recorded there"
    )


def _store_exceptions() -> tuple[type[BaseException], ...]:
    """The exception types that mean the tracking store failed (MLflow's and SQLAlchemy's)."""
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    return (MlflowException, sqlalchemy.exc.SQLAlchemyError)


def _translated(func: Callable[P, R]) -> Callable[P, R]:
    """Make ``func`` raise a :class:`TrackingError` where the tracking store fails."""

    @functools.wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except _store_exceptions() as e:
            raise _store_error(e) from e

    return call


def check_server(uri: str, source: str) -> None:
    """Probe an http(s) tracking server once; raise a :class:`TrackingError` if nothing answers.

    Any HTTP answer (200, or 401/403/404 from a proxy or an older server) means
    a server is there; a refused or timed-out connection does not.
    """
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    probe = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    try:
        with urllib.request.urlopen(probe, timeout=PROBE_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as e:  # URLError, refused, timed out, a bad host or port
        reason = getattr(e, "reason", None) or e
        raise TrackingError(
            f"tracking.uri: no MLflow tracking server answers at {_shown(uri)} ({source}; {reason}); start it, "
            "or point tracking.uri or MLFLOW_TRACKING_URI at a reachable store"
        ) from None


def check_sqlite_folder(path: Path, uri: str, source: str) -> None:
    """Raise a :class:`TrackingError` when the folder of the SQLite store at ``path`` cannot be written.

    It holds the journal and the lock file, so even a writable database file
    cannot be written in a read-only folder. The folder is created if needed.
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        reason = e.strerror or e
        raise TrackingError(
            f"tracking.uri: the MLflow store {uri} ({source}) cannot be written: its folder {folder} "
            f"is not writable ({reason})"
        ) from None


def check_sqlite(path: Path, uri: str, source: str) -> None:
    """Raise a :class:`TrackingError` when the SQLite store at ``path`` cannot be written or stays locked.

    A write transaction is begun and rolled back, so nothing changes: it fails
    where a read-only file or another process's exclusive lock would fail
    MLflow's first write, after its tables or the run were half made.
    """
    what = f"tracking.uri: the MLflow store {uri} ({source})"
    if not path.exists():
        return
    try:
        con = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
        finally:
            con.close()
    except sqlite3.Error as e:
        if "locked" in str(e) or "busy" in str(e):
            reason = f"is locked by another process (waited {SQLITE_BUSY_TIMEOUT_S:g} s)"
        else:
            reason = f"cannot be written ({e}; the file and its folder must be writable)"
        raise TrackingError(f"{what} {reason}; nothing was recorded") from None


def git_commit(path: str | Path = ".") -> str | None:
    """The commit checked out at ``path`` (with ``-dirty`` when there are uncommitted changes), or None."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def _param_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def config_params(cfg: Config) -> dict[str, str]:
    """The flattened config as MLflow parameter strings (``train.mode`` -> ``"clean"``)."""
    d = {k: v for k, v in to_dict(cfg).items() if k not in _NOT_PARAMS}
    return {k: _param_value(v) for k, v in flatten(d).items()}


def configure(cfg: Config) -> None:
    """Point MLflow at the configured tracking store and experiment.

    The experiment is left alone when a run is already active (a nested run
    belongs with its parent) or when ``mlflow run`` handed this process a run
    (``MLFLOW_RUN_ID``), whose experiment was chosen on its command line.
    ``MLFLOW_EXPERIMENT_ID`` alone is not a reason: MLflow sets it in-process
    on every ``set_experiment``.

    A store seen for the first time is checked first (:func:`check_server`,
    :func:`check_sqlite`): a :class:`TrackingError` names ``tracking.uri``.
    """
    import mlflow

    if cfg.tracking.uri:
        mlflow.set_tracking_uri(cfg.tracking.uri)
    uri = mlflow.get_tracking_uri()
    set_experiment = mlflow.active_run() is None and not os.environ.get("MLFLOW_RUN_ID")
    if uri in _READY_STORES and not set_experiment:
        return
    path = sqlite_path(uri)
    if uri not in _READY_STORES:
        if uri.startswith(("http://", "https://")):
            check_server(uri, _uri_source(cfg))
        elif path is not None:
            check_sqlite_folder(path, uri, _uri_source(cfg))  # before the lock file is made there
    with lock_beside(path):
        if uri not in _READY_STORES and path is not None:
            # under the lock: another errorset process making the tables holds SQLite's write lock for seconds
            check_sqlite(path, uri, _uri_source(cfg))
        # Creating the tables of a new store, or the experiment, races between processes started
        # together (`dvc repro -j 2`, sweep workers): one lock per store, and one retry.
        for attempt in (0, 1):
            try:
                if uri not in _READY_STORES:
                    mlflow.tracking.MlflowClient(uri).search_experiments(max_results=1)
                    _READY_STORES.add(uri)
                if set_experiment:
                    mark_ml_experiment(mlflow.set_experiment(cfg.tracking.experiment))
                break
            except Exception as e:  # MLflow raises several types (sqlalchemy, MlflowException) for these races
                if not isinstance(e, _store_exceptions()):
                    raise
                if attempt or "locked" in str(e):  # a lock has had MLflow's 20 s already
                    raise _store_error(e, uri) from e
                time.sleep(1.0)


def mark_ml_experiment(experiment: Any) -> None:
    """Tag ``experiment`` (an MLflow Experiment) as a machine-learning one unless it already has a kind.

    MLflow 3's UI opens an experiment without the tag on its GenAI overview, not on the runs
    table; an experiment a user gave another kind keeps it.
    """
    from mlflow.tracking import MlflowClient

    if experiment is not None and EXPERIMENT_KIND_TAG not in (experiment.tags or {}):
        MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, ML_EXPERIMENT_KIND)


def _mark_experiment_of_run(run_id: str) -> None:
    """:func:`mark_ml_experiment` for the experiment ``run_id`` lives in (e.g. one ``mlflow run`` chose)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    mark_ml_experiment(client.get_experiment(client.get_run(run_id).info.experiment_id))


#: tracking URIs whose tables this process has seen created
_READY_STORES: set[str] = set()


@_translated
def ensure_experiment(cfg: Config) -> str:
    """Create the tracking database and experiment if needed (before starting parallel workers)."""
    import mlflow

    configure(cfg)
    exp = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        return str(mlflow.create_experiment(cfg.tracking.experiment, tags={EXPERIMENT_KIND_TAG: ML_EXPERIMENT_KIND}))
    mark_ml_experiment(exp)
    return str(exp.experiment_id)


class Run:
    """The open MLflow run: thin typed wrappers around the fluent API."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    @_translated
    def log_params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_params({k: _param_value(v) for k, v in params.items()})

    @_translated
    def log_config(self, cfg: Config) -> None:
        """The resolved config as ``config.yaml`` and the git commit (params: the caller's defining few)."""
        import mlflow

        mlflow.log_text(to_yaml(cfg), "config.yaml")
        commit = git_commit()
        if commit:
            mlflow.set_tags({"mlflow.source.git.commit": commit.removesuffix("-dirty"), "git_commit": commit})

    @_translated
    def set_tags(self, tags: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    @_translated
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    @_translated
    def logged_steps(self, key: str) -> set[int]:
        """The steps at which metric ``key`` is already logged in this run."""
        from mlflow.tracking import MlflowClient

        return {m.step for m in MlflowClient().get_metric_history(self.run_id, key)}

    @_translated
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path)

    @_translated
    def log_figure(self, fig: matplotlib.figure.Figure, name: str) -> None:
        import mlflow

        mlflow.log_figure(fig, name)

    @_translated
    def log_table(self, data: Mapping[str, list[Any]], name: str) -> None:
        import mlflow

        mlflow.log_table(data=dict(data), artifact_file=name)

    @_translated
    def log_model(self, model: torch.nn.Module, input_example: torch.Tensor, name: str = "model") -> None:
        """``mlflow.pytorch.log_model`` of a CPU copy in eval mode.

        Saved as an exported graph ('pt2', loadable without errorset and safe to
        load); models that torch.export cannot trace fall back to pickle
        (loadable where errorset is installed).
        """
        import mlflow
        import torch

        cpu_model = copy.deepcopy(model).cpu().eval()
        example = input_example.detach().cpu().numpy()
        requirements = [f"torch=={torch.__version__.split('+')[0]}"]
        with warnings_silenced():
            try:
                mlflow.pytorch.log_model(
                    cpu_model,
                    name=name,
                    serialization_format="pt2",
                    input_example=example,
                    pip_requirements=requirements,
                )
            except Exception as e:  # torch.export fails in many ways on untraceable models
                log.warning("torch.export failed (%s: %s); logging the model pickled", type(e).__name__, e)
                mlflow.pytorch.log_model(
                    cpu_model,
                    name=name,
                    serialization_format="pickle",
                    input_example=example,
                    pip_requirements=[*requirements, "errorset"],
                )


@contextlib.contextmanager
def warnings_silenced() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def start_run(
    cfg: Config,
    *,
    run_name: str,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
) -> Iterator[Run]:
    """Open (or, with ``run_id``, reopen) an MLflow run and close it with the right status.

    Args:
        nested: nest under the run active in this process.
        parent_run_id: nest under this run, active or not, in this process or another
            (how sweep workers put their trials under one parent).
    """
    import mlflow

    configure(cfg)
    if run_id is None and os.environ.get("MLFLOW_RUN_ID") and not nested and not parent_run_id:
        run_id = os.environ["MLFLOW_RUN_ID"]  # opened by `mlflow run`
        _warn_if_other_experiment(run_id, cfg.tracking.experiment)
    run = Run(_translated(_open_run)(run_id=run_id, run_name=run_name, nested=nested, parent_run_id=parent_run_id))
    try:
        # whichever experiment the run is in (tracking.experiment, mlflow run's, a parent's)
        _translated(_mark_experiment_of_run)(run.run_id)
        if tags:
            run.set_tags(tags)
        if run_id and not nested:
            _translated(mlflow.set_tag)("mlflow.runName", run_name)
        yield run
    except KeyboardInterrupt:
        _end_run_after_error("KILLED")
        raise
    except BaseException:
        _end_run_after_error("FAILED")
        raise
    else:
        _translated(mlflow.end_run)(status="FINISHED")


def _open_run(*, run_id: str | None, run_name: str, nested: bool, parent_run_id: str | None) -> str:
    """``mlflow.start_run`` as :func:`start_run` describes it; returns the run id."""
    import mlflow

    if parent_run_id and run_id is None:
        # An explicit parent: start in the parent's experiment, whatever is active in this process.
        exp_id = mlflow.tracking.MlflowClient().get_run(parent_run_id).info.experiment_id
        active = mlflow.start_run(
            run_name=run_name,
            experiment_id=exp_id,
            tags={"mlflow.parentRunId": parent_run_id},
            nested=mlflow.active_run() is not None,
        )
    else:
        if run_id and not nested:
            _activate_experiment_of(run_id)
        active = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, nested=nested)
    return str(active.info.run_id)


def _end_run_after_error(status: str) -> None:
    """End the active run with ``status`` while an error propagates.

    When the store itself failed, ending the run fails too: that second error
    is dropped so that the first (the one that says what went wrong) is the one
    reported. SQLite rolls the failed write back, so the store stays consistent.
    """
    import mlflow

    try:
        mlflow.end_run(status=status)
    except _store_exceptions():
        log.debug("could not mark the run %s in the failing tracking store", status, exc_info=True)


def _activate_experiment_of(run_id: str) -> None:
    """Make the experiment of ``run_id`` the active one, so that MLflow lets this process reopen the run.

    A run reopened (a resumed training, a sweep's parent) may live in another experiment than
    ``tracking.experiment``, e.g. the one ``mlflow run --experiment-name`` chose; MLflow refuses to
    start a run outside the active experiment.
    """
    import mlflow

    if mlflow.active_run() is None:
        mlflow.set_experiment(experiment_id=mlflow.tracking.MlflowClient().get_run(run_id).info.experiment_id)


@_translated
def _warn_if_other_experiment(run_id: str, expected: str) -> None:
    """Say so when the run ``mlflow run`` opened lives in another experiment than ``tracking.experiment``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    actual = client.get_experiment(client.get_run(run_id).info.experiment_id).name
    if actual != expected:
        log.warning(
            "tracking.experiment: this run was opened by `mlflow run` in experiment %r, not %r; pass "
            "`mlflow run --experiment-name %s` to keep the study's runs together",
            actual,
            expected,
            expected,
        )


@_translated
def create_run(cfg: Config, *, run_name: str, tags: Mapping[str, Any] | None = None) -> str:
    """Create a run in the configured experiment without making it active (e.g. a sweep's parent).

    The run gets the config's parameters, ``config.yaml`` and the git commit; returns its id.
    """
    from mlflow.tracking import MlflowClient

    exp_id = ensure_experiment(cfg)
    all_tags = {"mlflow.runName": run_name, **{k: str(v) for k, v in (tags or {}).items()}}
    commit = git_commit()
    if commit:
        all_tags.update({"mlflow.source.git.commit": commit.removesuffix("-dirty"), "git_commit": commit})
    client = MlflowClient()
    run_id = client.create_run(exp_id, tags=all_tags, run_name=run_name).info.run_id
    from mlflow.entities import Param

    params = [Param(k, v[:6000]) for k, v in config_params(cfg).items()]
    for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=params[i : i + 100])
    client.log_text(run_id, to_yaml(cfg), "config.yaml")
    return run_id


def run_exists(run_id: str) -> bool:
    """True when ``run_id`` is a run of the tracking store that is not deleted."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient().get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


@_translated
def delete_run(run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().delete_run(run_id)


@_translated
def set_tags(run_id: str, tags: Mapping[str, Any]) -> None:
    """Set tags on any run, active or not."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for k, v in tags.items():
        client.set_tag(run_id, k, str(v))


@_translated
def set_status(run_id: str, status: str, tags: Mapping[str, Any] | None = None) -> None:
    """Set a run's final status (FINISHED, FAILED, KILLED) and tags, from any process."""
    from mlflow.tracking import MlflowClient

    set_tags(run_id, tags or {})
    MlflowClient().set_terminated(run_id, status)


@contextlib.contextmanager
def reopen_run(cfg: Config, run_id: str, *, status: str = "FINISHED") -> Iterator[Run]:
    """Reopen an existing run to log more to it, then end it with ``status``."""
    import mlflow

    configure(cfg)
    _activate_experiment_of(run_id)
    mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)
    try:
        yield Run(run_id)
    finally:
        mlflow.end_run(status=status)


@_translated
def run_status(run_id: str) -> str | None:
    """FINISHED, FAILED, KILLED or RUNNING; None when the store has no such run (or it is deleted)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        info = MlflowClient().get_run(run_id).info
    except MlflowException:
        return None
    return info.status if info.lifecycle_stage == "active" else None


@_translated
def download_artifact(run_id: str, path: str, dst: str | Path | None = None) -> Path:
    """Fetch one artifact of a run to a local path."""
    import mlflow

    dst = str(dst) if dst is not None else tempfile.mkdtemp(prefix="errorset-")
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=dst))


@_translated
def close_abandoned(run_id: str) -> bool:
    """Mark ``run_id`` KILLED when it is still RUNNING (its process died without closing it); True if it was."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        info = client.get_run(run_id).info
    except MlflowException:  # deleted, or in another store
        return False
    if info.status != "RUNNING" or info.lifecycle_stage != "active":
        return False
    client.set_tag(run_id, "errorset.closed", "abandoned: its process ended without closing the run")
    client.set_terminated(run_id, "KILLED")
    return True
