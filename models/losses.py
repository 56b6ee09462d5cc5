"""Training criteria: the Uni-AdaFocus objective (all presets) and plain cross-entropy for the baselines.

Uni-AdaFocus (per the original main.py files), with one term per branch b in {policy, random patches}:
  L = [ sum_b ( CE(fused_b) + CE(glance) + CE(focus_b) + CE(temporal) + CE(spatial) ) ] / n_branches
      + KL_ratio * KL(w || uniform) + norm_ratio * mean((scale - 1)^2)
'an': fused_b are the per-step pooling-classifier logits and glance/focus the per-frame logits, each with the
target repeated per step/frame; 'tsm'/'x3d': fused_b = glance_final + focus_final, glance/focus the averaged
auxiliary logits. Multi-label targets (B, 3) padded with -1 use column 0, as the original (the dataset permutes
the labels in training).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from models.config import ModelConfig
from models.policies import norm_loss

Criterion = Callable[[dict, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def first_label(target: torch.Tensor) -> torch.Tensor:
    """Returns (B,) class indices: target itself, or column 0 of multi-label targets (B, L) padded with -1."""
    return target[:, 0] if target.dim() == 2 else target


def repeated_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Returns CE of logits (B, ..., C) against target (B,) repeated over the middle dims (mean over all rows)."""
    c = logits.shape[-1]
    reps = math.prod(logits.shape[1:-1])
    return F.cross_entropy(logits.reshape(-1, c), target.repeat_interleave(reps))


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


def plain_loss(outputs: dict, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Returns (CE(logits, y), parts) for the baselines."""
    loss = F.cross_entropy(outputs["logits"], first_label(target))
    return loss, {"loss": float(loss.detach())}


def multi_hot(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Returns (B, C) float 0/1 rows for labels (B,) or multi-label targets (B, L) padded with -1."""
    labels = target if target.dim() == 2 else target.unsqueeze(1)
    rows = torch.zeros(labels.shape[0], num_classes, device=labels.device)
    valid = labels >= 0
    rows[valid.nonzero()[:, 0], labels[valid]] = 1.0
    return rows


def multi_hot_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Returns mean over the batch of -sum_c y_c log softmax(logits)_c for logits (B, C), y = multi_hot(target):
    a video's labels each add their CE (mmaction's soft-label cross-entropy, ResKD on ActivityNet / FCVID)."""
    y = multi_hot(target, logits.shape[-1]).to(logits.dtype)
    return -(y * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def multi_hot_loss(outputs: dict, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Returns (multi_hot_ce(logits, target), parts): the baselines' loss with `multilabel_ce='sum'`."""
    loss = multi_hot_ce(outputs["logits"], target)
    return loss, {"loss": float(loss.detach())}
