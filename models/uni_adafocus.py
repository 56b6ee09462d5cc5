"""Uni-AdaFocus: glance net -> spatial + temporal policies -> K deformable patches -> focus net -> fusion.

One class serves the three presets; what differs is chosen at construction:
- encoders: 'an' per-frame 2-D nets (MobileNetV2 / ResNet with fc heads), 'tsm' TSN-wrapped 2-D nets with temporal
  shift, 'x3d' X3D-S / X3D-L clip nets with per-frame heads;
- spatial action: one per glance frame, interpolated to the N candidates ('an') or one per video ('tsm', 'x3d');
- fusion: FrameExit pooling classifier ('an', 17 exits) or the sum of the two "final" logits ('tsm', 'x3d', 2 exits).
"""

from __future__ import annotations

from collections.abc import Callable

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
        # 'learned', or 'random' for the evaluation control: uniform frames and random patches, same cost
        self.policy = "learned"
        tg, k, c = cfg.num_glance_segments, cfg.num_focus_segments, cfg.num_classes
        if p == "an":
            self.global_CNN = create_backbone(
                cfg.glance_arch, **cfg.backbone_kwargs(cfg.glance_arch, glance=True)
            )
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
            self.global_CNN = self._tsn(cfg.glance_arch, tg, glance=True)
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
        self.map_size = -(
            -cfg.glance_size // cfg.glance_output_stride
        )  # padded convs: ceil(S / output stride)
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

    def _tsn(self, arch: str, segments: int, glance: bool = False) -> TSN:
        cfg = self.cfg
        base = create_backbone(
            arch,
            shift=cfg.shift,
            n_segment=segments,
            shift_div=cfg.shift_div,
            **cfg.backbone_kwargs(arch, glance),
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
    def glance_resize(self, frames: torch.Tensor) -> torch.Tensor:
        """Returns frames (M, 3, S, S) resized (bilinear) to the glance resolution, as the glance net sees them."""
        size = (
            self.cfg.glance_size
        )  # X3D: 224 -> 160 as the original; AN/TSM: = input_size unless asked otherwise
        if frames.shape[-1] == size:
            return frames
        return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)

    def _glance(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Glance net on (B, T_g, 3, S, S); returns featmap (B, D, T_g, h, w), feat (B, T_g, D),
        frame_logits (B, T_g, C) and, for TSM/X3D, final (B, C) and avg (B, C)."""
        b, t = frames.shape[:2]
        flat = self.glance_resize(frames.flatten(0, 1))
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

    # ---- forward ----------------------------------------------------------------------------------------
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
        return self.focus_stage(self.glance_stage(x))

    def glance_stage(self, x: torch.Tensor, prepare: Callable | None = None) -> dict:
        """First half of `forward`: the glance net on the T_g glance frames of x (B, T, 3, S, S). Returns the
        state `focus_stage` continues from; its `glance_logits` (B, C) are exit 0 (in eval for 'an').

        `prepare` (e.g. uint8 -> normalised float) is applied only to frames that are used: the glance frames
        here, the K selected frames in `focus_stage`; x may then be the raw uint8 frames.
        """
        glance_frames, candidates, glance_pos = self._split(x)
        g = self._glance(glance_frames if prepare is None else prepare(glance_frames))
        state = {"g": g, "candidates": candidates, "glance_pos": glance_pos, "prepare": prepare}
        if self.preset != "an":
            state["glance_logits"] = g["avg"]
        elif not self.training:  # eval BN: the glance half of the classifier can be shared by every exit
            state["glance_steps"], state["glance_last"] = self.classifier.glance_part(g["feat"])
            state["glance_logits"] = state["glance_steps"][:, -1]
        return state

    def focus_stage(
        self, state: dict, rows: torch.Tensor | None = None, aux: bool = True
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Second half of `forward` (policies, frame selection, patches, focus net, fusion) for the videos
        `rows` (LongTensor (B',), default all) of a `glance_stage` state; returns `forward`'s dict for them.
        `aux=False` (deployment) skips the training-only `temporal_logits` / `spatial_logits`.
        """
        if rows is not None:
            state = select_rows(state, rows)
        cfg = self.cfg
        an = self.preset == "an"
        g, candidates = state["g"], state["candidates"]
        b, device = candidates.shape[0], candidates.device
        # The policies run in float32 even under autocast (as the original TSM training did): their outputs
        # decide discrete frame indices and crop boxes.
        with torch.autocast(device.type, enabled=False):
            fm, feat, frame_logits = g["featmap"].float(), g["feat"].float(), g["frame_logits"].float()
            # One policy call serves both uses: the crop takes the detached action, the feature-map aux loss
            # and the norm loss the attached one (the original called it twice with identical results).
            policy_actions = self.spatial_policy(fm.detach())  # (B, 4, T_g) 'an' / (B, 4)
            w, w_t = self.temporal_policy(feat if an else feat.detach())
            out = {"weights": w, "weights_T": w_t}
            if aux:
                mc_input = frame_logits if an else frame_logits.detach()
                out["temporal_logits"] = mc_temporal_logits(mc_input, w, self.mc_levels, cfg.mc_samples)
                head = self.aux_fc if hasattr(self, "aux_fc") else self.aux_head
                out["spatial_logits"] = featmap_crop_logits(
                    fm, policy_actions, self.feat_patch, cfg.patch_size, head, cfg.input_size
                )

        k = cfg.num_focus_segments
        control = self.policy == "random" and not self.training
        if control:  # evaluation control: uniform frames instead of the temporal policy's choice
            w_t = torch.full_like(w_t, 1.0 / w_t.shape[1])
        idx = sample_indices(w_t.detach(), cfg.num_input_focus_segments, k, train=self.training)
        focus_frames = _take(candidates, idx)  # (B, K, 3, S, S)
        if state["prepare"] is not None:
            focus_frames = state["prepare"](focus_frames)
        if an:
            crop = _take(interpolate_actions(policy_actions, cfg.num_input_focus_segments), idx)  # (B, K, 4)
        else:
            crop = policy_actions  # (B, 4): the same box for all K frames
        if control:  # ... and random P x P patches instead of the spatial policy's (reproducible draws)
            gen = torch.Generator().manual_seed(0)
            crop = random_actions(
                crop[..., 0].numel(), cfg.patch_size, generator=gen, frame_size=cfg.input_size
            )
            crop = crop.to(device).view(*policy_actions.shape[:1], *([k] if an else []), 4)
        branch_actions = [crop.detach()]
        if self.training:  # random-patch branch (diversity augmentation)
            branch_actions.append(
                random_actions(crop[..., 0].numel(), cfg.patch_size, device=device, frame_size=cfg.input_size)
                .view_as(crop)
                .to(crop.dtype)
            )
        nb = len(branch_actions)
        per_frame = [a if a.dim() == 3 else a.unsqueeze(1).expand(b, k, 4) for a in branch_actions]
        frames = focus_frames.flatten(0, 1)
        frames = frames.repeat(nb, 1, 1, 1) if nb > 1 else frames
        with torch.autocast(device.type, enabled=False):
            actions = torch.cat(per_frame).reshape(-1, 4).float()
            patches = deformable_patch_grid(
                frames, actions, cfg.patch_size, frames.shape[-1], cfg.patch_size, cfg.input_size
            )
        f = self._focus(patches, nb * b)

        out.update(glance_frame_logits=g["frame_logits"], focus_indices=idx, actions=branch_actions[0])
        out["policy_actions"] = policy_actions.transpose(1, 2) if an else policy_actions
        if an:
            if "glance_steps" in state and not self.training:
                local = [self.classifier.focus_part(state["glance_last"], fi) for fi in f["feat"].split(b)]
                steps = [torch.cat([state["glance_steps"], z], dim=1) for z in local]
            else:  # training: one full classifier pass per branch (BN statistics as the original)
                steps = [self.classifier(g["feat"], fi) for fi in f["feat"].split(b)]
            out.update(
                step_logits=steps[0],
                logits=steps[0][:, -1],
                exit_logits=steps[0][:, -(k + 1) :],
                glance_indices=state["glance_pos"],
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


def select_rows(state: dict, rows: torch.Tensor) -> dict:
    """Returns a `glance_stage` state restricted to the videos `rows` (B',) (every tensor indexed on dim 0)."""
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out[key] = select_rows(value, rows)
        elif isinstance(value, torch.Tensor):
            out[key] = value.index_select(0, rows.to(value.device))
        else:
            out[key] = value
    return out


def _take(frames: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Returns frames[b, idx[b, j]] as (B, K, ...) for frames (B, N, ...) and idx (B, K)."""
    rows = torch.arange(frames.shape[0], device=frames.device).unsqueeze(1)
    return frames[rows, idx]
