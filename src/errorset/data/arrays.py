"""In-memory image datasets as uint8 arrays, and their one-file on-disk form.

A prepared dataset is a single uncompressed ``.npz`` file holding ``x_train``,
``x_test`` (uint8, N x C x H x W), ``y_train``, ``y_test`` (int64) and a JSON
``meta`` record (class names, per-channel mean and std in [0,1] units, and the
source it was made from). It is what the DVC ``prepare`` stage writes and what
training and evaluation read: one file, so DVC hashes it once and queued
experiments see it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from errorset.errors import DataError
from errorset.files import atomic_write

FORMAT = "errorset.dataset/1"


@dataclass
class ImageArrays:
    """A labelled image dataset split into train and test, as uint8 NCHW arrays."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    #: where the data came from (checked before a cached file is reused)
    source: dict[str, Any] = field(default_factory=dict)
    #: per-channel mean and std of the training images, in [0,1] pixel units
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.uint8 or x.ndim != 4:
                raise DataError(f"{self.name}: x_{split} must be uint8 N x C x H x W, got {x.dtype} {x.shape}")
            if len(x) != len(y):
                raise DataError(f"{self.name}: {len(x)} {split} images but {len(y)} labels")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"{self.name}: train images are {self.x_train.shape[1:]} but test images {self.x_test.shape[1:]}"
            )
        if not self.mean:
            self.mean, self.std = channel_stats(self.x_train)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images, int64 labels) of ``split`` ("train" or "test") as tensors."""
        x = getattr(self, f"x_{split}")
        y = getattr(self, f"y_{split}")
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images, in [0,1] units."""
    c = x.shape[1]
    total = np.zeros(c)
    total_sq = np.zeros(c)
    count = 0
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk].astype(np.float64) / 255.0
        total += part.sum(axis=(0, 2, 3))
        total_sq += (part**2).sum(axis=(0, 2, 3))
        count += part.shape[0] * part.shape[2] * part.shape[3]
    mean = total / max(count, 1)
    var = np.maximum(total_sq / max(count, 1) - mean**2, 0.0)
    std = np.sqrt(var)
    std[std == 0] = 1.0  # a constant channel: leave it unscaled
    return [float(v) for v in mean], [float(v) for v in std]


def save_arrays(data: ImageArrays, path: str | Path) -> Path:
    """Write ``data`` to one uncompressed ``.npz``, atomically (no half-written file is ever seen)."""
    meta = {
        "format": FORMAT,
        "name": data.name,
        "classes": data.classes,
        "mean": data.mean,
        "std": data.std,
        "source": data.source,
    }
    with atomic_write(path) as f:
        np.savez(
            f,
            x_train=data.x_train,
            y_train=data.y_train.astype(np.int64),
            x_test=data.x_test,
            y_test=data.y_test.astype(np.int64),
            meta=np.array(json.dumps(meta)),
        )
    return path


def read_meta(path: str | Path) -> dict[str, Any] | None:
    """The ``meta`` record of a prepared file, or None when it is not a readable one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def load_arrays(path: str | Path) -> ImageArrays:
    """Read a prepared dataset written by :func:`save_arrays`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no prepared dataset at {path}; run `errorset prepare` first")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path} is not a readable prepared dataset ({e}); delete it and prepare again") from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: unknown format {meta.get('format')!r}, expected {FORMAT}")
    return ImageArrays(
        name=meta["name"],
        classes=list(meta["classes"]),
        mean=list(meta["mean"]),
        std=list(meta["std"]),
        source=dict(meta.get("source", {})),
        **arrays,
    )


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file's bytes: the hash DVC 3 records for it in ``dvc.lock``."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
