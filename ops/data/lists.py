"""List files (`path num_frames label [label2 label3]`, 1-based frame numbers) and the temporal samplers: TSN
segments, Efficient-3DCNNs loop-padded clips, TAdaConv interval clips."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

MAX_LABELS = 3


class ListFileError(ValueError):
    """A malformed list file row; the message starts with '<file>:<line>: '."""


@dataclass(frozen=True)
class VideoRecord:
    path: str
    num_frames: int
    labels: tuple[int, ...]
    line: int = field(default=0, compare=False)  # its line in the list file (1-based; 0: not from a file)


def parse_list_row(text: str, separator: str, multi_label: bool) -> tuple[str, int, list[int]]:
    """Returns (path, num_frames, labels) of one list row; raises ValueError with the reason.

    Rows are `path num_frames label` (3 fields; more space-separated fields when the path holds spaces, the
    Mini-Kinetics rule), or `path num_frames label [label2 label3]` for multi-label lists."""
    fields = text.split() if separator == " " else [x.strip() for x in text.split(separator)]
    if multi_label and 3 <= len(fields) <= 2 + MAX_LABELS:
        path, n, labels = fields[0], fields[1], fields[2:]
    elif not multi_label and len(fields) == 3:
        path, n, labels = fields[0], fields[1], fields[2:]
    elif not multi_label and len(fields) > 3 and separator == " ":
        path, n, labels = " ".join(fields[:-2]), fields[-2], fields[-1:]
    else:
        want = "path num_frames label [label2 label3]" if multi_label else "path num_frames label"
        raise ValueError(f"expected '{want}' ({separator!r} separated), got {len(fields)} fields")
    try:
        num_frames, label_ints = int(n), [int(x) for x in labels]
    except ValueError:
        raise ValueError(f"num_frames and labels must be integers in {text!r}") from None
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not path:
        raise ValueError("empty video path")
    return path, num_frames, label_ints


def read_list_file(
    list_path: str, separator: str, num_classes: int, multi_label: bool, duplicates: str = "error"
) -> list[VideoRecord]:
    """Return the VideoRecords of a list file (rows `path num_frames label [label2 label3]`), UTF-8 (a byte-order
    mark and CRLF line ends are accepted; paths may hold spaces and any non-ASCII character).

    Blank lines are skipped. Raises ListFileError('<file>:<line>: ...') for malformed rows, non-integer fields,
    labels outside [0, num_classes), num_frames < 1 and undecodable text. A path listed twice is an error naming
    both lines (`duplicates='error'`) or its later rows are dropped with a warning naming them ('skip').
    Multi-label rows keep their distinct labels sorted (as the original).
    """
    records, seen = [], {}
    with open(list_path, "rb") as f:
        lines = f.read().splitlines()  # \n, \r\n and \r line ends
    for lineno, raw in enumerate(lines, 1):
        try:
            text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").strip()  # -sig: a byte-order mark
        except UnicodeDecodeError as e:
            raise ListFileError(
                f"{list_path}:{lineno}: not UTF-8 text ({e.reason} at byte {e.start})"
            ) from None
        if not text:
            continue
        try:
            path, num_frames, labels = parse_list_row(text, separator, multi_label)
            labels = sorted(set(labels))
            bad = [x for x in labels if not 0 <= x < num_classes]
            if bad:
                raise ValueError(f"label {bad[0]} outside [0, {num_classes})")
            key = os.path.normpath(path)
            if key in seen and duplicates == "error":
                raise ValueError(
                    f"{path!r} is listed again (first at line {seen[key]}); remove one row, or pass "
                    "--on_bad_video skip to keep the first"
                )
        except ValueError as e:
            raise ListFileError(f"{list_path}:{lineno}: {e}") from None
        if key in seen:
            warnings.warn(
                f"{list_path}:{lineno}: {path!r} is listed again (first at line {seen[key]}); row skipped",
                stacklevel=2,
            )
            continue
        seen[key] = lineno
        records.append(VideoRecord(path, num_frames, tuple(labels), lineno))
    if not records:
        raise ListFileError(f"{list_path}:0: list file has no rows")
    return records


def sample_train(num_frames: int, T: int, rng: np.random.Generator) -> np.ndarray:
    """Return (T,) int64 1-based frame numbers floor((i + U_i) / T * num_frames) + 1, U = rng.random(T)."""
    return (np.floor((rng.random(T) + np.arange(T)) / T * num_frames) + 1).astype(np.int64)


def sample_eval(num_frames: int, T: int, clip: int = 0, num_clips: int = 1) -> np.ndarray:
    """Return (T,) int64 1-based centres floor((i + o) / T * num_frames) + 1, o = (clip + 0.5) / num_clips."""
    if not 0 <= clip < num_clips:
        raise ValueError(f"clip {clip} outside [0, {num_clips})")
    return (np.floor((np.arange(T) + (clip + 0.5) / num_clips) / T * num_frames) + 1).astype(np.int64)


def _loop_pad(window: list[int], length: int) -> list[int]:
    """Repeats `window` (in order) until it has at least `length` entries (the Efficient-3DCNNs loop padding)."""
    out = list(window)
    while len(out) < length:
        out += window[: length - len(out)]
    return out


def sample_clip_loop(
    num_frames: int,
    T: int,
    stride: int,
    rng: np.random.Generator | None = None,
    clip: int = 0,
    num_clips: int = 1,
) -> np.ndarray:
    """Returns (T,) int64 1-based frame numbers of an Efficient-3DCNNs clip: every `stride`-th frame of a window
    of T * stride frames, the window loop-padded when the video is shorter.

    Training (rng given; TemporalRandomCrop): the window starts at a uniform integer in [0, max(0, n - T*stride
    - 1)] (the original's upper bound, one short of n - T*stride). Evaluation with one clip (TemporalCenterCrop on
    the whole video): it starts at max(0, n // 2 - T*stride // 2). With num_clips > 1 the original makes windows
    of T frames starting at 1, 1 + step, ... (step = max(1, ceil((n - 1 - T) / (num_clips - 1)))) and centre-crops
    each; clip c is the c-th of those windows (the original adds further windows for videos of about T frames or
    fewer; here every video has num_clips)."""
    length = T * stride
    if rng is not None:
        start = int(rng.integers(0, max(0, num_frames - length - 1) + 1))
        window = list(range(start, min(start + length, num_frames)))
    elif num_clips == 1:
        start = max(0, num_frames // 2 - length // 2)
        window = list(range(start, min(start + length, num_frames)))
    else:
        if not 0 <= clip < num_clips:
            raise ValueError(f"clip {clip} outside [0, {num_clips})")
        step = max(1, math.ceil((num_frames - 1 - T) / (num_clips - 1)))
        first = min(clip * step, num_frames - 1)
        sub = list(range(first, min(first + T, num_frames)))  # the original's window of T frames
        begin = max(0, len(sub) // 2 - length // 2)  # TemporalCenterCrop on it
        window = sub[begin : begin + length]
    return np.asarray(_loop_pad(window, length)[::stride], dtype=np.int64) + 1


def sample_clip_interval(
    num_frames: int,
    T: int,
    rate: int,
    rng: np.random.Generator | None = None,
    clip: int = 0,
    num_clips: int = 1,
) -> np.ndarray:
    """Returns (T,) int64 1-based frame numbers of a TAdaConv interval_based clip: linspace(start, start + T*rate -
    1, T) truncated to integers and clamped to the video. The start is uniform in [0, max(n - T*rate, 0)] in
    training (rng given), the middle of that range for one evaluation clip, and max * c / num_clips for clip c of
    several (frames at the dataset's rate: TARGET_FPS equal to the video's)."""
    span = T * rate
    top = max(num_frames - span, 0)
    if rng is not None:
        start = float(rng.uniform(0, top))
    elif num_clips == 1:
        start = top / 2
    else:
        if not 0 <= clip < num_clips:
            raise ValueError(f"clip {clip} outside [0, {num_clips})")
        start = top * clip / num_clips
    import torch  # here: the ONNX runtime (ops/tools/onnx_predict.py) imports this module without torch

    index = torch.linspace(start, start + span - 1, T).clamp(0, num_frames - 1).long()  # as the original
    return index.numpy() + 1
