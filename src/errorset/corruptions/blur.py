"""Blur corruptions: defocus_blur, glass_blur, motion_blur, zoom_blur, gaussian_blur.

``defocus_blur``, ``zoom_blur`` and ``gaussian_blur`` are deterministic and
reproduce the reference's arithmetic. ``glass_blur`` reproduces the
reference's sequential pixel shuffle exactly, vectorised (see
:func:`local_shuffle`). ``motion_blur`` is our own line kernel with the
weights and offsets of ``imagecorruptions``' reimplementation of ImageMagick's
``-motion-blur`` (the released CIFAR-10-C and ImageNet-C files were made with
ImageMagick itself, through Wand).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from errorset.corruptions.catalog import register
from errorset.corruptions.ops import (
    DENSE_FILTER_MAX_SIDE,
    apply_separable_sum,
    cached_tensor,
    filter_matrix,
    gaussian_filter,
    motion_taps,
    separable_filter,
    shift_sum,
    zoom_sum,
)
from errorset.corruptions.rng import ImageRNG, uniform_to_integers
from errorset.corruptions.tables import DefocusBlur, GlassBlur, MotionBlur, ZoomBlur


@register("gaussian_blur", "blur", random=False)
def gaussian_blur(x: torch.Tensor, sigma: float, rng: ImageRNG | None) -> torch.Tensor:
    """Gaussian blur of ``sigma`` pixels (scipy's filter: edge pixels repeated, radius 4 sigma)."""
    return gaussian_filter(x, float(sigma), mode="nearest")


# --- defocus -------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The reference's anti-aliased disk: a normalised disk of ``radius`` on a 17x17 grid
    (``2 radius + 1`` above radius 8), smoothed by a 3x3 (5x5) Gaussian of sigma ``alias_blur``
    with mirrored borders, as ``cv2.GaussianBlur`` does."""
    if radius <= 8:
        grid = np.arange(-8, 8 + 1)
        ksize = 3
    else:
        grid = np.arange(-radius, radius + 1)
        ksize = 5
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    t = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(t**2) / (2 * alias_blur**2))
    g = tuple((g / g.sum()).tolist())
    n = disk.shape[0]
    m = filter_matrix(n, g, "mirror")
    return m @ disk @ m.T


@functools.lru_cache(maxsize=64)
def _separable_terms(radius: float, alias_blur: float) -> tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]:
    """The disk kernel as a sum of separable (column, row) kernels (its SVD, rank to 1e-7)."""
    k = disk_kernel(radius, alias_blur)
    u, s, vt = np.linalg.svd(k)
    rank = int((s > s[0] * 1e-7).sum())
    return tuple((tuple((u[:, i] * s[i]).tolist()), tuple(vt[i].tolist())) for i in range(rank))


@register("defocus_blur", "blur", random=False)
def defocus_blur(x: torch.Tensor, p: DefocusBlur, rng: ImageRNG | None) -> torch.Tensor:
    """Correlation with the anti-aliased disk (mirrored borders, as ``cv2.filter2D``).

    The disk is not separable; it is applied as the sum of the separable terms
    of its singular value decomposition (rank 1-7 for the tables' disks,
    exact to 1e-7).
    """
    terms = _separable_terms(float(p.radius), float(p.alias_blur))
    h, w = x.shape[-2:]
    if max(h, w) <= DENSE_FILTER_MAX_SIDE:
        key = ("defocus", h, w, float(p.radius), float(p.alias_blur))
        rows = cached_tensor((*key, "h"), lambda: np.stack([filter_matrix(h, c, "mirror") for c, _ in terms]), x)
        cols = cached_tensor((*key, "w"), lambda: np.stack([filter_matrix(w, r, "mirror") for _, r in terms]), x)
        return apply_separable_sum(x, rows, cols).clamp_(0, 1)
    out = torch.zeros_like(x)
    for col, row in terms:
        out += separable_filter(x, col, row, "mirror")
    return out.clamp_(0, 1)


# --- glass -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _wavefronts(height: int, width: int, delta: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's visiting order of the local shuffle, grouped into independent wavefronts.

    The reference visits rows ``h = H - d ... d + 1`` (descending) and, in
    each, columns ``w = W - d ... d + 1``, and replaces pixel ``(h, w)`` by the
    current value of ``(h + dy, w + dx)`` with ``dx, dy`` in ``[-d, d)``. A visit
    only reads and writes within ``d`` pixels, so visit ``(a, b)`` (row ``a``
    and column ``b`` of the order) may run at time ``t = a (d + 1) + b``: every
    visit it depends on runs earlier, and visits at the same time touch
    disjoint pixels. That turns ``(H - 2d)(W - 2d)`` sequential steps into
    about ``(H - 2d)(d + 2)`` vectorised ones, with exactly the sequential result.

    Returns:
        ``rows``, ``cols`` (the visits' ``a``, ``b``, sorted by time) and
        ``bounds`` (start of each time step in that order, plus the end).
    """
    nh, nw = height - 2 * delta, width - 2 * delta
    a, b = np.meshgrid(np.arange(nh), np.arange(nw), indexing="ij")
    t = (a * (delta + 1) + b).ravel()
    order = np.argsort(t, kind="stable")
    counts = np.bincount(t, minlength=int(t.max()) + 1)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return a.ravel()[order], b.ravel()[order], bounds


def local_shuffle(x: torch.Tensor, delta: int, iterations: int, offsets: torch.Tensor) -> torch.Tensor:
    """The reference glass blur's pixel shuffle, vectorised over the batch and over wavefronts.

    Args:
        x: (N, C, H, W) images.
        delta: ``max_delta``; offsets lie in ``[-delta, delta)``.
        iterations: passes over the image.
        offsets: (N, iterations, H - 2 delta, W - 2 delta, 2) integer (dy, dx)
            of each visit, in the reference's visiting order.

    Note that the reference's "swap" (``x[h, w], x[h', w'] = x[h', w'], x[h, w]``
    on NumPy views) copies the neighbour into ``(h, w)`` and leaves the
    neighbour unchanged; we reproduce that behaviour, not a true swap.
    """
    n, _, h, w = x.shape
    if h - 2 * delta <= 0 or w - 2 * delta <= 0:
        return x
    rows, cols, _ = _wavefronts(h, w, delta)
    order = torch.as_tensor(rows * (w - 2 * delta) + cols, device=x.device)  # visits in time order
    flat = (offsets[..., 0] * w + offsets[..., 1]).reshape(n, iterations, -1).to(x.device)
    return shuffle_in_time_order(x, delta, flat.index_select(2, order).permute(1, 2, 0).contiguous())


def shuffle_in_time_order(x: torch.Tensor, delta: int, shifts: torch.Tensor) -> torch.Tensor:
    """:func:`local_shuffle` with each visit's offset given as ``dy * W + dx``, visits in time order.

    Args:
        x: (N, C, H, W) images.
        shifts: (iterations, (H - 2 delta) (W - 2 delta), N) int64 flat offsets:
            ``shifts[k, j, i]`` is image ``i``'s offset at the ``j``-th visit
            (the order of :func:`_wavefronts`) of pass ``k``. Visits are rows so
            that every step of the schedule reads contiguous indices.
    """
    n, c, h, w = x.shape
    rows, cols, bounds = _wavefronts(h, w, delta)
    dev = x.device
    a = torch.as_tensor(rows, device=dev)
    b = torch.as_tensor(cols, device=dev)
    p = (h - delta - a) * w + (w - delta - b)  # flat target of every visit, in time order
    # all images' pixels as rows of one (N * H * W, C) table (one value per row for one channel);
    # visits as row indices, time-major
    table = x.permute(0, 2, 3, 1).reshape(n * h * w, c).clone()
    if c == 1:
        table = table.view(-1)
    base = torch.arange(n, device=dev)[None, :] * (h * w)  # (1, N)
    targets = (p[:, None] + base).contiguous()  # (V, N)
    steps = [(int(bounds[s]), int(bounds[s + 1])) for s in range(len(bounds) - 1)]
    target_steps = [targets[lo:hi].view(-1) for lo, hi in steps]
    for it in range(shifts.shape[0]):
        sources = targets + shifts[it]  # (V, N)
        for (lo, hi), dest in zip(steps, target_steps, strict=True):
            values = table.index_select(0, sources[lo:hi].view(-1))
            if c == 1:  # scatter_ writes single values about twice as fast as index_copy_
                table.scatter_(0, dest, values)
            else:
                table.index_copy_(0, dest, values)
    return table.reshape(n, h, w, c).permute(0, 3, 1, 2).contiguous()


@functools.lru_cache(maxsize=16)
def _offset_codes(delta: int, width: int) -> np.ndarray:
    """Flat offsets ``dy * width + dx`` of the ``(2 delta)^2`` pairs in ``[-delta, delta)^2``, by code."""
    dy, dx = np.divmod(np.arange((2 * delta) ** 2), 2 * delta)
    return (dy - delta) * width + (dx - delta)


@register("glass_blur", "blur", random=True, chunk_scale=2)
def glass_blur(x: torch.Tensor, p: GlassBlur, rng: ImageRNG) -> torch.Tensor:
    """Blur, quantise to 8 bits (truncating, as the reference), shuffle pixels locally, blur again.

    The quantised pixels are shuffled as one number each (``r + 256 g + 65536 b``,
    exact in float32), which moves a third of the values of a 3-channel
    shuffle; each visit's offset pair is one draw of the ``(2 delta)^2``
    equally likely pairs.
    """
    h, w = x.shape[-2:]
    y = gaussian_filter(x, float(p.sigma), mode="nearest").mul(255).floor_()
    d = int(p.max_delta)
    if h - 2 * d > 0 and w - 2 * d > 0:
        visits = (h - 2 * d) * (w - 2 * d)
        pairs = (2 * d) ** 2
        # one uniform per visit, as rng.integers draws them, transposed while still 4-byte floats
        u = rng.uniform((int(p.iterations), visits), 0, dtype=torch.float32).permute(1, 2, 0).contiguous()
        codes = uniform_to_integers(u, 0, pairs)
        lut = cached_tensor(("glass", d, w), lambda: _offset_codes(d, w), codes)
        shifts = lut.index_select(0, codes.view(-1)).view(codes.shape)  # (iterations, visits, N)
        packed = torch.add(y[:, 0:1], y[:, 1:2], alpha=256).add_(y[:, 2:3], alpha=65536)
        packed = shuffle_in_time_order(packed, d, shifts)
        high = torch.mul(packed, 1 / 65536, out=y[:, 2:3]).floor_()  # powers of 2: exact
        packed.add_(high, alpha=-65536)
        mid = torch.mul(packed, 1 / 256, out=y[:, 1:2]).floor_()
        torch.add(packed, mid, alpha=-256, out=y[:, 0:1])
    return gaussian_filter(y.mul_(1 / 255), float(p.sigma), mode="nearest").clamp_(0, 1)


# --- motion ------------------------------------------------------------------------------


@register("motion_blur", "blur", random=True)
def motion_blur(x: torch.Tensor, p: MotionBlur, rng: ImageRNG) -> torch.Tensor:
    """Blur along a line at a random angle in [-45, 45) degrees (one per image).

    Tap ``i`` of ``2 radius + 1`` shifts the image by ``i`` pixels along the
    line (rounded to whole pixels, edges repeated) and weighs it by
    ``exp(-i^2 / 2 sigma^2)``: a one-sided Gaussian streak, as ImageMagick's
    ``-motion-blur radius x sigma + angle``.
    """
    angles = rng.uniform((), 0, -45.0, 45.0)
    dy, dx, weights = motion_taps(int(p.radius), float(p.sigma), angles, x.shape[2], x.shape[3])
    return shift_sum(x, dy, dx, weights).clamp_(0, 1)


# --- zoom ---------------------------------------------------------------------------------


@register("zoom_blur", "blur", random=False)
def zoom_blur(x: torch.Tensor, p: ZoomBlur, rng: ImageRNG | None) -> torch.Tensor:
    """The mean of the image and its zooms about the centre by each of ``p.factors()`` (bilinear)."""
    return zoom_sum(x, p.factors()).clamp_(0, 1)
