"""GFLOPs counting with fvcore in the papers' convention, and the shared forms of the per-component breakdowns
(each method's breakdown lives in its package, e.g. models/uniadafocus/flops.py).

Convention (the one the published numbers use): multiply-accumulates of convolutions and linear layers, per video,
for the inference path; BatchNorm and pooling are not counted; training-only parts are not counted.
A breakdown is a dict of components (GFLOPs per video), `exits` (the cost of each exit), `total` (= the last exit)
and `not_in_total` (costs reported beside the total).

Counting is per unit (one frame / one clip length) at batch 1 and scaled: 2-D nets are per-frame; X3D costs are
exactly affine in the number of frames (no temporal stride), so they are counted at T = 1 and 2 and extrapolated;
the other clip nets (Efficient-3DCNNs, TAdaConv: temporal strides, T >= 3) are counted at their clip.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

# Ops the papers' convention leaves out (fvcore's `None` handle does not drop a default handle, so count 0).
_NOT_COUNTED = (
    "aten::batch_norm",
    "aten::adaptive_avg_pool2d",
    "aten::adaptive_avg_pool3d",
    "aten::avg_pool3d",
    "aten::upsample_bilinear2d",
    "aten::grid_sampler",
)


class _Call(nn.Module):
    """Wraps `fn(module, *inputs)` so fvcore can trace a method (e.g. `features`) of `module`."""

    def __init__(self, module: nn.Module, fn: Callable) -> None:
        super().__init__()
        self.module = module
        self.fn = fn

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(self.module, *inputs)


def count_macs(module: nn.Module, *inputs: torch.Tensor, fn: Callable | None = None) -> int:
    """Returns the conv + linear multiply-accumulates of `module(*inputs)` (or `fn(module, *inputs)`), no BN/pooling.

    Floating inputs are moved to the module's device and dtype first (a model on CUDA or in float64 is counted
    where it lies; the count does not depend on either)."""
    ref = next((p for p in module.parameters() if p.is_floating_point()), None)
    if ref is not None:
        inputs = tuple(x.to(ref.device, ref.dtype if x.is_floating_point() else x.dtype) for x in inputs)
    target = _Call(module, fn) if fn is not None else module
    fca = FlopCountAnalysis(target.eval(), inputs)
    fca.set_op_handle(**{name: (lambda i, o: 0) for name in _NOT_COUNTED})
    fca.unsupported_ops_warnings(False)
    fca.uncalled_modules_warnings(False)
    with torch.no_grad():
        return int(fca.total())


def frame_macs(net: nn.Module, size: int) -> int:
    """Returns MACs of `net.features` on one frame (size x size). Temporal shifts move data without MACs, so
    they are set to 1-frame clips for the count (and restored): a T-frame clip costs T times this."""
    from archs import TemporalShift

    shifts = [m for m in net.modules() if isinstance(m, TemporalShift)]
    saved = [m.n_segment for m in shifts]
    try:
        for m in shifts:
            m.n_segment = 1
        return count_macs(net, torch.zeros(1, 3, size, size), fn=lambda m, x: m.features(x))
    finally:
        for m, n in zip(shifts, saved):
            m.n_segment = n


def x3d_clip_macs(net: nn.Module, size: int, frames: int) -> int:
    """Returns MACs of X3D `net` (featmap + standard head) on a clip of `frames` frames, from counts at T = 1, 2."""
    one, two = (count_macs(net, torch.zeros(1, 3, t, size, size)) for t in (1, 2))
    return one + (two - one) * (frames - 1)


def clip_macs(net: nn.Module, size: int, frames: int) -> int:
    """Returns MACs of clip net `net` (featmap + its standard head) on a clip of `frames` x size^2: X3D from
    counts at T = 1, 2 (x3d_clip_macs); any other clip net (Efficient-3DCNNs, TAdaConv) counted at the clip."""
    if hasattr(net, "head") and hasattr(net.head, "lin_5"):
        return x3d_clip_macs(net, size, frames)
    return count_macs(net, torch.zeros(1, 3, frames, size, size))


def linear_macs(layer: nn.Linear) -> int:
    return layer.in_features * layer.out_features


def clip_breakdown(backbone_macs: float, head_macs: float) -> dict:
    """Returns the GFLOPs dict of a single-exit model on full frames: `backbone`, `heads`, `exits`, `total`."""
    total = (backbone_macs + head_macs) / 1e9
    return {
        "backbone": backbone_macs / 1e9,
        "heads": head_macs / 1e9,
        "exits": [total],
        "total": total,
        "not_in_total": {},
    }


def gru_macs(gru: nn.GRU) -> int:
    """Returns the multiply-accumulates of one step of a one-layer GRU, 3 * (in * h + h * h) (fvcore counts 0)."""
    return 3 * (gru.input_size * gru.hidden_size + gru.hidden_size * gru.hidden_size)


def per_frame_breakdown(parts: dict[str, int], frames: int) -> dict:
    """Returns the GFLOPs dict of a model that processes its `frames` frames one after another, every frame
    costing `parts` (component -> MACs per frame): each component's total, `per_frame`, `exits` (after k = 1..T
    frames: k * per_frame) and `total` (AdaFocus V1 and V2 'an')."""
    per_frame = sum(parts.values()) / 1e9
    exits = [k * per_frame for k in range(1, frames + 1)]
    out = {name: frames * macs / 1e9 for name, macs in parts.items()}
    out.update(per_frame=per_frame, exits=exits, total=exits[-1], not_in_total={})
    return out
