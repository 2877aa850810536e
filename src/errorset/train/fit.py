"""The training loop: epochs of :func:`~errorset.train.loop.train_epoch` under a step schedule, a checkpoint
after every epoch, and resumption from one.

:class:`Fit` holds what a run carries from epoch to epoch (model, SGD optimiser, step schedule,
mixed precision, the data and noise generators, the per-epoch history) and takes plain
arguments; the ``train`` job reads them from the config and logs each epoch to MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from errorset import interrupts
from errorset.errors import TrainingDiverged
from errorset.measure.clean_accuracy import accuracy
from errorset.runtime import make_generator
from errorset.train.checkpoint import TrainState, restore_generator, set_schedule
from errorset.train.loop import Precision, train_epoch
from errorset.train.modes import InputTransform

#: after_epoch(epoch, metrics): called once the epoch's checkpoint is written
EpochCallback = Callable[[int, dict[str, float]], None]


#: the learning-rate schedules :class:`Schedule` knows (``train.schedule``)
SCHEDULES = ("step", "linear")


@dataclass(frozen=True)
class Schedule:
    """SGD with momentum and weight decay on every trained parameter, and its learning-rate schedule.

    ``step`` (the paper's and Madry et al.'s recipe): the rate ``lr`` multiplied by ``gamma`` after each
    epoch of ``milestones``. ``linear`` (short schedules, as the fastest CIFAR-10 recipes use): from 0 up
    to ``lr`` over the first ``warmup_fraction`` of the ``epochs``, then down to 0 at their end, set before every step.
    """

    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    kind: str = "step"
    warmup_fraction: float = 0.0
    #: linear schedule: where the rate reaches 0
    epochs: int = 0
    nesterov: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"kind: unknown schedule {self.kind!r}; valid schedules: {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction: expected a number in [0, 1), got {self.warmup_fraction}")
        if self.kind == "linear" and self.epochs < 1:
            raise ValueError(f"epochs: the linear schedule needs the run's epochs (>= 1), got {self.epochs}")

    def lr_at(self, t: float) -> float:
        """The linear schedule's rate at ``t`` epochs into training (fractions between steps)."""
        warmup = self.warmup_fraction * self.epochs
        if t < warmup:
            return self.lr * t / warmup
        return self.lr * max(0.0, (self.epochs - t) / (self.epochs - warmup))

    @property
    def epoch_milestones(self) -> list[int]:
        """The epoch scheduler's milestones: the step schedule's; none for the linear one, which is set per step."""
        return self.milestones if self.kind == "step" else []

    @property
    def per_step(self) -> Callable[[float], float] | None:
        """What :func:`~errorset.train.loop.train_epoch` sets the rate from before each step (linear), or None."""
        return self.lr_at if self.kind == "linear" else None


class Fit:
    """A training run's state between epochs.

    Args:
        model: the classifier, already on its device.
        schedule: optimiser and learning-rate schedule.
        device: where training runs (the noise generator lives there).
        amp: mixed precision: True, False or None = where the device computes it fast (:meth:`Precision.for_device`).
        seed: the run's seed; the data generator is seeded ``seed + 1``, the noise one ``seed + 2``.
    """

    def __init__(
        self, model: nn.Module, schedule: Schedule, *, device: torch.device, amp: bool | None, seed: int
    ) -> None:
        self.model = model
        self.seed = seed
        self.schedule = schedule
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=schedule.lr,
            momentum=schedule.momentum,
            weight_decay=schedule.weight_decay,
            nesterov=schedule.nesterov,
        )
        # the linear schedule sets the rate before every step (Schedule.per_step); with no milestones
        # this epoch scheduler then leaves the rate as it is, and its state is still checkpointed
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=schedule.epoch_milestones, gamma=schedule.gamma
        )
        self.precision = Precision.for_device(device, amp)
        self.data_generator = make_generator(seed + 1)
        self.noise_generator = make_generator(seed + 2, device)
        self.history: list[dict[str, float]] = []
        self.epoch = 0  # epochs completed

    def restore(self, state: TrainState, *, new_schedule: Schedule | None = None) -> bool:
        """Continue from ``state`` (a checkpoint); with ``new_schedule``, switch to it from the epoch reached.

        Returns True when the noise generator was re-seeded (the state came from another device type,
        :func:`~errorset.train.checkpoint.restore_generator`) instead of restored.
        """
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        if self.precision.scaler is not None and state.scaler:
            self.precision.scaler.load_state_dict(state.scaler)
        self.data_generator.set_state(state.data_generator)  # always a CPU generator
        reseeded = restore_generator(
            self.noise_generator, state.noise_generator, state.noise_generator_device, self.seed, "noise", state.epoch
        )
        self.history, self.epoch = list(state.history), state.epoch
        if new_schedule is not None:
            s = self.schedule = new_schedule
            set_schedule(
                self.optimizer, self.scheduler, lr=s.lr, gamma=s.gamma, milestones=s.epoch_milestones, epoch=self.epoch
            )
        return reseeded

    def state(self, config: dict[str, Any], run_id: str | None) -> TrainState:
        """The resumable state after :attr:`epoch` epochs, carrying ``config`` and the MLflow ``run_id``."""
        return TrainState(
            epoch=self.epoch,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.precision.scaler.state_dict() if self.precision.scaler else None,
            data_generator=self.data_generator.get_state(),
            noise_generator=self.noise_generator.get_state(),
            noise_generator_device=self.noise_generator.device.type,
            config=config,
            run_id=run_id,
            history=self.history,
        )

    def run(
        self,
        epochs: int,
        train_set: tuple[torch.Tensor, torch.Tensor],
        test_set: tuple[torch.Tensor, torch.Tensor],
        *,
        transform: InputTransform,
        batch_size: int,
        flip_crop: bool,
        checkpoint: Path,
        config: dict[str, Any],
        run_id: str | None,
        label_smoothing: float = 0.0,
        after_epoch: EpochCallback | None = None,
        progress: bool = True,
    ) -> list[dict[str, float]]:
        """Train from epoch :attr:`epoch` to ``epochs``; after each, write ``checkpoint`` then call ``after_epoch``.

        Each epoch's metrics: ``train_loss``, ``train_accuracy`` (on the transformed batches),
        ``test_accuracy`` (clean, float32), ``lr`` (the rate of its last step) and ``images_per_second``.
        ``label_smoothing`` goes to the loss (:func:`~errorset.train.loop.train_epoch`).
        A stop request (:mod:`errorset.interrupts`) ends the loop between epochs, the checkpoint written.
        Returns the history of every epoch, resumed ones included.

        Raises:
            TrainingDiverged: the loss became NaN or infinite; the last good checkpoint is kept.
        """
        x_train, y_train = train_set
        x_test, y_test = test_set
        for epoch in range(self.epoch, epochs):
            interrupts.check()
            try:
                stats = train_epoch(
                    self.model,
                    self.optimizer,
                    x_train,
                    y_train,
                    transform=transform,
                    batch_size=batch_size,
                    data_generator=self.data_generator,
                    noise_generator=self.noise_generator,
                    flip_crop=flip_crop,
                    precision=self.precision,
                    label_smoothing=label_smoothing,
                    lr_at=self.schedule.per_step,
                    epoch=epoch,
                    progress=progress,
                )
            except TrainingDiverged as e:
                kept = (
                    f"the last good checkpoint (epoch {epoch}) is kept at {checkpoint}"
                    if epoch > 0
                    else "no epoch completed, so no checkpoint was written"
                )
                again = "; continue from it with --resume --set train.lr=<lower rate>" if epoch > 0 else ""
                raise TrainingDiverged(f"{e}; {kept}{again}") from None
            metrics = {
                "train_loss": stats.loss,
                "train_accuracy": stats.accuracy,
                "test_accuracy": accuracy(self.model, x_test, y_test),
                "lr": self.optimizer.param_groups[0]["lr"],
                "images_per_second": stats.images_per_second,
            }
            self.scheduler.step()
            self.history.append(metrics)
            self.epoch = epoch + 1
            self.state(config, run_id).save(checkpoint)
            if after_epoch is not None:
                after_epoch(epoch, metrics)
        return self.history
