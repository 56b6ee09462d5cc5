"""The FrameExit pooling classifier of the AN preset (module names give the original keys
`classifier.global_mlp.layers.{0,1}`, `classifier.global_classifiers.{i}.1`, `classifier.local_*`)."""

from __future__ import annotations

import torch
from torch import nn

from models.core.heads import MLP


class PoolingClassifier(nn.Module):
    """FrameExit-style classifier: per-frame MLPs, running max over time, one linear head per step.

    Steps 0..T_g-1 classify the running max of the glance embeddings; steps T_g..T_g+K-1 classify
    [running max of the focus embeddings, final glance running max] (so every focus step also sees all glance
    frames). Heads are not shared between steps.
    """

    def __init__(
        self,
        glance_dim: int,
        focus_dim: int,
        num_glance: int,
        num_focus: int,
        num_classes: int,
        dropout: float,
        hidden: int = 4096,
    ) -> None:
        super().__init__()
        self.num_glance = num_glance
        self.num_focus = num_focus
        self.global_mlp = MLP(glance_dim, hidden)
        self.local_mlp = MLP(focus_dim, hidden)
        self.global_classifiers = nn.ModuleList(
            nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes)) for _ in range(num_glance)
        )
        self.local_classifiers = nn.ModuleList(
            nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, num_classes)) for _ in range(num_focus)
        )

    def glance_part(self, glance_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the glance step logits (B, T_g, C) and the final glance running max (B, hidden) for
        glance_feat (B, T_g, Dg); the latter is what every focus step sees."""
        b, t = glance_feat.shape[:2]
        z1 = self.global_mlp(glance_feat.reshape(b * t, -1)).view(b, t, -1).cummax(dim=1)[0]
        steps = [head(z1[:, i]) for i, head in enumerate(self.global_classifiers)]
        return torch.stack(steps, dim=1), z1[:, -1]

    def focus_part(self, last_glance: torch.Tensor, focus_feat: torch.Tensor) -> torch.Tensor:
        """Returns the focus step logits (B, k, C) for the final glance running max (B, hidden) and
        focus_feat (B, k, Df), k <= K (step j sees the first j+1 focus frames only)."""
        b, k = focus_feat.shape[:2]
        z2 = self.local_mlp(focus_feat.reshape(b * k, -1)).view(b, k, -1).cummax(dim=1)[0]
        steps = [self.local_classifiers[i](torch.cat([z2[:, i], last_glance], dim=1)) for i in range(k)]
        return torch.stack(steps, dim=1)

    def forward(self, glance_feat: torch.Tensor, focus_feat: torch.Tensor) -> torch.Tensor:
        """Returns step logits (B, T_g + k, C) for glance_feat (B, T_g, Dg) and focus_feat (B, k, Df), k <= K."""
        # Same dropout (RNG) order as one pass over all steps: glance heads first, then focus heads.
        glance_steps, last_glance = self.glance_part(glance_feat)
        return torch.cat([glance_steps, self.focus_part(last_glance, focus_feat)], dim=1)
