from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm
from torch import nn

from errorset.errors import ConfigError
from errorset.measure import accuracy_in_noise


class BinaryLinear(nn.Module):
    """logits [0, w.x + b]: the error set is the half space on the wrong side of a hyperplane."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w.flatten())
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(f), f], 1)


@pytest.mark.parametrize("dim", [16, 3 * 32 * 32])
def test_accuracy_in_noise_matches_the_closed_form_for_linear_models(dim):
    g = torch.Generator().manual_seed(dim)
    w = torch.randn(dim, generator=g)
    model = BinaryLinear(w, 0.1)
    x = torch.rand(2000, dim, generator=g)
    f = (x @ w + 0.1).detach()
    flip = torch.rand(2000, generator=g) < 0.1  # 10% of the labels disagree with the model
    y = ((f > 0) ^ flip).long()
    sign = (2 * y - 1).float()
    sigmas = [0.0, 0.05, 0.2, 1.0]
    result = accuracy_in_noise(
        model, x, y, sigmas, trials=10, batch_size=256, generator=torch.Generator().manual_seed(0)
    )
    for s, mean, std in zip(sigmas, result.mean, result.std, strict=True):
        if s == 0:
            p = (sign * f > 0).float()
        else:
            p = torch.from_numpy(norm.cdf((sign * f / (s * w.norm())).numpy())).float()
        expected = p.mean().item()
        # standard error of a mean over 10 trials of 2000 Bernoulli draws
        se = math.sqrt((p * (1 - p)).sum().item()) / 2000 / math.sqrt(10)
        assert abs(mean.item() - expected) <= 4 * se + 1e-6, (s, mean.item(), expected, se)
        if s == 0:
            assert std.item() == 0.0
    assert result.per_trial.shape == (4, 10)
    assert result.rows()[1]["sigma"] == pytest.approx(0.05)


def test_accuracy_in_noise_is_reproducible_and_restores_the_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).train()
    x, y = torch.rand(50, 1, 3, 4), torch.randint(0, 3, (50,))
    a = accuracy_in_noise(model, x, y, [0.3], trials=3, generator=torch.Generator().manual_seed(1))
    b = accuracy_in_noise(model, x, y, [0.3], trials=3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.per_trial, b.per_trial)
    assert model.training


def test_uint8_images_are_read_as_pixels():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x8 = torch.randint(0, 256, (20, 1, 2, 2), dtype=torch.uint8)
    y = torch.randint(0, 2, (20,))
    a = accuracy_in_noise(model, x8, y, [0.0], trials=1)
    b = accuracy_in_noise(model, x8.float() / 255, y, [0.0], trials=1)
    torch.testing.assert_close(a.mean, b.mean)


@pytest.mark.parametrize(
    ("sigmas", "trials", "message"),
    [([], 10, "sigmas: expected a non-empty list"), ([-0.1], 10, "sigmas: expected"), ([0.1], 0, "trials: expected")],
)
def test_bad_arguments(sigmas, trials, message):
    model = nn.Linear(4, 2)
    with pytest.raises(ConfigError, match=message):
        accuracy_in_noise(model, torch.rand(3, 4), torch.zeros(3, dtype=torch.long), sigmas, trials)
