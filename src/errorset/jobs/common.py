"""What the measuring commands share: the trained model, its test images, its run name."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import torch

from errorset.config import Config, config_from_dict, flatten
from errorset.data import ImageArrays, load_dataset, seeded_subset
from errorset.errors import ConfigError
from errorset.files import check_writable
from errorset.jobs.naming import job_run_name, run_name, train_output_dir, variant_name
from errorset.measure.common import measurement_precision
from errorset.models import Classifier
from errorset.models.build import load_model, read_model_file
from errorset.runtime import pick_device, set_deterministic

if TYPE_CHECKING:
    from errorset.tracking import Run

P = ParamSpec("P")
R = TypeVar("R")

# The MLflow params of a run are only what defines it, so that the compare page shows them
# (and then the metrics) instead of ~160 settings; the whole resolved config is its config.yaml.
#: config keys every job run logs as MLflow params
RUN_PARAMS = ("data.name", "model.name", "profile", "seed")
#: ... and every run of one model (train and the measuring jobs)
MODEL_PARAMS = ("train.mode", "train.sigma_max")
#: ... and every run of an adversarially trained model
ADVERSARIAL_PARAMS = ("train.adversarial.eps", "train.adversarial.norm")
#: ... and the setting that chose the measured model file, per measuring job
CHECKPOINT_PARAMS = {
    "evaluate": "eval.checkpoint",
    "analyze": "analyze.checkpoint",
    "attack": "attack.checkpoint",
    "eval-corruptions": "corruptions.checkpoint",
}


def defining_params(cfg: Config, job: str, *, per_model: bool = True) -> dict[str, Any]:
    """The config values that define a run of ``job`` (the names above), as MLflow params.

    ``per_model``: the run is of one model (adds the training mode, and the attack of an
    adversarial one); reports and comparisons are not.
    """
    keys = list(RUN_PARAMS)
    if per_model:
        keys += MODEL_PARAMS
        if cfg.train.mode == "adversarial":
            keys += ADVERSARIAL_PARAMS
    if job in CHECKPOINT_PARAMS:
        keys.append(CHECKPOINT_PARAMS[job])
    flat = flatten(cfg)
    return {k: flat[k] for k in keys}


@contextlib.contextmanager
def start_job_run(
    cfg: Config,
    job: str,
    *,
    variant: str | None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    parent_run_id: str | None = None,
) -> Iterator[Run]:
    """Open the MLflow run of one job: its name, tags, ``config.yaml`` and defining params.

    Args:
        job: ``train``, ``evaluate``, ... (the tag ``errorset.job`` and the middle of the name).
        variant: the model's variant (:func:`variant_name`), or None for a run over several
            models (a report), which is then named ``<job> · <dataset>`` and tagged ``variant=all``.
        params: the job's own params besides :func:`defining_params` (e.g. ``data.md5``).
        tags: more tags (e.g. ``train_run_id``).
        run_id: reopen this run (a resumed training): its params and config are logged already,
            and MLflow params cannot change.
        parent_run_id: nest the run under this one (sweep trials).
    """
    from errorset import tracking

    per_model = variant is not None
    all_tags: dict[str, Any] = {
        "errorset.job": job,
        "variant": variant if per_model else "all",
        "dataset": cfg.data.name,
        "model": cfg.model.name or "",
        "profile": cfg.profile,
    }
    if per_model:
        all_tags["mode"] = cfg.train.mode
    all_tags.update(tags or {})
    name = job_run_name(cfg, job, variant)
    with tracking.start_run(cfg, run_name=name, tags=all_tags, run_id=run_id, parent_run_id=parent_run_id) as run:
        if run_id is None:
            run.log_config(cfg)
            run.log_params({**defining_params(cfg, job, per_model=per_model), **(params or {})})
        yield run


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

    @property
    def variant(self) -> str:
        """The model's variant: the DVC variant key of its folder ``models/<key>``, else its mode."""
        return variant_name(self.config, self.checkpoint.parent)

    def start_run(self, job: str, *, params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None):
        """:func:`start_job_run` of a measuring ``job`` of this model, tagged with its training run."""
        return start_job_run(
            self.config,
            job,
            variant=self.variant,
            params=params,
            tags={"train_run_id": self.train_run_id, **(tags or {})},
        )


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
