"""Temporal Shift Module (TSM, Lin et al. 2019) for 2-D backbones run on (B*T, C, H, W) frame batches.

The wrapped conv stays reachable as `.net`, so keys read `layer1.0.conv1.net.weight` / `features.3.conv.0.net.weight`
exactly as in the original TSM checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from .mobilenet_v2 import InvertedResidual, MobileNetV2
from .resnet import ResNet


def _shift(x: torch.Tensor, n_segment: int, n_div: int, reverse: bool = False) -> torch.Tensor:
    nt, c, h, w = x.shape
    if nt % n_segment:
        raise ValueError(f"batch {nt} is not a multiple of n_segment={n_segment}")
    v = x.view(nt // n_segment, n_segment, c, h, w)
    fold = c // n_div
    back, fwd = (
        (slice(fold, 2 * fold), slice(0, fold)) if reverse else (slice(0, fold), slice(fold, 2 * fold))
    )
    out = torch.empty_like(v)  # each element written once (zeros_like first wrote the shifted quarter twice)
    out[:, :-1, back] = v[:, 1:, back]
    out[:, -1:, back] = 0
    out[:, 1:, fwd] = v[:, :-1, fwd]
    out[:, :1, fwd] = 0
    out[:, :, 2 * fold :] = v[:, :, 2 * fold :]
    return out.view(nt, c, h, w)


class _TemporalShift(torch.autograd.Function):
    """The shift with its exact gradient, the opposite shift of the output gradient (each input value goes
    to at most one output place). Autograd through the slice assignments would build three full-size zero
    gradients and add them up: the same values, about a fifth of a TSM ResNet-50 training step's copy / fill
    / add time."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, n_segment: int, n_div: int) -> torch.Tensor:
        ctx.args = (n_segment, n_div)
        return _shift(x, n_segment, n_div)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _ReverseShift.apply(grad, *ctx.args), None, None


class _ReverseShift(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, n_segment: int, n_div: int) -> torch.Tensor:
        ctx.args = (n_segment, n_div)
        return _shift(x, n_segment, n_div, reverse=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _TemporalShift.apply(grad, *ctx.args), None, None


def temporal_shift(x: torch.Tensor, n_segment: int, n_div: int = 8) -> torch.Tensor:
    """Returns x (B*T, C, H, W) with the first C//n_div channels shifted one step back in time (frame t takes
    frame t+1), the next C//n_div shifted one step forward (frame t takes t-1), the rest unchanged; zero fill.
    """
    if torch.is_grad_enabled() and x.requires_grad and not torch.jit.is_tracing():
        return _TemporalShift.apply(x, n_segment, n_div)
    return _shift(x, n_segment, n_div)


class TemporalShift(nn.Module):
    """Shifts the input in time, then applies `net`; input (B*T, C, H, W) with T = n_segment."""

    def __init__(self, net: nn.Module, n_segment: int, n_div: int = 8) -> None:
        super().__init__()
        self.net = net
        self.n_segment = n_segment
        self.fold_div = n_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns net(shift(x)); the shape is whatever `net` returns."""
        return self.net(temporal_shift(x, self.n_segment, self.fold_div))

    def extra_repr(self) -> str:
        return f"n_segment={self.n_segment}, fold_div={self.fold_div}"


def make_temporal_shift(
    model: nn.Module, n_segment: int, n_div: int = 8, place: str = "blockres"
) -> nn.Module:
    """Returns `model` (modified in place) with TemporalShift inserted ("blockres" placement of TSM).

    ResNet: `conv1` of every residual block (every other block when layer3 has >= 23 blocks, as TSM does for
    ResNet-101). MobileNetV2: `conv[0]` of the inverted residual blocks that have both the residual connection
    and an expansion layer (len(conv) == 8). The runtime number of frames per clip must equal `n_segment`.
    """
    if place != "blockres":
        raise ValueError(
            f"only place='blockres' is implemented (the setting of every Uni-AdaFocus run), got {place!r}"
        )
    if isinstance(model, ResNet):
        n_round = 2 if len(model.layer3) >= 23 else 1
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
            for i, block in enumerate(stage):
                if i % n_round == 0 and not isinstance(block.conv1, TemporalShift):
                    block.conv1 = TemporalShift(block.conv1, n_segment, n_div)
    elif isinstance(model, MobileNetV2):
        for m in model.modules():
            if isinstance(m, InvertedResidual) and len(m.conv) == 8 and m.use_res_connect:
                if not isinstance(m.conv[0], TemporalShift):
                    m.conv[0] = TemporalShift(m.conv[0], n_segment, n_div)
    else:
        raise TypeError(f"make_temporal_shift supports ResNet and MobileNetV2, got {type(model).__name__}")
    return model
