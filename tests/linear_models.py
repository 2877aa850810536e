"""Linear classifiers whose error sets are known exactly: the ground truth of the paper's measurements."""

from __future__ import annotations

import torch
from torch import nn


class BinaryLinear(nn.Module):
    """Logits ``[0, w.x + b]``: the error set of a point is the half space beyond the hyperplane w.x + b = 0."""

    def __init__(self, w: torch.Tensor, b: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(w.flatten().clone())
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(f), f], 1)

    def signed_margin(self, x: torch.Tensor) -> torch.Tensor:
        """w.x + b (positive: class 1)."""
        return (x.flatten(1) @ self.w + self.b).detach()

    def distance(self, x: torch.Tensor, norm: str = "l2") -> torch.Tensor:
        """Exact distance from each point to the decision boundary (L2 or L-inf)."""
        dual = self.w.norm() if norm == "l2" else self.w.abs().sum()
        return (self.signed_margin(x).abs() / dual).detach()


def multiclass_linear(dim: int, classes: int, generator: torch.Generator) -> nn.Module:
    """A bias-free multiclass linear model on flattened inputs."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(dim, classes, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(classes, dim, generator=generator))
    return model


def multiclass_distance(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact L2 distance from each point to the nearest boundary between its class y and another class."""
    w = model[1].weight.detach()
    z = model(x).detach()
    zy = z.gather(1, y[:, None])
    diff = (w[y][:, None, :] - w[None, :, :]).norm(dim=2)  # ||w_y - w_j||
    d = (zy - z) / diff.clamp_min(1e-12)
    d[torch.arange(len(y)), y] = float("inf")
    return d.min(1).values
