"""TAdaConv's reusable layers (Huang et al., ICLR 2022): `TAdaConv2d`, a 2-D convolution whose weights are
calibrated per video and frame, and `RouteFuncMLP`, the route function that computes the calibration, with the
signatures of the TAdaConv README:

    self.conv_rf = RouteFuncMLP(c_in=64, ratio=4, kernels=[3, 3])
    self.conv = TAdaConv2d(64, 64, kernel_size=[1, 3, 3], stride=[1, 1, 1], padding=[0, 1, 1], bias=False,
                           cal_dim="cin")
    x = self.conv(x, self.conv_rf(x))        # x (N, C, T, H, W)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _triple


class RouteFuncMLP(nn.Module):
    """Route function: alpha = b(relu(bn(a(avgpool_hw(x) + g(avgpool_thw(x)))))) + 1, shape (N, C, T, 1, 1).

    `b` is zero-initialised (and marked `skip_init`), so alpha is 1 at initialisation."""

    def __init__(
        self, c_in: int, ratio: int, kernels: Sequence[int], bn_eps: float = 1e-5, bn_mmt: float = 0.1
    ) -> None:
        super().__init__()
        self.c_in = c_in
        self.g = nn.Conv3d(c_in, c_in, 1)
        self.a = nn.Conv3d(c_in, c_in // ratio, (kernels[0], 1, 1), padding=(kernels[0] // 2, 0, 0))
        self.bn = nn.BatchNorm3d(c_in // ratio, eps=bn_eps, momentum=bn_mmt)
        self.b = nn.Conv3d(
            c_in // ratio, c_in, (kernels[1], 1, 1), padding=(kernels[1] // 2, 0, 0), bias=False
        )
        self.b.skip_init = True
        nn.init.zeros_(self.b.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the calibration alpha (N, c_in, T, 1, 1) for x (N, c_in, T, H, W)."""
        g = F.adaptive_avg_pool3d(x, 1)
        x = F.adaptive_avg_pool3d(x, (None, 1, 1))
        return self.b(torch.relu(self.bn(self.a(x + self.g(g))))) + 1


class TAdaConv2d(nn.Module):
    """Temporally adaptive 2-D convolution on (N, C, T, H, W): frame t of video n uses the weight
    alpha[n, :, t] * W (input channels calibrated with cal_dim='cin', output channels with 'cout').

    Weight shape (1, 1, C_out, C_in / groups, kh, kw) (the official layout), kaiming-uniform(a=sqrt(5)); the
    temporal kernel, stride and padding must be 1, 1 and 0. All (video, frame) pairs run as one grouped conv2d.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        cal_dim: str = "cin",
    ) -> None:
        super().__init__()
        kernel_size, stride, padding, dilation = map(_triple, (kernel_size, stride, padding, dilation))
        if (kernel_size[0], stride[0], padding[0], dilation[0]) != (1, 1, 0, 1):
            raise ValueError("TAdaConv2d: the temporal kernel/stride/padding/dilation must be 1/1/0/1")
        if cal_dim not in ("cin", "cout"):
            raise ValueError(f"cal_dim must be 'cin' or 'cout', got {cal_dim!r}")
        self.in_channels, self.out_channels, self.groups, self.cal_dim = (
            in_channels,
            out_channels,
            groups,
            cal_dim,
        )
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        # False: the official form (one grouped conv of calibrated weights); True: the calibration on the
        # activations (equal up to float rounding; the form ONNX export uses)
        self.calibrate_activations = False
        shape = (1, 1, out_channels, in_channels // groups, kernel_size[1], kernel_size[2])
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(1, 1, out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(self.weight)[0])
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, alpha: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Returns (N, C_out, T, H', W') for x (N, C_in, T, H, W) and alpha (N, C, T, 1, 1) (C = C_in for 'cin',
        C_out for 'cout'), or [alpha_weight, alpha_bias] (the bias calibrated by alpha_bias (N, C_out, T, 1, 1))."""
        w_alpha, b_alpha = (alpha[0], alpha[1]) if isinstance(alpha, (list, tuple)) else (alpha, None)
        if self.calibrate_activations:
            return self._calibrated_activations(x, w_alpha, b_alpha)
        n, c, t, h, w = x.shape
        c_out, c_in_g, kh, kw = self.weight.shape[2:]
        x = x.transpose(1, 2).reshape(1, n * t * c, h, w)
        a = w_alpha.transpose(1, 2)  # (N, T, C, 1, 1)
        a = a.unsqueeze(2) if self.cal_dim == "cin" else a.unsqueeze(3)
        weight = (a * self.weight).reshape(-1, c_in_g, kh, kw)
        bias = None
        if self.bias is not None:
            if b_alpha is not None:
                bias = (b_alpha.reshape(n, c_out, t).transpose(1, 2) * self.bias).reshape(-1)
            else:
                bias = self.bias.repeat(n, t, 1).reshape(-1)
        out = F.conv2d(
            x, weight, bias, self.stride[1:], self.padding[1:], self.dilation[1:], self.groups * n * t
        )
        return out.view(n, t, c_out, out.shape[-2], out.shape[-1]).transpose(1, 2)

    def _calibrated_activations(
        self, x: torch.Tensor, w_alpha: torch.Tensor, b_alpha: torch.Tensor | None
    ) -> torch.Tensor:
        """The same convolution with the calibration moved from the weight to the activations: alpha scales the
        input channels before one shared conv2d over all (video, frame) pairs ('cin'; zero padding stays zero) or
        its output channels after it ('cout'). Equal to the grouped form up to float rounding, and an ordinary
        convolution, which exports to ONNX (the grouped form's group count is the number of videos)."""
        n, c, t, h, w = x.shape
        c_out = self.weight.shape[2]
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        a = w_alpha.transpose(1, 2).reshape(n * t, -1, 1, 1)
        if self.cal_dim == "cin":
            frames = frames * a
        weight = self.weight.reshape(self.weight.shape[2:])
        out = F.conv2d(
            frames, weight, None, self.stride[1:], self.padding[1:], self.dilation[1:], self.groups
        )
        if self.cal_dim == "cout":
            out = out * a
        if self.bias is not None:
            bias = self.bias.reshape(1, c_out, 1, 1)
            if b_alpha is not None:
                bias = b_alpha.transpose(1, 2).reshape(n * t, c_out, 1, 1) * bias
            out = out + bias
        return out.view(n, t, c_out, out.shape[-2], out.shape[-1]).transpose(1, 2)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}, cal_dim={self.cal_dim!r}"
        )


def calibrate_activations(module: nn.Module, on: bool = True) -> dict[TAdaConv2d, bool]:
    """Sets `calibrate_activations` of every TAdaConv2d in `module` (on: the calibration moves from the weights to
    the activations; the same convolution up to float rounding, far cheaper: no weight per video and frame) and
    returns each one's previous value."""
    saved = {}
    for m in module.modules():
        if isinstance(m, TAdaConv2d):
            saved[m], m.calibrate_activations = m.calibrate_activations, on
    return saved
