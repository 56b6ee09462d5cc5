"""Training criteria shared by the methods: cross-entropy of the first label (single- and multi-label targets) and
the multi-hot cross-entropy, plus the helpers the methods' own losses use (models/<method>/loss.py).

Multi-label targets (B, L) are padded with -1; column 0 is the first label (the dataset permutes the labels in
training).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Criterion = Callable[[dict, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def first_label(target: torch.Tensor) -> torch.Tensor:
    """Returns (B,) class indices: target itself, or column 0 of multi-label targets (B, L) padded with -1."""
    return target[:, 0] if target.dim() == 2 else target


def repeated_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Returns CE of logits (B, ..., C) against target (B,) repeated over the middle dims (mean over all rows)."""
    c = logits.shape[-1]
    reps = math.prod(logits.shape[1:-1])
    return F.cross_entropy(logits.reshape(-1, c), target.repeat_interleave(reps))


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
