"""VideoModel: what every method's model tells the engine, with defaults a plain classifier can keep.

The engine asks the model, never the method's name:
- `forward(x (B, T, 3, S, S))` -> dict with `logits` (B, C) and `exit_logits` (B, E, C), E = `num_exits`;
- `input_layout(cfg)` -> (glance frames, candidate frames) per view, T = their sum;
- `input_spec(cfg)` -> InputSpec: how the frames are sampled, cropped and normalised (default: TSN segments,
  TSM crops, ImageNet RGB normalisation, as every preset of the original);
- `criterion()` -> `criterion(outputs, target) -> (loss, parts)`; `param_groups()` -> optimizer groups;
- `backbones()` -> the CNNs (partial BN, pretrained weights, FLOPs); `load_pretrained()`;
- `gflops_breakdown()` -> per-component GFLOPs per video, with `exits` and `total` (papers' convention);
- `find_unused_parameters`: whether DDP must look for parameters without a gradient;
- `amp_scope`: 'model' (the forward and the loss under autocast) or 'backbones' (only the backbones: the model
  narrows the engine's autocast itself);
- `decisions(outputs)` -> which input frames the model glanced at and selected, and where it looked (pictures of
  a prediction, ops/tools/visualize.py); None for a model without policies;
- `exit_family`: the family of exit distributions early exit sweeps (default: 'two_exit' for 2 exits, else
  'geometric');
- `view_fusion`: how evaluation fuses the views (crops x clips) of a video, as the method's original did: 'logits'
  (the mean of the raw logits, the default) or 'softmax' (the mean of the softmax probabilities).
For the tools (ops/tools, ops/demo, scripts), each optional (the defaults say "not available"):
- `staged`: True when `glance_stage(x, prepare)` / `focus_stage(state, rows, aux)` split the forward at the first
  exit, so early exit runs the second stage only for the videos that stay (`forward = focus_stage(glance_stage)`);
- `pretrain_parts()` -> FramePretrainParts: the per-frame glance and focus networks a frame-pretraining tool
  trains (the demo's stand-in for ImageNet weights), or None;
- `dense_counterpart(cfg)` -> (config, build) of the dense model the benchmark times this one against, or None.
Optional, for methods that train in their own way (defaults keep the plain path):
- `training_step(x, target, optimizer)` -> a step of the model's own (e.g. PPO) instead of forward + criterion +
  backward, or None; `make_optimizer(args)` -> the model's own optimizer, or None (SGD over `param_groups()`);
- `single_process`: why training must run in one process, or None; `convert_checkpoint(ckpt)`: another
  layout's checkpoint -> ours;
- `original_prefix`: the prefix the model's state_dict keys carry that the original implementation's files lack
  (e.g. 'net.'), so `--resume` / `--tune_from` accept those files.
For distillation (models/reskd/; defaults fit a model whose forward returns a per-frame `featmap`):
- `kd_featmap(outputs)` -> the feature map a teacher's is compared with, (B, T', C, h, w);
- `kd_frames(outputs)` -> which input frames that map comes from, (B, T') indices or None (all, in order);
- `kd_frame_count(cfg)` -> T'; `kd_classifier()` -> the Linear layer applied at every position (`--kd_loss kl`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from models.core.config import ModelConfig
from models.core.flops import count_macs
from models.core.losses import Criterion, multi_hot_loss, plain_loss


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


@dataclass(frozen=True)
class InputSpec:
    """How a model wants its frames; the defaults are what every Uni-AdaFocus preset and baseline uses.

    sampling: 'segments' (TSN: one frame per segment, random in train, centres in eval), 'loop' (Efficient-3DCNNs:
        a contiguous clip of T frames every `clip_stride`, loop-padded; random position in train, centre in eval)
        or 'interval' (TAdaConv interval_based: T frames over T * clip_stride, random start in train, evenly
        spaced clips in eval); see ops/data/lists.py.
    train_crop: 'tsm' (multi-scale crop with fixed offsets) or Efficient-3DCNNs' 'random' / 'corner' / 'center'
        multi-scale crops (ops/data/transforms.py); `--train_crop` overrides it.
    eval_scale: evaluation resizes the short side to input_size * eval_scale[0] // eval_scale[1] before the crop
        (TSM: 256 / 224; (1, 1): the crop is the short side, as Efficient-3DCNNs and TAdaConv).
    Normalisation of uint8 frames: (x / pixel_scale - mean) / std per channel, after reversing the channel order
    when `bgr` (pixel_scale 1: 0-255 values, as Efficient-3DCNNs).
    """

    sampling: str = "segments"
    clip_stride: int = 1
    train_crop: str = "tsm"
    eval_scale: tuple[int, int] = (256, 224)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    pixel_scale: float = 255.0
    bgr: bool = False


@dataclass(frozen=True)
class FramePretrainParts:
    """What a frame-pretraining tool trains: per-frame (TSN-form) glance and focus networks, each called as
    `net(frames (M, 3, H, W), frames_per_video)` -> {'featmap', 'final' (B, C), 'reg' (B, C), ...}; the
    frames per video of each; the glance resize (frames at input_size -> the glance resolution); and an optional
    head (D_g -> C) on glance feature-map crops, for a class-map loss that localises the glance features."""

    glance: nn.Module
    focus: nn.Module
    glance_frames: int
    focus_frames: int
    glance_resize: Callable[[torch.Tensor], torch.Tensor]
    class_map_head: nn.Module | None = None


class VideoModel(nn.Module):
    """Base class of the registry's models; subclasses set `self.cfg` and implement forward and backbones."""

    find_unused_parameters = False
    amp_scope = "model"
    single_process: str | None = None  # why training must run in a single process (None: any world size)
    original_prefix = ""
    view_fusion = "logits"  # evaluation views: mean of the raw logits ('softmax': of the probabilities)
    policy = "learned"  # methods with learned policies: 'random' is the evaluation control (--policy random)
    staged = False  # glance_stage / focus_stage split the forward at the first exit

    @staticmethod
    def input_layout(cfg) -> tuple[int, int]:
        """Returns (glance frames, candidate frames) per view: a plain model takes cfg.num_segments frames."""
        return 0, cfg.num_segments

    @staticmethod
    def input_spec(cfg) -> InputSpec:
        """Returns how the data pipeline samples, crops and normalises the frames (default: TSN / ImageNet)."""
        return InputSpec()

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
        """Returns optimizer groups [{params, lr_mult, decay_mult, name}]: one per top-level child with trainable
        parameters, at `lr_mult(name)`, decay_mult 1."""
        groups = []
        for name, module in self.named_children():
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                groups.append(
                    {"params": params, "lr_mult": self.lr_mult(name), "decay_mult": 1.0, "name": name}
                )
        return groups

    def lr_ratios(self) -> dict[str, float]:
        """Returns learning-rate multipliers by top-level child: a name, or a prefix ending in '_' that covers every
        child whose name starts with it (names first); children it does not cover get 1. Default: {}."""
        return {}

    def lr_mult(self, child: str) -> float:
        """Returns the learning-rate multiplier of the top-level child `child` (from `lr_ratios`)."""
        ratios = self.lr_ratios()
        if child in ratios:
            return ratios[child]
        prefixes = [p for p in ratios if p.endswith("_") and child.startswith(p)]
        return ratios[prefixes[0]] if prefixes else 1.0

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

    def decisions(self, outputs: dict) -> dict | None:
        """Returns what the model chose for each video of a forward's `outputs`: `glance` (B, T_g) and
        `selected` (B, K) positions of frames in its input x (B, T, 3, S, S), and `regions` (B, K, 4), the part
        [x, y, w, h] of each selected frame the model looked at, in pixels of the S x S input frame. None (the
        default): a model without policies, which sees all its input frames whole."""
        return None

    def training_step(
        self, x: torch.Tensor, target: torch.Tensor, optimizer: torch.optim.Optimizer
    ) -> tuple[dict, torch.Tensor, dict[str, float]] | None:
        """A training step of the model's own on x (B, T, 3, S, S) that replaces forward + criterion + backward +
        optimizer step (it steps `optimizer` itself): returns (outputs with `logits` (B, C), loss (detached),
        parts), or None (default): the engine runs the plain step."""
        return None

    def make_optimizer(self, args) -> torch.optim.Optimizer | None:
        """The model's own optimizer for this run, or None (default): SGD over `param_groups()`. A group with
        `fixed_lr: True` keeps its learning rate and weight decay (the schedule leaves it alone)."""
        return None

    def convert_checkpoint(self, ckpt: dict) -> dict:
        """Returns a checkpoint dict of another layout (e.g. the original implementation's) in ours, with a
        `state_dict` of this model's keys; default: unchanged."""
        return ckpt

    def glance_stage(self, x: torch.Tensor, prepare: Callable | None = None) -> dict:
        """First stage of a `staged` model on frames x (B, T, 3, S, S): a state whose `glance_logits` (B, C) are
        exit 0; `prepare` (e.g. uint8 -> normalised float) is applied to the frames that are used only."""
        raise NotImplementedError(f"{type(self).__name__} has no staged forward")

    def focus_stage(self, state: dict, rows: torch.Tensor | None = None, aux: bool = True) -> dict:
        """Second stage of a `staged` model for the videos `rows` (B',) of a `glance_stage` state (default: all);
        returns `forward`'s dict for them (`aux=False`: without the training-only outputs)."""
        raise NotImplementedError(f"{type(self).__name__} has no staged forward")

    def pretrain_parts(self) -> FramePretrainParts | None:
        """Returns the networks a frame-pretraining tool trains (FramePretrainParts), or None (default)."""
        return None

    @staticmethod
    def dense_counterpart(cfg) -> tuple[ModelConfig, Callable[[ModelConfig], nn.Module]] | None:
        """Returns (config, build) of the dense model the benchmark times a model of `cfg` against (`build(config)`
        makes it, randomly initialised), or None (default: the model is its own dense baseline)."""
        return None

    def gflops_breakdown(self) -> dict:
        """Returns GFLOPs per video of the whole eval forward (fvcore over one zero clip): `exits`, `total`."""
        glance, candidates = self.input_layout(self.cfg)
        s = self.cfg.input_size
        total = count_macs(self, torch.zeros(1, glance + candidates, 3, s, s), fn=lambda m, x: m(x)["logits"])
        return {"exits": [total / 1e9], "total": total / 1e9, "not_in_total": {}}
