"""Registry entries of the clip methods `e3d` (Efficient-3DCNNs) and `tada` (TAdaConv): their flags, the
resolution of the originals' spellings and the checks of their configuration (ValueErrors naming the flag).

The Efficient-3DCNNs README commands translate as: `--model mobilenetv2 --width_mult 1.0` -> `--model e3d --arch
mobilenetv2_3d --width_mult 1.0`; `--resnet_shortcut`, `--resnext_cardinality`, `--groups`, `--version`,
`--sample_duration`, `--downsample`, `--train_crop`, `--n_val_samples`, `--pretrain_path`, `--ft_portion`,
`--n_finetune_classes` keep their names (see README, "Efficient-3DCNNs and TAdaConv").
"""

from __future__ import annotations

import argparse

from archs.names import E3D_ARCHS, E3D_ORIGINAL_NAMES, TADA_ARCHS, canonical_arch
from models.clipnets.config import E3DConfig, TAdaConfig
from models.clipnets.model import E3DModel, TAdaModel
from models.core.registry import Method

E3D_FLAGS = (
    "width_mult",
    "groups",
    "shortcut_type",
    "cardinality",
    "version",
    "pretrain_path",
    "ft_portion",
    "n_finetune_classes",
    "n_val_samples",
)
SHARED_FLAGS = ("sample_duration", "downsample")  # read by e3d and tada
# Which networks read which option (anything else would ignore it, so it is refused).
_OPTION_ARCHS = {
    "width_mult": ("mobilenet_3d", "mobilenetv2_3d", "shufflenet_3d", "shufflenetv2_3d"),
    "groups": ("shufflenet_3d",),
    "shortcut_type": ("resnet18_3d", "resnet50_3d", "resnet101_3d", "resnext101_3d"),
    "cardinality": ("resnext101_3d",),
    "version": ("squeezenet_3d",),
}


def _clip_arguments(g: argparse._ArgumentGroup) -> None:
    a = g.add_argument
    a("--width_mult", type=float, help="e3d: width multiplier of the mobile nets (1.0)")
    a("--groups", type=int, help="e3d: ShuffleNet groups (3)")
    a("--shortcut_type", "--resnet_shortcut", choices=("A", "B"), help="e3d ResNets: A (resnet18_3d) | B")
    a("--cardinality", "--resnext_cardinality", type=int, help="e3d: ResNeXt cardinality (32)")
    a("--version", type=float, choices=(1.0, 1.1), help="e3d: SqueezeNet version (1.1)")
    a(
        "--sample_duration",
        type=int,
        help="e3d / tada: frames per clip (= --num_segments; e3d 16, tada2d 8, tadaconvnextv2 16)",
    )
    a(
        "--downsample",
        type=int,
        help="e3d: take every n-th frame of the clip (1; jester 2); tada: the sampling rate (8; convnext 5)",
    )
    a("--n_val_samples", type=int, help="e3d: validation clips per video, averaged (= --num_clips; 1)")
    a("--pretrain_path", help="e3d: an Efficient-3DCNNs checkpoint to fine-tune (its classifier is replaced)")
    a(
        "--ft_portion",
        choices=("complete", "last_layer"),
        help="e3d with --pretrain_path: train everything (complete) or only the classifier (last_layer)",
    )
    a("--n_finetune_classes", type=int, help="e3d with --pretrain_path: must equal the dataset's classes")


TADA_FLAGS = ("drop_path", "boost_new_lr")


def _tada_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--drop_path",
        type=float,
        help="tadaconvnextv2_*: stochastic depth of the last block (recipe: 0.2 / 0.4 / 0.6 for T / S / B)",
    )
    g.add_argument(
        "--boost_new_lr",
        action="store_const",
        const=True,
        help="route functions and head at 5x the lr, their biases 10x (TAdaConv's LR_REDUCE; recipe: on for "
        "tadaconvnextv2_*, off for tada2d_r50)",
    )
    g.add_argument("--no_boost_new_lr", dest="boost_new_lr", action="store_const", const=False, help="off")


def _alias(args: argparse.Namespace, alias: str, name: str) -> None:
    a, b = getattr(args, alias), getattr(args, name)
    if a is not None and b is not None and a != b:
        raise ValueError(f"--{alias} {a} and --{name} {b} disagree (they are the same setting)")
    setattr(args, name, b if b is not None else a)


def _resolve_common(
    args: argparse.Namespace, model: str, archs: tuple[str, ...], refused: tuple[str, ...]
) -> None:
    """--arch names the network; --sample_duration is --num_segments; flags the method would ignore refused."""
    if args.arch is not None:
        try:
            args.focus_arch = canonical_arch(args.arch)
        except ValueError as exc:
            raise ValueError(f"argument --arch: {exc}") from None
    if args.focus_arch is not None and args.focus_arch not in archs:
        raise ValueError(
            f"--arch {args.focus_arch} is not a --model {model} network (choose from {', '.join(archs)})"
        )
    _alias(args, "sample_duration", "num_segments")
    for key in ("shift",) + refused:
        if key in args.explicit:
            raise ValueError(f"--{key} does not apply to --model {model}")


def _e3d_args(args: argparse.Namespace) -> None:
    _resolve_common(args, "e3d", E3D_ARCHS, ("focus_width_mult", "focus_base_width"))
    _alias(args, "n_val_samples", "num_clips")
    arch = args.focus_arch or E3DConfig.DEFAULTS["focus_arch"]
    for key, archs in _OPTION_ARCHS.items():
        if key in args.explicit and arch not in archs:
            raise ValueError(f"--{key} applies to {', '.join(archs)}, not to {arch}")
    if "dropout" in args.explicit:
        raise ValueError(
            "--dropout does not apply to --model e3d (its classifier dropout is 0.2; 0.9 when fine-tuning)"
        )
    if args.pretrain == "imagenet":
        raise ValueError(
            "--pretrain imagenet: Efficient-3DCNNs networks start from scratch or from --pretrain_path"
        )
    for key in ("ft_portion", "n_finetune_classes"):
        if getattr(args, key) is not None and not args.pretrain_path:
            raise ValueError(
                f"--{key} only applies with --pretrain_path (fine-tuning an Efficient-3DCNNs checkpoint)"
            )


def _e3d_run_name(args: argparse.Namespace) -> str:
    """The original's `{dataset}_{model}_{width}x_{modality}_{sample_duration}`."""
    name = E3D_ORIGINAL_NAMES[args.focus_arch]
    return f"{args.dataset}_{name}_{args.width_mult}x_{args.modality}_{args.num_segments}"


def _tada_args(args: argparse.Namespace) -> None:
    _resolve_common(args, "tada", TADA_ARCHS, ("focus_width_mult",))


def _tada_run_name(args: argparse.Namespace) -> str:
    """`{arch}_{frames}x{rate}_{dataset}`, after the official output folders (e.g. tada2d_8x8_k400)."""
    return f"{args.focus_arch}_{args.num_segments}x{args.downsample}_{args.dataset}_e{args.epochs}"


E3D = Method(
    "e3d",
    E3DModel,
    "Efficient-3DCNNs: a 3-D mobile net / ResNet on one clip (--arch mobilenetv2_3d, shufflenet_3d, ...)",
    config_cls=E3DConfig,
    flags=E3D_FLAGS + SHARED_FLAGS,
    add_arguments=_clip_arguments,
    resolve_args=_e3d_args,
    run_name=_e3d_run_name,
)
TADA = Method(
    "tada",
    TAdaModel,
    "TAdaConv: TAda2D-R50 or TAdaConvNeXtV2-T/S/B on one clip (--arch tada2d_r50, tadaconvnextv2_t, ...)",
    config_cls=TAdaConfig,
    flags=SHARED_FLAGS + TADA_FLAGS,
    add_arguments=_tada_arguments,
    resolve_args=_tada_args,
    run_name=_tada_run_name,
)
