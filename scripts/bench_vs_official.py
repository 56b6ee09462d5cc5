"""This project's Uni-AdaFocus-TSM against the official code, side by side (ops/tools/bench_official.py).

    python scripts/bench_vs_official.py --official DIR [--rounds 5] [--clock wall|cpu] [--skip loader,eval,train]

DIR: a checkout of LeapLabTHU/Uni-AdaFocus (or its TSM sub-project folder); the official code needs
torchvision on the path. Without --official, or when DIR cannot be imported, it says why and exits 0.
Checks first that both give the same logits and focus frames (same weights, same inputs), then times the
training loader (1 thread), the eval forward (plain and fast path) and a training step in interleaved rounds;
speed-ups are medians of per-round ratios official / ours. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ops.engine.host_memory import HOST_MEMORY


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", default=None, help="official checkout (LeapLabTHU/Uni-AdaFocus)")
    p.add_argument("--batch", type=int, default=8, help="eval batch")
    p.add_argument("--train_batch", type=int, default=4, help="training-step batch (0: skip)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds of the eval / training step")
    p.add_argument("--loader_rounds", type=int, default=12, help="timed clips per loader")
    p.add_argument("--threads", type=int, default=2, help="torch threads of eval / training (loader: 1)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="cpu: process CPU time")
    p.add_argument("--patch", type=int, default=128, help="patch size P")
    p.add_argument("--gain", type=float, default=25.0, help="scale of the policy output layers")
    p.add_argument("--videos", type=int, default=4, help="videos of the loader's synthetic data")
    p.add_argument("--frame_size", default="320x256", help="WxH of the synthetic JPEG frames")
    p.add_argument("--skip", default="", help="comma list of loader, eval, train")
    p.add_argument(
        "--host_memory",
        default="keep",
        choices=HOST_MEMORY,
        help="our side's freed CPU memory, as our entry scripts' --host_memory",
    )
    p.add_argument(
        "--official_host_memory",
        default="release",
        choices=HOST_MEMORY,
        help="the official side's: release (glibc's default, as its scripts run) or keep (the code alone compared)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.official is None:
        print("bench_vs_official: no --official DIR given; nothing to compare (skipped)")
        return None
    from ops.tools.official_tsm import OfficialTSM, OfficialUnavailable

    try:
        off = OfficialTSM(os.path.abspath(args.official))
    except OfficialUnavailable as err:
        print(f"bench_vs_official: skipped: {err}")
        return None
    from ops.tools.bench_official import run

    result = run(off, args, lambda s: print(s, file=sys.stderr, flush=True))
    result["settings"] = {k: v for k, v in vars(args).items() if k != "official"}
    result["settings"]["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(result, default=float), flush=True)
    return result


if __name__ == "__main__":
    main()
