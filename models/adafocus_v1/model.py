"""AdaFocus V1 (ICCV 2021), the ActivityNet / FCVID / Mini-Kinetics code: a glance MobileNetV2 sees every frame,
a recurrent policy trained by PPO picks one P x P patch per frame, a focus ResNet-50 sees the patches, a GRU
classifier predicts after every frame (16 exits).

Frames x (B, T, 3, S, S), T = 16 (the same frames for glance and focus; no frame selection). Per frame t: glance map
(C, h, w) and its mean g_t; the policy (GRU over t, reset at t = 0) picks a patch position, a top-left of the
7 x 7 grid (`models.adafocus_v1.ppo.grid_actions`) or, with `continuous`, a Gaussian position; the focus net's pooled feature
l_t of the integer P x P crop; the GRU classifier on [g_t, l_t]. State-dict keys are the original's
(`glancer.net.*`, `focuser.net.*`, `focuser.policy.policy(_old).*`, `classifier.*`) except the tonylins layout of
the glance MobileNetV2 (models/adafocus_v1/checkpoint.py converts the original files).
The training stages (models/adafocus_v1/stages.py) share this one class: `cfg.train_stage` decides what learns, the module
modes and where the patches come from; stage 2 trains the policy with a PPO step of its own (`training_step`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archs import create_backbone
from models.adafocus_v1.checkpoint import is_v1_checkpoint, model_state_dict, v1_state_dict
from models.adafocus_v1.classifier import RecurrentClassifier
from models.adafocus_v1.config import AdaFocusV1Config
from models.adafocus_v1.crops import grid_top_left, integer_crop, random_top_left
from models.adafocus_v1.flops import adafocus_v1_breakdown
from models.adafocus_v1.ppo import BETAS, ActorCritic, PPOAgent, Rollout, grid_actions
from models.adafocus_v1.pretrained import load_imagenet, load_stage_file
from models.adafocus_v1.stages import Stage, adafocus_v1_stage, apply_modes, apply_trainable
from models.core.config import ModelConfig
from models.core.interface import VideoModel
from models.core.losses import Criterion, first_label, repeated_ce
from models.core.patches import square_regions


def _replace_head(net: nn.Module, num_classes: int) -> int:
    """Gives a backbone the V1 classifier (MobileNetV2: Dropout(0.2) + Linear as torchvision's; ResNet: Linear);
    returns its feature width."""
    if isinstance(getattr(net, "classifier", None), nn.Linear):
        dim = net.classifier.in_features
        net.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(dim, num_classes))
    else:
        dim = net.fc.in_features
        net.fc = nn.Linear(dim, num_classes)
    return dim


def _pooled(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Returns the pooled feature (M, D) of images (M, 3, H, W): ResNet avgpool (as the original), else the mean."""
    if hasattr(net, "featvec"):
        return net.featvec(images)
    return net.features(images).mean((2, 3))


class Glancer(nn.Module):
    """`net`: the glance CNN with its stage-0 classifier."""

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net = net
        self.feature_dim = _replace_head(net, num_classes)


class Focuser(nn.Module):
    """`net`: the focus CNN with its stage-0 classifier; `policy`: the PPO agent (policy, policy_old)."""

    def __init__(self, net: nn.Module, num_classes: int, policy: PPOAgent) -> None:
        super().__init__()
        self.net = net
        self.feature_dim = _replace_head(net, num_classes)
        self.policy = policy


@dataclass
class PolicyRun:
    """The policy over T frames: actions (B, T) or (B, T, 2), positions (B, T, 2) in [0, 1], actor outputs
    (B, T, A), log-probabilities (B, T) (sampling only)."""

    actions: torch.Tensor
    positions: torch.Tensor
    actor_out: torch.Tensor
    logprobs: torch.Tensor | None


class AdaFocusV1(VideoModel):
    """AdaFocus V1; `forward(x (B, T, 3, S, S))` (normalised float) -> dict (see `forward`)."""

    amp_scope = "model"
    exit_family = "geometric_v2"  # V2's conditional exit, the one published on V1 models

    def __init__(self, cfg: AdaFocusV1Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.policy = "learned"  # evaluation control: 'random' = random patches
        c = cfg.num_classes
        self.glancer = Glancer(create_backbone(cfg.glance_arch, **cfg.backbone_kwargs("glance")), c)
        dg = self.glancer.feature_dim
        self.map_size = math.ceil(cfg.glance_size / cfg.glance_output_stride)

        def actor_critic() -> ActorCritic:
            return ActorCritic(
                dg,
                self.map_size,
                cfg.policy_hidden_dim,
                num_actions=cfg.action_dim,
                continuous=cfg.continuous,
                batch_norm=cfg.continuous,  # the Something-Something encoder (actorcritic_with_bn)
                action_std=cfg.action_std,
            )

        agent = PPOAgent(actor_critic(), actor_critic(), gamma=cfg.gamma)
        net = create_backbone(cfg.focus_arch, **cfg.backbone_kwargs("focus"))
        self.focuser = Focuser(net, c, agent)
        self.classifier = RecurrentClassifier(
            dg + self.focuser.feature_dim, cfg.gru_hidden_dim, c, cfg.dropout
        )
        if not cfg.continuous:
            self.register_buffer("action_grid", grid_actions(cfg.action_dim), persistent=False)
        self.stage: Stage = adafocus_v1_stage(cfg.train_stage, cfg.pretrain_net, cfg.finetune_focus)
        apply_trainable(self, self.stage)

    # ---- what the engine asks -----------------------------------------------------------------------------
    @staticmethod
    def input_layout(cfg: ModelConfig) -> tuple[int, int]:
        """T = num_segments frames, seen by both networks."""
        return 0, cfg.num_segments

    @property
    def num_exits(self) -> int:
        """One exit per frame (the GRU's prediction after t frames); stage 0: one."""
        return 1 if self.stage.number == 0 else self.cfg.num_segments

    @property
    def single_process(self) -> str | None:
        if self.stage.own_step:
            return (
                "AdaFocus V1 stage 2 (PPO) trains in a single process, as the original (returns are normalised "
                "over the local batch and the policy update is not synchronised): run it without "
                "--multiprocessing-distributed / torchrun"
            )
        return None

    def backbones(self) -> list[nn.Module]:
        return [self.glancer.net, self.focuser.net]

    def train(self, mode: bool = True) -> AdaFocusV1:
        """Train mode with the stage's modules in eval mode (e.g. stage 1: the glance network)."""
        super().train(mode)
        if mode:
            apply_modes(self, self.stage)
        return self

    def criterion(self) -> Criterion:
        """Stage 0: CE of the frame-averaged logits; stages 1-3: CE of the GRU logits at every step."""

        def loss(outputs: dict, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            y = first_label(target)
            if self.stage.number == 0:
                value = F.cross_entropy(outputs["logits"], y)
            else:
                value = repeated_ce(outputs["step_logits"], y)
            return value, {"loss": float(value.detach())}

        return loss

    def lr_ratios(self) -> dict[str, float]:
        """Backbones (glancer, focuser) 1, the GRU classifier fc_lr / backbone_lr."""
        return {"classifier": self.cfg.fc_lr_ratio}

    def make_optimizer(self, args) -> torch.optim.Optimizer | None:
        """Stage 2: Adam over the policy at the constant policy_lr (the original's PPO optimizer); else None."""
        if not self.stage.own_step:
            return None
        params = list(self.focuser.policy.policy.parameters())
        group = {"params": params, "name": "policy", "fixed_lr": True, "lr": self.cfg.policy_lr}
        return torch.optim.Adam([group], lr=self.cfg.policy_lr, betas=BETAS)

    def load_pretrained(self) -> AdaFocusV1:
        """ImageNet weights (torchvision's MobileNetV2, as the original; ResNet), unless `pretrain` is 'none';
        then the stage-0 networks of `pretrained_glancer` / `pretrained_focuser` (original files or ours)."""
        if self.cfg.pretrain not in ("none", "", None):
            load_imagenet(self)
        for part, path in (
            ("glancer", self.cfg.pretrained_glancer),
            ("focuser", self.cfg.pretrained_focuser),
        ):
            if path:
                load_stage_file(self, part, path)
        return self

    def convert_checkpoint(self, ckpt: dict) -> dict:
        """An original V1 checkpoint -> ours (epoch 0: its `resume` starts the next stage from scratch). Keys it
        does not hold (the policy, before stage 2) keep this model's values, as the original's non-strict load."""
        if is_v1_checkpoint(ckpt):
            state = v1_state_dict(ckpt)
        elif isinstance(ckpt.get("model_state_dict"), dict) and "state_dict" not in ckpt:
            state = model_state_dict(ckpt["model_state_dict"])
        else:
            return ckpt
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if any(not k.startswith("focuser.policy.") for k in missing):
            raise ValueError(
                f"an AdaFocus V1 checkpoint of another model: missing {[k for k in missing][:5]}, ..."
            )
        state.update({k: own[k] for k in missing})
        best = ckpt.get("best_acc")
        return {"state_dict": state, "epoch": 0, "best_metric": None if best is None else float(best)}

    def gflops_breakdown(self) -> dict:
        return adafocus_v1_breakdown(self)

    # ---- forward ------------------------------------------------------------------------------------------
    def glance(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the glance maps (B, T, C, h, w) and their spatial means (B, T, C) of frames x (B, T, 3, S, S)
        (resized to glance_size by nearest neighbour, the original's `interpolate` default; identity at 224)."""
        b, t = x.shape[:2]
        frames = x.flatten(0, 1)
        size = self.cfg.glance_size
        if frames.shape[-1] != size:
            frames = F.interpolate(frames, size=(size, size))
        fm = self.glancer.net.features(frames)
        return fm.view(b, t, *fm.shape[1:]), fm.mean((2, 3)).view(b, t, -1)

    def act(self, featmap: torch.Tensor, sample: bool) -> PolicyRun:
        """`policy_old` over the T glance maps featmap (B, T, C, h, w), from a fresh hidden state: sampled actions
        (training) or greedy ones."""
        hidden, actions, outs, logprobs = None, [], [], []
        for t in range(featmap.shape[1]):
            action, logprob, out, hidden = self.focuser.policy.select(featmap[:, t], hidden, sample)
            actions.append(action)
            outs.append(out)
            logprobs.append(logprob)
        actions_bt = torch.stack(actions, dim=1)
        positions = actions_bt if self.cfg.continuous else self.action_grid[actions_bt]
        return PolicyRun(
            actions_bt, positions, torch.stack(outs, dim=1), torch.stack(logprobs, 1) if sample else None
        )

    def focus(self, x: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
        """Returns the focus features (B, T, D) of the P x P crops at corners (B, T, 2) [y, x] of x (B, T, 3, S, S)."""
        b, t = x.shape[:2]
        patches = integer_crop(x.flatten(0, 1), corners.reshape(-1, 2), self.cfg.patch_size)
        return _pooled(self.focuser.net, patches).view(b, t, -1)

    def corners(self, positions: torch.Tensor) -> torch.Tensor:
        """Top-left corners (B, T, 2) long of positions (B, T, 2) in [0, 1]."""
        b, t = positions.shape[:2]
        return grid_top_left(positions.reshape(-1, 2), self.cfg.patch_size, self.cfg.input_size).view(b, t, 2)

    def decisions(self, outputs: dict) -> dict | None:
        """Every input frame is a glance and a focus frame; `regions` (B, T, 4) [x, y, P, P] are the patches
        (None at stage 0, where no patches exist)."""
        if "patch_top_left" not in outputs:
            return None
        corners = outputs["patch_top_left"]  # (B, T, 2) [y, x]
        b, t = corners.shape[:2]
        frames = torch.arange(t, device=corners.device).expand(b, t)
        return {"glance": frames, "selected": frames, "regions": square_regions(corners, self.cfg.patch_size)}

    def _check(self, x: torch.Tensor) -> None:
        t, s = self.cfg.num_segments, self.cfg.input_size
        if x.dim() != 5 or x.shape[1] != t or x.shape[2] != 3 or x.shape[-1] != s:
            raise ValueError(f"expected frames (B, {t}, 3, {s}, {s}), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Runs frames x (B, T, 3, S, S); returns `logits` (B, C) (the last step) and `exit_logits` (B, E, C):
        stage 0: the pretrained network's frame-averaged logits (E = 1); else `step_logits` = `exit_logits`
        (B, T, C), `patch_top_left` (B, T, 2) [y, x] and, with policy patches, `action_probs` (B, T, A) (the
        actor's output: probabilities, or the Gaussian mean) and `actions` (B, T) (or (B, T, 2))."""
        self._check(x)
        if self.stage.number == 0:
            return self._pretrain_forward(x)
        b, t = x.shape[:2]
        out: dict[str, torch.Tensor] = {}
        with torch.no_grad():  # the glance network never learns after stage 0
            featmap, g_feat = self.glance(x)
        if self.stage.patches == "random" or (not self.training and self.policy == "random"):
            # frame-major over the B*T frames, as the original's stage-1 sampler
            corners = random_top_left(b * t, self.cfg.patch_size, self.cfg.input_size).view(b, t, 2)
        else:
            run = self.act(featmap, sample=False)  # training (stage 3) and evaluation: greedy actions
            corners = self.corners(run.positions)
            out.update(action_probs=run.actor_out, actions=run.actions)
        corners = corners.to(x.device)
        steps = self.classifier(torch.cat([g_feat, self.focus(x, corners)], dim=2))
        out.update(step_logits=steps, exit_logits=steps, logits=steps[:, -1], patch_top_left=corners)
        return out

    def _pretrain_forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = x.shape[:2]
        if self.cfg.pretrain_net == "glancer":
            frames = x.flatten(0, 1)
            if frames.shape[-1] != self.cfg.glance_size:
                frames = F.interpolate(frames, size=(self.cfg.glance_size,) * 2)
            logits = self.glancer.net(frames)
        else:
            logits = self.focuser.net(x.flatten(0, 1))
        logits = logits.view(b, t, -1).mean(1)
        return {"logits": logits, "exit_logits": logits.unsqueeze(1)}

    # ---- stage 2: the policy by PPO -------------------------------------------------------------------------
    def training_step(
        self, x: torch.Tensor, target: torch.Tensor, optimizer: torch.optim.Optimizer
    ) -> tuple[dict, torch.Tensor, dict[str, float]] | None:
        """Stage 2 (else None): one batch of episodes and one PPO update, as the original's stage-2 iteration.

        Per frame t: the sampled policy patch and a random patch (numpy's generator, y then x per video) go through
        the focus net; the classifier scores both from the same hidden state h_{t-1} of the policy's sequence
        (only the policy step advances it); reward r_t = p(y | policy patch) - p(y | random patch) ('random'),
        p_t - p_{t-1} ('prev') or p_t ('conf'), p = softmax probability of the first label. Returns
        (outputs {'logits' (B, C): the last step, 'step_logits' (B, T, C)}, loss, parts)."""
        if not (self.training and self.stage.own_step):
            return None
        self._check(x)
        y = first_label(target).view(-1, 1)
        b, t = x.shape[:2]
        with torch.no_grad():
            featmap, g_feat = self.glance(x)
            run = self.act(featmap, sample=True)
            corners = self.corners(run.positions)
            hidden = x.new_zeros(b, self.classifier.hidden_dim)
            rewards, steps, previous = [], [], 0.0
            for step in range(t):
                frames = x[:, step]
                baseline = random_top_left(b, self.cfg.patch_size, self.cfg.input_size).to(x.device)
                local = _pooled(self.focuser.net, integer_crop(frames, corners[:, step], self.cfg.patch_size))
                local_base = _pooled(self.focuser.net, integer_crop(frames, baseline, self.cfg.patch_size))
                base_logits, _ = self.classifier.step(torch.cat([g_feat[:, step], local_base], 1), hidden)
                logits, hidden = self.classifier.step(torch.cat([g_feat[:, step], local], 1), hidden)
                p = F.softmax(logits, 1).gather(1, y).view(-1)
                p_base = F.softmax(base_logits, 1).gather(1, y).view(-1)
                rewards.append(self._reward(p, p_base, previous))
                previous = p
                steps.append(logits)
        rollout = Rollout(
            states=list(featmap.unbind(1)),
            actions=list(run.actions.unbind(1)),
            logprobs=list(run.logprobs.unbind(1)),
            rewards=rewards,
        )
        stats = self.focuser.policy.update(rollout, optimizer)
        step_logits = torch.stack(steps, dim=1)
        loss = torch.tensor(stats.pop("ppo_loss"))
        return {"logits": step_logits[:, -1], "step_logits": step_logits}, loss, stats

    def _reward(self, p: torch.Tensor, p_base: torch.Tensor, previous: torch.Tensor | float) -> torch.Tensor:
        kind = self.cfg.reward
        if kind == "random":
            return p - p_base
        if kind == "prev":
            return p - previous
        return p  # 'conf'
