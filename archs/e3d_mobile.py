"""The mobile networks of Efficient-3DCNNs: 3D-MobileNet (V1), 3D-MobileNetV2, 3D-ShuffleNet (V1),
3D-ShuffleNetV2, 3D-SqueezeNet, with the original module names (see archs/e3d_common.py for the interface).

Width rules are the original's, copied literally: channels `int(c * width_mult)` (truncation); MobileNetV2's last
conv 1280 unless width_mult > 1 (`int(1280 * w)`); ShuffleNet's first 1x1x1 conv of a block is ungrouped only
when its input has exactly 24 channels (so only at width 1.0); ShuffleNetV2 uses a channel table per width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .e3d_common import ClipNet, channel_shuffle, conv_1x1x1_bn, conv_bn, global_pool, sized, stride3

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


class DepthwiseSeparable(nn.Module):
    """MobileNet block: depthwise 3x3x3 + BN + ReLU, pointwise 1x1x1 + BN + ReLU (`conv1 bn1 conv2 bn2`)."""

    def __init__(self, inp: int, oup: int, stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(inp, inp, 3, stride, 1, groups=inp, bias=False)
        self.bn1 = nn.BatchNorm3d(inp)
        self.conv2 = nn.Conv3d(inp, oup, 1, 1, 0, bias=False)
        self.bn2 = nn.BatchNorm3d(oup)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class MobileNet3D(ClipNet):
    """3D-MobileNet (V1): `features.0` stem (stride (1,2,2)), 13 blocks, `classifier` Dropout(0.2) + Linear."""

    def __init__(self, num_classes: int = 600, width_mult: float = 1.0, temporal_stride: bool = True) -> None:
        super().__init__()
        cin = int(32 * width_mult)
        layers: list[nn.Module] = [conv_bn(3, cin, (1, 2, 2))]
        for c, n, s in ((64, 1, 2), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 1)):
            cout = int(c * width_mult)
            for i in range(n):
                layers.append(DepthwiseSeparable(cin, cout, stride3(s if i == 0 else 1, temporal_stride)))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.feature_dim = cin
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(cin, num_classes))

    def featmap(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, int(1024 w), T', h, w) for x (N, 3, T, H, W) (T' = T/16 with temporal strides)."""
        return self.features(x)


class InvertedResidual(nn.Module):
    """MobileNetV2 block (`conv.0..7`; `conv.0..4` when expand_ratio is 1); residual iff stride 1 and inp == oup."""

    def __init__(self, inp: int, oup: int, stride: tuple[int, int, int], expand_ratio: int) -> None:
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_res_connect = stride == (1, 1, 1) and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [nn.Conv3d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm3d(hidden), nn.ReLU6(True)]
        layers += [
            nn.Conv3d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm3d(hidden),
            nn.ReLU6(True),
            nn.Conv3d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm3d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2_3D(ClipNet):
    """3D-MobileNetV2: `features.0` stem, 17 inverted residuals, `features.18` 1x1x1 conv to the last channel,
    `classifier` Dropout(0.2) + Linear. All activations are ReLU6."""

    SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2))
    SETTING += ((6, 320, 1, 1),)

    def __init__(self, num_classes: int = 600, width_mult: float = 1.0, temporal_stride: bool = True) -> None:
        super().__init__()
        cin = int(32 * width_mult)
        last = int(1280 * width_mult) if width_mult > 1.0 else 1280
        layers: list[nn.Module] = [conv_bn(3, cin, (1, 2, 2), nn.ReLU6)]
        for t, c, n, s in self.SETTING:
            cout = int(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, stride3(s if i == 0 else 1, temporal_stride), t))
                cin = cout
        layers.append(conv_1x1x1_bn(cin, last, nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.feature_dim = last
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        for m in self.modules():  # the original's init
            if isinstance(m, nn.Conv3d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2] * m.out_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def featmap(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, last channel, T', h, w) for x (N, 3, T, H, W) (T' = T/16 with temporal strides)."""
        return self.features(x)


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


class Fire(nn.Module):
    """SqueezeNet fire module: squeeze 1x1x1, expand 1x1x1 and 3x3x3 (all with bias and BN), concatenated."""

    def __init__(self, inp: int, squeeze: int, e1: int, e3: int, bypass: bool = False) -> None:
        super().__init__()
        self.use_bypass = bypass
        self.squeeze = nn.Conv3d(inp, squeeze, 1)
        self.squeeze_bn = nn.BatchNorm3d(squeeze)
        self.expand1x1 = nn.Conv3d(squeeze, e1, 1)
        self.expand1x1_bn = nn.BatchNorm3d(e1)
        self.expand3x3 = nn.Conv3d(squeeze, e3, 3, padding=1)
        self.expand3x3_bn = nn.BatchNorm3d(e3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.squeeze_bn(self.squeeze(x)))
        out = torch.cat([self.expand1x1_bn(self.expand1x1(s)), self.expand3x3_bn(self.expand3x3(s))], 1)
        return torch.relu(out + x if self.use_bypass else out)


class SqueezeNet3D(ClipNet):
    """3D-SqueezeNet v1.0 / v1.1: `features` (conv stem with bias, fire modules, max-pools) and `classifier`
    Dropout(0.5) -> 1x1x1 conv -> ReLU -> whole-map average, so the logits are >= 0 (as the original)."""

    def __init__(self, num_classes: int = 600, version: float = 1.1, temporal_stride: bool = True) -> None:
        super().__init__()
        if version not in (1.0, 1.1):
            raise ValueError(f"SqueezeNet version must be 1.0 or 1.1, got {version}")

        def pool() -> nn.Module:
            return nn.MaxPool3d(3, stride3(2, temporal_stride), 1)

        if version == 1.0:
            stem = [nn.Conv3d(3, 96, 7, (1, 2, 2), 3), nn.BatchNorm3d(96), nn.ReLU(inplace=True), pool()]
            body = [Fire(96, 16, 64, 64), Fire(128, 16, 64, 64, True), pool(), Fire(128, 32, 128, 128)]
            body += [Fire(256, 32, 128, 128, True), pool(), Fire(256, 48, 192, 192)]
            body += [Fire(384, 48, 192, 192, True), Fire(384, 64, 256, 256), pool()]
        else:
            stem = [nn.Conv3d(3, 64, 3, (1, 2, 2), 1), nn.BatchNorm3d(64), nn.ReLU(inplace=True), pool()]
            body = [Fire(64, 16, 64, 64), Fire(128, 16, 64, 64, True), pool(), Fire(128, 32, 128, 128)]
            body += [Fire(256, 32, 128, 128, True), pool(), Fire(256, 48, 192, 192)]
            body += [Fire(384, 48, 192, 192, True), pool(), Fire(384, 64, 256, 256)]
        self.features = nn.Sequential(*stem, *body, Fire(512, 64, 256, 256, True))
        self.feature_dim = 512
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Conv3d(512, num_classes, 1), nn.ReLU(inplace=True)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def featmap(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, 512, T', h, w) for x (N, 3, T, H, W)."""
        return self.features(x)

    def head_from_featmap(self, fm: torch.Tensor) -> torch.Tensor:
        """Returns logits (N, num_classes) >= 0: dropout, 1x1x1 conv, ReLU, then the whole-map average."""
        return global_pool(self.classifier(fm))

    def reset_classifier(self, num_classes: int, dropout: float = 0.5) -> None:
        """The original fine-tuning head: Dropout(0.5) -> new 1x1x1 conv -> ReLU (-> average)."""
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Conv3d(self.feature_dim, num_classes, 1), nn.ReLU(inplace=True)
        )


def mobilenet_3d(
    num_classes: int = 600,
    width_mult: float = 1.0,
    *,
    sample_size: int = 112,
    sample_duration: int = 16,
    temporal_stride: bool = True,
) -> MobileNet3D:
    """Returns 3D-MobileNet (paper widths 0.5, 1.0, 1.5, 2.0); `sample_size` / `sample_duration` name the clip
    the net is meant for (the original's arguments; the head pools any size)."""
    return sized(MobileNet3D(num_classes, width_mult, temporal_stride), sample_size, sample_duration)


def mobilenetv2_3d(
    num_classes: int = 600,
    width_mult: float = 1.0,
    *,
    sample_size: int = 112,
    sample_duration: int = 16,
    temporal_stride: bool = True,
) -> MobileNetV2_3D:
    """Returns 3D-MobileNetV2 (paper widths 0.2, 0.45, 0.7, 1.0); see mobilenet_3d for the other arguments."""
    return sized(MobileNetV2_3D(num_classes, width_mult, temporal_stride), sample_size, sample_duration)


def shufflenet_3d(
    num_classes: int = 600,
    width_mult: float = 1.0,
    groups: int = 3,
    *,
    sample_size: int = 112,
    sample_duration: int = 16,
    temporal_stride: bool = True,
) -> ShuffleNet3D:
    """Returns 3D-ShuffleNet (paper: groups 3, widths 0.5, 1.0, 1.5, 2.0); see mobilenet_3d."""
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
    """Returns 3D-ShuffleNetV2 (widths 0.25, 0.5, 1.0, 1.5, 2.0); see mobilenet_3d."""
    return sized(ShuffleNetV2_3D(num_classes, width_mult, temporal_stride), sample_size, sample_duration)


def squeezenet_3d(
    num_classes: int = 600,
    version: float = 1.1,
    *,
    sample_size: int = 112,
    sample_duration: int = 16,
    temporal_stride: bool = True,
) -> SqueezeNet3D:
    """Returns 3D-SqueezeNet (the paper's v1.1; v1.0 too); see mobilenet_3d."""
    return sized(SqueezeNet3D(num_classes, version, temporal_stride), sample_size, sample_duration)
