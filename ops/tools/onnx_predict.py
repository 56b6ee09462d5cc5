"""Predict video files with an exported model, without torch: numpy, ONNX Runtime and the frame readers
(PyAV, OpenCV / Pillow) only.

    python -m ops.tools.onnx_predict DIR VIDEO [VIDEO ...] [--topk 5] [--exit_threshold T [T ...]]
        [--exit_criterion confidence] [--batch_size 8] [--threads N] [--quiet]

DIR is a folder written by `scripts/export.py CKPT --format onnx --out DIR`. Each video is decoded and sampled
as scripts/predict.py does (its deploy.json `input`: segment centres or the centre clip, the short side resized
to `scale_size` by `resize_backend`, the centre crop, the normalisation), batched through the graphs, and
reported as scripts/predict.py reports it (same table, same JSON last line: `video`, `top5`, `gflops`, `exit`,
...). --exit_threshold (one per exit before the last; default: the thresholds given at export, if any) runs
early exit: a model exported in stages runs its second stage only for the videos that stay. Exit status: 0, 1
when a video could not be read (the others are still predicted), 2 for a usage or export error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from ops.data.lists import sample_clip_loop, sample_eval
from ops.data.transforms import GroupScale, center_crop_box, crop_resize
from ops.data.video_io import FrameReadError, read_frames, stream_index
from ops.tools.onnx_runtime import CRITERIA, Deployed, softmax
from ops.tools.predict_report import exit_thresholds, report


def _fma(a: np.float32, b: int, c: np.float32) -> np.float32:
    """a * b + c rounded once to float32 (float64 holds the product of a float32 and a small integer exactly)."""
    return np.float32(np.float64(a) * b + np.float64(c))


def interval_numbers(num_frames: int, t: int, rate: int) -> np.ndarray:
    """Returns the (t,) 1-based frame numbers of the centre TAdaConv interval clip (ops.data.lists
    .sample_clip_interval) without torch: torch.linspace's float32 formula (start + step * i for the first half,
    end - step * (t - 1 - i) for the second, one rounding each), truncated and clamped. torch's vectorised
    kernel (t >= 8 or 16 per CPU) may round a position one float32 step apart, which moves a frame number by
    one where the position lies within rounding of an integer."""
    span = t * rate
    start = np.float32(max(num_frames - span, 0) / 2)
    end = np.float32(start + span - 1)
    step = np.float32((end - start) / np.float32(t - 1)) if t > 1 else np.float32(0)
    pos = [_fma(step, i, start) if i < t // 2 else _fma(-step, t - 1 - i, end) for i in range(t)]
    return np.clip(np.asarray(pos, dtype=np.float32), 0, num_frames - 1).astype(np.int64) + 1


def frame_numbers(num_frames: int, spec: dict) -> np.ndarray:
    """Returns the (T,) 1-based frame numbers the evaluation samples: glance then candidate segment centres, or
    the centre clip ('loop' / 'interval')."""
    t = spec["candidate_frames"]
    if spec["sampling"] == "loop":
        return sample_clip_loop(num_frames, t, spec["clip_stride"])
    if spec["sampling"] == "interval":
        return interval_numbers(num_frames, t, spec["clip_stride"])
    parts = (spec["glance_frames"], t)
    return np.concatenate([sample_eval(num_frames, n) for n in parts if n > 0])


def read_video(path: str, spec: dict) -> tuple[np.ndarray, int]:
    """Returns (frames (T, 3, S, S) uint8 of the evaluation view, the video's frame count); raises FrameReadError."""
    n = stream_index(path).num_frames
    unique, inverse = np.unique(frame_numbers(n, spec), return_inverse=True)
    frames = read_frames(path, unique, [])  # frames past the end: the last one, as the loader
    scaled = GroupScale(spec["scale_size"], spec["resize_backend"])(frames)
    view = crop_resize(scaled, center_crop_box(scaled.shape[2], scaled.shape[1], spec["size"]))
    return np.ascontiguousarray(view[inverse].transpose(0, 3, 1, 2)), n


def normalize(frames: np.ndarray, spec: dict) -> np.ndarray:
    """Returns float32 (x / pixel_scale - mean) / std of uint8 frames (..., 3, S, S) (channels reversed first
    when `bgr`), as ops.data.transforms.normalize."""
    x = frames.astype(np.float32)
    if spec["bgr"]:
        x = np.ascontiguousarray(x[..., ::-1, :, :])
    m = np.asarray(spec["mean"], dtype=np.float32).reshape(3, 1, 1)
    s = np.asarray(spec["std"], dtype=np.float32).reshape(3, 1, 1)
    return (x / np.float32(spec["pixel_scale"]) - m) / s


def top_classes(logits: np.ndarray, categories: list[str], k: int) -> list[list[list]]:
    """Returns per video [[class name, softmax probability], ...] of the k most likely classes."""
    probs = softmax(logits)
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    return [[[categories[j], round(float(p[j]), 6)] for j in row] for p, row in zip(probs, order)]


def predict_videos(
    deployed: Deployed,
    paths: list[str],
    *,
    topk: int = 5,
    batch_size: int = 8,
    thresholds: list[float] | None = None,
    criterion: str = "confidence",
) -> tuple[list[dict], dict]:
    """Predicts every video of `paths`; returns (results in the order of `paths`, timing totals in seconds), as
    ops.tools.predict_run.predict_videos."""
    manifest, spec = deployed.manifest, deployed.manifest["input"]
    results: list[dict] = [{"video": p} for p in paths]
    timing = {"decode_s": 0.0, "model_s": 0.0, "picture_s": 0.0}
    for first in range(0, len(paths), batch_size):
        good = []
        for i in range(first, min(first + batch_size, len(paths))):
            start = time.perf_counter()
            try:
                frames, n = read_video(os.path.abspath(paths[i]), spec)
            except FrameReadError as exc:
                results[i]["error"] = str(exc)
                continue
            seconds = time.perf_counter() - start
            results[i].update(num_frames=n, decode_s=round(seconds, 4))
            timing["decode_s"] += seconds
            good.append((i, frames))
        if not good:
            continue
        start = time.perf_counter()
        x = normalize(np.stack([f for _, f in good]), spec)
        logits, exits = deployed.run(x, thresholds, criterion)
        seconds = time.perf_counter() - start
        timing["model_s"] += seconds
        tops = top_classes(logits, manifest["categories"], topk)
        for row, (i, _) in enumerate(good):
            exit_index = None if exits is None else int(exits[row])
            results[i].update(
                {
                    f"top{topk}": tops[row],
                    "gflops": round(manifest["gflops"][-1 if exit_index is None else exit_index], 6),
                    "exit": exit_index,
                    "model_s": round(seconds / len(good), 4),
                }
            )
    return results, timing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", metavar="DIR", help="a folder written by scripts/export.py --format onnx")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    p.add_argument("--topk", type=int, default=5, help="classes listed per video (5)")
    p.add_argument(
        "--exit_threshold", type=float, nargs="+", help="early exit: a threshold per exit before the last"
    )
    p.add_argument("--exit_criterion", choices=CRITERIA, help="(confidence, or the export's)")
    p.add_argument("--batch_size", type=int, default=8, help="videos per run of the graphs (8)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    p.add_argument("--quiet", action="store_true", help="accepted for scripts/predict.py's command lines")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.topk < 1 or a.batch_size < 1:
        parser.error("--topk and --batch_size must be >= 1")
    try:
        deployed = Deployed(a.folder, a.threads or None)
        given = deployed.manifest["exit"]
        values = a.exit_threshold if a.exit_threshold is not None else given["thresholds"]
        criterion = a.exit_criterion or given["criterion"]
        thresholds = None if values is None else exit_thresholds(values, deployed.num_exits)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results, timing = predict_videos(
        deployed, a.videos, topk=a.topk, batch_size=a.batch_size, thresholds=thresholds, criterion=criterion
    )
    print(report(results, timing, deployed.num_exits, "onnxruntime (CPU)", a.topk, a.batch_size))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
