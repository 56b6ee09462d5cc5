"""Frame extraction (PyAV): videos -> JPEG frame folders, as scripts/vid2img.py writes them, plus the frame
file-name templates that the label and validation tools share.

Frame numbers are 1-based (the number in the file name). A template is either Python style
(`img_{:05d}.jpg`) or printf style (`image_%05d.jpg`, as ffmpeg and the original tools write it).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

DONE_MARKER = ".done"  # written last into a frame folder: a folder without it is redone
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".3gp")
_PLACEHOLDER = re.compile(r"%0?\d*d|\{:0?\d*d\}")


def frame_name(template: str, index: int) -> str:
    """Returns the file name of 1-based frame `index` (`img_{:05d}.jpg` or `image_%05d.jpg` style)."""
    return template % index if "%" in template else template.format(index)


def template_regex(template: str) -> re.Pattern:
    """Returns a regex matching the template's file names, the frame number in group 1."""
    m = _PLACEHOLDER.search(template)
    if m is None:
        raise ValueError(f"frame template {template!r} has no number placeholder ({{:05d}} or %05d)")
    return re.compile(re.escape(template[: m.start()]) + r"(\d+)" + re.escape(template[m.end() :]) + r"\Z")


def frame_numbers(folder: str, template: str) -> list[int]:
    """Returns the sorted frame numbers of the files in `folder` that match `template`."""
    rx = template_regex(template)
    return sorted(int(m.group(1)) for name in os.listdir(folder) if (m := rx.match(name)))


def pool_map(
    fn: Callable, items: list, workers: int, desc: str, progress: bool, on_result: Callable | None = None
) -> list:
    """Returns [fn(x) for x in items] in order, over `workers` processes, with a tqdm bar;
    `on_result(r)` runs on each result as it arrives (print with tqdm.write to keep the bar intact)."""
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc=desc, unit="video", disable=not progress, file=sys.stderr)
    out = []
    if workers <= 1 or len(items) <= 1:
        results = map(fn, items)
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap(fn, items, chunksize=1)
    try:
        for r in results:
            out.append(r)
            if on_result is not None:
                on_result(r)
            bar.update(1)
    finally:
        bar.close()
        if workers > 1 and len(items) > 1:
            pool.close()
            pool.join()
    return out


@dataclass(frozen=True)
class ExtractResult:
    video: str
    out_dir: str
    status: str  # 'done' | 'skipped' (finished earlier) | 'failed'
    num_frames: int = 0
    error: str = ""


def _target_size(w: int, h: int, short_side: int) -> tuple[int, int]:
    if short_side <= 0:
        return w, h
    if w <= h:  # the short side exactly as asked (ffmpeg scale=-1:331 also allows odd sizes)
        return short_side, max(1, round(h * short_side / w))
    return max(1, round(w * short_side / h)), short_side


def extract_frames(
    video_path: str,
    out_dir: str,
    *,
    short_side: int = 256,
    fps: float | None = None,
    template: str = "img_{:05d}.jpg",
    quality: int = 95,
) -> int:
    """Decodes a video into `out_dir/<template % t>` (t = 1, 2, ...), short side resized to `short_side`
    (<= 0: keep), resampled to `fps` if given (frames dropped or repeated by timestamp). Returns the
    number of frames written; raises on an unreadable or empty video."""
    import av
    import cv2

    os.makedirs(out_dir, exist_ok=True)
    written = 0
    with av.open(video_path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        size = None
        t0 = None
        for frame in container.decode(stream):
            if size is None:
                size = _target_size(frame.width, frame.height, short_side)
            repeats = 1
            if fps:
                t = float(frame.time) if frame.time is not None else written / fps
                t0 = t if t0 is None else t0
                # output frame k (0-based) is the first decoded frame at or after time k / fps:
                # source frames between two output times are dropped, a longer gap repeats a frame
                repeats = max(0, int((t - t0) * fps + 1e-6) + 1 - written)
            if repeats == 0:
                continue
            rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="AREA")
            for _ in range(repeats):
                written += 1
                if not cv2.imwrite(
                    os.path.join(out_dir, frame_name(template, written)),
                    rgb[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, quality],
                ):
                    raise OSError(f"cannot write frames to {out_dir}")
    if written == 0:
        raise ValueError("no frames decoded")
    return written


def extract_one(job: tuple[str, str, dict]) -> ExtractResult:
    """Returns the result of extracting one video (job = (video, out_dir, extract_frames kwargs)); an
    existing `.done` marker means skip; a failed video leaves no folder behind."""
    video, out_dir, kw = job
    marker = os.path.join(out_dir, DONE_MARKER)
    if os.path.exists(marker):
        with open(marker) as f:
            text = f.read().strip()
        return ExtractResult(video, out_dir, "skipped", int(text) if text.isdigit() else 0)
    if os.path.isdir(out_dir):  # a partial folder from an interrupted run
        shutil.rmtree(out_dir)
    try:
        n = extract_frames(video, out_dir, **kw)
    except Exception as e:  # PyAV raises many error types for corrupt input; none may end the batch
        shutil.rmtree(out_dir, ignore_errors=True)
        return ExtractResult(video, out_dir, "failed", error=f"{type(e).__name__}: {e}")
    with open(marker, "w") as f:
        f.write(f"{n}\n")
    return ExtractResult(video, out_dir, "done", n)


def find_videos(video_dir: str, exts: Iterable[str] = VIDEO_EXTS) -> list[str]:
    """Returns the video files under `video_dir` (recursively, sorted), by extension."""
    exts = tuple(e.lower() for e in exts)
    found = []
    for d, _, files in os.walk(video_dir):
        found += [os.path.join(d, f) for f in files if f.lower().endswith(exts)]
    return sorted(found)


def extract_folder(
    video_dir: str,
    out_root: str,
    *,
    workers: int = 1,
    progress: bool = False,
    exts: Iterable[str] = VIDEO_EXTS,
    **kw,
) -> list[ExtractResult]:
    """Extracts every video under `video_dir` to `out_root/<relative dir>/<video stem>/` (class
    sub-folders, as in Kinetics or UCF101, are kept). Returns one ExtractResult per video; failures are
    also printed to stderr as they happen."""
    jobs, seen = [], {}
    results = []
    for video in find_videos(video_dir, exts):
        rel = os.path.splitext(os.path.relpath(video, video_dir))[0]
        if rel in seen:  # a.mp4 and a.avi would share one frame folder
            results.append(
                ExtractResult(
                    video, os.path.join(out_root, rel), "failed", error=f"same frame folder as {seen[rel]}"
                )
            )
            continue
        seen[rel] = video
        jobs.append((video, os.path.join(out_root, rel), kw))

    def report(r: ExtractResult) -> None:
        if r.status == "failed":
            from tqdm import tqdm

            tqdm.write(f"FAILED {r.video}: {r.error}", file=sys.stderr)

    for r in results:
        report(r)
    return results + pool_map(extract_one, jobs, workers, "vid2img", progress, report)


def extract_summary(results: list[ExtractResult]) -> str:
    """Returns the end-of-run report: counts per status and every failed video with its error."""
    count = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    lines = [f"FAILED {r.video}: {r.error}" for r in results if r.status == "failed"]
    lines.append(
        f"{len(results)} videos: {count['done']} extracted, {count['skipped']} already done, "
        f"{count['failed']} failed"
    )
    return "\n".join(lines)
