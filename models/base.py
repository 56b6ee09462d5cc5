"""VideoModel: what every method's model tells the engine, with defaults a plain classifier can keep.

The engine asks the model, never the method's name:
- `forward(x (B, T, 3, S, S))` -> dict with `logits` (B, C) and `exit_logits` (B, E, C), E = `num_exits`;
- `input_layout(cfg)` -> (glance frames, candidate frames) per view, T = their sum;
- `criterion()` -> `criterion(outputs, target) -> (loss, parts)`; `param_groups()` -> optimizer groups;
- `backbones()` -> the CNNs (partial BN, pretrained weights, FLOPs); `load_pretrained()`;
- `gflops_breakdown()` -> per-component GFLOPs per video, with `exits` and `total` (papers' convention);
- `find_unused_parameters`: whether DDP must look for parameters without a gradient;
- `amp_scope`: 'model' (the forward and the loss under autocast) or 'backbones' (only the backbones: the model
  narrows the engine's autocast itself).
For distillation (models/distill.py; defaults fit a model whose forward returns a per-frame `featmap`):
- `kd_featmap(outputs)` -> the feature map a teacher's is compared with, (B, T', C, h, w);
- `kd_frames(outputs)` -> which input frames that map comes from, (B, T') indices or None (all, in order);
- `kd_frame_count(cfg)` -> T'; `kd_classifier()` -> the Linear layer applied at every position (`--kd_loss kl`).
"""

from __future__ import annotations

import torch
from torch import nn

from models.losses import Criterion, multi_hot_loss, plain_loss


def freeze_partial_bn(backbone: nn.Module, keep_first: int = 1) -> list[str]:
    """TSN partial BN on one backbone: every BatchNorm after the first `keep_first` goes to eval mode with
    frozen affine parameters (idempotent; call it after every `train()`). Returns the frozen layers' names."""
    frozen, seen = [], 0
    for name, m in backbone.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            seen += 1
            if seen > keep_first:
                m.eval()
                for p in (m.weight, m.bias):
                    if p is not None:
                        p.requires_grad_(False)
                frozen.append(name)
    return frozen


class VideoModel(nn.Module):
    """Base class of the registry's models; subclasses set `self.cfg` and implement forward and backbones."""

    find_unused_parameters = False
    amp_scope = "model"

    @staticmethod
    def input_layout(cfg) -> tuple[int, int]:
        """Returns (glance frames, candidate frames) per view: a plain model takes cfg.num_segments frames."""
        return 0, cfg.num_segments

    @property
    def num_exits(self) -> int:
        """Number of exits in `exit_logits` (1: no early exit)."""
        return 1

    @property
    def exit_family(self) -> str:
        """The family of target exit distributions early-exit calibration sweeps (ops.engine.early_exit):
        'two_exit' for two exits, else 'geometric' (Uni-AdaFocus AN)."""
        return "two_exit" if self.num_exits == 2 else "geometric"

    def backbones(self) -> list[nn.Module]:
        """Returns the CNN backbones (each keeps its own first BatchNorm under partial BN)."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> VideoModel:
        """Sets train mode; with `cfg.partial_bn`, every BatchNorm but the first of each backbone stays frozen."""
        super().train(mode)
        if mode and self.cfg.partial_bn:
            for backbone in self.backbones():
                freeze_partial_bn(backbone)
        return self

    def criterion(self) -> Criterion:
        """Returns the training criterion: cross-entropy on `logits` (column 0 of multi-label targets; with
        `cfg.multilabel_ce == 'sum'` the sum of every label's CE)."""
        return multi_hot_loss if getattr(self.cfg, "multilabel_ce", "first") == "sum" else plain_loss

    def param_groups(self) -> list[dict]:
        """Returns optimizer groups [{params, lr_mult, decay_mult, name}]: one per top-level child."""
        groups = []
        for name, module in self.named_children():
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                groups.append({"params": params, "lr_mult": 1.0, "decay_mult": 1.0, "name": name})
        return groups

    def kd_featmap(self, outputs: dict) -> torch.Tensor:
        """Returns the feature map distillation compares, (B, T', C, h, w), from `forward`'s outputs: by default
        `outputs['featmap']` (B*T, C, h, w) of a per-frame network, viewed per video."""
        if "featmap" not in outputs:
            raise ValueError(f"{type(self).__name__} returns no feature map to distil (--distill)")
        fm = outputs["featmap"]
        return fm.view(outputs["logits"].shape[0], -1, *fm.shape[1:])

    def kd_frames(self, outputs: dict) -> torch.Tensor | None:
        """Returns the indices (B, T') of the input frames `kd_featmap` comes from; None: all of them, in order."""
        return None

    def kd_frame_count(self, cfg) -> int:
        """Returns T', the number of frames of `kd_featmap` (a temporal-shift teacher is built for it)."""
        return sum(self.input_layout(cfg))

    def kd_classifier(self) -> nn.Linear:
        """Returns the classifier that `--kd_loss kl` applies at every position of `kd_featmap`."""
        raise ValueError(
            f"--kd_loss kl: {type(self).__name__} has no linear classifier to apply per position"
        )

    def load_pretrained(self) -> VideoModel:
        """Loads the backbones' published weights in place (none by default); returns self."""
        return self

    def gflops_breakdown(self) -> dict:
        """Returns GFLOPs per video of the whole eval forward (fvcore over one zero clip): `exits`, `total`."""
        from models.flops import count_macs

        glance, candidates = self.input_layout(self.cfg)
        s = self.cfg.input_size
        total = count_macs(self, torch.zeros(1, glance + candidates, 3, s, s), fn=lambda m, x: m(x)["logits"])
        return {"exits": [total / 1e9], "total": total / 1e9, "not_in_total": {}}
