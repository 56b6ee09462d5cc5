"""Clip-network methods on full frames: Efficient-3DCNNs (`e3d`) and TAdaConv (`tada`).

`forward(x (B, T, 3, S, S))` -> {'logits' (B, C), 'exit_logits' (B, 1, C)}: one clip of T frames through the
network (`net`, with the original's module names under `net.`; `original_prefix` lets `--resume` / `--tune_from`
read the originals' own checkpoints). Each model declares its originals' data conventions (InputSpec): the
Efficient-3DCNNs loop-padded clips every `--downsample` frames, 0-255 values minus the ActivityNet mean (BGR on
Kinetics), short-side resize to the crop in evaluation; TAdaConv's interval clips (8 frames over 64 for K400
8x8), RGB in [0, 1] with mean 0.45 / std 0.225.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from archs import create_backbone
from archs.names import E3D_ORIGINAL_NAMES, clip_input
from archs.weights import UnreadableFileError, WeightsError, extract_state_dict, load_torch_file
from models.clipnets.config import E3DConfig, TAdaConfig
from models.core.config import ModelConfig
from models.core.flops import clip_breakdown, count_macs
from models.core.interface import InputSpec, VideoModel
from models.core.weights import load_backbone_weights


def e3d_arch_kwargs(cfg: ModelConfig, arch: str) -> dict:
    """Returns the constructor options of Efficient-3DCNNs network `arch` from an E3DConfig-like cfg."""
    if arch in ("resnet18_3d", "resnet50_3d", "resnet101_3d"):
        return dict(shortcut_type=cfg.shortcut_type)
    if arch == "resnext101_3d":
        return dict(shortcut_type=cfg.shortcut_type, cardinality=cfg.cardinality)
    if arch == "squeezenet_3d":
        return dict(version=cfg.version)
    if arch == "shufflenet_3d":
        return dict(width_mult=cfg.width_mult, groups=cfg.groups)
    return dict(width_mult=cfg.width_mult)


class ClipModel(VideoModel):
    """One clip network `net` on T full frames; its head included in `logits`."""

    original_prefix = "net."

    def __init__(self, cfg: ModelConfig, net: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = net

    @staticmethod
    def _spec(cfg: ModelConfig, sampling: str, train_crop: str) -> InputSpec:
        mean, std, scale, bgr = clip_input(cfg.focus_arch, cfg.dataset)
        return InputSpec(sampling, cfg.downsample, train_crop, (1, 1), mean, std, scale, bgr)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns `logits` (B, C) and `exit_logits` (B, 1, C) for frames x (B, T, 3, H, W)."""
        logits = self.net(x.permute(0, 2, 1, 3, 4))
        return {"logits": logits, "exit_logits": logits.unsqueeze(1)}

    def backbones(self) -> list[nn.Module]:
        return [self.net]

    def gflops_breakdown(self) -> dict:
        """GFLOPs per video: one T-frame clip at input_size through the network, head included (one fvcore trace
        at the real size: temporal strides make the count non-affine in T)."""
        s, t = self.cfg.input_size, self.cfg.num_segments
        return clip_breakdown(count_macs(self.net, torch.zeros(1, 3, t, s, s)), 0)


class E3DModel(ClipModel):
    """An Efficient-3DCNNs network (`cfg.focus_arch`: mobilenet_3d, mobilenetv2_3d, shufflenet_3d, shufflenetv2_3d,
    squeezenet_3d, resnet{18,50,101}_3d, resnext101_3d) on one clip.

    With `pretrain_path` the classifier is the original's fine-tuning head (Dropout(0.9) + Linear; ResNets a new
    fc; SqueezeNet Dropout(0.5) + conv + ReLU), and `ft_portion='last_layer'` trains only it: the original gave
    the other parameters learning rate 0, here they are frozen (same updates; BatchNorm statistics still adapt
    in training mode, as in the original)."""

    view_fusion = "softmax"  # test.py averages the clips' softmax scores per video

    def __init__(self, cfg: E3DConfig) -> None:
        arch = cfg.focus_arch
        net = create_backbone(
            arch,
            num_classes=cfg.num_classes,
            sample_size=cfg.input_size,
            sample_duration=cfg.num_segments,
            **e3d_arch_kwargs(cfg, arch),
        )
        if cfg.pretrain_path:
            net.reset_classifier(cfg.num_classes)
        super().__init__(cfg, net)
        if cfg.ft_portion == "last_layer":
            head = "fc" if hasattr(net, "fc") else "classifier"  # the original's substring rule
            for name, p in net.named_parameters():
                p.requires_grad_(head in name)

    @staticmethod
    def input_layout(cfg: ModelConfig) -> tuple[int, int]:
        return 0, cfg.num_segments

    @staticmethod
    def input_spec(cfg: ModelConfig) -> InputSpec:
        """Loop-padded clips every `downsample` frames, the Efficient-3DCNNs crops (corner by default),
        0-255 values minus the ActivityNet mean (BGR on Kinetics)."""
        return ClipModel._spec(cfg, "loop", "corner")

    def load_pretrained(self) -> E3DModel:
        """Loads `cfg.pretrain_path` (an Efficient-3DCNNs checkpoint) into everything but the classifier, which
        the original replaced after loading; nothing without it."""
        if self.cfg.pretrain_path:
            load_e3d_checkpoint(self.net, self.cfg.pretrain_path, self.cfg.focus_arch)
        return self


def load_e3d_checkpoint(net: nn.Module, path: str, arch: str) -> None:
    """Loads an Efficient-3DCNNs checkpoint ({'arch', 'state_dict' with or without `module.`}) into `net`,
    classifier excepted; every other key must match in name and shape, and a stored `arch` must be the network's
    original name (the original asserted it). Raises WeightsError naming the file."""
    if not os.path.isfile(path):
        raise WeightsError(f"--pretrain_path: checkpoint not found: {path}")
    try:
        ckpt = load_torch_file(path, trust_hint="Save its state_dict as a plain file and pass that instead.")
    except UnreadableFileError as exc:
        raise WeightsError(f"--pretrain_path: {exc}") from exc
    original = E3D_ORIGINAL_NAMES[arch]
    if isinstance(ckpt, dict) and ckpt.get("arch", original) != original:
        raise WeightsError(f"{path}: a checkpoint of {ckpt['arch']!r}, not of {original!r} ({arch})")
    state = extract_state_dict(ckpt, path)
    head = ("fc." if hasattr(net, "fc") else "classifier.",)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and not k.startswith(head) and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{path} does not fit {arch}: missing {missing[:5]}, unexpected {unexpected[:5]}, shapes differ "
            f"{wrong[:5]}"
        )
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith(head)}, strict=False)


def tadaconv_param_group(name: str) -> str:
    """Returns the optimizer group of the parameter `name` (a key of the network's state_dict, e.g.
    `backbone.conv2.res_1.conv_branch.b_rf.a.weight`) by TAdaConv's `construct_optimizer` rule (its
    `tadaconv/models/utils/optimizer.py`, the branch without layer-wise decay): route-function parameters ("rf" in
    the name) split into "bn" / bias / other, then names holding "embd" or "cls_token", then "bn" or "norm", the
    head (bias / other), other biases, other weights. Names are matched as substrings, as the original: a LayerNorm
    inside `downsample_layers` is an ordinary weight, `b_bias.weight` of a route function a bias."""
    if "rf" in name:
        return "rf_bn" if "bn" in name else "rf_bias" if "bias" in name else "rf"
    if "embd" in name or "cls_token" in name:
        return "no_decay"
    if "bn" in name or "norm" in name:
        return "bn"
    if "head" in name:
        return "head_bias" if "bias" in name else "head"
    return "bias" if "bias" in name else "weight"


def tadaconv_group_mults(boost: bool) -> dict[str, tuple[float, float]]:
    """Returns {group: (lr_mult, decay_mult)} of TAdaConv's groups, in its order: route functions and head at 5x
    the lr, their biases 10x with `boost` (TRAIN.LR_REDUCE with FINE_TUNE), else 1x (OPTIMIZER.BIAS_DOUBLE false);
    no decay for norms (BN.WEIGHT_DECAY 0) and biases."""
    w, b = (5.0, 10.0) if boost else (1.0, 1.0)
    return {
        "bn": (1.0, 0.0),
        "rf_bn": (1.0, 0.0),
        "rf": (w, 1.0),
        "rf_bias": (b, 0.0),
        "weight": (1.0, 1.0),
        "bias": (1.0, 0.0),
        "head": (w, 1.0),
        "head_bias": (b, 0.0),
        "no_decay": (1.0, 0.0),
    }


class TAdaModel(ClipModel):
    """A TAdaConv network (`cfg.focus_arch`: tada2d_r50, tadaconvnextv2_t/s/b) on one clip; logits in eval too
    (the official head's eval softmax is an archs option, not used here; evaluation views are fused by their
    softmax, `view_fusion`)."""

    view_fusion = (
        "softmax"  # the official head's softmax, views summed (ENSEMBLE_METHOD sum: the same argmax)
    )

    def __init__(self, cfg: TAdaConfig) -> None:
        extra = {} if cfg.drop_path is None else {"drop_path": cfg.drop_path}
        net = create_backbone(
            cfg.focus_arch,
            num_classes=cfg.num_classes,
            num_frames=cfg.num_segments,
            dropout=cfg.dropout,
            **extra,
            **cfg.backbone_kwargs("focus"),  # TAda2D: --focus_base_width (tiny test builds)
        )
        super().__init__(cfg, net)

    @staticmethod
    def input_spec(cfg: ModelConfig) -> InputSpec:
        """Interval clips (T frames over T * downsample), RGB / 0.45 / 0.225; training crops as TAdaConv's
        configs: TAda2D the short side jittered in [224, 340] ('jitter'), the ConvNeXts a random resized crop
        ('rrc')."""
        return ClipModel._spec(
            cfg, "interval", "rrc" if cfg.focus_arch.startswith("tadaconvnextv2") else "jitter"
        )

    def param_groups(self) -> list[dict]:
        """TAdaConv's optimizer groups (`tadaconv_param_group`, `tadaconv_group_mults`), in its order; empty groups
        are kept so the layout is the same for every network."""
        mults = tadaconv_group_mults(bool(self.cfg.boost_new_lr))
        params: dict[str, list] = {g: [] for g in mults}
        for name, p in self.net.named_parameters():
            if p.requires_grad:
                params[tadaconv_param_group(name)].append(p)
        return [
            {"params": params[g], "lr_mult": lr, "decay_mult": decay, "name": g}
            for g, (lr, decay) in mults.items()
        ]

    def load_pretrained(self) -> TAdaModel:
        """Loads the ImageNet initialisation: the ResNet-50 factorised into TAda2D's shapes, or the ConvNeXt-T/S/B
        ImageNet-1k weights converted to TAdaConvNeXtV2's (route functions, `b_avgpool_bn` / `norm_avgpool` and
        the head keep their initial values, as the official converters); nothing with pretrain 'none'."""
        if self.cfg.pretrain not in ("none", "", None):
            load_backbone_weights(self.net, self.cfg.focus_arch, self.cfg.focus_weights)
        return self
