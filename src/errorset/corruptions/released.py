"""The released benchmark files as users download them, and a writer of CIFAR-10-C-format sets.

CIFAR-10-C (Hendrycks & Dietterich, https://zenodo.org/record/2535967)
    One folder with ``<corruption>.npy`` per corruption: uint8
    (5 * n, 32, 32, 3) arrays (NHWC), the n test images at severity 1, then
    at severity 2, ... 5 (n = 10,000 in the release); and ``labels.npy``,
    the n labels repeated 5 times (uint8 in the release).
ImageNet-C
    ``<corruption>/<severity>/<class>/*.JPEG`` (224x224 JPEG files, classes
    by WordNet id).

:func:`write_cifar10c` makes a folder in CIFAR-10-C's layout from any test
set with our in-memory corruptions and a fixed seed, so that the released
files and our version can be compared image for image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from errorset.corruptions.apply import corrupt
from errorset.corruptions.catalog import ALL_CORRUPTIONS, check_corruption
from errorset.corruptions.formats import to_uint8
from errorset.corruptions.tables import TABLES, check_severity
from errorset.errors import DataError
from errorset.files import atomic_write
from errorset.progress import counter

log = logging.getLogger(__name__)

CIFAR10C_SEVERITIES = 5
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def _load_npy(path: Path, parameter: str) -> np.ndarray:
    """Memory-map a .npy file, with one clear error when it is missing, truncated or not an array."""
    if not path.is_file():
        raise DataError(f"{parameter}: no such file {path}")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        size = path.stat().st_size
        raise DataError(
            f"{parameter}: {path} is not a readable .npy array ({size} bytes; truncated or corrupt: {e})"
        ) from None
    return arr


def cifar10c_corruptions(root: str | Path) -> list[str]:
    """The corruptions present in a CIFAR-10-C folder, in the benchmark's order."""
    root = Path(root)
    return [name for name in ALL_CORRUPTIONS if (root / f"{name}.npy").is_file()]


def load_cifar10c(
    root: str | Path,
    corruption: str,
    severity: int,
    *,
    limit: int | None = None,
    parameter: str = "corruptions.released",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one corruption and severity of a CIFAR-10-C folder.

    Args:
        root: folder with ``<corruption>.npy`` and ``labels.npy``.
        severity: 1-5; rows ``(severity - 1) * n ... severity * n`` of the arrays.
        limit: only the first ``limit`` images of the severity (None: all).
        parameter: config key named in error messages.

    Returns:
        uint8 images (n, C, H, W) and int64 labels (n,).

    Raises:
        DataError: a missing, truncated or inconsistent file.
    """
    root = Path(root)
    check_corruption(corruption, "corruption")
    severity = check_severity(severity)
    if not root.is_dir():
        raise DataError(f"{parameter}: no such folder {root} (expected CIFAR-10-C's <corruption>.npy and labels.npy)")
    path = root / f"{corruption}.npy"
    if not path.is_file():
        present = ", ".join(cifar10c_corruptions(root)) or "no corruption files"
        raise DataError(f"{parameter}: {root} has no {corruption}.npy; it has {present}")
    images = _load_npy(path, parameter)
    labels = _load_npy(root / "labels.npy", parameter)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"{parameter}: {path} must hold uint8 N x H x W x C images, got {images.dtype} {images.shape}")
    if images.shape[0] % CIFAR10C_SEVERITIES:
        raise DataError(f"{parameter}: {path} has {images.shape[0]} images, not 5 severities of the same count")
    if labels.ndim != 1 or labels.shape[0] not in (images.shape[0], images.shape[0] // CIFAR10C_SEVERITIES):
        raise DataError(
            f"{parameter}: {root / 'labels.npy'} has shape {labels.shape}, but {path} has {images.shape[0]} images"
        )
    n = images.shape[0] // CIFAR10C_SEVERITIES
    take = n if limit is None or limit <= 0 else min(int(limit), n)
    lo = (severity - 1) * n
    # a writable copy of the memory-mapped rows (torch warns about read-only arrays)
    x = torch.from_numpy(np.array(images[lo : lo + take])).permute(0, 3, 1, 2).contiguous()
    lab_lo = lo if labels.shape[0] == images.shape[0] else 0
    y = torch.from_numpy(np.asarray(labels[lab_lo : lab_lo + take]).astype(np.int64))
    return x, y


def load_imagenet_c(
    root: str | Path,
    corruption: str,
    severity: int,
    *,
    classes: Sequence[str] | None = None,
    limit: int | None = None,
    parameter: str = "corruptions.released",
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images and labels of ``<root>/<corruption>/<severity>/<class>/*.JPEG``.

    Args:
        classes: class folder names in label order (default: the sorted
            folder names, which is ImageNet's order of WordNet ids).
        limit: at most this many images, taken evenly across classes in
            sorted file order (None: all).

    Returns:
        uint8 images (n, 3, H, W), int64 labels, and the class names.

    Raises:
        DataError: a missing folder, no images, unreadable files or images of different sizes.
    """
    from PIL import Image, UnidentifiedImageError

    check_corruption(corruption, "corruption")
    severity = check_severity(severity)
    folder = Path(root) / corruption / str(severity)
    if not folder.is_dir():
        raise DataError(f"{parameter}: no such folder {folder} (expected <corruption>/<severity>/<class>/*.JPEG)")
    names = list(classes) if classes is not None else sorted(p.name for p in folder.iterdir() if p.is_dir())
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(names):
        d = folder / name
        if d.is_dir():
            files += [(f, label) for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{parameter}: no images in {folder}/<class>/")
    if limit is not None and 0 < limit < len(files):
        keep = np.linspace(0, len(files) - 1, int(limit)).round().astype(int)
        files = [files[i] for i in keep]
    arrays = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                arrays.append(np.asarray(im.convert("RGB")))
        except (OSError, UnidentifiedImageError) as e:
            raise DataError(f"{parameter}: {f} is not a readable image ({e})") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(f"{parameter}: images in {folder} have different sizes: {sorted(shapes)[:3]}")
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return x, y, names


def write_cifar10c(
    root: str | Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    corruptions: Sequence[str] = ALL_CORRUPTIONS,
    *,
    table: str = "cifar10",
    seed: int = 0,
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Path:
    """Write a CIFAR-10-C-format folder of ``images`` under our in-memory corruptions.

    For every corruption: ``<corruption>.npy``, uint8 (5 n, H, W, C), the
    images at severities 1-5 in turn, each corrupted with the generator seed
    ``seed`` (image ``i`` keyed by its index) and truncated to 8 bits as the
    release's generator does; plus ``labels.npy`` (uint8, 5 n) and
    ``errorset.json`` (how the folder was made). Files are written atomically.

    Args:
        images: uint8 (or float in [0,1]) N x C x H x W test images.
        labels: (N,) class labels < 256.
    """
    root = Path(root)
    TABLES.check(table)
    names = [check_corruption(c, "corruptions.names") for c in corruptions]
    if images.ndim != 4 or images.shape[0] != labels.shape[0]:
        raise DataError(
            "images, labels: expected N x C x H x W images and N labels, "
            f"got {tuple(images.shape)} and {tuple(labels.shape)}"
        )

    n = images.shape[0]
    root.mkdir(parents=True, exist_ok=True)
    with atomic_write(root / "labels.npy") as f:
        np.save(f, np.tile(labels.cpu().numpy().astype(np.uint8), CIFAR10C_SEVERITIES))
    steps = counter(total=len(names) * CIFAR10C_SEVERITIES, desc="make corruptions", enabled=progress)
    for name in names:
        out = np.empty((CIFAR10C_SEVERITIES * n, images.shape[2], images.shape[3], images.shape[1]), dtype=np.uint8)
        for s in range(1, CIFAR10C_SEVERITIES + 1):
            for i in range(0, n, batch_size):
                xb = images[i : i + batch_size].to(device)
                xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb.float()
                g = torch.Generator().manual_seed(seed)
                yb = corrupt(xb, name, s, table, g, start_index=i)
                lo = (s - 1) * n + i
                out[lo : lo + yb.shape[0]] = to_uint8(yb).permute(0, 2, 3, 1).cpu().numpy()
            steps.update(1)
        with atomic_write(root / f"{name}.npy") as f:
            np.save(f, out)
    steps.close()
    meta = {
        "format": "CIFAR-10-C",
        "maker": "errorset",
        "table": table,
        "seed": seed,
        "images": n,
        "corruptions": names,
    }
    (root / "errorset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root
