"""A toy method's config and model: mean colour of each frame -> linear embedding -> mean over time -> linear
classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.core import ModelConfig, VideoModel


@dataclass
class ToyConfig(ModelConfig):
    DEFAULTS: ClassVar[dict] = {"toy_hidden": 16, "num_segments": 3}
    toy_hidden: int | None = None


class Toy(VideoModel):
    """Mean colour of each frame -> linear embedding -> mean over time -> linear classifier."""

    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(3, cfg.toy_hidden)
        self.fc = nn.Linear(cfg.toy_hidden, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.fc(self.embed(x.mean((3, 4))).relu().mean(1))
        return {"logits": logits, "exit_logits": logits.unsqueeze(1)}

    def backbones(self) -> list[nn.Module]:
        return [self.embed]
