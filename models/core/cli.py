"""Command-line pieces shared by the methods: the flags of the glance + focus methods (Uni-AdaFocus, AdaFocus V1
and V2 read them; each method lists the ones it reads), the scope rules of preset-only and width flags, the
backbone-name argument type and the TSM code's run name."""

from __future__ import annotations

import argparse

from archs.names import canonical_arch, is_clip_arch, run_name_arch
from models.core.recipes import dataset_preset, preset_datasets

# The glance network and the patch, read by every glance + focus method.
GLANCE_FLAGS = (
    "glance_arch",
    "glance_size",
    "glance_output_stride",
    "glance_width_mult",
    "glance_last_channel",
    "glance_base_width",
    "patch_size",
)
# Frame counts, the patch policy's width, the AN classifier and the learning-rate ratios of the branches, read by
# Uni-AdaFocus and AdaFocus V2.
FOCUS_FLAGS = (
    "num_glance_segments",
    "num_input_focus_segments",
    "num_focus_segments",
    "fc_dropout",
    "hidden_dim",
    "stn_hidden_dim",
    "global_lr_ratio",
    "local_lr_ratio",
    "stn_lr_ratio",
    "classifier_lr_ratio",
)
# Flags that only one preset reads (anywhere else they would be silently ignored, so they are refused).
PRESET_ONLY = {"fc_dropout": "an", "classifier_lr_ratio": "an", "hidden_dim": "an"}
# Width options and the kind of network each applies to: (the field naming that network, its name prefix(es)).
WIDTH_FLAGS = {
    "glance_width_mult": ("glance_arch", "mobilenetv2"),
    "glance_last_channel": ("glance_arch", "mobilenetv2"),
    "glance_base_width": ("glance_arch", ("resnet", "tada2d")),
    "focus_width_mult": ("focus_arch", "mobilenetv2"),
    "focus_base_width": ("focus_arch", ("resnet", "tada2d")),
}
# Compatibility flags of the original command lines that change nothing here (a warning says so).
NO_OPS = {
    "hidden_dim": "the AN classifier's MLP width is 4096 in the original code whatever --hidden_dim says"
}


def arch_type(name: str) -> str:
    """argparse `type=` for backbone flags: archs' canonical_arch with argparse's error type."""
    try:
        return canonical_arch(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_glance_focus_arguments(g: argparse._ArgumentGroup) -> None:
    """Adds the flags of GLANCE_FLAGS and FOCUS_FLAGS (defaults None: the preset's or the method's)."""
    a = g.add_argument
    a("--glance_arch", type=arch_type, help="glance backbone (preset: mbv2 | x3d_s)")
    a("--num_glance_segments", type=int, help="T_g glance frames (preset)")
    a("--num_input_focus_segments", type=int, help="N candidate frames (preset; AN form: --num_segments)")
    a("--num_focus_segments", type=int, help="K selected focus frames, K <= N (preset)")
    a("--patch_size", type=int, help="P focus patch side (preset)")
    a(
        "--glance_size",
        type=int,
        help="glance input side, resized in the model (none: the frame side, --input_size)",
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
    a(
        "--glance_last_channel",
        type=int,
        help="MobileNetV2 glance feature channels (none: the network's, 1280)",
    )
    a("--glance_base_width", type=int, help="ResNet glance base width (64)")
    a("--stn_hidden_dim", type=int, help="spatial policy width (128)")
    a("--global_lr_ratio", type=float, help="lr_mult of the glance branch (0.5)")
    a(
        "--local_lr_ratio",
        type=float,
        help="lr_mult of the focus network (1.0, as the original; the demo keeps its pretrained focus at 0.1)",
    )
    a("--stn_lr_ratio", type=float, help="lr_mult of the spatial policy (preset)")
    a("--classifier_lr_ratio", type=float, help="AN: lr_mult of the pooling classifier (20)")


def check_preset_flags(dataset: str, explicit: set[str]) -> None:
    """Raises ValueError for a flag of `explicit` that the dataset's preset does not read (PRESET_ONLY)."""
    preset = dataset_preset(dataset)
    for key in sorted(explicit):
        owner = PRESET_ONLY.get(key, preset)
        if owner != preset:
            users = ", ".join(preset_datasets(owner))
            raise ValueError(
                f"--{key} is only used by the {owner.upper()} preset ({users}), not by {dataset}"
            )


def glance_focus_run_name(args: argparse.Namespace, prefix: str, an_frames: int) -> str:
    """Returns the run name of a glance + focus method: AN form `{prefix}_{dataset}_{glance}_segment{an_frames}
    _e{epochs}` (the AN codes' name); with 2-D backbones in the TSM form the TSM code's name with `--arch` (or the
    focus backbone) and T_g frames (the Uni-AdaFocus-TSM code's); with clip backbones (X3D, Efficient-3DCNNs,
    TAda2D), where that name would show `--arch` and a shift that do not run, `{prefix}_{dataset}_{modality}
    _{glance}_{focus}_segment{T_g}_p{patch}_e{epochs}` (then `_{pretrain}` unless imagenet, `_{lr_type}` unless
    step)."""
    if dataset_preset(args.dataset) == "an":
        glance = run_name_arch(args.glance_arch)
        return f"{prefix}_{args.dataset}_{glance}_segment{an_frames}_e{args.epochs}"
    if is_clip_arch(args.glance_arch) or is_clip_arch(args.focus_arch):
        nets = f"{run_name_arch(args.glance_arch)}_{run_name_arch(args.focus_arch)}"
        name = f"{prefix}_{args.dataset}_{args.modality}_{nets}_segment{args.num_glance_segments}"
        name += f"_p{args.patch_size}_e{args.epochs}"
        name += "" if args.pretrain == "imagenet" else f"_{args.pretrain}"
        return name + ("" if args.lr_type == "step" else f"_{args.lr_type}")
    return tsm_run_name(args, "TSM", args.arch or args.focus_arch, args.num_glance_segments)


def tsm_run_name(args: argparse.Namespace, prefix: str, arch: str, frames: int) -> str:
    """Returns the run name in the form of the TSM code (also used by the Uni-AdaFocus TSM/X3D code):
    `{prefix}_{dataset}_{modality}_{arch}[_shift{div}_{place}]_{consensus}_segment{frames}_e{epochs}`, then
    `_{pretrain}` unless imagenet and `_{lr_type}` unless step."""
    arch = run_name_arch(arch)
    if args.shift:
        arch += f"_shift{args.shift_div}_{args.shift_place}"
    parts = [
        prefix,
        args.dataset,
        args.modality,
        arch,
        args.consensus_type,
        f"segment{frames}",
        f"e{args.epochs}",
    ]
    name = "_".join(parts)
    if args.pretrain != "imagenet":
        name += f"_{args.pretrain}"
    if args.lr_type != "step":
        name += f"_{args.lr_type}"
    return name
