"""Dataset table: where each dataset of the original code lives under the data root, and how to read it.

The on-disk layouts are the original ones (TSM `ops/data/dataset_config.py` for something/somethingv2/jester/
kinetics/ucf101/hmdb51, the ActivityNet-family `return_dataset(dataset, data_dir)` for actnet/fcvid/minik),
so existing frame folders and list files work unchanged. Bugs of the original fixed here, knowingly:
- the root comes from an argument or env ADAFOCUS_DATA, not a hard-coded ROOT_DATASET;
- jester's category file is joined with the root (UA read it relative to the CWD);
- kinetics' frame root is `<root>/kinetics/images` joined with a separator (UA: ROOT + 'kinetics/images'),
  and its list files are under the root (UA: relative to the CWD);
- actnet/fcvid/minik accept both frame prefixes `image_` and `img_` (see `_detect_template`).
A dataset outside the table is `custom`: its category file, list files and frame (or video) folder are given
as paths (`custom_config`, the command line's --categories --train_list --val_list --frames_root|--video_root).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

ENV_ROOT = "ADAFOCUS_DATA"
AN_FAMILY = ("actnet", "fcvid", "minik")
DATASETS = ("kinetics", "something", "somethingv2", "jester", "ucf101", "hmdb51") + AN_FAMILY + ("synthetic",)
TOOL_FRAMES = "python scripts/vid2img.py (videos -> frame folders)"
TOOL_LISTS = "python scripts/gen_label.py (category file + list files)"
TOOL_SYNTHETIC = "python scripts/make_synthetic.py (or ops.data.synthetic.ensure_synthetic)"
CUSTOM = "custom"  # a dataset given by its files (custom_config)
TOOL_CUSTOM_LISTS = "a text file with one row `path num_frames label` per video (README: Your own data)"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder, list file or category file is missing; the message names the path and the tool."""


@dataclass(frozen=True)
class DatasetConfig:
    """Resolved paths and properties of one dataset (see `get_dataset_config`)."""

    name: str
    num_classes: int
    categories: list[str] | None  # None where the original uses a bare class count (kinetics)
    frames_root: str  # frame folders: <frames_root>/<list path>/<image_tmpl.format(t)>
    train_list: str
    val_list: str
    image_tmpl: str
    separator: str  # ' ' or ','
    multi_label: bool  # up to 3 labels per video, target padded with -1 (actnet, fcvid)
    flip: bool  # horizontal flip allowed in training (never for something*/jester: direction is the label)
    dataset_dir: str = ""  # the dataset's own folder under the root
    video_root: str | None = None  # default folder of raw videos <path><ext> (synthetic: <dir>/videos)


def resolve_root(root: str | None) -> str:
    """Return the data root: `root` argument, else env ADAFOCUS_DATA, else raise DatasetNotFoundError."""
    root = root or os.environ.get(ENV_ROOT)
    if not root:
        raise DatasetNotFoundError(
            f"no dataset root given: pass --root_dataset DIR (root=...) "
            f"or set the environment variable {ENV_ROOT}"
        )
    return os.path.abspath(os.path.expanduser(root))


def missing_hint(name: str, what: str) -> str:
    """Return the tool that creates `what` ('frames' | 'lists') of dataset `name`."""
    if name == "synthetic":
        return TOOL_SYNTHETIC
    if name == CUSTOM and what == "lists":
        return TOOL_CUSTOM_LISTS
    if what == "frames":
        return TOOL_FRAMES
    if name in ("fcvid", "minik"):  # gen_label has no reader for these: the original repos ship the lists
        return (
            "the category/list files shipped with the original code (AR-Net splits); frames: " + TOOL_FRAMES
        )
    return TOOL_LISTS


def require_path(path: str, name: str, what: str, kind: str) -> str:
    """Return `path` if it exists, else raise DatasetNotFoundError naming it and the tool that makes it."""
    if not os.path.exists(path):
        raise DatasetNotFoundError(
            f"{name}: {kind} not found: {path}\n  create it with: {missing_hint(name, what)}"
        )
    return path


_NUMBERED = re.compile(r"(\d+)\s+(\S.*?)\s*")


def numbered_class_names(lines: list[tuple[int, str]], path: str) -> list[str] | None:
    """Returns the class names of category-file lines [(line number, text)] (blank lines left out) when every
    line is `<number> <name>`, as UCF101's classInd.txt (`1 ApplyEyeMakeup`): each name at its number, the
    numbers 1..N (or 0..N-1) in any order. Returns None when some line is not of that form (a file of bare
    names); raises ValueError('<file>:<line>: ...') for a number that repeats or lies outside."""
    found = [(lineno, _NUMBERED.fullmatch(text.strip())) for lineno, text in lines]
    if not found or not all(m for _, m in found):
        return None
    base = 0 if any(int(m.group(1)) == 0 for _, m in found) else 1
    names: list[str | None] = [None] * len(found)
    first: dict[int, int] = {}
    for lineno, m in found:
        number = int(m.group(1))
        if not base <= number < base + len(found):
            raise ValueError(
                f"{path}:{lineno}: class number {number} outside {base}..{base + len(found) - 1} "
                f"({len(found)} lines '<number> <name>'): number the classes 1..N, one per line"
            )
        if number in first:
            raise ValueError(f"{path}:{lineno}: class number {number} repeats line {first[number]}")
        first[number], names[number - base] = lineno, m.group(2)
    return names


def _read_categories(path: str, name: str) -> list[str]:
    """Class names of a category file: one name per line, or `<number> <name>` lines (numbered_class_names)."""
    require_path(path, name, "lists", "category file")
    with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not part of the first name
        cats = [line.rstrip("\r\n") for line in f]
    while cats and not cats[-1].strip():  # tolerate trailing blank lines
        cats.pop()
    if not cats:
        raise DatasetNotFoundError(f"{name}: category file is empty: {path}")
    numbered = numbered_class_names([(i, c) for i, c in enumerate(cats, 1) if c.strip()], path)
    return cats if numbered is None else numbered


def _detect_template(frames_root: str, candidates: tuple[str, ...]) -> str:
    """Pick the frame template whose frame 1 exists in the first video folder; default the first candidate.

    The AN family config expects `image_%05d.jpg`, but the original extraction tool (ops/video_jpg.py) writes
    `img_%05d.jpg` by default (and V1's minik used `image_`), so both are accepted.
    """
    try:
        with os.scandir(frames_root) as it:
            for entry in it:
                if entry.is_dir():
                    for tmpl in candidates:
                        if os.path.exists(os.path.join(entry.path, tmpl.format(1))):
                            return tmpl
                    break
    except OSError:
        pass
    return candidates[0]


def _tsm_table(name: str) -> tuple[str, str | int, str, str, str, str]:
    """Return (subfolder, category file or class count, frames dir, train list, val list, template)."""
    sth = {
        "something": ("something-something-v1", "20bn-something-something-v1", "{:05d}.jpg"),
        "somethingv2": ("something-something-v2", "20bn-something-something-v2-frames", "{:06d}.jpg"),
    }
    if name in sth:
        d, frames, tmpl = sth[name]
        return d, "category.txt", frames, "train_videofolder.txt", "val_videofolder.txt", tmpl
    if name == "jester":
        return (
            "jester",
            "category.txt",
            "20bn-jester-v1",
            "train_videofolder.txt",
            "val_videofolder.txt",
            "{:05d}.jpg",
        )
    if name == "kinetics":
        return (
            "kinetics",
            400,
            "images",
            "labels/train_videofolder.txt",
            "labels/val_videofolder.txt",
            "img_{:05d}.jpg",
        )
    if name == "ucf101":
        return (
            "UCF101",
            "labels/classInd.txt",
            "jpg",
            "file_list/ucf101_rgb_train_split_1.txt",
            "file_list/ucf101_rgb_val_split_1.txt",
            "img_{:05d}.jpg",
        )
    if name == "hmdb51":
        return (
            "HMDB51",
            "labels/classInd.txt",
            "images",
            "splits/hmdb51_rgb_train_split_1.txt",
            "splits/hmdb51_rgb_val_split_1.txt",
            "img_{:05d}.jpg",
        )
    if name == "synthetic":
        return (
            "synthetic",
            "category.txt",
            "frames",
            "train_videofolder.txt",
            "val_videofolder.txt",
            "img_{:05d}.jpg",
        )
    raise KeyError(name)


def _an_config(name: str, data_dir: str) -> DatasetConfig:
    require_path(data_dir, name, "lists", "dataset folder (--data_dir)")
    if name == "minik":
        cats = _read_categories(os.path.join(data_dir, "minik_classInd.txt"), name)
        # UA/V2 keep minik frames directly in data_dir, V1 in data_dir/frames: use whichever exists.
        frames = os.path.join(data_dir, "frames")
        frames = frames if os.path.isdir(frames) else data_dir
        lists = ("mini_train_videofolder.txt", "mini_val_videofolder.txt")
        sep, multi, tmpls = " ", False, ("img_{:05d}.jpg", "image_{:05d}.jpg")
    else:
        cats = _read_categories(os.path.join(data_dir, "classInd.txt"), name)
        if name == "fcvid" and len(cats) != 239:
            raise ValueError(
                f"fcvid: {os.path.join(data_dir, 'classInd.txt')} has {len(cats)} lines, expected 239"
            )
        frames = os.path.join(data_dir, "frames")
        lists = (f"{name}_train_split.txt", f"{name}_val_split.txt")
        sep, multi, tmpls = ",", True, ("image_{:05d}.jpg", "img_{:05d}.jpg")
    return DatasetConfig(
        name=name,
        num_classes=len(cats),
        categories=cats,
        frames_root=frames,
        train_list=os.path.join(data_dir, lists[0]),
        val_list=os.path.join(data_dir, lists[1]),
        image_tmpl=_detect_template(frames, tmpls),
        separator=sep,
        multi_label=multi,
        flip=True,
        dataset_dir=data_dir,
    )


def get_dataset_config(name: str, root: str | None = None, data_dir: str | None = None) -> DatasetConfig:
    """Return the DatasetConfig of `name`.

    Root: `root` > env ADAFOCUS_DATA. ActivityNet family: `data_dir` > <root>/<name>.

    Raises DatasetNotFoundError (naming the path and the tool that makes it) when the dataset folder or its
    category file is missing; list files and frames are checked when a VideoDataset opens them.
    """
    if name == CUSTOM:
        raise ValueError(
            "the custom dataset is given by its files: custom_config(categories=..., train_list=..., "
            "val_list=..., frames_root=... or video_root=...)"
        )
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if name in AN_FAMILY:
        return _an_config(
            name, os.path.abspath(data_dir) if data_dir else os.path.join(resolve_root(root), name)
        )
    if data_dir:
        raise ValueError(
            f"--data_dir is the ActivityNet-family form ({', '.join(AN_FAMILY)}); "
            f"for {name} pass the data root instead"
        )
    sub, cat, frames, train, val, tmpl = _tsm_table(name)
    base = os.path.join(resolve_root(root), sub)
    require_path(base, name, "frames", "dataset folder")
    cats = _read_categories(os.path.join(base, cat), name) if isinstance(cat, str) else None
    if name == "synthetic":
        from ops.data.synthetic import (
            FLIP_ALLOWED,  # the generator decides whether its classes survive a flip
        )

        flip = FLIP_ALLOWED
    else:
        flip = name not in ("something", "somethingv2", "jester")
    video_root = os.path.join(base, "videos") if name == "synthetic" else None
    return DatasetConfig(
        name=name,
        num_classes=len(cats) if cats is not None else int(cat),
        categories=cats,
        frames_root=os.path.join(base, frames),
        train_list=os.path.join(base, train),
        val_list=os.path.join(base, val),
        image_tmpl=tmpl,
        separator=" ",
        multi_label=False,
        flip=flip,
        dataset_dir=base,
        video_root=video_root,
    )


def python_template(template: str) -> str:
    """Returns a frame-name template in str.format style: `img_{:05d}.jpg` as it is, printf style
    `image_%05d.jpg` (what ffmpeg and vid2img --template take) converted; raises ValueError without a number."""
    converted = re.sub(r"%(0?)(\d*)d", lambda m: "{:" + m.group(1) + m.group(2) + "d}", template)
    try:
        if converted.format(1) == converted.format(2):
            raise ValueError
    except (ValueError, IndexError, KeyError):
        raise ValueError(
            f"frame template {template!r} needs one number placeholder, e.g. img_{{:05d}}.jpg or img_%05d.jpg"
        ) from None
    return converted


def read_class_names(path: str, name: str = CUSTOM) -> list[str]:
    """Returns the class names of a category file: one per line (label i = line i + 1), or `<number> <name>`
    lines as UCF101/HMDB51 classInd.txt (label i = number i + 1, or number i where they start at 0); raises
    DatasetNotFoundError when it is missing or empty and ValueError('<file>:<line>: ...') for a blank or
    repeated name or number."""
    cats = _read_categories(path, name)
    seen: dict[str, int] = {}
    for lineno, cat in enumerate(cats, 1):
        if not cat.strip():
            raise ValueError(f"{path}:{lineno}: empty class name")
        if cat in seen:
            raise ValueError(f"{path}:{lineno}: class {cat!r} repeats line {seen[cat]}")
        seen[cat] = lineno
    return cats


def custom_config(
    *,
    categories: str,
    train_list: str | None,
    val_list: str | None,
    frames_root: str | None = None,
    video_root: str | None = None,
    image_tmpl: str | None = None,
    multi_label: bool = False,
) -> DatasetConfig:
    """Returns the DatasetConfig of a dataset given by its files: `categories` (one class name per line),
    list files of rows `path num_frames label` (up to 3 labels with `multi_label`, space separated), and the
    folder of frame folders (`frames_root`, frames `image_tmpl`, default img_{:05d}.jpg) or of videos
    (`video_root`). Lists and folders are checked when a VideoDataset opens them, as for built-in datasets.
    Training flips horizontally, as for UCF101 / Kinetics."""
    if (frames_root is None) == (video_root is None):
        raise ValueError("the custom dataset needs --frames_root DIR or --video_root DIR (one of them)")
    cats = read_class_names(categories)
    return DatasetConfig(
        name=CUSTOM,
        num_classes=len(cats),
        categories=cats,
        frames_root=frames_root or "",
        train_list=train_list or "",
        val_list=val_list or "",
        image_tmpl=python_template(image_tmpl or "img_{:05d}.jpg"),
        separator=" ",
        multi_label=bool(multi_label),
        flip=True,
        dataset_dir=os.path.dirname(os.path.abspath(categories)),
        video_root=video_root,
    )
