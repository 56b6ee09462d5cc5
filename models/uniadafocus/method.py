"""The Uni-AdaFocus registry entry (presets an / tsm / x3d): its config class (the checks of its part of the
configuration), its flags, the AN form's --num_segments and its run names. Errors are ValueErrors naming the field
(= the flag); the command line turns them into parser errors."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from archs.names import TADA_ARCHS, is_clip_arch
from models.core.cli import FOCUS_FLAGS, GLANCE_FLAGS, glance_focus_run_name
from models.core.config import ModelConfig, require_positive
from models.core.recipes import dataset_preset
from models.core.registry import Method
from models.uniadafocus.model import UniAdaFocus

# Clip networks that can serve as a Uni-AdaFocus glance or focus ('x3d' preset) besides X3D: they keep the time
# axis (Efficient-3DCNNs mobile nets built without temporal strides; TAda2D has none) and end in a Linear.
UA_CLIP_ARCHS = ("mobilenet_3d", "mobilenetv2_3d", "shufflenet_3d", "shufflenetv2_3d", "tada2d_r50")
OWN_FLAGS = ("temporal_hidden_dim", "temperature", "temporal_lr_ratio", "KL_ratio", "norm_ratio")


@dataclass
class UniAdaFocusConfig(ModelConfig):
    """ModelConfig of Uni-AdaFocus (the preset's values; no fields of its own)."""

    def finalize(self, defaulted: set[str]) -> None:
        p = self.preset
        require_positive(
            self, ("num_glance_segments", "num_input_focus_segments", "num_focus_segments", "patch_size")
        )
        require_positive(self, ("glance_size", "stn_hidden_dim", "temporal_hidden_dim", "input_size"))
        clip = p == "x3d"
        for key in ("glance_arch", "focus_arch"):
            if is_clip_arch(getattr(self, key)) != clip:
                kind = (
                    "a clip backbone (X3D, Efficient-3DCNNs, TAda2D)"
                    if clip
                    else "a 2-D backbone (mbv2, resnet*)"
                )
                raise ValueError(f"{key} {getattr(self, key)}: the {p} preset needs {kind}")
        for key in ("glance_arch", "focus_arch"):
            arch = getattr(self, key)
            if clip and not arch.startswith("x3d") and arch not in UA_CLIP_ARCHS:
                raise ValueError(
                    f"{key} {arch}: besides X3D, a Uni-AdaFocus clip net is one of {', '.join(UA_CLIP_ARCHS)}"
                )
        n, k, tg = self.num_input_focus_segments, self.num_focus_segments, self.num_glance_segments
        for key, frames in (("glance_arch", tg), ("focus_arch", k)):
            if getattr(self, key) in TADA_ARCHS and frames < 3:
                raise ValueError(
                    f"{key} {getattr(self, key)} needs >= 3 frames (its temporal pool), got {frames}"
                )
        if k > n:
            raise ValueError(f"num_focus_segments (K={k}) must be <= num_input_focus_segments (N={n})")
        if p == "an" and n % tg:
            raise ValueError(
                f"AN preset: N={n} (--num_segments) must be divisible by num_glance_segments T_g={tg} "
                "(the glance frames are one of every N/T_g candidates)"
            )
        for key in ("patch_size", "glance_size"):
            if getattr(self, key) > self.input_size:
                raise ValueError(f"{key} {getattr(self, key)} exceeds input_size {self.input_size}")
        if self.glance_output_stride != 32 and not self.glance_arch.startswith("resnet"):
            raise ValueError(
                f"glance_output_stride {self.glance_output_stride}: only a ResNet glance has a dilated form, "
                f"not {self.glance_arch}"
            )
        # A temporal shift exists only in the TSN-wrapped 2-D nets of 'tsm' (the X3D README passes --shift too:
        # there it only names the run, as in the original).
        self.shift = bool(self.shift) and p == "tsm"
        if p == "an" and self.num_segments not in (None, n):
            raise ValueError(f"num_segments {self.num_segments} is the AN form's name of N, which is {n}")
        self.num_segments = n if p == "an" else None  # the AN form's name of N


def _arguments(g: argparse._ArgumentGroup) -> None:
    a = g.add_argument
    a("--temporal_hidden_dim", type=int, help="temporal policy width (64)")
    a("--temperature", type=float, help="softmax temperature of the frame distribution (1.0)")
    a("--temporal_lr_ratio", type=float, help="lr_mult of the temporal policy (preset)")
    a("--KL_ratio", type=float, help="weight of KL(w || uniform) (0)")
    a("--norm_ratio", type=float, help="weight of the patch-scale norm loss (preset)")


def _resolve_args(args: argparse.Namespace) -> None:
    """The AN form calls N `--num_segments`; the TSM/X3D form has no such flag; AN has no temporal shift."""
    an = dataset_preset(args.dataset) == "an"
    if an:
        alias, n = args.num_segments, args.num_input_focus_segments
        if alias is not None and n is not None and alias != n:
            raise ValueError(
                f"--num_segments {alias} and --num_input_focus_segments {n} disagree (both are N)"
            )
        args.num_input_focus_segments = n if n is not None else alias
        if args.shift:
            raise ValueError("--shift: the AN preset has no temporal shift (TSM preset only)")
    elif args.num_segments is not None:
        raise ValueError(
            "--num_segments is not used by Uni-AdaFocus in the TSM/X3D form: use --num_glance_segments, "
            "--num_input_focus_segments and --num_focus_segments"
        )


def _run_name(args: argparse.Namespace) -> str:
    """AN form: `UniAdaFocus_{dataset}_{glance}_segment{N}_e{epochs}`; TSM/X3D form: the TSM code's name with
    `--arch` (or the focus backbone) and T_g frames."""
    return glance_focus_run_name(args, "UniAdaFocus", args.num_input_focus_segments)


METHOD = Method(
    "uniadafocus",
    UniAdaFocus,
    "Uni-AdaFocus: glance net, temporal + spatial policies, focus net on K patches, early exits",
    config_cls=UniAdaFocusConfig,
    flags=GLANCE_FLAGS + FOCUS_FLAGS + OWN_FLAGS,
    add_arguments=_arguments,
    resolve_args=_resolve_args,
    has_policy=True,
    run_name=_run_name,
)
