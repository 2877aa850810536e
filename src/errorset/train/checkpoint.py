"""The resumable training state: ``<output_dir>/checkpoint.pt``.

Written atomically at the end of every epoch, so a killed run loses at most the
epoch in progress and never leaves a half-written file. It holds the model,
optimiser, scheduler and scaler states, both random generators, the resolved
config, the MLflow run id and the per-epoch history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from errorset.config import flatten
from errorset.errors import CheckpointError
from errorset.models.build import atomic_torch_save

CHECKPOINT_FORMAT = "errorset.checkpoint/1"

#: keys that may differ between the interrupted run and its resumption
RESUMABLE_DIFFERENCES = {"train.resume", "train.overwrite", "device", "tracking.uri"}


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

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"format": CHECKPOINT_FORMAT, **self.__dict__}, path)

    @classmethod
    def load(cls, path: Path) -> TrainState:
        if not path.is_file():
            raise CheckpointError(f"train.resume: no checkpoint at {path} to resume from")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for corrupt files
            raise CheckpointError(
                f"train.resume: {path} is not a readable checkpoint ({type(e).__name__}: {e})"
            ) from None
        if not isinstance(payload, dict) or payload.pop("format", None) != CHECKPOINT_FORMAT:
            raise CheckpointError(f"train.resume: {path} is not an errorset checkpoint")
        return cls(**payload)

    def check_config(self, config: dict[str, Any]) -> None:
        """Raise when ``config`` differs from the checkpoint's in anything but resumable keys."""
        old, new = flatten(self.config), flatten(config)
        diff = sorted(k for k in set(old) | set(new) if k not in RESUMABLE_DIFFERENCES and old.get(k) != new.get(k))
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:6])
            raise CheckpointError(
                f"train.resume: the checkpoint was made with a different configuration ({shown}); "
                "resume with the same parameters or train into another train.output_dir"
            )
