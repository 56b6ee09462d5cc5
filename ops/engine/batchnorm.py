"""BatchNorm across processes: `--sync_bn` (SyncBatchNorm over the global batch) and the check that a BatchNorm in
training mode sees more than one value per channel (one video per GPU and a BatchNorm1d on (B, C) features, as the
AdaFocus V2 Sth-Sth policy has, would otherwise stop in the middle of the first step with torch's bare message)."""

from __future__ import annotations

import argparse

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ops.engine.distributed import DistInfo


def sync_batchnorm(
    model: nn.Module, args: argparse.Namespace, info: DistInfo
) -> tuple[nn.Module, str | None]:
    """Returns (model with every BatchNorm converted to SyncBatchNorm when --sync_bn and several processes, a
    note for the log or None). Parameters are kept (the optimizer's references stay valid), state_dict keys too.
    Raises ValueError for --sync_bn on CPU processes (SyncBatchNorm runs on GPUs only)."""
    if not getattr(args, "sync_bn", False):
        return model, None
    if not info.distributed:
        return model, "--sync_bn: one process, its BatchNorm statistics are already those of the whole batch"
    if info.device.type != "cuda":
        raise ValueError(
            "--sync_bn needs CUDA processes (torch's SyncBatchNorm runs on GPUs only); on CPU use a per-process "
            "batch of at least 2 videos"
        )
    count = sum(isinstance(m, _BatchNorm) for m in model.modules())
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, f"--sync_bn: {count} BatchNorm layers synchronised over {info.world_size} processes"


def check_batch_statistics(model: nn.Module, batch_per_process: int, info: DistInfo) -> None:
    """Makes every BatchNorm of `model` check, at its first call in training mode, that it sees more than one
    value per channel; if not it raises ValueError naming the layer, the per-process batch and the remedy.
    Each check removes itself once passed (the per-process batch is fixed: drop_last)."""
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm) and not (info.distributed and isinstance(module, nn.SyncBatchNorm)):
            _add_check(module, name, batch_per_process, info)


def _add_check(module: nn.Module, name: str, batch: int, info: DistInfo) -> None:
    def check(mod: nn.Module, inputs: tuple) -> None:
        if not mod.training:
            return
        x = inputs[0]
        if x.numel() // max(x.shape[1], 1) <= 1:
            remedy = f"--batch-size {2 * info.world_size} or more (at least 2 videos per process)"
            if info.world_size > 1:
                remedy += f", or --sync_bn on GPUs (statistics over the {info.world_size} processes' videos)"
            raise ValueError(
                f"{name} ({type(mod).__name__}) sees one value per channel in training: {batch} video(s) per "
                f"process give it a single row of shape {tuple(x.shape)}. Use {remedy}"
            )
        handle.remove()

    handle = module.register_forward_pre_hook(check)
