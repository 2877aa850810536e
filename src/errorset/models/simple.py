"""Models for small inputs: ``linear`` (multinomial logistic regression) and ``mlp``."""

from __future__ import annotations

import math

from torch import nn

from errorset.models.registry import MODELS


@MODELS.register("linear", channels_last=False)
def linear(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """A linear classifier on the flattened image."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


@MODELS.register("mlp", channels_last=False)
def mlp(input_shape: tuple[int, int, int], num_classes: int, hidden: int = 256) -> nn.Module:
    """Two hidden ReLU layers of ``hidden`` units on the flattened image."""
    d = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(d, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )
