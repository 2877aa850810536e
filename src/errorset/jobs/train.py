"""``errorset train``: train one model as configured, tracked in MLflow, resumable."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from errorset.config import Config, TrainConfig, flatten, to_dict
from errorset.data import file_md5, holdout_split, load_dataset, prepared_path, seeded_subset
from errorset.data.batches import to_float
from errorset.errors import CheckpointError, TrainingDiverged, config_error_from
from errorset.jobs import run_marker
from errorset.jobs.common import prepare_outputs, start_job_run
from errorset.jobs.naming import train_output_dir, variant_name
from errorset.models import Classifier, create_model, save_model
from errorset.models.build import read_model_file
from errorset.runtime import pick_device, seed_everything
from errorset.train.checkpoint import TrainState
from errorset.train.fit import Fit, Schedule
from errorset.train.modes import MODES, InputTransform

if TYPE_CHECKING:
    from errorset import tracking

log = logging.getLogger(__name__)

#: keys that may differ between the interrupted run and its resumption
RESUMABLE_DIFFERENCES = {"train.resume", "train.overwrite", "device", "tracking.uri"}
#: the learning-rate schedule, which may change on resume (e.g. a lower rate after a NaN loss)
SCHEDULE_KEYS = ("train.lr", "train.lr_gamma", "train.milestones", "train.warmup_fraction")

CHECKPOINT = "checkpoint.pt"
#: training images a data-dependent initialisation (:meth:`Classifier.init_from_data`) sees
DATA_INIT_IMAGES = 5000
MODEL = "model.pt"

#: the ``train`` config key behind each keyword argument of the training-mode factories (train/modes.py)
MODE_ARGUMENT_KEYS = {
    "sigma_max": "sigma_max",
    "clip": "gaussian_clip",
    "norm": "adversarial.norm",
    "eps": "adversarial.eps",
    "steps": "adversarial.steps",
    "step_size": "adversarial.step_size",
    "random_start": "adversarial.random_start",
    "attack_mode": "adversarial.attack_mode",
}


def check_resumable(saved: dict[str, Any], config: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Raise when ``config`` differs from a checkpoint's ``saved`` config in anything but resumable keys.

    Both are nested config dicts (:func:`~errorset.config.to_dict`); keys added to errorset
    after the checkpoint was written count as their defaults.

    Returns:
        The learning-rate schedule keys (:data:`SCHEDULE_KEYS`) that changed, as
        ``{key: (old, new)}``: the resumed run continues with the new schedule.
    """
    old = {**flatten(to_dict(Config())), **flatten(saved)}
    new = flatten(config)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    diff = [k for k in changed if k not in RESUMABLE_DIFFERENCES and k not in SCHEDULE_KEYS]
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:6])
        raise CheckpointError(
            f"train.resume: the checkpoint was made with a different configuration ({shown}); resume with "
            f"the same parameters (only {', '.join(SCHEDULE_KEYS)} may change) or train into another "
            "train.output_dir"
        )
    return {k: (old.get(k), new.get(k)) for k in changed if k in SCHEDULE_KEYS}


def _with_run(message: str, run_id: str) -> str:
    """A divergence message with the MLflow run it failed, after its first clause (where the loss became NaN)."""
    first, _, rest = message.partition("; ")
    return f"{first}; MLflow run {run_id} is marked FAILED" + (f"; {rest}" if rest else "")


def training_transform(t: TrainConfig) -> InputTransform:
    """The input transform of training mode ``t.mode``, its factory's arguments read from the (resolved) ``t``.

    An argument the factory refuses is reported under its config key (``train.sigma_max: ...``).
    """
    factory = MODES.get(t.mode)
    values = flatten(t)
    kwargs = {name: values[MODE_ARGUMENT_KEYS[name]] for name in inspect.signature(factory).parameters}
    try:
        return factory(**kwargs)
    except ValueError as e:
        raise config_error_from(e, {arg: f"train.{key}" for arg, key in MODE_ARGUMENT_KEYS.items()}) from None


@dataclass
class TrainResult:
    run_id: str
    output_dir: Path
    model_path: Path
    history: list[dict[str, float]] = field(default_factory=list)
    #: True when ``--resume`` found the run already complete and wrote nothing
    already_complete: bool = False

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["test_accuracy"] if self.history else float("nan")


def _check_output_dir(cfg: Config, out: Path) -> None:
    """Refuse to overwrite an earlier run's files unless asked to."""
    existing = [p.name for p in (out / CHECKPOINT, out / MODEL) if p.exists()]
    if existing and not cfg.train.resume and not cfg.train.overwrite:
        raise CheckpointError(
            f"train.output_dir: {out} already holds {' and '.join(existing)} from an earlier run; "
            "pass --resume to continue it, --overwrite to replace it, or set train.output_dir"
        )


def _is_final_model(path: Path, run_id: str, epochs: int) -> bool:
    """True when ``path`` is the finished model of MLflow run ``run_id`` (all ``epochs`` in its history)."""
    if not path.is_file():
        return False
    try:
        payload = read_model_file(path, "train.output_dir")
    except CheckpointError:
        return False
    return payload.get("run_id") == run_id and len(payload.get("history") or []) == epochs


def _complete_result(out: Path, state: TrainState, epochs: int) -> TrainResult | None:
    """The result of a run that ``--resume`` finds complete (final model written, MLflow run FINISHED), else None."""
    from errorset import tracking

    if state.epoch < epochs or not state.run_id or not _is_final_model(out / MODEL, state.run_id, epochs):
        return None
    if tracking.run_status(state.run_id) != "FINISHED":
        return None  # killed while logging its final artifacts: resuming finishes that
    return TrainResult(
        run_id=state.run_id, output_dir=out, model_path=out / MODEL, history=list(state.history), already_complete=True
    )


StartHook = Callable[["tracking.Run"], None]
EpochHook = Callable[[int, Classifier, "tracking.Run"], None]
FinishHook = Callable[[Classifier, "tracking.Run"], None]


def train(
    cfg: Config,
    *,
    progress: bool = True,
    parent_run_id: str | None = None,
    on_start: StartHook | None = None,
    on_epoch_end: EpochHook | None = None,
    on_finish: FinishHook | None = None,
) -> TrainResult:
    """Train the configured model and log everything to MLflow.

    Writes ``<output_dir>/checkpoint.pt`` after every epoch and ``model.pt`` at
    the end. With ``train.resume`` the run continues from the checkpoint in the
    same MLflow run, so the finished run has every epoch logged exactly once.

    Args:
        parent_run_id: log the run nested under this MLflow run (sweep trials).
        on_start: called as ``on_start(run)`` once the MLflow run is open.
        on_epoch_end: called as ``on_epoch_end(epoch, model, run)`` after each
            epoch is logged and checkpointed (e.g. to report to a pruner; an
            exception it raises ends training and marks the run FAILED).
        on_finish: called as ``on_finish(model, run)`` in the open run after
            ``model.pt`` is written (e.g. to log more measurements).
    """
    t = cfg.train
    assert t.epochs is not None and t.batch_size is not None, "resolve the config first"
    out = train_output_dir(cfg)
    prepare_outputs(cfg, out, "train.output_dir")  # an unwritable folder or tracking store stops here
    _check_output_dir(cfg, out)
    state = TrainState.load(out / CHECKPOINT) if t.resume else None
    schedule_changes = check_resumable(state.config, to_dict(cfg)) if state is not None else {}
    # a run killed with SIGKILL left its MLflow run RUNNING and maybe half-written temporary files
    run_marker.claim(out, resuming=state.run_id if state else None)
    run_marker.remove_stale_temporaries(out, (CHECKPOINT, MODEL))
    if state is not None:
        done = _complete_result(out, state, t.epochs)
        if done is not None:
            log.info("train.resume: the run in %s is complete (%d epochs); nothing to do", out, state.epoch)
            return done

    data = load_dataset(cfg.data, progress=progress)
    data_md5 = file_md5(prepared_path(cfg.data))
    device = pick_device(cfg.device)
    seed_everything(cfg.seed, deterministic=cfg.deterministic)

    model = create_model(
        cfg.model.name or "",
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        pretrained=cfg.model.pretrained,
    ).to(device)
    schedule = Schedule(
        lr=t.lr,
        momentum=t.momentum or 0.0,
        weight_decay=t.weight_decay or 0.0,
        milestones=t.milestones or [],
        gamma=t.lr_gamma,
        kind=t.schedule or "step",
        warmup_fraction=t.warmup_fraction or 0.0,
        epochs=t.epochs,
        nesterov=bool(t.nesterov),
    )
    fit = Fit(model, schedule, device=device, amp=t.amp, seed=cfg.seed)

    x_train, y_train = data.tensors("train")
    _, trainable = holdout_split(len(x_train), t.holdout, cfg.seed)
    x_train, y_train = x_train[trainable], y_train[trainable]
    keep = seeded_subset(len(x_train), t.subset or 0, cfg.seed)
    x_train, y_train = x_train[keep], y_train[keep]
    x_test, y_test = data.tensors("test")
    keep = seeded_subset(len(x_test), t.test_images or 0, cfg.seed)
    x_test, y_test = x_test[keep], y_test[keep]
    # Small datasets live on the device as uint8; large ones are moved batch by batch.
    if x_train.numel() < 2**31:
        x_train, y_train = x_train.to(device), y_train.to(device)
    flip_crop = t.flip_crop if t.flip_crop is not None else data.input_shape == (3, 32, 32)
    transform = training_transform(t)

    reseeded = fit.restore(state, new_schedule=schedule if schedule_changes else None) if state else False
    # a data-dependent first layer (cifarnet's whitening) is set once, from the images trained on;
    # a resumed run has it in its checkpoint
    data_init = 0 if state else min(len(x_train), DATA_INIT_IMAGES)
    if data_init and not model.init_from_data(to_float(x_train[:data_init])):
        data_init = 0

    resume_id = state.run_id if state else None
    job_params = {
        "data.md5": data_md5,
        "data.train_images": len(x_train),
        "data.test_images": len(x_test),
        # what train.amp resolved to on this device (measurements never use it)
        "train.autocast_dtype": fit.precision.name,
    }
    if data_init:
        job_params["train.data_init_images"] = data_init
    if t.holdout:  # images held out of training (sweep trials' validation images) define the run too
        job_params["train.holdout"] = t.holdout
    with (
        start_job_run(
            cfg,
            "train",
            variant=variant_name(cfg, out),
            params=job_params,
            run_id=resume_id,
            parent_run_id=parent_run_id,
        ) as run,
        run_marker.marking(out, run.run_id),
    ):
        if on_start is not None:
            on_start(run)
        if state is not None:  # params are logged already; log the epochs saved but not logged when it was killed
            run.set_tags({"resumed_from_epoch": state.epoch, "resumed_on": device.type})
            if schedule_changes:  # MLflow params cannot change: the change is a tag, and the lr metric shows it
                changes = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in schedule_changes.items())
                run.set_tags({f"resumed_changes/epoch_{state.epoch}": changes})
                log.info("train.resume: continuing with %s", changes)
            if reseeded:  # another device type: the noise stream continues from a derived seed
                run.set_tags({"resumed_reseeded_generators": "noise"})
            logged = run.logged_steps("train_loss")
            for step, metrics in enumerate(fit.history):
                if step not in logged:
                    run.log_metrics(metrics, step=step)

        def after_epoch(epoch: int, metrics: dict[str, float]) -> None:
            run.log_metrics(metrics, step=epoch)
            log.info(
                "epoch %d/%d  loss %.4f  train acc %.4f  test acc %.4f",
                epoch + 1,
                t.epochs,
                metrics["train_loss"],
                metrics["train_accuracy"],
                metrics["test_accuracy"],
            )
            if on_epoch_end is not None:
                on_epoch_end(epoch, model, run)

        try:
            history = fit.run(
                t.epochs,
                (x_train, y_train),
                (x_test, y_test),
                transform=transform,
                batch_size=t.batch_size,
                flip_crop=flip_crop,
                checkpoint=out / CHECKPOINT,
                config=to_dict(cfg),
                run_id=run.run_id,
                label_smoothing=t.label_smoothing or 0.0,
                after_epoch=after_epoch,
                progress=progress,
            )
        except TrainingDiverged as e:  # start_job_run marks the run FAILED on the way out
            raise TrainingDiverged(_with_run(str(e), run.run_id)) from None

        model_path = out / MODEL
        # a run killed after writing model.pt but before closing its MLflow run: the file stays as it is
        if not _is_final_model(model_path, run.run_id, t.epochs):
            save_model(
                model,
                model_path,
                classes=data.classes,
                dataset={"name": cfg.data.name, "md5": data_md5},
                config=to_dict(cfg),
                run_id=run.run_id,
                history=history,
            )
        run.log_artifact(model_path, "checkpoints")
        run.log_artifact(out / CHECKPOINT, "checkpoints")
        if cfg.tracking.log_model:
            run.log_model(model, x_test[:2].float().div(255))
        if on_finish is not None:
            on_finish(model, run)
        return TrainResult(run_id=run.run_id, output_dir=out, model_path=model_path, history=history)
