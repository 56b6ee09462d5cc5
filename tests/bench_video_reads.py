"""Timing of random-access clip reads of videos (not a test): an ordinary H.264 MP4 and DivX-style packed
B-frame AVIs, read by read_frames and, with --old, by an earlier ops/data/video_io.py, interleaved in one
process so that both see the same machine load.

    git show ecd83cd:ops/data/video_io.py > /tmp/old_video_io.py
    OMP_NUM_THREADS=1 python3 -m tests.bench_video_reads --old /tmp/old_video_io.py

Per file: the first read (which decodes the file once and finds its seek points), then the median of
--reads training-style reads (one random frame in each of 8 segments), new and old, and the same frames
read by decoding from the start (the slow path every file would take without verified seeks).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time

import numpy as np

from ops.data.video_decode import read_from_start
from ops.data.video_io import read_frames
from ops.data.video_plan import forget_video_plans, video_plan
from tests.video_samples import (
    clip,
    encode_mpeg4,
    split_vops,
    vop_type,
    write_chunks,
    write_h264,
    write_packed,
)


def _load_old(path: str):
    spec = importlib.util.spec_from_file_location("old_video_io", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_video_io"] = module
    spec.loader.exec_module(module)
    return module


def _write_unpacked(path: str, frames: np.ndarray, gop: int) -> None:
    """The packed file's twin: the same encoding, one VOP per chunk."""
    packets = encode_mpeg4(frames, b_frames=2, gop=gop)
    keys = [vop_type(split_vops(p)[1][0]) == "I" for p in packets]
    write_chunks(path, packets, keys, frames.shape[1:3], "XVID")


def _timed(read, path: str, numbers: np.ndarray) -> tuple[float, np.ndarray | None]:
    t0 = time.perf_counter()
    try:
        out = read(path, numbers)
    except Exception:
        out = None
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", help="an earlier ops/data/video_io.py to compare with")
    p.add_argument("--reads", type=int, default=40)
    p.add_argument("--frames", type=int, default=250)
    a = p.parse_args(argv)
    old = _load_old(a.old) if a.old else None
    root = tempfile.mkdtemp()
    frames = clip(a.frames, 240, 320)
    files = {
        "h264-default.mp4": lambda f: write_h264(f, frames, "crf=23"),  # x264 defaults: keyint 250, 3 B
        "h264-keyint32.mp4": lambda f: write_h264(f, frames, "crf=23:keyint=32"),
        "packed-gop12.avi": lambda f: write_packed(f, frames, gop=12),
        "unpacked-gop12.avi": lambda f: _write_unpacked(f, frames, gop=12),
        "packed-gop300.avi": lambda f: write_packed(f, frames, gop=300),
    }
    rng = np.random.default_rng(0)
    for name, write in files.items():
        path = f"{root}/{name}"
        write(path)
        forget_video_plans()
        edges = np.linspace(0, a.frames, 9)
        clips = [np.unique((edges[:-1] + rng.random(8) * 8).astype(int) + 1) for _ in range(a.reads)]
        first, _ = _timed(read_frames, path, clips[0])
        plan = video_plan(path)
        times = {"new": [], "old": [], "from start": []}
        failed = 0
        for numbers in clips:
            t, new = _timed(read_frames, path, numbers)
            times["new"].append(t)
            t, ref = _timed(read_from_start, path, numbers)
            times["from start"].append(t)
            assert new is not None and np.array_equal(new, ref), name
            if old is not None:
                t, got = _timed(old.read_frames, path, numbers)
                times["old"].append(t)
                failed += got is None or not np.array_equal(got, ref)
        ms = {k: float(np.median(v)) * 1e3 for k, v in times.items() if v}
        line = (
            f"{name}: {plan.num_frames} frames, keyframes {len(plan.keyframes)}, seek points {len(plan.points)}; "
            f"first read {first * 1e3:.1f} ms; 8-frame read median new {ms['new']:.1f} ms, "
            f"from start {ms['from start']:.1f} ms"
        )
        if old is not None:
            line += f", old {ms['old']:.1f} ms (new/old {ms['new'] / ms['old']:.2f}"
            line += f"; old wrong or failed on {failed} of {len(clips)} reads)" if failed else ")"
        print(line, flush=True)


if __name__ == "__main__":
    main()
