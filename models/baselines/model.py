"""Plain baselines on full frames: TSN / TSM (2-D backbone + segment consensus) and X3D (clip network).

`forward(x (B, T, 3, H, W))` -> dict with `logits` (B, C) and `exit_logits` (B, 1, C). Key names follow the
original TSM repository (`base_model.*`, `new_fc.*`) and PySlowFast (X3D, under `net.`), so their checkpoints load.
"""

from __future__ import annotations

import torch
from torch import nn

from archs import create_backbone
from models.core.config import ModelConfig
from models.core.flops import clip_breakdown, frame_macs, linear_macs, x3d_clip_macs
from models.core.heads import TSN
from models.core.interface import VideoModel
from models.core.weights import load_backbone_weights


class TSNBaseline(VideoModel, TSN):
    """TSN (model 'tsn') or TSM (model 'tsm', temporal shift) on T full frames; backbone `cfg.focus_arch`.

    Keys `base_model.*`, `new_fc.*` as in TSM checkpoints; `new_fc` is an ordinary (attached) head, applied per
    frame before the average (the TSM code) or, with `cfg.consensus_first`, once to the averaged feature (mmaction).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        base = create_backbone(
            cfg.focus_arch,
            shift=cfg.shift,
            n_segment=cfg.num_segments,
            shift_div=cfg.shift_div,
            **cfg.backbone_kwargs("focus"),
        )
        super().__init__(
            base, cfg.num_classes, cfg.dropout, aux_head=False, consensus_first=bool(cfg.consensus_first)
        )
        self.cfg = cfg

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Returns `logits` (B, C) (mean over segments), `exit_logits` (B, 1, C) and the backbone's `featmap`
        (B*T, D, h, w) for x (B, T, 3, H, W)."""
        out = super().forward(x.flatten(0, 1), x.shape[1])
        final = out["final"]
        return {"logits": final, "exit_logits": final.unsqueeze(1), "featmap": out["featmap"]}

    def kd_classifier(self) -> nn.Linear:
        return self.new_fc

    def backbones(self) -> list[nn.Module]:
        return [self.base_model]

    def load_pretrained(self) -> TSNBaseline:
        """Loads the backbone's ImageNet weights (nothing with `cfg.pretrain == 'none'`)."""
        if self.cfg.pretrain not in ("none", "", None):
            load_backbone_weights(self.base_model, self.cfg.focus_arch, self.cfg.focus_weights)
        return self

    def gflops_breakdown(self) -> dict:
        """GFLOPs per video: T frames through the backbone and the head."""
        t = self.cfg.num_segments
        heads = 1 if self.consensus_first else t  # consensus first: one classifier call per video
        return clip_breakdown(
            t * frame_macs(self.base_model, self.cfg.input_size), heads * linear_macs(self.new_fc)
        )


class X3DBaseline(VideoModel):
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
        """Returns `logits` (B, C), `exit_logits` (B, 1, C) and the conv_5 `featmap` (B, D, T, h, w) for
        x (B, T, 3, H, W)."""
        featmap = self.net.featmap(x.permute(0, 2, 1, 3, 4))
        logits = self.net.head_from_featmap(featmap)
        return {"logits": logits, "exit_logits": logits.unsqueeze(1), "featmap": featmap}

    def kd_featmap(self, outputs: dict) -> torch.Tensor:
        """Returns the conv_5 map per frame, (B, T, D, h, w) (X3D keeps the time axis)."""
        return outputs["featmap"].transpose(1, 2)

    def backbones(self) -> list[nn.Module]:
        return [self.net]

    def load_pretrained(self) -> X3DBaseline:
        """Loads the network's Kinetics weights (nothing with `cfg.pretrain == 'none'`)."""
        if self.cfg.pretrain not in ("none", "", None):
            load_backbone_weights(self.net, self.cfg.focus_arch, self.cfg.focus_weights)
        return self

    def gflops_breakdown(self) -> dict:
        """GFLOPs per video: one T-frame clip through X3D (its head included)."""
        return clip_breakdown(x3d_clip_macs(self.net, self.cfg.input_size, self.cfg.num_segments), 0)
