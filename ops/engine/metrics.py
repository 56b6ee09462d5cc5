"""Validation metrics: top-k accuracy (multi-label targets scored on column 0, as the original AN ``validate``),
mAP as the original ``cal_map``, running averages."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from models.core.losses import first_label


def _as_tensor(x: torch.Tensor | np.ndarray | Sequence) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def topk_hits(logits: torch.Tensor, target: torch.Tensor, topk: Sequence[int] = (1, 5)) -> torch.Tensor:
    """Returns the number of videos whose label is among the top k logits, one count per k, as a float tensor (len(topk),)
    on the logits' device (no host sync). logits (n, C); target (n,) or (n, L) padded with -1 (column 0 is used);
    k is capped at C."""
    target = first_label(target).long()
    num_classes = logits.shape[1]
    maxk = min(max(topk), num_classes)
    pred = logits.topk(maxk, dim=1, largest=True, sorted=True).indices  # (n, maxk)
    hit = pred.eq(target.view(-1, 1).to(pred.device))
    return torch.stack([hit[:, : min(k, num_classes)].any(dim=1).sum() for k in topk]).float()


def accuracy(
    logits: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, topk: Sequence[int] = (1, 5)
) -> list[float]:
    """Top-k accuracies in percent, one float per k.

    logits (n, C); target (n,) int or (n, L) padded with -1 (column 0 is used). k is capped at C.
    """
    logits, target = _as_tensor(logits), _as_tensor(target)
    n = logits.shape[0]
    if n == 0:
        raise ValueError("accuracy of an empty batch")
    return [100.0 * h / n for h in topk_hits(logits, target, topk).tolist()]


VIEW_FUSIONS = ("logits", "softmax")


def fuse_views(logits: torch.Tensor, how: str) -> torch.Tensor:
    """Returns the scores of a video from those of its views, logits (B, V, ...) -> (B, ...) over dim 1: 'logits'
    averages the raw logits (Uni-AdaFocus, TSM, X3D); 'softmax' averages the softmax probabilities over the last
    dim (Efficient-3DCNNs' test.py; TAdaConv sums them, the same up to a factor V) and returns their log, a logit
    vector whose softmax is that average (log-mean-exp of the log-softmax). One view is returned as it is."""
    if logits.shape[1] == 1:
        return logits[:, 0]
    if how == "logits":
        return logits.mean(1)
    if how != "softmax":
        raise ValueError(f"unknown view fusion {how!r} (choose from {', '.join(VIEW_FUSIONS)})")
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return torch.logsumexp(log_p, dim=1) - math.log(logits.shape[1])


def multi_hot(target: torch.Tensor | np.ndarray, num_classes: int, remap_labels: bool = True) -> torch.Tensor:
    """(n, num_classes) bool multi-hot matrix from a target (n,) or (n, L) padded with -1.

    remap_labels=True reproduces the original ``get_multi_hot(..., assumes_starts_zero=False)``: every label
    is replaced by its rank among the distinct labels present in ``target``. That is the identity when all
    classes occur (full ActivityNet/FCVID val sets) and silently misaligns columns otherwise.
    """
    t = _as_tensor(target).long().clone()
    if t.dim() == 1:
        t = t.view(-1, 1)
    valid = t >= 0
    if remap_labels and bool(valid.any()):
        t[valid] = torch.unique(t[valid], sorted=True, return_inverse=True)[1]
    if bool((t[valid] >= num_classes).any()):
        raise ValueError(f"labels must be < num_classes={num_classes}")
    gt = torch.zeros(t.shape[0], num_classes + 1, dtype=torch.bool)
    rows = torch.arange(t.shape[0]).view(-1, 1).expand_as(t)
    # -1 padding lands in the extra last column, which is dropped (as the original does).
    gt[rows[valid], t[valid]] = True
    return gt[:, :num_classes]


def average_precisions(
    scores: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    apply_softmax: bool = True,
    remap_labels: bool = True,
) -> torch.Tensor:
    """(C,) float64 per-class average precision in [0, 1] (classes without positives count as 0).

    scores (n, C); softmax over classes first (``cal_map``) unless apply_softmax=False
    (``cal_map_nosoftmax``). AP_c = sum of precision@rank over the positives / max(#positives, 1).
    """
    scores = _as_tensor(scores).detach().cpu()
    if not scores.is_floating_point():
        scores = scores.float()
    n, num_classes = scores.shape
    gt = multi_hot(_as_tensor(target).cpu(), num_classes, remap_labels)
    probs = F.softmax(scores, dim=1) if apply_softmax else scores
    order = torch.sort(probs, dim=0, descending=True, stable=True).indices  # (n, C) per column
    truth = torch.gather(gt, 0, order).double()
    precision = truth.cumsum(0) / torch.arange(1, n + 1, dtype=torch.float64).view(-1, 1)
    return (precision * truth).sum(0) / truth.sum(0).clamp(min=1.0)


def mean_average_precision(
    scores: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    apply_softmax: bool = True,
    remap_labels: bool = True,
) -> float:
    """mAP in percent, as the original ``cal_map``: the mean over all C columns of
    :func:`average_precisions`. scores (n, C); target (n,) or (n, L) padded with -1."""
    return float(average_precisions(scores, target, apply_softmax, remap_labels).mean()) * 100.0


class AverageMeter:
    """Running value / sum / count / average of a scalar (e.g. loss, accuracy per batch)."""

    def __init__(self, name: str = "", fmt: str = ":f") -> None:
        self.name, self.fmt = name, fmt
        self.reset()

    def reset(self) -> None:
        self.val, self.sum, self.count, self.avg = 0.0, 0.0, 0, 0.0

    def update(self, val: float, n: int = 1) -> None:
        self.val = float(val)
        self.sum += float(val) * n
        self.count += n
        self.avg = self.sum / self.count if self.count else 0.0

    def __str__(self) -> str:
        return ("{name} {val" + self.fmt + "} ({avg" + self.fmt + "})").format(**self.__dict__)
