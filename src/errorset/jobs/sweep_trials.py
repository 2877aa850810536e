"""The sweep's trials: each an Optuna trial whose model is a nested ``errorset train`` job.

The study, its parent run and the bookkeeping between workers are :mod:`errorset.jobs.sweep_study`'s;
this module runs one worker's trials through the training job (:func:`errorset.jobs.train.train`),
measuring the objectives on the held-out images after training (and after each epoch when pruning).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from errorset import interrupts
from errorset.errors import TrainingDiverged
from errorset.jobs.sweep_study import (
    Surplus,
    Sweep,
    fail_orphaned_runs,
    fail_stale_trials,
    finished_count,
    held_out,
    quiet_optuna_failures,
    taken_before,
    trial_config,
)
from errorset.measure.common import measurement_precision

log = logging.getLogger(__name__)


def run_worker(sweep: Sweep, *, progress: bool = True) -> None:
    """Run trials on the study until it has ``sweep.n_trials`` completed or pruned trials."""
    import optuna

    from errorset import tracking
    from errorset.jobs.train import train
    from errorset.runtime import make_generator, pick_device

    cfg, s, study = sweep.cfg, sweep.cfg.sweep, sweep.study
    quiet_optuna_failures()
    stale = fail_stale_trials(sweep)
    if stale:
        log.warning("trials %s of a stopped worker were failed and re-queued", stale)
    if finished_count(study) >= s.n_trials:
        return
    x_val, y_val = held_out(cfg)
    device = pick_device(cfg.device)
    primary = sweep.objectives[0]
    prune = s.pruner != "none" and len(sweep.objectives) == 1 and primary.per_epoch

    def objective(trial: Any) -> Any:
        interrupts.check()  # no new trial after a stop request
        orphaned = fail_orphaned_runs(sweep)
        if orphaned:
            log.warning("trials %s had failed in Optuna; their MLflow runs are now marked FAILED", orphaned)
        if taken_before(study, trial.number) >= s.n_trials:
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
