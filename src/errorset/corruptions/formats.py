"""How corrupted images reach the model: in memory, or through the files the benchmarks release.

Ford et al. (2019, Appendix B) found that accuracy on corrupted images
depends on how they were stored: ImageNet-C is released as JPEG files, which
remove much of the high-frequency noise (Gaussian noise severity 5: 57% in
memory, 10% from the files for their model). The evaluation therefore feeds
the model each corrupted batch in every format:

``memory``
    the float images as :func:`~errorset.corruptions.corrupt` returns them.
``png``
    8-bit images, as stored losslessly (PNG files, or CIFAR-10-C's ``.npy``
    arrays). The generators convert with ``np.uint8``, which truncates, so we
    truncate too (``floor(255 x + 0.001)``; the 0.001 guards whole values
    against float error). A PNG file holds exactly these values: the tests
    encode and decode real PNG files to check it.
``jpeg``
    8-bit images encoded and decoded as JPEG by Pillow (libjpeg) at the
    release's quality (ImageNet-C: 85), as the released ImageNet-C files are.

Each is a :class:`StorageFormat` in the :data:`FORMATS` registry; an unknown
name raises :class:`~errorset.errors.UnknownNameError` listing the valid ones.
"""

from __future__ import annotations

import io
from typing import ClassVar

import numpy as np
import torch

from errorset.registry import Registry


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [0,1] -> uint8 by truncation, as ``np.uint8(255 * x)`` in the reference generators."""
    return torch.floor(x.float() * 255 + 1e-3).clamp_(0, 255).to(torch.uint8)


def _encode_decode(u8: torch.Tensor, fmt: str, quality: int) -> torch.Tensor:
    from PIL import Image

    arr = u8.permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(arr)
    for i, im in enumerate(arr):
        pil = Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im)
        buf = io.BytesIO()
        if fmt == "png":
            pil.save(buf, format="PNG")
        else:
            pil.save(buf, format="JPEG", quality=int(quality))
        decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        out[i] = decoded.reshape(im.shape)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(u8.device)


def png_round_trip(x: torch.Tensor) -> torch.Tensor:
    """Write every image as a PNG file (in memory) and read it back: uint8 (N, C, H, W)."""
    return _encode_decode(to_uint8(x), "png", 0)


def jpeg_round_trip_pil(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Write every image as a JPEG file at ``quality`` with Pillow and read it back: uint8 (N, C, H, W)."""
    return _encode_decode(to_uint8(x), "jpeg", quality)


class StorageFormat:
    """How images are stored before the model sees them; :data:`FORMATS` creates one from its name."""

    #: registry name (``corruptions.formats``)
    name: ClassVar[str]
    #: 8-bit images (multiples of 1/255) come back unchanged
    exact_8bit: ClassVar[bool]

    def store(self, x: torch.Tensor, *, jpeg_quality: int = 85) -> torch.Tensor:
        """The float images in [0,1] as the model sees them after storage (float, same dtype and device)."""
        raise NotImplementedError


#: name -> :class:`StorageFormat`, in the order lossless first (memory, png, jpeg)
FORMATS: Registry[StorageFormat] = Registry("format", "format", ordered=True)


@FORMATS.register("memory")
class MemoryFormat(StorageFormat):
    """The float images as :func:`~errorset.corruptions.corrupt` returns them."""

    name = "memory"
    exact_8bit = True

    def store(self, x: torch.Tensor, *, jpeg_quality: int = 85) -> torch.Tensor:
        return x


@FORMATS.register("png")
class PngFormat(StorageFormat):
    """The 8-bit truncation: what a lossless file holds (PNG, CIFAR-10-C's ``.npy``)."""

    name = "png"
    exact_8bit = True

    def store(self, x: torch.Tensor, *, jpeg_quality: int = 85) -> torch.Tensor:
        return to_uint8(x).to(x.dtype) / 255


@FORMATS.register("jpeg")
class JpegFormat(StorageFormat):
    """Every image encoded and decoded as JPEG by Pillow at ``jpeg_quality``: lossy."""

    name = "jpeg"
    exact_8bit = False

    def store(self, x: torch.Tensor, *, jpeg_quality: int = 85) -> torch.Tensor:
        return jpeg_round_trip_pil(x, jpeg_quality).to(x.dtype) / 255


def store(x: torch.Tensor, fmt: str, *, jpeg_quality: int = 85) -> torch.Tensor:
    """The images as the model sees them after storage in format ``fmt`` (float in [0,1], same device).

    ``png`` is the 8-bit truncation (what a lossless file holds); ``jpeg``
    encodes and decodes every image with Pillow at ``jpeg_quality``.
    """
    return FORMATS.create(fmt).store(x, jpeg_quality=jpeg_quality)
