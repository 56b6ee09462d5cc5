"""The mobile networks of Efficient-3DCNNs: 3D-MobileNet (V1), 3D-MobileNetV2 and 3D-SqueezeNet, with the original
module names (see archs/e3d_common.py for the interface; the ShuffleNets are in archs/e3d_shufflenet.py).

Width rules are the original's, copied literally: channels `int(c * width_mult)` (truncation); MobileNetV2's last
conv 1280 unless width_mult > 1 (`int(1280 * w)`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .e3d_common import ClipNet, conv_1x1x1_bn, conv_bn, global_pool, init_conv_bn, sized, stride3


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
        init_conv_bn(self)

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
