"""One command-line parser for main.py, main_nViewEval.py and test_early_exit.py.

Two original command-line families are accepted unchanged and resolve to the same Namespace:
  TSM / X3D form:  ``main.py something RGB --dist-url tcp://... --multiprocessing-distributed -b 64 --wd 1e-3 ...``
  AN form:         ``main.py --dataset actnet --data_dir DIR --batch_size 32 --weight_decay 2e-4 --local_rank 0 ...``
Every preset-dependent flag has default ``None`` so that "not passed" can be told apart from "passed"; the
dataset's preset (an / tsm / x3d, models/core/recipes.py) then fills what the user did not pass: the published README
recipes, not the original parsers' defaults (those were never used for a published number). `--model` picks a
method of the registry (models/core/registry.py); each method adds its own flags and checks its configuration (the
method's ModelConfig), so nothing here knows a method or a preset by name.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import warnings

from models import DEFAULT_METHOD, get_method, method_names, store_name
from models.core.cli import NO_OPS, WIDTH_FLAGS, add_glance_focus_arguments, check_preset_flags
from models.core.registry import wrappers
from ops.cli_help import ENTRY, finish_parser, print_config, usage
from ops.data.augment import parse_randaugment
from ops.data.dataset_config import AN_FAMILY, CUSTOM, python_template
from ops.data.video_paths import normalize_ext
from ops.flags import (
    DATASETS,
    STORE_TRUE,
    add_data_flags,
    add_distributed_flags,
    add_model_flags,
    add_optim_flags,
    add_run_flags,
)
from ops.model_source import adopts, find_source, resolve_from_checkpoint, tune_notes

SCRIPTS = ("main", "nview", "early_exit")
AUTO = "auto"  # --resume auto
CKPT_NAME = "ckpt.pth.tar"  # what ops.engine.checkpoint.save_checkpoint writes into the run folder
# Defaults that no preset changes (the preset-dependent ones come from the method's recipe).
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
    on_nonfinite="error",
    tf32="off",
    host_memory="keep",
)


def build_parser(script: str = "main") -> argparse.ArgumentParser:
    """Returns the shared parser (its help written for the entry script `script`); preset-dependent flags default
    to None and are resolved by parse_args."""
    p = argparse.ArgumentParser(prog=ENTRY.get(script), usage=usage(script), allow_abbrev=False)
    add_data_flags(p.add_argument_group("data"))
    add_model_flags(p.add_argument_group("model"))
    add_glance_focus_arguments(
        p.add_argument_group("model: glance and focus networks (methods with policies)")
    )
    for name in method_names():
        method = get_method(name)
        if method.add_arguments is not None:
            method.add_arguments(p.add_argument_group(f"model: {name} (--model {name})"))
    for wrapper in wrappers():
        if wrapper.add_arguments is not None:
            wrapper.add_arguments(p.add_argument_group(wrapper.title))
    add_optim_flags(p.add_argument_group("optimisation"))
    add_run_flags(p.add_argument_group("run"))
    add_distributed_flags(p.add_argument_group("distributed / device"))
    finish_parser(p, script)
    return p


def parse_args(argv: list[str] | None = None, script: str = "main") -> argparse.Namespace:
    """Returns the validated Namespace with presets applied and store_name / run_dir / log_dir derived."""
    if script not in SCRIPTS:
        raise ValueError(f"script must be one of {SCRIPTS}, got {script!r}")
    parser = build_parser(script)
    argv = translate_argv(sys.argv[1:] if argv is None else list(argv), parser)
    args = parser.parse_intermixed_args(argv)
    auto = args.resume == AUTO
    if auto:
        args.resume = auto_resume_path(args, parser, script)
    resolve_args(args, parser, script)
    args.resume_auto = auto
    if args.print_config:
        print_config(args, parser)
        parser.exit(0)
    return args


def auto_resume_path(args: argparse.Namespace, parser: argparse.ArgumentParser, script: str) -> str | None:
    """`--resume auto`: returns the run folder's checkpoint (the folder the same flags without --resume name)
    when it exists, else None (a fresh start). The run then resumes it as `--resume PATH` would: a model flag that
    differs from the checkpoint's model_config is an error naming the flag."""
    if script != "main" or args.evaluate:
        parser.error("--resume auto only applies to training (main.py without --evaluate)")
    fresh = copy.deepcopy(args)
    fresh.resume = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resolve_args below warns once, for the run
        resolve_args(fresh, parser, script)
    path = os.path.join(fresh.run_dir, CKPT_NAME)
    return path if os.path.isfile(path) else None


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
    source, note = find_source(args)  # the checkpoint whose model_config the run builds, if any
    why_not = adopts(source, args) if source is not None else "no model_config"
    if source is not None and why_not is None:
        saved_model = source.saved.get("model", DEFAULT_METHOD)
        if saved_model not in method_names():
            err(
                f"{source.path} holds a {saved_model!r} model, not a method of this framework ({', '.join(method_names())})"
            )
        if "model" in args.explicit and args.model != saved_model:
            err(
                f"--model {args.model}, but {source.path} holds a {saved_model} model (its model_config): leave "
                "--model out to evaluate it"
            )
        args.model = saved_model
    args.model = args.model or DEFAULT_METHOD
    method = get_method(args.model)
    _check_scope(args, err, method)
    before = argparse.Namespace(**vars(args))
    given: set[str] | None = None  # None: the model comes from the flags alone
    args.config_notes = [note] if note else []
    for wrapper in wrappers():  # e.g. ResKD's recipe for --distill, over the method's
        for key, value in (wrapper.recipe(args) if wrapper.recipe else {}).items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
    try:
        if method.resolve_args is not None:
            method.resolve_args(args)
        if source is not None and why_not is None:
            cfg, given, args.config_notes = resolve_from_checkpoint(
                args, before, method, source, err, lambda dest: flag_name(parser, dest)
            )
        else:
            cfg = method.config_cls.from_args(args)
            if source is not None:
                args.config_notes = tune_notes(source, cfg, why_not)
    except ValueError as exc:
        err(str(exc))
    for f in dataclasses.fields(cfg):
        if f.name in ("num_classes", "x3d_overrides", "dataset"):
            continue
        if getattr(args, f.name, None) is None or (given is not None and f.name not in given):
            setattr(args, f.name, getattr(cfg, f.name))
    args.model_config = cfg.to_dict()  # what build() builds, with the dataset's class count
    recipe = cfg.run_recipe()
    for key, value in {**recipe, **RUN_DEFAULTS}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for key in sorted(set(args.explicit) & set(WIDTH_FLAGS)):
        field, kind = WIDTH_FLAGS[key]
        if not getattr(args, field).startswith(kind):
            kinds = " or ".join(kind) if isinstance(kind, tuple) else kind
            err(f"--{key} applies to a {kinds} network, but --{field} is {getattr(args, field)}")
    for key in sorted(set(args.explicit) & set(NO_OPS)):
        warnings.warn(f"--{key} does nothing: {NO_OPS[key]}", stacklevel=2)
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


def flag_name(parser: argparse.ArgumentParser, dest: str) -> str:
    """Returns the first long option string of the flag storing `dest` (`--batch-size` for batch_size), or
    `--dest` when no flag stores it."""
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
    return f"--{dest}"


def _check_scope(args: argparse.Namespace, err, method) -> None:
    """Rejects flags that the chosen dataset / method / script would silently ignore."""
    explicit = set(args.explicit)
    if "data_dir" in explicit and args.dataset not in AN_FAMILY:
        err(
            f"--data_dir is only used by the AN datasets ({', '.join(AN_FAMILY)}), not by {args.dataset} "
            "(use --root_dataset)"
        )
    try:
        check_preset_flags(args.dataset, explicit)
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
    if args.override_config and not args.resume:
        err("--override_config only applies with --resume CKPT (its model_config against the flags)")
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
            "alone (its model_config holds its --student_size)"
        )
    if "paramwise" in explicit and not training:
        err("--paramwise only applies to training (main.py without --evaluate)")
    if args.sync_bn and not training:
        err("--sync_bn only applies to training (main.py without --evaluate)")
    if args.script != "early_exit" and "criteria" in explicit:
        err("--exit_criterion (--criteria) is only used by test_early_exit.py")
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
    if args.warmup_epochs < 0 or args.warmup_start_lr < 0:
        err(
            f"--warmup_epochs and --warmup_start_lr must be >= 0, got {args.warmup_epochs}, {args.warmup_start_lr}"
        )
    if args.randaugment not in (None, "none"):
        try:
            parse_randaugment(args.randaugment)
        except ValueError as exc:
            err(f"--randaugment: {exc}")
    if not 0.0 <= args.grayscale <= 1.0:
        err(f"--grayscale is a probability in [0, 1], got {args.grayscale}")
    if args.optimizer == "adamw":
        for key in sorted({"momentum", "dampening", "nesterov"} & set(args.explicit)):
            err(f"--{key} applies to --optimizer sgd, not adamw (betas 0.9 / 0.999)")
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
