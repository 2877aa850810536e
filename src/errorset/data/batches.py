"""Batching and the standard CIFAR augmentation, on whole batches on any device.

Images are kept as uint8 tensors and converted to float [0,1] per batch, so a
whole dataset sits on the device at a quarter of the memory of floats, and no
per-image Python loop runs in the training hot path.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from errorset.errors import ConfigError


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0,1] (float input is returned unchanged)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def check_unit_images(x: torch.Tensor, name: str = "x", *, allow_uint8: bool = True) -> None:
    """Raise one clear error naming ``name`` unless ``x`` holds images in [0,1]: float (or, if allowed, uint8).

    Float images in 0-255 would otherwise be measured as images 255 times brighter: every distance
    and noise scale would be off by that factor, silently.
    """
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{name}: expected a torch.Tensor of images, got {type(x).__name__}")
    if x.dtype == torch.uint8 and allow_uint8:
        return
    if not x.is_floating_point():
        accepted = "uint8 images or float images in [0,1]" if allow_uint8 else "float images in [0,1]"
        hint = " (use x.float() / 255)" if x.dtype == torch.uint8 else ""
        raise ConfigError(f"{name}: expected {accepted}, got dtype {x.dtype}{hint}")
    if x.numel():
        lo, hi = torch.aminmax(x.detach())
        if not (bool(lo >= 0) and bool(hi <= 1)):  # NaN fails both
            raise ConfigError(
                f"{name}: expected float images in [0,1] (divide 0-255 pixels by 255), "
                f"got values from {float(lo):g} to {float(hi):g}"
            )


def batch_indices(
    n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """Index tensors covering ``range(n)`` in batches (the last may be smaller)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    yield from order.split(batch_size)


def seeded_subset(n: int, k: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded random subset of ``k`` of ``n`` items (all when k is 0 or >= n)."""
    if k <= 0 or k >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:k].sort().values


def holdout_split(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted indices of a seeded held-out set of ``k`` of ``n`` items, and of the rest.

    Training with ``train.holdout = k`` never sees the held-out images, so a
    sweep can select hyperparameters on them instead of on the test set.
    """
    if k <= 0:
        return torch.empty(0, dtype=torch.long), torch.arange(n)
    if k >= n:
        from errorset.errors import ConfigError

        raise ConfigError(f"train.holdout: cannot hold out {k} of {n} training images")
    g = torch.Generator().manual_seed(seed + 7919)  # independent of seeded_subset's draws
    order = torch.randperm(n, generator=g)
    return order[:k].sort().values, order[k:].sort().values


def random_flip_crop(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flips and random crops after zero-padding by ``pad`` pixels.

    The standard CIFAR augmentation (as torchvision's ``RandomCrop(32, padding=4)``
    and ``RandomHorizontalFlip()``), for a whole N x C x H x W batch at once. The
    random draws come from the CPU ``generator`` so results do not depend on the
    device.
    """
    n, c, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dev = x.device
    x = torch.where(flip.to(dev)[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (oy[:, None] + torch.arange(h)).to(dev)  # n x h
    cols = (ox[:, None] + torch.arange(w)).to(dev)  # n x w
    batch = torch.arange(n, device=dev)[:, None, None, None]
    chan = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
