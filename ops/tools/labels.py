"""List files from official annotations (what scripts/gen_label.py writes): one reader per annotation format
returning (categories, entries), and gen_label, which matches entries to extracted frame folders and writes
the category file and train/val lists under the names ops.data.dataset_config reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ops.data.dataset_config import numbered_class_names
from ops.tools.extract import frame_numbers


def count_frames(folder: str, template: str) -> int:
    """Returns how many files in `folder` match the frame template (as the original label tools count)."""
    return len(frame_numbers(folder, template))


def write_list(path: str, rows: Iterable[tuple[str, int, list[int]]], separator: str) -> int:
    """Writes rows `path num_frames label[s]` to `path`; returns the number of rows."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lines = [separator.join([p, str(n)] + [str(x) for x in labels]) for p, n, labels in rows]
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    return len(lines)


@dataclass(frozen=True)
class Layout:
    """Output files of one dataset, relative to its folder; the names ops.data.dataset_config reads."""

    categories: str
    train: str
    val: str
    frames: str  # frame folders
    template: str
    separator: str = " "


LAYOUTS = {
    "something": Layout(
        "category.txt",
        "train_videofolder.txt",
        "val_videofolder.txt",
        "20bn-something-something-v1",
        "{:05d}.jpg",
    ),
    "somethingv2": Layout(
        "category.txt",
        "train_videofolder.txt",
        "val_videofolder.txt",
        "20bn-something-something-v2-frames",
        "{:06d}.jpg",
    ),
    "jester": Layout(
        "category.txt", "train_videofolder.txt", "val_videofolder.txt", "20bn-jester-v1", "{:05d}.jpg"
    ),
    "kinetics": Layout(
        "labels/category.txt",
        "labels/train_videofolder.txt",
        "labels/val_videofolder.txt",
        "images",
        "img_{:05d}.jpg",
    ),
    "ucf101": Layout(
        "labels/classInd.txt",
        "file_list/ucf101_rgb_train_split_{split}.txt",
        "file_list/ucf101_rgb_val_split_{split}.txt",
        "jpg",
        "img_{:05d}.jpg",
    ),
    "hmdb51": Layout(
        "labels/classInd.txt",
        "splits/hmdb51_rgb_train_split_{split}.txt",
        "splits/hmdb51_rgb_val_split_{split}.txt",
        "images",
        "img_{:05d}.jpg",
    ),
    "actnet": Layout(
        "classInd.txt", "actnet_train_split.txt", "actnet_val_split.txt", "frames", "image_{:05d}.jpg", ","
    ),
}
# One annotated video: candidate frame-folder paths (first existing wins) and its labels.
Entry = tuple[tuple[str, ...], list[int]]


def _lines(path: str) -> list[tuple[int, str]]:
    with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not part of the first row
        return [(i, s) for i, line in enumerate(f, 1) if (s := line.strip())]


def _lookup(index: dict[str, int], name: str, where: str) -> int:
    if name not in index:
        raise ValueError(f"{where}: unknown category {name!r}")
    return index[name]


def _semicolon_split(path: str, index: dict[str, int]) -> list[Entry]:
    """Rows `id;label` (Something-Something V1, Jester)."""
    out = []
    for i, text in _lines(path):
        vid, sep, label = text.partition(";")
        if not sep:
            raise ValueError(f"{path}:{i}: expected 'id;label', got {text!r}")
        out.append(((vid.strip(),), [_lookup(index, label.strip(), f"{path}:{i}")]))
    return out


def read_sth_v1(labels: str, train: str, val: str) -> tuple[list[str], dict[str, list[Entry]]]:
    """Something-Something V1 / Jester: labels CSV (one name a line; sorted alphabetically, as the TSM
    tools do) and `id;label` split CSVs. Returns (categories, {'train': entries, 'val': entries})."""
    cats = sorted(text for _, text in _lines(labels))
    index = {c: i for i, c in enumerate(cats)}
    return cats, {"train": _semicolon_split(train, index), "val": _semicolon_split(val, index)}


def read_sth_v2(labels: str, train: str, val: str) -> tuple[list[str], dict[str, list[Entry]]]:
    """Something-Something V2: labels JSON {name: "idx"} (its own order) and split JSONs of
    {id, template}; the template with its [brackets] removed is the class name."""
    import json

    with open(labels) as f:
        mapping = {k: int(v) for k, v in json.load(f).items()}
    cats = sorted(mapping, key=mapping.get)
    if [mapping[c] for c in cats] != list(range(len(cats))):
        raise ValueError(f"{labels}: label indices are not 0..{len(cats) - 1}")
    splits = {}
    for split, path in (("train", train), ("val", val)):
        with open(path) as f:
            items = json.load(f)
        entries = []
        for it in items:
            name = it["template"].replace("[", "").replace("]", "")
            entries.append(((str(it["id"]),), [_lookup(mapping, name, f"{path}: id {it['id']}")]))
        splits[split] = entries
    return cats, splits


def read_kinetics(train: str, val: str) -> tuple[list[str], dict[str, list[Entry]]]:
    """Kinetics-400 CSVs (columns label, youtube_id, time_start, time_end, ...; any order). The frame folder
    of a clip is `<youtube_id>_<start:06d>_<end:06d>` (the ActivityNet downloader's clip name), looked up at
    the top level or inside a class folder (`<label>/` or `<label_with_underscores>/`). Categories sorted."""
    import csv

    rows = {}
    for split, path in (("train", train), ("val", val)):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            need = {"label", "youtube_id", "time_start", "time_end"}
            if not need <= set(reader.fieldnames or ()):
                raise ValueError(f"{path}:1: header must contain {sorted(need)}, got {reader.fieldnames}")
            rows[split] = list(reader)
    cats = sorted({r["label"] for rs in rows.values() for r in rs})
    index = {c: i for i, c in enumerate(cats)}
    splits = {}
    for split, rs in rows.items():
        entries = []
        for r in rs:
            name = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
            label = r["label"]
            entries.append(((name, f"{label}/{name}", f"{label.replace(' ', '_')}/{name}"), [index[label]]))
        splits[split] = entries
    return cats, splits


def read_activitynet(annotations: str, prefix: str = "v_") -> tuple[list[str], dict[str, list[Entry]]]:
    """ActivityNet v1.3 JSON (`database[id] = {subset, annotations: [{label, segment}]}`): the distinct labels
    of a video in annotation order, at most 3 (multi-label rows). Folder `<prefix><id>` (the official
    video files are `v_<id>.mp4`). Categories sorted alphabetically; test-subset videos are left out."""
    import json

    with open(annotations) as f:
        db = json.load(f)["database"]
    subsets = {"training": "train", "validation": "val"}
    labelled = {
        vid: list(dict.fromkeys(a["label"] for a in info.get("annotations", ())))[:3]
        for vid, info in db.items()
        if info.get("subset") in subsets
    }
    cats = sorted({x for labels in labelled.values() for x in labels})
    index = {c: i for i, c in enumerate(cats)}
    splits = {"train": [], "val": []}
    for vid, labels in labelled.items():
        if labels:
            splits[subsets[db[vid]["subset"]]].append(((prefix + vid,), [index[x] for x in labels]))
    return cats, splits


def _stem_entry(rel_video: str, cls: str, label: int) -> Entry:
    stem = os.path.splitext(os.path.basename(rel_video))[0]
    return (stem, f"{cls}/{stem}"), [label]


def read_ucf101(class_ind: str, train: str, val: str) -> tuple[list[str], dict[str, list[Entry]]]:
    """UCF101 split files: classInd.txt (`1 ApplyEyeMakeup`, 1-based; read by numbered_class_names),
    trainlistNN.txt (`Class/v_x.avi 1`), testlistNN.txt (`Class/v_x.avi`, label from the class folder).
    Labels 0-based; folder `v_x` or `Class/v_x`."""
    lines = _lines(class_ind)
    names = numbered_class_names(lines, class_ind)
    if names is None:
        i, text = next(((i, t) for i, t in lines if not re.fullmatch(r"\d+\s+\S.*", t)), (1, ""))
        raise ValueError(f"{class_ind}:{i}: expected 'index name', got {text!r}")
    index = {c: i for i, c in enumerate(names)}
    splits = {}
    for split, path in (("train", train), ("val", val)):
        splits[split] = []
        for i, text in _lines(path):
            rel = text.split()[0]
            cls = os.path.dirname(rel)
            splits[split].append(_stem_entry(rel, cls, _lookup(index, cls, f"{path}:{i}")))
    return names, splits


def read_hmdb51(splits_dir: str, split: int = 1) -> tuple[list[str], dict[str, list[Entry]]]:
    """HMDB51 `testTrainMulti_7030_splits/<class>_test_split<k>.txt` rows `video.avi 1|2|0` (1 train, 2 test,
    0 unused). Categories sorted; folder `<video stem>` or `<class>/<video stem>`."""
    suffix = f"_test_split{split}.txt"
    files = sorted(f for f in os.listdir(splits_dir) if f.endswith(suffix))
    if not files:
        raise ValueError(f"{splits_dir}: no *{suffix} files")
    names = [f[: -len(suffix)] for f in files]
    splits = {"train": [], "val": []}
    for label, (cls, fname) in enumerate(zip(names, files)):
        for i, text in _lines(os.path.join(splits_dir, fname)):
            parts = text.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ValueError(
                    f"{os.path.join(splits_dir, fname)}:{i}: expected 'video.avi 0|1|2', got {text!r}"
                )
            if parts[1] != "0":
                splits["train" if parts[1] == "1" else "val"].append(_stem_entry(parts[0], cls, label))
    return names, splits


READERS = {
    "something": read_sth_v1,
    "jester": read_sth_v1,
    "somethingv2": read_sth_v2,
    "kinetics": read_kinetics,
    "actnet": read_activitynet,
    "ucf101": read_ucf101,
    "hmdb51": read_hmdb51,
}


def gen_label(
    dataset: str,
    out_dir: str,
    *,
    frames_root: str | None = None,
    template: str | None = None,
    split: int = 1,
    **sources: str,
) -> dict:
    """Writes the category file and train/val lists of `dataset` under `out_dir` (file names as in LAYOUTS,
    so `out_dir` = the dataset folder of ops.data.dataset_config). Frame counts come from the extracted folders
    (files matching the template); videos without a folder (or with no frames) are left out and reported.
    `sources` are the reader's arguments (see READERS). Returns {'files', 'rows': {split: n},
    'missing': {split: [video, ...]}, 'num_classes'}."""
    layout = LAYOUTS[dataset]
    frames_root = frames_root or os.path.join(out_dir, layout.frames)
    template = template or layout.template
    if dataset == "hmdb51":
        sources["split"] = split
    cats, entries = READERS[dataset](**sources)
    cat_file = os.path.join(out_dir, layout.categories)
    os.makedirs(os.path.dirname(cat_file), exist_ok=True)
    with open(cat_file, "w") as f:
        f.write("".join(c + "\n" for c in cats))
    result = {"files": [cat_file], "rows": {}, "missing": {}, "num_classes": len(cats)}
    for name in ("train", "val"):
        rows, missing = [], []
        for candidates, labels in entries[name]:
            folder = next((c for c in candidates if os.path.isdir(os.path.join(frames_root, c))), None)
            n = count_frames(os.path.join(frames_root, folder), template) if folder else 0
            if n == 0:
                missing.append(candidates[0])
            else:
                rows.append((folder, n, labels))
        path = os.path.join(out_dir, getattr(layout, name).format(split=split))
        result["rows"][name] = write_list(path, rows, layout.separator)
        result["missing"][name] = missing
        result["files"].append(path)
    return result
