"""Create the built-in synthetic dataset (TSM format) under <root>/synthetic/.

    python scripts/make_synthetic.py [--root_dataset DIR] [--num_classes 8] [--videos]

The root is --root_dataset, else env ADAFOCUS_DATA, else ./data. Nothing is done when a dataset made with
the same parameters is already there (--force regenerates).
"""

from __future__ import annotations

import argparse
import os
import sys

from ops.data import synthetic


def build_parser() -> argparse.ArgumentParser:
    d = synthetic.DEFAULTS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--root_dataset",
        default=os.environ.get("ADAFOCUS_DATA", "./data"),
        help="data root (default: env ADAFOCUS_DATA, else ./data)",
    )
    p.add_argument("--num_classes", type=int, default=d["num_classes"], help="1..16")
    p.add_argument("--train_per_class", type=int, default=d["videos_per_class_train"])
    p.add_argument("--val_per_class", type=int, default=d["videos_per_class_val"])
    p.add_argument("--min_frames", type=int, default=d["min_frames"])
    p.add_argument("--max_frames", type=int, default=d["max_frames"])
    p.add_argument("--height", type=int, default=d["height"])
    p.add_argument("--width", type=int, default=d["width"])
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--videos", action="store_true", help="also write videos/<video>.mp4 (PyAV, H.264)")
    p.add_argument("--force", action="store_true", help="regenerate even if an identical dataset exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    kw = dict(
        num_classes=a.num_classes,
        videos_per_class_train=a.train_per_class,
        videos_per_class_val=a.val_per_class,
        min_frames=a.min_frames,
        max_frames=a.max_frames,
        height=a.height,
        width=a.width,
        seed=a.seed,
        write_videos=a.videos,
    )
    folder = os.path.join(a.root_dataset, "synthetic")
    if not a.force and synthetic.is_current(folder, **kw):
        print(f"{folder}: up to date (same parameters); use --force to regenerate")
        return 0
    stats = synthetic.generate(a.root_dataset, progress=not a.quiet, **kw)
    print(
        f"{stats['folder']}: {stats['videos']} videos, {stats['frames']} frames, "
        f"{stats['bytes'] / 2**20:.1f} MiB in {stats['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
