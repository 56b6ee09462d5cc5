"""Set-up shared by training and evaluation: the dataset config, the model on its device, the judged metric."""

from __future__ import annotations

import argparse
import warnings

from torch import nn

from archs.tadaconv import calibrate_activations
from models import ModelConfig, build_model, config_from_args, config_from_dict
from ops.data.dataset_config import CUSTOM, DatasetConfig, custom_config, get_dataset_config, resolve_root
from ops.engine import distributed as D
from ops.engine.backends import configure_backends
from ops.engine.checkpoint import load_checkpoint, tune_from


def load_dataset_config(args: argparse.Namespace) -> DatasetConfig:
    """Returns the dataset's config; the built-in synthetic dataset is generated on first use; a custom one
    comes from its files (--categories, --train_list, --val_list, --frames_root | --video_root)."""
    if args.dataset == CUSTOM:
        return custom_config(
            categories=args.categories,
            train_list=args.train_list,
            val_list=args.val_list,
            frames_root=args.frames_root,
            video_root=args.video_root,
            image_tmpl=args.image_tmpl,
            multi_label=bool(args.multi_label),
        )
    if args.dataset == "synthetic":
        from ops.data.synthetic import ensure_current

        ensure_current(
            resolve_root(args.root_dataset), progress=True
        )  # regenerated if an older version made it
    return get_dataset_config(args.dataset, args.root_dataset, args.data_dir)


def build(args: argparse.Namespace, info: D.DistInfo, config: DatasetConfig) -> tuple[nn.Module, ModelConfig]:
    """Returns the model on the device (pretrained backbones unless resuming/evaluating) and its config: the
    config resolved by ops.opts.parse_args (`args.model_config`: from the flags, or from the checkpoint of
    --resume / --tune_from, see ops/model_source.py) with the dataset's class count."""
    cfg = model_config(args, config)
    model = build_model(cfg)
    if not (args.resume or args.evaluate):
        model.load_pretrained()
    if args.tune_from:
        tune_from(args.tune_from, model, verbose=info.is_main, trust=args.trust_checkpoint)
    if getattr(args, "distill", None):
        model = attach_distill_teacher(args, model, cfg, verbose=info.is_main)
    if args.policy != "learned":  # evaluation control (opts allows it only for methods with policies)
        model.policy = args.policy
    if getattr(args, "tada_activations", False) and not calibrate_activations(model):
        warnings.warn(
            f"--tada_activations does nothing: --model {cfg.model} has no TAdaConv layer", stacklevel=2
        )
    return model.to(info.device), cfg


def model_config(args: argparse.Namespace, config: DatasetConfig) -> ModelConfig:
    """Returns the run's ModelConfig for the dataset `config`; a checkpoint's model of another class count stops
    with both counts and the file."""
    values = getattr(args, "model_config", None)
    if values is None:  # a Namespace not made by parse_args
        return config_from_args(args, num_classes=config.num_classes)
    saved = values.get("num_classes")
    if saved is not None and saved != config.num_classes:
        raise ValueError(
            f"{args.resume}: the checkpoint's model has {saved} classes, the {args.dataset} dataset "
            f"{config.num_classes}; evaluate it on its own dataset (or fine-tune it with --tune_from)"
        )
    return config_from_dict({**values, "num_classes": config.num_classes})


def attach_distill_teacher(
    args: argparse.Namespace, model: nn.Module, cfg: ModelConfig, verbose: bool
) -> nn.Module:
    """Returns `model` as the student of the frozen teacher of `--distill` (models/reskd/): the teacher's network
    is read from its checkpoint (opened with weights_only unless --trust_checkpoint)."""
    from models.reskd import DistillConfig, attach_teacher
    from ops.engine.checkpoint import read_checkpoint

    kd = DistillConfig(
        teacher=args.distill,
        loss=args.kd_loss or "mse",
        weight=args.kd_weight,
        temperature=args.kd_T,
        teacher_bn=args.teacher_bn or "train",
    )
    ckpt = read_checkpoint(args.distill, trust=args.trust_checkpoint)
    model = attach_teacher(model, ckpt, args.distill, kd, cfg)
    if verbose:
        print(f"=> distilling from {args.distill}: {model.summary()}")
    return model


def metric_name(config: DatasetConfig) -> str:
    """The metric a run is judged by: mAP on multi-label data (ActivityNet, FCVID), else top-1."""
    return "mAP" if config.multi_label else "top1"


def setup_eval(args: argparse.Namespace) -> tuple[D.DistInfo, DatasetConfig, nn.Module, ModelConfig]:
    """Returns (DistInfo, dataset config, model with the `--resume` checkpoint loaded on its device, ModelConfig)."""
    info = D.init(args)
    print_main(configure_backends(args, info.device, training=False), info)
    D.seed_everything(args.seed if args.seed is not None else 0, info.rank)
    config = load_dataset_config(args)
    model, cfg = build(args, info, config)
    load_checkpoint(args.resume, model, trust=args.trust_checkpoint)
    return info, config, model, cfg


def print_main(line: str | None, info: D.DistInfo) -> None:
    """Prints `line` (if any) on the main process only."""
    if line and info.is_main:
        print(line, flush=True)
