"""The classifier wrapper: inputs in [0,1] pixel space, normalisation inside.

Every model errorset trains or evaluates is a :class:`Classifier`: it takes
float images in [0,1] (N x C x H x W) and returns logits. Normalisation by the
training set's per-channel mean and standard deviation happens inside, so a
noise sigma or an attack epsilon means the same thing for every model, as in
the paper (and as in MadryLab's robustness library).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Classifier(nn.Module):
    """``logits = net((x - mean) / std)`` for images ``x`` in [0,1].

    Args:
        net: the network on normalised inputs.
        spec: everything needed to build ``net`` again (name, input shape,
            number of classes, mean, std); stored in checkpoints.
        channels_last: run convolutional nets in channels-last memory format,
            which is faster on CPUs and on GPUs with mixed precision.
    """

    def __init__(self, net: nn.Module, spec: dict[str, Any], *, channels_last: bool = False) -> None:
        super().__init__()
        self.net = net
        self.spec = dict(spec)
        c = spec["input_shape"][0]
        self.register_buffer("mean", torch.tensor(spec["mean"], dtype=torch.float32).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(spec["std"], dtype=torch.float32).view(1, c, 1, 1))
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.spec["input_shape"])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return int(self.spec["num_classes"])

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> bool:
        """Initialise the network from training images ``x`` in [0,1], if it has a data-dependent initialisation.

        Networks that define ``init_from_data(normalised_images)`` (e.g. the whitening stem of
        :mod:`~errorset.models.cifarnet`) get the images normalised as in :meth:`forward`.
        Returns whether the network had one. Fresh training runs call this once, before the
        first step; a resumed run's checkpoint already holds the result.
        """
        init = getattr(self.net, "init_from_data", None)
        if init is None:
            return False
        init((x.to(self.device, torch.float32) - self.mean) / self.std)
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)
