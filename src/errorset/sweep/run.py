"""One sweep worker: an Optuna study whose trials are nested MLflow training runs.

Protocol, so that several processes (on one machine or many) can share a study:

* the study is created on first use (``load_if_exists``) and remembers its
  objectives; a worker with other objectives is refused;
* the first worker creates the sweep's parent MLflow run and stores its id in
  the study; a worker that loses a creation race deletes its own parent and
  adopts the stored one; every trial nests under the stored parent;
* the study stops at ``sweep.n_trials`` completed or pruned trials; a trial
  that finds ``n_trials`` trials already running or done before it (a race
  between workers) ends at once as a FAIL marked ``surplus``;
* with a database storage, a trial whose worker died stops sending heartbeats;
  the next worker to look fails it (its MLflow run too) and re-queues its
  parameters, so re-running ``errorset sweep`` completes the study.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from errorset import interrupts
from errorset.config import Config, resolve
from errorset.errors import ConfigError, TrainingDiverged
from errorset.measure.common import measurement_precision
from errorset.sweep.objectives import OBJECTIVES, Objective, check_settings
from errorset.sweep.space import Param, check_space, parse_fixed, parse_space, trial_config
from errorset.sweep.storage import describe, open_storage

log = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"
OBJECTIVES_ATTR = "objectives"
PRUNERS = ("median", "none")
SAMPLERS = ("tpe", "random")


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


def _check_settings(cfg: Config) -> None:
    s = cfg.sweep
    if s.n_trials < 1:
        raise ConfigError(f"sweep.n_trials: expected an integer >= 1, got {s.n_trials}")
    if not s.objectives:
        raise ConfigError("sweep.objectives: expected at least one objective name")
    if len(set(s.objectives)) != len(s.objectives):
        raise ConfigError(f"sweep.objectives: each objective once, got {s.objectives}")
    check_settings(cfg)
    if s.pruner not in PRUNERS:
        raise ConfigError(f"sweep.pruner: unknown pruner {s.pruner!r}; valid pruners: {', '.join(PRUNERS)}")
    if s.sampler not in SAMPLERS:
        raise ConfigError(f"sweep.sampler: unknown sampler {s.sampler!r}; valid samplers: {', '.join(SAMPLERS)}")
    for key, value in (
        ("workers", s.workers),
        ("heartbeat_interval", s.heartbeat_interval),
        ("validation_images", s.validation_images),
        ("sigma_samples", s.sigma_samples),
    ):
        if value < 1:
            raise ConfigError(f"sweep.{key}: expected an integer >= 1, got {value}")
    if s.max_retry < 0:
        raise ConfigError(f"sweep.max_retry: expected an integer >= 0, got {s.max_retry}")
    if not s.study_name.strip():
        raise ConfigError("sweep.study_name: expected a non-empty name")


def _forbid_shared_keys(keys: list[str], where: str) -> None:
    for key in keys:
        if key == "seed" or key.startswith(("data.", "device", "tracking.")):
            raise ConfigError(
                f"{where}.{key}: every trial must share the data, seed and tracking settings "
                "(the held-out validation images depend on them)"
            )


def prepare(base: Config, *, worker: int = 0) -> Sweep:
    """Validate the sweep settings of ``base`` (unresolved config), open the study and its parent run."""
    import warnings

    import optuna

    # heartbeats and fail_stale_trials are marked experimental in Optuna; we rely on them knowingly
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    cfg = resolve(base)
    _check_settings(cfg)
    s = cfg.sweep
    params = parse_space(s.space)
    fixed = parse_fixed(s.fixed)
    _forbid_shared_keys([p.key for p in params], "sweep.space")
    _forbid_shared_keys(list(fixed), "sweep.fixed")
    check_space(base, params, fixed)
    objectives = [OBJECTIVES.get(name) for name in s.objectives]

    storage = open_storage(s.storage, heartbeat_interval=s.heartbeat_interval, max_retry=s.max_retry)
    seed = cfg.seed + worker
    sampler = optuna.samplers.TPESampler(seed=seed) if s.sampler == "tpe" else optuna.samplers.RandomSampler(seed)
    # Optuna's pruners judge one objective; a multi-objective study is never pruned.
    use_pruner = s.pruner == "median" and len(objectives) == 1
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1) if use_pruner else optuna.pruners.NopPruner()
    )
    try:
        study = optuna.create_study(
            study_name=s.study_name,
            storage=storage,
            directions=[o.direction for o in objectives],
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except ValueError as e:
        raise ConfigError(f"sweep.study_name: {s.study_name!r} cannot be loaded with these objectives ({e})") from None
    stored = study.user_attrs.get(OBJECTIVES_ATTR)
    if stored is None:
        study.set_user_attr(OBJECTIVES_ATTR, s.objectives)
    elif list(stored) != list(s.objectives):
        raise ConfigError(
            f"sweep.objectives: study {s.study_name!r} in {describe(s.storage or 'the default storage')} was made "
            f"for objectives {list(stored)}, not {s.objectives}; use the same objectives or another sweep.study_name"
        )
    sweep = Sweep(
        base=base,
        cfg=cfg,
        params=params,
        fixed=fixed,
        objectives=objectives,
        storage=storage,
        study=study,
        worker=worker,
    )
    sweep.parent_run_id = ensure_parent(sweep)
    return sweep


def ensure_parent(sweep: Sweep) -> str:
    """The id of the sweep's parent MLflow run, created by whichever worker comes first."""
    import optuna

    from errorset import tracking

    study, cfg = sweep.study, sweep.cfg
    # `mlflow run . -e sweep` opened a run for this process: it becomes the parent of a new study. Take it
    # out of the environment, or MLflow would hand it to the first trial's start_run (and to spawned workers).
    handed = os.environ.pop("MLFLOW_RUN_ID", None)
    existing = study.user_attrs.get(PARENT_ATTR)
    if existing and tracking.run_exists(existing):
        if handed:
            tracking.set_tags(handed, {"errorset.job": "sweep-worker", "sweep.parent_run_id": existing})
        return str(existing)
    mine = handed or tracking.create_run(
        cfg,
        run_name=f"sweep/{cfg.sweep.study_name}",
        tags={"errorset.job": "sweep", "optuna.study": cfg.sweep.study_name, "dataset": cfg.data.name},
    )
    study.set_user_attr(PARENT_ATTR, mine)
    stored = optuna.load_study(study_name=study.study_name, storage=sweep.storage).user_attrs.get(PARENT_ATTR)
    if stored != mine:  # another worker stored its parent after us: use that one
        if not handed:
            tracking.delete_run(mine)
        return str(stored)
    if handed:
        tracking.set_tags(mine, {"errorset.job": "sweep", "optuna.study": cfg.sweep.study_name})
    return mine


def finished_count(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _taken_before(study: Any, number: int) -> int:
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


def held_out(cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images every trial holds out, on which the objectives are measured."""
    from errorset.data import holdout_split, load_dataset

    data = load_dataset(cfg.data, progress=False)
    x, y = data.tensors("train")
    idx, _ = holdout_split(len(x), cfg.sweep.validation_images, cfg.seed)
    return x[idx], y[idx]


def run_worker(sweep: Sweep, *, progress: bool = True) -> None:
    """Run trials on the study until it has ``sweep.n_trials`` completed or pruned trials."""
    import optuna

    from errorset import tracking
    from errorset.jobs.train import train
    from errorset.runtime import make_generator, pick_device

    cfg, s, study = sweep.cfg, sweep.cfg.sweep, sweep.study
    stale = fail_stale_trials(sweep)
    if stale:
        log.warning("trials %s of a stopped worker were failed and re-queued", stale)
    if finished_count(study) >= s.n_trials:
        return
    x_val, y_val = held_out(cfg)
    device = pick_device(cfg.device)
    primary = sweep.objectives[0]
    prune = s.pruner == "median" and len(sweep.objectives) == 1 and primary.per_epoch

    def objective(trial: Any) -> Any:
        interrupts.check()  # no new trial after a stop request
        if _taken_before(study, trial.number) >= s.n_trials:
            trial.set_user_attr("surplus", True)
            study.stop()
            raise Surplus(f"trial {trial.number}: the study already has {s.n_trials} trials")
        values: dict[str, float] = {}
        sampled = {p.key: p.suggest(trial) for p in sweep.params}
        tcfg = trial_config(
            sweep.base,
            {
                **sweep.trial_recipe,
                **sweep.fixed,
                **sampled,
                "train.holdout": s.validation_images,
                "train.output_dir": f"sweeps/{s.study_name}/trial-{trial.number}",
                "train.overwrite": True,
                "tracking.run_name": f"sweep/{s.study_name}/trial-{trial.number}",
            },
        )
        gen = make_generator(cfg.seed, device)

        def on_start(run: tracking.Run) -> None:
            trial.set_user_attr("mlflow_run_id", run.run_id)
            trial.set_user_attr("worker", sweep.worker)
            run.set_tags({"errorset.job": "sweep-trial", "optuna.study": s.study_name, "optuna.trial": trial.number})

        def on_epoch_end(epoch: int, model: torch.nn.Module, run: tracking.Run) -> None:
            if not prune:
                return
            with measurement_precision(tcfg.measure_precision):
                value = primary.measure(model, x_val, y_val, tcfg, gen)
            run.log_metrics({f"objective_per_epoch/{primary.name}": value}, step=epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"trial {trial.number} pruned after epoch {epoch + 1}")

        def on_finish(model: torch.nn.Module, run: tracking.Run) -> None:
            with measurement_precision(tcfg.measure_precision):
                for o in sweep.objectives:
                    values[o.name] = o.measure(model, x_val, y_val, tcfg, gen)
            run.log_metrics({f"objective/{k}": v for k, v in values.items()})
            run.log_params({"sweep.trial": trial.number, "sweep.validation_images": len(x_val)})

        try:
            result = train(
                tcfg,
                progress=False,
                parent_run_id=sweep.parent_run_id,
                on_start=on_start,
                on_epoch_end=on_epoch_end,
                on_finish=on_finish,
            )
        except optuna.TrialPruned:
            run_id = trial.user_attrs.get("mlflow_run_id")
            if run_id:
                tracking.set_status(run_id, "KILLED", {"optuna.state": "PRUNED"})
            raise
        trial.set_user_attr("model_path", str(result.model_path))
        out = tuple(values[name] for name in sweep.names)
        return out if len(out) > 1 else out[0]

    def stop_when_done(study: Any, trial: Any) -> None:
        if finished_count(study) >= s.n_trials:
            study.stop()

    study.optimize(
        objective,
        callbacks=[stop_when_done],
        catch=(TrainingDiverged, Surplus),
        gc_after_trial=True,
        show_progress_bar=False,  # Optuna's bar needs n_trials; trials log their own progress
    )
