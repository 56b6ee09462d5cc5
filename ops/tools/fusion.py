"""Conv + activation (+ residual add) fusion for BN-folded eval models on the CPU (ops.tools.inference.
deploy_model(fuse=True)).

oneDNN applies ReLU / ReLU6 (and the residual sum of a ResNet bottleneck) as post-ops of the convolution
(torch.ops.mkldnn._convolution_pointwise), so the activation map is written once instead of being read and
written again by separate relu / clamp / add passes. The arithmetic is that of conv, then max(0, .) /
clamp(0, 6) / + identity in float32, so the outputs equal the unfused model's up to float rounding (measured
bit-equal or a few ulps; tests/test_fusion.py). Other devices, dtypes or autograd fall back to the unfused ops.

Fused: `nn.Sequential` runs [Conv2d (or TemporalShift(Conv2d)), Identity (folded BN), ReLU / ReLU6] and
the `Bottleneck` / `BasicBlock` blocks of archs/resnet.py (their convolutions and the final add + ReLU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archs.temporal_shift import TemporalShift, temporal_shift

_ACT = {nn.ReLU: ("relu", []), nn.ReLU6: ("hardtanh", [0.0, 6.0])}


def fusion_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class FusedConv2d(nn.Module):
    """conv2d (folded BN bias), optionally after a temporal shift, with an activation and/or a residual
    add as oneDNN post-ops: act(conv(shift(x)) [+ other])."""

    def __init__(self, module: nn.Module, act: str = "none", scalars: list[float] | None = None) -> None:
        super().__init__()
        shift = module if isinstance(module, TemporalShift) else None
        conv = module.net if shift is not None else module
        if not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise TypeError(f"cannot fuse {type(conv).__name__}")
        self.shift = None if shift is None else (shift.n_segment, shift.fold_div)
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.act, self.scalars = act, scalars or []

    def _fallback(self, x: torch.Tensor, other: torch.Tensor | None) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if other is not None:
            y = y + other
        if self.act == "relu":
            return F.relu(y)
        return F.hardtanh(y, *self.scalars) if self.act == "hardtanh" else y

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        if self.shift is not None:
            x = temporal_shift(x, *self.shift)
        fast = (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
        )
        if not fast:
            return self._fallback(x, other)
        conv = (self.padding, self.stride, self.dilation, self.groups)
        act = None if self.act == "none" else self.act
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, *conv, act or "none", self.scalars, ""
            )
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, other, self.weight, self.bias, *conv, "add", None, act, self.scalars, ""
        )


class FusedResBlock(nn.Module):
    """A BN-folded Bottleneck / BasicBlock: every conv with its ReLU, the last one with the add + ReLU."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        convs = [block.conv1, block.conv2] + ([block.conv3] if hasattr(block, "conv3") else [])
        self.convs = nn.ModuleList(
            [FusedConv2d(c, "relu") for c in convs[:-1]] + [FusedConv2d(convs[-1], "relu")]
        )
        self.downsample = block.downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = x
        for conv in self.convs[:-1]:
            out = conv(out)
        return self.convs[-1](out, identity)


def _folded(block: nn.Module) -> bool:
    names = ("bn1", "bn2", "bn3") if hasattr(block, "conv3") else ("bn1", "bn2")
    return all(isinstance(getattr(block, n), nn.Identity) for n in names)


def fuse_conv_activations(model: nn.Module) -> int:
    """Fuses, in place, the conv + activation (+ add) patterns of a BN-folded eval model (see the module
    docstring); returns the number of fused convolutions. Unfolded blocks are left alone."""
    fused = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child).__name__ in ("Bottleneck", "BasicBlock") and _folded(child):
                setattr(module, name, FusedResBlock(child))
                fused += len(getattr(module, name).convs)
        if isinstance(module, nn.Sequential):
            keys = list(module._modules)
            for a, b, c in zip(keys, keys[1:], keys[2:]):
                conv, bn, act = module._modules[a], module._modules[b], module._modules[c]
                inner = conv.net if isinstance(conv, TemporalShift) else conv
                if isinstance(inner, nn.Conv2d) and isinstance(bn, nn.Identity) and type(act) in _ACT:
                    module._modules[a] = FusedConv2d(conv, *_ACT[type(act)])
                    module._modules[c] = nn.Identity()
                    fused += 1
    return fused
