"""The glance and focus encoders of Uni-AdaFocus, per preset (attributes set on the model, so the state_dict keys
are the official ones: `global_CNN*`, `local_CNN*`, `aux_fc` / `aux_head`):
- 'an':  per-frame 2-D nets (MobileNetV2 / ResNet) with their own fc heads (`global_CNN_fc`, `local_CNN_fc`);
- 'tsm': TSN-wrapped 2-D nets with temporal shift (`new_fc` on the detached feature, `new_new_fc` attached);
- 'x3d': clip nets (standard head on the detached map) with per-frame heads (`global_CNN_head`, ...): X3D-S /
  X3D-L as published, or any clip net with `featmap` / `head_from_featmap` / `feature_dim` / `last_linear`: an
  Efficient-3DCNNs glance (built without temporal strides, so every glance frame keeps its features) and a
  TAda2D focus. Those two see their own published input convention (InputAdapter: the frames' ImageNet
  normalisation converted in the model to, e.g., BGR 0-255 minus the ActivityNet mean or RGB / 0.45 / 0.225).

`amp` (a dtype or None) is the autocast the engine asked for, applied here to the backbones only when the model
narrows mixed precision to them (`amp_scope == 'backbones'`); their outputs return in float32.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from archs import create_backbone
from archs.names import E3D_ARCHS, TADA_ARCHS, clip_input
from models.core.heads import clip_frame_head, share_clip_head, tsn_net
from models.core.interface import InputSpec
from models.uniadafocus.policies import clip_layout


def build_encoders(model: nn.Module) -> tuple[int, int]:
    """Creates the glance and focus networks (and their heads) on `model`; returns their feature widths
    (glance D_g, focus D_l)."""
    cfg, p = model.cfg, model.cfg.preset
    tg, k, c = cfg.num_glance_segments, cfg.num_focus_segments, cfg.num_classes
    if p == "an":
        model.global_CNN = create_backbone(cfg.glance_arch, **cfg.backbone_kwargs("glance"))
        dg = model.global_CNN.classifier.in_features
        model.global_CNN_fc = nn.Sequential(nn.Dropout(cfg.fc_dropout), nn.Linear(dg, c))
        model.aux_fc = nn.Linear(dg, c)
        model.local_CNN = create_backbone(cfg.focus_arch, **cfg.backbone_kwargs("focus"))
        dl = model.local_CNN.fc.in_features
        model.local_CNN_fc = nn.Sequential(nn.Dropout(cfg.fc_dropout), nn.Linear(dl, c))
        # The ImageNet classifiers stay in the state_dict (checkpoint compatibility) but are never used:
        # freezing them leaves DDP no unused trainable parameter.
        for unused in (model.global_CNN.classifier, model.local_CNN.fc):
            unused.requires_grad_(False)
        return dg, dl
    if p == "tsm":
        model.global_CNN = tsn_net(cfg, "glance", tg)
        model.local_CNN = tsn_net(cfg, "focus", k)
        dg = model.global_CNN.feature_dim
        model.aux_fc = nn.Linear(dg, c)
        return dg, model.local_CNN.feature_dim
    model.global_CNN = clip_backbone(cfg, "glance", tg, cfg.glance_size)
    model.global_CNN_head = clip_frame_head(model.global_CNN, c, cfg.dropout)
    model.local_CNN = clip_backbone(cfg, "focus", k, cfg.patch_size)
    model.local_CNN_head = clip_frame_head(model.local_CNN, c, cfg.dropout)
    dg, dl = model.global_CNN.feature_dim, model.local_CNN.feature_dim
    model.aux_head = nn.Sequential(nn.Linear(dg, c))
    share_x3d_heads(model)
    model.glance_adapter = InputAdapter.between(InputSpec(), clip_input(cfg.glance_arch, cfg.dataset))
    model.focus_adapter = InputAdapter.between(InputSpec(), clip_input(cfg.focus_arch, cfg.dataset))
    return dg, dl


def clip_backbone(cfg, role: str, frames: int, size: int) -> nn.Module:
    """Returns the 'x3d'-preset clip net of `role` for clips of `frames` x size^2: X3D as published; an
    Efficient-3DCNNs net without temporal strides; a TAdaConv net (with the head dropout)."""
    arch = cfg.glance_arch if role == "glance" else cfg.focus_arch
    kw = dict(num_classes=cfg.num_classes, **cfg.backbone_kwargs(role))
    if arch in E3D_ARCHS:
        kw.update(sample_duration=frames, sample_size=size, temporal_stride=False)
    elif arch in TADA_ARCHS:
        kw.update(num_frames=frames, dropout=cfg.dropout)
    else:
        kw.update(num_frames=frames, crop_size=size)
    return create_backbone(arch, **kw)


class InputAdapter(nn.Module):
    """Converts frames normalised one way into another input convention, per channel: y[c] = a[c] * x[src(c)] +
    b[c] with src reversing the channels for BGR (no parameters, no state_dict entries)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, bgr: bool) -> None:
        super().__init__()
        self.register_buffer("scale", scale.view(3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(3, 1, 1), persistent=False)
        self.bgr = bgr

    @staticmethod
    def between(source: InputSpec, target: tuple | None) -> InputAdapter | None:
        """Returns the adapter from frames normalised as `source` (RGB) to `target` = (mean, std, pixel scale,
        bgr) of archs.clip_input, or None when the network takes the frames as they are."""
        if target is None:
            return None
        mean, std, pixel_scale, bgr = target
        order = [2, 1, 0] if bgr else [0, 1, 2]
        m_in = torch.tensor(source.mean, dtype=torch.float64)[order]
        s_in = torch.tensor(source.std, dtype=torch.float64)[order]
        m, s = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
        unit = source.pixel_scale / pixel_scale  # pixel = (x * s_in + m_in) * source.pixel_scale
        return InputAdapter((unit * s_in / s).float(), ((unit * m_in - m) / s).float(), bgr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the converted frames (..., 3, H, W)."""
        return (x.flip(-3) if self.bgr else x) * self.scale + self.shift


def share_x3d_heads(model: nn.Module) -> None:
    """'x3d' preset: copies each clip backbone's head (X3D: lin_5, projection; others: the last Linear) into its
    per-frame head (done after loading the pretrained weights too, as the original)."""
    share_clip_head(model.global_CNN, model.global_CNN_head)
    share_clip_head(model.local_CNN, model.local_CNN_head)


def _autocast(device: torch.device, amp: torch.dtype | None):
    return torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()


def encode_glance(
    model: nn.Module, flat: torch.Tensor, b: int, amp: torch.dtype | None
) -> dict[str, torch.Tensor]:
    """Glance net on frames flat (B*T_g, 3, G, G) at the glance resolution; returns featmap (B, D, T_g, h, w),
    feat (B, T_g, D), frame_logits (B, T_g, C) and, for 'tsm'/'x3d', final (B, C) and avg (B, C)."""
    t, p = flat.shape[0] // b, model.cfg.preset
    if p == "an":
        with _autocast(flat.device, amp):
            fm = model.global_CNN.features(flat)
        fm = fm.float() if amp is not None else fm
        feat = fm.mean((2, 3))
        return {
            "featmap": clip_layout(fm, t, fm.shape[1]),
            "feat": feat.view(b, t, -1),
            "frame_logits": model.global_CNN_fc(feat).view(b, t, -1),
        }
    if p == "tsm":
        out = model.global_CNN(flat, t)
        fm = out["featmap"]
        return {
            "featmap": clip_layout(fm, t, fm.shape[1]),
            "feat": out["feat"].view(b, t, -1),
            "frame_logits": out["reg_frames"],
            "final": out["final"],
            "avg": out["reg"],
        }
    clips = flat.view(b, t, *flat.shape[1:])
    if model.glance_adapter is not None:
        clips = model.glance_adapter(clips)
    fm, final, feat = _x3d(model.global_CNN, clips, amp)
    logits = model.global_CNN_head(feat)
    return {"featmap": fm, "feat": feat, "frame_logits": logits, "final": final, "avg": logits.mean(1)}


def encode_focus(
    model: nn.Module, patches: torch.Tensor, clips: int, amp: torch.dtype | None
) -> dict[str, torch.Tensor]:
    """Focus net on patches (clips*K, 3, P, P); returns feat (clips, K, D), frame_logits (clips, K, C) and,
    for 'tsm'/'x3d', final (clips, C) and avg (clips, C)."""
    k, p = patches.shape[0] // clips, model.cfg.preset
    if p == "an":
        with _autocast(patches.device, amp):
            fm = model.local_CNN.features(patches)
        feat = (fm.float() if amp is not None else fm).mean((2, 3))
        return {"feat": feat.view(clips, k, -1), "frame_logits": model.local_CNN_fc(feat).view(clips, k, -1)}
    if p == "tsm":
        out = model.local_CNN(patches, k)
        return {"frame_logits": out["reg_frames"], "final": out["final"], "avg": out["reg"]}
    patches = patches.view(clips, k, *patches.shape[1:])
    if model.focus_adapter is not None:
        patches = model.focus_adapter(patches)
    _, final, feat = _x3d(model.local_CNN, patches, amp)
    logits = model.local_CNN_head(feat)
    return {"feat": feat, "frame_logits": logits, "final": final, "avg": logits.mean(1)}


def _x3d(
    net: nn.Module, clips: torch.Tensor, amp: torch.dtype | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """X3D on clips (B, T, 3, H, W); returns map (B, D, T, h, w), final logits (B, C) from the standard head on
    the detached map (trains only the head), per-frame vectors (B, T, D)."""
    with _autocast(clips.device, amp):
        fm = net.featmap(clips.permute(0, 2, 1, 3, 4))
        final = net.head_from_featmap(fm.detach())
    if amp is not None:
        fm, final = fm.float(), final.float()
    return fm, final, fm.mean((3, 4)).transpose(1, 2)
