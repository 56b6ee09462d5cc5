"""GFLOPs of AdaFocus V1 per video, in the papers' convention (models/core/flops.py; fvcore counts a GRU as 0, so
the GRUs are counted analytically)."""

from __future__ import annotations

import torch
from torch import nn

from models.core.flops import (
    clip_breakdown,
    count_macs,
    frame_macs,
    gru_macs,
    linear_macs,
    per_frame_breakdown,
)


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
    policy = model.focuser.policy.policy_old
    h = model.map_size
    encoder = count_macs(policy.state_encoder, torch.zeros(1, model.glancer.feature_dim, h, h))
    parts = {
        "glance": frame_macs(model.glancer.net, cfg.glance_size),
        "policy": encoder + gru_macs(policy.gru) + linear_macs(policy.actor[0]),
        "focus": frame_macs(model.focuser.net, cfg.patch_size),
        "classifier": gru_macs(model.classifier.gru) + linear_macs(model.classifier.fc),
    }
    return per_frame_breakdown(parts, t)
