"""Check list files against their frame folders (or videos) before training.

    python scripts/validate_data.py --dataset something [--root_dataset DIR] [--split train|val|all] [--quick]
    python scripts/validate_data.py --dataset custom --categories F --train_list F --val_list F
        (--frames_root DIR [--image_tmpl img_{:05d}.jpg] | --video_root DIR [--video_ext .avi]) [--multi_label]
    python scripts/validate_data.py --list LIST --frames_root DIR --num_classes N [--template img_{:05d}.jpg]
        [--separator ,] [--multi_label] [--quick] [-j 4]

Reports, with <file>:<line>: malformed rows, labels outside [0, num_classes), missing frame folders, frame
counts or numbering that differ from the listed num_frames (fewer or more frames), and empty, truncated or
undecodable images (every frame is decoded; --quick decodes only the first, middle and last of each video).
With --video_root the videos are checked instead, found as training finds them (the list path with its
extension, or <path>.mp4 .avi .mkv .webm .mov, or --video_ext): missing or unreadable videos, frame counts
(as decoding from the start counts them) that differ from the list, undecodable frames, and a sample of
random-access reads per video (7 reads, --quick 3) compared with decoding the video from its start
([random_access]). Videos whose reads cannot seek to some keyframes exactly (DivX/Xvid packed B-frames, for
one) are read by decoding forward from an earlier frame: they are noted ([slow_seek], not a problem) with
how many more frames their reads decode and the time per read.
Exit status: 0 all good (notes allowed), 1 problems found, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys

from ops.data.dataset_config import CUSTOM, custom_config, read_class_names
from ops.tools import validate


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--dataset",
        help="a dataset of ops.data.dataset_config (supplies lists, root, template, classes), or custom",
    )
    p.add_argument("--root_dataset", default=None, help="data root (default: env ADAFOCUS_DATA)")
    p.add_argument("--data_dir", default=None, help="ActivityNet-family dataset folder")
    p.add_argument("--split", choices=("train", "val", "all"), default="all")
    p.add_argument("--list", help="list file to check (overrides --dataset's lists)")
    p.add_argument("--frames_root", help="folder holding the frame folders")
    p.add_argument("--video_root", help="check the videos under DIR instead of frame folders")
    p.add_argument("--video_ext", help="with --video_root: read <list path><EXT> (no search)")
    p.add_argument("--categories", help="class names, one per line (custom dataset; gives --num_classes)")
    p.add_argument("--train_list", help="custom dataset: training list")
    p.add_argument("--val_list", help="custom dataset: validation list")
    p.add_argument("--num_classes", type=int)
    p.add_argument(
        "--image_tmpl",
        "--template",
        dest="template",
        help="frame file name (default img_{:05d}.jpg, or the dataset's)",
    )
    p.add_argument("--separator", help="field separator: ' ' (default) or ','")
    p.add_argument("--multi_label", action="store_true", help="rows may hold up to 3 labels")
    p.add_argument("--quick", action="store_true", help="decode only the first, middle and last frame")
    p.add_argument("-j", "--workers", type=int, default=1)
    p.add_argument("--max_show", type=int, default=20, help="problems printed per list file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _jobs(a: argparse.Namespace) -> list[tuple[str, dict]]:
    """Returns [(list file, validate_list kwargs)] from the dataset config and/or explicit flags."""
    kw = dict(
        frames_root=a.frames_root,
        num_classes=a.num_classes,
        template=a.template,
        separator=a.separator,
        multi_label=a.multi_label or None,
    )
    lists = [a.list] if a.list else []
    if a.video_ext is not None and a.video_root is None:
        raise ValueError("--video_ext only applies with --video_root")
    if a.dataset == CUSTOM:
        if not a.categories:
            raise ValueError("--dataset custom needs --categories FILE")
        cfg = custom_config(
            categories=a.categories,
            train_list=a.train_list,
            val_list=a.val_list,
            frames_root=a.frames_root,
            video_root=a.video_root,
            image_tmpl=a.template,
            multi_label=a.multi_label,
        )
        if not lists:
            chosen = {"train": [cfg.train_list], "val": [cfg.val_list]}.get(
                a.split, [cfg.train_list, cfg.val_list]
            )
            lists = [x for x in chosen if x]
            if not lists:
                raise ValueError("--dataset custom needs --train_list and/or --val_list (or --list)")
        kw.update(num_classes=cfg.num_classes, template=cfg.image_tmpl, multi_label=cfg.multi_label)
    elif a.train_list or a.val_list:
        raise ValueError("--train_list / --val_list name the lists of --dataset custom (else use --list)")
    elif a.categories and kw["num_classes"] is None:
        kw["num_classes"] = len(read_class_names(a.categories))
    if a.dataset and a.dataset != CUSTOM:
        from ops.data.dataset_config import get_dataset_config

        cfg = get_dataset_config(a.dataset, root=a.root_dataset, data_dir=a.data_dir)
        if not lists:
            lists = {"train": [cfg.train_list], "val": [cfg.val_list]}.get(
                a.split, [cfg.train_list, cfg.val_list]
            )
        defaults = dict(
            frames_root=cfg.frames_root,
            num_classes=cfg.num_classes,
            template=cfg.image_tmpl,
            separator=cfg.separator,
            multi_label=cfg.multi_label,
        )
        kw = {k: defaults[k] if v is None else v for k, v in kw.items()}
    kw = {"template": "img_{:05d}.jpg", "separator": " ", "multi_label": False} | {
        k: v for k, v in kw.items() if v is not None
    }
    if a.video_root is not None:
        kw.pop("frames_root", None)
    missing = [k for k in ("num_classes",) + (() if a.video_root else ("frames_root",)) if k not in kw]
    if not lists or missing:
        raise ValueError(
            "give --dataset, or --list with --frames_root (or --video_root) and --num_classes"
            + (f" (missing: {', '.join(missing)})" if missing else "")
        )
    kw.update(video_root=a.video_root, video_ext=a.video_ext, frames_root=kw.get("frames_root"))
    return [(path, kw) for path in lists]


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        jobs = _jobs(a)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = False
    for path, kw in jobs:
        if not os.path.isfile(path):
            print(f"{path}: list file not found", file=sys.stderr)
            failed = True
            continue
        rows, problems = validate.validate_list(
            path, quick=a.quick, workers=a.workers, progress=not a.quiet, **kw
        )
        print(validate.summarize(path, rows, problems, a.max_show))
        failed |= any(p.kind in validate.PROBLEM_KINDS for p in problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
