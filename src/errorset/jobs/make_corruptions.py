"""``errorset make-corruptions``: a CIFAR-10-C-format folder of the test set under our in-memory corruptions."""

from __future__ import annotations

from pathlib import Path

from errorset.config import Config
from errorset.corruptions import ALL_CORRUPTIONS, expand_corruptions, resolve_table
from errorset.corruptions.released import write_cifar10c
from errorset.data import load_dataset, seeded_subset
from errorset.runtime import pick_device


def make_dir(cfg: Config) -> Path:
    """``corruptions.make_dir``, else ``<data.root>/<data.name>-c``."""
    return Path(cfg.corruptions.make_dir) if cfg.corruptions.make_dir else Path(cfg.data.root) / f"{cfg.data.name}-c"


def make_corruptions(cfg: Config, *, progress: bool = True) -> Path:
    """Write ``<corruption>.npy`` (5 severities) and ``labels.npy`` for the configured test images.

    The images are the same seeded subset of ``corruptions.n_images`` test
    images that ``eval-corruptions`` evaluates, corrupted with the generator
    seed ``seed``, so evaluating the folder (``corruptions.released``) and
    the in-memory corruptions compare the same images.
    """
    c = cfg.corruptions
    data = load_dataset(cfg.data, progress=progress)
    x, y = data.tensors("test")
    keep = seeded_subset(len(x), c.n_images or 0, cfg.seed)
    table = resolve_table(c.table, max(data.input_shape[1:]))
    return write_cifar10c(
        make_dir(cfg),
        x[keep],
        y[keep],
        expand_corruptions(c.names, "corruptions.names", default=ALL_CORRUPTIONS),
        table=table,
        seed=cfg.seed,
        batch_size=max(c.batch_size, 1),
        device=pick_device(cfg.device),
        progress=progress,
    )
