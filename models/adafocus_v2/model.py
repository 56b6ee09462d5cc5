"""AdaFocus V2 (CVPR 2022): a glance net on every frame, a deterministic policy picks one P x P patch position per
frame ('an') or per video ('tsm'), the patch is cropped with a differentiable grid (the action is NOT detached, so
the focus losses train the policy end to end), a focus net reads it, and a classifier fuses both.

- 'an' (ActivityNet, FCVID, Mini-Kinetics): MobileNetV2 glance and ResNet-50 focus on the same T = 16 frames,
  recurrent policy (V2's PolicySTN), pooling classifier on [glance, focus] with one exit per frame; with
  `coarse_to_fine` (V2's --sample) the frames are processed in the order of `coarse_to_fine_order`.
- 'tsm' (Something-Something, Jester): TSN glance (MobileNetV2-TSM, T_g frames) and TSN focus (ResNet-50-TSM on
  the N = int(1.5 T_g) other frames), one patch position per video from the stacked glance maps, fused logits
  glance_final + focus_final (heads on detached features, as the TSN wrappers of UA-TSM).
Training runs a second branch on random patch positions (V2's diversity augmentation); the policy reads the
detached glance maps (V2's stop-gradient for stability).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archs import create_backbone
from models.adafocus_v2.flops import v2_breakdown
from models.adafocus_v2.parts import (
    ConcatPoolingClassifier,
    RecurrentPolicy,
    VideoPolicy,
    coarse_to_fine_order,
)
from models.core.config import ModelConfig
from models.core.heads import tsn_net
from models.core.interface import FramePretrainParts, VideoModel
from models.core.losses import Criterion, first_label, repeated_ce
from models.core.patches import fixed_patch_grid, square_regions
from models.core.weights import load_glance_focus_weights


class AdaFocusV2(VideoModel):
    """AdaFocus V2; `forward(x (B, T, 3, S, S))` with T = the 16 frames ('an') or T_g glance + N focus frames
    ('tsm'). Returns `logits` (B, C), `exit_logits` (B, E, C) (E = T for 'an', 2 for 'tsm'), `actions`
    ((B, T, 2) or (B, 2), the policy's [y, x]) and, for the loss, `fused_branches`, `focus_branches`, `glance_aux`.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.per_frame = cfg.preset == "an"
        self.policy = "learned"  # or 'random' (evaluation control: random patch positions, same cost)
        c, tg = cfg.num_classes, cfg.num_glance_segments
        if self.per_frame:
            self.global_CNN = create_backbone(cfg.glance_arch, **cfg.backbone_kwargs("glance"))
            dg = self.global_CNN.feature_dim
            self.global_CNN_fc = nn.Sequential(nn.Dropout(cfg.fc_dropout), nn.Linear(dg, c))
            self.local_CNN = create_backbone(cfg.focus_arch, **cfg.backbone_kwargs("focus"))
            dl = self.local_CNN.feature_dim
            self.local_CNN_fc = nn.Sequential(nn.Dropout(cfg.fc_dropout), nn.Linear(dl, c))
            for unused in (self.global_CNN.classifier, self.local_CNN.fc):  # kept for the checkpoints' keys
                unused.requires_grad_(False)
            self.map_size = -(-cfg.glance_size // cfg.glance_output_stride)
            self.policy_stn = RecurrentPolicy(dg, self.map_size, cfg.stn_hidden_dim)
            self.classifier = ConcatPoolingClassifier(dg + dl, tg, c, cfg.dropout)
        else:
            self.global_CNN = tsn_net(cfg, "glance", tg)
            self.local_CNN = tsn_net(cfg, "focus", cfg.num_focus_segments)
            self.map_size = -(-cfg.glance_size // cfg.glance_output_stride)
            self.policy_stn = VideoPolicy(self.global_CNN.feature_dim, tg, self.map_size, cfg.stn_hidden_dim)
        order = coarse_to_fine_order(tg) if cfg.coarse_to_fine else list(range(tg))
        self.register_buffer("order", torch.tensor(order), persistent=False)

    # ---- what the engine asks ---------------------------------------------------------------------------
    @staticmethod
    def input_layout(cfg: ModelConfig) -> tuple[int, int]:
        """'an': the T frames (glance and focus read the same frames); 'tsm': T_g glance + N focus frames."""
        if cfg.preset == "an":
            return 0, cfg.num_glance_segments
        return cfg.num_glance_segments, cfg.num_input_focus_segments

    @property
    def num_exits(self) -> int:
        """'an': one exit per processed frame (V2+ conditional exit); 'tsm': the glance net alone (its own head)
        and the fused prediction, as UA-TSM."""
        return self.cfg.num_glance_segments if self.per_frame else 2

    @property
    def exit_family(self) -> str:
        """'an': V2+ conditional exit sweeps p_k ∝ q^k, k = 1..T, q = 0.5 .. 3.9; 'tsm': two exits."""
        return "geometric_v2" if self.per_frame else "two_exit"

    def decisions(self, outputs: dict) -> dict:
        """'an': every input frame is a glance and a focus frame (in processing order); 'tsm': the first T_g are
        the glance frames, the N others the focus frames. `regions` (B, frames, 4) [x, y, P, P], a patch per frame."""
        cfg = self.cfg
        actions = outputs["actions"]
        b, device = actions.shape[0], actions.device
        if self.per_frame:
            glance = selected = self.order.to(device).expand(b, -1)
        else:
            t, n = self.input_layout(cfg)
            glance = torch.arange(t, device=device).expand(b, t)
            selected = torch.arange(t, t + n, device=device).expand(b, n)
            actions = actions.unsqueeze(1).expand(b, n, 2)
        top_left = actions * (cfg.input_size - cfg.patch_size)  # [y, x]
        return {"glance": glance, "selected": selected, "regions": square_regions(top_left, cfg.patch_size)}

    def backbones(self) -> list[nn.Module]:
        return [self.global_CNN, self.local_CNN]

    def criterion(self) -> Criterion:
        return v2_loss

    def lr_ratios(self) -> dict[str, float]:
        """V2's ratios: glance net and its head `global_lr_ratio`, policy `stn_lr_ratio`, classifier
        `classifier_lr_ratio`, focus net `local_lr_ratio` (V2: 1), its 'an' head 1."""
        cfg = self.cfg
        return {
            "policy_stn": cfg.stn_lr_ratio,
            "classifier": cfg.classifier_lr_ratio,
            "local_CNN": cfg.local_lr_ratio,
            "global_": cfg.global_lr_ratio,
        }

    def load_pretrained(self) -> AdaFocusV2:
        """Loads the ImageNet MobileNetV2 / ResNet weights of both backbones (nothing with pretrain 'none')."""
        glance, focus = self.global_CNN, self.local_CNN
        if not self.per_frame:
            glance, focus = glance.base_model, focus.base_model
        load_glance_focus_weights(self.cfg, glance, focus)
        return self

    def gflops_breakdown(self) -> dict:
        return v2_breakdown(self)

    def pretrain_parts(self) -> FramePretrainParts | None:
        """'tsm' (TSN-wrapped nets, the demo's): the glance and focus nets and the glance resize (no class-map
        head: V2 has no feature-crop aux head); None for 'an'."""
        if self.per_frame:
            return None
        cfg = self.cfg
        return FramePretrainParts(
            self.global_CNN,
            self.local_CNN,
            cfg.num_glance_segments,
            cfg.num_focus_segments,
            self.glance_resize,
        )

    # ---- forward ----------------------------------------------------------------------------------------
    def glance_resize(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (M, 3, S, S) at the glance resolution (V2 resizes with align_corners=True)."""
        size = self.cfg.glance_size
        if frames.shape[-1] == size:
            return frames
        return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=True)

    def forward(self, x: torch.Tensor) -> dict:
        cfg = self.cfg
        glance_n, focus_n = self.input_layout(cfg)
        if x.dim() != 5 or x.shape[1] != glance_n + focus_n:
            raise ValueError(f"expected frames (B, {glance_n + focus_n}, 3, S, S), got {tuple(x.shape)}")
        b = x.shape[0]
        if self.per_frame:
            x = x[:, self.order]
            glance, focus = x, x
        else:
            glance, focus = x[:, :glance_n], x[:, glance_n:]
        t, n = glance.shape[1], focus.shape[1]
        flat = self.glance_resize(glance.flatten(0, 1))
        if self.per_frame:
            fm = self.global_CNN.features(flat)
            g_feat = fm.mean((2, 3)).view(b, t, -1)
            glance_logits = self.global_CNN_fc(g_feat)  # (B, T, C)
        else:
            g = self.global_CNN(flat, t)
            fm = g["featmap"]
        actions = self.policy_stn(fm.detach(), t)  # (B, T, 2) or (B, 2)
        if self.policy == "random" and not self.training:  # evaluation control (reproducible draws)
            actions = torch.rand(actions.shape, generator=torch.Generator().manual_seed(0)).to(actions)
        branches = [actions]
        if self.training:
            branches.append(torch.rand_like(actions))
        out = {"actions": actions}
        if self.per_frame:
            l_feat = self._focus(focus, branches, lambda p: self.local_CNN.features(p).mean((2, 3)))
            l_feat = [f.view(b, n, -1) for f in l_feat]
            steps = [self.classifier(g_feat, lf) for lf in l_feat]
            out.update(
                logits=steps[0][:, -1],
                exit_logits=steps[0],
                fused_branches=steps,
                focus_branches=[self.local_CNN_fc(lf) for lf in l_feat],
                glance_aux=glance_logits,
            )
        else:
            f = self._focus(focus, branches, lambda p: self.local_CNN(p, n))
            fused = [g["final"] + fb["final"] for fb in f]
            out.update(
                logits=fused[0],
                exit_logits=torch.stack([g["reg"], fused[0]], dim=1),
                fused_branches=fused,
                focus_branches=[fb["reg"] for fb in f],
                glance_aux=g["reg"],
            )
        return out

    def _focus(self, focus: torch.Tensor, branches: list[torch.Tensor], net) -> list:
        """Returns `net(patches)` for each branch's actions (policy first) on the focus frames (B, N, 3, S, S): one
        forward per branch, as the original, so the focus network's BatchNorm normalises each branch by its own
        batch statistics; its running statistics take the policy branch's update, then the random one's on 'an'
        (V2's models/adafocus_v2.py), the other way round on 'tsm' (V2's Sth-Sth main.py). With `concat_branches`,
        one forward of both branches' patches stacked (faster; BatchNorm then sees the two branches together)."""
        cfg = self.cfg
        b, n = focus.shape[:2]
        frames = focus.flatten(0, 1)
        patches = [
            fixed_patch_grid(
                frames,
                (a if a.dim() == 3 else a.unsqueeze(1).expand(b, n, 2)).reshape(-1, 2),
                cfg.patch_size,
                cfg.input_size,
            )
            for a in branches
        ]
        if cfg.concat_branches and len(branches) > 1:
            out = net(torch.cat(patches))
            if isinstance(out, dict):  # the TSN focus: its clip logits
                parts = {k: out[k].split(b) for k in ("final", "reg")}
                return [{k: v[i] for k, v in parts.items()} for i in range(len(branches))]
            return list(out.split(b * n))
        order = range(len(branches)) if self.per_frame else reversed(range(len(branches)))
        results = {i: net(patches[i]) for i in order}
        return [results[i] for i in range(len(branches))]


def v2_loss(outputs: dict, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """V2's objective, per branch b in {policy, random}: CE(fused_b) + CE(glance) + CE(focus_b), averaged over
    the branches (the first label of multi-label targets, repeated over the steps / frames of 'an')."""
    y = first_label(target)
    fused, focus = outputs["fused_branches"], outputs["focus_branches"]
    nb = len(fused)
    loss_fused = sum(repeated_ce(z, y) for z in fused) / nb
    loss_focus = sum(repeated_ce(z, y) for z in focus) / nb
    loss_glance = repeated_ce(outputs["glance_aux"], y)
    loss = loss_fused + loss_glance + loss_focus
    parts = torch.stack([v.detach().float() for v in (loss, loss_fused, loss_glance, loss_focus)]).tolist()
    return loss, dict(zip(("loss", "fused", "glance", "local"), parts))
