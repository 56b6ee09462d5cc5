"""Validation of a list file against its frame folders or videos (what scripts/validate_data.py runs):
malformed rows, labels out of range, missing folders or videos, frame count / numbering mismatches,
undecodable images or videos and random-access reads of a video that differ from decoding it from its start,
each reported with its `<list file>:<line>`; videos that random access reads more slowly than their keyframes
allow (no exact seek at some keyframes) are noted with how much slower.
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass

import numpy as np

from ops.data.lists import parse_list_row
from ops.data.video_decode import read_from_start, seek_plan
from ops.data.video_io import FrameReadError, read_frames
from ops.data.video_paths import VideoLocator
from ops.data.video_plan import VideoPlan, video_plan
from ops.tools.extract import frame_name, frame_numbers, pool_map

PROBLEM_KINDS = (
    "malformed",
    "label",
    "missing_folder",
    "frame_count",
    "bad_image",
    "missing_video",
    "bad_video",
    "random_access",
)
NOTE_KINDS = ("slow_seek",)  # reported, not problems: such videos read right, only more slowly


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


def sample_reads(n: int, seed: int, quick: bool) -> list[np.ndarray]:
    """Returns the 1-based frame numbers (ascending) of the random-access reads checked on a video of `n`
    frames: training-style clips (one random frame in each of 8 equal segments), single random frames, and
    the last frame; 3 + 3 + 1 reads, with `quick` 1 + 1 + 1."""
    rng = np.random.default_rng(seed)
    k, reps = min(8, n), 1 if quick else 3
    edges = np.linspace(0, n, k + 1)
    reads = [np.unique((edges[:-1] + rng.random(k) * np.diff(edges)).astype(int) + 1) for _ in range(reps)]
    return reads + [rng.integers(1, n + 1, 1) for _ in range(reps)] + [np.array([n])]


def decoded_frames(reads: list[np.ndarray], starts: np.ndarray) -> int:
    """Frames decoded by the reads (1-based frame numbers, ascending) when decoding can start at the 0-based
    positions `starts` (ascending, first 0): from a start up to a target, or on from the previous target."""
    total = 0
    for numbers in reads:
        targets = numbers - 1
        start = starts[np.searchsorted(starts, targets, side="right") - 1]
        prev = np.concatenate([[-1], targets[:-1]])
        total += int(np.where(seek_plan(targets, starts), targets - start + 1, targets - prev).sum())
    return total


def _slow_seek(video: str, plan: VideoPlan, reads: list[np.ndarray], per_read: float) -> str | None:
    """The note for a video whose seeks cannot start at every keyframe, or None."""
    keyframes = plan.keyframes[plan.keyframes > 0]
    missed = int(np.setdiff1d(keyframes, plan.starts()).size)
    singles = [np.array([t]) for t in range(1, plan.num_frames + 1)]
    ideal = decoded_frames(reads + singles, np.union1d(plan.keyframes, plan.starts()))
    ratio = decoded_frames(reads + singles, plan.starts()) / ideal
    if not missed or ratio <= 1:
        return None
    return (
        f"{video}: {missed} of its {len(keyframes)} keyframes after the first are no exact seek point "
        f"(reads decode forward from an earlier frame): random-access reads decode {ratio:.2f}x the frames "
        f"they would ({per_read * 1e3:.1f} ms per read here)"
    )


def check_video_file(job: tuple[str, VideoLocator, int, bool]) -> list[tuple[str, str]]:
    """Returns the problems and notes [(kind, message)] of one video; job = (list path, locator, listed
    num_frames, quick). Decodes it from its start (frame count, where reads can seek), then checks a sample of
    random-access reads (`sample_reads`) against decoding it from its start."""
    path, locator, n, quick = job
    try:
        video = locator.find(path)
    except FrameReadError as e:
        return [("missing_video", str(e))]
    if not os.path.isfile(video):
        return [("missing_video", f"no video file {video}")]
    try:
        plan = video_plan(video)
    except FrameReadError as e:
        return [("bad_video", str(e))]
    problems = []
    if plan.num_frames != n:
        index = f"; its index lists {plan.packets}" if plan.packets != plan.num_frames else ""
        problems.append(
            ("frame_count", f"listed {n} frames, decoding gives {plan.num_frames} ({video}{index})")
        )
    reads = sample_reads(plan.num_frames, zlib.crc32(path.encode()), quick)
    wanted = np.unique(np.concatenate(reads))
    try:
        reference = dict(zip(wanted.tolist(), read_from_start(video, wanted)))
        t0 = time.perf_counter()
        got = [read_frames(video, numbers) for numbers in reads]
        per_read = (time.perf_counter() - t0) / len(reads)
    except FrameReadError as e:
        return problems + [("bad_video", str(e))]
    wrong = sorted(
        {
            t
            for numbers, frames in zip(reads, got)
            for t, f in zip(numbers.tolist(), frames)
            if not np.array_equal(f, reference[t])
        }
    )
    if wrong:
        problems.append(
            (
                "random_access",
                f"{video}: random-access reads of frames {_short(wrong)} differ from decoding from the start",
            )
        )
    note = _slow_seek(video, plan, reads, per_read)
    return problems + ([("slow_seek", note)] if note else [])


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
    `video_root`, the videos instead (found as the data loader finds them, frame count, decodable frames,
    random-access reads equal to decoding from the start, and notes on slow seeking).
    Returns (number of rows, problems and notes in file order)."""
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
    """Returns a printable report: the first `max_show` problems, the first `max_show` notes, and a count per
    kind."""
    notes = [p for p in problems if p.kind in NOTE_KINDS]
    problems = [p for p in problems if p.kind not in NOTE_KINDS]
    lines = [str(p) for p in problems[:max_show]]
    if len(problems) > max_show:
        lines.append(f"... {len(problems) - max_show} more problems")
    lines += [str(p) for p in notes[:max_show]]
    if len(notes) > max_show:
        lines.append(f"... {len(notes) - max_show} more notes")
    counts = {k: sum(p.kind == k for p in problems) for k in PROBLEM_KINDS}
    bad_rows = len({p.where for p in problems})
    status = "OK" if not problems else f"{len(problems)} problems in {bad_rows} rows"
    lines.append(
        f"{list_path}: {rows} rows checked, {status} ("
        + ", ".join(f"{k}: {v}" for k, v in counts.items())
        + ")"
        + (
            f"; {len(notes)} videos seek more slowly than their keyframes allow ([slow_seek])"
            if notes
            else ""
        )
    )
    return "\n".join(lines)
