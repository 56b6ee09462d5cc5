"""Benchmark AdaFocus V2's two training branches through the focus network: two forwards (the original's, the
default) against one stacked forward (`--concat_branches`), one training step (forward, loss, backward) each,
interleaved, random weights and inputs. Prints one line per setting with the medians (the first step of each
dropped) and, last, one JSON object.

    python scripts/bench_branches.py [--device cpu|cuda] [--steps 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from models import build_model
from models.adafocus_v2 import V2Config

# name -> (config fields, batch): the demo's V2 and the Something-Something V2 (8 + 12 frames, P = 128)
SETTINGS = {
    "demo (ResNet-18 w16, 128 px, P 64, 8 + 4 frames)": (
        dict(preset="tsm", dataset="synthetic", num_classes=8),
        16,
    ),
    "sth-sth (MobileNetV2-TSM + ResNet-50-TSM, 8 + 12 frames, P 128)": (
        dict(preset="tsm", dataset="something", num_classes=174),
        2,
    ),
}


def step_seconds(model, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Seconds of one training step (forward, V2's loss, backward)."""
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    loss, _ = model.criterion()(model(x), y)
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--batch_scale", type=int, default=1, help="multiply each setting's batch (e.g. 8 on a GPU)"
    )
    opts = p.parse_args()
    torch.set_num_threads(opts.threads)
    device = torch.device(opts.device)
    results = {}
    for name, (fields, batch) in SETTINGS.items():
        models = {}
        for concat in (False, True):
            torch.manual_seed(0)
            cfg = V2Config(model="adafocus_v2", pretrain="none", concat_branches=concat, **fields)
            models[concat] = build_model(cfg).to(device).train()
        b = batch * opts.batch_scale
        x = torch.randn(
            b, sum(models[False].input_layout(cfg)), 3, cfg.input_size, cfg.input_size, device=device
        )
        y = torch.randint(0, fields["num_classes"], (b,), device=device)
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(opts.steps):
            for concat in (False, True):
                times[concat].append(step_seconds(models[concat], x, y, device))
        med = {c: sorted(t[1:])[len(t[1:]) // 2] for c, t in times.items()}
        results[name] = {"batch": b, "two_forwards_s": med[False], "stacked_s": med[True]}
        print(f"{name}, batch {b}: two forwards {med[False] * 1000:.0f} ms, stacked {med[True] * 1000:.0f} ms "
              f"(two / stacked {med[False] / med[True]:.3f})", flush=True)  # fmt: skip
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
