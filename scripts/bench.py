"""Inference and training speed of the Uni-AdaFocus presets against their dense baselines, and of early exit.

    python scripts/bench.py [--json] [--pairs tsm,x3d,an,e3d-tada] [--opts all|none|a,b,...] [--threads 2] [--compile]

Random weights and random uint8 frames (timing only). For each pair: latency (batch 1), throughput (videos/s
at batch 1 and 16), measured speed-up, FLOPs ratio (ops/engine/flops.py, papers' convention) and realised =
speed-up / FLOPs ratio, training step time per video (batch 1). Early exit: batch 16 with the glance threshold
set so that half of the videos exit at the glance, timed against no exit (ops.tools.inference.predict_with_exit).
Preset and baseline calls are interleaved in rounds (preset, baseline, preset, ...) after --warmup untimed
rounds: 2 x --repeats rounds at batch 1, --repeats at batch 16 (--heavy_repeats for the heavy x3d / an /
e3d-tada pairs), 2 for training steps. A speed-up is the median over rounds of the per-round ratio baseline /
preset (a round's load hits both alike), not a ratio of medians; times are medians. `--clock cpu` times the
process's CPU seconds (time.process_time) instead of wall seconds: other processes on a loaded machine then
barely move the ratios. The last stdout line is one JSON object keyed by pair plus `early_exit` and
`settings`; `--json` prints only that line (the table goes to stderr).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time

import torch

from ops.engine.host_memory import HOST_MEMORY, apply_host_memory
from ops.tools.benchmark import (
    OPTIMISATIONS,
    build_pair,
    default_pairs,
    inference_fn,
    median_ratio,
    pair_gflops,
    prepare_models,
    timed_rounds,
    train_step_fn,
)
from ops.tools.inference import normalize_frames as normalize
from ops.tools.inference import predict_with_exit

# Default: every optimisation measured faster on the 2-core CPU ('fuse': docs/speed.md).
DEFAULT_OPTS = tuple(o for o in OPTIMISATIONS if o != "fuse")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print only the JSON line on stdout")
    p.add_argument("--pairs", default="tsm,x3d,an", help="comma list of tsm, x3d, an, e3d-tada")
    p.add_argument(
        "--opts", default="default", help=f"'default', 'all', 'none' or a comma list of {OPTIMISATIONS}"
    )
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    p.add_argument(
        "--host_memory",
        default="keep",
        choices=HOST_MEMORY,
        help="freed CPU memory: keep (as the entry scripts) or release (glibc's default)",
    )
    p.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    p.add_argument("--batch", type=int, default=16, help="the large batch (batch 1 is always measured)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per measurement (medians)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds before each measurement")
    p.add_argument(
        "--clock", default="wall", choices=["wall", "cpu"], help="wall seconds or process CPU seconds"
    )
    p.add_argument(
        "--heavy_repeats",
        "--heavy-repeats",
        type=int,
        default=3,
        help="rounds at the large batch for x3d / an / e3d-tada",
    )
    p.add_argument(
        "--train_batch",
        "--train-batch",
        type=int,
        default=1,
        help="batch of the training-step timing (0: skip)",
    )
    p.add_argument(
        "--exit_pairs", "--exit-pairs", default="tsm", help="pairs whose early exit is timed ('' : none)"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the backbones (slow start)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def resolve_opts(text: str) -> set[str]:
    if text == "default":
        return set(DEFAULT_OPTS)
    if text in ("all", "none"):
        return set(OPTIMISATIONS) if text == "all" else set()
    opts = {o for o in text.split(",") if o}
    unknown = opts - set(OPTIMISATIONS)
    if unknown:
        raise SystemExit(f"unknown optimisations {sorted(unknown)}; choose from {OPTIMISATIONS}")
    return opts


def compile_backbones(model: torch.nn.Module) -> None:
    """torch.compile the feature extractors (`features` of MobileNetV2/ResNet, `featmap` of X3D) in place."""
    for m in model.modules():
        for name in ("features", "featmap"):
            fn = getattr(m, name, None)
            if callable(fn) and not isinstance(fn, torch.nn.Module):
                setattr(m, name, torch.compile(fn))


def frames(batch: int, t: int, size: int, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    """Random uint8 frames (batch, t, 3, size, size) on `device`."""
    return torch.randint(0, 256, (batch, t, 3, size, size), dtype=torch.uint8, generator=gen).to(device)


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {k: statistics.median(v) for k, v in times.items()}


def synced(fn, device: torch.device):
    if device.type != "cuda":
        return fn
    return lambda: (fn(), torch.cuda.synchronize())


def early_exit(model, x: torch.Tensor, exits: list[float], args, device) -> dict:
    """Times predict_with_exit on x with half of the videos exiting at the glance vs none exiting."""
    with torch.inference_mode():
        glance = model.glance_stage(x, normalize)["glance_logits"].float().max(dim=1).values.cpu()
    b = x.shape[0]
    threshold = float(glance.sort(descending=True).values[b // 2 - 1])  # the b/2 most confident exit
    e = model.num_exits
    half = [threshold] + [1e8] * (e - 2) + [-1e8]
    never = [1e8] * (e - 1) + [-1e8]
    _, idx = predict_with_exit(model, x, half, prepare=normalize)
    fns = {
        "no_exit": synced(lambda: predict_with_exit(model, x, never, prepare=normalize), device),
        "exit": synced(lambda: predict_with_exit(model, x, half, prepare=normalize), device),
    }
    times = timed_rounds(fns, getattr(args, "warmup", 1), args.repeats, getattr(args, "clock", "wall"))
    t = medians(times)
    g_exit = sum(exits[int(i)] for i in idx) / b
    ratio_t, ratio_g = median_ratio(times, "no_exit", "exit"), exits[-1] / g_exit
    result = {
        "exit_fraction": float((idx == 0).float().mean()),
        "time_no_exit_s": t["no_exit"],
        "time_exit_s": t["exit"],
        "gflops_no_exit": exits[-1],
        "gflops_exit": g_exit,
        "realised": ratio_t / ratio_g,
    }
    if int((idx == 0).sum()) != b // 2:  # random weights can give (near-)equal glance scores ('an')
        result["note"] = "glance scores tie: the threshold could not split the batch in half"
    return result


def bench_pair(name: str, args, opts: set[str], device: torch.device, log) -> tuple[dict, dict | None]:
    pair = default_pairs()[name]
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    preset, base = build_pair(pair)
    gf = pair_gflops(preset, base)
    flops_ratio = gf["baseline"] / gf["preset"]
    log(f"\n== {pair.title}: GFLOPs {gf['preset']:.2f} vs {gf['baseline']:.2f} (ratio {flops_ratio:.2f})")
    p_dep, b_dep = prepare_models(preset, base, opts)
    p_dep, b_dep = p_dep.to(device), b_dep.to(device)
    if args.compile:
        compile_backbones(p_dep)
        compile_backbones(b_dep)
    out: dict = {"gflops_preset": gf["preset"], "gflops_baseline": gf["baseline"], "flops_ratio": flops_ratio}
    x_big = None
    for batch in (1, args.batch):
        xp = frames(batch, pair.adaptive_frames, pair.adaptive.input_size, device, gen)
        xb = frames(batch, pair.baseline_frames, pair.baseline.input_size, device, gen)
        fns = {
            "preset": synced(inference_fn(p_dep, xp, opts, True), device),
            "baseline": synced(inference_fn(b_dep, xb, opts, False), device),
        }
        heavy = batch > 1 and name in ("x3d", "an", "e3d-tada")
        repeats = args.heavy_repeats if heavy else (args.repeats if batch > 1 else 2 * args.repeats)
        times = timed_rounds(fns, args.warmup, repeats, args.clock)
        t = medians(times)
        speedup = median_ratio(times, "baseline", "preset")
        out[f"b{batch}"] = {
            "preset_videos_s": batch / t["preset"],
            "baseline_videos_s": batch / t["baseline"],
            "preset_ms": 1e3 * t["preset"],  # one call on the whole batch (batch 1: the latency)
            "baseline_ms": 1e3 * t["baseline"],
            "speedup": speedup,
            "realised": speedup / flops_ratio,
            "repeats": repeats,
        }
        log(
            f"batch {batch:2d}: preset {batch / t['preset']:7.2f} videos/s ({1e3 * t['preset']:8.1f} ms), "
            f"baseline {batch / t['baseline']:7.2f} videos/s ({1e3 * t['baseline']:8.1f} ms), "
            f"speed-up {speedup:.2f}, realised {speedup / flops_ratio:.2f}"
        )
        x_big = xp
    big = out[f"b{args.batch}"]
    out.update(speedup=big["speedup"], realised=big["realised"])
    out["latency_ms"] = {"preset": out["b1"]["preset_ms"], "baseline": out["b1"]["baseline_ms"]}
    exit_result = None
    if name in args.exit_pairs.split(",") and "lean" in opts:
        exit_result = {"pair": name, **early_exit(p_dep, x_big, gf["preset_exits"], args, device)}
        log(
            f"early exit (batch {args.batch}, {100 * exit_result['exit_fraction']:.0f}% exit at glance): "
            f"{exit_result['time_no_exit_s']:.2f} s -> {exit_result['time_exit_s']:.2f} s, GFLOPs "
            f"{exit_result['gflops_no_exit']:.2f} -> {exit_result['gflops_exit']:.2f}, "
            f"realised {exit_result['realised']:.2f}"
        )
    del p_dep, b_dep, x_big
    gc.collect()
    if args.train_batch > 0:
        xp = frames(args.train_batch, pair.adaptive_frames, pair.adaptive.input_size, device, gen)
        xb = frames(args.train_batch, pair.baseline_frames, pair.baseline.input_size, device, gen)
        fns = {
            "preset": synced(train_step_fn(preset.to(device), xp, pair.adaptive.num_classes), device),
            "baseline": synced(train_step_fn(base.to(device), xb, pair.adaptive.num_classes), device),
        }
        t = medians(timed_rounds(fns, args.warmup, 2, args.clock))
        out["train_s_per_video"] = {k: v / args.train_batch for k, v in t.items()}
        log(
            f"training step (batch {args.train_batch}): preset {t['preset'] / args.train_batch:.2f} s/video, "
            f"baseline {t['baseline'] / args.train_batch:.2f} s/video"
        )
    return out, exit_result


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    opts = resolve_opts(args.opts)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    torch.set_num_threads(args.threads)
    kept = apply_host_memory(args.host_memory)
    stream = sys.stderr if args.json else sys.stdout

    def log(text: str) -> None:
        print(text, file=stream, flush=True)

    start, load0 = time.perf_counter(), os.getloadavg()[0]
    log(f"device {device}, threads {torch.get_num_threads()}, optimisations {sorted(opts) or 'none'}")
    result: dict = {}
    for name in [p for p in args.pairs.split(",") if p]:
        result[name], exit_result = bench_pair(name, args, opts, device, log)
        if exit_result is not None:  # the first exit pair is `early_exit`, later ones `early_exit_<pair>`
            result["early_exit" if "early_exit" not in result else f"early_exit_{name}"] = exit_result
    result["settings"] = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "opts": sorted(opts),
        "compile": args.compile,
        "clock": args.clock,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "batch": args.batch,
        "seconds": round(time.perf_counter() - start, 1),
        "loadavg_start_end": [load0, os.getloadavg()[0]],
        "thp_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "host_memory_kept": kept,
        "torch": torch.__version__,
    }
    print(json.dumps(result, sort_keys=False, default=float), flush=True)
    return result


if __name__ == "__main__":
    main()
