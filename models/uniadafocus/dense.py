"""The dense models the papers compare Uni-AdaFocus with, on the same data (the benchmark's baselines): the focus
backbone on T_g full frames ('tsm': TSM; 'x3d': the X3D focus at its published side, or a TAdaConv focus as its
own 8-frame model), and for 'an' MobileNetV2 + ResNet-50 both on T_g full frames (DenseGlanceFocus)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from archs import create_backbone
from models.core.config import ModelConfig
from models.core.flops import clip_breakdown, frame_macs
from models.core.interface import VideoModel
from models.core.registry import build_model

# X3D-S / M / L are published at 160 / 224 / 312 px (Feichtenhofer 2020, Table 2)
X3D_SIDES = {"x3d_s": 160, "x3d_m": 224, "x3d_l": 312}


class DenseGlanceFocus(VideoModel):
    """Dense reference of the 'an' preset: MobileNetV2 and ResNet-50 both on all T full frames; pooled
    features concatenated, one linear classifier, mean over frames. forward(x (B, T, 3, H, W)) returns
    {'logits' (B, C), 'exit_logits' (B, 1, C)}."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.glance = create_backbone(cfg.glance_arch, **cfg.backbone_kwargs("glance"))
        self.focus = create_backbone(cfg.focus_arch, **cfg.backbone_kwargs("focus"))
        self.fc = nn.Linear(self.glance.feature_dim + self.focus.feature_dim, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = x.shape[:2]
        flat = x.flatten(0, 1)
        feat = torch.cat([self.glance.features(flat).mean((2, 3)), self.focus.features(flat).mean((2, 3))], 1)
        logits = self.fc(feat).view(b, t, -1).mean(1)
        return {"logits": logits, "exit_logits": logits.unsqueeze(1)}

    def backbones(self) -> list[nn.Module]:
        return [self.glance, self.focus]

    def gflops_breakdown(self) -> dict:
        """GFLOPs per video: both nets and the classifier on T frames."""
        s, t = self.cfg.input_size, self.cfg.num_segments
        macs = sum(frame_macs(net, s) for net in (self.glance, self.focus))
        return clip_breakdown(t * macs, t * self.fc.in_features * self.fc.out_features)


def dense_counterpart(cfg: ModelConfig) -> tuple[ModelConfig, Callable[[ModelConfig], nn.Module]]:
    """Returns (config, build) of the dense baseline of a Uni-AdaFocus config (same classes, T_g frames, random
    initialisation)."""
    common = dict(preset=cfg.preset, num_classes=cfg.num_classes, pretrain="none")
    tg = cfg.num_glance_segments
    if cfg.preset == "an":
        dense = ModelConfig(model="tsn", num_segments=tg, glance_arch=cfg.glance_arch, **common)
        return dense, DenseGlanceFocus
    if cfg.preset == "tsm":
        return ModelConfig(model="tsm", num_segments=tg, focus_arch=cfg.focus_arch, **common), build_model
    if cfg.focus_arch in X3D_SIDES:
        side = X3D_SIDES[cfg.focus_arch]
        dense = ModelConfig(
            model="x3d", focus_arch=cfg.focus_arch, num_segments=tg, input_size=side, **common
        )
        return dense, build_model
    # a TAdaConv focus: its K400 model, 8 frames at 224^2 (TAdaConv's tada2d_8x8)
    dense = ModelConfig(model="tada", focus_arch=cfg.focus_arch, num_segments=8, input_size=224, **common)
    return dense, build_model
