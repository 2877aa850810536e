"""Real test images for the corruption tests: the CIFAR-10 copy and 224x224 photographs."""

from __future__ import annotations

import functools
import io
import tarfile

import numpy as np
import pytest
import torch

from .conftest import SHARED_CIFAR


@functools.lru_cache(maxsize=4)
def _cifar_test_images(n: int, seed: int) -> np.ndarray:
    """``n`` CIFAR-10 test images (uint8 NHWC) spread over the classes, from the shared JPEG copy."""
    from PIL import Image

    members: list[tuple[str, bytes]] = []
    with tarfile.open(SHARED_CIFAR) as tf:
        for m in tf:
            if m.isfile() and m.name.startswith("test/") and m.name.endswith(".jpg"):
                f = tf.extractfile(m)
                assert f is not None
                members.append((m.name, f.read()))
            elif members and not m.name.startswith("test/"):
                break
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(members), n, replace=False))
    return np.stack([np.asarray(Image.open(io.BytesIO(members[i][1])).convert("RGB")) for i in pick])


def cifar_images(n: int = 100, seed: int = 0) -> np.ndarray:
    """CIFAR-10 test images as uint8 (n, 32, 32, 3); skips the test when the copy is absent."""
    if not SHARED_CIFAR.is_file():
        pytest.skip(f"needs the CIFAR-10 copy at {SHARED_CIFAR}")
    return _cifar_test_images(n, seed).copy()


@functools.lru_cache(maxsize=1)
def _photos() -> np.ndarray:
    import skimage.data
    from PIL import Image

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        im = Image.fromarray(getattr(skimage.data, name)())
        side = min(im.size)
        left, top = (im.size[0] - side) // 2, (im.size[1] - side) // 2
        out.append(np.asarray(im.crop((left, top, left + side, top + side)).resize((224, 224), Image.BOX)))
    return np.stack(out)


def photos_224() -> np.ndarray:
    """Four real photographs (scikit-image's bundled samples) as uint8 (4, 224, 224, 3)."""
    pytest.importorskip("skimage")
    return _photos().copy()


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255


def to_levels(x: torch.Tensor) -> np.ndarray:
    """float NCHW in [0,1] -> float64 NHWC gray levels truncated as the reference's np.uint8 does."""
    return np.floor(x.permute(0, 2, 3, 1).double().numpy() * 255 + 1e-3).clip(0, 255)
