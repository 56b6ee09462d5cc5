"""GFLOPs counting with fvcore in the papers' convention, and the per-component breakdowns of the models.

Convention (the one the published numbers use): multiply-accumulates of convolutions and linear layers, per video,
for the inference path; BatchNorm and pooling are not counted. Each backbone is counted with the head the paper
counted with it (MobileNetV2 / ResNet: none for 'an', the two TSN heads per frame for 'tsm'; X3D: its standard
head), plus the spatial policy, the temporal policy and, for 'an', the pooling classifier (MLPs + per-step heads).
Training-only parts (Monte-Carlo temporal logits, feature-map aux head, per-frame aux heads) are not counted; the
X3D per-frame glance heads that produce the glance-exit logit are reported under `not_in_total` (the paper's
constant omits them: +0.027 GFLOPs for 16 frames, K-400).

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


def uniadafocus_breakdown(model: nn.Module) -> dict:
    """Returns per-component GFLOPs of a UniAdaFocus model for one video: keys `glance`, `glance_heads`,
    `spatial_policy`, `temporal_policy`, `focus`, `focus_heads` (totals over the frames), `per_focus_frame`,
    `exits` (list: cost of each exit, k = 0..E-1), `total` (= last exit) and `not_in_total`."""
    cfg = model.cfg
    tg, k, g, p = cfg.num_glance_segments, cfg.num_focus_segments, cfg.glance_size, cfg.patch_size
    dg = model.spatial_policy.encoder[0].in_channels
    h = model.map_size
    out: dict = {"not_in_total": {}}
    spatial = count_macs(model.spatial_policy, torch.zeros(1, dg, tg, h, h))
    temporal = count_macs(model.temporal_policy, torch.zeros(1, tg, dg))
    if cfg.preset == "an":
        glance = tg * frame_macs(model.global_CNN, g)
        focus_unit = frame_macs(model.local_CNN, p)
        cls = model.classifier
        glance_heads = tg * (
            linear_macs(cls.global_mlp.layers[0]) + linear_macs(cls.global_classifiers[0][1])
        )
        head_unit = linear_macs(cls.local_mlp.layers[0]) + linear_macs(cls.local_classifiers[0][1])
    elif cfg.preset == "tsm":
        glance = tg * frame_macs(model.global_CNN.base_model, g)
        focus_unit = frame_macs(model.local_CNN.base_model, p)
        # The official per-frame constants include both TSN heads (new_fc, new_new_fc) on every frame.
        glance_heads = tg * 2 * linear_macs(model.global_CNN.new_fc)
        head_unit = 2 * linear_macs(model.local_CNN.new_fc)
    else:
        glance = clip_macs(model.global_CNN, g, tg)
        focus_unit = clip_macs(model.local_CNN, p, k) / k
        glance_heads, head_unit = 0, 0  # the standard clip heads are counted inside `glance` / `focus`
        frame_linears = [m for m in model.global_CNN_head if isinstance(m, nn.Linear)]
        out["not_in_total"]["glance_frame_heads"] = tg * sum(linear_macs(m) for m in frame_linears) / 1e9
    g0 = (glance + glance_heads) / 1e9
    per_frame = (focus_unit + head_unit) / 1e9
    policies = (spatial + temporal) / 1e9
    if cfg.preset == "an":
        exits = [g0] + [g0 + policies + i * per_frame for i in range(1, k + 1)]
    else:
        exits = [g0, g0 + policies + k * per_frame]
    out.update(
        glance=glance / 1e9,
        glance_heads=glance_heads / 1e9,
        spatial_policy=spatial / 1e9,
        temporal_policy=temporal / 1e9,
        focus=k * focus_unit / 1e9,
        focus_heads=k * head_unit / 1e9,
        per_focus_frame=per_frame,
        exits=exits,
        total=exits[-1],
    )
    return out


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


def adafocus_v1_breakdown(model: nn.Module) -> dict:
    """Returns per-component GFLOPs of an AdaFocusV1 model for one video of T frames: `glance`, `policy` (encoder
    conv + linear, GRU, actor; the critic is training-only), `focus`, `classifier` (GRU + fc), `per_frame`,
    `exits` (after k = 1..T frames: k * per_frame) and `total`. Stage 0: the pretrained network on T frames."""
    cfg = model.cfg
    t = cfg.num_segments
    if model.stage.number == 0:
        net = model.glancer.net if cfg.pretrain_net == "glancer" else model.focuser.net
        size = cfg.glance_size if cfg.pretrain_net == "glancer" else cfg.input_size
        head = net.classifier[1] if hasattr(net, "classifier") else net.fc  # MobileNetV2: Dropout + Linear
        return clip_breakdown(t * frame_macs(net, size), t * linear_macs(head))
    glance = frame_macs(model.glancer.net, cfg.glance_size)
    policy = model.focuser.policy.policy_old
    h = model.map_size
    encoder = count_macs(policy.state_encoder, torch.zeros(1, model.glancer.feature_dim, h, h))
    policy_macs = encoder + gru_macs(policy.gru) + linear_macs(policy.actor[0])
    focus = frame_macs(model.focuser.net, cfg.patch_size)
    classifier = gru_macs(model.classifier.gru) + linear_macs(model.classifier.fc)
    per_frame = (glance + policy_macs + focus + classifier) / 1e9
    exits = [k * per_frame for k in range(1, t + 1)]
    return {
        "glance": t * glance / 1e9,
        "policy": t * policy_macs / 1e9,
        "focus": t * focus / 1e9,
        "classifier": t * classifier / 1e9,
        "per_frame": per_frame,
        "exits": exits,
        "total": exits[-1],
        "not_in_total": {},
    }
