"""Extract JPEG frame folders from a folder of videos (PyAV; no ffmpeg binary needed).

    python scripts/vid2img.py VIDEO_DIR FRAMES_DIR [--short_side 256] [--fps F] \\
        [--image_tmpl img_{:05d}.jpg] [-j 4]

Every video `VIDEO_DIR/<sub>/<name>.<ext>` becomes `FRAMES_DIR/<sub>/<name>/<template>` (frames 1, 2, ...),
short side resized to --short_side (the originals: 256 for Something-Something, 331 for Kinetics, 360 for
ActivityNet/FCVID/Mini-Kinetics; 0 keeps the size). A `.done` marker is written last into each folder: a
rerun skips finished videos and redoes interrupted ones. Corrupt or unreadable videos are reported and
skipped; the exit status is 1 when any failed. ActivityNet/FCVID configs expect --image_tmpl image_%05d.jpg.
"""

from __future__ import annotations

import argparse
import os
import sys

from ops.tools import extract


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video_dir")
    p.add_argument("frames_dir")
    p.add_argument("--short_side", type=int, default=256, help="resize the short side to this (0: keep)")
    p.add_argument(
        "--fps", type=float, default=None, help="resample to this frame rate (default: every frame)"
    )
    p.add_argument(
        "--image_tmpl",
        "--template",
        dest="template",
        default="img_{:05d}.jpg",
        help="frame file name, {:05d} or %%05d style",
    )
    p.add_argument("--quality", type=int, default=95, help="JPEG quality")
    p.add_argument("--ext", nargs="+", default=list(extract.VIDEO_EXTS), help="video file extensions")
    p.add_argument("-j", "--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    extract.template_regex(a.template)  # fail early on a template without a number
    if not os.path.isdir(a.video_dir):
        print(f"error: no such folder: {a.video_dir}", file=sys.stderr)
        return 2
    results = extract.extract_folder(
        a.video_dir,
        a.frames_dir,
        workers=a.workers,
        progress=not a.quiet,
        exts=a.ext,
        short_side=a.short_side,
        fps=a.fps,
        template=a.template,
        quality=a.quality,
    )
    print(extract.extract_summary(results))
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
