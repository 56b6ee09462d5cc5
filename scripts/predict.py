"""Predict the class of videos with a trained checkpoint, and optionally draw what the model decided.

    python scripts/predict.py VIDEO [VIDEO ...] --resume CKPT [--topk 5] [--visualize OUT_DIR [--visualize_video]]
        [--exit_threshold T [T ...] [--exit_criterion confidence]] [--device auto|cpu|cuda:N] [--batch_size 8] [-j 0]

The checkpoint (one written by main.py) holds the model's configuration and class names, so nothing else is
needed (--categories FILE names the classes of a checkpoint saved without them). Each video (.mp4 .avi .mkv
.webm .mov or anything else PyAV opens) is decoded and sampled as the model's evaluation does (segment
centres, centre crop). Printed per video: the top-k classes with probabilities, the GFLOPs it cost and, with
--exit_threshold, the exit it took; then the decode and model time; the last line is a JSON list with one
object per video (`video`, `top5` [[name, prob], ...], `gflops`, `exit`, ... or `video`, `error`).
--exit_threshold takes one threshold per exit before the last, for --exit_criterion (test_early_exit.py logs
them for its operating points). --visualize writes OUT_DIR/<video>.png: the glance frames, the frames the
temporal policy selected with the focus region outlined, and the prediction (and with --visualize_video an
annotated MP4 of the whole video). Exit status: 0, or 1 when a video could not be read (the others are still
predicted), 2 for a usage or checkpoint error.
"""

from __future__ import annotations

import argparse
import sys

from ops.engine.checkpoint import CheckpointError
from ops.engine.early_exit import CRITERIA
from ops.engine.host_memory import HOST_MEMORY, apply_host_memory
from ops.tools.predict import exit_thresholds, load_predictor
from ops.tools.predict_run import predict_videos, report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    p.add_argument("--resume", required=True, help="checkpoint written by main.py (ckpt.best.pth.tar)")
    p.add_argument("--topk", type=int, default=5, help="classes listed per video (5)")
    p.add_argument("--visualize", metavar="OUT_DIR", help="write a picture of each prediction here (PNG)")
    p.add_argument("--visualize_video", action="store_true", help="with --visualize: also an annotated MP4")
    p.add_argument(
        "--exit_threshold", type=float, nargs="+", help="early exit: a threshold per exit before the last"
    )
    p.add_argument("--exit_criterion", choices=CRITERIA, default="confidence", help="(confidence)")
    p.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda | cuda:N")
    p.add_argument("--batch_size", type=int, default=8, help="videos per forward pass (8)")
    p.add_argument("-j", "--workers", type=int, default=0, help="decoding processes (0: in this process)")
    p.add_argument("--categories", help="class names, one per line, for a checkpoint saved without them")
    p.add_argument(
        "--trust_checkpoint", action="store_true", help="open CKPT as a full pickle (runs its code)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--host_memory",
        choices=HOST_MEMORY,
        default="keep",
        help="freed CPU memory: keep (reused by the next batch; default) or release (glibc's own behaviour)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.topk < 1 or a.batch_size < 1 or a.workers < 0:
        parser.error("--topk and --batch_size must be >= 1, --workers >= 0")
    if a.visualize_video and not a.visualize:
        parser.error("--visualize_video needs --visualize OUT_DIR")
    if a.exit_criterion != "confidence" and a.exit_threshold is None:
        parser.error("--exit_criterion applies with --exit_threshold")
    apply_host_memory(a.host_memory)
    try:
        predictor = load_predictor(
            a.resume, device=a.device, trust=a.trust_checkpoint, categories=a.categories
        )
        thresholds = None
        if a.exit_threshold is not None:
            thresholds = exit_thresholds(a.exit_threshold, len(predictor.gflops))
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results, timing = predict_videos(
        predictor,
        a.videos,
        topk=a.topk,
        batch_size=a.batch_size,
        workers=a.workers,
        thresholds=thresholds,
        criterion=a.exit_criterion,
        visualize=a.visualize,
        visualize_video=a.visualize_video,
        progress=not a.quiet,
    )
    print(report(results, timing, predictor, a.topk, a.batch_size))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
