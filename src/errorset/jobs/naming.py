"""Readable run names and default output folders."""

from __future__ import annotations

from pathlib import Path

from errorset.config import Config
from errorset.train.modes import describe_mode


def run_name(cfg: Config) -> str:
    """``<dataset>/<model>/<mode>``, e.g. ``cifar10/wrn28_10/gaussian-0.4`` (or ``tracking.run_name``)."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    return f"{cfg.data.name}/{cfg.model.name}/{describe_mode(cfg.train)}"


def _safe(part: str) -> str:
    return part.replace(":", "-")


def train_output_dir(cfg: Config) -> Path:
    """``train.output_dir``, else ``models/<dataset>/<model>/<mode>``."""
    if cfg.train.output_dir:
        return Path(cfg.train.output_dir)
    return Path("models", *(_safe(p) for p in run_name(cfg).split("/")))
