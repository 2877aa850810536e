"""A baseline JPEG encode-decode round trip in torch, batched, on any device.

It follows what Pillow does with libjpeg(-turbo) defaults for an RGB image:
JFIF YCbCr conversion in 16-bit fixed point, 4:2:0 chroma subsampling
(2x2 means with libjpeg's alternating rounding bias), the IJG quality scaling
of the Annex K quantisation tables (``force_baseline``), 8x8 DCT with
rounding to the nearest quantisation level (halves away from zero), and on
decoding libjpeg's "fancy" (triangular) chroma upsampling and fixed-point
YCbCr-to-RGB conversion. Only the DCT differs: we compute it exactly in
floating point where libjpeg uses its 13-bit integer approximation
(``JDCT_ISLOW``), so a coefficient that lies within about 0.1 of a rounding
boundary can round the other way; the decoded pixels differ from Pillow's by
a fraction of a gray level on average (the tests bound it).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

#: ITU T.81 Annex K, table K.1 (luminance) and K.2 (chrominance), row-major
LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
)  # fmt: skip


def quant_table(base: tuple[int, ...], quality: int) -> np.ndarray:
    """libjpeg's ``jpeg_set_quality(quality, force_baseline=TRUE)`` scaling of a base table (8 x 8)."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    t = (np.asarray(base, dtype=np.int64) * scale + 50) // 100
    return np.clip(t, 1, 255).reshape(8, 8)


@functools.lru_cache(maxsize=1)
def dct_matrix() -> np.ndarray:
    """The 8-point DCT-II with JPEG's scaling: ``F = D f D^T``, ``f = D^T F D``."""
    d = np.zeros((8, 8))
    for u in range(8):
        cu = math.sqrt(0.5) if u == 0 else 1.0
        for x in range(8):
            d[u, x] = cu / 2 * math.cos((2 * x + 1) * u * math.pi / 16)
    return d


_FIX = lambda v: int(v * 65536 + 0.5)
_HALF = 1 << 15


def _rgb_to_ycc(rgb: torch.Tensor) -> torch.Tensor:
    """int32 (N, 3, H, W) 0..255 -> int32 YCbCr, as libjpeg's ``rgb_ycc_convert``."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    off = (128 << 16) + _HALF - 1
    y = (_FIX(0.299) * r + _FIX(0.587) * g + _FIX(0.114) * b + _HALF) >> 16
    cb = (-_FIX(0.16874) * r - _FIX(0.33126) * g + _FIX(0.5) * b + off) >> 16
    cr = (_FIX(0.5) * r - _FIX(0.41869) * g - _FIX(0.08131) * b + off) >> 16
    return torch.stack([y, cb, cr], dim=1)


def _ycc_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """int32 YCbCr -> int32 RGB 0..255, as libjpeg's ``ycc_rgb_convert``."""
    y, cb, cr = ycc[:, 0], ycc[:, 1] - 128, ycc[:, 2] - 128
    r = y + ((_FIX(1.402) * cr + _HALF) >> 16)
    g = y + ((-_FIX(0.34414) * cb + _HALF - _FIX(0.71414) * cr) >> 16)
    b = y + ((_FIX(1.772) * cb + _HALF) >> 16)
    return torch.stack([r, g, b], dim=1).clamp_(0, 255)


def _downsample(c: torch.Tensor) -> torch.Tensor:
    """2x2 means with libjpeg's bias (1, 2, 1, 2, ... along a row), int32 (N, H, W) with even H, W."""
    s = c[:, 0::2, 0::2] + c[:, 0::2, 1::2] + c[:, 1::2, 0::2] + c[:, 1::2, 1::2]
    bias = torch.ones(s.shape[-1], dtype=s.dtype, device=s.device)
    bias[1::2] = 2
    return (s + bias) >> 2


def _fancy_upsample(c: torch.Tensor) -> torch.Tensor:
    """libjpeg's ``h2v2_fancy_upsample`` (triangular filter, edges repeated), int32 (N, h, w) -> (N, 2h, 2w)."""
    up = torch.cat([c[:, :1], c[:, :-1]], dim=1)
    down = torch.cat([c[:, 1:], c[:, -1:]], dim=1)
    rows = torch.stack([3 * c + up, 3 * c + down], dim=2).flatten(1, 2)  # column sums, (N, 2h, w)
    left = torch.cat([rows[..., :1], rows[..., :-1]], dim=2)
    right = torch.cat([rows[..., 1:], rows[..., -1:]], dim=2)
    even = (3 * rows + left + 8) >> 4
    odd = (3 * rows + right + 7) >> 4
    return torch.stack([even, odd], dim=3).flatten(2, 3)


@functools.lru_cache(maxsize=1)
def dct64() -> np.ndarray:
    """The 2-D 8x8 DCT on row-major flattened blocks: ``vec(D f D^T) = (D kron D) vec(f)``."""
    d = dct_matrix()
    return np.kron(d, d)


def _code_plane(p: torch.Tensor, table: np.ndarray) -> torch.Tensor:
    """Quantise and dequantise one int32 plane (N, H, W) (H, W multiples of 8); returns decoded int32 0..255."""
    n, h, w = p.shape
    k = torch.as_tensor(dct64(), dtype=torch.float32, device=p.device)
    q = torch.as_tensor(table.reshape(64), dtype=torch.float32, device=p.device)
    blocks = p.reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(-1, 64).to(torch.float32) - 128
    ratio = (blocks @ k.T) / q
    level = torch.sign(ratio) * torch.floor(ratio.abs() + 0.5)
    rec = (level * q) @ k
    rec = torch.floor(rec + 128.5).clamp_(0, 255).to(torch.int32)
    return rec.reshape(n, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(n, h, w)


def jpeg_round_trip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode 8-bit RGB images as JPEG at ``quality`` (1-100), 4:2:0, on the images' device.

    Args:
        x: (N, 3, H, W) integer-valued pixels 0..255 (any dtype).

    Returns:
        (N, 3, H, W) decoded pixels 0..255 (float32, whole numbers).
    """
    h, w = x.shape[-2:]
    ph, pw = -h % 16, -w % 16
    rgb = torch.round(x.to(torch.float32)).to(torch.int32)
    if ph or pw:  # libjpeg repeats the last row and column to fill the last MCU
        rgb = torch.cat([rgb, rgb[:, :, -1:].expand(-1, -1, ph, -1)], dim=2)
        rgb = torch.cat([rgb, rgb[:, :, :, -1:].expand(-1, -1, -1, pw)], dim=3)
    ycc = _rgb_to_ycc(rgb)
    y = _code_plane(ycc[:, 0], quant_table(LUMA_TABLE, quality))
    chroma_table = quant_table(CHROMA_TABLE, quality)
    cb = _fancy_upsample(_code_plane(_downsample(ycc[:, 1]), chroma_table))
    cr = _fancy_upsample(_code_plane(_downsample(ycc[:, 2]), chroma_table))
    out = _ycc_to_rgb(torch.stack([y, cb, cr], dim=1))
    return out[:, :, :h, :w].to(torch.float32)
