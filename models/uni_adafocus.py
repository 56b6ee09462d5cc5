"""Uni-AdaFocus: glance net -> spatial + temporal policies -> K deformable patches -> focus net -> fusion.

One class serves the three presets; what differs is chosen at construction:
- encoders: 'an' per-frame 2-D nets (MobileNetV2 / ResNet with fc heads), 'tsm' TSN-wrapped 2-D nets with temporal
  shift, 'x3d' X3D-S / X3D-L clip nets with per-frame heads;
- spatial action: one per glance frame, interpolated to the N candidates ('an') or one per video ('tsm', 'x3d');
- fusion: FrameExit pooling classifier ('an', 17 exits) or the sum of the two "final" logits ('tsm', 'x3d', 2 exits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archs import create_backbone
from models.config import ModelConfig
from models.heads import TSN, PoolingClassifier, share_head_params, x3d_frame_head
from models.patches import deformable_patch_grid, random_actions
from models.policies import (
    SpatialPolicy,
    TemporalPolicy,
    clip_layout,
    featmap_crop_logits,
    interpolate_actions,
    mc_temporal_logits,
    sample_indices,
)


class UniAdaFocus(nn.Module):
    """Uni-AdaFocus model; `forward(x (B, T, 3, S, S))` with T = N ('an') or T_g + N (glance frames first)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.preset = p = cfg.preset
        tg, k, c = cfg.num_glance_segments, cfg.num_focus_segments, cfg.num_classes
        if p == "an":
            self.global_CNN = create_backbone(cfg.glance_arch, **cfg.backbone_kwargs(cfg.glance_arch))
            dg = self.global_CNN.classifier.in_features
            self.global_CNN_fc = nn.Sequential(nn.Dropout(cfg.fc_dropout), nn.Linear(dg, c))
            self.aux_fc = nn.Linear(dg, c)
            self.local_CNN = create_backbone(cfg.focus_arch, **cfg.backbone_kwargs(cfg.focus_arch))
            dl = self.local_CNN.fc.in_features
            self.local_CNN_fc = nn.Sequential(nn.Dropout(cfg.fc_dropout), nn.Linear(dl, c))
            # The ImageNet classifiers stay in the state_dict (checkpoint compatibility) but are never used:
            # freezing them keeps DDP free of unused trainable parameters.
            for unused in (self.global_CNN.classifier, self.local_CNN.fc):
                unused.requires_grad_(False)
        elif p == "tsm":
            self.global_CNN = self._tsn(cfg.glance_arch, tg)
            self.local_CNN = self._tsn(cfg.focus_arch, k)
            dg = self.global_CNN.feature_dim
            self.aux_fc = nn.Linear(dg, c)
        else:
            x3d_kw = dict(num_classes=c, **cfg.backbone_kwargs(cfg.glance_arch))
            self.global_CNN = create_backbone(
                cfg.glance_arch, num_frames=tg, crop_size=cfg.glance_size, **x3d_kw
            )
            dg, hidden = self.global_CNN.feature_dim, self.global_CNN.head.projection.in_features
            self.global_CNN_head = x3d_frame_head(dg, hidden, c, cfg.dropout)
            self.local_CNN = create_backbone(cfg.focus_arch, num_frames=k, crop_size=cfg.patch_size, **x3d_kw)
            dl, hidden = self.local_CNN.feature_dim, self.local_CNN.head.projection.in_features
            self.local_CNN_head = x3d_frame_head(dl, hidden, c, cfg.dropout)
            self.aux_head = nn.Sequential(nn.Linear(dg, c))
            self.share_head_params()
        self.map_size = -(-cfg.glance_size // 32)  # stride-32 nets with padding: ceil(S / 32)
        self.spatial_policy = SpatialPolicy(dg, cfg.stn_hidden_dim, tg, self.map_size, per_frame=p == "an")
        self.temporal_policy = TemporalPolicy(dg, cfg.temporal_hidden_dim, tg, cfg.temperature)
        if p == "an":
            self.classifier = PoolingClassifier(dg, dl, tg, k, c, cfg.dropout)
        s = cfg.input_size
        # Side of the feature-map crop for the spatial aux loss: P//32 at 7x7 (AN/TSM), round(5 * P / 224) (X3D).
        h = self.map_size
        self.feat_patch = max(1, round(h * cfg.patch_size / s) if p == "x3d" else cfg.patch_size * h // s)
        # Monte-Carlo drop levels: T_g // 3 (AN, TSM), round(T_g / 3) (X3D).
        self.mc_levels = max(1, round(tg / 3) if p == "x3d" else tg // 3)

    def _tsn(self, arch: str, segments: int) -> TSN:
        cfg = self.cfg
        base = create_backbone(
            arch, shift=cfg.shift, n_segment=segments, shift_div=cfg.shift_div, **cfg.backbone_kwargs(arch)
        )
        return TSN(base, cfg.num_classes, cfg.dropout, aux_head=True, partial_bn=cfg.partial_bn)

    def share_head_params(self) -> None:
        """X3D: copies each backbone's pretrained head (lin_5, projection) into its per-frame head."""
        share_head_params(self.global_CNN.head, self.global_CNN_head)
        share_head_params(self.local_CNN.head, self.local_CNN_head)

    # ---- input layout -------------------------------------------------------------------------------------
    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Returns glance frames (B, T_g, 3, S, S), candidates (B, N, 3, S, S), AN glance positions (B, T_g)."""
        cfg = self.cfg
        tg, n = cfg.num_glance_segments, cfg.num_input_focus_segments
        expected = n if self.preset == "an" else tg + n
        if x.dim() != 5 or x.shape[1] != expected or x.shape[2] != 3:
            raise ValueError(
                f"expected frames (B, {expected}, 3, S, S) for preset {self.preset!r}, got {tuple(x.shape)}"
            )
        if self.preset != "an":
            return x[:, :tg], x[:, tg:], None
        # AN: one glance frame per group of N/T_g candidates, random in training, the 2nd of each group in eval.
        times = n // tg
        base = torch.arange(tg, device=x.device) * times
        if self.training:
            pos = base + torch.randint(0, times, (x.shape[0], tg), device=x.device)
        else:
            pos = (base + min(1, times - 1)).expand(x.shape[0], tg)
        return _take(x, pos), x, pos

    # ---- encoders -----------------------------------------------------------------------------------------
    def _glance(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Glance net on (B, T_g, 3, S, S); returns featmap (B, D, T_g, h, w), feat (B, T_g, D),
        frame_logits (B, T_g, C) and, for TSM/X3D, final (B, C) and avg (B, C)."""
        b, t = frames.shape[:2]
        flat = frames.flatten(0, 1)
        if self.preset == "an":
            fm = self.global_CNN.features(flat)
            feat = fm.mean((2, 3))
            return {
                "featmap": clip_layout(fm, t, fm.shape[1]),
                "feat": feat.view(b, t, -1),
                "frame_logits": self.global_CNN_fc(feat).view(b, t, -1),
            }
        if self.preset == "tsm":
            out = self.global_CNN(flat, t)
            fm = out["featmap"]
            return {
                "featmap": clip_layout(fm, t, fm.shape[1]),
                "feat": out["feat"].view(b, t, -1),
                "frame_logits": out["reg_frames"],
                "final": out["final"],
                "avg": out["reg"],
            }
        size = self.cfg.glance_size
        if flat.shape[-1] != size:
            flat = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
        fm, final, feat = self._x3d(self.global_CNN, flat.view(b, t, *flat.shape[1:]))
        logits = self.global_CNN_head(feat)
        return {"featmap": fm, "feat": feat, "frame_logits": logits, "final": final, "avg": logits.mean(1)}

    @staticmethod
    def _x3d(net: nn.Module, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """X3D on clips (B, T, 3, H, W); returns map (B, D, T, h, w), final logits (B, C) from the standard head on
        the detached map (trains only the head), per-frame vectors (B, T, D)."""
        fm = net.featmap(clips.permute(0, 2, 1, 3, 4))
        return fm, net.head_from_featmap(fm.detach()), fm.mean((3, 4)).transpose(1, 2)

    def _focus(self, patches: torch.Tensor, clips: int) -> dict[str, torch.Tensor]:
        """Focus net on patches (clips*K, 3, P, P); returns feat (clips, K, D), frame_logits (clips, K, C) and,
        for TSM/X3D, final (clips, C) and avg (clips, C)."""
        k = patches.shape[0] // clips
        if self.preset == "an":
            feat = self.local_CNN.features(patches).mean((2, 3))
            return {
                "feat": feat.view(clips, k, -1),
                "frame_logits": self.local_CNN_fc(feat).view(clips, k, -1),
            }
        if self.preset == "tsm":
            out = self.local_CNN(patches, k)
            return {"frame_logits": out["reg_frames"], "final": out["final"], "avg": out["reg"]}
        _, final, feat = self._x3d(self.local_CNN, patches.view(clips, k, *patches.shape[1:]))
        logits = self.local_CNN_head(feat)
        return {"feat": feat, "frame_logits": logits, "final": final, "avg": logits.mean(1)}

    # ---- forward ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Runs frames x (B, T, 3, S, S) (normalised float); returns a dict (shapes for B videos, C classes):

        `logits` (B, C) final prediction (policy branch), `exit_logits` (B, E, C) (E = K+1 for 'an', 2 otherwise),
        `glance_logits` (B, C) (= exit 0), `glance_frame_logits` (B, T_g, C), `focus_frame_logits` (B, K, C),
        `temporal_logits` / `spatial_logits` (B, C) (policy aux heads), `weights` / `weights_T` (B, T_g),
        `policy_actions` (B, T_g, 4) ('an') or (B, 4), `actions` (crop actions: (B, K, 4) or (B, 4)),
        `focus_indices` (B, K) (0-based among the N candidates), `glance_indices` (B, T_g) ('an');
        'an' adds `step_logits` (B, T_g+K, C); 'tsm'/'x3d' add `glance_final_logits`, `focus_final_logits`,
        `focus_avg_logits` (B, C). For the loss: `fused_branches`, `focus_branches` (one tensor per branch:
        policy, and in training random patches) and `glance_aux`.
        """
        cfg = self.cfg
        an = self.preset == "an"
        b = x.shape[0]
        glance_frames, candidates, glance_pos = self._split(x)
        g = self._glance(glance_frames)
        # The policies run in float32 even under autocast (as the original TSM training did): their outputs
        # decide discrete frame indices and crop boxes.
        with torch.autocast(x.device.type, enabled=False):
            fm, feat, frame_logits = g["featmap"].float(), g["feat"].float(), g["frame_logits"].float()
            # One policy call serves both uses: the crop takes the detached action, the feature-map aux loss
            # and the norm loss the attached one (the original called it twice with identical results).
            policy_actions = self.spatial_policy(fm.detach())  # (B, 4, T_g) 'an' / (B, 4)
            w, w_t = self.temporal_policy(feat if an else feat.detach())
            mc_input = frame_logits if an else frame_logits.detach()
            temporal_logits = mc_temporal_logits(mc_input, w, self.mc_levels, cfg.mc_samples)
            aux = self.aux_fc if hasattr(self, "aux_fc") else self.aux_head
            spatial_logits = featmap_crop_logits(fm, policy_actions, self.feat_patch, cfg.patch_size, aux)

        k = cfg.num_focus_segments
        idx = sample_indices(w_t.detach(), cfg.num_input_focus_segments, k, train=self.training)
        focus_frames = _take(candidates, idx)  # (B, K, 3, S, S)
        if an:
            crop = _take(interpolate_actions(policy_actions, cfg.num_input_focus_segments), idx)  # (B, K, 4)
        else:
            crop = policy_actions  # (B, 4): the same box for all K frames
        branch_actions = [crop.detach()]
        if self.training:  # random-patch branch (diversity augmentation)
            branch_actions.append(
                random_actions(crop[..., 0].numel(), cfg.patch_size, device=x.device)
                .view_as(crop)
                .to(crop.dtype)
            )
        nb = len(branch_actions)
        per_frame = [a if a.dim() == 3 else a.unsqueeze(1).expand(b, k, 4) for a in branch_actions]
        frames = focus_frames.flatten(0, 1).repeat(nb, 1, 1, 1)
        with torch.autocast(x.device.type, enabled=False):
            patches = deformable_patch_grid(
                frames,
                torch.cat(per_frame).reshape(-1, 4).float(),
                cfg.patch_size,
                frames.shape[-1],
                cfg.patch_size,
            )
        f = self._focus(patches, nb * b)

        out = {
            "glance_frame_logits": g["frame_logits"],
            "temporal_logits": temporal_logits,
            "spatial_logits": spatial_logits,
            "weights": w,
            "weights_T": w_t,
            "focus_indices": idx,
            "actions": branch_actions[0],
        }
        out["policy_actions"] = policy_actions.transpose(1, 2) if an else policy_actions
        if an:
            steps = [self.classifier(g["feat"], f["feat"][i * b : (i + 1) * b]) for i in range(nb)]
            out.update(
                step_logits=steps[0],
                logits=steps[0][:, -1],
                exit_logits=steps[0][:, -(k + 1) :],
                glance_indices=glance_pos,
                fused_branches=steps,
                glance_aux=g["frame_logits"],
            )
            out["focus_branches"] = list(f["frame_logits"].split(b))
            out["glance_logits"] = out["exit_logits"][:, 0]
        else:
            fused = [g["final"] + lf for lf in f["final"].split(b)]
            out.update(
                logits=fused[0],
                exit_logits=torch.stack([g["avg"], fused[0]], dim=1),
                glance_logits=g["avg"],
                glance_final_logits=g["final"],
                focus_final_logits=f["final"][:b],
                focus_avg_logits=f["avg"][:b],
                fused_branches=fused,
                glance_aux=g["avg"],
            )
            out["focus_branches"] = list(f["avg"].split(b))
        out["focus_frame_logits"] = f["frame_logits"][:b]
        return out

    def param_groups(self) -> list[dict]:
        """Returns optimizer groups [{params, lr_mult, decay_mult, name}] with the original learning-rate ratios."""
        cfg = self.cfg
        ratios = {
            "temporal_policy": cfg.temporal_lr_ratio,
            "spatial_policy": cfg.stn_lr_ratio,
            "classifier": cfg.classifier_lr_ratio,
        }
        groups = []
        for name, module in self.named_children():
            if name in ratios:
                mult = ratios[name]
            elif name.startswith(("global_", "aux_")):
                mult = cfg.global_lr_ratio
            else:
                mult = 1.0
            params = [q for q in module.parameters() if q.requires_grad]
            if params:
                groups.append({"params": params, "lr_mult": mult, "decay_mult": 1.0, "name": name})
        return groups


def _take(frames: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Returns frames[b, idx[b, j]] as (B, K, ...) for frames (B, N, ...) and idx (B, K)."""
    rows = torch.arange(frames.shape[0], device=frames.device).unsqueeze(1)
    return frames[rows, idx]
