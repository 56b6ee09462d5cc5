"""Optimiser, learning-rate schedule, gradient clipping and mixed-precision helpers.

As the originals: SGD with momentum (dampening and Nesterov where a method's original used them), or AdamW
(`--optimizer adamw`, TAdaConvNeXtV2), over the model's param groups, each group's lr = lr_e * lr_mult and
weight_decay = wd * decay_mult (the model's groups say which parameters have decay_mult 0: none for most methods,
norm weights and biases for TAdaConv and ResKD's `--paramwise rkd`). lr_e follows a cosine
`0.5 * lr * (1 + cos(pi * t / epochs))` or a step schedule `lr * 0.1 ** k`, k = number of `--lr_steps` milestones
with epoch >= milestone; t is the epoch, or the fractional epoch `epoch + step / steps_per_epoch` with
`--lr_per_step` (TAdaConv). `--warmup_epochs W` (any method) replaces the first W epochs by a linear ramp from
`--warmup_start_lr` to the schedule's value at W, `start + t * (lr_e(W) - start) / W` (TAdaConv's rule, from
SlowFast's `get_lr_at_epoch`: the cosine keeps its period of `epochs`, the ramp ends on it).
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adamw")


def build_optimizer(param_groups: Iterable[dict], args: argparse.Namespace) -> torch.optim.Optimizer:
    """Returns SGD(momentum=args.momentum, wd=args.weight_decay, dampening=args.dampening (0),
    nesterov=args.nesterov (False)), or with args.optimizer 'adamw' AdamW(betas (0.9, 0.999), eps 1e-8, decoupled
    wd, as TAdaConv's), over `param_groups` (dicts: params, lr_mult, decay_mult, name).

    Groups without trainable parameters are kept (empty) so the layout, and thus resumed state, stays stable."""
    groups = []
    for i, g in enumerate(param_groups):
        params = [p for p in g["params"] if p.requires_grad]
        lr_mult, decay_mult = float(g.get("lr_mult", 1.0)), float(g.get("decay_mult", 1.0))
        groups.append(
            {
                "params": params,
                "lr_mult": lr_mult,
                "decay_mult": decay_mult,
                "name": g.get("name", f"group{i}"),
                "lr": args.lr * lr_mult,
                "weight_decay": args.weight_decay * decay_mult,
            }
        )
    if not any(g["params"] for g in groups):
        raise ValueError("build_optimizer: no trainable parameters in the param groups")
    kind = getattr(args, "optimizer", None) or "sgd"
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), weight_decay=args.weight_decay)
    if kind != "sgd":
        raise ValueError(f"unknown --optimizer {kind!r} (choose from {', '.join(OPTIMIZERS)})")
    return torch.optim.SGD(
        groups,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        dampening=getattr(args, "dampening", None) or 0.0,
        nesterov=bool(getattr(args, "nesterov", False)),
    )


_RKD_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)
_RKD_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


def rkd_param_groups(model: nn.Module, groups: Iterable[dict]) -> list[dict]:
    """Returns ResKD's split (`--paramwise rkd`, its RKDOptimizerConstructor) of each of the model's groups into
    `{name}.weight` (conv / linear weights: lr_mult, decay_mult), `{name}.bias` (their biases: 2 x lr_mult, no
    decay) and `{name}.norm` (BatchNorm / GroupNorm affine: lr_mult, no decay); a parameter of any other module
    kind is refused, as the original does. Parameters outside `groups` (a teacher) stay out."""
    kind: dict[int, str] = {}
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            if isinstance(module, _RKD_NORMS):
                kind[id(p)] = "norm"
            elif isinstance(module, _RKD_LAYERS) and p_name in ("weight", "bias"):
                kind[id(p)] = p_name
            else:
                kind.setdefault(id(p), f"{type(module).__name__} ({mod_name or 'model'}.{p_name})")
    out = []
    for i, g in enumerate(groups):
        name, lr_mult = g.get("name", f"group{i}"), float(g.get("lr_mult", 1.0))
        split: dict[str, list] = {"weight": [], "bias": [], "norm": []}
        for p in g["params"]:
            k = kind.get(id(p), "a parameter outside the model's modules")
            if k not in split:
                raise ValueError(
                    f"--paramwise rkd: {k} is neither a conv/linear layer nor a BatchNorm/GroupNorm"
                )
            split[k].append(p)
        out.append(
            {"params": split["weight"], "lr_mult": lr_mult, "decay_mult": 1.0, "name": f"{name}.weight"}
        )
        out.append(
            {"params": split["bias"], "lr_mult": 2 * lr_mult, "decay_mult": 0.0, "name": f"{name}.bias"}
        )
        out.append({"params": split["norm"], "lr_mult": lr_mult, "decay_mult": 0.0, "name": f"{name}.norm"})
    return out


def model_param_groups(model: nn.Module, args: argparse.Namespace) -> list[dict]:
    """Returns the optimizer groups of `model`: its own (`model.param_groups()`), or ResKD's split with
    `--paramwise rkd`."""
    groups = model.param_groups()
    if getattr(args, "paramwise", None) == "rkd":
        return rkd_param_groups(model, groups)
    return groups


def lr_at(
    epoch: int, args: argparse.Namespace, step: int | None = None, steps_per_epoch: int | None = None
) -> float:
    """Returns the base lr_e for `epoch` (0-based); with args.lr_per_step, step and steps_per_epoch, the cosine
    and the warm-up use the fractional epoch epoch + step / steps_per_epoch (the step schedule the epoch)."""
    t = float(epoch)
    if getattr(args, "lr_per_step", False) and step is not None and steps_per_epoch:
        t += step / steps_per_epoch
    warmup = float(getattr(args, "warmup_epochs", None) or 0.0)
    if t < warmup:
        start = float(args.warmup_start_lr)
        return start + t * (_scheduled(warmup, warmup, args) - start) / warmup
    return _scheduled(t, epoch, args)


def _scheduled(t: float, epoch: float, args: argparse.Namespace) -> float:
    """The schedule without warm-up: cosine at the (fractional) epoch t, step at the epoch."""
    if args.lr_type == "step":
        passed = sum(epoch >= m for m in args.lr_steps)
        return args.lr * 0.1**passed
    if args.lr_type != "cos":
        raise ValueError(f"unknown --lr_type {args.lr_type!r} (cos or step)")
    return 0.5 * args.lr * (1.0 + math.cos(math.pi * t / args.epochs))


def adjust_learning_rate(
    optimizer: torch.optim.Optimizer,
    epoch: int,
    args: argparse.Namespace,
    step: int | None = None,
    steps_per_epoch: int | None = None,
) -> float:
    """Sets every group's lr = lr_e * lr_mult and weight_decay = wd * decay_mult (a group with `fixed_lr` keeps
    its own); returns lr_e."""
    lr = lr_at(epoch, args, step, steps_per_epoch)
    for g in optimizer.param_groups:
        if g.get("fixed_lr"):
            continue
        g["lr"] = lr * g.get("lr_mult", 1.0)
        g["weight_decay"] = args.weight_decay * g.get("decay_mult", 1.0)
    return lr


def clip_gradients(
    model: nn.Module | Iterable[torch.Tensor],
    max_norm: float | None,
    scaler=None,
    optimizer: torch.optim.Optimizer | None = None,
) -> float | None:
    """Unscales the grads first when a GradScaler is active (needs `optimizer`), then clips their global L2 norm
    to max_norm; returns the norm before clipping (None when max_norm is None)."""
    if scaler is not None and scaler.is_enabled():
        if optimizer is None:
            raise ValueError("clip_gradients: pass the optimizer so the scaler can unscale its gradients")
        scaler.unscale_(optimizer)
    if max_norm is None:
        return None
    params = model.parameters() if isinstance(model, nn.Module) else model
    return float(nn.utils.clip_grad_norm_(params, max_norm))


def _device_type(device: torch.device | str) -> str:
    return torch.device(device).type


def amp_dtype(device: torch.device | str, amp: str | None) -> torch.dtype | None:
    """Returns the autocast dtype (bf16 / fp16; 'auto': by the GPU's capability) on CUDA, None on CPU or for amp
    'none'."""
    if amp in (None, "none") or _device_type(device) != "cuda":
        return None
    if amp == "auto":
        from ops.engine.backends import resolve_amp

        amp = resolve_amp(amp, torch.device(device))
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"unknown --amp {amp!r} (auto, bf16, fp16 or none)")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast_context(device: torch.device | str, amp: str | None):
    """Returns torch.autocast for bf16/fp16 on CUDA; a no-op context on CPU or when amp is 'none'."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


def make_grad_scaler(device: torch.device | str, amp: str | None) -> torch.amp.GradScaler | None:
    """Returns a GradScaler only for fp16 on CUDA (bf16 and fp32 need none), else None."""
    if amp_dtype(device, amp) == torch.float16:
        return torch.amp.GradScaler("cuda")
    return None


def backward_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    max_norm: float | None = None,
    scaler=None,
    may_step: Callable[[], bool] | None = None,
) -> float | None:
    """One update: (scaled) backward, unscale + clip, step, scaler update. Returns the grad norm if clipping.

    `may_step` (without a scaler): asked after the backward pass; False skips the update (the gradients are
    dropped). The caller zeroes the gradients before the forward pass (optimizer.zero_grad(set_to_none=True))."""
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    if scaler is None and may_step is not None and not may_step():
        optimizer.zero_grad(set_to_none=True)
        return None
    norm = clip_gradients(model, max_norm, scaler, optimizer)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return norm
