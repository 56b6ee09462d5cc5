"""Plain baselines on full frames: TSN / TSM (2-D backbone + segment consensus) and X3D (clip network).

Same API as Uni-AdaFocus: `forward(x (B, T, 3, H, W))` -> dict with `logits` (B, C) and `exit_logits` (B, 1, C);
`param_groups()`. Key names follow the original TSM repository (`base_model.*`, `new_fc.*`) and PySlowFast (X3D),
so their checkpoints load.
"""

from __future__ import annotations

import torch
from torch import nn

from archs import create_backbone
from models.config import ModelConfig
from models.heads import TSN


class TSNBaseline(TSN):
    """TSN (model 'tsn') or TSM (model 'tsm', temporal shift) on T full frames; backbone `cfg.focus_arch`.

    Keys `base_model.*`, `new_fc.*` as in TSM checkpoints; `new_fc` is an ordinary (attached) head.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        base = create_backbone(
            cfg.focus_arch,
            shift=cfg.shift,
            n_segment=cfg.num_segments,
            shift_div=cfg.shift_div,
            **cfg.backbone_kwargs(cfg.focus_arch),
        )
        super().__init__(base, cfg.num_classes, cfg.dropout, aux_head=False, partial_bn=cfg.partial_bn)
        self.cfg = cfg

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Returns `logits` (B, C) (mean over segments) and `exit_logits` (B, 1, C) for x (B, T, 3, H, W)."""
        final = super().forward(x.flatten(0, 1), x.shape[1])["final"]
        return {"logits": final, "exit_logits": final.unsqueeze(1)}

    def param_groups(self) -> list[dict]:
        """Returns [{params, lr_mult, decay_mult, name}]: backbone and head at the base learning rate."""
        groups = [("base_model", self.base_model), ("new_fc", self.new_fc)]
        return [
            {
                "params": [q for q in m.parameters() if q.requires_grad],
                "lr_mult": 1.0,
                "decay_mult": 1.0,
                "name": name,
            }
            for name, m in groups
        ]


class X3DBaseline(nn.Module):
    """X3D (`cfg.focus_arch`, e.g. x3d_s / x3d_m / x3d_l) on T full frames at `cfg.input_size`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = create_backbone(
            cfg.focus_arch,
            num_classes=cfg.num_classes,
            num_frames=cfg.num_segments,
            crop_size=cfg.input_size,
            **cfg.x3d_overrides,
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns `logits` (B, C) and `exit_logits` (B, 1, C) for x (B, T, 3, H, W)."""
        logits = self.net(x.permute(0, 2, 1, 3, 4))
        return {"logits": logits, "exit_logits": logits.unsqueeze(1)}

    def param_groups(self) -> list[dict]:
        """Returns one group with every parameter at the base learning rate."""
        return [{"params": list(self.net.parameters()), "lr_mult": 1.0, "decay_mult": 1.0, "name": "net"}]
