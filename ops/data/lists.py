"""List files (`path num_frames label [label2 label3]`, 1-based frame numbers) and the TSN temporal samplers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_LABELS = 3


class ListFileError(ValueError):
    """A malformed list file row; the message starts with '<file>:<line>: '."""


@dataclass(frozen=True)
class VideoRecord:
    path: str
    num_frames: int
    labels: tuple[int, ...]


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


def read_list_file(list_path: str, separator: str, num_classes: int, multi_label: bool) -> list[VideoRecord]:
    """Return the VideoRecords of a list file (rows `path num_frames label [label2 label3]`).

    Blank lines are skipped.

    Raises ListFileError('<file>:<line>: ...') for malformed rows, non-integer fields, labels outside
    [0, num_classes) and num_frames < 1. Multi-label rows keep their distinct labels sorted (as the original).
    """
    records = []
    with open(list_path) as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            try:
                path, num_frames, labels = parse_list_row(text, separator, multi_label)
                labels = sorted(set(labels))
                bad = [x for x in labels if not 0 <= x < num_classes]
                if bad:
                    raise ValueError(f"label {bad[0]} outside [0, {num_classes})")
            except ValueError as e:
                raise ListFileError(f"{list_path}:{lineno}: {e}") from None
            records.append(VideoRecord(path, num_frames, tuple(labels)))
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
