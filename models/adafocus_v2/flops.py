"""GFLOPs of AdaFocus V2 per video, in the papers' convention (models/core/flops.py: conv + linear multiply-accumulates,
BN and pooling not counted). fvcore counts a GRU as 0, so the policy's GRU is counted analytically:
3 gates x (input x hidden + hidden x hidden) per step.

'an': every frame costs glance + policy + patch + classifier share, and exit k (k frames processed) costs k frames
(V2's per-frame constants: 1.100965 / 1.684842 / 2.435541 / 3.353061 at P = 96 / 128 / 160 / 192; ours differ by
less than 0.1%: the per-frame auxiliary fc heads are training-only and not counted here).
'tsm': T_g glance frames and N patch frames through the TSN nets (both heads per frame, as UA-TSM), plus the policy;
exit 0 is the glance net alone.
"""

from __future__ import annotations

import torch
from torch import nn

from models.core.flops import count_macs, frame_macs, gru_macs, linear_macs, per_frame_breakdown


def v2_breakdown(model: nn.Module) -> dict:
    """Returns `glance`, `policy`, `focus`, `classifier` (totals per video), `per_frame` ('an'), `exits`, `total`."""
    cfg = model.cfg
    g, p, h = cfg.glance_size, cfg.patch_size, model.map_size
    policy_in = model.global_CNN.feature_dim
    if model.per_frame:
        policy = count_macs(model.policy_stn.encoder, torch.zeros(1, policy_in, h, h))
        parts = {
            "glance": frame_macs(model.global_CNN, g),
            "policy": policy + gru_macs(model.policy_stn.gru) + linear_macs(model.policy_stn.fc[0]),
            "focus": frame_macs(model.local_CNN, p),
            "classifier": linear_macs(model.classifier.mlp.layers[0])
            + linear_macs(model.classifier.classifiers[0][1]),
        }
        return per_frame_breakdown(parts, cfg.num_glance_segments)
    t, n = cfg.num_glance_segments, cfg.num_focus_segments
    heads = 2 * linear_macs(model.global_CNN.new_fc)
    glance = t * (frame_macs(model.global_CNN.base_model, g) + heads)
    policy = count_macs(model.policy_stn.encoder, torch.zeros(1, t * policy_in, h, h))
    focus = n * (frame_macs(model.local_CNN.base_model, p) + 2 * linear_macs(model.local_CNN.new_fc))
    total = (glance + policy + focus) / 1e9
    return {
        "glance": glance / 1e9,
        "policy": policy / 1e9,
        "focus": focus / 1e9,
        "exits": [glance / 1e9, total],
        "total": total,
        "not_in_total": {},
    }
