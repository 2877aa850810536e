"""Accuracy in additive Gaussian noise (Ford et al. 2019, Figure 7 and Tables 5-6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from errorset.data.batches import check_unit_images, to_float
from errorset.errors import ConfigError
from errorset.measure.common import eval_mode
from errorset.progress import bar


@dataclass
class NoiseAccuracy:
    """Accuracy under x + N(0, sigma^2 I) for each sigma, over independent noise trials.

    Attributes:
        sigmas: (S,) noise standard deviations in [0,1] pixel units.
        mean: (S,) accuracy averaged over trials.
        std: (S,) sample standard deviation over trials (0 for one trial).
        per_trial: (S, T) accuracy of each trial.
    """

    sigmas: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    per_trial: torch.Tensor

    def rows(self) -> list[dict[str, float]]:
        """One ``{"sigma", "accuracy", "std"}`` record per sigma (for CSV and tables)."""
        return [
            {"sigma": float(s), "accuracy": float(m), "std": float(d)}
            for s, m, d in zip(self.sigmas, self.mean, self.std, strict=True)
        ]


@torch.no_grad()
def accuracy_in_noise(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor,
    trials: int = 10,
    *,
    batch_size: int = 500,
    clip: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> NoiseAccuracy:
    """Accuracy of ``model`` on ``x + sigma * N(0, I)`` for every sigma, ``trials`` times each.

    Args:
        model: maps images in [0,1] to logits; evaluated in eval mode.
        x: clean images (uint8, or float in [0,1]), N x C x H x W.
        y: labels (N,).
        sigmas: noise standard deviations in [0,1] pixel units (>= 0).
        trials: independent noise draws per sigma (the paper uses 10).
        batch_size: images per forward pass.
        clip: clip noisy images to [0,1] before classifying (off by default:
            the paper's noise, like its theory, is unclipped).
        generator: source of noise (on the model's device or CPU) for reproducibility.

    Returns:
        :class:`NoiseAccuracy` with mean and standard deviation over trials.
    """
    check_unit_images(x, "x")

    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if sig.numel() == 0 or (sig < 0).any() or not torch.isfinite(sig).all():
        raise ConfigError(f"sigmas: expected a non-empty list of numbers >= 0, got {sigmas!r}")
    if trials < 1:
        raise ConfigError(f"trials: expected an integer >= 1, got {trials!r}")
    if x.shape[0] != y.shape[0]:
        raise ConfigError(f"x, y: {x.shape[0]} images but {y.shape[0]} labels")
    with eval_mode(model) as device:
        gdev = generator.device if generator is not None else device
        correct = torch.zeros(len(sig), trials, dtype=torch.long, device=device)
        y = y.to(device)
        for i in bar(range(0, x.shape[0], batch_size), desc="noise", enabled=progress):
            xb = to_float(x[i : i + batch_size].to(device))
            yb = y[i : i + batch_size]
            for s, sigma in enumerate(sig.tolist()):
                for t in range(trials):
                    noise = torch.randn(xb.shape, generator=generator, device=gdev).to(device)
                    noisy = xb + sigma * noise
                    if clip:
                        noisy = noisy.clamp(0.0, 1.0)
                    correct[s, t] += (model(noisy).argmax(1) == yb).sum()
    per_trial = correct.float().cpu() / max(x.shape[0], 1)
    std = per_trial.std(dim=1, correction=1) if trials > 1 else torch.zeros(len(sig))
    return NoiseAccuracy(sigmas=sig, mean=per_trial.mean(dim=1), std=std, per_trial=per_trial)
