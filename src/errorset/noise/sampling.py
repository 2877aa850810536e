"""Classify many Gaussian perturbations of many images in large batches."""

from __future__ import annotations

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for parameterless modules)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def misclassified(
    model: nn.Module,
    x0: torch.Tensor,
    y: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    *,
    images: torch.Tensor | None = None,
    batch_size: int = 1024,
    clip: bool = False,
) -> torch.Tensor:
    """Which noisy points ``x0[i] + sigma[i] * noise[i, j]`` the model gets wrong.

    Args:
        x0: (B, C, H, W) clean images in [0,1], on the model's device.
        y: (B,) labels.
        sigma: (B,) noise scale per image.
        noise: (B, S, C, H, W) standard normal directions (kept across calls
            for common random numbers).
        images: indices of the images to evaluate (default: all B).
        batch_size: noisy images per forward pass.
        clip: clip noisy images to [0,1].

    Returns:
        (len(images), S) boolean tensor, True where the prediction differs from ``y``.
    """
    b, s = noise.shape[:2]
    dev = x0.device
    idx = images if images is not None else torch.arange(b, device=dev)
    owner = idx.repeat_interleave(s)  # image of each (image, sample) row
    rows = owner * s + torch.arange(s, device=dev).repeat(len(idx))  # its row in the flattened noise
    flat_noise = noise.reshape(b * s, *noise.shape[2:])
    view = [-1] + [1] * (x0.ndim - 1)
    out = torch.empty(len(rows), dtype=torch.bool, device=dev)
    for start in range(0, len(rows), batch_size):
        img = owner[start : start + batch_size]
        z = flat_noise.index_select(0, rows[start : start + batch_size]).to(x0.dtype)
        noisy = x0.index_select(0, img) + sigma.index_select(0, img).view(view).to(x0.dtype) * z
        if clip:
            noisy = noisy.clamp(0.0, 1.0)
        out[start : start + len(img)] = model(noisy).argmax(1) != y.index_select(0, img)
    return out.view(len(idx), s)


def image_batches(n_images: int, per_image_elements: int, n_samples: int, budget: int) -> list[slice]:
    """Split ``range(n_images)`` so that a batch's noise (images x samples x elements) fits ``budget`` floats."""
    per_batch = max(1, budget // max(1, per_image_elements * n_samples))
    return [slice(i, min(i + per_batch, n_images)) for i in range(0, n_images, per_batch)]
