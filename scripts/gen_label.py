"""Write the category file and train/val list files of a dataset from its official annotations.

Frame counts come from the extracted frame folders (scripts/vid2img.py); videos without a folder are
reported and left out. Output names are the ones `ops.data.dataset_config` reads, relative to OUT_DIR (the
dataset's folder under the data root, e.g. $ADAFOCUS_DATA/something-something-v1); frames are looked up in
OUT_DIR/<default frames folder> unless --frames_root (alias --frames_dir) is given.

    python scripts/gen_label.py something   OUT_DIR --labels something-something-v1-labels.csv \\
        --train something-something-v1-train.csv --val something-something-v1-validation.csv
    python scripts/gen_label.py jester      OUT_DIR --labels jester-v1-labels.csv --train ... --val ...
    python scripts/gen_label.py somethingv2 OUT_DIR --labels something-something-v2-labels.json \\
        --train something-something-v2-train.json --val something-something-v2-validation.json
    python scripts/gen_label.py kinetics    OUT_DIR --train kinetics_400_train.csv --val kinetics_400_val.csv
    python scripts/gen_label.py actnet      OUT_DIR --annotations activity_net.v1-3.min.json [--prefix v_]
    python scripts/gen_label.py ucf101      OUT_DIR --class_ind classInd.txt --train trainlist01.txt \\
        --val testlist01.txt [--split 1]
    python scripts/gen_label.py hmdb51      OUT_DIR --splits_dir testTrainMulti_7030_splits [--split 1]
    python scripts/gen_label.py custom      OUT_DIR --video_root DIR | --frames_root DIR [--val_fraction 0.2]

`custom`: a folder per class, DIR/<class>/<video>.<ext> (videos) or DIR/<class>/<video>/ (frame folders) ->
OUT_DIR/classes.txt, train.txt, val.txt (a seeded --val_fraction of each class in val) for
`main.py custom RGB --categories OUT_DIR/classes.txt --train_list OUT_DIR/train.txt --val_list OUT_DIR/val.txt`.
"""

from __future__ import annotations

import argparse
import sys

from ops.tools import labels
from ops.tools.folder_labels import label_folders

SOURCES = {  # dataset -> the annotation arguments its reader takes
    "something": ("labels", "train", "val"),
    "jester": ("labels", "train", "val"),
    "somethingv2": ("labels", "train", "val"),
    "kinetics": ("train", "val"),
    "actnet": ("annotations", "prefix"),
    "ucf101": ("class_ind", "train", "val"),
    "hmdb51": ("splits_dir",),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=sorted(SOURCES) + ["custom"])
    p.add_argument("out_dir", help="dataset folder: category and list files are written here")
    p.add_argument(
        "--frames_root",
        "--frames_dir",
        dest="frames_dir",
        help="frame folders (default: OUT_DIR/<the dataset's frames folder>)",
    )
    p.add_argument(
        "--image_tmpl",
        "--template",
        dest="template",
        help="frame file name (default: the dataset's, e.g. {:05d}.jpg)",
    )
    p.add_argument("--labels", help="category file (csv: one name a line; sth-v2: labels json)")
    p.add_argument("--train", help="training split annotations")
    p.add_argument("--val", help="validation split annotations")
    p.add_argument("--annotations", help="ActivityNet v1.3 json (activity_net.v1-3.min.json)")
    p.add_argument("--prefix", default="v_", help="ActivityNet frame folder = PREFIX + youtube id")
    p.add_argument("--class_ind", help="UCF101 classInd.txt")
    p.add_argument("--splits_dir", help="HMDB51 testTrainMulti_7030_splits folder")
    p.add_argument("--split", type=int, default=1, help="UCF101/HMDB51 split number (names the lists)")
    p.add_argument(
        "--video_root", "--videos_dir", dest="videos_dir", help="custom: videos DIR/<class>/<video>.<ext>"
    )
    p.add_argument("--val_fraction", type=float, default=0.2, help="custom: share of each class in val (0.2)")
    p.add_argument("--seed", type=int, default=0, help="custom: seed of the train/val split (0)")
    p.add_argument("-j", "--workers", type=int, default=1, help="custom: processes counting frames (1)")
    return p


def _custom(parser: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    """gen_label.py custom: lists from a folder per class."""
    if (a.videos_dir is None) == (a.frames_dir is None):
        parser.error("custom needs --video_root DIR or --frames_root DIR (one of them)")
    given = [
        f"--{k}"
        for k in ("labels", "train", "val", "annotations", "class_ind", "splits_dir")
        if getattr(a, k)
    ]
    if given:
        parser.error(f"custom reads its classes from the folders: {' '.join(given)} do not apply")
    try:
        out = label_folders(
            a.videos_dir or a.frames_dir,
            a.out_dir,
            videos=a.videos_dir is not None,
            template=a.template or "img_{:05d}.jpg",
            val_fraction=a.val_fraction,
            seed=a.seed,
            workers=a.workers,
            progress=True,
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for item, why in list(out["missing"].items())[:20]:
        print(f"left out: {item}: {why}", file=sys.stderr)
    print(
        f"{out['num_classes']} classes; rows written: train {out['rows']['train']}, val {out['rows']['val']}; "
        f"left out (unreadable or empty): {len(out['missing'])}"
    )
    print("\n".join(out["files"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.dataset == "custom":
        return _custom(parser, a)
    if a.videos_dir is not None:
        parser.error("--video_root only applies to custom")
    need = SOURCES[a.dataset]
    missing = [f"--{k}" for k in need if getattr(a, k) is None]
    if missing:
        parser.error(f"{a.dataset} needs {' '.join(missing)}")
    try:
        out = labels.gen_label(
            a.dataset,
            a.out_dir,
            frames_root=a.frames_dir,
            template=a.template,
            split=a.split,
            **{k: getattr(a, k) for k in need},
        )
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split, videos in out["missing"].items():
        for v in videos[:20]:
            print(f"missing frames: {split} {v}", file=sys.stderr)
        if len(videos) > 20:
            print(f"... {len(videos) - 20} more {split} videos without frames", file=sys.stderr)
    print(
        f"{out['num_classes']} classes; "
        f"rows written: train {out['rows']['train']}, val {out['rows']['val']}; "
        f"left out (no frames): train {len(out['missing']['train'])}, val {len(out['missing']['val'])}"
    )
    print("\n".join(out["files"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
