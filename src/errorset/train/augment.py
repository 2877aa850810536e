"""Gaussian data augmentation as in Ford et al. (2019)."""

from __future__ import annotations

import torch


def gaussian_augment(
    x: torch.Tensor,
    sigma_max: float,
    *,
    generator: torch.Generator | None = None,
    clip: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add Gaussian noise with a per-image standard deviation sigma ~ U(0, sigma_max).

    Each call draws fresh sigmas and fresh noise, so every minibatch sees new
    noise (the paper's scheme). Units are [0,1] pixel units.

    Args:
        x: images in [0,1], N x C x H x W (any float dtype and device).
        sigma_max: upper end of the uniform distribution of sigma (>= 0).
        generator: source of randomness, on x's device or the CPU.
        clip: clip the noisy images to [0,1] (off by default, as in the paper).

    Returns:
        (noisy images, the per-image sigmas of shape (N,)).
    """
    if not sigma_max >= 0:
        raise ValueError(f"sigma_max: expected a number >= 0, got {sigma_max!r}")
    dev = generator.device if generator is not None else x.device
    n = x.shape[0]
    sigma = torch.rand(n, generator=generator, device=dev, dtype=torch.float32).to(x.device) * sigma_max
    noise = torch.randn(x.shape, generator=generator, device=dev, dtype=torch.float32).to(x.device)
    noisy = x + noise.to(x.dtype) * sigma.to(x.dtype).view(n, *([1] * (x.ndim - 1)))
    if clip:
        noisy = noisy.clamp(0.0, 1.0)
    return noisy, sigma
