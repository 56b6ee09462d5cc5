"""The AdaFocus V2 registry entry (models/adafocus_v2.py): its config fields, flags (--sample / --no_sample), the
--num_segments rule of V2's command lines, checks and run name."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from models import presets
from models.adafocus_v2 import AdaFocusV2
from models.config import ModelConfig, require_positive
from models.registry import Method


@dataclass
class V2Config(ModelConfig):
    coarse_to_fine: bool | None = None  # V2's --sample: process the frames coarse-to-fine ('an')


V2_FLAGS = (
    "glance_arch",
    "num_glance_segments",
    "num_input_focus_segments",
    "num_focus_segments",
    "patch_size",
    "glance_size",
    "glance_output_stride",
    "fc_dropout",
    "hidden_dim",
    "glance_width_mult",
    "glance_last_channel",
    "glance_base_width",
    "stn_hidden_dim",
    "global_lr_ratio",
    "local_lr_ratio",
    "stn_lr_ratio",
    "classifier_lr_ratio",
    "coarse_to_fine",
)


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


def _v2_args(args: argparse.Namespace) -> None:
    """V2's --num_segments: the 16 frames of glance and focus ('an'); the glance frames ('tsm', focus 1.5x)."""
    t = args.num_segments
    if t is None:
        return
    an = presets.dataset_preset(args.dataset) == "an"
    implied = {"num_glance_segments": t}
    implied["num_input_focus_segments"] = implied["num_focus_segments"] = t if an else int(1.5 * t)
    for key, value in implied.items():
        if getattr(args, key) not in (None, value):
            raise ValueError(f"--num_segments {t} implies --{key} {value}, not {getattr(args, key)}")
        setattr(args, key, value)


def _v2_finalize(cfg: ModelConfig, defaulted: set[str]) -> None:
    if cfg.preset == "x3d":
        raise ValueError(
            "AdaFocus V2 has an AN and a Something-Something variant (datasets of the an / tsm presets)"
        )
    require_positive(
        cfg,
        ("num_glance_segments", "num_input_focus_segments", "patch_size", "glance_size", "stn_hidden_dim"),
    )
    for key in ("glance_arch", "focus_arch"):
        if presets.is_clip_arch(getattr(cfg, key)):
            raise ValueError(f"{key} {getattr(cfg, key)}: AdaFocus V2 needs a 2-D backbone (mbv2, resnet*)")
    n, k, t = cfg.num_input_focus_segments, cfg.num_focus_segments, cfg.num_glance_segments
    if n != k or (cfg.preset == "an" and n != t):
        raise ValueError(
            "AdaFocus V2 selects no frames: num_focus_segments must equal num_input_focus_segments"
            + (
                " and num_glance_segments (the AN variant reads the same frames)"
                if cfg.preset == "an"
                else ""
            )
            + f", got T_g={t}, N={n}, K={k}"
        )
    for key in ("patch_size", "glance_size"):
        if getattr(cfg, key) > cfg.input_size:
            raise ValueError(f"{key} {getattr(cfg, key)} exceeds input_size {cfg.input_size}")
    if cfg.glance_output_stride != 32 and not cfg.glance_arch.startswith("resnet"):
        raise ValueError(
            f"glance_output_stride {cfg.glance_output_stride}: only a ResNet glance has a dilated form"
        )
    cfg.shift = bool(cfg.shift) and cfg.preset == "tsm"
    cfg.num_segments = t


def _v2_run_name(args: argparse.Namespace) -> str:
    """AN: `AdaFocusV2_{dataset}_{glance}_segment{T}_e{epochs}` (V2's main_v2.py); SS: the TSM code's name."""
    if presets.dataset_preset(args.dataset) == "an":
        glance = presets.run_name_arch(args.glance_arch)
        return f"AdaFocusV2_{args.dataset}_{glance}_segment{args.num_glance_segments}_e{args.epochs}"
    return presets.tsm_run_name(args, "TSM", args.arch or args.focus_arch, args.num_glance_segments)


METHOD = Method(
    "adafocus_v2",
    AdaFocusV2,
    "AdaFocus V2: one differentiable patch per frame (an) or per video (tsm), trained end to end",
    config_cls=V2Config,
    flags=V2_FLAGS,
    add_arguments=_v2_arguments,
    finalize=_v2_finalize,
    resolve_args=_v2_args,
    has_policy=True,
    run_name=_v2_run_name,
)
