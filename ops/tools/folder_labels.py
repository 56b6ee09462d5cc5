"""Lists of a custom dataset from a folder per class (what `scripts/gen_label.py custom` writes).

`<root>/<class>/<video>.<ext>` (videos: .mp4 .avi .mkv .webm .mov) or `<root>/<class>/<video>/<frames>`
(frame folders, e.g. made by scripts/vid2img.py) become `classes.txt` (class folders in sorted order, line 1 =
label 0), `train.txt` and `val.txt` (`<class>/<video>[.<ext>] num_frames label`), the files that
`main.py custom RGB --categories ... --train_list ... --val_list ...` reads. Frame counts come from the
videos' demuxers or from the folders; unreadable videos and empty folders are reported and left out.
"""

from __future__ import annotations

import os

import numpy as np

from ops.data.video_io import FrameReadError, stream_index
from ops.data.video_paths import VIDEO_EXTS
from ops.tools.extract import frame_numbers, pool_map
from ops.tools.labels import write_list


def count_item(job: tuple[str, str | None]) -> int | str:
    """Returns the frame count of a video (template None) or of a frame folder, or why it has none."""
    path, template = job
    try:
        n = len(frame_numbers(path, template)) if template else stream_index(path).num_frames
    except (FrameReadError, OSError) as e:
        return str(e)
    return n if n > 0 else f"no frames in {path}"


def scan(root: str, videos: bool) -> tuple[list[str], list[tuple[str, int]]]:
    """Returns (class names, sorted) and [(item path relative to root, label)]: the videos (or frame folders) of
    each class folder of `root`."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"folder not found: {root}")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class folders (expected {root}/<class>/<video>)")
    items = []
    for label, name in enumerate(classes):
        for entry in sorted(os.scandir(os.path.join(root, name)), key=lambda e: e.name):
            is_video = entry.is_file() and os.path.splitext(entry.name)[1].lower() in VIDEO_EXTS
            if (is_video if videos else entry.is_dir()) and not entry.name.startswith("."):
                items.append((f"{name}/{entry.name}", label))
    return classes, items


def split_items(items: list[tuple[str, int]], val_fraction: float, seed: int) -> dict[str, list[int]]:
    """Returns {'train', 'val'}: item positions, a seeded `val_fraction` of each class (rounded, at least one
    when the class has two items or more) in val, in their original order."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"--val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    val: list[int] = []
    labels = np.array([label for _, label in items])
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        k = int(round(val_fraction * len(members)))
        k = max(k, 1) if val_fraction > 0 and len(members) > 1 else k
        val += rng.permutation(members)[:k].tolist()
    chosen = set(val)
    return {"train": [i for i in range(len(items)) if i not in chosen], "val": sorted(chosen)}


def label_folders(
    root: str,
    out_dir: str,
    *,
    videos: bool,
    template: str = "img_{:05d}.jpg",
    val_fraction: float = 0.2,
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
) -> dict:
    """Writes classes.txt, train.txt and val.txt of the class folders under `root` into `out_dir`. Returns
    {'files', 'rows': {split: n}, 'missing': {item: reason}, 'num_classes'}."""
    classes, items = scan(root, videos)
    jobs = [(os.path.join(root, path), None if videos else template) for path, _ in items]
    counts = pool_map(count_item, jobs, workers, "count frames", progress)
    os.makedirs(out_dir, exist_ok=True)
    files = [os.path.join(out_dir, name) for name in ("classes.txt", "train.txt", "val.txt")]
    with open(files[0], "w") as f:
        f.write("".join(c + "\n" for c in classes))
    missing = {items[i][0]: n for i, n in enumerate(counts) if isinstance(n, str)}
    rows = {}
    for name, path in zip(("train", "val"), files[1:]):
        chosen = split_items(items, val_fraction, seed)[name]
        kept = [(items[i][0], counts[i], [items[i][1]]) for i in chosen if not isinstance(counts[i], str)]
        rows[name] = write_list(path, kept, " ")
    return {"files": files, "rows": rows, "missing": missing, "num_classes": len(classes)}
