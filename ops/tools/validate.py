"""Validation of a list file against its frame folders or videos (what scripts/validate_data.py runs):
malformed rows, labels out of range, missing folders or videos, frame count / numbering mismatches and
undecodable images or videos, each reported with its `<list file>:<line>`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ops.data.lists import parse_list_row
from ops.data.video_io import FrameReadError, read_frames, stream_index
from ops.data.video_paths import VideoLocator
from ops.tools.extract import frame_name, frame_numbers, pool_map

PROBLEM_KINDS = (
    "malformed",
    "label",
    "missing_folder",
    "frame_count",
    "bad_image",
    "missing_video",
    "bad_video",
)


@dataclass(frozen=True)
class Problem:
    kind: str  # one of PROBLEM_KINDS
    where: str  # '<list file>:<line>'
    message: str

    def __str__(self) -> str:
        return f"{self.where}: [{self.kind}] {self.message}"


def image_error(path: str) -> str | None:
    """Returns why the image at `path` cannot be fully decoded (empty, truncated, not an image), else None."""
    from PIL import Image

    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as im:
            im.load()  # raises on truncated data (PIL's LOAD_TRUNCATED_IMAGES is off by default)
    except Exception as e:
        return f"cannot decode: {e}"
    return None


def _short(nums: list[int], k: int = 5) -> str:
    return ", ".join(map(str, nums[:k])) + (f", ... ({len(nums)} in all)" if len(nums) > k else "")


def check_video(job: tuple[str, int, str, bool]) -> list[tuple[str, str]]:
    """Returns the problems [(kind, message)] of one frame folder; job = (folder, listed num_frames,
    template, quick). Decodes every frame 1..n, or with quick only the first, middle and last."""
    folder, n, template, quick = job
    if not os.path.isdir(folder):
        return [("missing_folder", f"no frame folder {folder}")]
    found = frame_numbers(folder, template)
    present = set(found)
    problems = []
    missing = [t for t in range(1, n + 1) if t not in present]
    extra = [t for t in found if not 1 <= t <= n]
    if missing or extra:
        msg = f"listed {n} frames, folder has {len(found)} matching {template!r}"
        msg += f"; missing frames {_short(missing)}" if missing else ""
        msg += f"; frames beyond the listed range {_short(extra)}" if extra else ""
        problems.append(("frame_count", f"{msg} ({folder})"))
    wanted = sorted({1, (n + 1) // 2, n}) if quick else range(1, n + 1)
    for t in wanted:
        if t in present:
            path = os.path.join(folder, frame_name(template, t))
            err = image_error(path)
            if err:
                problems.append(("bad_image", f"{path}: {err}"))
    return problems


def check_video_file(job: tuple[str, VideoLocator, int, bool]) -> list[tuple[str, str]]:
    """Returns the problems [(kind, message)] of one video; job = (list path, locator, listed num_frames,
    quick). Counts its frames (demuxer) and decodes every frame, or with quick the first, middle and last."""
    path, locator, n, quick = job
    try:
        video = locator.find(path)
    except FrameReadError as e:
        return [("missing_video", str(e))]
    if not os.path.isfile(video):
        return [("missing_video", f"no video file {video}")]
    try:
        found = stream_index(video).num_frames
    except FrameReadError as e:
        return [("bad_video", str(e))]
    problems = []
    if found != n:
        problems.append(("frame_count", f"listed {n} frames, video has {found} ({video})"))
    wanted = sorted({1, (found + 1) // 2, found}) if quick else range(1, found + 1)
    try:
        read_frames(video, list(wanted))
    except FrameReadError as e:
        problems.append(("bad_video", str(e)))
    return problems


def validate_list(
    list_path: str,
    frames_root: str | None,
    *,
    template: str,
    num_classes: int,
    separator: str = " ",
    multi_label: bool = False,
    quick: bool = False,
    workers: int = 1,
    progress: bool = False,
    video_root: str | None = None,
    video_ext: str | None = None,
) -> tuple[int, list[Problem]]:
    """Checks every row of a list file: malformed line, label outside [0, num_classes), missing frame folder,
    frame count or numbering different from the listed num_frames, empty/truncated/undecodable images; with
    `video_root`, the videos instead (found as the data loader finds them, frame count, decodable frames).
    Returns (number of rows, problems in file order)."""
    locator = None if video_root is None else VideoLocator(video_root, video_ext)
    problems, jobs = [], []
    with open(list_path) as f:
        lines = list(enumerate(f, 1))
    rows = 0
    for lineno, line in lines:
        text = line.strip()
        if not text:
            continue
        rows += 1
        where = f"{list_path}:{lineno}"
        try:
            path, n, labels = parse_list_row(text, separator, multi_label)
        except ValueError as e:
            problems.append(Problem("malformed", where, str(e)))
            continue
        bad = [x for x in labels if not 0 <= x < num_classes]
        if bad:
            problems.append(Problem("label", where, f"label {bad[0]} outside [0, {num_classes}) for {path}"))
        if locator is None:
            jobs.append((where, (os.path.join(frames_root, path), n, template, quick)))
        else:
            jobs.append((where, (path, locator, n, quick)))
    check = check_video if locator is None else check_video_file
    results = pool_map(check, [j for _, j in jobs], workers, "validate", progress)
    problems += [Problem(kind, where, msg) for (where, _), found in zip(jobs, results) for kind, msg in found]
    problems.sort(key=lambda p: int(p.where.rsplit(":", 1)[1]))  # stable: a row's own order is kept
    return rows, problems


def summarize(list_path: str, rows: int, problems: list[Problem], max_show: int = 20) -> str:
    """Returns a printable report: the first `max_show` problems and a count per kind."""
    lines = [str(p) for p in problems[:max_show]]
    if len(problems) > max_show:
        lines.append(f"... {len(problems) - max_show} more problems")
    counts = {k: sum(p.kind == k for p in problems) for k in PROBLEM_KINDS}
    bad_rows = len({p.where for p in problems})
    status = "OK" if not problems else f"{len(problems)} problems in {bad_rows} rows"
    lines.append(
        f"{list_path}: {rows} rows checked, {status} ("
        + ", ".join(f"{k}: {v}" for k, v in counts.items())
        + ")"
    )
    return "\n".join(lines)
