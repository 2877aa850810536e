"""Predicted labels and top-1 accuracy on clean images, batched on the model's device, in float32."""

from __future__ import annotations

import torch
from torch import nn

from errorset.data.batches import to_float
from errorset.measure.common import eval_mode


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted labels for images ``x`` (uint8 or float in [0,1]), batched, on the model's device."""
    with eval_mode(model) as device:
        out = [model(to_float(x[i : i + batch_size].to(device))).argmax(1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=device)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``, in [0,1]."""
    if x.shape[0] == 0:
        return float("nan")
    pred = predict(model, x, batch_size)
    return float((pred == y.to(pred.device)).float().mean())
