"""Small seeded models trained in seconds, for tests that need a trained nonlinear classifier.

``digits_mlp``      a 64-128-10 ReLU MLP on scikit-learn's 8x8 digits (flat inputs in [0,1])
``digits_convnet``  a CIFAR-shaped (3 x 32 x 32) conv net with BatchNorm on the same digits, upscaled 4x and
                    tinted per image: the shape and layers of a CIFAR model without needing CIFAR-10

Both are trained full batch with Adam from a fixed seed on the first 1,400 digits and returned in eval mode
with the held-out digits (float32 in [0,1]). Nothing here reads ../shared.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

TRAIN = 1400


@functools.cache
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.data, dtype=torch.float32) / 16, torch.tensor(d.target)


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr)
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@functools.cache
def digits_mlp(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The MLP (91.7% test accuracy) and the 397 held-out digits as (N, 64) floats."""
    x, y = _digits()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    _fit(model, x[:TRAIN], y[:TRAIN], steps=150, lr=1e-2)
    return model, x[TRAIN:], y[TRAIN:]


def cifar_shaped(x: torch.Tensor, seed: int) -> torch.Tensor:
    """8x8 digits as 3 x 32 x 32 images: upscaled 4x (nearest), each image tinted by a random colour."""
    g = torch.Generator().manual_seed(seed)
    gray = F.interpolate(x.view(-1, 1, 8, 8), scale_factor=4, mode="nearest")
    tint = 0.5 + 0.5 * torch.rand(x.shape[0], 3, 1, 1, generator=g)
    return (gray * tint).clamp(0, 1)


class TinyConvNet(nn.Module):
    """conv(3->8, stride 2)-BN-ReLU, conv(8->16, stride 2)-BN-ReLU, linear(16*8*8 -> 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        self.head = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


@functools.cache
def digits_convnet(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The conv net (92.4% test accuracy) and the held-out digits as (N, 3, 32, 32) images."""
    x, y = _digits()
    images = cifar_shaped(x, seed)
    torch.manual_seed(seed)
    model = _fit(TinyConvNet(), images[:TRAIN], y[:TRAIN], steps=60, lr=1e-2)
    return model, images[TRAIN:], y[TRAIN:]
