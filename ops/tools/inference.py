"""Inference-time helpers: BatchNorm folding, channels-last weights, and the early-exit deployment path.

`deploy_model` returns an eval-mode copy with every conv/linear + BatchNorm pair folded into one layer and the
2-D conv weights in channels-last layout (measured faster on CPU; see scripts/bench.py). `predict_with_exit`
runs the glance stage for the whole batch, decides the glance exit per video with a calibrated threshold, and
runs the policies and the focus network only for the videos that go on, so the saving of early exit shows up
in wall time. The logits equal the standard eval forward's (exit 1) or glance logits (exit 0).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from archs.tadaconv import calibrate_activations
from ops.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ops.engine.distributed import unwrap
from ops.engine.early_exit import exit_scores

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# Non-Sequential modules whose forward applies `bn(conv(.))` directly, as (conv, bn) attribute pairs, by class
# name (archs/: ResNet blocks, X3D stem / bottleneck / shortcut / head). Any other pair is left alone.
_PAIRS = {
    "ResNet": (("conv1", "bn1"),),
    "BasicBlock": (("conv1", "bn1"), ("conv2", "bn2")),
    "Bottleneck": (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
    "X3DStem": (("conv", "bn"),),
    "X3DTransform": (("a", "a_bn"), ("b", "b_bn"), ("c", "c_bn")),
    "ResBlock": (("branch1", "branch1_bn"),),
    "X3DHead": (("conv_5", "conv_5_bn"),),
}


def _inner_conv(module: nn.Module) -> nn.Module | None:
    """Returns the conv/linear layer itself, or the one a TemporalShift wraps (shift, then conv: foldable)."""
    if isinstance(module, _CONV):
        return module
    net = getattr(module, "net", None)
    return net if type(module).__name__ == "TemporalShift" and isinstance(net, _CONV) else None


@torch.no_grad()
def fold_into(layer: nn.Module, bn: nn.Module) -> None:
    """Folds eval BatchNorm `bn` into the conv/linear `layer` before it, in place: bn(layer(x)) = layer'(x)"""
    scale = bn.running_var.add(bn.eps).rsqrt()
    if bn.affine:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.affine:
        shift = shift + bn.bias
    w = layer.weight
    layer.weight = nn.Parameter(w * scale.view(-1, *([1] * (w.dim() - 1))).to(w.dtype))
    bias = shift if layer.bias is None else layer.bias * scale + shift
    layer.bias = nn.Parameter(bias.to(w.dtype))


def fold_batchnorm(model: nn.Module) -> int:
    """Folds every conv/linear + BatchNorm pair of an eval model in place (the BN becomes nn.Identity);
    returns the number of folded pairs. Pairs: consecutive entries of nn.Sequential and those of `_PAIRS`."""
    folded = 0
    for module in list(model.modules()):
        pairs: list[tuple[str, str]] = []
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            pairs = list(zip(names[:-1], names[1:]))
        pairs += list(_PAIRS.get(type(module).__name__, ()))
        for conv_name, bn_name in pairs:
            layer = _inner_conv(getattr(module, conv_name, None))
            bn = getattr(module, bn_name, None)
            if layer is None or not isinstance(bn, _BN) or bn.training or bn.running_var is None:
                continue
            fold_into(layer, bn)
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded


def to_channels_last(model: nn.Module, conv2d: bool = True, conv3d: bool = False) -> nn.Module:
    """Puts the weights of every Conv2d (`conv2d`) / Conv3d (`conv3d`) in channels-last layout in place; those
    convolutions then produce channels-last maps, which oneDNN runs faster on CPU. Returns `model`."""
    for m in model.modules():
        if conv2d and isinstance(m, nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
        elif conv3d and isinstance(m, nn.Conv3d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def deploy_model(
    model: nn.Module,
    *,
    fold_bn: bool = True,
    channels_last: bool = True,
    channels_last_3d: bool = False,
    fuse: bool = False,
    tada_activations: bool = True,
) -> nn.Module:
    """Returns an eval-mode deep copy of `model` prepared for inference (BN folded, channels-last weights;
    `fuse`: conv + ReLU / ReLU6 / residual add as oneDNN post-ops on the CPU, ops/tools/fusion.py, which
    needs `fold_bn`; `tada_activations`: every TAdaConv2d calibrates its activations instead of building
    per-frame weights, `TAdaConv2d.calibrate_activations`: the UA-E3D-TAda pair of scripts/bench.py at batch 1
    took 0.83 instead of 2.7 CPU seconds, its TAda2D-R50 baseline 1.3 instead of 2.1, on 2 threads); `model`
    itself is not changed. Outputs equal the original's eval outputs up to float rounding."""
    model = copy.deepcopy(unwrap(model)).eval()
    if tada_activations:
        calibrate_activations(model)
    if fold_bn:
        fold_batchnorm(model)
    if fuse:
        from ops.tools.fusion import fuse_conv_activations, fusion_available

        if not fold_bn or not fusion_available():
            raise ValueError("fuse needs fold_bn and a torch build with oneDNN (torch.backends.mkldnn)")
        fuse_conv_activations(model)
    return to_channels_last(model, conv2d=channels_last, conv3d=channels_last_3d)


def normalize_frames(
    x: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """Returns float32 `(x.float() / 255 - mean) / std` of uint8 x (..., 3, H, W), bit for bit equal to
    ops.data.transforms.normalize, computed in place on one buffer: on CPU the page faults of three full-size
    temporaries cost about as much as the arithmetic."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(3, 1, 1)
    y = x.to(torch.float32, memory_format=torch.contiguous_format, copy=True)  # never alias a float input
    return y.div_(255).sub_(m).div_(s)


def glance_exit_mask(
    glance_logits: torch.Tensor, threshold: float, criterion: str = "confidence"
) -> torch.Tensor:
    """Returns a bool mask (B,) of the videos whose glance score (ops.engine.early_exit.exit_scores) >= threshold."""
    scores = exit_scores(glance_logits.unsqueeze(1), criterion)[:, 0]
    return (scores >= threshold).to(glance_logits.device)


@torch.inference_mode()
def predict_with_exit(
    model: nn.Module,
    x: torch.Tensor,
    thresholds: torch.Tensor | list[float],
    criterion: str = "confidence",
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Early-exit inference of a Uni-AdaFocus model on frames x (B, T, 3, S, S); returns (logits (B, C),
    exit_index (B,) long).

    `thresholds` (E,) as `ops.engine.early_exit.find_thresholds` gives them (the last one is -1e8: everybody exits).
    Videos whose glance score reaches thresholds[0] exit at 0 with the glance logits and never run the
    policies or the focus net (the batch is split). The others run the full model; for 'an' (K+1 exits) the
    first later exit whose threshold is met is reported with its logits (same choice as the offline sweep),
    though these videos have computed all K focus frames. `prepare` (e.g. `normalize_frames` for uint8 x) is
    applied to the used frames only (see `UniAdaFocus.glance_stage`).
    """
    model = unwrap(model)
    th = torch.as_tensor(thresholds, dtype=torch.float32).flatten().cpu()
    num_exits = model.num_exits
    if model.training or th.numel() != num_exits:
        raise ValueError(
            f"predict_with_exit needs an eval-mode model and {num_exits} thresholds, got "
            f"training={model.training} and {th.numel()} thresholds"
        )
    state = model.glance_stage(x, prepare)
    glance_logits = state["glance_logits"]
    b = glance_logits.shape[0]
    exit_index = torch.zeros(b, dtype=torch.long, device=glance_logits.device)
    logits = glance_logits.clone()
    stays = ~glance_exit_mask(glance_logits, float(th[0]), criterion)
    rows = stays.nonzero().flatten()
    if rows.numel() == 0:
        return logits, exit_index
    out = model.focus_stage(state, None if rows.numel() == b else rows, aux=False)
    exits = out["exit_logits"]  # (B', E, C)
    later = exit_scores(exits[:, 1:], criterion) >= th[1:].view(1, -1)  # (B', E-1), on the CPU
    later[:, -1] = True  # the last exit takes everybody left
    k = later.float().argmax(dim=1).to(exits.device) + 1  # first exit >= 1 whose threshold is met
    logits[rows] = exits[torch.arange(rows.numel(), device=exits.device), k].to(logits.dtype)
    exit_index[rows] = k.to(exit_index.device)
    return logits, exit_index


def choose_exits(
    exit_logits: torch.Tensor, thresholds: torch.Tensor | list[float], criterion: str = "confidence"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (logits (B, C), exit_index (B,) long): for each video the first exit of `exit_logits` (B, E, C)
    whose score reaches its threshold (E thresholds; the last exit takes everybody left), the rule of
    `predict_with_exit` and of the offline sweep, here on the outputs of a full forward (any model)."""
    th = torch.as_tensor(thresholds, dtype=torch.float32).flatten().cpu()
    b, e = exit_logits.shape[:2]
    if th.numel() != e:
        raise ValueError(f"{e} exits need {e} thresholds, got {th.numel()}")
    meets = exit_scores(exit_logits.float(), criterion).cpu() >= th.view(1, -1)  # (B, E)
    meets[:, -1] = True
    k = meets.float().argmax(dim=1)
    logits = exit_logits[torch.arange(b, device=exit_logits.device), k.to(exit_logits.device)]
    return logits, k
