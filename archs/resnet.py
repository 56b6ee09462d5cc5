"""ResNet-18/34/50/101/152 with torchvision's module names (the focus CNN of UA-AN and UA-TSM; ResNet-101/152
are ResKD teachers).

Keys: `conv1, bn1, layer{1..4}.{i}.{conv1,bn1,conv2,bn2[,conv3,bn3][,downsample.{0,1}]}, fc`, so torchvision ImageNet
files (e.g. `resnet50-0676ba61.pth`) load unchanged. Stride sits on the 3x3 conv (torchvision "V1.5").
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        d = dilation
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, d, dilation=d, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, d, dilation=d, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, planes, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        d = dilation
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, d, dilation=d, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, 4 * planes, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ImageNet ResNet; `features(x (N, 3, H, W)) -> (N, 8 * base_width * expansion, H/os, W/os)`.

    `base_width` (64 in the real nets) scales every stage; smaller values give tiny test/demo models with the
    same key names. `output_stride` os (32, 16 or 8) replaces the stride of layer4 (16) or layer3 and layer4 (8)
    by dilation, as torchvision's `replace_stride_with_dilation` (the first block of such a stage keeps the
    previous dilation): a finer feature map with the same weights and keys.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        base_width: int = 64,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.inplanes = base_width
        self.dilation = 1
        self.conv1 = nn.Conv2d(3, base_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base_width, layers[0], 1)
        self.layer2 = self._make_layer(block, base_width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, base_width * 4, layers[2], 2, dilate=output_stride == 8)
        self.layer4 = self._make_layer(block, base_width * 8, layers[3], 2, dilate=output_stride < 32)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = base_width * 8 * block.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        # torchvision's init: Kaiming (fan_out) convs, BN (1, 0); fc keeps PyTorch's default Linear init.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int,
        dilate: bool = False,
    ) -> nn.Sequential:
        previous = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, previous)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the map before avgpool, (N, feature_dim, h, w) for images (N, 3, H, W)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def featvec(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the pooled feature vector (N, feature_dim) (conv1..layer4, avgpool, flatten)."""
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits (N, num_classes)."""
        return self.fc(self.featvec(x))


def resnet18(num_classes: int = 1000, base_width: int = 64, output_stride: int = 32) -> ResNet:
    """Returns a randomly initialised ResNet-18 (torchvision keys)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, base_width, output_stride)


def resnet34(num_classes: int = 1000, base_width: int = 64, output_stride: int = 32) -> ResNet:
    """Returns a randomly initialised ResNet-34 (torchvision keys)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, base_width, output_stride)


def resnet50(num_classes: int = 1000, base_width: int = 64, output_stride: int = 32) -> ResNet:
    """Returns a randomly initialised ResNet-50 (torchvision keys)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, base_width, output_stride)


def resnet101(num_classes: int = 1000, base_width: int = 64, output_stride: int = 32) -> ResNet:
    """Returns a randomly initialised ResNet-101 (torchvision keys; Bottleneck blocks 3/4/23/3)."""
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes, base_width, output_stride)


def resnet152(num_classes: int = 1000, base_width: int = 64, output_stride: int = 32) -> ResNet:
    """Returns a randomly initialised ResNet-152 (torchvision keys; Bottleneck blocks 3/8/36/3)."""
    return ResNet(Bottleneck, (3, 8, 36, 3), num_classes, base_width, output_stride)
