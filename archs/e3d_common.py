"""What the Efficient-3DCNNs networks (Köpüklü et al., ICCVW 2019) share: stride handling, the conv-BN-ReLU
stems, channel shuffle, the clip-net interface and the classifier replacement of the original fine-tuning.

Every network keeps the original module names, so `{'state_dict': {'module.' + k: v}}` files of the official
release load strictly (archs.load_weights strips `module.`). Each exposes, like archs.x3d.X3D:
`featmap(x (N, 3, T, H, W)) -> (N, feature_dim, T', h, w)`, `head_from_featmap(fm) -> logits (N, C)`,
`feature_dim`, `last_linear` (the classifier's final layer) and `forward = head_from_featmap(featmap(x))`.
The original heads pool with a fixed `AvgPool3d((ceil(T/16), ceil(S/32), ceil(S/32)))` (ResNets, SqueezeNet) or
over the whole map (mobile nets); here every head pools the whole map, which is the same at the configured clip
size (16 x 112^2) and also works at other sizes, where the fixed pool crashed or changed the fc input.

`temporal_stride=False` (not in the original) turns every temporal stride of 2 into 1 (strided convs, max-pools,
ShuffleNet's shortcut pool, ResNet shortcuts), so T' = T: the per-frame features a Uni-AdaFocus glance needs.
No tensor shape changes, so the released weights still load (the network then computes another function).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def stride3(s: int, temporal: bool) -> tuple[int, int, int]:
    """Returns the 3-D stride (s, s, s), or (1, s, s) without temporal striding."""
    return (s if temporal else 1, s, s)


def conv_bn(
    inp: int, oup: int, stride: tuple[int, int, int], act: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    """3x3x3 conv (no bias) -> BatchNorm3d -> activation: keys `.0`, `.1`."""
    return nn.Sequential(
        nn.Conv3d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm3d(oup), act(inplace=True)
    )


def conv_1x1x1_bn(inp: int, oup: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """1x1x1 conv (no bias) -> BatchNorm3d -> activation: keys `.0`, `.1`."""
    return nn.Sequential(nn.Conv3d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm3d(oup), act(inplace=True))


def init_conv_bn(net: nn.Module) -> None:
    """The originals' initialisation of the ResNets and SqueezeNet: Kaiming (fan_out) 3-D convs, BN weight 1, bias 0."""
    for m in net.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Returns x (N, C, T, H, W) with channels reordered (g, C/g) -> (C/g, g)."""
    n, c, t, h, w = x.shape
    return x.view(n, groups, c // groups, t, h, w).transpose(1, 2).reshape(n, c, t, h, w)


def global_pool(fm: torch.Tensor) -> torch.Tensor:
    """Returns (N, C): the average of fm (N, C, T, h, w) over the whole map (the original heads' pooling)."""
    return F.avg_pool3d(fm, fm.shape[-3:]).flatten(1)


class ClipNet(nn.Module):
    """Base of the Efficient-3DCNNs networks: `forward` = `head_from_featmap(featmap(x))`, raw logits.

    Subclasses define `featmap`, `feature_dim` and a classifier `classifier` (Dropout + Linear) or `fc`."""

    feature_dim: int

    def featmap(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head_from_featmap(self, fm: torch.Tensor) -> torch.Tensor:
        """Returns logits (N, num_classes) from the last map (N, feature_dim, T', h, w): whole-map average,
        then the classifier."""
        pooled = global_pool(fm)
        return self.fc(pooled) if hasattr(self, "fc") else self.classifier(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits (N, num_classes) for clips x (N, 3, T, H, W)."""
        return self.head_from_featmap(self.featmap(x))

    @property
    def last_linear(self) -> nn.Module:
        """The classifier's final layer (Linear; SqueezeNet: the 1x1x1 conv)."""
        return self.fc if hasattr(self, "fc") else self.classifier[1]

    def reset_classifier(self, num_classes: int, dropout: float = 0.9) -> None:
        """Replaces the classifier as the original `--pretrain_path` fine-tuning did: mobile nets
        `Dropout(dropout) + Linear`, ResNets a new `fc` (no dropout); fresh PyTorch-default weights."""
        if hasattr(self, "fc"):
            self.fc = nn.Linear(self.fc.in_features, num_classes)
        else:
            self.classifier = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(self.classifier[1].in_features, num_classes)
            )


def sized(net: ClipNet, sample_size: int, sample_duration: int) -> ClipNet:
    """Records on `net` the clip it is meant for (the original constructors' `sample_size`, `sample_duration`:
    16 x 112^2 in the paper); returns `net`. FLOPs rows count the net at this clip."""
    if sample_size < 1 or sample_duration < 1:
        raise ValueError(
            f"sample_size and sample_duration must be >= 1, got {sample_size}, {sample_duration}"
        )
    net.sample_size, net.sample_duration = sample_size, sample_duration
    return net
