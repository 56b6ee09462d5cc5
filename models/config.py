"""Model configuration: one dataclass for Uni-AdaFocus (three presets) and the plain baselines.

Presets carry the values of the original READMEs:
- 'an'  (ActivityNet, FCVID, Mini-Kinetics): MobileNetV2 glance @224 + ResNet-50 focus, T_g 16, N 48, K 16, P 128,
  FrameExit pooling classifier (17 exits).
- 'tsm' (Something-Something, Jester): MobileNetV2-TSM + ResNet-50-TSM (TSN wrappers), T_g 8, N 36, K 12, P 128.
- 'x3d' (Kinetics-400): X3D-S glance @160 + X3D-L focus, T_g 16, N 96, K 32, P 128.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

PRESETS = ("an", "tsm", "x3d")
MODELS = ("uniadafocus", "tsn", "tsm", "x3d")

# Accepted spellings of the backbone names (the original AN flag says 'mbv2', TSM's `--arch` says 'resnet50').
_ARCH_ALIASES = {
    "mbv2": "mobilenetv2",
    "mobilenet_v2": "mobilenetv2",
    "mobilenetv2": "mobilenetv2",
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "res50": "resnet50",
    "x3d_s": "x3d_s",
    "x3d_m": "x3d_m",
    "x3d_l": "x3d_l",
}

_PRESET_DEFAULTS: dict[str, dict] = {
    "an": dict(
        glance_arch="mobilenetv2",
        focus_arch="resnet50",
        num_glance_segments=16,
        num_input_focus_segments=48,
        num_focus_segments=16,
        patch_size=128,
        glance_size=None,
        dropout=0.2,
        fc_dropout=0.2,
        shift=False,
        norm_ratio=1.0,
        global_lr_ratio=0.5,
        stn_lr_ratio=0.2,
        temporal_lr_ratio=0.2,
        classifier_lr_ratio=20.0,
    ),
    "tsm": dict(
        glance_arch="mobilenetv2",
        focus_arch="resnet50",
        num_glance_segments=8,
        num_input_focus_segments=36,
        num_focus_segments=12,
        patch_size=128,
        glance_size=None,
        dropout=0.5,
        fc_dropout=0.5,
        shift=True,
        norm_ratio=0.5,
        global_lr_ratio=0.5,
        stn_lr_ratio=0.2,
        temporal_lr_ratio=0.2,
        classifier_lr_ratio=1.0,
    ),
    "x3d": dict(
        glance_arch="x3d_s",
        focus_arch="x3d_l",
        num_glance_segments=16,
        num_input_focus_segments=96,
        num_focus_segments=32,
        patch_size=128,
        glance_size=160,
        dropout=0.5,
        fc_dropout=0.5,
        shift=False,
        norm_ratio=0.5,
        global_lr_ratio=0.5,
        stn_lr_ratio=0.4,
        temporal_lr_ratio=0.4,
        classifier_lr_ratio=1.0,
    ),
}

# Datasets -> preset, used when the parsed arguments do not carry a resolved preset.
_DATASET_PRESET = {
    "actnet": "an",
    "fcvid": "an",
    "minik": "an",
    "something": "tsm",
    "somethingv2": "tsm",
    "jester": "tsm",
    "synthetic": "tsm",
    "kinetics": "x3d",
    "ucf101": "tsm",
    "hmdb51": "tsm",
}


def canonical_arch(name: str) -> str:
    """Returns the canonical backbone name for `name` ('mbv2' -> 'mobilenetv2'); raises ValueError if unknown."""
    key = name.lower()
    if key not in _ARCH_ALIASES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(set(_ARCH_ALIASES.values()))}")
    return _ARCH_ALIASES[key]


def preset_defaults(preset: str) -> dict:
    """Returns a copy of the README hyper-parameters of `preset` ('an' | 'tsm' | 'x3d') as ModelConfig fields."""
    if preset not in _PRESET_DEFAULTS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
    return dict(_PRESET_DEFAULTS[preset])


@dataclass
class ModelConfig:
    """Everything needed to build a model; stored in checkpoints so a checkpoint rebuilds its model.

    Width options (`glance_width_mult`, `glance_last_channel`, `focus_base_width`, `x3d_*`) exist for tiny
    test/demo models; the defaults are the published networks.
    """

    preset: str = "tsm"
    model: str = "uniadafocus"
    num_classes: int = 174
    glance_arch: str = "mobilenetv2"
    focus_arch: str = "resnet50"
    num_glance_segments: int = 8  # T_g
    num_input_focus_segments: int = 36  # N candidates
    num_focus_segments: int = 12  # K selected
    num_segments: int = 8  # frames of the plain baselines
    input_size: int = 224  # S: side of the frames given to the model
    patch_size: int = 128  # P
    glance_size: int | None = None  # glance resolution, resized in the model (None: input_size; X3D 160)
    glance_output_stride: int = 32  # ResNet glance only: 16 / 8 dilate the last stages (finer policy map)
    stn_hidden_dim: int = 128
    temporal_hidden_dim: int = 64
    dropout: float = 0.5
    fc_dropout: float = 0.5
    shift: bool = True
    shift_div: int = 8
    shift_place: str = "blockres"
    partial_bn: bool = False  # TSN partial BN (original default on; every README passes --npb, i.e. off)
    temperature: float = 1.0
    norm_ratio: float = 0.5
    KL_ratio: float = 0.0
    mc_samples: int = 128
    global_lr_ratio: float = 0.5
    stn_lr_ratio: float = 0.2
    temporal_lr_ratio: float = 0.2
    classifier_lr_ratio: float = 1.0
    pretrain: str = "imagenet"  # 'imagenet' (X3D: kinetics .pyth) | 'none'
    glance_weights: str | None = None  # file/URL; None -> archs' default location for the backbone
    focus_weights: str | None = None
    glance_width_mult: float = 1.0
    glance_last_channel: int | None = None
    focus_base_width: int = 64
    x3d_overrides: dict = field(default_factory=dict)  # extra kwargs for tiny X3D builds (both nets)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {PRESETS}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {MODELS}")
        self.glance_arch = canonical_arch(self.glance_arch)
        self.focus_arch = canonical_arch(self.focus_arch)
        if self.model == "uniadafocus":
            n, k = self.num_input_focus_segments, self.num_focus_segments
            if not 0 < k <= n:
                raise ValueError(f"need 0 < num_focus_segments ({k}) <= num_input_focus_segments ({n})")
            if self.preset == "an" and n % self.num_glance_segments:
                raise ValueError(
                    f"preset 'an' takes the glance frames as candidates[g::N/T_g]: N={n} must be a "
                    f"multiple of num_glance_segments={self.num_glance_segments}"
                )
            if self.patch_size > self.input_size:
                raise ValueError(f"patch_size {self.patch_size} exceeds input_size {self.input_size}")
            if self.glance_output_stride != 32 and not self.glance_arch.startswith("resnet"):
                raise ValueError(
                    f"glance_output_stride {self.glance_output_stride} needs a ResNet glance, not {self.glance_arch}"
                )
        # Temporal shift exists only in TSN-wrapped 2-D nets: the TSM preset / TSM baseline.
        if self.model == "tsm":
            self.shift = True
        elif self.model in ("tsn", "x3d") or self.preset in ("an", "x3d"):
            self.shift = False
        if self.glance_size is None:
            self.glance_size = self.input_size  # AN/TSM glance at the full frame (X3D presets 160)

    @classmethod
    def for_preset(cls, preset: str, **overrides) -> ModelConfig:
        """Returns the README configuration of `preset`, with `overrides` applied."""
        return cls(preset=preset, **{**preset_defaults(preset), **overrides})

    @classmethod
    def from_args(cls, args: argparse.Namespace, num_classes: int | None = None) -> ModelConfig:
        """Returns the config for parsed CLI arguments (original flag dest names; missing flags -> preset values).

        Preset: `args.preset`, else derived from `args.dataset`. N: `num_input_focus_segments`, else the AN
        flag `num_segments`. Focus backbone: `focus_arch`, else TSM's `--arch` when it names a known backbone.
        """
        preset = getattr(args, "preset", None) or _DATASET_PRESET.get(getattr(args, "dataset", ""), "tsm")
        values = preset_defaults(preset)
        model = getattr(args, "model", None) or "uniadafocus"
        names = {f.name for f in dataclasses.fields(cls)} - {"preset", "model", "x3d_overrides"}
        for name in names:
            value = getattr(args, name, None)
            if value is not None:
                values[name] = value
        arch = getattr(args, "arch", None)
        if getattr(args, "focus_arch", None) is None and arch and arch.lower() in _ARCH_ALIASES:
            values["focus_arch"] = arch
        if getattr(args, "num_input_focus_segments", None) is None and getattr(args, "num_segments", None):
            if preset == "an" and model == "uniadafocus":
                values["num_input_focus_segments"] = args.num_segments
        if getattr(args, "no_partialbn", None) is not None:
            values["partial_bn"] = not args.no_partialbn
        if num_classes is not None:
            values["num_classes"] = num_classes
        if values.get("num_classes") is None:
            raise ValueError(
                "ModelConfig.from_args needs num_classes (from the dataset config) or args.num_classes"
            )
        return cls(preset=preset, model=model, **values)

    def backbone_kwargs(self, arch: str, glance: bool = False) -> dict:
        """Returns the width options for building backbone `arch` (tiny test/demo models; defaults = published);
        `glance`: the glance net's build (adds a ResNet's `output_stride`)."""
        if arch == "mobilenetv2":
            return dict(width_mult=self.glance_width_mult, last_channel=self.glance_last_channel)
        if arch.startswith("resnet"):
            stride = dict(output_stride=self.glance_output_stride) if glance else {}
            return dict(base_width=self.focus_base_width, **stride)
        return dict(self.x3d_overrides)

    def to_dict(self) -> dict:
        """Returns a plain dict (JSON/pickle friendly) that `ModelConfig(**d)` rebuilds."""
        return dataclasses.asdict(self)
