"""Uni-AdaFocus policy network: spatial policy, temporal policy, frame selection and the policies' auxiliary logits.

Shapes: B videos, T glance frames, N candidate frames, K selected frames, C channels, h x w feature map.
Module and parameter names (``encoder.{0,1,3,4,6,7,9}``, ``Tconv.{0,1,3,4,6}``) equal the original checkpoints'.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.patches import deformable_patch_grid


def clip_layout(featmap: torch.Tensor, num_frames: int, channels: int) -> torch.Tensor:
    """Returns (B, C, T, h, w) from frame-major maps (B*T, C, h, w) or channel-stacked maps (B, T*C, h, w)."""
    h, w = featmap.shape[-2:]
    return featmap.reshape(-1, num_frames, channels, h, w).permute(0, 2, 1, 3, 4).contiguous()


class SpatialPolicy(nn.Module):
    """3-D conv policy on the glance feature maps; outputs sigmoid actions [y, x, scale_h, scale_w].

    ``per_frame=True`` (AN): the last conv has kernel (1, h, w) -> one action per glance frame, (B, 4, T).
    ``per_frame=False`` (TSM / X3D): kernel (T, h, w) -> one action per video, (B, 4).
    """

    def __init__(
        self, in_channels: int, hidden: int, num_glance: int, map_size: int, per_frame: bool
    ) -> None:
        super().__init__()
        self.num_glance = num_glance
        self.map_size = map_size
        self.per_frame = per_frame
        last_kernel = (1 if per_frame else num_glance, map_size, map_size)
        self.encoder = nn.Sequential(
            nn.Conv3d(in_channels, hidden, kernel_size=1, bias=False),
            nn.BatchNorm3d(hidden),
            nn.ReLU(),
            nn.Conv3d(hidden, hidden, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(hidden),
            nn.ReLU(),
            nn.Conv3d(hidden, hidden, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(hidden),
            nn.ReLU(),
            nn.Conv3d(hidden, 4, kernel_size=last_kernel, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, featmap: torch.Tensor) -> torch.Tensor:
        """Returns actions (B, 4, T) if per_frame else (B, 4), from featmap (B, C, T, h, w)."""
        if featmap.dim() != 5 or featmap.shape[2] != self.num_glance or featmap.shape[-1] != self.map_size:
            raise ValueError(
                f"expected featmap (B, C, {self.num_glance}, {self.map_size}, {self.map_size}), "
                f"got {tuple(featmap.shape)}"
            )
        out = self.encoder(featmap)  # (B, 4, T or 1, 1, 1)
        return out.flatten(2) if self.per_frame else out.flatten(1)


def interpolate_actions(actions: torch.Tensor, num_candidates: int) -> torch.Tensor:
    """Returns per-candidate actions (B, N, 4): linear interpolation of per-glance-frame actions (B, 4, T) to N."""
    out = F.interpolate(actions, size=num_candidates, mode="linear", align_corners=False)
    return out.permute(0, 2, 1).contiguous()


class TemporalPolicy(nn.Module):
    """1-D (as (3, 1) 2-D) conv over the glance frame vectors -> a distribution over the T glance bins."""

    def __init__(self, in_dim: int, hidden: int, num_glance: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.num_glance = num_glance
        self.temperature = temperature
        self.Tconv = nn.Sequential(
            nn.Conv2d(in_dim, hidden, kernel_size=(3, 1), padding=(1, 0), bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, kernel_size=(3, 1), padding=(1, 0), bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, 1, kernel_size=1, bias=False),
        )

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (w, w_T), each (B, T): softmax(logits) and softmax(logits / temperature).

        ``feat``: per-frame vectors (B*T, D) (frame-major within each video) or (B, T, D).
        """
        x = (
            feat.reshape(-1, self.num_glance, self.in_dim).permute(0, 2, 1).contiguous().unsqueeze(-1)
        )  # (B, D, T, 1)
        logits = self.Tconv(x).flatten(1)
        return logits.softmax(dim=1), (logits / self.temperature).softmax(dim=1)


def policy_thresholds(
    batch: int,
    num_select: int,
    train: bool,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Returns CDF thresholds (B, K) = (i + u_i) / K: u ~ U(0, 1) (stratified) in training, u = 0.5 in eval.

    The training draw is one float32 (B, K) uniform tensor, the same RNG use as ``torch.rand_like`` in the
    reference, so a seeded run selects the same frames.
    """
    base = torch.arange(num_select, device=device).float().repeat(batch, 1)
    if train:
        offset = torch.rand(batch, num_select, generator=generator, device=device)
    else:
        offset = torch.full_like(base, 0.5)
    return (base + offset) / num_select


def _select(
    w: torch.Tensor, num_candidates: int, thresholds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse-CDF frame selection; returns (indices (B, K) long, real positions (B, K) = quantile * N)."""
    w = w.detach()  # selection is not differentiable; also keeps the in-place knot fix out of autograd
    b, t = w.shape
    cdf = torch.cat([w.new_zeros(b, 1), w.cumsum(dim=1)], dim=1)  # (B, T + 1), leading 0
    cdf[:, -1] = 1.0  # the cumulative sum may end slightly off 1
    # First knot with cdf >= q (argmax of a bool returns the first True: ties go to the lower knot).
    # The clamp keeps bin 0 for q == 0 (possible in training), which would otherwise index knot -1.
    hit = cdf.unsqueeze(2) >= thresholds.unsqueeze(1)  # (B, T + 1, K)
    bin_idx = hit.to(torch.uint8).max(dim=1)[1].clamp(1, t) - 1  # (B, K); uint8: ONNX has no ArgMax of bool
    x1, x2 = bin_idx / t, (bin_idx + 1) / t
    y1, y2 = cdf.gather(1, bin_idx), cdf.gather(1, bin_idx + 1)
    # Linear inversion inside the bin, in the reference's operation order (floor() is sensitive to it).
    quantile = (x2 * (thresholds - y1) - x1 * (thresholds - y2)) / (y2 - y1)
    positions = quantile * num_candidates
    return enforce_order(torch.floor(positions).long(), num_candidates), positions


def enforce_order(indices: torch.Tensor, num_candidates: int) -> torch.Tensor:
    """Returns (B, K) indices made strictly increasing, then capped at N - K + i (K distinct, in range).

    The reference loops ``idx_i = idx_i if idx_i > idx_{i-1} else idx_{i-1} + 1`` over i; for integers this is
    ``max(idx_i, idx_{i-1} + 1)``, and subtracting i turns it into a running max: i + cummax_j<=i(idx_j - j).
    """
    k = indices.shape[1]
    steps = torch.arange(k, device=indices.device)
    ordered = (indices - steps).cummax(dim=1)[0] + steps
    return torch.minimum(ordered, num_candidates - k + steps)


def sample_indices(
    w: torch.Tensor,
    num_candidates: int,
    num_select: int,
    train: bool = False,
    *,
    generator: torch.Generator | None = None,
    thresholds: torch.Tensor | None = None,
    return_positions: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Returns K sorted distinct candidate positions (B, K) long (0-based, without the b*N offset).

    ``w`` (B, T): temporal weights (detached by the caller), a piecewise-constant density over T equal bins.
    With ``return_positions`` also returns the real-valued positions (B, K) (quantile * N, before floor).
    ``thresholds`` (B, K) overrides the drawn/fixed thresholds.
    """
    if thresholds is None:
        thresholds = policy_thresholds(w.shape[0], num_select, train, generator=generator, device=w.device)
    idx, positions = _select(w, num_candidates, thresholds.to(w.dtype))
    return (idx, positions) if return_positions else idx


def quantile_positions(
    w: torch.Tensor,
    num_candidates: int,
    num_select: int,
    train: bool = False,
    *,
    generator: torch.Generator | None = None,
    thresholds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Returns the real-valued frame positions (B, K) = quantile * N that ``sample_indices`` floors."""
    return sample_indices(
        w,
        num_candidates,
        num_select,
        train,
        generator=generator,
        thresholds=thresholds,
        return_positions=True,
    )[1]


def offset_indices(indices: torch.Tensor, num_candidates: int) -> torch.Tensor:
    """Returns flat indices (B*K,) into candidates stacked as (B*N, ...): indices (B, K) + b * N."""
    offset = torch.arange(indices.shape[0], device=indices.device).unsqueeze(1) * num_candidates
    return (indices + offset).reshape(-1)


def mc_keep_masks(
    w: torch.Tensor, num_drop: int, samples: int = 128, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Returns float masks (num_drop, B, samples, T): level i keeps all frames but i drawn from Multinomial(w).

    One ``torch.multinomial`` call per level i >= 1 on the (B*samples, T) replicated weights, without
    replacement, as in the reference, so a seeded run draws the same frames.
    """
    b, t = w.shape
    probs = w.detach().unsqueeze(1).repeat(1, samples, 1).reshape(b * samples, t)
    masks = torch.ones(num_drop, b * samples, t, dtype=w.dtype, device=w.device)
    for i in range(1, num_drop):
        dropped = torch.multinomial(probs, i, replacement=False, generator=generator)
        masks[i].scatter_(1, dropped, 0.0)
    return masks.reshape(num_drop, b, samples, t)


def mc_temporal_logits(
    glance_logits: torch.Tensor,
    w: torch.Tensor,
    num_drop: int,
    samples: int = 128,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Returns Monte-Carlo drop-frame weighted logits (B, C) from per-frame logits (B, T, C) and weights (B, T).

    For each level i < num_drop and each replica, i frames are dropped and the rest are averaged with weights
    w / stopgrad(sum of kept w); the result is the mean over levels and replicas. The gradient reaches w only
    through the numerator (as in the reference, the normaliser is detached).
    """
    b, t, c = glance_logits.shape
    masks = mc_keep_masks(w, num_drop, samples, generator=generator)
    total = glance_logits.new_zeros(b, samples, c)
    for i in range(num_drop):
        kept = w.unsqueeze(1) * masks[i]  # (B, S, T)
        # Elementwise product + sum over T (not bmm) keeps the reference's summation order (bitwise equal to it on AVX2).
        weighted = (kept.unsqueeze(-1) * glance_logits.unsqueeze(1)).sum(dim=2)  # (B, S, C)
        total = total + weighted / kept.sum(dim=2, keepdim=True).detach()
    return (total / num_drop).mean(dim=1)


def norm_loss(actions: torch.Tensor) -> torch.Tensor:
    """Returns mean((scale - 1)^2) over the scale outputs of actions (B, 4) or (B, 4, T) (pulls to 224 px)."""
    return ((actions[:, 2:4] - 1) ** 2).mean()


def featmap_crop_logits(
    featmap: torch.Tensor,
    actions: torch.Tensor,
    feat_patch: int,
    input_patch: int,
    aux_fc: Callable[[torch.Tensor], torch.Tensor],
    frame_size: int = 224,
) -> torch.Tensor:
    """Returns spatial auxiliary logits (B, n_cls) from crops of the glance feature map.

    ``featmap`` (B, C, T, h, w) is detached here (only the policy learns from this loss); ``actions`` is (B, 4)
    (one crop for all T frames: TSM/X3D) or (B, 4, T) (one per frame: AN). The crop uses image_size = h,
    output side ``feat_patch`` and the pixel patch ``input_patch`` for the scale; crops are averaged over T
    and the feat_patch^2 positions, then ``aux_fc`` (C -> n_cls) is applied. ``frame_size``: the pixel side of
    the frames the actions refer to (sets the region range, see models.core.patches.region_range).
    """
    b, c, t, h, w = featmap.shape
    frames = featmap.detach().permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    if actions.dim() == 2:
        per_frame = actions.unsqueeze(1).expand(b, t, 4)
    else:
        per_frame = actions.permute(0, 2, 1)
    patches = deformable_patch_grid(
        frames, per_frame.reshape(b * t, 4), feat_patch, h, input_patch, frame_size
    )
    pooled = patches.reshape(b, t, c, feat_patch, feat_patch).mean(dim=(1, 3, 4))
    return aux_fc(pooled)
