"""What scripts/predict.py and the ONNX runtime (ops/tools/onnx_predict.py) share, without torch: the exit
thresholds given on the command line and the printed report."""

from __future__ import annotations

import json


def exit_thresholds(values: list[float], num_exits: int) -> list[float]:
    """Returns the E thresholds of `predict_with_exit` from the E - 1 given for the exits before the last
    (or E, the last one ignored: the last exit takes every video left); raises ValueError otherwise."""
    if num_exits < 2:
        raise ValueError("--exit_threshold: the model has one exit, so there is no early exit")
    if len(values) not in (num_exits - 1, num_exits):
        raise ValueError(
            f"--exit_threshold: the model has {num_exits} exits; give {num_exits - 1} thresholds (one per exit "
            "before the last)"
        )
    return [float(v) for v in values[: num_exits - 1]] + [-1e8]


def report(results: list[dict], timing: dict, num_exits: int, device: str, topk: int, batch_size: int) -> str:
    """Returns the printed report of `results` (scripts/predict.py's): a table per video, a timing line, and as
    its last line the JSON list."""
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['video']}: ERROR {r['error']}")
            continue
        lines.append(
            f"{r['video']}: {r['num_frames']} frames, decode {r['decode_s']:.3f} s, model {r['model_s']:.3f} s"
        )
        for rank, (name, prob) in enumerate(r[f"top{topk}"], 1):
            lines.append(f"  {rank}. {name:<30s} {100 * prob:6.2f}%")
        exit_text = "" if r["exit"] is None else f", exit {r['exit']} of 0-{num_exits - 1}"
        lines.append(f"  {r['gflops']:.3f} GFLOPs{exit_text}")
        for key in ("picture", "annotated_video"):
            if key in r:
                lines.append(f"  {key.replace('_', ' ')}: {r[key]}")
    done = [r for r in results if "error" not in r]
    n = max(len(done), 1)
    lines.append(
        f"{len(results)} videos, {len(results) - len(done)} unreadable; decode {timing['decode_s']:.2f} s "
        f"({timing['decode_s'] / n:.3f} s/video), model {timing['model_s']:.2f} s ({timing['model_s'] / n:.3f} "
        f"s/video) on {device} in batches of {batch_size}"
        + (f"; pictures {timing['picture_s']:.2f} s" if timing["picture_s"] else "")
    )
    lines.append(json.dumps(results))
    return "\n".join(lines)
