"""Digital corruptions: brightness, contrast, saturate, pixelate, jpeg_compression, elastic_transform.

All but ``elastic_transform`` are deterministic and reproduce the
reference's arithmetic: brightness and saturation are changed in HSV space
(written here in closed form on RGB: the hue is kept, so every channel moves
along the line from gray to the pixel), pixelation with Pillow's box and
nearest resampling, JPEG with a torch codec that follows libjpeg
(:mod:`errorset.corruptions.jpeg`).
"""

from __future__ import annotations

import numpy as np
import torch

from errorset.corruptions.catalog import register
from errorset.corruptions.jpeg import jpeg_round_trip
from errorset.corruptions.ops import (
    DENSE_FILTER_MAX_SIDE,
    apply_plane_operator,
    bilinear_sample,
    cached_tensor,
    gaussian_filter,
    pil_resize_matrix,
    sample_displaced,
    separable_sum_operator,
)
from errorset.corruptions.rng import ImageRNG
from errorset.corruptions.tables import ElasticTransform, Pixelate, Saturate


@register("brightness", "digital", random=False)
def brightness(x: torch.Tensor, delta: float, rng: ImageRNG | None) -> torch.Tensor:
    """HSV value ``v -> min(v + delta, 1)`` (black becomes gray ``delta``)."""
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + delta).clamp(max=1.0)
    scaled = x * (v_new / v.clamp_min(1e-12))
    return torch.where(v > 0, scaled, v_new.expand_as(x)).clamp_(0, 1)


@register("contrast", "digital", random=False)
def contrast(x: torch.Tensor, factor: float, rng: ImageRNG | None) -> torch.Tensor:
    """``(x - m) * factor + m`` with m each channel's mean over the image."""
    m = x.mean(dim=(2, 3), keepdim=True)
    return ((x - m) * factor + m).clamp_(0, 1)


@register("saturate", "digital", random=False)
def saturate(x: torch.Tensor, p: Saturate, rng: ImageRNG | None) -> torch.Tensor:
    """HSV saturation ``s -> clip(scale * s + offset)``.

    With hue and value kept, each channel is ``v - (s' / s)(v - x)``. A gray
    pixel (s = 0) has hue 0 (red) in skimage's conversion, so a positive
    offset turns it reddish: ``(v, v (1 - s'), v (1 - s'))``, as the reference.
    """
    v = x.amax(dim=1, keepdim=True)
    lo = x.amin(dim=1, keepdim=True)
    delta = v - lo
    s = torch.where(v > 0, delta / v.clamp_min(1e-12), torch.zeros_like(v))
    s_new = (s * p.scale + p.offset).clamp(0, 1)
    colored = v - (s_new / s.clamp_min(1e-12)) * (v - x)
    red = torch.cat([v, v * (1 - s_new), v * (1 - s_new)], dim=1)
    return torch.where(delta > 0, colored, red).clamp_(0, 1)


@register("pixelate", "digital", random=False)
def pixelate(x: torch.Tensor, p: Pixelate, rng: ImageRNG | None) -> torch.Tensor:
    """Box-filter down to ``int(side * factor)`` pixels, then back up (box or nearest), as Pillow's ``resize``."""
    h, w = x.shape[-2:]

    def both(n: int) -> np.ndarray:
        small = max(int(n * p.factor), 1)
        return pil_resize_matrix(small, n, p.upsample) @ pil_resize_matrix(n, small, "box")

    if max(h, w) > DENSE_FILTER_MAX_SIDE:  # 2-6 weights per pixel: one sparse product beats dense ones
        return apply_plane_operator(
            x, ("pixelate", h, w, p), lambda: separable_sum_operator([(both(h), both(w), 1.0)])
        ).clamp_(0, 1)
    rows = cached_tensor(("pixelate", h, p), lambda: both(h), x)
    cols = cached_tensor(("pixelate", w, p), lambda: both(w), x)
    return (rows @ x @ cols.T).clamp_(0, 1)


@register("jpeg_compression", "digital", random=False)
def jpeg_compression(x: torch.Tensor, quality: int, rng: ImageRNG | None) -> torch.Tensor:
    """JPEG round trip at ``quality`` (4:2:0), after rounding to 8-bit levels."""
    out = jpeg_round_trip(torch.round(x * 255), int(quality))
    return (out / 255).to(x.dtype)


def _affine_warp(x: torch.Tensor, jitter: float, rng: ImageRNG) -> torch.Tensor:
    """make_cifar_c.py's random affine: three points around the centre moved by U(-jitter, jitter)
    pixels, the image warped bilinearly to follow them (``cv2.warpAffine``, mirrored borders)."""
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    dev, dt = x.device, torch.float64
    center = torch.tensor([float(h // 2), float(w // 2)], dtype=dt, device=dev)
    s = float(min(h, w) // 3)
    src = torch.stack([center + s, torch.stack([center[0] + s, center[1] - s]), center - s])  # (3, 2) as (x, y)
    dst = src[None] + rng.uniform((3, 2), 2, -jitter, jitter).to(dt)
    ones = torch.ones(3, 1, dtype=dt, device=dev)
    p_src = torch.cat([src, ones], dim=1).expand(n, 3, 3)
    m = torch.linalg.solve(p_src, dst)  # (N, 3, 2): [x', y'] = [x, y, 1] @ m
    a = m[:, :2, :].transpose(1, 2)  # (N, 2, 2)
    t = m[:, 2, :]  # (N, 2)
    inv = torch.linalg.inv(a)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=dt, device=dev), torch.arange(w, dtype=dt, device=dev), indexing="ij")
    out_xy = torch.stack([xx, yy], dim=-1).reshape(1, -1, 2) - t[:, None, :]
    src_xy = out_xy @ inv.transpose(1, 2)  # (N, HW, 2)
    sx = src_xy[..., 0].reshape(n, h, w).to(x.dtype)
    sy = src_xy[..., 1].reshape(n, h, w).to(x.dtype)
    return bilinear_sample(x, sy, sx, mode="mirror")


@register("elastic_transform", "digital", random=True)
def elastic_transform(x: torch.Tensor, p: ElasticTransform, rng: ImageRNG) -> torch.Tensor:
    """A smooth random displacement of the pixels (after a random affine warp where the table has one).

    The displacement along each axis is ``U(-a, a)`` noise with ``a =
    amplitude * H`` pixels, smoothed by a Gaussian of ``sigma * side`` pixels
    (mirrored borders, radius 3 sigma); the image is resampled bilinearly at
    the displaced positions with mirrored borders (``scipy.ndimage.map_coordinates``).
    """
    h, w = x.shape[-2:]
    if p.affine > 0:
        x = _affine_warp(x, float(p.affine) * h, rng)
    if p.amplitude > 0:
        a = float(p.amplitude) * h
        field = rng.uniform((2, h, w), 1, -a, a)
        field = gaussian_filter(field, (float(p.sigma) * h, float(p.sigma) * w), mode="reflect", truncate=3.0)
        x = sample_displaced(x, field)
    return x.clamp(0, 1)
