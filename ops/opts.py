"""One command-line parser for main.py, main_nViewEval.py and test_early_exit.py.

Two original command-line families are accepted unchanged and resolve to the same Namespace:
  TSM / X3D form:  ``main.py something RGB --dist-url tcp://... --multiprocessing-distributed -b 64 --wd 1e-3 ...``
  AN form:         ``main.py --dataset actnet --data_dir DIR --batch_size 32 --weight_decay 2e-4 --local_rank 0 ...``
Every preset-dependent flag has default ``None`` so that "not passed" can be told apart from "passed"; the
dataset's preset (an / tsm / x3d, models/presets.py) then fills what the user did not pass: the published README
recipes, not the original parsers' defaults (those were never used for a published number). `--model` picks a
method of the registry (models/registry.py); each method adds its own flags and checks its configuration (the
method's ModelConfig), so nothing here knows a method or a preset by name.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings

from models import presets
from models.registry import DEFAULT_METHOD, get_method, method_names, store_name
from ops.data.dataset_config import AN_FAMILY, CUSTOM, python_template
from ops.data.transforms import TRAIN_CROPS
from ops.data.video_paths import normalize_ext

SCRIPTS = ("main", "nview", "early_exit")
DATASETS = tuple(presets.DATASET_PRESET)
STORE_TRUE = ("evaluate", "lr_per_step", "compile", "multiprocessing_distributed", "trust_checkpoint")
# Defaults that no preset changes (the preset-dependent ones come from models.presets).
RUN_DEFAULTS = dict(
    world_size=-1,
    rank=-1,
    test_crops=1,
    num_clips=1,
    device="auto",
    resume="",
    root_log="log",
    criteria=["confidence", "entropy"],
    policy="learned",
    on_bad_video="error",
)


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
        "synthetic custom), x3d (kinetics).",
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
        "--video_root",
        help="read raw videos <video_root>/<list path>[.mp4|.avi|.mkv|.webm|.mov] instead of frame folders",
    )
    g.add_argument(
        "--video_ext",
        help="with --video_root: read <list path><EXT> (e.g. .avi) instead of searching the known extensions",
    )
    g.add_argument("--frames_root", help="custom dataset: folder of the frame folders <DIR>/<list path>/")
    g.add_argument(
        "--categories", help="custom dataset: class names, one per line (the first line is label 0)"
    )
    g.add_argument("--image_tmpl", help="custom dataset: frame file name (img_{:05d}.jpg; %%05d also works)")
    g.add_argument(
        "--multi_label",
        action="store_const",
        const=True,
        help="custom dataset: rows `path num_frames label [label2 label3]`, judged by mAP",
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
        "--train_crop",
        choices=TRAIN_CROPS,
        help="training crop: tsm (multi-scale crop with fixed offsets, the Uni-AdaFocus/TSM default) or the "
        "Efficient-3DCNNs multi-scale random | corner | center crops (default: the model's; e3d: corner)",
    )
    g.add_argument(
        "--resize_backend",
        choices=("pil", "cv2"),
        help="frame resizing: pil (default, bilinear as the original) or cv2 (faster, a few grey levels apart)",
    )

    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        "--method",
        dest="model",
        choices=method_names(),
        help=f"the method ({DEFAULT_METHOD} by default, or a baseline): "
        + "; ".join(f"{n}: {get_method(n).description}" for n in method_names()),
    )
    g.add_argument("--arch", help="Uni-AdaFocus: only names the run (store_name); baselines: the backbone")
    g.add_argument(
        "--focus_arch",
        type=presets.arch_type,
        help="focus backbone / a baseline's backbone (preset: resnet50 | x3d_l)",
    )
    g.add_argument(
        "--num_segments",
        type=int,
        help="AN form: N candidate frames (= --num_input_focus_segments); baselines: frames per clip",
    )
    g.add_argument("--dropout", "--do", type=float, help="dropout before the heads (preset)")
    g.add_argument(
        "--focus_width_mult", type=float, help="MobileNetV2 focus / baseline width multiplier (1.0)"
    )
    g.add_argument("--focus_base_width", type=int, help="ResNet focus / baseline base width (64)")
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
    g.add_argument(
        "--npb",
        "--no_partialbn",
        dest="partial_bn",
        action="store_const",
        const=False,
        help="train all BatchNorm layers (default)",
    )
    g.add_argument(
        "--partialbn",
        dest="partial_bn",
        action="store_const",
        const=True,
        help="TSN partial BN: freeze every BatchNorm but the first of each backbone",
    )
    g.add_argument(
        "--student_size",
        type=int,
        help="resize every frame to this side inside the model (bilinear), in training and evaluation: the "
        "network is built for such frames, the data pipeline stays at --input_size (ResKD: 112; default off)",
    )
    g.add_argument(
        "--multilabel_ce",
        choices=("first", "sum"),
        help="baselines, multi-label data: CE of the first label (first, default) or the sum of every label's "
        "CE (sum, ResKD on ActivityNet / FCVID)",
    )
    g.add_argument(
        "--consensus_first",
        action="store_const",
        const=True,
        help="tsn / tsm: average the pooled features over the frames, then the classifier (mmaction's TSN "
        "head, ResKD's students; default: the TSM code's classifier per frame, then the average)",
    )
    for name in method_names():
        method = get_method(name)
        if method.add_arguments is not None:
            method.add_arguments(p.add_argument_group(f"model: {name} (--model {name})"))

    g = p.add_argument_group("distillation (ResKD; models/distill.py)")
    g.add_argument(
        "--distill",
        metavar="TEACHER_CKPT",
        help="train the model as a student under this frozen teacher (ours, an mmaction/ResKD recognizer or a "
        "TSM checkpoint; its network is read from the file); the saved checkpoint holds the student only",
    )
    g.add_argument(
        "--kd_loss",
        choices=("mse", "kl"),
        help="mse: feature-map MSE after bilinear up-sampling to the teacher's grid (default, ResKD's CNNs); kl: "
        "per-position logit KL (ResKD's Swin head; the classifiers applied at every position)",
    )
    g.add_argument("--kd_weight", type=float, help="weight of the KD term (ResKD: 100 for mse, 200 for kl)")
    g.add_argument("--kd_T", type=float, help="--kd_loss kl: temperature (2)")
    g.add_argument(
        "--teacher_bn",
        choices=("train", "eval"),
        help="the teacher's BatchNorm: train (default, as ResKD: running statistics move, weights frozen) or "
        "eval (frozen statistics)",
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
    g.add_argument("--dampening", type=float, help="SGD dampening (0; e3d: 0.9, as Efficient-3DCNNs)")
    g.add_argument(
        "--nesterov", action="store_const", const=True, help="Nesterov momentum (off; tada: on, as TAdaConv)"
    )
    g.add_argument(
        "--no_nesterov", dest="nesterov", action="store_const", const=False, help="disable --nesterov"
    )
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
        "--amp",
        nargs="?",
        const="bf16",
        choices=("bf16", "fp16", "none"),
        help="mixed precision for training on CUDA; bare --amp = bf16 (preset fp16, actnet none); evaluation "
        "runs in float32 unless --amp is given; a no-op on CPU",
    )
    g.add_argument(
        "--paramwise",
        choices=("model", "rkd"),
        help="optimizer groups: the model's (default) or ResKD's split of each: conv/linear weights (lr, wd), "
        "biases (2 x lr, no wd), BatchNorm/GroupNorm (lr, no wd)",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--seed", type=int, help="seed python/numpy/torch (+rank); default: not seeded")

    g = p.add_argument_group("run")
    g.add_argument("--root_log", help="log folder (default log)")
    g.add_argument("--root_model", help="checkpoint folder (default: = --root_log)")
    g.add_argument("--store_name", help="run name (default: built as the originals did)")
    g.add_argument("--suffix", help="appended to store_name")
    g.add_argument(
        "-p",
        "--print-freq",
        "--print_freq",
        dest="print_freq",
        type=int,
        help="log a line every n training iterations (20)",
    )
    g.add_argument(
        "-ef", "--eval-freq", "--eval_freq", dest="eval_freq", type=int, help="validate every n epochs (1)"
    )
    g.add_argument("--resume", help="checkpoint to resume (ours or the original implementation's)")
    g.add_argument(
        "--trust_checkpoint",
        action="store_true",
        help="open --resume / --tune_from files as full pickles, which runs code from the file: only for files "
        "you trust (default off: tensors and plain types only, anything else is refused)",
    )
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
    argv = translate_argv(sys.argv[1:] if argv is None else list(argv), parser)
    args = parser.parse_intermixed_args(argv)
    resolve_args(args, parser, script)
    return args


def translate_argv(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Returns argv in this parser's form: a method's own command-line form (Method.translate_argv, e.g. AdaFocus
    V1's `key=value` tokens) translated by the first method that recognises it, else argv unchanged."""
    for name in method_names():
        translate = get_method(name).translate_argv
        if translate is None:
            continue
        try:
            translated = translate(argv)
        except ValueError as exc:
            parser.error(str(exc))
        if translated is not None:
            return translated
    return argv


def resolve_args(
    args: argparse.Namespace, parser: argparse.ArgumentParser, script: str
) -> argparse.Namespace:
    """Fills presets, unifies the two families, validates (parser.error naming the flag) and derives names.

    Model fields are resolved by the method's ModelConfig (preset table, method defaults, the one validation
    step) and written back where the user gave none; the training recipe comes from the same preset table."""
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
    # store_true flags default to False, every other flag to None: "explicit" = what the user typed.
    args.explicit = sorted(
        k
        for k, v in vars(args).items()
        if k not in ("dataset", "modality", "script")
        and v is not None
        and not (k in STORE_TRUE and v is False)
    )
    args.model = args.model or DEFAULT_METHOD
    method = get_method(args.model)
    _check_scope(args, err, method)
    try:
        if method.resolve_args is not None:
            method.resolve_args(args)
        cfg = method.config_cls.from_args(args)
    except ValueError as exc:
        err(str(exc))
    for f in dataclasses.fields(cfg):
        if getattr(args, f.name, None) is None and f.name not in ("num_classes", "x3d_overrides"):
            setattr(args, f.name, getattr(cfg, f.name))
    for key, value in {**presets.dataset_recipe(args.dataset, args.model), **RUN_DEFAULTS}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for key in sorted(set(args.explicit) & set(presets.WIDTH_FLAGS)):
        field, kind = presets.WIDTH_FLAGS[key]
        if not getattr(args, field).startswith(kind):
            kinds = " or ".join(kind) if isinstance(kind, tuple) else kind
            err(f"--{key} applies to a {kinds} network, but --{field} is {getattr(args, field)}")
    for key in sorted(set(args.explicit) & set(presets.NO_OPS)):
        warnings.warn(f"--{key} does nothing: {presets.NO_OPS[key]}", stacklevel=2)
    if args.root_model is None:
        args.root_model = args.root_log
    if args.root_dataset is None:
        args.root_dataset = os.environ.get("ADAFOCUS_DATA") or None
    if args.clip_gradient is not None and args.clip_gradient <= 0:
        args.clip_gradient = None
    _validate(args, err, script)
    _check_data_files(args, err, script)
    if args.store_name is None:
        args.store_name = store_name(args)
    args.run_dir = os.path.join(args.root_model, args.store_name)
    args.log_dir = os.path.join(args.root_log, args.store_name)
    return args


def _check_scope(args: argparse.Namespace, err, method) -> None:
    """Rejects flags that the chosen dataset / method / script would silently ignore."""
    explicit = set(args.explicit)
    if "data_dir" in explicit and args.dataset not in AN_FAMILY:
        err(
            f"--data_dir is only used by the AN datasets ({', '.join(AN_FAMILY)}), not by {args.dataset} "
            "(use --root_dataset)"
        )
    try:
        presets.check_preset_flags(args.dataset, explicit)
    except ValueError as exc:
        err(str(exc))
    owners: dict[str, list[str]] = {}
    for name in method_names():
        for flag in get_method(name).flags:
            owners.setdefault(flag, []).append(name)
    for key in sorted(explicit):
        if key in owners and method.name not in owners[key]:
            err(f"--{key} only applies to --model {' / '.join(owners[key])}, not to {method.name}")
    evaluating = args.evaluate or args.script != "main"
    if args.policy not in (None, "learned") and not (method.has_policy and evaluating):
        err(
            "--policy random only applies to evaluating (--evaluate, main_nViewEval.py, test_early_exit.py) "
            "a model with learned policies (--model "
            + " / ".join(n for n in method_names() if get_method(n).has_policy)
            + ")"
        )
    if args.trust_checkpoint and not (args.resume or args.tune_from or args.distill):
        err("--trust_checkpoint only applies to the file of --resume, --tune_from or --distill")
    for key in ("kd_loss", "kd_weight", "kd_T", "teacher_bn"):
        if key in explicit and not args.distill:
            err(f"--{key} only applies with --distill TEACHER_CKPT")
    if "kd_T" in explicit and args.kd_loss != "kl":
        err("--kd_T only applies to --kd_loss kl (the temperature of the logit KL)")
    training = not (args.evaluate or args.script != "main")
    if args.distill and not training:
        err(
            "--distill only applies to training (main.py without --evaluate): a distilled checkpoint evaluates "
            "alone, built with the same --student_size"
        )
    if "paramwise" in explicit and not training:
        err("--paramwise only applies to training (main.py without --evaluate)")
    if args.script != "early_exit" and "criteria" in explicit:
        err("--criteria is only used by test_early_exit.py")
    if "train_crop" in explicit and (args.script == "nview" or (args.script == "main" and args.evaluate)):
        err("--train_crop only applies to training (main.py) and the calibration of test_early_exit.py")


def _validate(args: argparse.Namespace, err, script: str) -> None:
    for key in ("epochs", "batch_size", "eval_freq", "print_freq", "num_clips"):
        if getattr(args, key) < 1:
            err(f"--{key} must be >= 1, got {getattr(args, key)}")
    if args.workers < 0:
        err(f"--workers must be >= 0, got {args.workers}")
    if args.lr <= 0:
        err(f"--lr must be > 0, got {args.lr}")
    if args.nesterov and (args.momentum <= 0 or args.dampening != 0):
        err(f"--nesterov needs momentum > 0 and --dampening 0 (got {args.momentum}, {args.dampening})")
    if args.start_epoch is not None and not 0 <= args.start_epoch < args.epochs:
        err(f"--start-epoch {args.start_epoch} must be in [0, --epochs={args.epochs})")
    if args.nproc_per_node is not None and args.nproc_per_node < 1:
        err(f"--nproc_per_node must be >= 1, got {args.nproc_per_node}")
    if args.device != "auto" and args.device.split(":")[0] not in ("cpu", "cuda"):
        err(f"argument --device: expected auto, cpu, cuda or cuda:N, got {args.device!r}")
    if script in ("nview", "early_exit"):
        if not args.resume:
            entry = "main_nViewEval.py" if script == "nview" else "test_early_exit.py"
            err(f"--resume CHECKPOINT is required by {entry}")
        args.evaluate = True


def _check_data_files(args: argparse.Namespace, err, script: str) -> None:
    """The custom dataset's files (--categories, lists, --frames_root | --video_root) and --video_ext: refused
    where nothing would read them, required where a run reads them."""
    custom_flags = ("frames_root", "categories", "image_tmpl", "multi_label")
    if args.video_ext is not None:
        if args.video_root is None:
            err("--video_ext only applies with --video_root")
        try:
            args.video_ext = normalize_ext(args.video_ext)
        except ValueError as exc:
            err(f"--video_ext: {exc}")
    if args.dataset != CUSTOM:
        for key in custom_flags:
            if key in args.explicit:
                err(f"--{key} only applies to the custom dataset (`main.py custom RGB --categories F ...`)")
        return
    if "root_dataset" in args.explicit:
        err(
            "--root_dataset: the custom dataset is given by its files (--categories, --train_list, --val_list)"
        )
    if (args.frames_root is None) == (args.video_root is None):
        err(
            "the custom dataset needs --frames_root DIR (frame folders) or --video_root DIR (videos), one of them"
        )
    training = script == "early_exit" or (script == "main" and not args.evaluate)
    need = ["categories", "val_list"] + (["train_list"] if training else [])
    missing = [f"--{k}" for k in need if getattr(args, k) is None]
    if missing:
        err(f"the custom dataset needs {' '.join(missing)}")
    if args.image_tmpl is not None:
        try:
            args.image_tmpl = python_template(args.image_tmpl)
        except ValueError as exc:
            err(f"--image_tmpl: {exc}")
    if args.frames_root is None and args.image_tmpl is not None:
        err("--image_tmpl names frame files: it applies with --frames_root, not --video_root")
