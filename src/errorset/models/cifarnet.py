"""A compact CIFAR network for CPU budgets: ``cifarnet<w>`` (e.g. ``cifarnet32``).

The ideas of the fastest public CIFAR-10 training work (Keller Jordan's
airbench, after David Page's and tysam-code's), written anew for errorset:

- a first 2x2 convolution initialised from the training images as a whitening
  transform (the eigenvectors of the 2x2-patch covariance scaled to unit
  variance, and their negatives) and kept fixed: the network starts from
  decorrelated inputs, which saves epochs;
- three blocks of conv3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv3x3 ->
  BatchNorm -> GELU with ``w``, ``2w`` and ``4w`` channels: pooling early
  keeps most of the compute at low resolution;
- BatchNorm whose scale is fixed at 1 (only the shift is learned), global
  max pooling and a linear head whose logits are scaled down (by 1/9), which
  keeps the short, high-learning-rate schedule stable.

No test-time augmentation anywhere: the network that is trained is the one
that is measured. ``cifarnet32`` has 0.3M parameters; trained with the
``cpu`` profile's recipe (label smoothing, warm-up then linear decay; see
:mod:`errorset.profiles`) it is the default CIFAR-10 model of that profile.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from errorset.errors import ConfigError
from errorset.models.registry import MODELS

#: channels of the whitening convolution: 12 eigen-filters of 2x2x3 patches and their negatives
WHITEN_CHANNELS = 24
#: logits = head(features) * LOGIT_SCALE
LOGIT_SCALE = 1 / 9


class ShiftBatchNorm(nn.BatchNorm2d):
    """BatchNorm with its scale fixed at 1: only the shift (bias) is trained."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, momentum=0.4, eps=1e-12)
        self.weight.requires_grad_(False)


class ConvBlock(nn.Module):
    """conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU; halves the resolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = ShiftBatchNorm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = ShiftBatchNorm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.bn2(self.conv2(x)))


class CifarNet(nn.Module):
    """Whitening stem, three :class:`ConvBlock` s of ``width``, ``2 width``, ``4 width`` channels, max-pool, linear."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        # buffers, not parameters: the whitening is fixed (also after a checkpoint is loaded)
        stem = 2 * 4 * in_channels
        self.register_buffer("whiten_weight", nn.init.kaiming_normal_(torch.empty(stem, in_channels, 2, 2)))
        self.register_buffer("whiten_bias", torch.zeros(stem))
        widths = (width, 2 * width, 4 * width)
        blocks, c = [], stem
        for w in widths:
            blocks.append(ConvBlock(c, w))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, num_classes, bias=False)
        for m in self.blocks.modules():
            if isinstance(m, nn.Conv2d) and m.in_channels <= m.out_channels:
                # identity on the first input channels: each block starts close to passing its input on
                with torch.no_grad():
                    nn.init.dirac_(m.weight[: m.in_channels])

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first convolution to whiten 2x2 patches of ``x`` (normalised training images, N x C x H x W).

        Filters: the eigenvectors of the patch covariance divided by sqrt(eigenvalue + ``eps``), and their
        negatives, so that GELU passes both signs; the bias centres the patches. Both are buffers: fixed.
        """
        c = self.whiten_weight.shape[1]
        patches = x.float().unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 4 * c).double()
        mean = patches.mean(0)
        centred = patches - mean
        values, vectors = torch.linalg.eigh(centred.T @ centred / len(centred))
        filters = (vectors.T / torch.sqrt(values.clamp_min(0) + eps)[:, None]).flip(0)  # largest variance first
        weight = torch.cat([filters, -filters]).reshape(self.whiten_weight.shape)
        self.whiten_weight.copy_(weight.float())
        self.whiten_bias.copy_(-(weight.flatten(1) @ mean).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.gelu(F.conv2d(x, self.whiten_weight, self.whiten_bias)))
        return self.head(F.adaptive_max_pool2d(x, 1).flatten(1)) * LOGIT_SCALE


@MODELS.register_pattern(r"cifarnet(?P<width>\d+)", example="cifarnet<width> (e.g. cifarnet32)", channels_last=True)
def cifarnet(input_shape: tuple[int, int, int], num_classes: int, *, width: str) -> nn.Module:
    c, h, w = input_shape
    if int(width) < 1:
        raise ConfigError(f"model.name: cifarnet needs a width >= 1, got {width}")
    if min(h, w) < 16:
        raise ConfigError(f"model.name: cifarnet needs images of at least 16x16 pixels, got {h}x{w}")
    return CifarNet(c, num_classes, int(width))
