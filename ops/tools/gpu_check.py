"""Back-end of scripts/gpu_check.sh: the first run on a GPU, in one command, within a time budget (8 minutes).

Sections (each reports `ok`, its seconds and its peak GPU memory; an exception is reported, not raised):
  * numerics: a model's GFLOPs counted on the GPU equal the CPU count; float32 logits on the GPU (TF32 off) against
    the CPU's; the benchmark's training step (labels drawn on the GPU).
  * amp_train: training steps of every preset (TSM, X3D, AN) through the engine's loop (`train_one_epoch`) under
    `--amp` (bf16 or fp16 by the GPU's capability, fp16 with a GradScaler), with the host syncs of a step counted
    (torch.cuda.set_sync_debug_mode).
  * ddp: one process with the nccl back-end: DDP steps, the BN-buffer broadcast, the all-rank loss check, the
    per-rank RNG gather, the gather of predictions.
  * throughput: Uni-AdaFocus-TSM 8+12 @96 and TSM-R50 8f @224 (inference, batch 128, float32 and AMP) against the
    paper's RTX 3090 figures (474.8 videos/s; 218.2 for TSM+, MobileNetV2 + ResNet-50 on 8 + 8 frames, the dense
    row of the same table), and early exit with half of the videos leaving at the glance.
  * end_to_end: main.py (1 epoch, --amp), main_nViewEval.py and test_early_exit.py on a tiny synthetic dataset.
Without CUDA (or with --tiny) every section runs on tiny networks and batches on the CPU (gloo for `ddp`): the
fallback CI runs. The last stdout line is one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import torch
import torch.distributed as dist

from models import ModelConfig, build_model
from ops.engine import distributed as D
from ops.engine.backends import configure_backends
from ops.engine.checkpoint import get_rng_state
from ops.engine.flops import exit_gflops
from ops.engine.loops import train_one_epoch
from ops.engine.optim import autocast_context, make_grad_scaler
from ops.engine.runlog import RunLogger
from ops.tools.benchmark import (
    default_pairs,
    inference_fn,
    interleaved_medians,
    prepare_models,
    train_step_fn,
)

PAPER_RTX3090 = {"uniadafocus_tsm_8+12@96": 474.8, "tsm_plus_mn2_r50_8+8@224": 218.2}
PRESETS = ("tsm", "x3d", "an")
# Tiny networks for the CPU fallback (the same code paths in seconds: 2 + 4 frames of 32 px, ResNet-18s of width 4).
_LAYOUT = dict(
    num_glance_segments=2, num_input_focus_segments=4, num_focus_segments=2, input_size=32, patch_size=16
)
_SMALL = dict(glance_size=32, stn_hidden_dim=8, temporal_hidden_dim=8, **_LAYOUT)
_R18 = dict(focus_arch="resnet18", focus_base_width=4)
TINY = {
    "tsm": dict(glance_arch="resnet18", glance_base_width=4, **_R18, **_SMALL),
    "an": dict(glance_width_mult=0.25, glance_last_channel=32, **_R18, **_SMALL),
    "x3d": dict(x3d_overrides=dict(width_factor=1.0, dim_c1=4, dim_c5=16, bottleneck_factor=1.0), **_SMALL),
    "baseline": dict(num_segments=2, input_size=32, **_R18),
}


def preset_config(preset: str, tiny: bool) -> ModelConfig:
    """Returns the preset's full-size configuration (scripts/bench.py's pairs) or its tiny version."""
    if not tiny:
        return default_pairs()[preset].adaptive
    return ModelConfig(preset=preset, num_classes=5, pretrain="none", **TINY[preset])


def _clips(model, cfg: ModelConfig, batch: int, steps: int) -> list:
    """`steps` random uint8 batches (B, T, 3, S, S) on the host, as the loader gives them, with labels."""
    t = sum(model.input_layout(cfg))
    gen = torch.Generator().manual_seed(0)
    return [
        (
            torch.randint(
                0, 256, (batch, t, 3, cfg.input_size, cfg.input_size), dtype=torch.uint8, generator=gen
            ),
            torch.randint(0, cfg.num_classes, (batch,), generator=gen),
            torch.arange(batch),
        )
        for _ in range(steps)
    ]


def _train_args(amp: str) -> argparse.Namespace:
    return argparse.Namespace(lr_per_step=False, amp=amp, clip_gradient=20.0, print_freq=10**9)


def _epoch(model, batches, info: D.DistInfo, amp: str) -> tuple[dict, float]:
    """One engine epoch over `batches`; returns (its stats, seconds)."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    scaler = make_grad_scaler(info.device, amp)
    criterion = D.unwrap(model).criterion()
    with RunLogger(tempfile.gettempdir(), enabled=False, tensorboard=False) as logger:
        _sync(info.device)
        start = time.perf_counter()
        stats = train_one_epoch(
            model, criterion, batches, optimizer, _train_args(amp), info, 0, logger, scaler
        )
        _sync(info.device)
    return stats, time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _host_syncs(fn: Callable[[], object], device: torch.device) -> int | None:
    """Number of host synchronisations `fn` makes on CUDA (torch's sync debug mode), None on CPU."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
            torch.cuda.synchronize(device)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def numerics(opt: argparse.Namespace, device: torch.device) -> dict:
    cfg = preset_config("tsm", opt.tiny)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    cpu_gflops = exit_gflops(model)
    x = torch.randn(2, sum(model.input_layout(cfg)), 3, cfg.input_size, cfg.input_size)
    with torch.no_grad():
        cpu_logits = model(x)["logits"]
        gpu = model.to(device)
        # evaluate.py counts the model where it lies (on the CPU fallback: the same count, not repeated)
        gpu_gflops = exit_gflops(gpu) if device.type == "cuda" else cpu_gflops
        gpu_logits = gpu(x.to(device))["logits"].cpu()
    diff = float((gpu_logits - cpu_logits).abs().max())
    scale = float(cpu_logits.abs().max())
    train_step_fn(gpu, torch.randint(0, 256, (1, *x.shape[1:]), dtype=torch.uint8, device=device), 5)()
    return {
        "gflops_device_equals_cpu": gpu_gflops == cpu_gflops,
        "gflops": gpu_gflops,
        "logits_max_abs_diff_vs_cpu": diff,
        "logits_max_abs": scale,
        "logits_within_1e-5": diff <= 1e-5,
        "ok": gpu_gflops == cpu_gflops,
    }


def amp_train(opt: argparse.Namespace, device: torch.device, amp: str) -> dict:
    out: dict = {"amp": amp}
    for preset in opt.presets:
        cfg = preset_config(preset, opt.tiny)
        torch.manual_seed(0)
        model = build_model(cfg).to(device)
        batches = _clips(model, cfg, opt.train_batch, opt.train_steps + 1)
        _epoch(model, batches[:1], D.DistInfo(device=device), amp)  # warm-up (cuDNN autotuning)
        stats, seconds = _epoch(model, batches[1:], D.DistInfo(device=device), amp)
        syncs = _host_syncs(
            functools.partial(_epoch, model, batches[:1], D.DistInfo(device=device), amp), device
        )
        out[preset] = {
            "loss": stats["loss"],
            "finite": "nonfinite_steps" not in stats,
            "s_per_step": seconds / opt.train_steps,
            "videos_s": opt.train_batch * opt.train_steps / seconds,
            "host_syncs_1_step_epoch": syncs,  # the step's and the epoch's (its end: one all-reduce)
            "batch": opt.train_batch,
        }
        del model, batches
    out["ok"] = all(out[p]["finite"] for p in opt.presets)
    return out


def ddp(opt: argparse.Namespace, device: torch.device, amp: str) -> dict:
    backend = "nccl" if device.type == "cuda" else "gloo"
    kw = {"device_id": device} if backend == "nccl" else {}
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{D.free_port()}", world_size=1, rank=0, **kw
    )
    try:
        info = D.DistInfo(0, 1, 0, device, True, backend, 1)
        cfg = preset_config("tsm", opt.tiny)
        torch.manual_seed(0)
        model = build_model(cfg).to(device)
        ddp_model = D.wrap_ddp(model, info, find_unused_parameters=model.find_unused_parameters)
        stats, seconds = _epoch(ddp_model, _clips(model, cfg, opt.train_batch, 2), info, amp)
        D.broadcast_buffers(ddp_model, info)
        states = D.all_gather_objects(get_rng_state(), info)
        order = D.gather_in_sampler_order(torch.arange(5, device=device), info, 5).tolist()
        return {
            "backend": backend,
            "loss": stats["loss"],
            "s_per_step": seconds / 2,
            "ok": "nonfinite_steps" not in stats and len(states) == 1 and order == list(range(5)),
        }
    finally:
        dist.destroy_process_group()


def throughput(opt: argparse.Namespace, device: torch.device, amp: str) -> dict:
    from scripts.bench import DEFAULT_OPTS, early_exit, frames, synced

    pair = default_pairs()["tsm"]
    if opt.tiny:
        pair.adaptive = preset_config("tsm", True)
        pair.baseline = ModelConfig(
            preset="tsm", model="tsm", num_classes=5, pretrain="none", **TINY["baseline"]
        )
    torch.manual_seed(0)
    preset, base = build_model(pair.adaptive).eval(), build_model(pair.baseline).eval()
    exits = exit_gflops(preset)
    p_dep, b_dep = (m.to(device) for m in prepare_models(preset, base, set(DEFAULT_OPTS)))
    gen = torch.Generator().manual_seed(0)
    b = opt.throughput_batch
    xp = frames(b, sum(preset.input_layout(pair.adaptive)), pair.adaptive.input_size, device, gen)
    xb = frames(b, sum(base.input_layout(pair.baseline)), pair.baseline.input_size, device, gen)
    out: dict = {"batch": b, "paper_rtx3090_videos_s": PAPER_RTX3090, "gflops_exits": exits}
    for precision in ("fp32", amp):
        if precision == "none":
            continue
        scope = (lambda: autocast_context(device, amp)) if precision != "fp32" else contextlib.nullcontext

        def timed(fn, scope=scope):
            def run():
                with scope():
                    return fn()

            return synced(run, device)

        fns = {
            "uniadafocus_tsm_8+12@96": timed(inference_fn(p_dep, xp, set(DEFAULT_OPTS), True)),
            "tsm_r50_8@224": timed(inference_fn(b_dep, xb, set(DEFAULT_OPTS), False)),
        }
        t = interleaved_medians(fns, opt.warmup, opt.repeats)
        out[precision] = {k: b / v for k, v in t.items()}
    args = argparse.Namespace(repeats=opt.repeats)
    exit_result = early_exit(p_dep, xp, exits, args, device)
    out["early_exit"] = {
        "exit_fraction": exit_result["exit_fraction"],
        "videos_s_no_exit": b / exit_result["time_no_exit_s"],
        "videos_s_exit": b / exit_result["time_exit_s"],
        "realised": exit_result["realised"],
    }
    out["ok"] = True
    return out


def end_to_end(opt: argparse.Namespace, device: torch.device, amp: str) -> dict:
    from ops.data.synthetic import ensure_synthetic
    from ops.engine.evaluate import run_early_exit, run_nview
    from ops.engine.train import run
    from ops.opts import parse_args

    with tempfile.TemporaryDirectory() as root:
        data = os.path.join(root, "data")
        ensure_synthetic(data, num_classes=3, videos_per_class_train=4, videos_per_class_val=3, min_frames=10,
                         max_frames=14, height=64, width=80, num_clutter=5, num_distractors=2)  # fmt: skip
        tiny = (
            "--input_size 32 --glance_size 32 --patch_size 16 --num_glance_segments 2 --num_input_focus_segments 4 "
            "--num_focus_segments 2 --glance_base_width 4 --focus_base_width 4 --stn_hidden_dim 8 "
            f"--temporal_hidden_dim 8 --batch-size 4 --lr 0.01 -j {2 if device.type == 'cuda' else 0} --seed 0"
        ).split()
        common = [
            "synthetic",
            "RGB",
            "--root_dataset",
            data,
            "--root_log",
            root,
            "--device",
            str(device),
            *tiny,
        ]
        trained = parse_args([*common, "--epochs", "1", *(["--amp"] if amp != "none" else [])])
        metrics = run(trained)
        ckpt = os.path.join(trained.run_dir, "ckpt.pth.tar")
        nview = run_nview(parse_args([*common, "--resume", ckpt, "--test_crops", "3"], script="nview"))
        curves = run_early_exit(parse_args([*common, "--resume", ckpt], script="early_exit"))
    return {
        "train_top1": metrics["top1"],
        "nview_gflops": nview["gflops"],
        "early_exit_points": {k: len(v) for k, v in curves.items()},
        "ok": bool(nview["gflops"] > 0 and all(curves.values())),
    }


SECTIONS = {"numerics": numerics, "amp_train": amp_train, "ddp": ddp, "throughput": throughput}
SECTIONS["end_to_end"] = end_to_end


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny networks and batches (the default without CUDA)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    p.add_argument("--presets", default=",".join(PRESETS), help="presets of amp_train")
    p.add_argument(
        "--amp", default="auto", choices=("auto", "bf16", "fp16", "none"), help="as main.py's --amp"
    )
    p.add_argument(
        "--budget_s", type=float, default=450.0, help="sections that would start later are skipped"
    )
    p.add_argument("--train_batch", type=int, help="videos per training step (8; tiny: 2)")
    p.add_argument("--train_steps", type=int, help="timed training steps per preset (5; tiny: 1)")
    p.add_argument(
        "--throughput_batch", type=int, help="inference batch (128, as AdaFocus V2's table; tiny: 2)"
    )
    p.add_argument("--repeats", type=int, help="timed repeats (5; tiny: 1)")
    p.add_argument("--warmup", type=int, help="untimed rounds (2; tiny: 1)")
    opt = p.parse_args(argv)
    opt.tiny = opt.tiny or not torch.cuda.is_available()
    defaults = dict(
        train_batch=(2, 8), train_steps=(1, 5), throughput_batch=(2, 128), repeats=(1, 5), warmup=(1, 2)
    )
    for key, (small, full) in defaults.items():
        if getattr(opt, key) is None:
            setattr(opt, key, small if opt.tiny else full)
    opt.presets = [x for x in opt.presets.split(",") if x]
    opt.sections = [x for x in opt.sections.split(",") if x]
    unknown = set(opt.sections) - set(SECTIONS) | set(opt.presets) - set(PRESETS)
    if unknown:
        p.error(f"unknown sections or presets {sorted(unknown)}")
    return opt


def main(argv: list[str] | None = None) -> dict:
    opt = parse_args(argv)
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    run_args = argparse.Namespace(amp=opt.amp, tf32="off", deterministic=False)
    backends = configure_backends(run_args, device, training=True)
    amp = run_args.amp
    result: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    result.update(torch=torch.__version__, tiny=opt.tiny, amp=amp, backends=backends)
    start = time.perf_counter()
    for name in opt.sections:
        if time.perf_counter() - start > opt.budget_s:
            result[name] = {"ok": None, "skipped": f"time budget of {opt.budget_s:.0f} s spent"}
            continue
        print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        fn = SECTIONS[name]
        try:
            section = fn(opt, device) if name == "numerics" else fn(copy.copy(opt), device, amp)
        except Exception as exc:  # reported in the JSON line; the other sections still run
            section = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        section["seconds"] = round(time.perf_counter() - t0, 2)
        if device.type == "cuda":
            section["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        result[name] = section
        print(
            f"gpu_check: {name} ok={section.get('ok')} ({section['seconds']} s)", file=sys.stderr, flush=True
        )
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["ok"] = all(result[n].get("ok") is not False for n in opt.sections)
    print(json.dumps(result, default=float), flush=True)
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
