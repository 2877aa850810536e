"""Building blocks shared by the corruption families, on whole N x C x H x W batches.

Separable linear operations (Gaussian filters with each boundary rule, the
reference's crop-and-zoom, PIL's box and nearest resizing) are applied as
``A_h @ x @ A_w^T`` with small dense matrices built once per size and cached:
on CPUs one matrix product is faster than a depthwise convolution or a loop of
shifted adds, it is exact for every boundary rule (the padding is folded into
the matrix), and it is the same code on GPUs. Sums of many such operations
whose matrices are mostly zeros (zoom blur's 12-27 zooms, pixelate on large
images) are instead one sparse (H W, H W) matrix per plane
(:func:`separable_sum_operator`, :func:`apply_plane_operator`).

Boundary rules follow the reference implementation's libraries:

``nearest``  repeat the edge pixel (scipy ``nearest``, OpenCV ``BORDER_REPLICATE``)
``reflect``  mirror including the edge, ``2 1 0 | 0 1 2`` (scipy ``reflect``)
``mirror``   mirror without the edge, ``2 1 | 0 1 2`` (scipy ``mirror``, OpenCV ``BORDER_REFLECT_101``)
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse
import torch

# --- cached constant tensors ----------------------------------------------------

_TENSOR_CACHE: dict[tuple, torch.Tensor] = {}
_TENSOR_CACHE_SIZE = 512


def _cached(key: tuple, like: torch.Tensor, make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``make()``, cached under ``key`` and ``like``'s device and dtype."""
    full = (*key, str(like.device), like.dtype)
    t = _TENSOR_CACHE.get(full)
    if t is None:
        if len(_TENSOR_CACHE) >= _TENSOR_CACHE_SIZE:
            _TENSOR_CACHE.clear()
        t = make()
        _TENSOR_CACHE[full] = t
    return t


def cached_tensor(key: tuple, build: Callable[[], np.ndarray], like: torch.Tensor) -> torch.Tensor:
    """``build()`` as a tensor on ``like``'s device and dtype, cached under ``key``."""

    def make() -> torch.Tensor:
        # contiguous: matrix products with strided constants fall off the fast BLAS paths (5x slower)
        return torch.as_tensor(np.ascontiguousarray(build()), dtype=like.dtype, device=like.device).contiguous()

    return _cached(key, like, make)


# --- masks ------------------------------------------------------------------------


def float_mask(compare: Callable[..., torch.Tensor], a: torch.Tensor, b: float | torch.Tensor) -> torch.Tensor:
    """``compare(a, b)`` (``torch.lt``, ``torch.ge``, ...) as 0.0 / 1.0 in ``a``'s dtype.

    Selecting by multiplying with a float mask is several times faster on CPUs
    than ``torch.where`` or arithmetic with boolean tensors, which are not vectorised there.
    """
    return compare(a, b, out=torch.empty_like(a))


def keep_at_least(t: torch.Tensor, threshold: float) -> torch.Tensor:
    """``t`` where ``t >= threshold``, else 0."""
    return t * float_mask(torch.ge, t, threshold)


# --- boundary rules and separable filters ---------------------------------------


def boundary_index(idx: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map integer positions (any range) onto ``0..n-1`` by a boundary rule."""
    idx = np.asarray(idx, dtype=np.int64)
    if mode == "nearest":
        return np.clip(idx, 0, n - 1)
    if mode == "reflect":
        period = 2 * n
        i = np.mod(idx, period)
        return np.where(i >= n, period - 1 - i, i)
    if mode == "mirror":
        if n == 1:
            return np.zeros_like(idx)
        period = 2 * n - 2
        i = np.mod(idx, period)
        return np.where(i >= n, period - i, i)
    raise ValueError(f"unknown boundary mode {mode!r}")


@functools.lru_cache(maxsize=256)
def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> tuple[float, ...]:
    """scipy.ndimage's Gaussian weights: radius ``int(truncate * sigma + 0.5)``, normalised."""
    if sigma <= 0:
        return (1.0,)
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return tuple((w / w.sum()).tolist())


@functools.lru_cache(maxsize=256)
def filter_matrix(n: int, kernel: tuple[float, ...], mode: str) -> np.ndarray:
    """(n, n) matrix of the centred correlation with ``kernel`` under a boundary rule."""
    r = len(kernel) // 2
    m = np.zeros((n, n))
    rows = np.arange(n)
    for k, w in enumerate(kernel):
        np.add.at(m, (rows, boundary_index(rows + k - r, n, mode)), w)
    return m


def apply_separable(x: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.Tensor:
    """``rows @ x @ cols^T`` over the last two dimensions (None = identity)."""
    if cols is not None:
        x = x @ cols.T
    if rows is not None:
        x = rows @ x
    return x


def apply_separable_sum(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``sum_k rows[k] @ x @ cols[k]^T`` over the last two dimensions of ``x`` (..., H, W).

    Args:
        rows: (K, H, H) matrices.
        cols: (K, W, W) matrices.

    Each term's left product accumulates into the result inside the matrix
    product (``baddbmm``), so the sum costs no passes of its own.
    """
    *lead, h, w = x.shape
    planes = x.reshape(-1, h, w)
    out = torch.zeros_like(planes)
    cols_t = cols.transpose(1, 2)
    for k in range(rows.shape[0]):
        torch.baddbmm(out, rows[k].expand(planes.shape[0], h, h), planes @ cols_t[k], out=out)
    return out.view(*lead, h, w)


#: sides up to this use dense (n, n) filter matrices; longer ones use banded blocks (see banded_filter)
DENSE_FILTER_MAX_SIDE = 64
#: output rows per block of banded_filter
FILTER_BLOCK = 32


@functools.lru_cache(maxsize=256)
def banded_blocks(n: int, kernel: tuple[float, ...], mode: str, block: int = FILTER_BLOCK) -> np.ndarray:
    """The filter matrix of :func:`filter_matrix` cut into diagonal blocks (nb, block, block + 2r).

    Block ``b`` maps input positions ``b * block - r ... (b + 1) * block + r``
    (r = the kernel's radius) to outputs ``b * block ... (b + 1) * block``:
    every weight of those outputs lies in that window, boundary rules included.
    """
    r = len(kernel) // 2
    m = filter_matrix(n, kernel, mode)
    nb = -(-n // block)
    out = np.zeros((nb, block, block + 2 * r))
    for b in range(nb):
        rows = slice(b * block, min((b + 1) * block, n))
        lo = b * block - r
        cols = np.arange(lo, lo + block + 2 * r)
        valid = (cols >= 0) & (cols < n)
        out[b, : rows.stop - rows.start][:, valid] = m[rows][:, cols[valid]]
    return out


def banded_filter(x: torch.Tensor, kernel: tuple[float, ...], mode: str, dim: int) -> torch.Tensor:
    """:func:`filter_matrix` along ``dim`` (-1 or -2) as a product with diagonal blocks.

    Each output takes ``block + 2r`` inputs instead of all ``n`` of a dense
    matrix product (about 5x fewer operations at 224 pixels), exactly.
    """
    n = x.shape[dim]
    r = len(kernel) // 2
    blocks = cached_tensor(("band", n, kernel, mode, FILTER_BLOCK), lambda: banded_blocks(n, kernel, mode), x)
    nb = blocks.shape[0]
    extra = nb * FILTER_BLOCK - n
    if dim == -1:
        padded = torch.nn.functional.pad(x, (r, r + extra))
        windows = padded.unfold(-1, FILTER_BLOCK + 2 * r, FILTER_BLOCK)  # (..., nb, width)
        out = torch.einsum("...bw,biw->...bi", windows, blocks)
        return out.reshape(*x.shape[:-1], nb * FILTER_BLOCK)[..., :n]
    padded = torch.nn.functional.pad(x, (0, 0, r, r + extra))
    windows = padded.unfold(-2, FILTER_BLOCK + 2 * r, FILTER_BLOCK)  # (..., nb, W, width)
    out = torch.einsum("...bcw,biw->...bic", windows, blocks)
    return out.reshape(*x.shape[:-2], nb * FILTER_BLOCK, x.shape[-1])[..., :n, :]


def separable_filter(
    x: torch.Tensor, kernel_h: tuple[float, ...], kernel_w: tuple[float, ...], mode: str
) -> torch.Tensor:
    """Correlate every image plane with ``kernel_h`` along H and ``kernel_w`` along W."""
    h, w = x.shape[-2:]
    if len(kernel_w) > 1:
        if w > DENSE_FILTER_MAX_SIDE:
            x = banded_filter(x, kernel_w, mode, -1)
        else:
            x = x @ cached_tensor(("filter", w, kernel_w, mode), lambda: filter_matrix(w, kernel_w, mode), x).T
    if len(kernel_h) > 1:
        if h > DENSE_FILTER_MAX_SIDE:
            x = banded_filter(x, kernel_h, mode, -2)
        else:
            x = cached_tensor(("filter", h, kernel_h, mode), lambda: filter_matrix(h, kernel_h, mode), x) @ x
    return x


def gaussian_filter(
    x: torch.Tensor, sigma: float | tuple[float, float], *, mode: str = "nearest", truncate: float = 4.0
) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter`` over H and W of every plane (skimage's ``gaussian`` defaults).

    Args:
        sigma: standard deviation in pixels (one value, or (along H, along W)).
        mode: boundary rule (see the module docstring).
        truncate: kernel radius in sigmas.
    """
    sh, sw = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    return separable_filter(x, gaussian_kernel1d(float(sh), truncate), gaussian_kernel1d(float(sw), truncate), mode)


# --- resampling ---------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def zoom_matrix(n: int, factor: float) -> np.ndarray:
    """(n, n) matrix of the reference's ``clipped_zoom`` along one axis.

    The centre ``ceil(n / factor)`` pixels (from ``(n - ch) // 2``) are zoomed
    by ``factor`` with linear interpolation as ``scipy.ndimage.zoom(order=1)``
    does (output ``round(ch * factor)`` pixels, sample ``o`` at input
    ``o * (ch - 1) / (out - 1)``), and the first ``n`` outputs are kept.
    """
    ch = math.ceil(n / float(factor))
    top = (n - ch) // 2
    out = round(ch * float(factor))
    m = np.zeros((n, n))
    scale = (ch - 1) / (out - 1) if out > 1 else 0.0
    for o in range(n):
        c = o * scale
        i0 = min(math.floor(c), ch - 1)
        f = c - i0
        m[o, top + i0] += 1 - f
        if f > 0:
            m[o, top + min(i0 + 1, ch - 1)] += f
    return m


#: above this side, clipped_zoom uses torch's bilinear resampling kernel instead of dense matrices
DENSE_ZOOM_MAX_SIDE = 64


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom every plane about its centre by ``factor`` >= 1, keeping the size (the reference's ``clipped_zoom``).

    Small images use the (n, n) matrices of :func:`zoom_matrix`; large ones
    crop the centre and resample it with ``interpolate(align_corners=True)``,
    which is the same linear interpolation without the dense matrices' cost.
    """
    h, w = x.shape[-2:]
    if max(h, w) > DENSE_ZOOM_MAX_SIDE:
        ch, cw = math.ceil(h / factor), math.ceil(w / factor)
        top, left = (h - ch) // 2, (w - cw) // 2
        size = (round(ch * factor), round(cw * factor))
        crop = x[..., top : top + ch, left : left + cw]
        flat = crop.reshape(-1, 1, ch, cw) if crop.ndim != 4 else crop
        out = torch.nn.functional.interpolate(flat, size=size, mode="bilinear", align_corners=True)
        return out.reshape(*x.shape[:-2], *size)[..., :h, :w]
    rows = cached_tensor(("zoom", h, float(factor)), lambda: zoom_matrix(h, float(factor)), x)
    cols = cached_tensor(("zoom", w, float(factor)), lambda: zoom_matrix(w, float(factor)), x)
    return apply_separable(x, rows, cols)


def separable_sum_operator(terms: Sequence[tuple[np.ndarray, np.ndarray, float]]) -> scipy.sparse.csr_matrix:
    """``sum_k w_k A_k x B_k^T`` on row-major flattened (H, W) planes as one sparse (H W, H W) matrix.

    Args:
        terms: ``(A_k, B_k, w_k)`` with (H, H) and (W, W) matrices, mostly zeros.

    The matrix holds the nonzeros of the Kronecker products ``A_k (x) B_k``,
    summed: a product with it costs one multiply-add per nonzero, where dense
    separable products cost ``H + W`` per pixel and term.
    """
    rows, cols, vals = [], [], []
    for a, b, weight in terms:
        ma, mb = scipy.sparse.coo_matrix(a), scipy.sparse.coo_matrix(b)
        width = b.shape[1]
        rows.append((ma.row[:, None] * width + mb.row[None, :]).ravel())
        cols.append((ma.col[:, None] * width + mb.col[None, :]).ravel())
        vals.append((ma.data[:, None] * mb.data[None, :]).ravel() * weight)
    size = terms[0][0].shape[0] * terms[0][1].shape[0]
    return scipy.sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    ).tocsr()  # duplicates are summed


def apply_plane_operator(x: torch.Tensor, key: tuple, build: Callable[[], scipy.sparse.csr_matrix]) -> torch.Tensor:
    """``A @ plane`` for every flattened (H, W) plane of ``x`` with the sparse matrix ``build()``,
    cached under ``key`` (per device and dtype) as a torch CSR tensor."""

    def make() -> torch.Tensor:
        m = build()
        with warnings.catch_warnings():  # torch calls its sparse CSR support "beta"; the product used is long stable
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                torch.as_tensor(m.indptr, dtype=torch.int64),
                torch.as_tensor(m.indices, dtype=torch.int64),
                torch.as_tensor(m.data, dtype=x.dtype),
                size=m.shape,
            ).to(x.device)

    a = _cached(("operator", *key), x, make)
    h, w = x.shape[-2:]
    planes = x.reshape(-1, h * w).T  # (H W, planes)
    if x.device.type != "cpu":  # cuSPARSE takes dense operands in one memory order
        planes = planes.contiguous()
    return (a @ planes).T.reshape(x.shape)


def zoom_sum_operator(height: int, width: int, factors: tuple[float, ...]) -> scipy.sparse.csr_matrix:
    """The mean of an image and its clipped zooms by ``factors``, as one sparse (H W, H W) matrix.

    ``(x + sum_z Z_z^H x (Z_z^W)^T) / (len(factors) + 1)`` with the matrices of
    :func:`zoom_matrix` (2 weights per row). Zooms by nearby factors sample
    nearby pixels, so a row holds 8-20 weights (32 pixels, ImageNet-C's
    factors) where the dense products spend 2 (H + W) per term.
    """
    n = len(factors) + 1
    terms = [(np.eye(height), np.eye(width), 1 / n)]
    terms += [(zoom_matrix(height, z), zoom_matrix(width, z), 1 / n) for z in factors]
    return separable_sum_operator(terms)


def zoom_sum(x: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """The mean of every plane and its :func:`clipped_zoom` by each factor (zoom blur before clipping),
    as one sparse matrix product (:func:`zoom_sum_operator`)."""
    h, w = x.shape[-2:]
    key = tuple(float(z) for z in factors)
    return apply_plane_operator(x, ("zoomsum", h, w, key), lambda: zoom_sum_operator(h, w, key))


@functools.lru_cache(maxsize=256)
def pil_resize_matrix(n_in: int, n_out: int, resample: str) -> np.ndarray:
    """(n_out, n_in) matrix of Pillow's ``resize`` along one axis (``box`` or ``nearest``).

    ``box`` follows Pillow's convolution resampler (the box filter of support
    0.5 widened by the scale when shrinking); ``nearest`` takes input pixel
    ``floor((o + 0.5) * n_in / n_out)``. Pillow rounds to 8 bits between its
    horizontal and vertical passes; this matrix does not (a difference of at
    most 1/255).
    """
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    if resample == "nearest":
        src = np.minimum(np.floor((np.arange(n_out) + 0.5) * scale).astype(np.int64), n_in - 1)
        m[np.arange(n_out), src] = 1.0
        return m
    if resample != "box":
        raise ValueError(f"unknown resample {resample!r}")
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    for o in range(n_out):
        center = (o + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n_in)
        x = np.arange(xmin, xmax)
        t = (x - center + 0.5) / filterscale
        w = ((t > -0.5) & (t <= 0.5)).astype(np.float64)
        if w.sum() > 0:
            m[o, xmin:xmax] = w / w.sum()
    return m


def pil_resize(x: torch.Tensor, size: tuple[int, int], resample: str) -> torch.Tensor:
    """Resize every plane to ``size`` (H, W) as Pillow's ``resize`` would (without its 8-bit rounding)."""
    h, w = x.shape[-2:]
    rows = cached_tensor(("pil", h, size[0], resample), lambda: pil_resize_matrix(h, size[0], resample), x)
    cols = cached_tensor(("pil", w, size[1], resample), lambda: pil_resize_matrix(w, size[1], resample), x)
    return apply_separable(x, rows, cols)


def bilinear_sample(img: torch.Tensor, y: torch.Tensor, x: torch.Tensor, mode: str) -> torch.Tensor:
    """Sample ``img`` (N, C, H, W) at per-image coordinates ``y``, ``x`` (N, H', W') in pixels.

    Coordinates outside the image are folded back by the boundary rule
    ``mode`` (``reflect`` = scipy's ``map_coordinates(mode='reflect')``, a
    mirror about -0.5 and size - 0.5; ``mirror`` = OpenCV's
    ``BORDER_REFLECT_101``, a mirror about 0 and size - 1), then interpolated
    linearly between the 4 neighbours, edge pixels repeated beyond the image.
    That is ``grid_sample``'s ``reflection`` padding with ``align_corners``
    False and True respectively, which does it in one fused pass.
    """
    if mode not in ("reflect", "mirror"):
        raise ValueError(f"unknown boundary mode {mode!r}")
    h, w = img.shape[-2:]
    align = mode == "mirror"

    def normalise(v: torch.Tensor, size: int) -> torch.Tensor:
        if align:
            return v * (2.0 / max(size - 1, 1)) - 1.0
        return (v * 2.0 + 1.0) * (1.0 / size) - 1.0

    grid = torch.stack([normalise(x, w), normalise(y, h)], dim=-1).to(img.dtype)
    return torch.nn.functional.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=align)


def sample_displaced(img: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """``img`` (N, C, H, W) resampled at every pixel moved by ``field`` (N, 2, H, W) pixels
    (``field[:, 0]`` along W, ``field[:, 1]`` along H): :func:`bilinear_sample` at
    ``(row + field[:, 1], col + field[:, 0])`` with the ``reflect`` rule, the
    normalised sampling grid built in one pass."""
    h, w = img.shape[-2:]

    def base() -> np.ndarray:
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        return np.stack([(2 * xx + 1) / w - 1, (2 * yy + 1) / h - 1], axis=-1)

    grid0 = cached_tensor(("grid", h, w), base, img)
    scale = torch.tensor([2.0 / w, 2.0 / h], dtype=img.dtype, device=img.device)
    grid = torch.addcmul(grid0, field.permute(0, 2, 3, 1).to(img.dtype), scale)
    return torch.nn.functional.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# --- motion blur ---------------------------------------------------------------------


#: motion blur skips its last taps while their weights add up to at most this (see motion_taps)
MOTION_TAIL_WEIGHT = 1e-4


def motion_taps(
    radius: int, sigma: float, angles: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Offsets and weights of the reference's motion-blur kernel, per image.

    The kernel has ``2 * radius + 1`` taps along a line at ``angles`` (degrees,
    one per image); tap ``i`` has weight ``exp(-i^2 / (2 sigma^2))`` (normalised
    over all taps) and shifts the image by ``dy = -ceil(i sin(a) - 0.5)``,
    ``dx = -ceil(i cos(a) - 0.5)`` pixels. As in the reference, the taps from
    the first one that would shift by a whole image side onwards are dropped
    (their weight is not given to the others). Unlike the reference, the last
    taps whose weights add up to at most :data:`MOTION_TAIL_WEIGHT` are
    skipped too: they change no pixel by more than that (0.03 of an 8-bit
    level) and are up to half the taps of the mildest severities.

    Returns:
        ``dy``, ``dx`` (N, T) int64 and ``weights`` (N, T) float64, on the CPU.
    """
    taps = 2 * int(radius) + 1
    k = np.exp(-(np.arange(taps, dtype=np.float64) ** 2) / (2 * float(sigma) ** 2))
    k /= k.sum()
    a = np.deg2rad(angles.detach().cpu().double().numpy())[:, None]
    # the reference's arithmetic, tap count included: at some angles the offsets are exact ties
    p0 = taps * np.sin(a)
    p1 = taps * np.cos(a)
    hyp = np.hypot(p0, p1)
    tail = np.cumsum(k[::-1])[::-1]  # tail[i]: weight of taps i, i + 1, ...
    taps = max(1, int((tail > MOTION_TAIL_WEIGHT).sum()))
    k = k[:taps]
    i = np.arange(taps, dtype=np.float64)[None, :]
    dy = -np.ceil(i * p0 / hyp - 0.5)
    dx = -np.ceil(i * p1 / hyp - 0.5)
    outside = (np.abs(dy) >= height) | (np.abs(dx) >= width)
    kept = np.cumsum(outside, axis=1) == 0
    weights = np.where(kept, k[None, :], 0.0)
    return (
        torch.from_numpy(np.where(kept, dy, 0).astype(np.int64)),
        torch.from_numpy(np.where(kept, dx, 0).astype(np.int64)),
        torch.from_numpy(weights),
    )


def shift_sum(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_t weights[n, t] * x[n, :, clamp(h - dy[n, t]), clamp(w - dx[n, t])]`` for every image n.

    The shifted copies repeat the edge pixels (as the reference's ``shift``).
    The images are laid out channel-last and padded along W by the largest
    column shift, so that one tap of one output row is a single run of
    ``W * C`` consecutive values: each tap copies whole rows (one index per
    row, out of a strided view whose row ``k`` starts at value ``k``) and adds
    them with the images' weights. That moves memory at copy speed instead of
    gathering every value by its own index (2-3x faster on CPUs).

    Returns:
        (N, C, H, W) in channels-last memory layout.
    """
    n, c, h, w = x.shape
    used = int((weights != 0).any(dim=0).sum())  # taps are dropped from the end
    if used == 0:
        return torch.zeros_like(x)
    dev = x.device
    dy = dy[:, :used].to(dev)
    dx = dx[:, :used].to(dev)
    p = int(dx.abs().max().item())
    cols = torch.arange(-p, w + p, device=dev).clamp_(0, w - 1)
    padded = x.permute(0, 2, 3, 1).index_select(2, cols).contiguous()  # (N, H, W + 2p, C)
    row_len = (w + 2 * p) * c
    flat = padded.view(-1)
    # row k of `runs` is the W * C values starting at value k (a view: nothing is copied)
    runs = flat.as_strided((flat.numel() - w * c + 1, w * c), (1, 1))
    rows = torch.arange(h, device=dev)
    first = (  # (T, N, H): where tap t of output row r of image n starts in `flat`
        (rows[None, None, :] - dy.T[:, :, None]).clamp_(0, h - 1) * row_len
        + (torch.arange(n, device=dev) * (h * row_len))[None, :, None]
        + ((p - dx.T) * c)[:, :, None]
    )
    wts = weights[:, :used].T.to(device=dev, dtype=x.dtype).contiguous()
    out = torch.zeros(n, h, w * c, dtype=x.dtype, device=dev)
    for t in range(used):
        out.addcmul_(runs.index_select(0, first[t].reshape(-1)).view(n, h, w * c), wts[t].view(n, 1, 1))
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


# --- the plasma fractal ----------------------------------------------------------------


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def plasma_uniform_count(mapsize: int) -> int:
    """How many U(-1, 1) draws one :func:`plasma_fractal` map uses."""
    total, step = 0, mapsize
    while step >= 2:
        total += 3 * (mapsize // step) ** 2
        step //= 2
    return total


def plasma_fractal(u: torch.Tensor, mapsize: int, wibble_decay: float) -> torch.Tensor:
    """Diamond-square plasma fractals, one per image, normalised to [0, 1].

    The reference's generator: each new point is the mean of its 4 neighbours
    (wrapping around) plus ``wibble * U(-wibble, wibble)``, with ``wibble``
    starting at 100 and divided by ``wibble_decay`` at every level.

    Args:
        u: (N, plasma_uniform_count(mapsize)) draws from U(-1, 1).
        mapsize: side of the map, a power of 2.

    Returns:
        (N, mapsize, mapsize) maps in [0, 1].
    """
    n = u.shape[0]
    m = torch.zeros(n, mapsize, mapsize, dtype=u.dtype, device=u.device)
    step, wibble, used = mapsize, 100.0, 0

    def draw(shape: tuple[int, int]) -> torch.Tensor:
        nonlocal used
        k = shape[0] * shape[1]
        out = u[:, used : used + k].reshape(n, *shape) * (wibble * wibble)
        used += k
        return out

    while step >= 2:
        half = step // 2
        corner = m[:, 0:mapsize:step, 0:mapsize:step]
        square = corner + torch.roll(corner, -1, dims=1)
        square = square + torch.roll(square, -1, dims=2)
        m[:, half:mapsize:step, half:mapsize:step] = square / 4 + draw(square.shape[1:])
        dr = m[:, half:mapsize:step, half:mapsize:step]
        ul = m[:, 0:mapsize:step, 0:mapsize:step]
        lt = dr + torch.roll(dr, 1, dims=1) + ul + torch.roll(ul, -1, dims=2)
        m[:, 0:mapsize:step, half:mapsize:step] = lt / 4 + draw(lt.shape[1:])
        tt = dr + torch.roll(dr, 1, dims=2) + ul + torch.roll(ul, -1, dims=1)
        m[:, half:mapsize:step, 0:mapsize:step] = tt / 4 + draw(tt.shape[1:])
        step //= 2
        wibble /= wibble_decay
    flat = m.reshape(n, -1)
    lo, hi = torch.aminmax(flat, dim=1, keepdim=True)
    return flat.sub_(lo).div_((hi - lo).clamp_min_(1e-12)).reshape(n, mapsize, mapsize)


# --- colour -----------------------------------------------------------------------------

#: ITU-R BT.601 luma weights (OpenCV's RGB2GRAY and JPEG's Y)
LUMA = (0.299, 0.587, 0.114)


def gray(x: torch.Tensor, weights: Sequence[float] = LUMA) -> torch.Tensor:
    """(N, 1, H, W) weighted sum of the RGB channels of (N, 3, H, W)."""
    r, g, b = weights
    return torch.mul(x[:, 0:1], r).add_(x[:, 1:2], alpha=g).add_(x[:, 2:3], alpha=b)
