"""Uni-AdaFocus: glance net -> spatial + temporal policies -> K deformable patches -> focus net -> fusion.

One class serves the three presets; what differs is chosen at construction:
- encoders: 'an' per-frame 2-D nets (MobileNetV2 / ResNet with fc heads), 'tsm' TSN-wrapped 2-D nets with temporal
  shift, 'x3d' X3D-S / X3D-L clip nets with per-frame heads;
- spatial action: one per glance frame, interpolated to the N candidates ('an') or one per video ('tsm', 'x3d');
- fusion: FrameExit pooling classifier ('an', 17 exits) or the sum of the two "final" logits ('tsm', 'x3d', 2 exits).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from models.core.config import ModelConfig
from models.core.interface import FramePretrainParts, VideoModel
from models.core.losses import Criterion
from models.core.patches import deformable_patch_grid, deformable_regions, random_actions
from models.core.weights import load_glance_focus_weights
from models.uniadafocus.dense import dense_counterpart
from models.uniadafocus.encoders import build_encoders, encode_focus, encode_glance, share_x3d_heads
from models.uniadafocus.flops import uniadafocus_breakdown
from models.uniadafocus.heads import PoolingClassifier
from models.uniadafocus.loss import uniadafocus_loss
from models.uniadafocus.policies import (
    SpatialPolicy,
    TemporalPolicy,
    featmap_crop_logits,
    interpolate_actions,
    mc_temporal_logits,
    sample_indices,
)


class UniAdaFocus(VideoModel):
    """Uni-AdaFocus model; `forward(x (B, T, 3, S, S))` with T = N ('an') or T_g + N (glance frames first).

    Every trainable parameter gets a gradient in each training step (the unused ImageNet classifiers of the 'an'
    backbones are frozen), so DDP needs no search for unused parameters. Mixed precision: the 'tsm' forward
    runs under the engine's autocast (policies in float32, as the original); 'an' and 'x3d' autocast the two
    backbones only and run everything else in float32, as the originals' mixed-precision scripts did.
    """

    staged = True  # glance_stage / focus_stage: early exit skips the second stage

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.preset = p = cfg.preset
        # 'learned', or 'random' for the evaluation control: uniform frames and random patches, same cost
        self.policy = "learned"
        tg, k, c = cfg.num_glance_segments, cfg.num_focus_segments, cfg.num_classes
        self.amp_scope = "model" if p == "tsm" else "backbones"
        dg, dl = build_encoders(self)
        self.map_size = -(-cfg.glance_size // cfg.glance_output_stride)  # padded convs: ceil(G / stride)
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

    # ---- what the engine asks -----------------------------------------------------------------------------
    @staticmethod
    def input_layout(cfg: ModelConfig) -> tuple[int, int]:
        """'an': the N candidates (the glance frames are taken among them); 'tsm'/'x3d': T_g glance frames + N."""
        return (0 if cfg.preset == "an" else cfg.num_glance_segments), cfg.num_input_focus_segments

    @property
    def num_exits(self) -> int:
        """'an': K + 1 exits (glance, then one per focus frame); 'tsm'/'x3d': 2 (glance, full)."""
        return self.cfg.num_focus_segments + 1 if self.preset == "an" else 2

    def backbones(self) -> list[nn.Module]:
        return [self.global_CNN, self.local_CNN]

    def criterion(self) -> Criterion:
        cfg = self.cfg
        return lambda outputs, target: uniadafocus_loss(outputs, target, cfg)

    def load_pretrained(self) -> UniAdaFocus:
        """Loads the ImageNet MobileNetV2 / ResNet (X3D: Kinetics `.pyth`) weights of both backbones (nothing with
        `cfg.pretrain == 'none'`); `cfg.glance_weights` / `cfg.focus_weights` override the default files."""
        glance, focus = self.global_CNN, self.local_CNN
        if self.preset == "tsm":
            glance, focus = glance.base_model, focus.base_model
        if load_glance_focus_weights(self.cfg, glance, focus) and self.preset == "x3d":
            share_x3d_heads(self)
        return self

    def decisions(self, outputs: dict) -> dict:
        """Returns `glance` (B, T_g) and `selected` (B, K) positions in the input frames and `regions` (B, K, 4)
        [x, y, w, h] (pixels of the S-frame) of the focus patches: 'tsm'/'x3d' one region for the K frames,
        'an' one per frame; the glance frames are the first T_g inputs, 'an' takes them among the candidates."""
        cfg, idx = self.cfg, outputs["focus_indices"]
        b, k = idx.shape
        if self.preset == "an":
            glance, selected = outputs["glance_indices"], idx
        else:
            tg = cfg.num_glance_segments
            glance, selected = torch.arange(tg, device=idx.device).expand(b, tg), idx + tg
        actions = outputs["actions"]
        actions = actions if actions.dim() == 3 else actions.unsqueeze(1).expand(b, k, 4)
        regions = deformable_regions(actions.reshape(-1, 4).float(), cfg.patch_size, cfg.input_size)
        return {"glance": glance, "selected": selected, "regions": regions.view(b, k, 4)}

    def gflops_breakdown(self) -> dict:
        return uniadafocus_breakdown(self)

    def pretrain_parts(self) -> FramePretrainParts | None:
        """'tsm' preset (TSN-wrapped nets, the demo's): the glance and focus nets, the glance resize and the
        feature-crop aux head `aux_fc` for the class-map loss; None for 'an' / 'x3d'."""
        if self.preset != "tsm":
            return None
        cfg = self.cfg
        return FramePretrainParts(
            self.global_CNN,
            self.local_CNN,
            cfg.num_glance_segments,
            cfg.num_focus_segments,
            self.glance_resize,
            self.aux_fc,
        )

    @staticmethod
    def dense_counterpart(cfg: ModelConfig) -> tuple[ModelConfig, Callable[[ModelConfig], nn.Module]]:
        """The dense model of the papers' comparison (models/uniadafocus/dense.py)."""
        return dense_counterpart(cfg)

    # ---- distillation (models/reskd/): the glance network is the student ----------------------------
    def kd_featmap(self, outputs: dict) -> torch.Tensor:
        """Returns the glance feature map (B, T_g, D_g, h, w) (at the glance resolution)."""
        return outputs["glance_featmap"].transpose(1, 2)

    def kd_frames(self, outputs: dict) -> torch.Tensor:
        """Returns the input positions (B, T_g) of the glance frames ('an': among the N; else the first T_g)."""
        if self.preset == "an":
            return outputs["glance_indices"]
        b, tg = outputs["logits"].shape[0], self.cfg.num_glance_segments
        return torch.arange(tg, device=outputs["logits"].device).expand(b, tg)

    def kd_frame_count(self, cfg: ModelConfig) -> int:
        return cfg.num_glance_segments

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
        """Returns frames (M, 3, S, S) resized (bilinear) to the glance resolution, as the glance net sees them
        (X3D: 224 -> 160 as the original; AN/TSM: the frame size unless asked otherwise)."""
        size = self.cfg.glance_size
        if frames.shape[-1] == size:
            return frames
        return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)

    def _backbone_amp(self, device: torch.device) -> torch.dtype | None:
        """The engine's autocast dtype when this model narrows mixed precision to its backbones, else None."""
        if self.amp_scope == "backbones" and torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
        return None

    # ---- forward ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Runs frames x (B, T, 3, S, S) (normalised float); returns a dict (shapes for B videos, C classes):

        `logits` (B, C) final prediction (policy branch), `exit_logits` (B, E, C) (E = K+1 for 'an', 2 otherwise),
        `glance_logits` (B, C) (= exit 0), `glance_frame_logits` (B, T_g, C), `focus_frame_logits` (B, K, C),
        `temporal_logits` / `spatial_logits` (B, C) (policy aux heads), `weights` / `weights_T` (B, T_g),
        `policy_actions` (B, T_g, 4) ('an') or (B, 4), `actions` (crop actions: (B, K, 4) or (B, 4)),
        `focus_indices` (B, K) (0-based among the N candidates), `glance_indices` (B, T_g) ('an'),
        `glance_featmap` (B, D_g, T_g, h, w);
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
        amp = self._backbone_amp(x.device)
        with torch.autocast(x.device.type, enabled=False) if amp else contextlib.nullcontext():
            frames = glance_frames if prepare is None else prepare(glance_frames)
            g = encode_glance(self, self.glance_resize(frames.flatten(0, 1)), frames.shape[0], amp)
        state = {"g": g, "candidates": candidates, "glance_pos": glance_pos, "prepare": prepare, "amp": amp}
        if self.preset != "an":
            state["glance_logits"] = g["avg"]
        elif not self.training:  # eval BN: the glance half of the classifier can be shared by every exit
            with torch.autocast(x.device.type, enabled=False) if amp else contextlib.nullcontext():
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
        if state["amp"] is not None:  # the backbones alone run under autocast
            with torch.autocast(state["candidates"].device.type, enabled=False):
                return self._focus_stage(state, aux)
        return self._focus_stage(state, aux)

    def _focus_stage(self, state: dict, aux: bool) -> dict[str, torch.Tensor | list[torch.Tensor]]:
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
        f = encode_focus(self, patches, nb * b, state["amp"])

        out.update(glance_frame_logits=g["frame_logits"], focus_indices=idx, actions=branch_actions[0])
        out["glance_featmap"] = g["featmap"]  # (B, D_g, T_g, h, w): what a distilled glance is compared by
        out["policy_actions"] = policy_actions.transpose(1, 2) if an else policy_actions
        if an:
            if "glance_steps" in state and not self.training:
                local = [self.classifier.focus_part(state["glance_last"], fi) for fi in f["feat"].chunk(nb)]
                steps = [torch.cat([state["glance_steps"], z], dim=1) for z in local]
            else:  # training: one full classifier pass per branch (BN statistics as the original)
                steps = [self.classifier(g["feat"], fi) for fi in f["feat"].chunk(nb)]
            out.update(
                step_logits=steps[0],
                logits=steps[0][:, -1],
                exit_logits=steps[0][:, -(k + 1) :],
                glance_indices=state["glance_pos"],
                fused_branches=steps,
                glance_aux=g["frame_logits"],
            )
            out["focus_branches"] = list(f["frame_logits"].chunk(nb))
            out["glance_logits"] = out["exit_logits"][:, 0]
        else:
            fused = [g["final"] + lf for lf in f["final"].chunk(nb)]
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
            out["focus_branches"] = list(f["avg"].chunk(nb))
        out["focus_frame_logits"] = f["frame_logits"][:b]
        return out

    def lr_ratios(self) -> dict[str, float]:
        """The original learning-rate ratios: policies, focus net and AN classifier their own, the glance net and
        the aux heads `global_lr_ratio`, anything else 1."""
        cfg = self.cfg
        return {
            "temporal_policy": cfg.temporal_lr_ratio,
            "local_CNN": cfg.local_lr_ratio,
            "spatial_policy": cfg.stn_lr_ratio,
            "classifier": cfg.classifier_lr_ratio,
            "global_": cfg.global_lr_ratio,
            "aux_": cfg.global_lr_ratio,
        }


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
