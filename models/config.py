"""ModelConfig: everything needed to build a model; stored in checkpoints so a checkpoint rebuilds its model.

Fields left at None take the preset's value from models.presets (`ModelConfig(preset='an', num_classes=200)` is
the published ActivityNet model). `__post_init__` is the one validation step of a model's configuration: the
command line turns its errors into parser errors, so they name fields as flags.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from models import presets


@dataclass
class ModelConfig:
    """Configuration of any method of the registry (`model` names it); the width options (`*_width_mult`,
    `*_base_width`, `glance_last_channel`, `x3d_overrides`) exist for tiny test/demo models."""

    preset: str
    model: str = "uniadafocus"
    dataset: str | None = None  # its recipe (models.presets.DATASET_RECIPES) refines the preset's defaults
    num_classes: int | None = None  # None until the dataset is known (validation of the other fields only)
    glance_arch: str | None = None
    focus_arch: str | None = None  # the baselines' single backbone
    num_glance_segments: int | None = None  # T_g
    num_input_focus_segments: int | None = None  # N candidates
    num_focus_segments: int | None = None  # K selected
    num_segments: int | None = None  # frames of the plain baselines (None: the method's default)
    input_size: int | None = None  # S: side of the frames given to the model
    patch_size: int | None = None  # P
    glance_size: int | None = None  # glance resolution, resized in the model (None: input_size)
    glance_output_stride: int | None = None  # ResNet glance only: 16 / 8 dilate the last stages
    stn_hidden_dim: int | None = None
    temporal_hidden_dim: int | None = None
    dropout: float | None = None
    fc_dropout: float | None = None
    shift: bool | None = None
    shift_div: int | None = None
    shift_place: str | None = None
    partial_bn: bool | None = None
    temperature: float | None = None
    norm_ratio: float | None = None
    KL_ratio: float | None = None
    mc_samples: int | None = None
    global_lr_ratio: float | None = None
    local_lr_ratio: float | None = None
    stn_lr_ratio: float | None = None
    temporal_lr_ratio: float | None = None
    classifier_lr_ratio: float | None = None
    pretrain: str | None = None  # 'imagenet' (X3D: Kinetics .pyth) | 'none'
    glance_weights: str | None = None  # file/URL; None -> archs' default location for the backbone
    focus_weights: str | None = None
    glance_width_mult: float | None = None  # MobileNetV2 glance
    glance_last_channel: int | None = None  # MobileNetV2 glance (None: 1280)
    glance_base_width: int | None = None  # ResNet glance
    focus_width_mult: float | None = None  # MobileNetV2 focus / baseline
    focus_base_width: int | None = None  # ResNet focus / baseline
    x3d_overrides: dict = field(default_factory=dict)  # extra kwargs for tiny X3D builds (both nets)
    # In-model resize (ResKD student): every frame is resized to student_size (bilinear) inside the model, which
    # is built for frames of that side; None: the frames as delivered (input_size). See models/distill.py.
    student_size: int | None = None
    # multi-label targets: CE of the 'first' label (default) or the 'sum' of the labels' CEs
    multilabel_ce: str | None = None
    consensus_first: bool | None = None  # TSN/TSM head: average the pooled features, then the classifier

    def __post_init__(self) -> None:
        from models.registry import get_method

        method = get_method(self.model)
        defaults = {**presets.recipe(self.preset, self.dataset, self.model), **method.defaults}
        defaulted = set()
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is None and f.name in defaults:
                setattr(self, f.name, defaults[f.name])
                defaulted.add(f.name)
        self.glance_arch = presets.canonical_arch(self.glance_arch)
        self.focus_arch = presets.canonical_arch(self.focus_arch)
        if self.glance_size is None:
            self.glance_size = self.student_size or self.input_size
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        for key in ("dropout", "fc_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {getattr(self, key)}")
        if self.shift_div < 1:
            raise ValueError(f"shift_div must be >= 1, got {self.shift_div}")
        if method.finalize is not None:
            method.finalize(self, defaulted)
        if self.multilabel_ce not in ("first", "sum"):
            raise ValueError(f"multilabel_ce must be 'first' or 'sum', got {self.multilabel_ce!r}")
        if self.student_size is not None:
            if self.student_size < 1:
                raise ValueError(f"student_size must be >= 1, got {self.student_size}")
            try:
                self.student_config()
            except ValueError as exc:
                raise ValueError(
                    f"student_size {self.student_size} (the network's frame side): {exc}"
                ) from None

    def student_config(self) -> ModelConfig:
        """Returns the config of the network inside the in-model resize: this one with input_size =
        student_size (patch and glance sizes are sides in those frames) and no resize of its own."""
        return dataclasses.replace(self, input_size=self.student_size, student_size=None)

    def backbone_kwargs(self, role: str) -> dict:
        """Returns the width options of the `role` ('glance' | 'focus') network (tiny test/demo models; the
        defaults build the published networks): MobileNetV2 (2-D and the Efficient-3DCNNs mobile nets) width
        multipliers, ResNet / TAda2D base widths; a ResNet glance also gets its `output_stride`."""
        arch = self.glance_arch if role == "glance" else self.focus_arch
        if arch in presets.E3D_ARCHS:  # Efficient-3DCNNs mobile nets: their width multiplier
            width = self.glance_width_mult if role == "glance" else self.focus_width_mult
            return dict(width_mult=width) if arch in presets.E3D_WIDTH_ARCHS else {}
        if arch == "tada2d_r50":
            return dict(base_width=self.glance_base_width if role == "glance" else self.focus_base_width)
        if arch in presets.TADA_ARCHS:
            return {}
        if arch == "mobilenetv2":
            if role == "glance":
                return dict(width_mult=self.glance_width_mult, last_channel=self.glance_last_channel)
            return dict(width_mult=self.focus_width_mult)
        if arch.startswith("resnet"):
            if role == "glance":
                return dict(base_width=self.glance_base_width, output_stride=self.glance_output_stride)
            return dict(base_width=self.focus_base_width)
        return dict(self.x3d_overrides)

    @classmethod
    def from_args(cls, args: argparse.Namespace, num_classes: int | None = None) -> ModelConfig:
        """Returns the config for parsed CLI arguments: the preset and recipe of `args.dataset`, each field from
        the argument of the same name when it is set, `num_classes` from the dataset."""
        names = {f.name for f in dataclasses.fields(cls)} - {"preset", "model", "dataset", "num_classes"}
        values = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
        preset = presets.dataset_preset(args.dataset)
        model = getattr(args, "model", None) or cls.model
        return cls(preset=preset, model=model, dataset=args.dataset, num_classes=num_classes, **values)

    def to_dict(self) -> dict:
        """Returns a plain dict (JSON/pickle friendly) that `config_from_dict` rebuilds."""
        return dataclasses.asdict(self)


def require_positive(cfg: ModelConfig, names: tuple[str, ...]) -> None:
    """Raises ValueError naming the first of the fields `names` of cfg that is below 1."""
    for name in names:
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
