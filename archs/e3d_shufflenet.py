"""The ShuffleNets of Efficient-3DCNNs: 3D-ShuffleNet (V1) and 3D-ShuffleNetV2, with the original module names
(see archs/e3d_common.py for the interface).

Width rules copied literally: ShuffleNet's stage widths `int(c * width_mult)` of a table per group count, and the
first 1x1x1 conv of a block is ungrouped only when its input has exactly 24 channels (so only at width 1.0; the
original's rule, not the paper's intent); ShuffleNetV2 takes its widths from a table per width multiplier (the
stem has 24 channels at every width); the branch keys are spelled `banch1` / `banch2`, as the original.
"""

from __future__ import annotations

import torch
from torch import nn

from .e3d_common import ClipNet, channel_shuffle, conv_1x1x1_bn, conv_bn, sized, stride3

# ShuffleNet (V1) stage widths per group count; ShuffleNetV2 stage widths per width multiplier.
SHUFFLENET_WIDTHS = {1: (24, 144, 288, 567), 2: (24, 200, 400, 800), 3: (24, 240, 480, 960)}
SHUFFLENET_WIDTHS.update({4: (24, 272, 544, 1088), 8: (24, 384, 768, 1536)})
SHUFFLENETV2_WIDTHS = {
    0.25: (24, 32, 64, 128, 1024),
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 224, 488, 976, 2048),
}


class ShuffleBottleneck(nn.Module):
    """ShuffleNet unit (`conv1 bn1 conv2 bn2 conv3 bn3`); stride 2 concatenates an average-pooled shortcut."""

    def __init__(self, inp: int, oup: int, stride: int, groups: int, temporal_stride: bool) -> None:
        super().__init__()
        self.stride, self.groups = stride, groups
        mid = oup // 4
        if stride == 2:
            oup -= inp
        g = 1 if inp == 24 else groups  # the original's rule, literally (grouped unless exactly 24 inputs)
        s = stride3(stride, temporal_stride)
        self.conv1 = nn.Conv3d(inp, mid, 1, groups=g, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, 3, s, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, oup, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm3d(oup)
        if stride == 2:
            kt = 2 if temporal_stride else 1
            self.shortcut = nn.AvgPool3d((kt, 3, 3), s, (0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = channel_shuffle(torch.relu(self.bn1(self.conv1(x))), self.groups)
        out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
        return torch.relu(torch.cat([out, self.shortcut(x)], 1) if self.stride == 2 else out + x)


class ShuffleNet3D(ClipNet):
    """3D-ShuffleNet (V1): `conv1` stem + max-pool, `layer1..3` (4/8/4 units), `classifier`."""

    def __init__(
        self, num_classes: int = 600, width_mult: float = 1.0, groups: int = 3, temporal_stride: bool = True
    ) -> None:
        super().__init__()
        if groups not in SHUFFLENET_WIDTHS:
            raise ValueError(f"ShuffleNet groups must be one of {sorted(SHUFFLENET_WIDTHS)}, got {groups}")
        widths = [int(c * width_mult) for c in SHUFFLENET_WIDTHS[groups]]
        self.conv1 = conv_bn(3, widths[0], (1, 2, 2))
        self.maxpool = nn.MaxPool3d(3, stride3(2, temporal_stride), 1)
        cin = widths[0]
        for k, (cout, n) in enumerate(zip(widths[1:], (4, 8, 4))):
            blocks = []
            for i in range(n):
                blocks.append(ShuffleBottleneck(cin, cout, 2 if i == 0 else 1, groups, temporal_stride))
                cin = cout
            self.add_module(f"layer{k + 1}", nn.Sequential(*blocks))
        self.feature_dim = cin
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(cin, num_classes))

    def featmap(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, stage-3 width, T', h, w) for x (N, 3, T, H, W)."""
        return self.layer3(self.layer2(self.layer1(self.maxpool(self.conv1(x)))))


class ShuffleV2Unit(nn.Module):
    """ShuffleNetV2 unit; the original keys spell the branches `banch1` / `banch2`."""

    def __init__(self, inp: int, oup: int, stride: int, temporal_stride: bool) -> None:
        super().__init__()
        self.stride = stride
        half = oup // 2
        s = stride3(stride, temporal_stride)
        if stride == 2:
            self.banch1 = nn.Sequential(
                nn.Conv3d(inp, inp, 3, s, 1, groups=inp, bias=False),
                nn.BatchNorm3d(inp),
                nn.Conv3d(inp, half, 1, 1, 0, bias=False),
                nn.BatchNorm3d(half),
                nn.ReLU(inplace=True),
            )
        cin = inp if stride == 2 else half
        self.banch2 = nn.Sequential(
            nn.Conv3d(cin, half, 1, 1, 0, bias=False),
            nn.BatchNorm3d(half),
            nn.ReLU(inplace=True),
            nn.Conv3d(half, half, 3, s, 1, groups=half, bias=False),
            nn.BatchNorm3d(half),
            nn.Conv3d(half, half, 1, 1, 0, bias=False),
            nn.BatchNorm3d(half),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            c = x.shape[1] // 2
            out = torch.cat([x[:, :c], self.banch2(x[:, c:])], 1)
        else:
            out = torch.cat([self.banch1(x), self.banch2(x)], 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2_3D(ClipNet):
    """3D-ShuffleNetV2: `conv1` (24 channels at every width) + max-pool, `features.0..15`, `conv_last`,
    `classifier`."""

    def __init__(self, num_classes: int = 600, width_mult: float = 1.0, temporal_stride: bool = True) -> None:
        super().__init__()
        if width_mult not in SHUFFLENETV2_WIDTHS:
            raise ValueError(
                f"ShuffleNetV2 width_mult must be one of {sorted(SHUFFLENETV2_WIDTHS)}, got {width_mult}"
            )
        widths = SHUFFLENETV2_WIDTHS[width_mult]
        self.conv1 = conv_bn(3, widths[0], (1, 2, 2))
        self.maxpool = nn.MaxPool3d(3, stride3(2, temporal_stride), 1)
        units, cin = [], widths[0]
        for cout, n in zip(widths[1:4], (4, 8, 4)):
            for i in range(n):
                units.append(ShuffleV2Unit(cin, cout, 2 if i == 0 else 1, temporal_stride))
                cin = cout
        self.features = nn.Sequential(*units)
        self.conv_last = conv_1x1x1_bn(cin, widths[4])
        self.feature_dim = widths[4]
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(widths[4], num_classes))

    def featmap(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, last width, T', h, w) for x (N, 3, T, H, W)."""
        return self.conv_last(self.features(self.maxpool(self.conv1(x))))


def shufflenet_3d(
    num_classes: int = 600,
    width_mult: float = 1.0,
    groups: int = 3,
    *,
    sample_size: int = 112,
    sample_duration: int = 16,
    temporal_stride: bool = True,
) -> ShuffleNet3D:
    """Returns 3D-ShuffleNet (paper: groups 3, widths 0.5, 1.0, 1.5, 2.0); `sample_size` / `sample_duration`
    name the clip it is meant for (the original's arguments; the head pools any size)."""
    net = ShuffleNet3D(num_classes, width_mult, groups, temporal_stride)
    return sized(net, sample_size, sample_duration)


def shufflenetv2_3d(
    num_classes: int = 600,
    width_mult: float = 1.0,
    *,
    sample_size: int = 112,
    sample_duration: int = 16,
    temporal_stride: bool = True,
) -> ShuffleNetV2_3D:
    """Returns 3D-ShuffleNetV2 (widths 0.25, 0.5, 1.0, 1.5, 2.0); see shufflenet_3d."""
    return sized(ShuffleNetV2_3D(num_classes, width_mult, temporal_stride), sample_size, sample_duration)
