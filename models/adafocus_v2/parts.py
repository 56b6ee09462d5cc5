"""AdaFocus V2 building blocks: the coarse-to-fine frame order, the two deterministic patch policies and the
pooling classifier on concatenated glance + focus features.

Module names give V2's state_dict keys: `policy_stn.encoder.{0,1,4,5}`, `policy_stn.gru.*`, `policy_stn.fc.0.*`
(AN), `classifier.mlp.layers.{0,1}`, `classifier.classifiers.{i}.1` (AN).
"""

from __future__ import annotations

import torch
from torch import nn

from models.core.heads import MLP


def coarse_to_fine_order(num_frames: int) -> list[int]:
    """Returns V2's `--sample` order of T frames: the middle frame, both ends, then the midpoints of the gaps
    breadth-first; 16 -> [7, 0, 15, 3, 11, 1, 5, 9, 13, 2, 4, 6, 8, 10, 12, 14], 8 -> [3, 0, 7, 1, 5, 2, 4, 6]."""
    last = num_frames - 1
    order = [last // 2, 0, last] if num_frames > 2 else list(range(num_frames))
    seen = set(order)
    gaps = [(0, last // 2), (last // 2, last)]
    while len(order) < num_frames:
        nxt = []
        for a, b in gaps:
            mid = (a + b) // 2
            if mid not in seen:
                seen.add(mid)
                order.append(mid)
            if b - a > 1:
                nxt += [(a, mid), (mid, b)]
        gaps = nxt
    return order


class RecurrentPolicy(nn.Module):
    """V2-AN `PolicySTN`: per-frame encoder (1x1 conv 64 + BN + tanh, linear + BN1d + tanh), a GRU over the
    frames (h0 = 0) and a sigmoid head giving one patch position [y, x] per frame, deterministically."""

    def __init__(self, in_channels: int, map_size: int, hidden: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=1, bias=False),
            nn.BatchNorm2d(64),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(64 * map_size * map_size, hidden),
            nn.BatchNorm1d(hidden),
            nn.Tanh(),
        )
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.fc = nn.Sequential(nn.Linear(hidden, 2), nn.Sigmoid())

    def forward(self, featmap: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Returns actions (B, T, 2) in [0, 1] from frame maps (B*T, C, h, w), frame-major."""
        z = self.encoder(featmap).view(-1, num_frames, self.gru.hidden_size)
        return self.fc(self.gru(z)[0])


class VideoPolicy(nn.Module):
    """V2-SS policy: the T glance maps stacked on channels -> 1x1 conv 64 + BN + tanh -> MLP (hidden, 512) with
    BN + tanh -> sigmoid [y, x]: one patch position per video."""

    def __init__(self, in_channels: int, num_frames: int, map_size: int, hidden: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(num_frames * in_channels, 64, kernel_size=1, bias=False),
            nn.BatchNorm2d(64),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(64 * map_size * map_size, hidden),
            nn.BatchNorm1d(hidden),
            nn.Tanh(),
            nn.Linear(hidden, 512),
            nn.BatchNorm1d(512),
            nn.Tanh(),
            nn.Linear(512, 2),
            nn.Sigmoid(),
        )

    def forward(self, featmap: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Returns actions (B, 2) from frame maps (B*T, C, h, w), frame-major."""
        h, w = featmap.shape[-2:]
        return self.encoder(featmap.reshape(-1, num_frames * featmap.shape[1], h, w))


class ConcatPoolingClassifier(nn.Module):
    """V2's FrameExit-style classifier: one MLP on [glance, focus] features of each frame, running max over the
    frames, one head per step (not shared); step t sees frames 0..t of the (reordered) sequence."""

    def __init__(
        self, in_dim: int, num_steps: int, num_classes: int, dropout: float, hidden: int = 4096
    ) -> None:
        super().__init__()
        self.mlp = MLP(in_dim, hidden)
        self.classifiers = nn.ModuleList(
            nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes)) for _ in range(num_steps)
        )

    def forward(self, glance_feat: torch.Tensor, focus_feat: torch.Tensor) -> torch.Tensor:
        """Returns step logits (B, T, C) for glance_feat (B, T, Dg) and focus_feat (B, T, Df)."""
        b, t = glance_feat.shape[:2]
        z = self.mlp(torch.cat([glance_feat, focus_feat], dim=2).reshape(b * t, -1)).view(b, t, -1)
        z = z.cummax(dim=1)[0]
        return torch.stack([head(z[:, i]) for i, head in enumerate(self.classifiers)], dim=1)
