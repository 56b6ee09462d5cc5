"""3-D ResNet-10/18/34/50/101/152/200 and ResNeXt-50/101/152 (Hara et al.; the Efficient-3DCNNs comparison
models), with the original module names: `conv1 bn1 layer1..4 fc`, shortcut B `downsample.0/1`.

Stem: 7x7x7 conv, stride (1, 2, 2), then a 3x3x3 max-pool with stride 2 in every dimension; stages with strides
1/2/2/2 (every dimension). Shortcut A is parameter-free: a strided average pool of kernel 1 followed by zero
channels; as in the original it is detached (`Variable(torch.cat([out.data, zeros]))`), so no gradient flows
through the downsampling shortcuts (kept for training parity; `detach_shortcut_a=False` lets it flow).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .e3d_common import ClipNet, init_conv_bn, sized, stride3

DEPTHS = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}


class ShortcutA(nn.Module):
    """Parameter-free shortcut: x[:, :, ::s_t, ::s, ::s] followed by zero channels up to `planes`."""

    def __init__(self, planes: int, stride: tuple[int, int, int], detach: bool) -> None:
        super().__init__()
        self.planes, self.stride, self.detach = planes, stride, detach

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
        zeros = out.new_zeros(out.shape[0], self.planes - out.shape[1], *out.shape[2:])
        out = torch.cat([out, zeros], 1)
        return out.detach() if self.detach else out


class BasicBlock(nn.Module):
    """Two 3x3x3 convs (ResNet-10/18/34)."""

    expansion = 1

    def __init__(self, inp: int, planes: int, stride=1, downsample: nn.Module | None = None, **_) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1x1 -> 3x3x3 (stride; grouped for ResNeXt) -> 1x1x1; expansion 4 (ResNet) or 2 (ResNeXt, whose inner
    width is cardinality * int(planes / 32))."""

    def __init__(
        self, inp: int, planes: int, stride=1, downsample: nn.Module | None = None, cardinality: int = 0
    ) -> None:
        super().__init__()
        mid = cardinality * int(planes / 32) if cardinality else planes
        out = planes * (2 if cardinality else 4)
        self.conv1 = nn.Conv3d(inp, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, 3, stride, 1, groups=cardinality or 1, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, out, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(torch.relu(self.bn2(self.conv2(out)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


class ResNet3D(ClipNet):
    """3-D ResNet / ResNeXt. `depth` picks the blocks per stage (DEPTHS); `cardinality` > 0 builds ResNeXt
    (planes 128/256/512/1024, expansion 2); `base_width` (64) scales the stage widths for tiny test builds."""

    def __init__(
        self,
        depth: int,
        num_classes: int = 600,
        shortcut_type: str = "B",
        cardinality: int = 0,
        temporal_stride: bool = True,
        base_width: int = 64,
        detach_shortcut_a: bool = True,
    ) -> None:
        super().__init__()
        if depth not in DEPTHS or (cardinality and depth < 50):
            raise ValueError(f"unsupported depth {depth} (ResNet {sorted(DEPTHS)}, ResNeXt 50/101/152)")
        if shortcut_type not in ("A", "B"):
            raise ValueError(f"shortcut_type must be 'A' or 'B', got {shortcut_type!r}")
        bottleneck = depth >= 50
        expansion = (2 if cardinality else 4) if bottleneck else 1
        block = Bottleneck if bottleneck else BasicBlock
        self.conv1 = nn.Conv3d(3, base_width, 7, (1, 2, 2), 3, bias=False)
        self.bn1 = nn.BatchNorm3d(base_width)
        self.maxpool = nn.MaxPool3d(3, stride3(2, temporal_stride), 1)
        inp = base_width
        planes = [base_width * (2 if cardinality else 1) * 2**k for k in range(4)]
        for k, (p, n) in enumerate(zip(planes, DEPTHS[depth])):
            stride = stride3(1 if k == 0 else 2, temporal_stride)
            downsample = None
            if max(stride) != 1 or inp != p * expansion:
                if shortcut_type == "A":
                    downsample = ShortcutA(p * expansion, stride, detach_shortcut_a)
                else:
                    downsample = nn.Sequential(
                        nn.Conv3d(inp, p * expansion, 1, stride, bias=False), nn.BatchNorm3d(p * expansion)
                    )
            blocks = [block(inp, p, stride, downsample, cardinality=cardinality)]
            inp = p * expansion
            blocks += [block(inp, p, cardinality=cardinality) for _ in range(1, n)]
            self.add_module(f"layer{k + 1}", nn.Sequential(*blocks))
        self.feature_dim = inp
        self.fc = nn.Linear(inp, num_classes)
        init_conv_bn(self)

    def featmap(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the layer4 map (N, feature_dim, T', h, w) for x (N, 3, T, H, W)."""
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet_3d(
    depth: int,
    num_classes: int = 600,
    shortcut_type: str = "B",
    *,
    sample_size: int = 112,
    sample_duration: int = 16,
    **kw,
) -> ResNet3D:
    """Returns a 3-D ResNet of `depth` (10/18/34/50/101/152/200). kw: temporal_stride, base_width,
    detach_shortcut_a. The paper's ResNet-18 uses shortcut A, ResNet-50/101 shortcut B (README)."""
    return sized(ResNet3D(depth, num_classes, shortcut_type, **kw), sample_size, sample_duration)


def resnext_3d(
    depth: int,
    num_classes: int = 600,
    shortcut_type: str = "B",
    cardinality: int = 32,
    *,
    sample_size: int = 112,
    sample_duration: int = 16,
    **kw,
) -> ResNet3D:
    """Returns a 3-D ResNeXt of `depth` (50/101/152) with `cardinality` groups (paper: 101, B, 32)."""
    if cardinality < 1:
        raise ValueError(f"cardinality must be >= 1, got {cardinality}")
    net = ResNet3D(depth, num_classes, shortcut_type, cardinality, **kw)
    return sized(net, sample_size, sample_duration)


def resnet18_3d(num_classes: int = 600, shortcut_type: str = "A", **kw) -> ResNet3D:
    """Returns the paper's 3-D ResNet-18 (shortcut A)."""
    return resnet_3d(18, num_classes, shortcut_type, **kw)


def resnet50_3d(num_classes: int = 600, shortcut_type: str = "B", **kw) -> ResNet3D:
    """Returns the paper's 3-D ResNet-50 (shortcut B; the paper's FLOPs were counted with A)."""
    return resnet_3d(50, num_classes, shortcut_type, **kw)


def resnet101_3d(num_classes: int = 600, shortcut_type: str = "B", **kw) -> ResNet3D:
    """Returns the paper's 3-D ResNet-101 (shortcut B; the paper's FLOPs were counted with A)."""
    return resnet_3d(101, num_classes, shortcut_type, **kw)


def resnext101_3d(num_classes: int = 600, shortcut_type: str = "B", cardinality: int = 32, **kw) -> ResNet3D:
    """Returns the paper's 3-D ResNeXt-101 (shortcut B, cardinality 32)."""
    return resnext_3d(101, num_classes, shortcut_type, cardinality, **kw)
