"""Make small image-folder trees and archives in the layouts errorset reads."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_tree(
    root: Path,
    classes: list[str],
    per_class: dict[str, int],
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
    mode: str = "RGB",
) -> dict[str, np.ndarray]:
    """Random PNG images under root/<split>/<class>/NNNN.png; returns {split: uint8 N x C x H x W} in label order."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for split, n in per_class.items():
        images = []
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
                arr = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(arr, mode).save(folder / f"{i:04d}.png")
                images.append(arr.transpose(2, 0, 1) if arr.ndim == 3 else arr[None])
        out[split] = np.stack(images)
    return out


def tar_tree(root: Path, archive: Path, prefix: str = "") -> Path:
    """Pack root's contents into a .tar.gz, optionally below a top-level folder ``prefix``."""
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted(root.rglob("*")):
            tar.add(
                p,
                arcname=str(Path(prefix) / p.relative_to(root)) if prefix else str(p.relative_to(root)),
                recursive=False,
            )
    return archive
