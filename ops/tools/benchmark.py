"""Building blocks of scripts/bench.py: the pairs of a Uni-AdaFocus configuration and its dense baseline (the
model's `dense_counterpart`), interleaved timers, and the timed inference / training-step callables.

Every inference callable starts from uint8 frames (B, T, 3, H, W), as the loader delivers them, and includes
the normalisation (ops.data.transforms.normalize), so the timings are end to end from decoded frames.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from models import ModelConfig, build_model, get_method, input_layout
from ops.data.transforms import normalize
from ops.engine.flops import exit_gflops
from ops.tools.inference import deploy_model, normalize_frames, predict_with_exit

# Optimisations scripts/bench.py can switch on one by one (the "before" run uses none of them).
OPTIMISATIONS = (
    "inference_mode",
    "lean",
    "lazy_norm",
    "inplace_norm",
    "fold_bn",
    "channels_last",
    "channels_last_3d",
    "fuse",
)


@dataclass
class Pair:
    """A Uni-AdaFocus preset and its dense baseline: model configs, frames each takes per video, and how the
    baseline is built (default: the registry's model of its config)."""

    name: str
    title: str
    adaptive: ModelConfig
    baseline: ModelConfig
    adaptive_frames: int
    baseline_frames: int
    build_baseline: Callable[[ModelConfig], nn.Module] = build_model


def _pair(name: str, title: str, adaptive: ModelConfig) -> Pair:
    """The pair of `adaptive` and the dense model its method compares it with (VideoModel.dense_counterpart)."""
    baseline, build = get_method(adaptive.model).model_cls.dense_counterpart(adaptive)
    return Pair(
        name, title, adaptive, baseline, sum(input_layout(adaptive)), sum(input_layout(baseline)), build
    )


def default_pairs() -> dict[str, Pair]:
    """Returns the pairs of the README tables: TSM 8+12@96 vs TSM-R50 8f@224, X3D 16+32@128 vs X3D-L
    16x312^2, AN 16+16@128 vs MobileNetV2 + ResNet-50 on 16 full frames, and the Efficient-3DCNNs glance +
    TAda2D focus 16+12@128 vs TAda2D-R50 8f@224."""
    tsm = ModelConfig(
        preset="tsm",
        num_classes=174,
        num_input_focus_segments=36,
        num_focus_segments=12,
        patch_size=96,
        pretrain="none",
    )
    x3d = ModelConfig(preset="x3d", num_classes=400, pretrain="none")
    an = ModelConfig(preset="an", num_classes=200, pretrain="none")
    # Efficient-3DCNNs glance + TAda2D focus (README: "Uni-AdaFocus with clip networks") against the dense
    # TAda2D-R50 of TAdaConv's K400 8x8 model (8 frames at 224^2).
    e3d_tada = ModelConfig(
        preset="x3d",
        num_classes=400,
        glance_arch="mobilenetv2_3d",
        glance_size=112,
        focus_arch="tada2d_r50",
        num_focus_segments=12,
        pretrain="none",
    )
    return {
        "e3d-tada": _pair("e3d-tada", "UA-E3D-TAda 16+12 @128 vs TAda2D-R50 8f @224", e3d_tada),
        "tsm": _pair("tsm", "UA-TSM 8+12 @96 vs TSM-R50 8f @224", tsm),
        "x3d": _pair("x3d", "UA-X3D 16+32 @128 vs X3D-L 16x312^2", x3d),
        "an": _pair("an", "UA-AN 16+16 @128 vs MobileNetV2+ResNet-50 16f @224", an),
    }


def build_pair(pair: Pair) -> tuple[nn.Module, nn.Module]:
    """Returns (Uni-AdaFocus model, baseline model), randomly initialised, eval mode."""
    return build_model(pair.adaptive).eval(), pair.build_baseline(pair.baseline).eval()


def pair_gflops(adaptive: nn.Module, baseline: nn.Module) -> dict[str, object]:
    """Returns {'preset_exits': [GFLOPs per exit], 'preset': full, 'baseline': GFLOPs} per video."""
    exits = exit_gflops(adaptive)
    return {"preset_exits": exits, "preset": exits[-1], "baseline": exit_gflops(baseline)[-1]}


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed_rounds(
    fns: dict[str, Callable[[], object]], warmup: int, rounds: int, clock: str = "wall"
) -> dict[str, list[float]]:
    """Returns the seconds of every call per callable, `rounds` rounds of one call each, interleaved (a, b,
    a, b, ...) so that a change of machine load hits every callable alike; `warmup` untimed rounds first.
    `clock` 'wall' (time.perf_counter) or 'cpu' (time.process_time: CPU seconds of this process, all its
    threads, robust to other processes on the machine but blind to time spent waiting)."""
    now = CLOCKS[clock]
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            start = now()
            fn()
            times[key].append(now() - start)
    return times


def median_ratio(times: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of times[num][i] / times[den][i] (e.g. baseline / preset = speed-up): a ratio per
    round cancels the load of that round, the median drops the rounds one callable was hit alone."""
    if len(times[num]) != len(times[den]) or not times[num]:
        raise ValueError(
            f"need the same non-zero number of rounds, got {len(times[num])} and {len(times[den])}"
        )
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def spread(values: list[float]) -> float:
    """max - min of `values` (how far repeated measurements of one ratio move)."""
    return max(values) - min(values)


def interleaved_medians(
    fns: dict[str, Callable[[], object]], warmup: int, repeats: int, clock: str = "wall"
) -> dict[str, float]:
    """Returns the median seconds of each callable over interleaved rounds (see `timed_rounds`)."""
    times = timed_rounds(fns, warmup, repeats, clock)
    return {k: statistics.median(v) for k, v in times.items()}


def prepare_models(preset: nn.Module, baseline: nn.Module, opts: set[str]) -> tuple[nn.Module, nn.Module]:
    """Returns deploy copies (BN folded / channels-last as `opts` asks) or the models themselves."""
    kw = dict(
        fold_bn="fold_bn" in opts,
        channels_last="channels_last" in opts,
        channels_last_3d="channels_last_3d" in opts,
        fuse="fuse" in opts and "fold_bn" in opts,
    )
    if not any(kw.values()):
        return preset, baseline
    return deploy_model(preset, **kw), deploy_model(baseline, **kw)


def inference_fn(model: nn.Module, frames: torch.Tensor, opts: set[str], staged: bool) -> Callable:
    """Returns a callable running one inference of `model` on uint8 `frames` (no early exit): the standard
    eval forward, or with 'lean' for a staged model (glance_stage / focus_stage) the deployment path
    (predict_with_exit, always under inference_mode)."""
    grad_off = torch.inference_mode if "inference_mode" in opts else torch.no_grad
    norm = normalize_frames if "inplace_norm" in opts else normalize
    if staged and "lean" in opts:
        never = [1e8] * (model.num_exits - 1) + [-1e8]
        if "lazy_norm" in opts:
            return lambda: predict_with_exit(model, frames, never, prepare=norm)
        return lambda: predict_with_exit(model, norm(frames), never)

    def standard() -> torch.Tensor:
        with grad_off():
            return model(norm(frames))["logits"]

    return standard


def train_step_fn(model: nn.Module, frames: torch.Tensor, num_classes: int) -> Callable:
    """Returns a callable doing one SGD step (forward, the model's criterion, backward, update) of `model` in
    train mode on uint8 `frames` with random labels (drawn on the frames' device, where the logits are)."""
    model.train()
    target = torch.randint(0, num_classes, (frames.shape[0],), device=frames.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    criterion = model.criterion()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(normalize(frames))
        loss = criterion(out, target)[0]
        loss.backward()
        optimizer.step()

    return step
