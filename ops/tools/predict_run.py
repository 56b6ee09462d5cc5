"""The prediction run of scripts/predict.py: decode, batch, predict, draw, and the printed report.

`predict_videos` returns one result per video, in the order given: `video`, `top{k}` [[class, probability],
...], `gflops` (per video, the exit taken), `exit` (None without early exit), `num_frames`, `decode_s`,
`model_s` (its share of its batch), `picture` / `annotated_video` when drawn; or `video` and `error`.
"""

from __future__ import annotations

import os
import sys
import time

import torch

from ops.tools.predict import (
    Predictor,
    batches,
    decisions_of,
    frames_for_picture,
    run_batch,
    top_classes,
    video_dataset,
)
from ops.tools.predict_report import report as report_text
from ops.tools.visualize import annotated_video, decision_picture, save_png


def _picture_stem(path: str, used: set[str]) -> str:
    """Returns a file stem for the video's pictures, unique among `used` (which it joins)."""
    stem = os.path.splitext(os.path.basename(path))[0] or "video"
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}_{n}"
    used.add(name)
    return name


def _header(result: dict, topk: int, num_exits: int) -> list[str]:
    name, prob = result[f"top{topk}"][0]
    line = f"predicted: {name} ({100 * prob:.1f}%)   {result['gflops']:.3f} GFLOPs"
    if result["exit"] is not None:
        line += f"   exit {result['exit']} of 0-{num_exits - 1}"
    return [f"{os.path.basename(result['video'])} ({result['num_frames']} frames)", line]


def predict_videos(
    predictor: Predictor,
    paths: list[str],
    *,
    topk: int = 5,
    batch_size: int = 8,
    workers: int = 0,
    thresholds: list[float] | None = None,
    criterion: str = "confidence",
    visualize: str | None = None,
    visualize_video: bool = False,
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Predicts every video of `paths`; returns (results in the order of `paths`, timing totals in seconds:
    decode_s, model_s, picture_s). Pictures go to `visualize` (a folder) as <video name>.png (and .mp4)."""
    from tqdm import tqdm

    results: list[dict] = [{"video": p} for p in paths]
    dataset, errors = video_dataset(predictor, paths)
    for i, error in errors.items():
        results[i]["error"] = error
    readable = [i for i in range(len(paths)) if i not in errors]
    timing = {"decode_s": 0.0, "model_s": 0.0, "picture_s": 0.0}
    if dataset is None:
        return results, timing
    model, gflops, used = predictor.model, predictor.gflops, set()
    loader = batches(dataset, batch_size, workers)
    for items in tqdm(loader, desc="predict", unit="batch", disable=not progress, file=sys.stderr):
        good = []
        for j, frames, error, seconds in items:
            result = results[readable[j]]
            result.update(num_frames=dataset.records[j].num_frames, decode_s=round(seconds, 4))
            timing["decode_s"] += seconds
            if error is None:
                good.append((j, frames))
            else:
                result["error"] = error
        if not good:
            continue
        x = torch.stack([f for _, f in good])
        start = time.perf_counter()
        logits, exits, out = run_batch(predictor, x, thresholds, criterion, outputs=False)
        seconds = time.perf_counter() - start
        timing["model_s"] += seconds
        tops = top_classes(logits, predictor.categories, topk)
        for row, (j, _) in enumerate(good):
            exit_index = None if exits is None else int(exits[row])
            results[readable[j]].update(
                {
                    f"top{topk}": tops[row],
                    "gflops": round(gflops[-1 if exit_index is None else exit_index], 6),
                    "exit": exit_index,
                    "model_s": round(seconds / len(good), 4),
                }
            )
        if visualize:
            start = time.perf_counter()
            if out is None:  # early exit ran without a full forward: one more for the decisions
                out = run_batch(predictor, x, None, criterion, outputs=True)[2]
            for row, (j, frames) in enumerate(good):
                result = results[readable[j]]
                decisions = decisions_of(model, out, row)
                _draw(
                    predictor, dataset, j, frames, decisions, result, topk, visualize, used, visualize_video
                )
            timing["picture_s"] += time.perf_counter() - start
    return results, timing


def _draw(predictor, dataset, j, frames, decisions, result, topk, folder, used, video) -> None:
    """Writes one video's picture (and with `video` its annotated MP4) into `folder`; records their paths."""
    numbers = dataset.frame_numbers(dataset.records[j])[0]
    header = _header(result, topk, len(predictor.gflops))
    picture = decision_picture(frames_for_picture(frames), numbers, decisions, header)
    stem = os.path.join(folder, _picture_stem(result["video"], used))
    result["picture"] = save_png(stem + ".png", picture.image)
    if video:
        view = (predictor.cfg.input_size, dataset.scale_size)
        result["annotated_video"] = annotated_video(
            result["video"], stem + ".mp4", numbers, decisions, header[1], view
        )


def report(results: list[dict], timing: dict, predictor: Predictor, topk: int, batch_size: int) -> str:
    """Returns the printed report: a table per video, a timing line, and as its last line the JSON list."""
    return report_text(results, timing, len(predictor.gflops), str(predictor.device), topk, batch_size)
