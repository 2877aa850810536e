"""Applying a corruption: :func:`corrupt`, the one entry point that checks its input, and the chunking
that keeps large batches in cache (CPU) or bounded in memory (GPU) with results independent of the chunks."""

from __future__ import annotations

import torch

from errorset.corruptions.catalog import CORRUPTIONS, check_corruption
from errorset.corruptions.rng import ImageRNG, draw_seed, salt_of, splitmix64
from errorset.corruptions.tables import TABLES, check_severity, severity_params
from errorset.errors import ConfigError

#: smallest image side :func:`corrupt` accepts
MIN_SIDE = 8
#: on CPUs, batches are corrupted in chunks of about this many values (N * 3 * H * W), which keeps
#: the working set in the processor's caches (1.5-2x faster than whole large batches)
CPU_CHUNK_VALUES = 1 << 19
#: on GPUs, chunks bound the memory of the intermediate tensors
GPU_CHUNK_VALUES = 1 << 26


def chunk_images(limit: int, values_per_image: int) -> int:
    """Images per chunk: the largest power of 2 whose images hold at most ``limit`` values (at least 1).

    A power of 2 at least as large as the random fields' blocks (see
    :mod:`errorset.corruptions.rng`) makes aligned chunks cover whole
    blocks, so no chunk draws numbers for images outside it.
    """
    fit = max(1, limit // max(1, values_per_image))
    return 1 << (fit.bit_length() - 1)


def aligned_chunks(start_index: int, n: int, chunk: int) -> list[tuple[int, int]]:
    """``(i, j)`` ranges of a batch of ``n`` images whose set indices ``start_index + i`` ... are cut
    at multiples of ``chunk``."""
    out = []
    i = 0
    while i < n:
        j = min(n, i + chunk - (start_index + i) % chunk)
        out.append((i, j))
        i = j
    return out


def check_images(x: object, parameter: str = "x", *, values: bool = True) -> torch.Tensor:
    """Check that ``x`` is a float N x C x H x W batch in [0,1] with 1 or 3 channels
    (``values=False``: everything but the range of the values)."""
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{parameter}: expected a torch.Tensor of images, got {type(x).__name__}")
    if x.ndim != 4:
        raise ConfigError(f"{parameter}: expected an N x C x H x W batch, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        hint = " (use x.float() / 255)" if x.dtype == torch.uint8 else ""
        raise ConfigError(f"{parameter}: expected floating-point images in [0,1], got dtype {x.dtype}{hint}")
    if x.shape[1] not in (1, 3):
        raise ConfigError(f"{parameter}: expected 1 or 3 channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    if min(x.shape[2:]) < MIN_SIDE:
        raise ConfigError(
            f"{parameter}: expected images of at least {MIN_SIDE} x {MIN_SIDE} pixels, got {x.shape[2]} x {x.shape[3]}"
        )
    if values and not _in_unit_range(x):
        lo, hi = torch.aminmax(x.detach())
        raise ConfigError(f"{parameter}: expected values in [0,1], got values from {float(lo):g} to {float(hi):g}")
    return x


def _in_unit_range(x: torch.Tensor) -> bool:
    """All values of ``x`` in [0,1] (False for NaN)."""
    if not x.numel():
        return True
    lo, hi = torch.aminmax(x.detach())
    return bool(lo >= 0.0) and bool(hi <= 1.0)


def corrupt(
    x: torch.Tensor,
    name: str,
    severity: int,
    table: str = "cifar10",
    generator: torch.Generator | None = None,
    *,
    start_index: int = 0,
) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` to a batch of images.

    Args:
        x: float images in [0,1], N x C x H x W with C = 1 or 3, any device and
            floating dtype, at least 8 x 8 pixels.
        name: one of :data:`~errorset.corruptions.catalog.ALL_CORRUPTIONS` (the 15 benchmark corruptions and 4 extra).
        severity: 1 (mild) to 5 (strongest).
        table: which generator's constants: ``"cifar10"`` (CIFAR-10-C, made
            for 32x32) or ``"imagenet"`` (ImageNet-C, made for 224x224); see
            :mod:`errorset.corruptions.tables`.
        generator: source of randomness; one number is drawn from it per call
            (None: torch's global generator). Use a CPU generator for results
            that do not depend on the device.
        start_index: the index of ``x[0]`` in the whole set: image ``i`` is
            corrupted with randomness keyed by ``start_index + i``, so a set
            corrupted chunk by chunk (each chunk with the same generator seed
            and its own start index) equals the set corrupted at once.

    Returns:
        The corrupted images: same shape, dtype and device, values in [0,1].
        One-channel images are corrupted as gray RGB and converted back with
        BT.601 luma weights.

    Raises:
        UnknownNameError: ``name`` or ``table`` is not known (the message lists the valid ones).
        ConfigError: severity outside 1-5, or ``x`` is not a float N x C x H x W
            batch in [0,1] (uint8 images, a wrong shape or out-of-range values).
    """
    check_corruption(name)
    severity = check_severity(severity)
    TABLES.check(table)
    check_images(x, values=False)  # the values are checked chunk by chunk, while each is in cache
    c = CORRUPTIONS.get(name)
    params = severity_params(table, name, severity)
    seed = draw_seed(generator)
    if x.shape[0] == 0:
        return x.clone()
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    n, channels, h, w = x.shape
    key = splitmix64(seed, salt_of(f"{name}/{severity}"))
    limit = (GPU_CHUNK_VALUES if x.device.type == "cuda" else CPU_CHUNK_VALUES) * c.chunk_scale
    chunk = chunk_images(limit, 3 * h * w)
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    for i, j in aligned_chunks(start_index, n, chunk):
        xin = x[i:j].detach().to(work)
        if not _in_unit_range(xin):
            check_images(x)  # raises, naming the whole batch's range
        if channels == 1:
            xin = xin.expand(-1, 3, -1, -1)
        rng = ImageRNG(key, xin.shape[0], start_index + i, x.device, work) if c.random else None
        y = c.fn(xin.contiguous(), params, rng)  # type: ignore[arg-type]
        if channels == 1:
            y = 0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]
        if y.dtype == out.dtype:
            torch.clamp(y, 0, 1, out=out[i:j])  # copy and clamp in one pass, while the chunk is in cache
        else:
            out[i:j] = y.clamp(0, 1)
    return out
