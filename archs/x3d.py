"""X3D (Feichtenhofer 2020) with PySlowFast's module names, so `x3d_s.pyth` / `x3d_l.pyth` (model-zoo weights under
`model_state`) load unchanged. Glance CNN (X3D-S, 16x160^2) and focus CNN (X3D-L, 32x128^2) of UA-X3D.

Layout (keys): `s1.pathway0_stem.{conv_xy,conv,bn}`; `s{2..5}.pathway0_res{i}.{branch1,branch1_bn}` (first block) and
`.branch2.{a,a_bn,b,b_bn,se.fc1,se.fc2,c,c_bn}`; `head.{conv_5,conv_5_bn,lin_5,projection}`.
All BatchNorm3d use eps 1e-5, momentum 0.1 (PySlowFast defaults).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_BN_EPS = 1e-5
_BN_MOMENTUM = 0.1


def round_width(width: float, multiplier: float, min_width: int = 1, divisor: int = 1) -> int:
    """Returns width * multiplier rounded to a multiple of `divisor` (PySlowFast rule, never < 90% of the target)."""
    if not multiplier:
        return int(width)
    width *= multiplier
    min_width = min_width or divisor
    out = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class SE(nn.Module):
    """Squeeze-excitation: global pool -> 1x1x1 conv (reduced, min 8, multiple of 8) -> ReLU -> 1x1x1 conv -> sigmoid."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        dim_fc = round_width(dim, ratio, min_width=8, divisor=8)
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc1 = nn.Conv3d(dim, dim_fc, 1, bias=True)
        self.fc1_act = nn.ReLU()
        self.fc2 = nn.Conv3d(dim_fc, dim, 1, bias=True)
        self.fc2_sig = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns x (N, C, T, H, W) scaled per channel."""
        w = self.fc2_sig(self.fc2(self.fc1_act(self.fc1(self.avg_pool(x)))))
        return x * w


class X3DStem(nn.Module):
    """1x3x3 spatial conv (stride 2) -> 5x1x1 depthwise temporal conv -> BN -> ReLU."""

    def __init__(self, dim_in: int, dim_out: int, temporal_kernel: int = 5) -> None:
        super().__init__()
        self.conv_xy = nn.Conv3d(dim_in, dim_out, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False)
        self.conv = nn.Conv3d(
            dim_out,
            dim_out,
            (temporal_kernel, 1, 1),
            1,
            (temporal_kernel // 2, 0, 0),
            bias=False,
            groups=dim_out,
        )
        self.bn = _bn(dim_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, dim_out, T, H/2, W/2) for x (N, dim_in, T, H, W)."""
        return self.relu(self.bn(self.conv(self.conv_xy(x))))


class X3DTransform(nn.Module):
    """Bottleneck: 1x1x1 -> BN -> ReLU -> channel-wise 3x3x3 (spatial stride) -> BN -> [SE] -> Swish -> 1x1x1 -> BN."""

    def __init__(
        self, dim_in: int, dim_out: int, dim_inner: int, stride: int, use_se: bool, se_ratio: float
    ) -> None:
        super().__init__()
        self.a = nn.Conv3d(dim_in, dim_inner, 1, bias=False)
        self.a_bn = _bn(dim_inner)
        self.a_relu = nn.ReLU(inplace=True)
        self.b = nn.Conv3d(dim_inner, dim_inner, 3, (1, stride, stride), 1, groups=dim_inner, bias=False)
        self.b_bn = _bn(dim_inner)
        if use_se and se_ratio > 0:
            self.se = SE(dim_inner, se_ratio)
        self.b_relu = Swish()
        self.c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.c_bn = _bn(dim_out)
        self.c_bn.transform_final_bn = True  # zero-initialised (PySlowFast ZERO_INIT_FINAL_BN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, dim_out, T, H/stride, W/stride)."""
        x = self.b_bn(self.b(self.a_relu(self.a_bn(self.a(x)))))
        if hasattr(self, "se"):
            x = self.se(x)
        return self.c_bn(self.c(self.b_relu(x)))


class ResBlock(nn.Module):
    """Residual block; the projection shortcut `branch1` exists when the width or resolution changes."""

    def __init__(
        self, dim_in: int, dim_out: int, dim_inner: int, stride: int, use_se: bool, se_ratio: float
    ) -> None:
        super().__init__()
        if dim_in != dim_out or stride != 1:
            self.branch1 = nn.Conv3d(dim_in, dim_out, 1, (1, stride, stride), bias=False)
            self.branch1_bn = _bn(dim_out)
        self.branch2 = X3DTransform(dim_in, dim_out, dim_inner, stride, use_se, se_ratio)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (N, dim_out, T, H/stride, W/stride)."""
        shortcut = self.branch1_bn(self.branch1(x)) if hasattr(self, "branch1") else x
        return self.relu(shortcut + self.branch2(x))


class X3DHead(nn.Module):
    """conv_5 (1x1x1) + BN + ReLU, then pool -> lin_5 (1x1x1, no bias) -> ReLU -> dropout -> projection."""

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.conv_5 = nn.Conv3d(dim_in, dim_inner, 1, bias=False)
        self.conv_5_bn = _bn(dim_inner)
        self.conv_5_relu = nn.ReLU(inplace=True)
        self.lin_5 = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.lin_5_relu = nn.ReLU(inplace=True)
        if dropout > 0:
            self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(dim_out, num_classes, bias=True)


class X3D(nn.Module):
    """X3D network. `featmap(x (N, 3, T, H, W)) -> (N, feature_dim, T, ceil(H/32), ceil(W/32))`;
    `head_from_featmap(fm) -> logits (N, num_classes)`; `forward = head_from_featmap(featmap(x))`.

    Widths follow PySlowFast: stem round(dim_c1 * width), stage outputs round(round8(dim_c1 * 2^k) * width) for
    k = 0..3 (24/48/96/192 for X3D-S/M/L), inner width bottleneck * out (54/108/216/432), blocks
    ceil(depth * [1, 2, 5, 3]); SE on blocks 0, 2, 4, ...; head conv_5 -> feature_dim (432), lin_5 -> dim_c5 (2048).
    `num_frames`/`crop_size` are the clip size the net is meant for (the original sized its head pooling with them);
    the pooling here always covers the whole map, which is the same whenever the map has that size.
    """

    def __init__(
        self,
        depth_factor: float = 2.2,
        *,
        width_factor: float = 2.0,
        bottleneck_factor: float = 2.25,
        dim_c1: int = 12,
        dim_c5: int = 2048,
        num_classes: int = 400,
        num_frames: int = 16,
        crop_size: int = 160,
        dropout: float = 0.5,
        se_ratio: float = 0.0625,
    ) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.crop_size = crop_size
        dim_res1 = round_width(dim_c1, width_factor)
        self.s1 = nn.Module()
        self.s1.pathway0_stem = X3DStem(3, dim_res1)
        stage_dims = [dim_c1]  # X3D.SCALE_RES2 is False: res2 starts from dim_c1 before the width factor
        for _ in range(3):
            stage_dims.append(round_width(stage_dims[-1], 2.0, divisor=8))
        dim_in = dim_res1
        self.stage_depths: list[int] = []
        for k, (base_blocks, base_dim) in enumerate(zip((1, 2, 5, 3), stage_dims)):
            dim_out = round_width(base_dim, width_factor)
            dim_inner = int(bottleneck_factor * dim_out)
            n = int(math.ceil(depth_factor * base_blocks))
            stage = nn.Module()
            for i in range(n):
                block = ResBlock(
                    dim_in if i == 0 else dim_out,
                    dim_out,
                    dim_inner,
                    2 if i == 0 else 1,
                    i % 2 == 0,
                    se_ratio,
                )
                stage.add_module(f"pathway0_res{i}", block)
            self.add_module(f"s{k + 2}", stage)
            self.stage_depths.append(n)
            dim_in = dim_out
        self.feature_dim = dim_inner
        self.head = X3DHead(dim_out, dim_inner, dim_c5, num_classes, dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        # PySlowFast init_weights: MSRA-fill convs (fan_out), BN (1, 0) but 0 for the last BN of each block,
        # Linear N(0, 0.01) with zero bias.
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 0.0 if getattr(m, "transform_final_bn", False) else 1.0)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def featmap(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the conv_5 map (N, feature_dim, T, h, w) (after BN + ReLU) for clips x (N, 3, T, H, W)."""
        x = self.s1.pathway0_stem(x)
        for name in ("s2", "s3", "s4", "s5"):
            for block in getattr(self, name).children():
                x = block(x)
        head = self.head
        return head.conv_5_relu(head.conv_5_bn(head.conv_5(x)))

    def head_from_featmap(self, fm: torch.Tensor) -> torch.Tensor:
        """Returns raw logits (N, num_classes) from a map (N, feature_dim, T, h, w): average over (T, h, w), lin_5,
        ReLU, dropout, projection. No softmax (PySlowFast's eval softmax is not used by Uni-AdaFocus)."""
        head = self.head
        x = F.avg_pool3d(fm, kernel_size=fm.shape[2:], stride=1)
        x = head.lin_5_relu(head.lin_5(x)).flatten(1)
        if hasattr(head, "dropout"):
            x = head.dropout(x)
        return head.projection(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits (N, num_classes) for clips (N, 3, T, H, W)."""
        return self.head_from_featmap(self.featmap(x))


def x3d_s(
    num_classes: int = 400, num_frames: int = 16, crop_size: int = 160, depth_factor: float = 2.2, **kw
) -> X3D:
    """Returns X3D-S (depth 2.2; blocks 3/5/11/7). Uni-AdaFocus runs it on 16 frames at 160^2 (glance).

    `depth_factor` and `**kw` (X3D options, e.g. dim_c1, dim_c5) exist for tiny test/demo builds.
    """
    return X3D(depth_factor, num_classes=num_classes, num_frames=num_frames, crop_size=crop_size, **kw)


def x3d_m(
    num_classes: int = 400, num_frames: int = 16, crop_size: int = 224, depth_factor: float = 2.2, **kw
) -> X3D:
    """Returns X3D-M: the X3D-S network (depth 2.2) meant for 16 frames at 224^2."""
    return X3D(depth_factor, num_classes=num_classes, num_frames=num_frames, crop_size=crop_size, **kw)


def x3d_l(
    num_classes: int = 400, num_frames: int = 32, crop_size: int = 128, depth_factor: float = 5.0, **kw
) -> X3D:
    """Returns X3D-L (depth 5.0; blocks 5/10/25/15). Uni-AdaFocus runs it on 32 frames of 128^2 patches (focus)."""
    return X3D(depth_factor, num_classes=num_classes, num_frames=num_frames, crop_size=crop_size, **kw)
