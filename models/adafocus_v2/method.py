"""The AdaFocus V2 registry entry: its config class (fields, recipe, checks), flags (the glance + focus flags it
shares with Uni-AdaFocus, --sample / --no_sample), the --num_segments rule of V2's command lines and run name."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

from archs.names import is_clip_arch
from models.adafocus_v2.model import AdaFocusV2
from models.adafocus_v2.recipe import RECIPE
from models.core.cli import FOCUS_FLAGS, GLANCE_FLAGS, glance_focus_run_name
from models.core.config import ModelConfig, require_positive
from models.core.recipes import dataset_preset
from models.core.registry import Method


@dataclass
class V2Config(ModelConfig):
    """ModelConfig + AdaFocus V2's coarse-to-fine order; its recipe; the checks of its part of the configuration."""

    RECIPE: ClassVar[dict] = RECIPE
    coarse_to_fine: bool | None = None  # V2's --sample: process the frames coarse-to-fine ('an')
    # training: the policy and random-patch branches through the focus network in one stacked forward (faster;
    # BatchNorm sees both) instead of one forward each (the original)
    concat_branches: bool | None = None

    def finalize(self, defaulted: set[str]) -> None:
        if self.preset == "x3d":
            raise ValueError(
                "AdaFocus V2 has an AN and a Something-Something variant (datasets of the an / tsm presets)"
            )
        require_positive(
            self,
            (
                "num_glance_segments",
                "num_input_focus_segments",
                "patch_size",
                "glance_size",
                "stn_hidden_dim",
            ),
        )
        for key in ("glance_arch", "focus_arch"):
            if is_clip_arch(getattr(self, key)):
                raise ValueError(
                    f"{key} {getattr(self, key)}: AdaFocus V2 needs a 2-D backbone (mbv2, resnet*)"
                )
        n, k, t = self.num_input_focus_segments, self.num_focus_segments, self.num_glance_segments
        if n != k or (self.preset == "an" and n != t):
            raise ValueError(
                "AdaFocus V2 selects no frames: num_focus_segments must equal num_input_focus_segments"
                + (
                    " and num_glance_segments (the AN variant reads the same frames)"
                    if self.preset == "an"
                    else ""
                )
                + f", got T_g={t}, N={n}, K={k}"
            )
        for key in ("patch_size", "glance_size"):
            if getattr(self, key) > self.input_size:
                raise ValueError(f"{key} {getattr(self, key)} exceeds input_size {self.input_size}")
        if self.glance_output_stride != 32 and not self.glance_arch.startswith("resnet"):
            raise ValueError(
                f"glance_output_stride {self.glance_output_stride}: only a ResNet glance has a dilated form"
            )
        self.shift = bool(self.shift) and self.preset == "tsm"
        self.num_segments = t


V2_FLAGS = GLANCE_FLAGS + FOCUS_FLAGS + ("coarse_to_fine", "concat_branches")


def _v2_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--sample",
        dest="coarse_to_fine",
        action="store_const",
        const=True,
        help="process the frames coarse-to-fine (middle, ends, midpoints; V2's --sample; an preset: on)",
    )
    g.add_argument(
        "--no_sample", dest="coarse_to_fine", action="store_const", const=False, help="temporal order"
    )
    g.add_argument(
        "--concat_branches",
        action="store_const",
        const=True,
        help="training: the policy and random-patch branches through the focus network as one stacked batch "
        "(faster; its BatchNorm statistics mix the branches) instead of two forwards, as the original",
    )


def _v2_args(args: argparse.Namespace) -> None:
    """V2's --num_segments: the 16 frames of glance and focus ('an'); the glance frames ('tsm', focus 1.5x)."""
    t = args.num_segments
    if t is None:
        return
    an = dataset_preset(args.dataset) == "an"
    implied = {"num_glance_segments": t}
    implied["num_input_focus_segments"] = implied["num_focus_segments"] = t if an else int(1.5 * t)
    for key, value in implied.items():
        if getattr(args, key) not in (None, value):
            raise ValueError(f"--num_segments {t} implies --{key} {value}, not {getattr(args, key)}")
        setattr(args, key, value)


def _v2_run_name(args: argparse.Namespace) -> str:
    """AN: `AdaFocusV2_{dataset}_{glance}_segment{T}_e{epochs}` (V2's main_v2.py); SS: the TSM code's name."""
    return glance_focus_run_name(args, "AdaFocusV2", args.num_glance_segments)


METHOD = Method(
    "adafocus_v2",
    AdaFocusV2,
    "AdaFocus V2: one differentiable patch per frame (an) or per video (tsm), trained end to end",
    config_cls=V2Config,
    flags=V2_FLAGS,
    add_arguments=_v2_arguments,
    resolve_args=_v2_args,
    has_policy=True,
    run_name=_v2_run_name,
)
