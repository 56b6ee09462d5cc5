"""The Uni-AdaFocus objective (all presets), per the original main.py files, with one term per branch b in
{policy, random patches}:
  L = [ sum_b ( CE(fused_b) + CE(glance) + CE(focus_b) + CE(temporal) + CE(spatial) ) ] / n_branches
      + KL_ratio * KL(w || uniform) + norm_ratio * mean((scale - 1)^2)
'an': fused_b are the per-step pooling-classifier logits and glance/focus the per-frame logits, each with the
target repeated per step/frame; 'tsm'/'x3d': fused_b = glance_final + focus_final, glance/focus the averaged
auxiliary logits. Multi-label targets (B, 3) padded with -1 use column 0, as the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.core.config import ModelConfig
from models.core.losses import first_label, repeated_ce
from models.uniadafocus.policies import norm_loss


def kl_to_uniform(w: torch.Tensor) -> torch.Tensor:
    """Returns KL(w || uniform) averaged over the batch, for temporal weights w (B, T_g).

    The original divided by num_focus_segments instead of T_g (identical when K == T_g, as in every AN
    configuration); the uniform distribution over the T_g bins is used here.
    """
    uniform = torch.full_like(w, 1.0 / w.shape[1])
    return F.kl_div(uniform.log(), w, reduction="batchmean")


def uniadafocus_loss(
    outputs: dict, target: torch.Tensor, cfg: ModelConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Returns (loss, parts) for the model's output dict (train: 2 branches; eval: the policy branch only)."""
    y = first_label(target)
    fused = outputs["fused_branches"]
    nb = len(fused)
    loss_fused = sum(repeated_ce(z, y) for z in fused)
    loss_focus = sum(repeated_ce(z, y) for z in outputs["focus_branches"])
    loss_glance = nb * repeated_ce(outputs["glance_aux"], y)
    loss_temporal = nb * F.cross_entropy(outputs["temporal_logits"], y)
    loss_spatial = nb * F.cross_entropy(outputs["spatial_logits"], y)
    loss_norm = norm_loss(
        outputs["policy_actions"].transpose(-1, -2)
        if outputs["policy_actions"].dim() == 3
        else outputs["policy_actions"]
    )
    loss = (
        loss_fused + loss_glance + loss_focus + loss_temporal + loss_spatial
    ) / nb + cfg.norm_ratio * loss_norm
    parts = {
        "fused": loss_fused,
        "glance": loss_glance,
        "local": loss_focus,
        "temporal": loss_temporal,
        "spatial": loss_spatial,
        "norm": loss_norm,
    }
    if cfg.KL_ratio:
        loss_kl = kl_to_uniform(outputs["weights"])
        loss = loss + cfg.KL_ratio * loss_kl
        parts["kl"] = loss_kl
    parts["loss"] = loss * nb  # undone below: fused/glance/... are logged as per-branch means
    values = torch.stack([v.detach().float() for v in parts.values()]).tolist()  # one device sync
    scale = {"norm": 1, "kl": 1}
    return loss, {k: v / scale.get(k, nb) for k, v in zip(parts, values)}
