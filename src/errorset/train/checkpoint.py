"""The resumable training state: ``<output_dir>/checkpoint.pt``.

Written atomically at the end of every epoch, so a killed run loses at most the
epoch in progress and never leaves a half-written file. It holds the model,
optimiser, scheduler and scaler states, both random generators (the noise
generator's with the device type it lives on), the resolved config, the MLflow
run id and the per-epoch history.

A generator state belongs to one device type: a CUDA generator's state cannot
be loaded into a CPU generator. Resuming on another device type therefore
re-seeds that generator deterministically from the run's seed and the epoch
reached (:func:`restore_generator`), so the resumed run is reproducible, though
not bit-identical to an uninterrupted run on the first device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from errorset.errors import CheckpointError
from errorset.models.build import atomic_torch_save, load_weights_only
from errorset.runtime import derived_seed

CHECKPOINT_FORMAT = "errorset.checkpoint/2"
#: formats :meth:`TrainState.load` reads (1: before the noise generator's device was recorded)
READABLE_FORMATS = ("errorset.checkpoint/1", CHECKPOINT_FORMAT)


@dataclass
class TrainState:
    epoch: int  # epochs completed
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    data_generator: torch.Tensor
    noise_generator: torch.Tensor
    config: dict[str, Any]
    run_id: str | None
    history: list[dict[str, float]] = field(default_factory=list)
    scaler: dict[str, Any] | None = None
    #: device type of the noise generator ("cpu", "cuda", ...); None in format-1 checkpoints
    noise_generator_device: str | None = None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"format": CHECKPOINT_FORMAT, **self.__dict__}, path)

    @classmethod
    def load(cls, path: Path) -> TrainState:
        if not path.is_file():
            raise CheckpointError(f"train.resume: no checkpoint at {path} to resume from")
        payload = load_weights_only(path, "train.resume", "an errorset checkpoint")
        if not isinstance(payload, dict) or payload.pop("format", None) not in READABLE_FORMATS:
            raise CheckpointError(f"train.resume: {path} is not an errorset checkpoint")
        return cls(**payload)


def set_schedule(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.MultiStepLR,
    *,
    lr: float,
    gamma: float,
    milestones: list[int],
    epoch: int,
) -> float:
    """Switch a restored step schedule to base rate ``lr``, decay ``gamma`` at ``milestones``, from ``epoch`` on.

    The rate of the coming epoch is what the new schedule gives after ``epoch``
    epochs, ``lr * gamma ** (number of milestones <= epoch)``, exactly as if the
    run had used it from the start; momentum and the other optimiser state are kept.
    Returns that rate.
    """
    import bisect
    from collections import Counter

    current = lr * gamma ** bisect.bisect_right(sorted(milestones), epoch)
    for group in optimizer.param_groups:
        group["lr"] = current
        group["initial_lr"] = lr
    scheduler.base_lrs = [lr] * len(optimizer.param_groups)
    scheduler.milestones = Counter(milestones)
    scheduler.gamma = gamma
    scheduler._last_lr = [current] * len(optimizer.param_groups)  # what get_last_lr() reports
    return current


def restore_generator(
    generator: torch.Generator, state: torch.Tensor, saved_device: str | None, seed: int, *parts: object
) -> bool:
    """Load a saved generator ``state`` into ``generator``, or re-seed it where the device type differs.

    Args:
        generator: the new run's generator (on the device it will draw on).
        state: the saved ``get_state()`` tensor.
        saved_device: the device type the state was saved from (None: unknown,
            format-1 checkpoint: the state is tried and re-seeded if refused).
        seed, parts: what the replacement seed is derived from
            (:func:`errorset.runtime.derived_seed`), e.g. the run's seed,
            the stream's name and the epoch reached.

    Returns:
        True when the generator was re-seeded instead of restored.
    """
    if saved_device is None or saved_device == generator.device.type:
        try:
            generator.set_state(state)
            return False
        except RuntimeError:  # a state from another device type (its size differs)
            if saved_device is not None:
                raise
    generator.manual_seed(derived_seed(seed, *parts))
    return True
