"""Data-preparation tools: frame extraction (PyAV), list-file generation from official annotations,
and validation of list files against frame folders. The scripts in scripts/ are thin CLIs over these.

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


# ----------------------------------------------------------------------------------------------------------
# Frame templates and list rows
# ----------------------------------------------------------------------------------------------------------
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


def count_frames(folder: str, template: str) -> int:
    """Returns how many files in `folder` match the frame template (as the original label tools count)."""
    return len(frame_numbers(folder, template))


def parse_list_line(text: str, separator: str, multi_label: bool) -> tuple[str, int, list[int]]:
    """Returns (path, num_frames, labels) of one list row; raises ValueError with the reason.

    Same rules as ops.dataset.read_list_file (kept local because validation must report every bad line,
    not stop at the first): 3 fields, or 3..5 for multi-label, or >3 space-separated fields where the
    path holds spaces (minik); integers; num_frames >= 1.
    """
    fields = text.split() if separator == " " else [x.strip() for x in text.split(separator)]
    if multi_label and 3 <= len(fields) <= 5:
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


def write_list(path: str, rows: Iterable[tuple[str, int, list[int]]], separator: str) -> int:
    """Writes rows `path num_frames label[s]` to `path`; returns the number of rows."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lines = [separator.join([p, str(n)] + [str(x) for x in labels]) for p, n, labels in rows]
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    return len(lines)


def _pool_map(
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


# ----------------------------------------------------------------------------------------------------------
# Frame extraction (vid2img)
# ----------------------------------------------------------------------------------------------------------
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
    return results + _pool_map(extract_one, jobs, workers, "vid2img", progress, report)


def extract_summary(results: list[ExtractResult]) -> str:
    """Returns the end-of-run report: counts per status and every failed video with its error."""
    count = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    lines = [f"FAILED {r.video}: {r.error}" for r in results if r.status == "failed"]
    lines.append(
        f"{len(results)} videos: {count['done']} extracted, {count['skipped']} already done, "
        f"{count['failed']} failed"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# List files from official annotations (gen_label)
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Output files of one dataset, relative to its folder; the names ops.dataset_config reads."""

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
    with open(path, encoding="utf-8") as f:
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
    """UCF101 split files: classInd.txt (`1 ApplyEyeMakeup`, 1-based), trainlistNN.txt (`Class/v_x.avi 1`),
    testlistNN.txt (`Class/v_x.avi`, label from the class folder). Labels 0-based; folder `v_x` or
    `Class/v_x`."""
    cats = {}
    for i, text in _lines(class_ind):
        num, _, name = text.partition(" ")
        if not num.isdigit() or not name.strip():
            raise ValueError(f"{class_ind}:{i}: expected 'index name', got {text!r}")
        cats[int(num) - 1] = name.strip()
    if sorted(cats) != list(range(len(cats))):
        raise ValueError(f"{class_ind}: class indices are not 1..{len(cats)}")
    names = [cats[i] for i in range(len(cats))]
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
    so `out_dir` = the dataset folder of ops.dataset_config). Frame counts come from the extracted folders
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


# ----------------------------------------------------------------------------------------------------------
# Validation of a list file against its frames (validate_data)
# ----------------------------------------------------------------------------------------------------------
PROBLEM_KINDS = ("malformed", "label", "missing_folder", "frame_count", "bad_image")


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


def validate_list(
    list_path: str,
    frames_root: str,
    *,
    template: str,
    num_classes: int,
    separator: str = " ",
    multi_label: bool = False,
    quick: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> tuple[int, list[Problem]]:
    """Checks every row of a list file: malformed line, label outside [0, num_classes), missing frame folder,
    frame count or numbering different from the listed num_frames, empty/truncated/undecodable images.
    Returns (number of rows, problems in file order)."""
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
            path, n, labels = parse_list_line(text, separator, multi_label)
        except ValueError as e:
            problems.append(Problem("malformed", where, str(e)))
            continue
        bad = [x for x in labels if not 0 <= x < num_classes]
        if bad:
            problems.append(Problem("label", where, f"label {bad[0]} outside [0, {num_classes}) for {path}"))
        jobs.append((where, (os.path.join(frames_root, path), n, template, quick)))
    results = _pool_map(check_video, [j for _, j in jobs], workers, "validate", progress)
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
