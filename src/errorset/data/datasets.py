"""The dataset registry and the preparation of each dataset into one file.

``digits``
    scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes),
    split 80/20 with a fixed seed: the offline small real dataset.
``cifar10``
    CIFAR-10 (50,000 train / 10,000 test, 32x32 RGB). From a local image-folder
    archive or folder (``data.cifar10.archive`` or ``$ERRORSET_CIFAR10_ARCHIVE``),
    else downloaded by torchvision into ``<data.root>/raw``.
``imagefolder``
    Any ``train/<class>`` + ``test/<class>`` (or ``val/<class>``) tree or archive
    at ``data.imagefolder.path``: how users bring ImageNet and their own data.

:func:`prepare_dataset` writes ``<data.root>/<name>.npz``; :func:`load_dataset`
reads it, preparing it first when it is missing or was made from another source.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from errorset.config import DataConfig
from errorset.data.arrays import ImageArrays, load_arrays, read_meta, save_arrays
from errorset.data.imagefolder import read_image_folder
from errorset.errors import DataError
from errorset.registry import Registry

log = logging.getLogger(__name__)

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
CIFAR10_ARCHIVE_ENV = "ERRORSET_CIFAR10_ARCHIVE"


@dataclass(frozen=True)
class DatasetBuilder:
    """How one named dataset is made: ``source`` says from what (cheap), ``build`` makes it."""

    source: Callable[[DataConfig], dict[str, Any]]
    build: Callable[[DataConfig, dict[str, Any], bool], ImageArrays]


DATASETS: Registry[DatasetBuilder] = Registry("dataset", "data.name")


# --- digits ---------------------------------------------------------------


def _digits_source(cfg: DataConfig) -> dict[str, Any]:
    return {"kind": "sklearn.load_digits", "split_seed": 0, "test_fraction": 0.2}


def _digits_build(cfg: DataConfig, source: dict[str, Any], progress: bool) -> ImageArrays:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    # 0..16 gray levels -> 0..255 so that [0,1] pixel units mean the same as for photos
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, d.target, test_size=source["test_fraction"], random_state=source["split_seed"], stratify=d.target
    )
    return ImageArrays(
        name="digits",
        x_train=x_tr,
        y_train=y_tr.astype(np.int64),
        x_test=x_te,
        y_test=y_te.astype(np.int64),
        classes=[str(i) for i in range(10)],
        source=source,
    )


DATASETS.register("digits")(DatasetBuilder(_digits_source, _digits_build))


# --- cifar10 --------------------------------------------------------------


#: the source of a CIFAR-10 file that torchvision downloaded
DOWNLOAD_KIND = "torchvision.CIFAR10"


def cifar10_archive(cfg: DataConfig) -> str | None:
    """The local CIFAR-10 archive to use: the parameter, else the environment variable."""
    return cfg.cifar10.archive or os.environ.get(CIFAR10_ARCHIVE_ENV) or None


def _cifar10_source(cfg: DataConfig) -> dict[str, Any]:
    archive = cifar10_archive(cfg)
    if archive is None:
        return {"kind": DOWNLOAD_KIND}
    p = Path(archive)
    # Name and size, not the full path: the same archive seen from another
    # checkout (a DVC temp experiment) must not force a new preparation.
    size = p.stat().st_size if p.is_file() else None
    return {"kind": "imagefolder", "archive": p.name, "bytes": size}


def _cifar10_build(cfg: DataConfig, source: dict[str, Any], progress: bool) -> ImageArrays:
    archive = cifar10_archive(cfg)
    if archive is not None:
        parameter = "data.cifar10.archive" if cfg.cifar10.archive else f"${CIFAR10_ARCHIVE_ENV}"
        data = read_image_folder(
            archive,
            name="cifar10",
            parameter=parameter,
            expected_classes=CIFAR10_CLASSES,
            source=source,
            progress=progress,
        )
        if data.input_shape != (3, 32, 32):
            raise DataError(f"{parameter}: CIFAR-10 images must be 32x32 RGB, got {data.input_shape}")
        return data
    return _cifar10_download(cfg, source)


def _cifar10_download(cfg: DataConfig, source: dict[str, Any]) -> ImageArrays:
    from torchvision.datasets import CIFAR10

    raw = Path(cfg.root) / "raw"
    if not cfg.cifar10.download:
        raise DataError(
            "data.cifar10.download is false and no archive is given: set data.cifar10.archive "
            f"or ${CIFAR10_ARCHIVE_ENV} to a local copy"
        )
    try:
        train = CIFAR10(str(raw), train=True, download=True)
        test = CIFAR10(str(raw), train=False, download=True)
    except Exception as e:  # network errors come in many types (URLError, OSError, HTTPError, ...)
        raise DataError(
            f"data.cifar10: could not download CIFAR-10 into {raw} ({type(e).__name__}: {e}); "
            f"set data.cifar10.archive or ${CIFAR10_ARCHIVE_ENV} to a local copy in the "
            "train/<class>/, test/<class>/ layout"
        ) from None
    return ImageArrays(
        name="cifar10",
        x_train=np.ascontiguousarray(train.data.transpose(0, 3, 1, 2)),
        y_train=np.asarray(train.targets, dtype=np.int64),
        x_test=np.ascontiguousarray(test.data.transpose(0, 3, 1, 2)),
        y_test=np.asarray(test.targets, dtype=np.int64),
        classes=list(train.classes),
        source=source,
    )


DATASETS.register("cifar10")(DatasetBuilder(_cifar10_source, _cifar10_build))


# --- imagefolder ----------------------------------------------------------


def _imagefolder_source(cfg: DataConfig) -> dict[str, Any]:
    img = cfg.imagefolder
    if not img.path:
        raise DataError("data.imagefolder.path: expected a folder or archive with train/<class>/ and test/<class>/")
    return {"kind": "imagefolder", "path": img.path, "image_size": img.image_size}


def _imagefolder_build(cfg: DataConfig, source: dict[str, Any], progress: bool) -> ImageArrays:
    img = cfg.imagefolder
    return read_image_folder(
        img.path or "",
        name="imagefolder",
        parameter="data.imagefolder.path",
        image_size=img.image_size,
        source=source,
        progress=progress,
    )


DATASETS.register("imagefolder")(DatasetBuilder(_imagefolder_source, _imagefolder_build))


# --- preparing and loading ------------------------------------------------


def prepared_path(cfg: DataConfig) -> Path:
    """Where the prepared file of ``cfg.name`` lives: ``<root>/<name>.npz``."""
    return Path(cfg.root) / f"{cfg.name}.npz"


def _source_without_extras(meta_source: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta_source.items() if k != "test_split"}


def _stored_source(path: Path) -> dict[str, Any] | None:
    """The source a prepared file was made from, or None when there is no readable file."""
    meta = read_meta(path)
    return None if meta is None else _source_without_extras(meta.get("source", {}))


def _build_unless_current(
    cfg: DataConfig, source: dict[str, Any], stored: dict[str, Any] | None, *, force: bool, progress: bool
) -> Path:
    path = prepared_path(cfg)
    if not force and stored == source:
        return path
    log.info("preparing dataset %s into %s", cfg.name, path)
    return save_arrays(DATASETS.get(cfg.name).build(cfg, source, progress), path)


def prepare_dataset(cfg: DataConfig, *, force: bool = False, progress: bool = True) -> Path:
    """Make ``<root>/<name>.npz`` from the configured source unless an up-to-date one exists."""
    source = DATASETS.get(cfg.name).source(cfg)
    return _build_unless_current(cfg, source, _stored_source(prepared_path(cfg)), force=force, progress=progress)


def load_dataset(cfg: DataConfig, *, progress: bool = True) -> ImageArrays:
    """The configured dataset: ``<root>/<name>.npz``, prepared on first use and when its source changes.

    One exception: when no local copy is configured (CIFAR-10 would be
    downloaded) but the existing file was prepared from one, the file is used
    as it is, with a warning. That is a file ``dvc repro`` made with
    ``$ERRORSET_CIFAR10_ARCHIVE`` set, read later from a shell or notebook
    without it; downloading would replace the file DVC tracks with other
    images. ``errorset prepare --force`` remakes it on purpose.
    """
    path = prepared_path(cfg)
    source = DATASETS.get(cfg.name).source(cfg)
    stored = _stored_source(path)
    if (
        stored is not None
        and stored != source
        and source.get("kind") == DOWNLOAD_KIND
        and stored.get("kind") != DOWNLOAD_KIND
    ):
        log.warning(
            "%s was prepared from a local copy (%s) and no copy is configured now; using it as it is "
            "(errorset prepare --force would download CIFAR-10 and replace it)",
            path,
            stored.get("archive"),
        )
        return load_arrays(path)
    return load_arrays(_build_unless_current(cfg, source, stored, force=False, progress=progress))
