"""What the fault-check cases share (ops/tools/fault_check.py): the work folder with the pristine synthetic
dataset (`Ctx`), tiny training runs of main.py in this process, a validation dataset of a custom list, and functions
to inject a fault for the duration of a case."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import warnings
from collections.abc import Callable

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))  # the repository (main.py)
# The tiny networks of the end-to-end tests (the synthetic preset's Uni-AdaFocus at 64 px, widths 8).
TINY = (
    "--eval-freq 1 --input_size 64 --glance_size 64 --patch_size 32 --num_glance_segments 4 "
    "--num_input_focus_segments 8 --num_focus_segments 2 --glance_base_width 8 --focus_base_width 8 "
    "--stn_hidden_dim 8 --temporal_hidden_dim 8 --batch-size 4 --lr 0.01 -j 0 --seed 0"
).split()
DDP = ["--multiprocessing-distributed", "--nproc_per_node", "2", "--device", "cpu"]
HANG_S = 90  # a job that has not ended this long after one of its processes was killed counts as hung


class Ctx:
    """The work folder of a check: the pristine synthetic dataset, copies of it to break, run folders."""

    def __init__(self, work: str, seed: int = 0):
        from ops.data.synthetic import TINY_DATASET, ensure_synthetic

        self.work, self.rng = os.path.abspath(work), random.Random(seed)
        os.makedirs(self.work, exist_ok=True)
        self.clean = os.path.join(self.work, "clean")
        ensure_synthetic(self.clean, **TINY_DATASET)
        self._n = 0

    def folder(self, name: str) -> str:
        self._n += 1
        path = os.path.join(self.work, f"{self._n:02d}_{name}")
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def data_copy(self, name: str) -> str:
        """A copy of the synthetic dataset (root folder holding `synthetic/`) to break."""
        root = self.folder(name)
        shutil.copytree(os.path.join(self.clean, "synthetic"), os.path.join(root, "synthetic"))
        return root


# ---------------------------------------------------------------------------------------------------------------
# shared functions
# ---------------------------------------------------------------------------------------------------------------
def list_rows(root: str, split: str) -> list[tuple[str, int, int]]:
    with open(os.path.join(root, "synthetic", f"{split}_videofolder.txt")) as f:
        return [(p, int(n), int(c)) for p, n, c in (line.split() for line in f if line.strip())]


def frames_dir(root: str, name: str) -> str:
    return os.path.join(root, "synthetic", "frames", name)


def custom_dataset(
    root: str,
    list_text: str | bytes,
    *,
    on_bad: str = "error",
    video_root: str | None = None,
    video_ext: str | None = None,
):
    """A validation VideoDataset (2 glance + 2 candidate frames, 32 px) of the custom dataset with list
    `list_text`, frame folders of `root` (or videos of `video_root`)."""
    from ops.data.dataset import VideoDataset
    from ops.data.dataset_config import custom_config

    list_file = os.path.join(root, "list.txt")
    with open(list_file, "wb") as f:
        f.write(list_text.encode() if isinstance(list_text, str) else list_text)
    frames = None if video_root else os.path.join(root, "synthetic", "frames")
    config = custom_config(
        categories=os.path.join(root, "synthetic", "category.txt"),
        train_list=list_file,
        val_list=list_file,
        frames_root=frames,
        video_root=video_root,
    )
    return VideoDataset(
        config,
        "val",
        num_glance=2,
        num_candidates=2,
        input_size=32,
        list_file=list_file,
        video_root=video_root,
        video_ext=video_ext,
        on_bad_video=on_bad,
    )


@contextlib.contextmanager
def captured_log():
    """Collects what the data pipeline logs (its warnings name the files) and what `warnings` says."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler, logger = Keep(), logging.getLogger("ops")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield lines
        lines.extend(str(w.message) for w in caught)
    finally:
        logger.removeHandler(handler)


def load_all(ds) -> None:
    for i in range(len(ds)):
        ds[i]


def expect_error(fn: Callable[[], object], kind: type, *needles: str) -> tuple[bool, str]:
    """held when fn raises `kind` whose message contains every needle."""
    try:
        fn()
    except kind as exc:
        msg = str(exc)
        missing = [n for n in needles if n not in msg]
        return not missing, (f"missing {missing} in: " if missing else "") + short(msg)
    except Exception as exc:  # another error: not the named one
        return False, f"{type(exc).__name__}: {short(str(exc))}"
    return False, "no error"


def short(text: str, n: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def train_args(data_root: str, runs: str, *extra: str):
    from ops.opts import parse_args

    argv = ["synthetic", "RGB", "--root_dataset", data_root, "--root_log", runs, *TINY, *extra]
    return parse_args(argv)


def run_training(args):
    """Runs main.py's training in this process, its console output (log lines, progress bars) into
    `<root_log>/console.txt`."""
    from ops.engine.train import run

    try:
        os.makedirs(args.root_log, exist_ok=True)
        target = open(os.path.join(args.root_log, "console.txt"), "a")
    except OSError:  # the unwritable --root_log case
        target = open(os.devnull, "w")
    with target, contextlib.redirect_stdout(target), contextlib.redirect_stderr(target):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run(args)


def saved_weights(path: str) -> dict[str, torch.Tensor]:
    from ops.engine.checkpoint import read_checkpoint

    return read_checkpoint(path)["state_dict"]


def run_metrics(args) -> list[dict]:
    from ops.engine.runlog import read_metrics

    path = os.path.join(args.log_dir, "metrics.jsonl")
    return read_metrics(path) if os.path.isfile(path) else []


@contextlib.contextmanager
def patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def write_video(path: str, frames: np.ndarray, codec: str = "mpeg4", fmt: str | None = None) -> None:
    import av

    with av.open(path, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def folder_frames(root: str, name: str, n: int) -> np.ndarray:
    from ops.data.video_io import FrameFolder, read_frames

    return read_frames(FrameFolder(frames_dir(root, name), "img_{:05d}.jpg"), range(1, n + 1))
