"""Readable run names and default output folders."""

from __future__ import annotations

from pathlib import Path

from errorset.config import Config, TrainConfig


def describe_mode(cfg: TrainConfig) -> str:
    """A short readable label of a training recipe: ``clean``, ``gaussian-0.4``, ``adversarial-linf-0.0314``."""
    if cfg.mode == "gaussian":
        return f"gaussian-{cfg.sigma_max:g}"
    if cfg.mode == "adversarial":
        a = cfg.adversarial
        return f"adversarial-{a.norm}-{a.eps:.3g}"
    return cfg.mode


def run_name(cfg: Config) -> str:
    """``<dataset>/<model>/<mode>``, e.g. ``cifar10/wrn28_10/gaussian-0.4`` (or ``tracking.run_name``).

    The key of a trained model: its default folders under ``models/`` and ``reports/``.
    MLflow runs are named by :func:`job_run_name`.
    """
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    return f"{cfg.data.name}/{cfg.model.name}/{describe_mode(cfg.train)}"


def variant_name(cfg: Config, folder: Path | None) -> str:
    """The variant a model belongs to: the DVC variant key when its folder is ``models/<key>`` of a
    variant of ``params.yaml`` (as ``dvc repro`` writes them), else its mode, e.g. ``gaussian-0.4``."""
    if folder is not None and folder.parent.name == "models" and folder.name in cfg.variants:
        return folder.name
    return describe_mode(cfg.train)


def job_run_name(cfg: Config, job: str, variant: str | None) -> str:
    """An MLflow run's name, what differs first (the runs table truncates names):
    ``gaussian-0.4 · evaluate · digits/mlp``, ``report · digits``; ``tracking.run_name`` overrides it."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    if variant is None:
        return f"{job} · {cfg.data.name}"
    return f"{variant} · {job} · {cfg.data.name}/{cfg.model.name}"


def _safe(part: str) -> str:
    return part.replace(":", "-")


def train_output_dir(cfg: Config) -> Path:
    """``train.output_dir``, else ``models/<dataset>/<model>/<mode>``."""
    if cfg.train.output_dir:
        return Path(cfg.train.output_dir)
    return Path("models", *(_safe(p) for p in run_name(cfg).split("/")))
