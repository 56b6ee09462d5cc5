"""ModelConfig: everything needed to build a model; stored in checkpoints so a checkpoint rebuilds its model.

Each method has its config class (a subclass: its own fields, its recipe `RECIPE`, the values it sets over the
preset's `DEFAULTS`, and its part of the validation, `finalize`), registered under the method's name when the
method registers (models/core/registry.py). `ModelConfig(model=NAME, ...)` builds that class, so
`ModelConfig(preset='an', num_classes=200)` is the published ActivityNet Uni-AdaFocus model. Fields left at None
take the preset's value (models/core/recipes.py). `__post_init__` is the one validation step of a model's
configuration: the command line turns its errors into parser errors, so they name fields as flags.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from archs.names import E3D_ARCHS, E3D_WIDTH_ARCHS, TADA_ARCHS, canonical_arch
from models.core import recipes

DEFAULT_METHOD = "uniadafocus"
# method name -> its config class (filled by models.core.registry.register_method)
_CONFIG_CLASSES: dict[str, type[ModelConfig]] = {}


def register_config(name: str, config_cls: type[ModelConfig]) -> None:
    """Makes `ModelConfig(model=name, ...)` build `config_cls` (None removes the entry)."""
    if config_cls is None:
        _CONFIG_CLASSES.pop(name, None)
    else:
        _CONFIG_CLASSES[name] = config_cls


@dataclass
class ModelConfig:
    """Configuration of any method of the registry (`model` names it); the width options (`*_width_mult`,
    `*_base_width`, `glance_last_channel`, `x3d_overrides`) exist for tiny test/demo models."""

    preset: str
    model: str = DEFAULT_METHOD
    dataset: str | None = (
        None  # its recipe (models.core.recipes.DATASET_RECIPES) refines the preset's defaults
    )
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
    # is built for frames of that side; None: the frames as delivered (input_size). See models/reskd/.
    student_size: int | None = None
    # multi-label targets: CE of the 'first' label (default) or the 'sum' of the labels' CEs
    multilabel_ce: str | None = None
    consensus_first: bool | None = None  # TSN/TSM head: average the pooled features, then the classifier

    # The method's own recipe, layered over the preset's (models.core.recipes.recipe), and the values it sets
    # over both (e.g. a baseline's frame count).
    RECIPE: ClassVar[Mapping] = {}
    DEFAULTS: ClassVar[Mapping] = {}

    def __new__(cls, *args, **kwargs):
        """`ModelConfig(model=NAME, ...)` builds the config class registered for the method NAME."""
        if cls is ModelConfig:
            name = kwargs.get("model", DEFAULT_METHOD)
            if name not in _CONFIG_CLASSES:
                known = ", ".join(sorted(_CONFIG_CLASSES))
                raise ValueError(f"unknown method {name!r} (choose from {known})")
            cls = _CONFIG_CLASSES[name]
        return super().__new__(cls)

    @classmethod
    def recipe(cls, preset: str, dataset: str | None = None) -> dict:
        """Returns every preset-dependent value of the method (model fields and training recipe) for `preset`
        and `dataset`: the shared recipe, the method's own on top, then its DEFAULTS."""
        return {**recipes.recipe(preset, dataset, cls.RECIPE), **cls.DEFAULTS}

    def run_recipe(self) -> dict:
        """Returns every recipe value of this configuration's run (what the command line leaves unset takes it):
        `recipe(preset, dataset)`, or more where a method's recipe depends on its resolved fields (e.g. TAdaConv's
        per network)."""
        return self.recipe(self.preset, self.dataset)

    def finalize(self, defaulted: set[str]) -> None:
        """The method's part of the validation step: derive and check fields (raise ValueError naming the flag);
        `defaulted` = the fields that took a default. Nothing by default."""

    def __post_init__(self) -> None:
        defaults = self.recipe(self.preset, self.dataset)
        defaulted = set()
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is None and f.name in defaults:
                setattr(self, f.name, defaults[f.name])
                defaulted.add(f.name)
        self.glance_arch = canonical_arch(self.glance_arch)
        self.focus_arch = canonical_arch(self.focus_arch)
        if self.glance_size is None:
            self.glance_size = self.student_size or self.input_size
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        for key in ("dropout", "fc_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {getattr(self, key)}")
        if self.shift_div < 1:
            raise ValueError(f"shift_div must be >= 1, got {self.shift_div}")
        self.finalize(defaulted)
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
        if arch in E3D_ARCHS:  # Efficient-3DCNNs mobile nets: their width multiplier
            width = self.glance_width_mult if role == "glance" else self.focus_width_mult
            return dict(width_mult=width) if arch in E3D_WIDTH_ARCHS else {}
        if arch == "tada2d_r50":
            return dict(base_width=self.glance_base_width if role == "glance" else self.focus_base_width)
        if arch in TADA_ARCHS:
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
        preset = recipes.dataset_preset(args.dataset)
        model = getattr(args, "model", None) or DEFAULT_METHOD
        return cls(preset=preset, model=model, dataset=args.dataset, num_classes=num_classes, **values)

    def to_dict(self) -> dict:
        """Returns a plain dict (JSON/pickle friendly) that `config_from_dict` rebuilds."""
        return dataclasses.asdict(self)


def require_positive(cfg: ModelConfig, names: tuple[str, ...]) -> None:
    """Raises ValueError naming the first of the fields `names` of cfg that is below 1."""
    for name in names:
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
