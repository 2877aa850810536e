"""``errorset prepare``: make the dataset's one-file uint8 form under ``data.root``."""

from __future__ import annotations

from pathlib import Path

from errorset.config import Config
from errorset.data import prepare_dataset


def prepare(cfg: Config, *, force: bool = False, progress: bool = True) -> Path:
    """Write ``<data.root>/<data.name>.npz`` unless an up-to-date one exists (``force`` remakes it)."""
    return prepare_dataset(cfg.data, force=force, progress=progress)
