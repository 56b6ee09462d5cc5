"""GFLOPs of Uni-AdaFocus per video, in the papers' convention (models/core/flops.py).

Each backbone is counted with the head the paper counted with it (MobileNetV2 / ResNet: none for 'an', the two TSN
heads per frame for 'tsm'; X3D: its standard head), plus the spatial policy, the temporal policy and, for 'an',
the pooling classifier (MLPs + per-step heads). Training-only parts (Monte-Carlo temporal logits, feature-map aux
head, per-frame aux heads) are not counted; the X3D per-frame glance heads that produce the glance-exit logit are
reported under `not_in_total` (the paper's constant omits them: +0.027 GFLOPs for 16 frames, K-400).
"""

from __future__ import annotations

import torch
from torch import nn

from models.core.flops import clip_macs, count_macs, frame_macs, linear_macs


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
