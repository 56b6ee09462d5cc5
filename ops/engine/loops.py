"""The loops every entry script shares: data loaders, one training epoch, and prediction over a split.

The loops are generic: what differs between methods lives in the model (models.core.VideoModel: forward returns
a dict with at least `logits` (B, C) and `exit_logits` (B, E, C); its criterion, layout, partial BN, AMP scope).
Frames travel as uint8 from the loader to the device and are normalised there, once per batch.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from models import InputSpec
from ops.data.dataset import VideoDataset, make_loader
from ops.data.dataset_config import DatasetConfig
from ops.data.transforms import normalize
from ops.engine.distributed import (
    DistInfo,
    all_reduce_sum,
    gather_in_sampler_order,
    split_batch,
    split_workers,
    unwrap,
)
from ops.engine.metrics import accuracy, mean_average_precision
from ops.engine.optim import adjust_learning_rate, autocast_context, backward_step, lr_at
from ops.engine.runlog import RunLogger


def build_dataset(
    args: argparse.Namespace,
    config: DatasetConfig,
    split: str,
    layout: tuple[int, int],
    *,
    train: bool | None = None,
    test_crops: int = 1,
    num_clips: int = 1,
    spec: InputSpec | None = None,
) -> VideoDataset:
    """Returns the split's VideoDataset with the model's input layout (glance frames, candidate frames) and input
    spec (temporal sampling, training crop unless --train_crop, evaluation scale; default: InputSpec())."""
    list_file = {"train": args.train_list, "val": args.val_list}[split]
    spec = spec or InputSpec()
    num, den = spec.eval_scale
    return VideoDataset(
        config,
        split,
        train=train,
        num_glance=layout[0],
        num_candidates=layout[1],
        input_size=args.input_size,
        test_crops=test_crops,
        num_clips=num_clips,
        list_file=list_file,
        video_root=args.video_root,
        video_ext=args.video_ext,
        on_bad_video=args.on_bad_video,
        resize_backend=args.resize_backend or "pil",
        shared_crop=bool(args.shared_crop),
        scale_size=args.input_size * num // den,
        sampling=spec.sampling,
        clip_stride=spec.clip_stride,
        train_crop=getattr(args, "train_crop", None) or spec.train_crop,
    )


def build_loader(
    dataset: VideoDataset, args: argparse.Namespace, info: DistInfo, *, shuffle: bool, drop_last: bool = False
) -> DataLoader:
    """Returns a DataLoader with the per-process batch (global batch / world size) and worker share.

    A `torch.Generator` owned by the loader drives shuffling and worker seeds; `seed_epoch` reseeds it so that
    a run resumed at epoch e draws exactly what an uninterrupted run drew there."""
    batch = split_batch(args.batch_size, info.world_size)
    workers = split_workers(args.workers, info.local_world_size)
    generator = torch.Generator()
    if info.distributed:
        sampler = DistributedSampler(
            dataset, info.world_size, info.rank, shuffle=shuffle, seed=args.seed or 0, drop_last=drop_last
        )
    else:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    return make_loader(
        dataset,
        batch,
        sampler=sampler,
        workers=workers,
        drop_last=drop_last,
        pin_memory=info.device.type == "cuda",
        generator=generator,
    )


def seed_epoch(loader: DataLoader, epoch: int, seed: int, rank: int = 0) -> None:
    """Makes the loader's randomness (order, crops, frame sampling) a function of (seed, epoch, rank) only."""
    key = (seed * 1000 + epoch) * 1000 + rank  # ranks draw different augmentations
    loader.generator.manual_seed(key)
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    if loader.num_workers == 0:  # in-process loading: the dataset's own generator
        loader.dataset.seed(key)


def input_spec(model: nn.Module) -> InputSpec:
    """Returns the input spec of a (possibly wrapped) model: how it wants its frames sampled and normalised."""
    inner = unwrap(model)
    return inner.input_spec(inner.cfg) if hasattr(inner, "input_spec") else InputSpec()


def to_input(frames: torch.Tensor, device: torch.device, spec: InputSpec | None = None) -> torch.Tensor:
    """uint8 (B, [V,] T, 3, H, W) on the host -> normalised float32 on `device` (views folded into the batch),
    with the spec's mean, std, pixel scale and channel order (default: ImageNet RGB)."""
    x = frames.to(device, non_blocking=True)
    if x.dim() == 6:
        x = x.flatten(0, 1)
    if spec is None:
        return normalize(x)
    return normalize(x, spec.mean, spec.std, spec.pixel_scale, spec.bgr)


def eval_amp(args: argparse.Namespace) -> str:
    """Mixed precision of evaluation: float32 as the originals, unless --amp was given explicitly."""
    return args.amp if "amp" in args.explicit else "none"


def train_one_epoch(
    model: nn.Module,
    criterion,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    args: argparse.Namespace,
    info: DistInfo,
    epoch: int,
    logger: RunLogger,
    scaler=None,
) -> dict[str, float]:
    """Runs one epoch; returns the epoch means of the loss, its parts and top-1/top-5 (policy branch), over ranks.

    Every `args.print_freq` iterations a line with the running means goes to the log."""
    model.train()  # the model keeps its partial-BN layers frozen itself
    spec = input_spec(model)
    sums: dict[str, float] = {}
    seen = 0
    bar = logger.progress(loader, desc=f"train {epoch}", leave=False)
    for step, (frames, target, _) in enumerate(bar):
        if args.lr_per_step:
            adjust_learning_rate(optimizer, epoch, args, step, len(loader))
        x = to_input(frames, info.device, spec)
        target = target.to(info.device, non_blocking=True)
        own_step = getattr(unwrap(model), "training_step", None)  # a VideoModel's own step (e.g. PPO)
        own = own_step(x, target, optimizer) if own_step is not None else None  # None: the plain step
        if own is None:
            optimizer.zero_grad(set_to_none=True)
            with autocast_context(info.device, args.amp):
                outputs = model(x)
                loss, parts = criterion(outputs, target)
        else:
            outputs, loss, parts = own
        if not math.isfinite(loss.item()):
            raise FloatingPointError(
                f"epoch {epoch}: loss is {loss.item()} (parts {parts}); lower --lr or check the data"
            )
        if own is None:
            backward_step(loss, optimizer, model, args.clip_gradient, scaler)
        n = target.shape[0]
        top1, top5 = accuracy(outputs["logits"].detach().float(), target, (1, 5))
        for key, value in {"loss": loss.item(), **parts, "top1": top1, "top5": top5}.items():
            sums[key] = sums.get(key, 0.0) + float(value) * n
        seen += n
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}", top1=f"{sums['top1'] / seen:.1f}")
        if (step + 1) % args.print_freq == 0:
            lr = lr_at(epoch, args, step, len(loader))
            logger.log_step(epoch * len(loader) + step + 1, {"loss": loss.item(), **parts}, lr)
            logger.info(
                f"Epoch: [{epoch}][{step + 1}/{len(loader)}] lr {lr:.5f} loss {loss.item():.4f} "
                f"({sums['loss'] / seen:.4f}) top1 {top1:.2f} ({sums['top1'] / seen:.2f}) "
                f"top5 {top5:.2f} ({sums['top5'] / seen:.2f})"
            )
    keys = sorted(sums)
    totals = all_reduce_sum(torch.tensor([sums[k] for k in keys] + [seen], dtype=torch.float64), info)
    return {k: float(v / totals[-1]) for k, v in zip(keys, totals[:-1])}


@dataclass
class Predictions:
    """Per-video results of a split, in dataset order: logits (n, C) and exit_logits (n, E, C), averaged over
    views; target (n,) or (n, 3); index (n,) positions in the list file."""

    logits: torch.Tensor
    exit_logits: torch.Tensor
    target: torch.Tensor
    index: torch.Tensor
    seconds: float


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: DataLoader,
    args: argparse.Namespace,
    info: DistInfo,
    logger: RunLogger,
    desc: str = "val",
) -> Predictions:
    """Runs the model in eval mode over a loader; views of a video are averaged (raw logits, as the originals)."""
    model.eval()
    spec = input_spec(model)
    parts: dict[str, list[torch.Tensor]] = {"logits": [], "exit_logits": [], "target": [], "index": []}
    start = time.perf_counter()
    for frames, target, index in logger.progress(loader, desc=desc, leave=False):
        views = frames.shape[1] if frames.dim() == 6 else 1
        with autocast_context(info.device, eval_amp(args)):
            out = model(to_input(frames, info.device, spec))
        b = frames.shape[0]
        parts["logits"].append(out["logits"].float().view(b, views, -1).mean(1))
        exits = out["exit_logits"].float()
        parts["exit_logits"].append(exits.view(b, views, *exits.shape[1:]).mean(1))
        parts["target"].append(target.to(info.device))
        parts["index"].append(torch.as_tensor(index, device=info.device))
    seconds = time.perf_counter() - start
    n = len(loader.dataset)
    merged = {k: gather_in_sampler_order(torch.cat(v), info, n).cpu() for k, v in parts.items()}
    return Predictions(seconds=seconds, **merged)


def summarize(pred: Predictions, multi_label: bool) -> dict[str, float]:
    """Returns top-1/top-5 of the final logits, the glance-exit top-1, and mAP for multi-label data."""
    top1, top5 = accuracy(pred.logits, pred.target, (1, 5))
    metrics = {"top1": top1, "top5": top5}
    if pred.exit_logits.shape[1] > 1:
        metrics["glance_top1"] = accuracy(pred.exit_logits[:, 0], pred.target, (1,))[0]
    if multi_label:
        metrics["mAP"] = mean_average_precision(pred.logits, pred.target)
    return metrics


def save_scores(path: str, pred: Predictions, ids: list[str]) -> None:
    """Writes per-video arrays: logits (videos x classes), labels, ids (list-file paths), exit_logits."""
    np.savez(
        path,
        logits=pred.logits.numpy(),
        labels=pred.target.numpy(),
        ids=np.asarray(ids),
        exit_logits=pred.exit_logits.numpy(),
    )
