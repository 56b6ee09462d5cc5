"""One command-line parser for main.py, main_nViewEval.py and test_early_exit.py.

Two original command-line families are accepted unchanged and resolve to the same Namespace:
  TSM / X3D form:  ``main.py something RGB --dist-url tcp://... --multiprocessing-distributed -b 64 --wd 1e-3 ...``
  AN form:         ``main.py --dataset actnet --data_dir DIR --batch_size 32 --weight_decay 2e-4 --local_rank 0 ...``
Every preset-dependent flag has default ``None`` so that "not passed" can be told apart from "passed"; the
dataset's preset (an / tsm / x3d) then fills what the user did not pass. The preset defaults are the published
README recipes, not the original parsers' defaults (those were never used for a published number).
"""

from __future__ import annotations

import argparse
import os

SCRIPTS = ("main", "nview", "early_exit")
DATASETS = (
    "actnet",
    "fcvid",
    "minik",
    "something",
    "somethingv2",
    "jester",
    "ucf101",
    "hmdb51",
    "synthetic",
    "kinetics",
)
MODELS = ("uniadafocus", "tsn", "tsm", "x3d")
ARCH_ALIASES = {
    "mbv2": "mbv2",
    "mobilenetv2": "mbv2",
    "mobilenet_v2": "mbv2",
    "resnet18": "resnet18",
    "res18": "resnet18",
    "resnet34": "resnet34",
    "res34": "resnet34",
    "resnet50": "resnet50",
    "res50": "resnet50",
    "x3d_s": "x3d_s",
    "x3d_m": "x3d_m",
    "x3d_l": "x3d_l",
}
STORE_TRUE = ("evaluate", "lr_per_step", "compile", "multiprocessing_distributed")
AN_ONLY = ("data_dir", "fc_dropout", "classifier_lr_ratio", "hidden_dim")
UA_ONLY = (
    "glance_arch",
    "num_glance_segments",
    "num_input_focus_segments",
    "num_focus_segments",
    "patch_size",
    "glance_size",
    "glance_output_stride",
    "stn_hidden_dim",
    "temporal_hidden_dim",
    "norm_ratio",
    "KL_ratio",
    "stn_lr_ratio",
    "temporal_lr_ratio",
    "temperature",
)


def dataset_preset(dataset: str) -> str:
    """Returns 'an' | 'tsm' | 'x3d' for a dataset name (same table as ops.data.dataset_config's `preset` field)."""
    if dataset in ("actnet", "fcvid", "minik"):
        return "an"
    return "x3d" if dataset == "kinetics" else "tsm"


def preset_defaults(preset: str, dataset: str) -> dict:
    """Returns the defaults (README recipes) for every preset-dependent field of the resolved Namespace."""
    d = dict(
        workers=16,
        epochs=50,
        lr_type="cos",
        lr_steps=[50.0, 100.0],
        eval_freq=1,
        print_freq=20,
        momentum=0.9,
        dropout=0.5,
        fc_dropout=0.2,
        batch_size=64,
        no_partialbn=True,
        shift=False,
        shift_div=8,
        shift_place="blockres",
        consensus_type="avg",
        global_lr_ratio=0.5,
        stn_lr_ratio=0.2,
        temporal_lr_ratio=0.2,
        classifier_lr_ratio=20.0,
        KL_ratio=0.0,
        temperature=1.0,
        norm_ratio=0.5,
        hidden_dim=1024,
        stn_hidden_dim=128,
        temporal_hidden_dim=64,
        input_size=224,
        glance_size=None,
        glance_arch="mbv2",
        focus_arch="resnet50",
        num_glance_segments=8,
        num_input_focus_segments=36,
        num_focus_segments=12,
        patch_size=128,
        pretrain="imagenet",
        amp="fp16",
        clip_gradient=20.0,
        world_size=-1,
        rank=-1,
        test_crops=1,
        num_clips=1,
        device="auto",
        resume="",
        root_log="log",
        criteria=["confidence", "entropy"],
        weight_decay=5e-4,
        lr=0.02,
        policy="learned",
        on_bad_video="error",
    )
    if preset == "an":
        d.update(
            dropout=0.2,
            clip_gradient=None,
            num_glance_segments=16,
            num_input_focus_segments=48,
            num_focus_segments=16,
            norm_ratio=1.0,
        )
        d.update(
            {
                "actnet": dict(lr=0.002, batch_size=32, weight_decay=2e-4, amp="none"),
                "fcvid": dict(lr=0.004, batch_size=64, weight_decay=1e-4),
                "minik": dict(lr=0.003, batch_size=48, weight_decay=1e-4, fc_dropout=0.1, norm_ratio=0.75),
            }[dataset]
        )
    elif preset == "x3d":
        d.update(
            workers=24,
            lr=0.005,
            weight_decay=5e-5,
            glance_arch="x3d_s",
            focus_arch="x3d_l",
            num_glance_segments=16,
            num_input_focus_segments=96,
            num_focus_segments=32,
            glance_size=160,
            stn_lr_ratio=0.4,
            temporal_lr_ratio=0.4,
        )
    else:
        d.update(shift=True)
        d.update(
            {
                "something": dict(weight_decay=1e-3),
                "jester": dict(weight_decay=1e-3, norm_ratio=0.25),
                # The built-in demo: small ResNet-18 (width 16) glance and focus nets (faster than MobileNetV2
                # to train on a CPU), native 128 px frames, the pattern readable only at 1:1, hence no norm loss
                # (it pulls the region to the whole frame). lr: the TSM README's 0.02 at batch 64, scaled
                # linearly to batch 16 (at 0.02 the spatial policy saturates at the whole frame in epoch 0).
                "synthetic": dict(
                    workers=2,
                    epochs=5,
                    batch_size=16,
                    lr=0.005,
                    num_glance_segments=8,
                    num_input_focus_segments=16,
                    num_focus_segments=4,
                    input_size=128,
                    patch_size=64,
                    glance_size=80,
                    glance_arch="resnet18",
                    focus_arch="resnet18",
                    focus_base_width=16,
                    glance_output_stride=16,
                    norm_ratio=0.0,
                    pretrain="none",
                    amp="none",
                    eval_freq=1,
                ),
            }.get(dataset, {})
        )
    return d


def _arch(name: str) -> str:
    key = name.lower()
    if key not in ARCH_ALIASES:
        raise argparse.ArgumentTypeError(
            f"unknown backbone '{name}' (choose from {sorted(set(ARCH_ALIASES))})"
        )
    return ARCH_ALIASES[key]


class _Unsupported(argparse.Action):
    """A flag of the original parser that this framework refuses with a reason (instead of ignoring it)."""

    def __init__(self, option_strings, dest, reason: str = "", **kwargs):
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=f"not supported: {reason}"
        )
        self.reason = reason

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is not supported: {self.reason}")


def build_parser() -> argparse.ArgumentParser:
    """Returns the shared parser; preset-dependent flags default to None and are resolved by parse_args."""
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        description='Uni-AdaFocus / TSN / TSM / X3D video recognition. Defaults marked "preset" come from the '
        "dataset preset: an (actnet fcvid minik), tsm (something somethingv2 jester ucf101 hmdb51 "
        "synthetic), x3d (kinetics).",
    )
    add = p.add_argument
    g = p.add_argument_group("data")
    g.add_argument(
        "dataset_pos", nargs="?", metavar="dataset", help=f"TSM/X3D form: one of {', '.join(DATASETS)}"
    )
    g.add_argument(
        "modality_pos", nargs="?", metavar="modality", help="TSM/X3D form: RGB (the only modality)"
    )
    g.add_argument("--dataset", dest="dataset_opt", help="AN form of the positional dataset")
    g.add_argument("--data_dir", help="AN form: dataset folder (lists + frames) of actnet/fcvid/minik")
    g.add_argument("--root_dataset", help="root of all datasets (default: env ADAFOCUS_DATA)")
    g.add_argument("--train_list", help="override the dataset config's train list file")
    g.add_argument("--val_list", help="override the dataset config's val list file")
    g.add_argument(
        "--video_root", help="read raw videos <video_root>/<list path>.mp4 instead of frame folders"
    )
    g.add_argument(
        "--on_bad_video",
        choices=("error", "skip"),
        help="an unreadable video: stop with its name (error, default) or skip it and count it",
    )
    g.add_argument(
        "-j", "--workers", type=int, help="DataLoader workers, split over local processes (preset)"
    )
    g.add_argument("--input_size", type=int, help="frame crop side S (default 224)")
    g.add_argument("--test_crops", type=int, choices=(1, 3, 5, 10), help="spatial views at eval (default 1)")
    g.add_argument("--num_clips", type=int, help="temporal clips at eval, logits averaged (default 1)")
    g.add_argument(
        "--shared_crop",
        action="store_const",
        const=True,
        help="training: one crop and flip for the glance and candidate frames of a clip (default: one "
        "each, as the original)",
    )
    g.add_argument(
        "--resize_backend",
        choices=("pil", "cv2"),
        help="frame resizing: pil (default, bilinear as the original) or cv2 (faster, a few grey levels apart)",
    )

    g = p.add_argument_group("model")
    g.add_argument("--model", choices=MODELS, help="uniadafocus (default) or a baseline")
    g.add_argument("--arch", help="Uni-AdaFocus: only names the run (store_name); baselines: the backbone")
    g.add_argument("--glance_arch", type=_arch, help="glance backbone (preset: mbv2 | x3d_s)")
    g.add_argument("--focus_arch", type=_arch, help="focus backbone (preset: resnet50 | x3d_l)")
    g.add_argument(
        "--num_segments",
        type=int,
        help="AN form: N candidate frames (= --num_input_focus_segments); baselines: frames per clip",
    )
    g.add_argument("--num_glance_segments", type=int, help="T_g glance frames (preset)")
    g.add_argument("--num_input_focus_segments", type=int, help="N candidate frames (preset)")
    g.add_argument("--num_focus_segments", type=int, help="K selected focus frames, K <= N (preset)")
    g.add_argument("--patch_size", type=int, help="P focus patch side (preset)")
    g.add_argument(
        "--glance_size",
        type=int,
        help="glance input side, resized in the model (default: --input_size; x3d 160)",
    )
    g.add_argument("--dropout", "--do", type=float, help="dropout before the heads (preset)")
    g.add_argument("--fc_dropout", type=float, help="AN: dropout before the glance/focus fc (preset)")
    g.add_argument(
        "--hidden_dim", type=int, help="AN: accepted for the README commands, no-op (MLP width is 4096)"
    )
    g.add_argument("--glance_width_mult", type=float, help="MobileNetV2 glance width multiplier (1.0)")
    g.add_argument("--glance_last_channel", type=int, help="MobileNetV2 glance feature channels (1280)")
    g.add_argument("--focus_base_width", type=int, help="ResNet focus base width (64)")
    g.add_argument(
        "--glance_output_stride",
        type=int,
        choices=(8, 16, 32),
        help="ResNet glance: output stride by dilation; a finer feature map for the policies (32)",
    )
    g.add_argument("--stn_hidden_dim", type=int, help="spatial policy width (preset 128)")
    g.add_argument("--temporal_hidden_dim", type=int, help="temporal policy width (preset 64)")
    g.add_argument("--temperature", type=float, help="softmax temperature of the frame distribution (1.0)")
    g.add_argument("--consensus_type", choices=("avg",), help="TSN consensus: only avg")
    g.add_argument(
        "--shift", action="store_const", const=True, help="temporal shift in 2-D backbones (tsm preset: on)"
    )
    g.add_argument("--no_shift", dest="shift", action="store_const", const=False, help="disable --shift")
    g.add_argument("--shift_div", type=int, help="shift 1/div of the channels each way (8)")
    g.add_argument("--shift_place", choices=("blockres",), help="only blockres")
    g.add_argument("--temporal_pool", action=_Unsupported, reason="temporal pooling was never implemented")
    g.add_argument("--non_local", action=_Unsupported, reason="non-local blocks are not part of Uni-AdaFocus")
    g.add_argument("--dense_sample", action=_Unsupported, reason="use --num_clips for multi-clip evaluation")
    g.add_argument(
        "--pretrain",
        choices=("imagenet", "none"),
        help="imagenet: the backbones' published weights (X3D: its Kinetics .pyth); none: random",
    )
    g.add_argument(
        "--tune_from", help="initialise from a checkpoint, dropping heads whose class count differs"
    )

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="(preset 50)")
    g.add_argument(
        "-b",
        "--batch-size",
        "--batch_size",
        dest="batch_size",
        type=int,
        help="global batch, split over all processes (preset)",
    )
    g.add_argument("--lr", type=float, help="base learning rate (preset)")
    g.add_argument("--lr_type", choices=("cos", "step"), help="(preset cos)")
    g.add_argument("--lr_steps", type=float, nargs="+", help="epochs where the step schedule decays x0.1")
    g.add_argument(
        "--lr_per_step", action="store_true", help="update the cosine lr every iteration (orig: epoch)"
    )
    g.add_argument("--momentum", type=float, help="SGD momentum (0.9)")
    g.add_argument(
        "--wd", "--weight-decay", "--weight_decay", dest="weight_decay", type=float, help="(preset)"
    )
    g.add_argument(
        "--gd",
        "--clip-gradient",
        "--clip_gradient",
        dest="clip_gradient",
        type=float,
        help="clip the gradient norm; 0 = off (preset: 20, an: off)",
    )
    g.add_argument(
        "--npb",
        "--no_partialbn",
        dest="no_partialbn",
        action="store_const",
        const=True,
        help="train all BatchNorm layers (preset: on)",
    )
    g.add_argument(
        "--partialbn",
        dest="no_partialbn",
        action="store_const",
        const=False,
        help="TSN partial BN: freeze every BatchNorm but the first of each backbone",
    )
    g.add_argument("--global_lr_ratio", type=float, help="lr_mult of the glance branch (0.5)")
    g.add_argument("--stn_lr_ratio", type=float, help="lr_mult of the spatial policy (preset)")
    g.add_argument("--temporal_lr_ratio", type=float, help="lr_mult of the temporal policy (preset)")
    g.add_argument("--classifier_lr_ratio", type=float, help="AN: lr_mult of the pooling classifier (20)")
    g.add_argument("--KL_ratio", type=float, help="weight of KL(w || uniform) (0)")
    g.add_argument("--norm_ratio", type=float, help="weight of the patch-scale norm loss (preset)")
    g.add_argument(
        "--amp",
        nargs="?",
        const="bf16",
        choices=("bf16", "fp16", "none"),
        help="mixed precision on CUDA; bare --amp = bf16 (preset fp16, actnet none); no-op on CPU",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--seed", type=int, help="seed python/numpy/torch (+rank); default: not seeded")

    g = p.add_argument_group("run")
    g.add_argument("--root_log", help="log folder (default log)")
    g.add_argument("--root_model", help="checkpoint folder (default: = --root_log)")
    g.add_argument("--store_name", help="run name (default: built as the originals did)")
    g.add_argument("--suffix", help="appended to store_name")
    g.add_argument("-p", "--print-freq", "--print_freq", dest="print_freq", type=int, help="iterations (20)")
    g.add_argument(
        "-ef", "--eval-freq", "--eval_freq", dest="eval_freq", type=int, help="validate every n epochs (1)"
    )
    g.add_argument("--resume", help="checkpoint to resume (ours or the original implementation's)")
    g.add_argument(
        "--start-epoch",
        "--start_epoch",
        dest="start_epoch",
        type=int,
        help="first epoch (default: the checkpoint's epoch when resuming, else 0)",
    )
    g.add_argument("-e", "--evaluate", action="store_true", help="validate only")
    g.add_argument("--save_scores", help="write the per-video logits of the evaluation to FILE")
    g.add_argument(
        "--policy",
        choices=("learned", "random"),
        help="evaluation only: random = the same model with random patches and uniform frames (learned)",
    )
    g.add_argument(
        "--criteria",
        nargs="+",
        choices=("confidence", "max_softmax", "entropy"),
        help="test_early_exit.py: exit criteria (confidence entropy)",
    )

    g = p.add_argument_group("distributed / device")
    g.add_argument("--device", help="auto (cuda if available, else cpu) | cpu | cuda | cuda:N")
    g.add_argument(
        "--dist-url", "--dist_url", dest="dist_url", help="tcp://host:port or env:// (default: auto)"
    )
    g.add_argument(
        "--dist-backend",
        "--dist_backend",
        dest="dist_backend",
        choices=("nccl", "gloo"),
        help="default: nccl on CUDA, gloo on CPU",
    )
    g.add_argument("--world-size", "--world_size", dest="world_size", type=int, help="number of nodes (-1)")
    g.add_argument("--rank", type=int, help="node rank (-1)")
    g.add_argument(
        "--multiprocessing-distributed",
        "--multiprocessing_distributed",
        dest="multiprocessing_distributed",
        action="store_true",
        help="spawn one process per GPU (per --nproc_per_node on CPU)",
    )
    g.add_argument(
        "--nproc_per_node", type=int, help="processes to spawn (default: CUDA device count, CPU: 1)"
    )
    g.add_argument("--gpu", type=int, help="single-process mode on this GPU index")
    g.add_argument(
        "--local_rank",
        "--local-rank",
        dest="local_rank",
        type=int,
        help="set by torch.distributed.launch (legacy); torchrun uses env LOCAL_RANK",
    )
    del add
    return p


def parse_args(argv: list[str] | None = None, script: str = "main") -> argparse.Namespace:
    """Returns the validated Namespace with presets applied and store_name / run_dir / log_dir derived."""
    if script not in SCRIPTS:
        raise ValueError(f"script must be one of {SCRIPTS}, got {script!r}")
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    resolve_args(args, parser, script)
    return args


def resolve_args(
    args: argparse.Namespace, parser: argparse.ArgumentParser, script: str
) -> argparse.Namespace:
    """Fills presets, unifies the two families, validates (parser.error naming the flag) and derives names."""
    err = parser.error
    pos, opt = args.__dict__.pop("dataset_pos"), args.__dict__.pop("dataset_opt")
    modality = args.__dict__.pop("modality_pos")
    if pos is None and opt is None:
        err(
            "the dataset is required: `main.py DATASET RGB ...` (TSM/X3D form) or `--dataset DATASET` (AN form)"
        )
    if pos is not None and opt is not None and pos != opt:
        err(f"positional dataset {pos!r} and --dataset {opt!r} disagree")
    args.dataset = pos or opt
    if args.dataset not in DATASETS:
        err(f"argument dataset: invalid choice {args.dataset!r} (choose from {', '.join(DATASETS)})")
    args.modality = modality or "RGB"
    if args.modality != "RGB":
        err(f"argument modality: {args.modality!r} is not supported; only RGB frames are used")
    args.script = script
    args.preset = dataset_preset(args.dataset)
    # store_true flags default to False, every other flag to None: "explicit" = what the user typed.
    args.explicit = sorted(
        k
        for k, v in vars(args).items()
        if k not in ("dataset", "modality", "script", "preset")
        and v is not None
        and not (k in STORE_TRUE and v is False)
    )
    args.model = args.model or "uniadafocus"
    _check_scope(args, err)
    if args.preset == "an" and args.model == "uniadafocus":
        n_alias, n = args.num_segments, args.num_input_focus_segments
        if n_alias is not None and n is not None and n_alias != n:
            err(f"--num_segments {n_alias} and --num_input_focus_segments {n} disagree (both are N)")
        args.num_input_focus_segments = n if n is not None else n_alias
    for key, value in preset_defaults(args.preset, args.dataset).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.root_model is None:
        args.root_model = args.root_log
    if args.root_dataset is None:
        args.root_dataset = os.environ.get("ADAFOCUS_DATA") or None
    if args.clip_gradient is not None and args.clip_gradient <= 0:
        args.clip_gradient = None
    _resolve_model(args, err)
    _validate(args, err, script)
    if args.store_name is None:
        args.store_name = store_name(args)
    args.run_dir = os.path.join(args.root_model, args.store_name)
    args.log_dir = os.path.join(args.root_log, args.store_name)
    return args


def _check_scope(args: argparse.Namespace, err) -> None:
    """Rejects flags that the chosen preset / model / script would silently ignore."""
    explicit = set(args.explicit)
    if args.preset != "an":
        for key in AN_ONLY:
            if key in explicit:
                hint = " (use --root_dataset)" if key == "data_dir" else ""
                err(
                    f"--{key} is only used by the AN preset (actnet, fcvid, minik), not by {args.dataset}{hint}"
                )
    if args.preset == "an" and args.shift:
        err("--shift: the AN preset has no temporal shift (TSM preset only)")
    if args.model != "uniadafocus":
        for key in UA_ONLY:
            if key in explicit:
                err(f"--{key} only applies to --model uniadafocus, not to the {args.model} baseline")
        if "shift" in explicit:
            err("--shift/--no_shift: choose the baseline instead (--model tsm shifts, --model tsn does not)")
    elif args.preset != "an" and "num_segments" in explicit:
        err(
            "--num_segments is not used by Uni-AdaFocus in the TSM/X3D form: use --num_glance_segments, "
            "--num_input_focus_segments and --num_focus_segments"
        )
    if args.policy not in (None, "learned") and (
        args.model != "uniadafocus" or not (args.evaluate or args.script != "main")
    ):
        err(
            "--policy random only applies to evaluating (--evaluate, main_nViewEval.py, test_early_exit.py) "
            "a Uni-AdaFocus model"
        )
    if args.script != "early_exit" and "criteria" in explicit:
        err("--criteria is only used by test_early_exit.py")


def _resolve_model(args: argparse.Namespace, err) -> None:
    is_3d = {"x3d_s", "x3d_m", "x3d_l"}
    if args.model == "uniadafocus":
        for key in ("glance_arch", "focus_arch"):
            if (getattr(args, key) in is_3d) != (args.preset == "x3d"):
                err(
                    f"--{key} {getattr(args, key)}: the {args.preset} preset needs "
                    f"{'an X3D backbone' if args.preset == 'x3d' else 'a 2-D backbone (mbv2, resnet*)'}"
                )
        if args.glance_size is None:
            args.glance_size = args.input_size  # AN/TSM glance at the full frame unless asked (X3D: 160)
        if args.glance_output_stride not in (None, 32) and not args.glance_arch.startswith("resnet"):
            err(
                f"--glance_output_stride {args.glance_output_stride}: only a ResNet glance (--glance_arch resnet*) "
                f"has a dilated form, not {args.glance_arch}"
            )
        # AN: N is also called --num_segments; TSM/X3D Uni-AdaFocus has no such field.
        args.num_segments = args.num_input_focus_segments if args.preset == "an" else None
        # X3D's README passes --shift too; a shift only exists for 2-D backbones, so there it only names the run.
        args.use_shift = bool(args.shift) and not {args.glance_arch, args.focus_arch} <= is_3d
        args.backbone = None
        return
    if args.arch is not None:
        try:
            args.backbone = _arch(args.arch)
        except argparse.ArgumentTypeError as exc:
            err(f"argument --arch: {exc}")
    elif "focus_arch" in args.explicit:
        args.backbone = args.focus_arch
    else:
        focus = args.focus_arch
        args.backbone = (
            focus
            if (focus in is_3d) == (args.model == "x3d")
            else ("x3d_m" if args.model == "x3d" else "resnet50")
        )
    if (args.backbone in is_3d) != (args.model == "x3d"):
        err(f"argument --arch: {args.backbone} does not fit --model {args.model}")
    args.focus_arch = args.backbone  # the baselines run their single backbone as the "focus" network
    if args.num_segments is None:
        args.num_segments = 16 if args.model == "x3d" else 8
    args.shift = args.use_shift = args.model == "tsm"


def _validate(args: argparse.Namespace, err, script: str) -> None:
    positive = ["epochs", "batch_size", "eval_freq", "print_freq", "input_size", "num_clips", "shift_div"]
    if args.model == "uniadafocus":
        positive += [
            "num_glance_segments",
            "num_input_focus_segments",
            "num_focus_segments",
            "patch_size",
            "glance_size",
            "stn_hidden_dim",
            "temporal_hidden_dim",
        ]
    else:
        positive.append("num_segments")
    for key in positive:
        if getattr(args, key) < 1:
            err(f"--{key} must be >= 1, got {getattr(args, key)}")
    if args.workers < 0:
        err(f"--workers must be >= 0, got {args.workers}")
    if args.lr <= 0:
        err(f"--lr must be > 0, got {args.lr}")
    for key in ("dropout", "fc_dropout"):
        if not 0.0 <= getattr(args, key) < 1.0:
            err(f"--{key} must be in [0, 1), got {getattr(args, key)}")
    if args.model == "uniadafocus":
        n, k, tg = args.num_input_focus_segments, args.num_focus_segments, args.num_glance_segments
        if k > n:
            err(f"--num_focus_segments (K={k}) must be <= --num_input_focus_segments (N={n})")
        if args.preset == "an" and n % tg:
            err(
                f"AN preset: N={n} (--num_segments) must be divisible by --num_glance_segments T_g={tg} "
                "(the glance frames are one of every N/T_g candidates)"
            )
        for key in ("patch_size", "glance_size"):
            if getattr(args, key) > args.input_size:
                err(f"--{key} {getattr(args, key)} exceeds --input_size {args.input_size}")
    if args.start_epoch is not None and not 0 <= args.start_epoch < args.epochs:
        err(f"--start-epoch {args.start_epoch} must be in [0, --epochs={args.epochs})")
    if args.nproc_per_node is not None and args.nproc_per_node < 1:
        err(f"--nproc_per_node must be >= 1, got {args.nproc_per_node}")
    if args.device != "auto" and args.device.split(":")[0] not in ("cpu", "cuda"):
        err(f"argument --device: expected auto, cpu, cuda or cuda:N, got {args.device!r}")
    if script in ("nview", "early_exit"):
        if not args.resume:
            err(
                f"--resume CHECKPOINT is required by {'main_nViewEval.py' if script == 'nview' else 'test_early_exit.py'}"
            )
        args.evaluate = True


def store_name(args: argparse.Namespace) -> str:
    """Returns the run name as the originals built it (AN: UniAdaFocus_..., TSM/X3D and baselines: TSM_...)."""
    if args.preset == "an" and args.model == "uniadafocus":
        name = f"UniAdaFocus_{args.dataset}_{args.glance_arch}_segment{args.num_input_focus_segments}_e{args.epochs}"
    else:
        arch = args.backbone if args.model != "uniadafocus" else (args.arch or args.focus_arch)
        if args.shift:
            arch += f"_shift{args.shift_div}_{args.shift_place}"
        frames = args.num_glance_segments if args.model == "uniadafocus" else args.num_segments
        name = "_".join(
            [
                "TSM",
                args.dataset,
                args.modality,
                arch,
                args.consensus_type,
                f"segment{frames}",
                f"e{args.epochs}",
            ]
        )
        if args.model != "uniadafocus":
            name = f"{args.model.upper()}{name[3:]}"
        if args.pretrain != "imagenet":
            name += f"_{args.pretrain}"
        if args.lr_type != "step":
            name += f"_{args.lr_type}"
    if args.suffix is not None:
        name += f"_{args.suffix}"
    return name
