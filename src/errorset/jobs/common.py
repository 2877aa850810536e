"""What the measuring commands share: the trained model, its test images, its run name."""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch

from errorset.config import Config, config_from_dict
from errorset.data import ImageArrays, load_dataset, seeded_subset
from errorset.errors import ConfigError
from errorset.files import atomic_write, check_writable
from errorset.jobs.naming import run_name, train_output_dir
from errorset.measure.common import measurement_precision
from errorset.models import Classifier
from errorset.models.build import load_model, read_model_file
from errorset.runtime import pick_device, set_deterministic

P = ParamSpec("P")
R = TypeVar("R")


def measuring_job(job: Callable[P, R]) -> Callable[P, R]:
    """Run a measuring job ``job(cfg, ...)`` under the config's ``measure_precision`` and ``deterministic``.

    Every measurement inside then runs in float32 (TF32 and autocast off)
    unless ``measure_precision: autocast`` asks otherwise; the logged config
    records which. The tracking store is checked first, so that an unreachable
    or unwritable store stops the job before it measures anything.
    """

    @functools.wraps(job)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        cfg = args[0]
        assert isinstance(cfg, Config), "a measuring job takes the config first"
        from errorset import tracking

        tracking.configure(cfg)
        set_deterministic(cfg.deterministic)
        with measurement_precision(cfg.measure_precision):
            return job(*args, **kwargs)

    return run


@dataclass
class TrainedModel:
    """A trained model ready to measure, with the test images it is measured on."""

    model: Classifier
    #: the measuring config with the trained model's own profile, model and train settings
    config: Config
    checkpoint: Path
    #: MLflow run id of the training run (may be empty)
    train_run_id: str
    data: ImageArrays
    #: test images (uint8) and labels of the seeded subset, on the CPU
    x: torch.Tensor
    y: torch.Tensor
    #: their indices in the test split
    indices: torch.Tensor
    device: torch.device

    @property
    def name(self) -> str:
        """The training run's readable name, e.g. ``cifar10/resnet8/clean``."""
        return run_name(self.config)

    def tags(self, job: str) -> dict[str, str]:
        c = self.config
        return {
            "mode": c.train.mode,
            "dataset": c.data.name,
            "model": c.model.name or "",
            "profile": c.profile,
            "errorset.job": job,
            "train_run_id": self.train_run_id,
        }


def load_trained(
    cfg: Config, checkpoint: str | None, images: int, *, progress: bool = True, parameter: str = "checkpoint"
) -> TrainedModel:
    """Load ``checkpoint`` (default ``<train output dir>/model.pt``) and a seeded subset of ``images`` test images.

    The returned config takes ``profile``, ``model`` and ``train`` from the
    model file, so the run's parameters describe the model measured and runs of
    different variants compare side by side in the MLflow UI. ``parameter``
    names the setting that chose the checkpoint (e.g. ``eval.checkpoint``): it
    is named in error messages, and the returned config holds the resolved
    path there, so the logged parameters say which file was measured.
    """
    path = Path(checkpoint) if checkpoint else train_output_dir(cfg) / "model.pt"
    payload: dict[str, Any] = read_model_file(path, parameter)
    trained = config_from_dict(payload.get("config") or {})
    mcfg = dataclasses.replace(cfg, profile=trained.profile, model=trained.model, train=trained.train)
    section, _, key = parameter.partition(".")
    if key and hasattr(getattr(mcfg, section, None), key):
        resolved = dataclasses.replace(getattr(mcfg, section), **{key: str(path)})
        mcfg = dataclasses.replace(mcfg, **{section: resolved})
    device = pick_device(cfg.device)
    model = load_model(path, map_location=device, parameter=parameter)
    data = load_dataset(cfg.data, progress=progress)
    if tuple(model.input_shape) != data.input_shape or model.num_classes != data.num_classes:
        raise ConfigError(
            f"{parameter}: {path} was trained on {model.input_shape} images with {model.num_classes} "
            f"classes, but data.name={cfg.data.name} has {data.input_shape} images and {data.num_classes}"
        )
    x, y = data.tensors("test")
    keep = seeded_subset(len(x), images, cfg.seed)
    return TrainedModel(
        model=model,
        config=mcfg,
        checkpoint=path,
        train_run_id=str(payload.get("run_id") or ""),
        data=data,
        x=x[keep],
        y=y[keep],
        indices=keep,
        device=device,
    )


def output_dir(section_dir: str | None, trained: TrainedModel) -> Path:
    """A command's output folder: its own setting, else ``reports/<dataset>/<model>/<mode>``."""
    if section_dir:
        return Path(section_dir)
    return Path("reports", *(part.replace(":", "-") for part in trained.name.split("/")))


def prepare_outputs(cfg: Config, folder: Path, parameter: str) -> None:
    """Check, before any work, that ``folder`` and the tracking store can be written (for ``errorset train``)."""
    from errorset import tracking

    check_writable(folder, parameter)
    tracking.configure(cfg)


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def write_csv(rows: list[dict[str, Any]], fields: list[str], path: Path) -> None:
    """Write ``rows`` (dicts) as a CSV file with the columns ``fields``, header first (atomically)."""
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    write_text(text.getvalue(), path)


def write_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON with NaN and infinities as null (strict JSON, as DVC metrics need)."""
    write_text(json.dumps(_finite_or_none(obj), indent=2, allow_nan=False) + "\n", path)


def write_text(text: str, path: Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: a full disk leaves the previous file, named in the error."""
    with atomic_write(path) as f:
        f.write(text.encode())
