"""Wide residual networks (Zagoruyko & Komodakis 2016): ``wrn<depth>_<width>``.

``wrn28_10`` is the CIFAR-10 model of Ford et al. (2019) and of Madry et al.
(2018): pre-activation basic blocks in three stages of 16k, 32k and 64k
channels, (depth - 4) / 6 blocks each, no dropout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from errorset.errors import ConfigError
from errorset.models.registry import MODELS


class WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = self.conv2(F.relu(self.bn2(o)))
        return o + skip


class WideResNet(nn.Module):
    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 or width < 1:
            raise ConfigError(
                f"model.name: a WRN needs depth 6n+4 >= 10 and width >= 1 (e.g. wrn28_10, wrn16_4), "
                f"got depth {depth}, width {width}"
            )
        n = (depth - 4) // 6
        widths = (16 * width, 32 * width, 64 * width)
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        c = 16
        for stage, c_out in enumerate(widths):
            for i in range(n):
                blocks.append(WideBlock(c, c_out, 2 if (i == 0 and stage > 0) else 1))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@MODELS.register_pattern(
    r"wrn(?P<depth>\d+)_(?P<width>\d+)", example="wrn<depth>_<width> (e.g. wrn28_10)", channels_last=True
)
def wide_resnet(input_shape: tuple[int, int, int], num_classes: int, *, depth: str, width: str) -> nn.Module:
    return WideResNet(int(depth), int(width), input_shape[0], num_classes)
