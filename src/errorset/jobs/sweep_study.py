"""One sweep worker: an Optuna study whose trials are nested MLflow training runs.

Protocol, so that several processes (on one machine or many) can share a study:

* the worker that creates the study (``create_study`` succeeds; the others get
  ``DuplicatedStudyError`` and load it) stores its objectives and creates the
  sweep's parent MLflow run, whose id it stores in the study; the others wait
  for that id (a worker with other objectives is refused), so workers started
  together share one parent; every trial nests under it;
* the study stops at ``sweep.n_trials`` completed or pruned trials; a trial
  that finds ``n_trials`` trials already running or done before it (a race
  between workers) ends at once as a FAIL marked ``surplus``;
* with a database storage, a trial whose worker died stops sending heartbeats;
  the next worker to look fails it (its MLflow run too) and re-queues its
  parameters, so re-running ``errorset sweep`` completes the study; every trial
  start also fails the MLflow run of any FAIL trial still RUNNING there (Optuna
  fails stale trials itself inside ``optimize``, without telling MLflow).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from errorset.config import Config
from errorset.errors import ConfigError, ErrorsetError
from errorset.resolve import resolve
from errorset.sweep.objectives import OBJECTIVES, Objective
from errorset.sweep.space import Param, apply_trial, parse_fixed, parse_space
from errorset.sweep.storage import describe, open_storage
from errorset.sweep.strategies import PRUNERS, SAMPLERS

log = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"
OBJECTIVES_ATTR = "objectives"
#: "host:pid" of the worker that created the study (and is creating its parent run)
CREATOR_ATTR = "creator"
#: how long a worker waits for the study's creator to store the parent run id
PARENT_WAIT_S = 60.0


class Surplus(Exception):
    """A trial started after the study already had its n_trials."""


@dataclass
class Sweep:
    """A validated sweep: the base config, its space and objectives, the open study and its parent run."""

    base: Config
    cfg: Config
    params: list[Param]
    fixed: dict[str, Any]
    objectives: list[Objective]
    storage: Any
    study: Any
    parent_run_id: str = ""
    #: this process's worker number (sampler seed = seed + worker)
    worker: int = 0
    #: whether this process created the study (and so its parent run)
    created: bool = False
    #: FAIL trials whose MLflow run is known not to be RUNNING (see :func:`fail_orphaned_runs`)
    checked_failures: set[int] = field(default_factory=set)

    @property
    def trial_recipe(self) -> dict[str, Any]:
        """The training settings every trial starts from (``sweep.trial_epochs``, ``sweep.trial_subset``)."""
        s = self.cfg.sweep
        recipe: dict[str, Any] = {}
        if s.trial_epochs is not None:
            recipe["train.epochs"] = s.trial_epochs
        if s.trial_subset is not None:
            recipe["train.subset"] = s.trial_subset
        return recipe

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]


def prepare(base: Config, *, worker: int = 0) -> Sweep:
    """Validate the sweep settings of ``base`` (unresolved config), open the study and its parent run."""
    import warnings

    import optuna

    # heartbeats and fail_stale_trials are marked experimental in Optuna; we rely on them knowingly
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    cfg = resolve(base)  # validation checks the sweep settings too (validation._validate_sweep)
    s = cfg.sweep
    params = parse_space(s.space)
    fixed = parse_fixed(s.fixed)
    check_space(base, params, fixed)
    objectives = [OBJECTIVES.get(name) for name in s.objectives]

    storage = open_storage(s.storage, heartbeat_interval=s.heartbeat_interval, max_retry=s.max_retry)
    seed = cfg.seed + worker
    sampler = SAMPLERS.create(s.sampler, seed)
    # Optuna's pruners judge one objective; a multi-objective study is never pruned.
    pruner = PRUNERS.create(s.pruner if len(objectives) == 1 else "none")
    created = True
    try:
        # Not load_if_exists: exactly one worker learns that it made the study, and only it makes the parent run.
        study = optuna.create_study(
            study_name=s.study_name,
            storage=storage,
            directions=[o.direction for o in objectives],
            sampler=sampler,
            pruner=pruner,
            load_if_exists=False,
        )
    except optuna.exceptions.DuplicatedStudyError:
        created = False
        study = optuna.load_study(study_name=s.study_name, storage=storage, sampler=sampler, pruner=pruner)
    if created:
        study.set_user_attr(CREATOR_ATTR, _me())  # first: a worker that sees the objectives sees the creator
        study.set_user_attr(OBJECTIVES_ATTR, s.objectives)
        study.set_metric_names(list(s.objectives))  # optuna-dashboard then labels the values, not "0", "1"
    else:
        _check_objectives(study, cfg, objectives, wait=PARENT_WAIT_S)
        if not study.metric_names:  # a study made by an older errorset or by Optuna directly
            study.set_metric_names(list(s.objectives))
    sweep = Sweep(
        base=base,
        cfg=cfg,
        params=params,
        fixed=fixed,
        objectives=objectives,
        storage=storage,
        study=study,
        worker=worker,
        created=created,
    )
    sweep.parent_run_id = ensure_parent(sweep)
    return sweep


def trial_config(base: Config, overrides: Mapping[str, Any]) -> Config:
    """``base`` (unresolved) with a trial's dotted ``overrides`` applied, resolved and validated."""
    return resolve(apply_trial(base, overrides))


def check_space(base: Config, params: list[Param], fixed: Mapping[str, Any]) -> None:
    """Every value at the edges of the space must make a valid config (fails before any trial runs)."""
    for p in params:
        for value in p.extremes():
            try:
                trial_config(base, {**fixed, p.key: value})
            except ConfigError as e:
                raise ConfigError(f"sweep.space.{p.key}: the value {value!r} gives an invalid config ({e})") from None


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _creator_gone(attrs: dict[str, Any]) -> bool:
    """True when the study's creator evidently died: it ran on this host and its process is gone.

    A study without a creator (made by Optuna directly, or by an older errorset) has none to wait for.
    """
    if CREATOR_ATTR not in attrs:
        return True
    host, _, pid = str(attrs.get(CREATOR_ATTR, "")).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process (or an older errorset): cannot tell, keep waiting
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _user_attrs(study: Any) -> dict[str, Any]:
    """The study's user attrs as stored now (``study.user_attrs`` of a loaded study is read afresh each time)."""
    return dict(study.user_attrs)


def _check_objectives(study: Any, cfg: Config, objectives: list[Objective], *, wait: float) -> None:
    """Refuse a study made for other objectives (waiting briefly for its creator to store them)."""
    s = cfg.sweep
    deadline = time.monotonic() + wait
    stored = _user_attrs(study).get(OBJECTIVES_ATTR)
    # the creator stores them right after create_study: a worker started at the same moment may look first
    while stored is None and time.monotonic() < deadline:
        attrs = _user_attrs(study)
        if CREATOR_ATTR in attrs and _creator_gone(attrs):
            break
        time.sleep(0.2)
        stored = _user_attrs(study).get(OBJECTIVES_ATTR)
    if stored is None:
        study.set_user_attr(OBJECTIVES_ATTR, s.objectives)  # a study made by other means, or an older errorset
    elif list(stored) != list(s.objectives):
        raise ConfigError(
            f"sweep.objectives: study {s.study_name!r} in {describe(s.storage or 'the default storage')} was made "
            f"for objectives {list(stored)}, not {s.objectives}; use the same objectives or another sweep.study_name"
        )
    directions = [o.direction for o in objectives]
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(
            f"sweep.study_name: {s.study_name!r} cannot be loaded with these objectives "
            f"(its directions are {[d.name.lower() for d in study.directions]}, not {directions})"
        )


def ensure_parent(sweep: Sweep) -> str:
    """The id of the sweep's parent MLflow run: made by the study's creator, waited for by the others."""
    from errorset import tracking

    tracking.configure(sweep.cfg)  # run_exists below must look in the configured store
    # `mlflow run . -e sweep` opened a run for this process: it becomes the parent of a new study. Take it
    # out of the environment, or MLflow would hand it to the first trial's start_run (and to spawned workers).
    handed = os.environ.pop("MLFLOW_RUN_ID", None)
    existing = None if sweep.created else _wait_for_parent(sweep)
    if existing:
        if handed:
            tracking.set_tags(handed, {"errorset.job": "sweep-worker", "sweep.parent_run_id": existing})
        return existing
    return _make_parent(sweep, handed, adopt=not sweep.created)


def _make_parent(sweep: Sweep, handed: str | None, *, adopt: bool) -> str:
    """Create (or take ``handed`` as) the parent run and store its id in the study.

    ``adopt``: the creator died or the stored parent was deleted, so other workers may be doing the same:
    store, re-read, and give way to whichever id was stored last.
    """
    import optuna

    from errorset import tracking

    study, cfg = sweep.study, sweep.cfg
    mine = handed or tracking.create_run(
        cfg,
        run_name=f"sweep/{cfg.sweep.study_name}",
        tags={"errorset.job": "sweep", "optuna.study": cfg.sweep.study_name, "dataset": cfg.data.name},
    )
    study.set_user_attr(PARENT_ATTR, mine)
    if adopt:
        stored = optuna.load_study(study_name=study.study_name, storage=sweep.storage).user_attrs.get(PARENT_ATTR)
        if stored != mine:  # another worker stored its parent after us: use that one
            if not handed:
                tracking.delete_run(mine)
            return str(stored)
    if handed:
        tracking.set_tags(mine, {"errorset.job": "sweep", "optuna.study": cfg.sweep.study_name})
    return mine


def _wait_for_parent(sweep: Sweep) -> str | None:
    """The parent run id the study's creator stored, or None when this worker should make it.

    Polls for up to :data:`PARENT_WAIT_S` seconds; None (with a warning) when the creator evidently
    died before storing it, or the stored run was deleted.
    """
    from errorset import tracking

    s = sweep.cfg.sweep
    deadline = time.monotonic() + PARENT_WAIT_S
    while True:
        attrs = _user_attrs(sweep.study)
        parent = attrs.get(PARENT_ATTR)
        if parent:
            if tracking.run_exists(parent):
                return str(parent)
            log.warning(
                "sweep.study_name: the parent MLflow run %s of study %r was deleted; making a new one",
                parent,
                s.study_name,
            )
            return None
        if _creator_gone(attrs):
            log.warning(
                "sweep.study_name: the worker that created study %r (%s) died before making its parent MLflow "
                "run; making it here",
                s.study_name,
                attrs.get(CREATOR_ATTR, "unknown"),
            )
            return None
        if time.monotonic() >= deadline:
            raise ErrorsetError(
                f"sweep.study_name: study {s.study_name!r} has no parent MLflow run after {PARENT_WAIT_S:.0f} s; "
                f"its creator ({attrs.get(CREATOR_ATTR, 'unknown')}) is still making it or hangs"
            )
        time.sleep(0.2)


def finished_count(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def taken_before(study: Any, number: int) -> int:
    from optuna.trial import TrialState

    busy = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return sum(1 for t in study.get_trials(deepcopy=False, states=busy) if t.number < number)


def fail_stale_trials(sweep: Sweep) -> list[int]:
    """Fail the trials of dead workers (database storage), re-queue them, and fail their MLflow runs."""
    import optuna
    from optuna.trial import TrialState

    from errorset import tracking

    before = {t.number for t in sweep.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    optuna.storages.fail_stale_trials(sweep.study)
    failed = [t for t in sweep.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number not in before]
    for t in failed:
        run_id = t.user_attrs.get("mlflow_run_id")
        if run_id and tracking.run_exists(run_id):
            tracking.set_status(
                run_id, "FAILED", {"optuna.state": "FAIL", "failure": "worker stopped (stale heartbeat)"}
            )
    return [t.number for t in failed]


def fail_orphaned_runs(sweep: Sweep) -> list[int]:
    """Mark FAILED the MLflow run of every FAIL trial whose run is still RUNNING; the trial numbers.

    Optuna fails a stale trial itself (before each trial of ``optimize``) without telling MLflow, and a
    worker killed outright never ends its run. Trials already looked at are remembered in
    ``sweep.checked_failures``, so each trial start costs one query of the study's FAIL trials.
    """
    from optuna.trial import TrialState

    from errorset import tracking

    fixed = []
    for t in sweep.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.number in sweep.checked_failures:
            continue
        sweep.checked_failures.add(t.number)
        run_id = t.user_attrs.get("mlflow_run_id")
        if not run_id or not tracking.run_exists(run_id) or tracking.run_status(run_id) != "RUNNING":
            continue
        reason = t.system_attrs.get("fail_reason") or "worker stopped (its trial was failed by Optuna)"
        tracking.set_status(run_id, "FAILED", {"optuna.state": "FAIL", "failure": str(reason)[:5000]})
        fixed.append(t.number)
    return fixed


def others_running(sweep: Sweep) -> bool:
    """True when another worker still runs a trial of the study (RUNNING, with a live heartbeat).

    Called after this process's own trials ended. With a journal storage (no heartbeats) every
    RUNNING trial counts: a dead worker cannot be told from a live one.
    """
    from optuna.trial import TrialState

    running = {t._trial_id for t in sweep.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return False
    stale = getattr(sweep.storage, "_get_stale_trial_ids", None)  # RDBStorage's heartbeat bookkeeping
    if stale is None or sweep.storage.get_heartbeat_interval() is None:
        return True
    return bool(running - set(stale(sweep.study._study_id)))


class OneLineFailures(logging.Filter):
    """Optuna's trial-failure warnings on one line: no traceback, and no "failed with value None." echo.

    A surplus or interrupted trial is expected; its traceback (and Optuna's second line) only buries
    the message. Real errors still show their type and message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("optuna"):
            return True
        msg = record.getMessage()
        if msg.endswith(" failed with value None."):  # the echo of a failure already logged
            return False
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def quiet_optuna_failures() -> None:
    """Install :class:`OneLineFailures` on the handlers of Optuna's logger (once)."""
    optuna_log = logging.getLogger("optuna")
    for handler in optuna_log.handlers:
        if not any(isinstance(f, OneLineFailures) for f in handler.filters):
            handler.addFilter(OneLineFailures())


def held_out(cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images every trial holds out, on which the objectives are measured."""
    from errorset.data import holdout_split, load_dataset

    data = load_dataset(cfg.data, progress=False)
    x, y = data.tensors("train")
    idx, _ = holdout_split(len(x), cfg.sweep.validation_images, cfg.seed)
    return x[idx], y[idx]
