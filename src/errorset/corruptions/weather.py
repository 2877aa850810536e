"""Weather corruptions: snow, frost, fog, and the extra spatter (water or mud drops).

``snow`` and ``fog`` reproduce the reference's algorithms (Gaussian snow
field zoomed, thresholded and motion-blurred; diamond-square plasma fog) with
our own random draws. Two differ from the reference by design:

``frost``
    The reference overlays crops of six photographs of frost shipped with it.
    We do not copy those files: each image gets a synthetic frost sheet, a
    smooth plasma-fractal field plus short bright needles streaked at random
    angles, scaled per channel to the colour statistics of a randomly chosen
    reference photograph (its mean colour, the spread of the mean between
    crops, and the spread within a crop, measured on the photographs; see
    :data:`FROST_SHEETS`). The mean and spread of the overlay match the
    reference; the crystal shapes do not (the tests measure both).
``spatter`` (water, severities 1-3)
    The reference shades the water drops with OpenCV's Canny edges, an L2
    distance transform (5x5 mask), histogram equalisation and an emboss
    filter. We do the same steps in torch, with the drops' outline in place of
    Canny edges and an exact Euclidean distance; the mud drops (severities
    4-5) are the reference's arithmetic.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from errorset.corruptions.catalog import register
from errorset.corruptions.ops import (
    cached_tensor,
    clipped_zoom,
    filter_matrix,
    float_mask,
    gaussian_filter,
    gray,
    keep_at_least,
    motion_taps,
    next_power_of_2,
    plasma_fractal,
    plasma_uniform_count,
    shift_sum,
)
from errorset.corruptions.rng import ImageRNG
from errorset.corruptions.tables import Fog, Frost, Snow, Spatter

# --- snow ------------------------------------------------------------------------------------


@register("snow", "weather", random=True)
def snow(x: torch.Tensor, p: Snow, rng: ImageRNG) -> torch.Tensor:
    """Snow flakes (a thresholded, zoomed Gaussian field streaked by motion blur) over a brightened image.

    The flakes are added twice (the layer and its 180-degree rotation); the
    image is first lifted towards ``max(x, 1.5 gray(x) + 0.5)`` by ``1 - image_weight``.
    """
    h, w = x.shape[-2:]
    layer = rng.normal((1, h, w), 0, mean=p.mean, std=p.std)
    layer = clipped_zoom(layer, float(p.zoom))
    layer = keep_at_least(layer, p.threshold).clamp_(0, 1)
    angles = rng.uniform((), 1, -135.0, -45.0)
    dy, dx, weights = motion_taps(int(p.radius), float(p.sigma), angles, h, w)
    layer = shift_sum(layer, dy, dx, weights)
    layer = layer.mul(255).round_().mul_(1 / 255)
    lifted = torch.maximum(x, gray(x).mul_(1.5).add_(0.5))
    flakes = layer + torch.flip(layer, dims=(2, 3))
    return torch.lerp(lifted, x, float(p.image_weight)).add_(flakes).clamp_(0, 1)


# --- fog ---------------------------------------------------------------------------------------


@register("fog", "weather", random=True, chunk_scale=4)
def fog(x: torch.Tensor, p: Fog, rng: ImageRNG) -> torch.Tensor:
    """``(x + strength * plasma) * max / (max + strength)``, max = the image's largest value."""
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    size = next_power_of_2(max(h, w))
    u = rng.uniform((plasma_uniform_count(size),), 0, -1.0, 1.0)
    plasma = plasma_fractal(u, size, float(p.wibble_decay))[:, None, :h, :w]
    peak = x.reshape(n, -1).max(dim=1).values.view(n, 1, 1, 1)
    return ((x + p.strength * plasma) * peak / (peak + p.strength)).clamp_(0, 1)


# --- frost ---------------------------------------------------------------------------------------

#: Colour statistics of the reference's six frost photographs, measured on random crops as the
#: generators take them (224 px at 1.1x; 32 px at 0.2x; the two agree to 0.01): per RGB channel the
#: mean, the spread (std) of a crop's mean between crops, and the std within a crop. Photographs 2
#: and 3 are the same picture. Numbers only; the photographs are not used.
FROST_SHEETS: tuple[tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]], ...] = (
    ((0.300, 0.579, 0.645), (0.060, 0.034, 0.028), (0.085, 0.052, 0.050)),
    ((0.777, 0.794, 0.830), (0.028, 0.031, 0.033), (0.072, 0.074, 0.076)),
    ((0.777, 0.794, 0.830), (0.028, 0.031, 0.033), (0.072, 0.074, 0.076)),
    ((0.565, 0.623, 0.673), (0.034, 0.034, 0.036), (0.100, 0.100, 0.105)),
    ((0.400, 0.445, 0.490), (0.058, 0.057, 0.054), (0.136, 0.135, 0.132)),
    ((0.268, 0.348, 0.379), (0.046, 0.055, 0.058), (0.118, 0.143, 0.166)),
)
#: share of the synthetic frost's variance in its smooth (plasma) part; the rest is in the needles
FROST_SMOOTH_SHARE = 0.5
#: wibble decay of the smooth part's plasma fractal (larger = smoother)
FROST_SMOOTH_DECAY = 2.0
#: needle streak half-length in pixels of the reference photographs (scaled by texture_scale)
FROST_NEEDLE_RADIUS = 6
#: fraction of pixels seeding a needle
FROST_NEEDLE_DENSITY = 0.08
#: needle orientations layered per image
FROST_NEEDLE_LAYERS = 2
#: needle blur (Gaussian sigma) in pixels of the corrupted image
FROST_NEEDLE_BLUR = 0.6


def _standardise(t: torch.Tensor) -> torch.Tensor:
    flat = t.reshape(t.shape[0], -1)
    centred = flat - flat.mean(dim=1, keepdim=True)
    # the sample std spelled out: torch's std over rows is several times slower on CPUs
    std = centred.square().sum(dim=1, keepdim=True).div_(max(flat.shape[1] - 1, 1)).sqrt_().clamp_min_(1e-6)
    return centred.div_(std).reshape(t.shape)


def frost_texture(rng: ImageRNG, h: int, w: int, texture_scale: float, stream: int = 0) -> torch.Tensor:
    """(N, 1, H, W) synthetic frost texture with zero mean and unit std per image.

    A smooth plasma fractal (the sheet's slow variations) plus sparse bright
    seeds streaked into needles along random directions (the crystals), with
    needles about ``FROST_NEEDLE_RADIUS * texture_scale`` pixels long.
    """
    n = len(rng)
    size = next_power_of_2(max(h, w))
    smooth = plasma_fractal(rng.uniform((plasma_uniform_count(size),), stream, -1.0, 1.0), size, FROST_SMOOTH_DECAY)
    smooth = _standardise(smooth[:, None, :h, :w])
    radius = max(1, round(FROST_NEEDLE_RADIUS * texture_scale))
    k = FROST_NEEDLE_LAYERS
    seeds = rng.uniform((k, h, w), stream + 1)
    seeds = (seeds / FROST_NEEDLE_DENSITY).mul_(float_mask(torch.lt, seeds, FROST_NEEDLE_DENSITY))
    angles = rng.uniform((k,), stream + 2, 0.0, 360.0).reshape(n * k)
    dy, dx, weights = motion_taps(radius, radius / 2 + 0.5, angles, h, w)
    needles = shift_sum(seeds.reshape(n * k, 1, h, w), dy, dx, weights)
    needles = needles.reshape(n, k, h, w).amax(dim=1, keepdim=True)
    needles = _standardise(gaussian_filter(needles, FROST_NEEDLE_BLUR, mode="reflect"))
    return math.sqrt(FROST_SMOOTH_SHARE) * smooth + math.sqrt(1 - FROST_SMOOTH_SHARE) * needles


@register("frost", "weather", random=True, chunk_scale=2)
def frost(x: torch.Tensor, p: Frost, rng: ImageRNG) -> torch.Tensor:
    """``image_weight * x + frost_weight * frost`` with a synthetic frost sheet (see the module docstring)."""
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    texture = frost_texture(rng, h, w, float(p.texture_scale))
    sheets = torch.as_tensor(FROST_SHEETS[: int(p.sheets)], dtype=x.dtype, device=x.device)  # (S, 3 stats, 3 ch)
    pick = rng.integers(0, int(p.sheets), (), 3)
    stats = sheets[pick]  # (N, 3, 3)
    eps = rng.normal((), 4).view(n, 1)
    mean = (stats[:, 0] + stats[:, 1] * eps).view(n, 3, 1, 1)
    layer = (mean + stats[:, 2].view(n, 3, 1, 1) * texture).clamp_(0, 1)
    return (p.image_weight * x + p.frost_weight * layer).clamp_(0, 1)


# --- spatter -------------------------------------------------------------------------------------

#: colours of the reference's water (pale turquoise) and mud (brown), RGB in [0,1]
WATER_RGB = (175 / 255, 238 / 255, 238 / 255)
MUD_RGB = (63 / 255, 42 / 255, 20 / 255)
#: distances to the drops' outline are truncated here (pixels), as the reference
SPATTER_MAX_DISTANCE = 20
#: the reference's emboss kernel
EMBOSS = ((-2.0, -1.0, 0.0), (-1.0, 1.0, 1.0), (0.0, 1.0, 2.0))


def _box3(t: torch.Tensor) -> torch.Tensor:
    """3x3 mean with mirrored borders (``cv2.blur``)."""
    h, w = t.shape[-2:]
    k = (1 / 3, 1 / 3, 1 / 3)
    rows = cached_tensor(("box3", h), lambda: filter_matrix(h, k, "mirror"), t)
    cols = cached_tensor(("box3", w), lambda: filter_matrix(w, k, "mirror"), t)
    return rows @ t @ cols.T


def _outline(wet: torch.Tensor) -> torch.Tensor:
    """Wet pixels with a dry 4-neighbour (image borders count as wet)."""
    dry = ~wet
    pad = torch.nn.functional.pad(dry.float(), (1, 1, 1, 1), mode="replicate") > 0.5
    near_dry = pad[..., :-2, 1:-1] | pad[..., 2:, 1:-1] | pad[..., 1:-1, :-2] | pad[..., 1:-1, 2:]
    return wet & near_dry


def _row_distance_squared(edges: torch.Tensor, limit: int, big: float) -> torch.Tensor:
    """Squared distance along W to the nearest ``True`` of the same row, ``big`` beyond ``limit`` pixels.

    The nearest edge on each side comes from a running maximum of edge
    positions (and of mirrored positions for the right side): two scans
    instead of one pass per offset.
    """
    w = edges.shape[-1]
    pos = torch.arange(w, device=edges.device, dtype=torch.float32)
    far = float(-4 * w)
    left = torch.where(edges, pos, far).cummax(dim=-1).values  # last edge at or before each column
    right = torch.where(edges, pos.flip(0), far).flip(-1).cummax(dim=-1).values.flip(-1)  # mirrored positions
    gap = torch.minimum(pos - left, (w - 1 - pos) - right)
    return torch.where(gap <= limit, gap.square(), big)


def truncated_distance(edges: torch.Tensor, limit: int) -> torch.Tensor:
    """Euclidean distance (pixels) to the nearest ``True`` of ``edges`` (N, 1, H, W), capped at ``limit``.

    The exact squared distance is separable: the squared distance along W
    (:func:`_row_distance_squared`), then a min-plus pass along H over offsets
    ``-limit ... limit``.
    """
    big = float(2 * limit * limit + 1)
    f = _row_distance_squared(edges, limit, big)
    h = f.shape[2]
    reach = min(limit, h - 1)
    padded = torch.nn.functional.pad(f, (0, 0, reach, reach), value=big)
    out = f.clone()
    for k in range(1, reach + 1):  # offsets -k and +k together
        pair = torch.minimum(padded.narrow(2, reach - k, h), padded.narrow(2, reach + k, h))
        torch.minimum(out, pair.add_(float(k * k)), out=out)
    f = out
    return f.sqrt_().clamp_(max=float(limit))


def equalize_hist(t: torch.Tensor) -> torch.Tensor:
    """``cv2.equalizeHist`` of every (N, 1, H, W) uint8-valued plane (values 0..255 as floats)."""
    n = t.shape[0]
    v = t.reshape(n, -1).long().clamp_(0, 255)
    hist = torch.zeros(n, 256, dtype=torch.float64, device=t.device).scatter_add_(
        1, v, torch.ones_like(v, dtype=torch.float64)
    )
    total = float(v.shape[1])
    first = (hist > 0).to(torch.int64).argmax(dim=1, keepdim=True)
    first_count = hist.gather(1, first)
    cdf = hist.cumsum(dim=1) - first_count  # counts above the first occupied bin
    scale = 255.0 / (total - first_count).clamp_min(1.0)
    lut = torch.round(cdf * scale).clamp_(0, 255)
    lut = torch.where(torch.arange(256, device=t.device)[None, :] <= first, torch.zeros_like(lut), lut)
    constant = first_count >= total
    lut = torch.where(constant, first.to(lut.dtype).expand_as(lut), lut)
    return lut.gather(1, v).to(t.dtype).reshape(t.shape)


@functools.lru_cache(maxsize=16)
def _emboss_matrices(h: int, w: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    k = np.array(EMBOSS)
    u, s, vt = np.linalg.svd(k)
    return tuple(
        (
            filter_matrix(h, tuple((u[:, i] * s[i]).tolist()), "mirror"),
            filter_matrix(w, tuple(vt[i].tolist()), "mirror"),
        )
        for i in range(int((s > 1e-9).sum()))
    )


def _emboss(t: torch.Tensor) -> torch.Tensor:
    h, w = t.shape[-2:]
    out = torch.zeros_like(t)
    for i, (a, b) in enumerate(_emboss_matrices(h, w)):
        rows = cached_tensor(("emboss", h, w, i, "h"), lambda a=a: a, t)
        cols = cached_tensor(("emboss", h, w, i, "w"), lambda b=b: b, t)
        out += rows @ t @ cols.T
    return out


@register("spatter", "weather", random=True)
def spatter(x: torch.Tensor, p: Spatter, rng: ImageRNG) -> torch.Tensor:
    """Water drops (turquoise, shaded towards their edges) or mud drops (brown) on the image."""
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    liquid = rng.normal((1, h, w), 0, mean=p.mean, std=p.std)
    liquid = gaussian_filter(liquid, float(p.sigma), mode="nearest")
    liquid = keep_at_least(liquid, p.threshold)
    if int(p.mud) == 0:
        level = torch.floor(liquid * 255).clamp_(0, 255)  # the reference's uint8 layer
        wet = level > 0
        dist = truncated_distance(_outline(wet), SPATTER_MAX_DISTANCE)
        dist = torch.floor(_box3(dist))
        dist = equalize_hist(dist)
        dist = torch.round(_emboss(dist)).clamp_(0, 255)
        dist = _box3(dist)
        m = level * dist
        m = m / m.reshape(n, -1).amax(dim=1).clamp_min(1e-12).view(n, 1, 1, 1) * p.intensity
        color = torch.as_tensor(WATER_RGB, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x + m * color).clamp_(0, 1)
    mask = (liquid > p.threshold).to(x.dtype)
    m = gaussian_filter(mask, float(p.intensity), mode="nearest")
    m = keep_at_least(m, 0.8)
    color = torch.as_tensor(MUD_RGB, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * (1 - m) + color * m).clamp_(0, 1)
