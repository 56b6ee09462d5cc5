"""Benchmark the data loader: clips/s of VideoDataset + DataLoader vs the pure decode cost of the same frames.

With no arguments it writes its own data to a temporary folder (a panning texture, 340x256, 240 frames per
video, as JPEG q95 frame folders and as H.264 mp4 with x264's default GOP) and measures the X3D preset
(16 glance + 96 candidate frames, 224x224, training augmentation) on frame folders and on videos.

Measured in ONE process (DataLoader num_workers=0, one OpenCV/torch thread), batch by batch alternating
with decoding exactly the same distinct frames through ops.data.video_io.read_frames (into a reused buffer, as
the loader decodes), so both see the same machine load: `loader_s` / `decode_s` are seconds per clip,
`overhead = loader_s / decode_s - 1` is the loader's own cost (sampling, crop+resize, flip, layout, collate);
`overhead_cpu` is the same ratio in process CPU time (less sensitive to other processes).
`workers_clips_per_s` is the throughput with --workers processes. `resize_kernel` says what computed the
resize ('pil': torch's uint8 kernel where it is vectorised, else Pillow; ops/data/resize.py), `load_avg` the
machine's 1-minute load average before and after (ratios are measured in one process, interleaved, but a busy
machine still moves them). The last line printed is one JSON object.

    python scripts/bench_loader.py [--layout x3d|tsm|an] [--mode train|val] [--batch_size 1] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import cv2
import numpy as np
import torch

from models import ModelConfig, input_layout
from models.core.recipes import PRESETS
from ops.data.dataset import VideoDataset, make_loader
from ops.data.dataset_config import DatasetConfig
from ops.data.resize import Scratch, torch_kernel_is_fast
from ops.data.video_io import read_frames


def render(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """Return (n, h, w, 3) uint8 frames: a blurred-noise texture panning right, a colour wave, noise."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (h, w + 2 * n, 3), dtype=np.uint8), (0, 0), 3).astype(
        np.int16
    )
    wave = (40 * np.sin(np.arange(w + n) / 23.0)[None, :, None] * np.array([1.0, -0.5, 0.7])).astype(np.int16)
    noise = rng.integers(-6, 7, (8, h, w, 3), dtype=np.int16)  # a few noise fields, cycled
    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        np.clip(
            tex[:, 2 * t : 2 * t + w] + wave[:, t : t + w] + noise[t % 8],
            0,
            255,
            out=out[t],
            casting="unsafe",
        )
    return out


def write_mp4(path: str, frames: np.ndarray, fps: int = 30) -> None:
    import av

    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "23", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_data(root: str, videos: int, frames: int, h: int, w: int) -> DatasetConfig:
    """Write `videos` clips as frame folders + mp4 files and a list file; return their DatasetConfig."""
    os.makedirs(os.path.join(root, "frames"), exist_ok=True)
    os.makedirs(os.path.join(root, "videos"), exist_ok=True)
    rows = []
    for v in range(videos):
        clip = render(frames, h, w, seed=v)
        folder = os.path.join(root, "frames", f"vid{v}")
        os.makedirs(folder, exist_ok=True)
        for t, rgb in enumerate(clip):
            cv2.imwrite(
                os.path.join(folder, f"img_{t + 1:05d}.jpg"), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
        write_mp4(os.path.join(root, "videos", f"vid{v}.mp4"), clip)
        rows.append(f"vid{v} {frames} {v % 2}")
    lst = os.path.join(root, "list.txt")
    with open(lst, "w") as f:
        f.write("\n".join(rows) + "\n")
    return DatasetConfig(
        name="bench",
        num_classes=2,
        categories=["a", "b"],
        frames_root=os.path.join(root, "frames"),
        train_list=lst,
        val_list=lst,
        image_tmpl="img_{:05d}.jpg",
        separator=" ",
        multi_label=False,
        flip=True,
        dataset_dir=root,
        video_root=os.path.join(root, "videos"),
    )


class RecordingDataset(VideoDataset):
    """Remembers the frame numbers of every item (single process only), so decoding can be timed on them."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.log: list[tuple[int, np.ndarray]] = []
        self._current = 0

    def load(self, index: int, out=None):
        self._current = index
        return super().load(index, out)

    def frame_numbers(self, record, rng=None):
        numbers = super().frame_numbers(record, rng)
        self.log.append((self._current, np.unique(numbers)))
        return numbers


def resize_kernel(backend: str) -> str:
    """Return what resizes frames for `backend` on this machine: 'torch', 'pillow' or 'cv2'."""
    if backend == "cv2":
        return "cv2"
    return "torch" if torch_kernel_is_fast() else "pillow"


def time_workers(ds: VideoDataset, batch: int, workers: int, epochs: int) -> float:
    """Return clips/s of make_loader(ds) with `workers` worker processes (after one warm-up batch)."""
    loader = make_loader(ds, batch, workers=workers)
    it = iter(loader)
    next(it)
    clips, t0 = 0, time.perf_counter()
    for frames, _target, _index in it:
        clips += frames.shape[0]
    for _ in range(epochs - 1):
        for frames, _target, _index in loader:
            clips += frames.shape[0]
    return clips / (time.perf_counter() - t0)


def bench_source(cfg: DatasetConfig, args, video: bool) -> dict:
    """Alternate, batch by batch, loading through the DataLoader and decoding the same distinct frames."""
    split = "train" if args.mode == "train" else "val"
    kw = dict(
        train=args.mode == "train",
        num_glance=args.num_glance,
        num_candidates=args.num_candidates,
        input_size=args.input_size,
        video_root=cfg.video_root if video else None,
        resize_backend=args.resize_backend,
        shared_crop=args.shared_crop,
    )
    ds = RecordingDataset(cfg, split, **kw)
    ds.seed(0)
    loader = make_loader(ds, args.batch_size, workers=0)
    for _ in loader:  # warm-up: page cache, allocator, decoder libraries
        pass
    reference = Scratch()  # the pure decode writes into a reused buffer too: no page faults of fresh memory
    wall = {"loader": 0.0, "decode": 0.0}
    cpu = {"loader": 0.0, "decode": 0.0}
    clips, distinct = 0, []
    for _ in range(args.epochs):
        it = iter(loader)
        while True:
            ds.log.clear()
            w0, c0 = time.perf_counter(), time.process_time()
            batch = next(it, None)
            w1, c1 = time.perf_counter(), time.process_time()
            if batch is None:
                break
            for index, unique in ds.log:  # the same distinct frames, same order
                read_frames(ds.source(ds.records[index]), unique, [], reference.take)
                distinct.append(len(unique))
            w2, c2 = time.perf_counter(), time.process_time()
            wall["loader"] += w1 - w0
            wall["decode"] += w2 - w1
            cpu["loader"] += c1 - c0
            cpu["decode"] += c2 - c1
            clips += batch[0].shape[0]
    res = {
        "clips_per_s": clips / wall["loader"],
        "loader_s": wall["loader"] / clips,
        "decode_s": wall["decode"] / clips,
        "overhead": wall["loader"] / wall["decode"] - 1.0,
        "overhead_cpu": cpu["loader"] / cpu["decode"] - 1.0,
        "clips": clips,
        "distinct_frames_per_clip": float(np.mean(distinct)),
    }
    if args.workers > 0:
        res["workers_clips_per_s"] = time_workers(
            VideoDataset(cfg, split, **kw), args.batch_size, args.workers, args.epochs
        )
    return res


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--layout", default="x3d", choices=PRESETS, help="frames per clip of this Uni-AdaFocus preset"
    )
    p.add_argument("--num_glance", type=int, default=None)
    p.add_argument("--num_candidates", type=int, default=None)
    p.add_argument("--mode", default="train", choices=["train", "val"])
    p.add_argument("--input_size", type=int, default=224)
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--frames", type=int, default=240)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=340)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3, help="measured passes over the videos")
    p.add_argument(
        "--workers", type=int, default=2, help="also report throughput with this many workers (0: skip)"
    )
    p.add_argument("--source", default="both", choices=["frames", "video", "both"])
    p.add_argument("--resize_backend", default="pil", choices=["pil", "cv2"], help="frame resizing (pil)")
    p.add_argument(
        "--shared_crop", action="store_true", help="training: one crop for glance and candidate frames"
    )
    p.add_argument("--root", default=None, help="keep the generated data here (default: a temporary folder)")
    args = p.parse_args(argv)
    g, n = input_layout(ModelConfig(preset=args.layout))
    args.num_glance = g if args.num_glance is None else args.num_glance
    args.num_candidates = n if args.num_candidates is None else args.num_candidates
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # one core for this single-process measurement
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or tmp
        t0 = time.perf_counter()
        cfg = make_data(root, args.videos, args.frames, args.height, args.width)
        print(
            f"data: {args.videos} videos x {args.frames} frames {args.width}x{args.height} in {root} "
            f"({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )
        result = {
            "layout": args.layout,
            "mode": args.mode,
            "frames_per_clip": args.num_glance + args.num_candidates,
            "input_size": args.input_size,
            "batch_size": args.batch_size,
            "single_process": True,
            "workers": args.workers,
            "resize_backend": args.resize_backend,
            "resize_kernel": resize_kernel(args.resize_backend),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "shared_crop": args.shared_crop,
            "load_avg": [round(os.getloadavg()[0], 2)],
        }
        if args.source in ("frames", "both"):
            result.update(bench_source(cfg, args, video=False))
        if args.source in ("video", "both"):
            video = bench_source(cfg, args, video=True)
            if args.source == "video":
                result.update(video)
            else:
                result["video"] = video
    result["load_avg"].append(round(os.getloadavg()[0], 2))
    print(json.dumps(result, sort_keys=False))
    return result


if __name__ == "__main__":
    main()
