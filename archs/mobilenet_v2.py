"""MobileNetV2 in the layout of tonylins/pytorch-mobilenet-v2 (the glance CNN of UA-AN and UA-TSM).

State-dict keys match the ImageNet checkpoint `mobilenetv2_1.0-f2a8633.pth.tar` that the original loads:
`features.0.{0,1}` (stem conv+BN), `features.{1..17}.conv.*` (inverted residual blocks),
`features.18.{0,1}` (1x1 conv to 1280), `classifier` (Linear(1280, num_classes)).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# (expand ratio t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper.
_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(x: float, divisor: int = 8) -> int:
    """Returns `x` rounded up to a multiple of `divisor` (tonylins rounding)."""
    return int(math.ceil(x / divisor) * divisor)


def _conv_bn_relu6(inp: int, oup: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Inverted residual block; `conv` has 5 entries (expand 1) or 8 entries (expand > 1).

    TSM relies on `len(conv) == 8` and `use_res_connect` to pick the blocks whose `conv[0]` is shifted.
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        hidden = int(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [
                nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU6(inplace=True),
            ]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, oup, H/stride, W/stride)."""
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2; `features(x (N, 3, H, W)) -> (N, last_channel, H/32, W/32)` ((N, 1280, 7, 7) at 224).

    `width_mult` follows tonylins: it scales the channels of the expanded stages (t > 1), keeps the stem at 32
    and the first stage at 16, and scales the last 1x1 conv only when > 1. `last_channel` overrides the final
    width (used for tiny test/demo models; the original is always 1280).
    """

    def __init__(
        self, num_classes: int = 1000, width_mult: float = 1.0, last_channel: int | None = None
    ) -> None:
        super().__init__()
        input_channel = 32
        if last_channel is None:
            last_channel = make_divisible(1280 * width_mult) if width_mult > 1.0 else 1280
        self.last_channel = last_channel
        features: list[nn.Module] = [_conv_bn_relu6(3, input_channel, 3, 2)]
        for t, c, n, s in _SETTING:
            out_channel = make_divisible(c * width_mult) if t > 1 else c
            for i in range(n):
                features.append(InvertedResidual(input_channel, out_channel, s if i == 0 else 1, t))
                input_channel = out_channel
        features.append(_conv_bn_relu6(input_channel, last_channel, 1, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Linear(last_channel, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # Same distributions as tonylins: conv N(0, sqrt(2 / (k*k*out))), BN (1, 0), Linear N(0, 0.01).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    @property
    def feature_dim(self) -> int:
        """Channels of the feature map (1280 for the standard model)."""
        return self.last_channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits (N, num_classes) for images (N, 3, H, W): features -> spatial mean -> classifier."""
        return self.classifier(self.features(x).mean((2, 3)))


def mobilenet_v2(
    num_classes: int = 1000, width_mult: float = 1.0, last_channel: int | None = None
) -> MobileNetV2:
    """Returns a randomly initialised MobileNetV2 (load ImageNet weights with `archs.load_weights`)."""
    return MobileNetV2(num_classes=num_classes, width_mult=width_mult, last_channel=last_channel)
