"""Read an image-folder tree or archive into :class:`ImageArrays`.

The layout is the one ImageNet and torchvision's ``ImageFolder`` use::

    train/<class>/<image>     (required)
    test/<class>/<image>      (or val/<class>/<image>)

optionally below one top-level folder, given either as a folder or as a tar
archive (``.tar``, ``.tar.gz``, ``.tgz``, ...). Classes are the sorted names of
the training class folders, so labels follow alphabetical order (for CIFAR-10
this is also the canonical order).
"""

from __future__ import annotations

import io
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from errorset.data.arrays import ImageArrays
from errorset.errors import DataError
from errorset.progress import bar

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_MEMBER = re.compile(r"^(?:.*/)?(?P<split>train|test|val)/(?P<cls>[^/]+)/(?P<file>[^/]+)$")


def _iter_folder(root: Path) -> Iterator[tuple[str, bytes]]:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            yield p.relative_to(root).as_posix(), p.read_bytes()


def _iter_tar(path: Path, parameter: str) -> Iterator[tuple[str, bytes]]:
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115  (closed by the with-block below)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        reason = "not a tar archive, plain or compressed" if isinstance(e, tarfile.ReadError) else str(e)
        raise DataError(
            f"{parameter}: {path} is not a readable archive ({reason}); expected a .tar.gz or a folder "
            "holding train/<class>/* and test/<class>/*"
        ) from None
    with tar:
        try:
            for member in tar:
                if not member.isfile():
                    continue
                f = tar.extractfile(member)
                if f is not None:
                    yield member.name, f.read()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DataError(f"{parameter}: archive {path} is truncated or corrupt ({e})") from None


def _decode(blob: bytes, name: str, image_size: int | None, parameter: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(blob)) as img:
            img.load()
            mode = "L" if img.mode in ("L", "1", "I;16", "I") else "RGB"
            img = img.convert(mode)
            if image_size is not None:
                img = _resize_center_crop(img, image_size)
            arr = np.asarray(img, dtype=np.uint8)
    except Image.DecompressionBombError as e:  # Pillow refuses images above 2 x MAX_IMAGE_PIXELS
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise DataError(
            f"{parameter}: image {name} is refused as a possible decompression bomb: {e} (the limit is "
            f"{limit} pixels, twice PIL.Image.MAX_IMAGE_PIXELS); remove it or shrink it"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{parameter}: cannot decode image {name} ({e})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bilinear), then crop the centre square."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def read_image_folder(
    path: str | Path,
    *,
    name: str,
    parameter: str,
    image_size: int | None = None,
    expected_classes: list[str] | None = None,
    source: dict[str, Any] | None = None,
    progress: bool = True,
) -> ImageArrays:
    """Decode every image of an image-folder tree or archive.

    Args:
        path: a folder or tar archive in the layout described in the module docstring.
        name: the dataset name recorded in the result.
        parameter: the config key that named ``path``, used in error messages.
        image_size: resize (shorter side) and centre-crop to this square size;
            None requires all images to share one size.
        expected_classes: if given, the training classes must be exactly these.
        source: recorded as the result's ``source``.
    """

    path = Path(path)
    if not path.exists():
        raise DataError(f"{parameter}: no such file or folder {str(path)!r}")
    members = _iter_folder(path) if path.is_dir() else _iter_tar(path, parameter)

    found: dict[str, list[tuple[str, str, np.ndarray]]] = {"train": [], "test": [], "val": []}
    for member, blob in bar(members, desc=f"reading {path.name}", enabled=progress, unit=" files", leave=True):
        m = _MEMBER.match(member)
        if not m or Path(m["file"]).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        found[m["split"]].append((m["cls"], m["file"], _decode(blob, member, image_size, parameter)))

    if not found["train"]:
        raise DataError(f"{parameter}: {path} holds no images under train/<class>/")
    test_split = "test" if found["test"] else "val"
    if not found[test_split]:
        raise DataError(f"{parameter}: {path} holds no images under test/<class>/ or val/<class>/")

    classes = sorted({c for c, _, _ in found["train"]})
    if expected_classes is not None and classes != list(expected_classes):
        raise DataError(f"{parameter}: {path} has classes {classes}, expected {list(expected_classes)}")
    unknown = sorted({c for c, _, _ in found[test_split]} - set(classes))
    if unknown:
        raise DataError(f"{parameter}: {test_split}/ has classes missing from train/: {unknown}")

    index = {c: i for i, c in enumerate(classes)}
    # Grayscale only when every image is grayscale; otherwise all become RGB.
    channels = 3 if any(a.shape[0] == 3 for s in ("train", test_split) for _, _, a in found[s]) else 1
    splits = {}
    for split in ("train", test_split):
        items = sorted(found[split], key=lambda t: (index[t[0]], t[1]))
        splits[split] = _stack(items, index, channels, parameter, split)
    return ImageArrays(
        name=name,
        x_train=splits["train"][0],
        y_train=splits["train"][1],
        x_test=splits[test_split][0],
        y_test=splits[test_split][1],
        classes=classes,
        source=dict(source or {}, test_split=test_split),
    )


def _stack(
    items: list[tuple[str, str, np.ndarray]],
    index: dict[str, int],
    channels: int,
    parameter: str,
    split: str,
) -> tuple[np.ndarray, np.ndarray]:
    sizes = {a.shape[1:] for _, _, a in items}
    if len(sizes) > 1:
        raise DataError(
            f"{parameter}: {split} images have different sizes {sorted(sizes)[:4]}...; "
            "set data.imagefolder.image_size to resize them"
        )
    arrays = [np.repeat(a, 3, axis=0) if a.shape[0] != channels else a for _, _, a in items]
    x = np.stack(arrays).astype(np.uint8, copy=False)
    y = np.array([index[c] for c, _, _ in items], dtype=np.int64)
    return x, y
