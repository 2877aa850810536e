"""Per-image error rate in Gaussian noise (Ford et al. 2019, Figure 20)."""

from __future__ import annotations

import torch
from torch import nn

from errorset.data.batches import check_unit_images, to_float
from errorset.errors import ConfigError
from errorset.measure.common import eval_mode, image_batches, misclassified
from errorset.progress import bar


@torch.no_grad()
def error_rate_in_noise(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float | torch.Tensor,
    n_samples: int = 1000,
    *,
    batch_size: int = 1024,
    clip: bool = False,
    generator: torch.Generator | None = None,
    memory_budget: int = 2**27,
    progress: bool = False,
) -> torch.Tensor:
    """The fraction of ``n_samples`` noisy copies ``x_i + sigma * N(0, I)`` that ``model`` misclassifies.

    Args:
        model: maps images in [0,1] to logits (evaluated in eval mode).
        x: (N, C, H, W) clean images (uint8, or float in [0,1]).
        y: (N,) labels.
        sigma: noise scale in [0,1] pixel units: a number or one per image (N,).
        n_samples: noisy copies per image; the estimate's standard error is
            sqrt(mu (1 - mu) / n_samples).
        batch_size: noisy images per forward pass.
        clip: clip noisy images to [0,1] (off: the paper's noise is unclipped).
        generator: noise source (on the model's device) for reproducible results.
        memory_budget: at most this many noise values are held at once.

    Returns:
        (N,) error rates in [0,1] on the CPU.
    """
    check_unit_images(x, "x")

    if not isinstance(n_samples, int) or n_samples < 1:
        raise ConfigError(f"n_samples: expected an integer >= 1, got {n_samples!r}")
    sig = torch.as_tensor(sigma, dtype=torch.float32)
    sig = sig.expand(x.shape[0]) if sig.ndim == 0 else sig
    if sig.shape != (x.shape[0],) or (sig < 0).any() or not torch.isfinite(sig).all():
        raise ConfigError(f"sigma: expected a number >= 0 or one per image, got {sigma!r}")
    with eval_mode(model) as device:
        sig = sig.to(device)
        gdev = generator.device if generator is not None else device
        rates = torch.empty(x.shape[0])
        batches = image_batches(x.shape[0], x[0].numel(), n_samples, memory_budget)
        for sl in bar(batches, desc="error rate in noise", enabled=progress):
            xb = to_float(x[sl].to(device))
            noise = torch.randn((xb.shape[0], n_samples, *xb.shape[1:]), generator=generator, device=gdev).to(device)
            wrong = misclassified(model, xb, y[sl].to(device), sig[sl], noise, batch_size=batch_size, clip=clip)
            rates[sl] = wrong.float().mean(1).cpu()
    return rates
