"""The loops every entry script shares: data loaders, one training epoch, and prediction over a split.

The loops are generic: what differs between methods lives in the model (models.core.VideoModel: forward returns
a dict with at least `logits` (B, C) and `exit_logits` (B, E, C); its criterion, layout, partial BN, AMP scope).
Frames travel as uint8 from the loader to the device and are normalised there, once per batch.
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from models import InputSpec
from ops.data.augment import clip_augment
from ops.data.dataset import VideoDataset, make_loader
from ops.data.dataset_config import DatasetConfig
from ops.data.transforms import HostBuffers, normalize
from ops.engine.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_sum,
    gather_flags,
    gather_in_sampler_order,
    split_batch,
    split_workers,
    unwrap,
)
from ops.engine.metrics import accuracy, fuse_views, mean_average_precision, topk_hits
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
        augment=clip_augment(
            getattr(args, "randaugment", None),
            getattr(args, "grayscale", 0.0),
            spec.mean,
            spec.pixel_scale,
            spec.bgr,
        ),
    )


def build_loader(
    dataset: VideoDataset, args: argparse.Namespace, info: DistInfo, *, shuffle: bool, drop_last: bool = False
) -> DataLoader:
    """Returns a DataLoader with the per-process batch (global batch / world size) and worker share.

    Generators owned by the loader drive shuffling and worker seeds (the dataset's epoch key, the workers' draws);
    `seed_epoch` reseeds them so that a run resumed at epoch e draws exactly what an uninterrupted run drew there."""
    batch = split_batch(args.batch_size, info.world_size)
    workers = split_workers(args.workers, info.local_world_size)
    generator = torch.Generator()
    if info.distributed:
        sampler = DistributedSampler(
            dataset, info.world_size, info.rank, shuffle=shuffle, seed=args.seed or 0, drop_last=drop_last
        )
    else:
        # The order has a generator of its own with workers: a persistent loader draws its workers' base seed
        # from `generator` at its first epoch only, which would shift the order of a resumed run's first epoch.
        order = generator if workers == 0 else torch.Generator()
        sampler = RandomSampler(dataset, generator=order) if shuffle else SequentialSampler(dataset)
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
    """Makes the loader's randomness (order, crops, frame sampling) a function of (seed, epoch, rank) only, and of
    the worker in each DataLoader worker (persistent workers are reseeded too, through the dataset)."""
    key = (seed * 1000 + epoch) * 1000 + rank  # ranks draw different augmentations
    loader.generator.manual_seed(key)
    if isinstance(loader.sampler, RandomSampler) and loader.sampler.generator is not loader.generator:
        loader.sampler.generator.manual_seed(key)
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    if loader.num_workers == 0:  # in-process loading: the dataset's own generator
        loader.dataset.seed(key)
    else:  # workers: from (key, worker id), read by each worker at its next item
        loader.dataset.set_epoch_key(key)


def input_spec(model: nn.Module) -> InputSpec:
    """Returns the input spec of a (possibly wrapped) model: how it wants its frames sampled and normalised."""
    inner = unwrap(model)
    return inner.input_spec(inner.cfg) if hasattr(inner, "input_spec") else InputSpec()


def to_input(
    frames: torch.Tensor,
    device: torch.device,
    spec: InputSpec | None = None,
    buffers: HostBuffers | None = None,
) -> torch.Tensor:
    """uint8 (B, [V,] T, 3, H, W) on the host -> normalised float32 on `device` (views folded into the batch),
    with the spec's mean, std, pixel scale and channel order (default: ImageNet RGB); on the CPU into a buffer
    recycled by `buffers` if given."""
    x = frames.to(device, non_blocking=True)
    if x.dim() == 6:
        x = x.flatten(0, 1)
    out = buffers.get(tuple(x.shape)) if buffers is not None and x.device.type == "cpu" else None
    spec = spec or InputSpec()
    return normalize(x, spec.mean, spec.std, spec.pixel_scale, spec.bgr, out)


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

    A non-finite loss or gradient: under a GradScaler (fp16) the scaler skips the step, as it does for any
    overflow (counted in `nonfinite_steps`, left out of the means; an epoch of nothing else stops the run);
    otherwise every rank learns it from one all-gather after the backward pass, before the update, and all stop
    together (FloatingPointError naming the step, the ranks, the loss parts and the batch's videos) or, with
    `--on_nonfinite skip`, all skip that update and count it. The loop's own host syncs per step: that check
    (none under a scaler); the running means are read every `args.print_freq` iterations, when a line goes to the
    log."""
    model.train()  # the model keeps its partial-BN layers frozen itself
    spec, buffers = input_spec(model), HostBuffers()
    part_sums: dict[str, float] = {}
    part_seen = 0
    skip = getattr(args, "on_nonfinite", "error") == "skip"
    # on the device: videos with a finite loss, their loss x n, top-1 hits, top-5 hits, non-finite steps
    acc = torch.zeros(5, dtype=torch.float64, device=info.device)
    bar = logger.progress(loader, desc=f"train {epoch}", leave=False)
    for step, (frames, target, index) in enumerate(bar):
        if args.lr_per_step:
            adjust_learning_rate(optimizer, epoch, args, step, len(loader))
        x = to_input(frames, info.device, spec, buffers)
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
        finite = torch.isfinite(loss.detach()).all()
        where = f"epoch {epoch} iteration {step}"
        if own is not None and scaler is None:  # the model's own step has updated already: stop
            ones = torch.ones((), dtype=torch.bool)
            _stop_if_nonfinite(*_nonfinite_ranks(finite, ones, info), info, where, loss, parts, loader, index)
        skipped = torch.zeros((), dtype=torch.float64, device=info.device)
        if own is None:
            scale = getattr(scaler, "_scale", None)
            scale = scale.clone() if scale is not None else None

            check = (finite, model, info, skip, skipped, where, logger, loss, parts, loader, index)
            may_step = functools.partial(_may_step, *check)
            backward_step(loss, optimizer, model, args.clip_gradient, scaler, may_step)
            if scale is not None and scaler._scale is not None:  # the scaler lowered its scale: it skipped
                skipped = (scaler._scale < scale).double().reshape(())
        n = target.shape[0]
        hits = topk_hits(outputs["logits"].detach().float(), target, (1, 5)).double()
        ok = finite.double()
        loss_n = torch.where(finite, loss.detach().double(), 0.0) * n
        nonfinite = torch.maximum(
            1 - ok, skipped
        )  # a non-finite loss, or an update skipped (by the scaler too)
        acc += torch.cat([(ok * n).view(1), loss_n.view(1), hits * ok, nonfinite.view(1)])
        values = {k: float(v) for k, v in parts.items()}  # the criterion's parts are host numbers already
        if all(math.isfinite(v) for v in values.values()):
            for key, value in values.items():
                part_sums[key] = part_sums.get(key, 0.0) + value * n
            part_seen += n
        if (step + 1) % args.print_freq == 0:
            seen, loss_sum, top1_sum, top5_sum, _ = acc.tolist()
            top1, top5 = (100.0 * h / n for h in hits.tolist())
            seen = max(seen, 1.0)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", top1=f"{100 * top1_sum / seen:.1f}")
            lr = lr_at(epoch, args, step, len(loader))
            logger.log_step(epoch * len(loader) + step + 1, {"loss": loss.item(), **parts}, lr)
            logger.info(
                f"Epoch: [{epoch}][{step + 1}/{len(loader)}] lr {lr:.5f} loss {loss.item():.4f} "
                f"({loss_sum / seen:.4f}) top1 {top1:.2f} ({100 * top1_sum / seen:.2f}) "
                f"top5 {top5:.2f} ({100 * top5_sum / seen:.2f})"
            )
    return _epoch_means(acc, part_sums, part_seen, info, epoch)


def _may_step(finite, model, info, skip, skipped, where, logger, loss, parts, loader, index) -> bool:
    """After the backward pass (no scaler): whether the update may run. A non-finite loss or gradient on any rank
    stops every rank (`_stop_if_nonfinite`) or, when `skip`, skips the update everywhere (`skipped` set to 1)."""
    bad_loss, bad_grads = _nonfinite_ranks(finite, _grads_finite(model), info)
    if skip:
        bad = sorted(set(bad_loss) | set(bad_grads))
        skipped.fill_(1.0 if bad else 0.0)
        if bad:
            logger.info(f"{where}: non-finite loss or gradient on rank(s) {bad}; update skipped")
        return not bad
    _stop_if_nonfinite(bad_loss, bad_grads, info, where, loss, parts, loader, index)
    return True


def _grads_finite(model: nn.Module) -> torch.Tensor:
    """Returns a 0-d bool tensor: every gradient of `model` is finite (no host sync)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.ones((), dtype=torch.bool)
    return torch.stack([torch.isfinite(g).all() for g in grads]).all()


def _nonfinite_ranks(loss_ok: torch.Tensor, grads_ok: torch.Tensor, info: DistInfo) -> tuple[list, list]:
    """Returns (ranks whose loss is not finite, ranks with a non-finite gradient): one all-gather."""
    flags = gather_flags(torch.stack([loss_ok.to(info.device), grads_ok.to(info.device)]), info).tolist()
    return [r for r, f in enumerate(flags) if not f[0]], [r for r, f in enumerate(flags) if not f[1]]


def _stop_if_nonfinite(
    bad_loss: list,
    bad_grads: list,
    info: DistInfo,
    where: str,
    loss: torch.Tensor,
    parts: dict,
    loader,
    index,
) -> None:
    """Raises FloatingPointError on every rank when a rank has a non-finite loss (else gradient), naming the
    ranks, each one's loss parts and its batch's videos (list paths)."""
    if not bad_loss and not bad_grads:
        return
    records = getattr(getattr(loader, "dataset", None), "records", None)
    ids = [records[int(i)].path if records is not None else int(i) for i in index]
    parts = ", ".join(f"{k} {float(v):.4g}" for k, v in parts.items())
    mine = f"loss {float(loss.detach().float()):.4g} (parts: {parts}), videos {ids}"
    every = all_gather_objects(mine, info)
    bad, what = (bad_loss, "the loss is") if bad_loss else (bad_grads, "a gradient is")
    detail = "; ".join(f"rank {r}: {every[r]}" for r in bad)
    raise FloatingPointError(
        f"{where}: {what} not finite on rank(s) {bad} ({detail}); every rank stops here, before the update "
        "(the last checkpoint holds the last good state). Lower --lr, check the data, or pass --on_nonfinite "
        "skip to skip such updates"
    )


def _epoch_means(
    acc: torch.Tensor, part_sums: dict[str, float], part_seen: int, info: DistInfo, epoch: int
) -> dict[str, float]:
    """Returns the epoch means over ranks (train_one_epoch's device sums and host part sums)."""
    keys = sorted(part_sums)
    host = torch.tensor([part_sums[k] for k in keys] + [part_seen], dtype=torch.float64)
    totals = all_reduce_sum(torch.cat([acc.cpu(), host]), info).tolist()
    (seen, loss_sum, top1_sum, top5_sum, nonfinite), parts, part_seen = totals[:5], totals[5:-1], totals[-1]
    if seen == 0:
        raise FloatingPointError(
            f"epoch {epoch}: the loss was not finite at any step (the GradScaler skipped them all); lower --lr "
            "or check the data"
        )
    out = {"loss": loss_sum / seen, "top1": 100 * top1_sum / seen, "top5": 100 * top5_sum / seen}
    out.update({k: v / max(part_seen, 1) for k, v in zip(keys, parts)})  # the criterion's own "loss" wins
    if nonfinite:
        out["nonfinite_steps"] = nonfinite
    return dict(sorted(out.items()))


@dataclass
class Predictions:
    """Per-video results of a split, in dataset order: logits (n, C) and exit_logits (n, E, C), fused over views
    (`view_fusion`); target (n,) or (n, 3); index (n,) positions in the list file; view_logits (n, V, C), each
    view's raw logits, when asked for (`--save_scores`)."""

    logits: torch.Tensor
    exit_logits: torch.Tensor
    target: torch.Tensor
    index: torch.Tensor
    seconds: float
    view_logits: torch.Tensor | None = None


def view_fusion(model: nn.Module, args: argparse.Namespace) -> str:
    """How the views of a video are fused: --view_fusion, else the model's original's (VideoModel.view_fusion)."""
    return getattr(args, "view_fusion", None) or getattr(unwrap(model), "view_fusion", "logits")


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: DataLoader,
    args: argparse.Namespace,
    info: DistInfo,
    logger: RunLogger,
    desc: str = "val",
) -> Predictions:
    """Runs the model in eval mode over a loader; the views of a video are fused as `view_fusion` says (raw logits
    averaged, or softmax probabilities); with args.save_scores each view's raw logits are kept too."""
    model.eval()
    spec, buffers = input_spec(model), HostBuffers()
    fusion = view_fusion(model, args)
    parts: dict[str, list[torch.Tensor]] = {"logits": [], "exit_logits": [], "target": [], "index": []}
    if getattr(args, "save_scores", None):
        parts["view_logits"] = []
    start = time.perf_counter()
    for frames, target, index in logger.progress(loader, desc=desc, leave=False):
        views = frames.shape[1] if frames.dim() == 6 else 1
        with autocast_context(info.device, eval_amp(args)):
            out = model(to_input(frames, info.device, spec, buffers))
        b = frames.shape[0]
        logits = out["logits"].float().view(b, views, -1)
        parts["logits"].append(fuse_views(logits, fusion))
        exits = out["exit_logits"].float()
        parts["exit_logits"].append(fuse_views(exits.view(b, views, *exits.shape[1:]), fusion))
        if "view_logits" in parts:
            parts["view_logits"].append(logits)
        parts["target"].append(target.to(info.device))
        parts["index"].append(torch.as_tensor(index, device=info.device))
    seconds = time.perf_counter() - start
    n = len(loader.dataset)
    merged = {k: gather_in_sampler_order(torch.cat(v), info, n).cpu() for k, v in parts.items()}
    return Predictions(seconds=seconds, **merged)


def summarize(pred: Predictions, multi_label: bool) -> dict[str, float]:
    """Returns top-1/top-5 of the final logits, the glance-exit top-1, and for multi-label data the mAP over every
    label of a video and over its first label only (`mAP_first_label`)."""
    top1, top5 = accuracy(pred.logits, pred.target, (1, 5))
    metrics = {"top1": top1, "top5": top5}
    if pred.exit_logits.shape[1] > 1:
        metrics["glance_top1"] = accuracy(pred.exit_logits[:, 0], pred.target, (1,))[0]
    if multi_label:
        metrics["mAP"] = mean_average_precision(pred.logits, pred.target)
        # AdaFocus V1's ActivityNet / Mini-Kinetics mAP counts each video's first label only
        metrics["mAP_first_label"] = mean_average_precision(pred.logits, pred.target[:, :1])
    return metrics


def save_scores(path: str, pred: Predictions, ids: list[str]) -> None:
    """Writes per-video arrays: logits (videos x classes, fused over views), labels, ids (list-file paths),
    exit_logits, and view_logits (videos x views x classes: each view's raw logits) when predicted."""
    extra = {} if pred.view_logits is None else {"view_logits": pred.view_logits.numpy()}
    np.savez(
        path,
        logits=pred.logits.numpy(),
        labels=pred.target.numpy(),
        ids=np.asarray(ids),
        exit_logits=pred.exit_logits.numpy(),
        **extra,
    )
