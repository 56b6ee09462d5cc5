"""The configurations of the clip methods `e3d` (Efficient-3DCNNs) and `tada` (TAdaConv): ModelConfig + their
options (`focus_arch` names the network, `num_segments` the clip length), recipes and checks (errors name the
flag)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from archs.e3d_shufflenet import SHUFFLENET_WIDTHS, SHUFFLENETV2_WIDTHS
from archs.names import E3D_ARCHS, TADA_ARCHS
from models.clipnets.recipe import E3D_RECIPE, TADA_RECIPE, arch_recipe
from models.core.config import ModelConfig, require_positive


@dataclass
class E3DConfig(ModelConfig):
    """ModelConfig of `--model e3d` (the Efficient-3DCNNs options; `focus_arch` names the network, `num_segments`
    the clip length `--sample_duration`)."""

    RECIPE: ClassVar[dict] = E3D_RECIPE
    DEFAULTS: ClassVar[dict] = dict(
        focus_arch="mobilenetv2_3d",
        num_segments=16,
        width_mult=1.0,
        groups=3,
        cardinality=32,
        version=1.1,
        ft_portion="complete",
    )

    width_mult: float | None = None
    groups: int | None = None
    shortcut_type: str | None = None
    cardinality: int | None = None
    version: float | None = None
    downsample: int | None = None
    pretrain_path: str | None = None
    ft_portion: str | None = None
    n_finetune_classes: int | None = None

    def finalize(self, defaulted: set[str]) -> None:
        arch = self.focus_arch
        if arch not in E3D_ARCHS:
            raise ValueError(f"focus_arch {arch} is not an Efficient-3DCNNs network (--arch)")
        if self.shortcut_type is None:
            self.shortcut_type = "A" if arch == "resnet18_3d" else "B"  # the README's choices
        if self.shortcut_type not in ("A", "B"):
            raise ValueError(f"shortcut_type must be A or B, got {self.shortcut_type!r}")
        if arch == "shufflenetv2_3d" and self.width_mult not in SHUFFLENETV2_WIDTHS:
            raise ValueError(
                f"width_mult {self.width_mult}: ShuffleNetV2 has widths {sorted(SHUFFLENETV2_WIDTHS)}"
            )
        if arch == "shufflenet_3d" and self.groups not in SHUFFLENET_WIDTHS:
            raise ValueError(f"groups {self.groups}: ShuffleNet has {sorted(SHUFFLENET_WIDTHS)}")
        if self.width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {self.width_mult}")
        require_positive(self, ("num_segments", "downsample", "input_size", "cardinality"))
        if self.ft_portion not in ("complete", "last_layer"):
            raise ValueError(f"ft_portion must be complete or last_layer, got {self.ft_portion!r}")
        n, c = self.n_finetune_classes, self.num_classes
        if n is not None and c is not None and n != c:
            raise ValueError(f"n_finetune_classes {n} differs from the dataset's {c} classes")
        self.shift = False


@dataclass
class TAdaConfig(ModelConfig):
    """ModelConfig of `--model tada` (`focus_arch` names the network, `num_segments` the frames, `downsample` the
    sampling rate, `drop_path` the ConvNeXts' stochastic depth, `boost_new_lr` TAdaConv's LR_REDUCE: route
    functions and head at 5x the lr, their biases 10x); each network takes its own recipe (models/clipnets/recipe.py:
    TAda2D's, or the ConvNeXt size's over it)."""

    RECIPE: ClassVar[dict] = TADA_RECIPE
    DEFAULTS: ClassVar[dict] = dict(focus_arch="tada2d_r50", num_segments=8)

    downsample: int | None = None
    drop_path: float | None = None
    boost_new_lr: bool | None = None

    def run_recipe(self) -> dict:
        """TAda2D's recipe with the network's own values on top (ARCH_RECIPES)."""
        return {**super().run_recipe(), **arch_recipe(self.focus_arch, self.dataset)}

    def finalize(self, defaulted: set[str]) -> None:
        arch = self.focus_arch
        if arch not in TADA_ARCHS:
            raise ValueError(f"focus_arch {arch} is not a TAdaConv network (--arch)")
        convnext = arch.startswith("tadaconvnextv2")
        for key, value in arch_recipe(
            arch, self.dataset
        ).items():  # the network's recipe (16 x 5 frames, ...)
            if hasattr(self, key) and (key in defaulted or getattr(self, key) is None):
                setattr(self, key, value)
        if not convnext and self.drop_path is not None:
            raise ValueError(f"drop_path applies to the TAdaConvNeXtV2 networks, not to {arch}")
        if self.drop_path is not None and not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {self.drop_path}")
        require_positive(self, ("downsample", "input_size"))
        least = 5 if convnext else 3  # the temporal average pool needs 3 frames (ConvNeXt's stem halves T)
        if self.num_segments < least:
            raise ValueError(f"num_segments {self.num_segments}: {arch} needs clips of >= {least} frames")
        self.shift = False
