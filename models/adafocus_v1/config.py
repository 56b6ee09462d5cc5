"""The configuration of AdaFocus V1: ModelConfig + its fields, its recipe and the checks of its part of the
configuration (errors name the flag)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from archs.names import is_clip_arch
from models.adafocus_v1.ppo import grid_actions
from models.adafocus_v1.recipe import RECIPE
from models.core.config import ModelConfig, require_positive

REWARDS = ("random", "prev", "conf")


@dataclass
class AdaFocusV1Config(ModelConfig):
    """ModelConfig + AdaFocus V1's fields (defaults: models/adafocus_v1/recipe.py)."""

    RECIPE: ClassVar[dict] = RECIPE

    train_stage: int | None = None  # 0-3; None: 3 (the full model)
    pretrain_net: str | None = None  # stage 0: 'glancer' | 'focuser'
    pretrained_glancer: str | None = None  # stage 1: checkpoint whose glance network initialises ours
    pretrained_focuser: str | None = None  # stage 1: checkpoint whose focus network initialises ours
    finetune_focus: bool | None = (
        None  # stage 3: the focus net learns too (the paper; the code: classifier only)
    )
    fc_lr_ratio: float | None = None  # classifier lr / backbone lr (fc_lr / backbone_lr)
    gru_hidden_dim: int | None = None  # GRU classifier width (V1 `hidden_dim`)
    policy_hidden_dim: int | None = None  # policy encoder + GRU width (V1 `hidden_state_dim`)
    action_dim: int | None = None  # grid positions (16, 25, 36, 49, 64, ...)
    continuous: bool | None = None  # Gaussian policy of the Something-Something code instead of the grid
    action_std: float | None = None  # its standard deviation
    gamma: float | None = None  # PPO discount
    policy_lr: float | None = None  # PPO Adam learning rate (constant)
    reward: str | None = None  # 'random' | 'prev' | 'conf'

    def finalize(self, defaulted: set[str]) -> None:
        """Checks the V1 fields (errors name the flag) and derives the classifier's lr ratio when not given."""
        if self.train_stage is None:
            self.train_stage = 3
        if self.train_stage not in (0, 1, 2, 3):
            raise ValueError(f"train_stage must be 0, 1, 2 or 3, got {self.train_stage}")
        require_positive(
            self,
            (
                "num_segments",
                "input_size",
                "patch_size",
                "glance_size",
                "gru_hidden_dim",
                "policy_hidden_dim",
            ),
        )
        if self.patch_size > self.input_size:
            raise ValueError(f"patch_size {self.patch_size} exceeds input_size {self.input_size}")
        if not self.focus_arch.startswith("resnet"):
            raise ValueError(f"focus_arch {self.focus_arch}: AdaFocus V1's focus network is a ResNet")
        if is_clip_arch(self.glance_arch):
            raise ValueError(f"glance_arch {self.glance_arch}: AdaFocus V1's glance network is a 2-D CNN")
        if self.glance_output_stride != 32 and not self.glance_arch.startswith("resnet"):
            raise ValueError(
                f"glance_output_stride {self.glance_output_stride}: only a ResNet glance has a dilated form"
            )
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if self.pretrain_net not in ("glancer", "focuser"):
            raise ValueError(f"pretrain_net must be glancer or focuser, got {self.pretrain_net!r}")
        if not self.continuous:
            grid_actions(self.action_dim)  # raises for a non-square action_dim
        if self.action_std <= 0 or self.policy_lr <= 0 or not 0 <= self.gamma <= 1:
            raise ValueError(
                f"action_std {self.action_std} and policy_lr {self.policy_lr} must be > 0, gamma {self.gamma} in [0, 1]"
            )
        if self.fc_lr_ratio is None:
            values = RECIPE["stages"][self.train_stage]
            self.fc_lr_ratio = values["fc_lr"] / values["lr"] if "fc_lr" in values else 1.0
        self.shift = False
