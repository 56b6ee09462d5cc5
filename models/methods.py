"""The built-in registry entries: Uni-AdaFocus (presets an / tsm / x3d), the TSN / TSM / X3D baselines, AdaFocus V2
(models/v2_method.py), AdaFocus V1 (models/v1_method.py), Efficient-3DCNNs and TAdaConv (models/clip_methods.py).

Each entry names its model class, its own command-line flags and the checks of its part of the configuration.
Errors are ValueErrors naming the field (= the flag); the command line turns them into parser errors.
"""

from __future__ import annotations

import argparse

from models import presets
from models.baselines import TSNBaseline, X3DBaseline
from models.config import ModelConfig, require_positive
from models.registry import Method, register_method
from models.uni_adafocus import UniAdaFocus
from models.v1_method import METHOD as V1_METHOD
from models.v2_method import METHOD as V2_METHOD

UA_FLAGS = (
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
    "temporal_hidden_dim",
    "temperature",
    "global_lr_ratio",
    "local_lr_ratio",
    "stn_lr_ratio",
    "temporal_lr_ratio",
    "classifier_lr_ratio",
    "KL_ratio",
    "norm_ratio",
)


def _uniadafocus_arguments(g: argparse._ArgumentGroup) -> None:
    a = g.add_argument
    a("--glance_arch", type=presets.arch_type, help="glance backbone (preset: mbv2 | x3d_s)")
    a("--num_glance_segments", type=int, help="T_g glance frames (preset)")
    a("--num_input_focus_segments", type=int, help="N candidate frames (preset; AN form: --num_segments)")
    a("--num_focus_segments", type=int, help="K selected focus frames, K <= N (preset)")
    a("--patch_size", type=int, help="P focus patch side (preset)")
    a(
        "--glance_size",
        type=int,
        help="glance input side, resized in the model (default: --input_size; x3d 160)",
    )
    a(
        "--glance_output_stride",
        type=int,
        choices=(8, 16, 32),
        help="ResNet glance: output stride by dilation; a finer feature map for the policies (32)",
    )
    a("--fc_dropout", type=float, help="AN: dropout before the glance/focus fc (preset)")
    a("--hidden_dim", type=int, help="AN: accepted for the README commands, a no-op (the MLP width is 4096)")
    a("--glance_width_mult", type=float, help="MobileNetV2 glance width multiplier (1.0)")
    a("--glance_last_channel", type=int, help="MobileNetV2 glance feature channels (1280)")
    a("--glance_base_width", type=int, help="ResNet glance base width (64)")
    a("--stn_hidden_dim", type=int, help="spatial policy width (128)")
    a("--temporal_hidden_dim", type=int, help="temporal policy width (64)")
    a("--temperature", type=float, help="softmax temperature of the frame distribution (1.0)")
    a("--global_lr_ratio", type=float, help="lr_mult of the glance branch (0.5)")
    a(
        "--local_lr_ratio",
        type=float,
        help="lr_mult of the focus network (1.0, as the original; the demo keeps its pretrained focus at 0.1)",
    )
    a("--stn_lr_ratio", type=float, help="lr_mult of the spatial policy (preset)")
    a("--temporal_lr_ratio", type=float, help="lr_mult of the temporal policy (preset)")
    a("--classifier_lr_ratio", type=float, help="AN: lr_mult of the pooling classifier (20)")
    a("--KL_ratio", type=float, help="weight of KL(w || uniform) (0)")
    a("--norm_ratio", type=float, help="weight of the patch-scale norm loss (preset)")


def _uniadafocus_args(args: argparse.Namespace) -> None:
    """The AN form calls N `--num_segments`; the TSM/X3D form has no such flag; AN has no temporal shift."""
    an = presets.dataset_preset(args.dataset) == "an"
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


def _uniadafocus_finalize(cfg: ModelConfig, defaulted: set[str]) -> None:
    p = cfg.preset
    require_positive(
        cfg, ("num_glance_segments", "num_input_focus_segments", "num_focus_segments", "patch_size")
    )
    require_positive(cfg, ("glance_size", "stn_hidden_dim", "temporal_hidden_dim", "input_size"))
    clip = p == "x3d"
    for key in ("glance_arch", "focus_arch"):
        if presets.is_clip_arch(getattr(cfg, key)) != clip:
            kind = (
                "a clip backbone (X3D, Efficient-3DCNNs, TAda2D)"
                if clip
                else "a 2-D backbone (mbv2, resnet*)"
            )
            raise ValueError(f"{key} {getattr(cfg, key)}: the {p} preset needs {kind}")
    for key in ("glance_arch", "focus_arch"):
        arch = getattr(cfg, key)
        if clip and not arch.startswith("x3d") and arch not in presets.UA_CLIP_ARCHS:
            raise ValueError(
                f"{key} {arch}: besides X3D, a Uni-AdaFocus clip net is one of {', '.join(presets.UA_CLIP_ARCHS)}"
            )
    n, k, tg = cfg.num_input_focus_segments, cfg.num_focus_segments, cfg.num_glance_segments
    for key, frames in (("glance_arch", tg), ("focus_arch", k)):
        if getattr(cfg, key) in presets.TADA_ARCHS and frames < 3:
            raise ValueError(f"{key} {getattr(cfg, key)} needs >= 3 frames (its temporal pool), got {frames}")
    if k > n:
        raise ValueError(f"num_focus_segments (K={k}) must be <= num_input_focus_segments (N={n})")
    if p == "an" and n % tg:
        raise ValueError(
            f"AN preset: N={n} (--num_segments) must be divisible by num_glance_segments T_g={tg} "
            "(the glance frames are one of every N/T_g candidates)"
        )
    for key in ("patch_size", "glance_size"):
        if getattr(cfg, key) > cfg.input_size:
            raise ValueError(f"{key} {getattr(cfg, key)} exceeds input_size {cfg.input_size}")
    if cfg.glance_output_stride != 32 and not cfg.glance_arch.startswith("resnet"):
        raise ValueError(
            f"glance_output_stride {cfg.glance_output_stride}: only a ResNet glance has a dilated form, "
            f"not {cfg.glance_arch}"
        )
    # A temporal shift exists only in the TSN-wrapped 2-D nets of 'tsm' (the X3D README passes --shift too: there
    # it only names the run, as in the original).
    cfg.shift = bool(cfg.shift) and p == "tsm"
    if p == "an" and cfg.num_segments not in (None, n):
        raise ValueError(f"num_segments {cfg.num_segments} is the AN form's name of N, which is {n}")
    cfg.num_segments = n if p == "an" else None  # the AN form's name of N


def _uniadafocus_run_name(args: argparse.Namespace) -> str:
    """AN form: `UniAdaFocus_{dataset}_{glance}_segment{N}_e{epochs}`; TSM/X3D form: the TSM code's name with
    `--arch` (or the focus backbone) and T_g frames."""
    if presets.dataset_preset(args.dataset) == "an":
        glance = presets.run_name_arch(args.glance_arch)
        return f"UniAdaFocus_{args.dataset}_{glance}_segment{args.num_input_focus_segments}_e{args.epochs}"
    return presets.tsm_run_name(args, "TSM", args.arch or args.focus_arch, args.num_glance_segments)


def _baseline(name: str, clip: bool, fallback_arch: str, frames: int, description: str) -> Method:
    """A baseline on full frames: one backbone (`--arch` / `--focus_arch`), `--num_segments` frames."""

    def resolve_args(args: argparse.Namespace) -> None:
        if args.arch is not None:
            try:
                args.focus_arch = presets.canonical_arch(args.arch)
            except ValueError as exc:
                raise ValueError(f"argument --arch: {exc}") from None
        if args.shift is not None:
            raise ValueError(
                "--shift/--no_shift: choose the baseline instead (--model tsm shifts, --model tsn does not)"
            )

    def finalize(cfg: ModelConfig, defaulted: set[str]) -> None:
        if "focus_arch" in defaulted and presets.is_clip_arch(cfg.focus_arch) != clip:
            cfg.focus_arch = fallback_arch  # the preset's backbone is of the other kind
        if presets.is_clip_arch(cfg.focus_arch) != clip or (clip and not cfg.focus_arch.startswith("x3d")):
            raise ValueError(f"backbone {cfg.focus_arch} does not fit --model {name} (--arch / --focus_arch)")
        require_positive(cfg, ("num_segments", "input_size"))
        cfg.shift = name == "tsm"

    def run_name(args: argparse.Namespace) -> str:
        return presets.tsm_run_name(args, name.upper(), args.focus_arch, args.num_segments)

    model_cls = X3DBaseline if clip else TSNBaseline
    return Method(
        name,
        model_cls,
        description,
        flags=("multilabel_ce",) + (() if clip else ("consensus_first",)),
        defaults={"num_segments": frames},
        finalize=finalize,
        resolve_args=resolve_args,
        run_name=run_name,
    )


register_method(
    Method(
        "uniadafocus",
        UniAdaFocus,
        "Uni-AdaFocus: glance net, temporal + spatial policies, focus net on K patches, early exits",
        flags=UA_FLAGS,
        add_arguments=_uniadafocus_arguments,
        finalize=_uniadafocus_finalize,
        resolve_args=_uniadafocus_args,
        has_policy=True,
        run_name=_uniadafocus_run_name,
    )
)
register_method(_baseline("tsn", False, "resnet50", 8, "TSN: a 2-D backbone on T frames, logits averaged"))
register_method(
    _baseline("tsm", False, "resnet50", 8, "TSM: TSN with temporal shift (blockres, 1/8 each way)")
)
register_method(_baseline("x3d", True, "x3d_m", 16, "X3D: a 3-D network on one T-frame clip"))


register_method(V2_METHOD)
register_method(V1_METHOD)
# Clip methods on full frames (models/clip_methods.py): Efficient-3DCNNs and TAdaConv.
from models.clip_methods import E3D, TADA  # noqa: E402

register_method(E3D)
register_method(TADA)
