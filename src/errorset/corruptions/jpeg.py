"""A baseline JPEG encode-decode round trip in torch, batched, on any device.

It follows what Pillow does with libjpeg(-turbo)'s defaults for an RGB image,
step by step in integer arithmetic: JFIF YCbCr conversion in 16-bit fixed
point, 4:2:0 chroma subsampling (2x2 means with libjpeg's alternating
rounding bias), the IJG quality scaling of the Annex K quantisation tables
(``force_baseline``), libjpeg's "islow" integer DCT (``jfdctint.c``, 13-bit
constants, two passes), quantisation rounding halves away from zero, the
"islow" inverse DCT (``jidctint.c``), "fancy" (triangular) chroma upsampling
and fixed-point YCbCr-to-RGB conversion. The tests find it equal to Pillow's
output at every quality they try.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

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


@functools.lru_cache(maxsize=256)
def quant_table(base: tuple[int, ...], quality: int) -> np.ndarray:
    """libjpeg's ``jpeg_set_quality(quality, force_baseline=TRUE)`` scaling of a base table (8 x 8)."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    t = (np.asarray(base, dtype=np.int64) * scale + 50) // 100
    return np.clip(t, 1, 255).reshape(8, 8)


_FIX = lambda v: int(v * 65536 + 0.5)
_HALF = 1 << 15

# Every step below is integer arithmetic done exactly in float64: integer weights, sums far below
# 2^53, and libjpeg's right shifts as floor(v / 2^k) (a division by a power of two is exact).

#: libjpeg's ``rgb_ycc_convert``: YCbCr = (RGB_TO_YCC @ rgb + YCC_BIAS) >> 16
RGB_TO_YCC = (
    (_FIX(0.299), _FIX(0.587), _FIX(0.114)),
    (-_FIX(0.16874), -_FIX(0.33126), _FIX(0.5)),
    (_FIX(0.5), -_FIX(0.41869), -_FIX(0.08131)),
)
YCC_BIAS = (_HALF, (128 << 16) + _HALF - 1, (128 << 16) + _HALF - 1)
#: libjpeg's ``ycc_rgb_convert``: RGB = Y + (CHROMA_TO_RGB @ (Cb - 128, Cr - 128) + 2^15) >> 16
CHROMA_TO_RGB = ((0, _FIX(1.402)), (-_FIX(0.34414), -_FIX(0.71414)), (_FIX(1.772), 0))


def _shift_right(v: torch.Tensor, bits: int) -> torch.Tensor:
    """``v >> bits`` for integer-valued floats (floor division by ``2^bits``), in place."""
    return v.mul_(1.0 / (1 << bits)).floor_()


def _mix(weights: tuple[int, ...], planes: list[torch.Tensor], bias: float, out: torch.Tensor) -> torch.Tensor:
    """``out = bias + sum_c weights[c] * planes[c]`` (one fused multiply-add per plane)."""
    out.fill_(float(bias))
    for w, p in zip(weights, planes, strict=True):
        if w:
            out.add_(p, alpha=float(w))
    return out


def _rgb_to_ycc(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB 0..255 -> YCbCr, as libjpeg's ``rgb_ycc_convert``."""
    planes = list(rgb.unbind(1))
    out = torch.empty_like(rgb)
    for k, (w, b) in enumerate(zip(RGB_TO_YCC, YCC_BIAS, strict=True)):
        _shift_right(_mix(w, planes, b, out[:, k]), 16)
    return out


def _ycc_to_rgb(y: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """Y (N, 1, H, W) and CbCr (N, 2, H, W) -> RGB 0..255, as libjpeg's ``ycc_rgb_convert``."""
    planes = list(chroma.unbind(1))
    n, _, h, w = chroma.shape
    out = torch.empty(n, 3, h, w, dtype=chroma.dtype, device=chroma.device)
    for k, weights in enumerate(CHROMA_TO_RGB):
        bias = _HALF - 128 * sum(weights)  # the weights act on Cb - 128 and Cr - 128
        _shift_right(_mix(weights, planes, bias, out[:, k]), 16).add_(y[:, 0])
    return out.clamp_(0, 255)


def _downsample(c: torch.Tensor) -> torch.Tensor:
    """2x2 means with libjpeg's bias (1, 2, 1, 2, ... along a row), (..., H, W) with even H, W."""
    s = c[..., 0::2, 0::2] + c[..., 0::2, 1::2]
    s += c[..., 1::2, 0::2]
    s += c[..., 1::2, 1::2]
    bias = torch.ones(s.shape[-1], dtype=s.dtype, device=s.device)
    bias[1::2] = 2
    return _shift_right(s.add_(bias), 2)


@functools.lru_cache(maxsize=64)
def _upsample_matrix(n: int) -> np.ndarray:
    """(2n, n) triangular weights of libjpeg's ``h2v2_fancy_upsample`` along one axis (edges repeated):
    output ``2i`` is ``3 c[i] + c[i - 1]``, output ``2i + 1`` is ``3 c[i] + c[i + 1]``."""
    m = np.zeros((2 * n, n))
    i = np.arange(n)
    np.add.at(m, (2 * i, i), 3)
    np.add.at(m, (2 * i, np.maximum(i - 1, 0)), 1)
    np.add.at(m, (2 * i + 1, i), 3)
    np.add.at(m, (2 * i + 1, np.minimum(i + 1, n - 1)), 1)
    return m


def _fancy_upsample(c: torch.Tensor) -> torch.Tensor:
    """libjpeg's ``h2v2_fancy_upsample``, (..., h, w) -> (..., 2h, 2w): the column sums, then
    ``(3 a + neighbour + 8) >> 4`` on even columns and ``+ 7`` on odd ones.

    Computed in float32, which is exact here (every value is a whole number below 2^13).
    """
    h, w = c.shape[-2:]
    rows = torch.as_tensor(_upsample_matrix(h), dtype=torch.float32, device=c.device)
    cols = torch.as_tensor(_upsample_matrix(w), dtype=torch.float32, device=c.device)
    bias = torch.full((2 * w,), 7.0, device=c.device)
    bias[0::2] = 8
    return _shift_right((rows @ c.float() @ cols.T).add_(bias), 4).to(c.dtype)


# --- libjpeg's integer DCT ("islow": jfdctint.c, jidctint.c) -------------------------------------

CONST_BITS = 13
PASS1_BITS = 2
_C = {  # FIX(x) = round(x * 2^13)
    "0_298631336": 2446,
    "0_390180644": 3196,
    "0_541196100": 4433,
    "0_765366865": 6270,
    "0_899976223": 7373,
    "1_175875602": 9633,
    "1_501321110": 12299,
    "1_847759065": 15137,
    "1_961570560": 16069,
    "2_053119869": 16819,
    "2_562915447": 20995,
    "3_072711026": 25172,
}


def _odd_part(t0: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor, t3: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The shared odd part of jfdctint.c and jidctint.c (inputs 7, 5, 3, 1 in the inverse's naming)."""
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * _C["1_175875602"]
    t0 = t0 * _C["0_298631336"]
    t1 = t1 * _C["2_053119869"]
    t2 = t2 * _C["3_072711026"]
    t3 = t3 * _C["1_501321110"]
    z1 = z1 * -_C["0_899976223"]
    z2 = z2 * -_C["2_562915447"]
    z3 = z3 * -_C["1_961570560"] + z5
    z4 = z4 * -_C["0_390180644"] + z5
    return t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4


Descale = Callable[[torch.Tensor, int], torch.Tensor]


def _fdct_pass(d: list[torch.Tensor], first: bool, descale: Descale) -> list[torch.Tensor]:
    """One pass of ``jpeg_fdct_islow`` over the 8 samples ``d`` along one axis."""
    tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
    tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
    tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
    tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    if first:
        o0, o4 = (tmp10 + tmp11) * (1 << PASS1_BITS), (tmp10 - tmp11) * (1 << PASS1_BITS)
        shift = CONST_BITS - PASS1_BITS
    else:
        o0, o4 = descale(tmp10 + tmp11, PASS1_BITS), descale(tmp10 - tmp11, PASS1_BITS)
        shift = CONST_BITS + PASS1_BITS
    z1 = (tmp12 + tmp13) * _C["0_541196100"]
    o2 = descale(z1 + tmp13 * _C["0_765366865"], shift)
    o6 = descale(z1 - tmp12 * _C["1_847759065"], shift)
    r7, r5, r3, r1 = _odd_part(tmp4, tmp5, tmp6, tmp7)
    return [o0, descale(r1, shift), o2, descale(r3, shift), o4, descale(r5, shift), o6, descale(r7, shift)]


def _idct_pass(c: list[torch.Tensor], shift: int, descale: Descale) -> list[torch.Tensor]:
    """One pass of ``jpeg_idct_islow`` over the 8 (dequantised) coefficients ``c`` along one axis."""
    z1 = (c[2] + c[6]) * _C["0_541196100"]
    tmp2 = z1 - c[6] * _C["1_847759065"]
    tmp3 = z1 + c[2] * _C["0_765366865"]
    tmp0 = (c[0] + c[4]) * (1 << CONST_BITS)
    tmp1 = (c[0] - c[4]) * (1 << CONST_BITS)
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    o0, o1, o2, o3 = _odd_part(c[7], c[5], c[3], c[1])
    return [
        descale(tmp10 + o3, shift),
        descale(tmp11 + o2, shift),
        descale(tmp12 + o1, shift),
        descale(tmp13 + o0, shift),
        descale(tmp13 - o0, shift),
        descale(tmp12 - o1, shift),
        descale(tmp11 - o2, shift),
        descale(tmp10 - o3, shift),
    ]


@functools.lru_cache(maxsize=4)
def pass_matrix(kind: str) -> np.ndarray:
    """One islow pass as an (8, 8) matrix: output ``k`` is ``round_half_up(M[k] @ x)``.

    Every output of a pass is an integer combination of its 8 inputs divided
    by a power of two and rounded (libjpeg's DESCALE), with no rounding in
    between; so the pass is a matrix product followed by rounding. ``M``
    holds the integer weights already divided by each output's power of two,
    which float64 represents exactly, as it does every product and sum here
    (all below 2^40): the matrix product gives libjpeg's integers exactly,
    whatever the order of summation.
    """
    eye = [torch.eye(8, dtype=torch.float64)[j] for j in range(8)]
    scale = lambda v, n: v * (1.0 / (1 << n))
    if kind == "fdct1":
        cols = _fdct_pass(eye, True, scale)
    elif kind == "fdct2":
        cols = _fdct_pass(eye, False, scale)
    elif kind == "idct1":
        cols = _idct_pass(eye, CONST_BITS - PASS1_BITS, scale)
    else:
        cols = _idct_pass(eye, CONST_BITS + PASS1_BITS + 3, scale)
    return torch.stack(cols).numpy()  # row k: output k's weights on inputs 0..7


def _code_planes(planes: torch.Tensor, table: np.ndarray) -> torch.Tensor:
    """Encode and decode float64 planes (N, H, W) of whole numbers 0..255 (H, W multiples of 8).

    The blocks are laid out as one (8 rows, 8 columns, blocks) tensor, so that
    a pass along rows is a batch of 8 products ``(8, 8) @ (8, blocks)`` and a
    pass along columns one ``(8, 8) @ (8, 8 blocks)`` product: long, cheap
    matrix products instead of millions of 8-long ones. Each pass is followed
    by libjpeg's rounding, ``floor(v + 1/2)``; the 1/2, the level shift by
    128 before the forward DCT and the one after the inverse DCT enter the
    products as exact constant terms.
    """
    n, h, w = planes.shape
    dev, dt = planes.device, planes.dtype

    def mat(kind: str) -> torch.Tensor:
        return torch.as_tensor(pass_matrix(kind), dtype=dt, device=dev)

    def bias(m: torch.Tensor, shift_in: float, shift_out: float) -> torch.Tensor:
        """(8, 1) constant of ``m @ (x + shift_in) + shift_out + 1/2``."""
        return (m.sum(dim=1, keepdim=True) * shift_in + (shift_out + 0.5)).contiguous()

    def along_rows(t: torch.Tensor, m: torch.Tensor, shift_in: float = 0.0, shift_out: float = 0.0) -> torch.Tensor:
        b = bias(m, shift_in, shift_out).expand(8, 8, 1)
        return torch.baddbmm(b, m.expand(8, 8, 8), t).floor_()

    def along_columns(t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return torch.addmm(bias(m, 0.0, 0.0), m, t.view(8, -1)).floor_().view(t.shape)

    blocks = planes.view(n, h // 8, 8, w // 8, 8).permute(2, 4, 0, 1, 3).reshape(8, 8, -1)
    q = torch.as_tensor(table, dtype=dt, device=dev).view(8, 8, 1)
    # forward DCT of the level-shifted samples: along rows, then along columns (8x the true DCT)
    coef = along_columns(along_rows(blocks, mat("fdct1"), shift_in=-128.0), mat("fdct2"))
    # quantise (round |coef| / (8 q) half up, keep the sign) and dequantise:
    # |c| / (8q) + 1/2 is (|c| + 4q) / (8q) exactly wherever the floor can change
    level = torch.addcdiv(torch.full_like(q, 0.5), coef.abs(), 8 * q).floor_()
    level = torch.copysign(level, coef).mul_(q)
    # inverse DCT: along columns, then along rows, shifted back by 128
    out = along_rows(along_columns(level, mat("idct1")), mat("idct2"), shift_out=128.0).clamp_(0, 255)
    return out.view(8, 8, n, h // 8, w // 8).permute(2, 3, 0, 4, 1).reshape(n, h, w)


def jpeg_round_trip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode 8-bit RGB images as JPEG at ``quality`` (1-100), 4:2:0, on the images' device.

    Args:
        x: (N, 3, H, W) integer-valued pixels 0..255 (any dtype).

    Returns:
        (N, 3, H, W) decoded pixels 0..255 (float32, whole numbers).
    """
    n, _, h, w = x.shape
    rgb = torch.round(x.to(torch.float64))
    ycc = _rgb_to_ycc(_pad_edges(rgb, h + (h % 2), w + (-w % 16)))
    # luma: rows and columns beyond the image repeat the last ones (blocks wholly outside are cropped anyway)
    luma = _pad_edges(ycc[:, 0:1], h + (-h % 16), w + (-w % 16))[:, 0]
    y = _code_planes(luma, quant_table(LUMA_TABLE, quality))[:, None, :h, :w]
    # chroma: libjpeg repeats the image's last row to make the row count even and its last column up to
    # the block, then the last *subsampled* row down to the block (jcprepct.c's expand_bottom_edge)
    sub = _downsample(ycc[:, 1:3])
    sub = _pad_edges(sub, sub.shape[-2] + (-sub.shape[-2] % 8), sub.shape[-1])
    ch, cw = (h + 1) // 2, (w + 1) // 2  # chroma samples inside the image
    decoded = _code_planes(sub.reshape(2 * n, *sub.shape[-2:]), quant_table(CHROMA_TABLE, quality))
    chroma = _fancy_upsample(decoded.view(n, 2, *sub.shape[-2:])[..., :ch, :cw])[..., :h, :w]
    return _ycc_to_rgb(y, chroma).to(torch.float32)


def _pad_edges(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad (N, C, H, W) to (height, width) by repeating the last row and column."""
    ph, pw = height - t.shape[-2], width - t.shape[-1]
    if ph > 0:
        t = torch.cat([t, t[..., -1:, :].expand(*t.shape[:-2], ph, t.shape[-1])], dim=-2)
    if pw > 0:
        t = torch.cat([t, t[..., -1:].expand(*t.shape[:-1], pw)], dim=-1)
    return t
