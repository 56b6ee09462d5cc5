"""Fault injection on tiny synthetic data (what scripts/fault_check.py runs): each case breaks one thing (a data
file, a list row, a loss, a checkpoint write, a process of a DDP job) and checks that the run stops with a message
naming the fault, or goes on where a flag asked it to and counts what it skipped; never a hang, never a silent
wrong result. Each case returns (held, detail); `run_cases` prints one line per case and a final JSON line.

The cases run the framework's own code: the dataset (ops.data.dataset.VideoDataset), main.py's training
(ops.engine.train.run, in this process or as `python main.py` subprocesses for DDP) on the synthetic dataset
(ops.data.synthetic) with tiny networks. Faults inside a training process (a NaN loss, a disk that fills up) are
injected by replacing one function of the engine for the duration of the case.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The tiny networks of the end-to-end tests (the synthetic preset's Uni-AdaFocus at 64 px, widths 8).
TINY = (
    "--eval-freq 1 --input_size 64 --glance_size 64 --patch_size 32 --num_glance_segments 4 "
    "--num_input_focus_segments 8 --num_focus_segments 2 --glance_base_width 8 --focus_base_width 8 "
    "--stn_hidden_dim 8 --temporal_hidden_dim 8 --batch-size 4 --lr 0.01 -j 0 --seed 0"
).split()
SYNTH = dict(
    num_classes=3,
    videos_per_class_train=4,
    videos_per_class_val=3,
    min_frames=10,
    max_frames=14,
    height=64,
    width=80,
    num_clutter=5,
    num_distractors=2,
)
DDP = ["--multiprocessing-distributed", "--nproc_per_node", "2", "--device", "cpu"]
HANG_S = 90  # a job that has not ended this long after one of its processes was killed counts as hung


class Ctx:
    """The work folder of a check: the pristine synthetic dataset, copies of it to break, run folders."""

    def __init__(self, work: str, seed: int = 0):
        from ops.data.synthetic import ensure_synthetic

        self.work, self.rng = os.path.abspath(work), random.Random(seed)
        os.makedirs(self.work, exist_ok=True)
        self.clean = os.path.join(self.work, "clean")
        ensure_synthetic(self.clean, **SYNTH)
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
# helpers
# ---------------------------------------------------------------------------------------------------------------
def _rows(root: str, split: str) -> list[tuple[str, int, int]]:
    with open(os.path.join(root, "synthetic", f"{split}_videofolder.txt")) as f:
        return [(p, int(n), int(c)) for p, n, c in (line.split() for line in f if line.strip())]


def _frames_of(root: str, name: str) -> str:
    return os.path.join(root, "synthetic", "frames", name)


def _dataset(
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
def _captured_log():
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


def _load_all(ds) -> None:
    for i in range(len(ds)):
        ds[i]


def _expect_error(fn: Callable[[], object], kind: type, *needles: str) -> tuple[bool, str]:
    """held when fn raises `kind` whose message contains every needle."""
    try:
        fn()
    except kind as exc:
        msg = str(exc)
        missing = [n for n in needles if n not in msg]
        return not missing, (f"missing {missing} in: " if missing else "") + _short(msg)
    except Exception as exc:  # another error: not the named one
        return False, f"{type(exc).__name__}: {_short(str(exc))}"
    return False, "no error"


def _short(text: str, n: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _train_args(data_root: str, runs: str, *extra: str):
    from ops.opts import parse_args

    argv = ["synthetic", "RGB", "--root_dataset", data_root, "--root_log", runs, *TINY, *extra]
    return parse_args(argv)


def _train(args):
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


def _weights(path: str) -> dict[str, torch.Tensor]:
    from ops.engine.checkpoint import read_checkpoint

    return read_checkpoint(path)["state_dict"]


def _metrics(args) -> list[dict]:
    from ops.engine.runlog import read_metrics

    path = os.path.join(args.log_dir, "metrics.jsonl")
    return read_metrics(path) if os.path.isfile(path) else []


@contextlib.contextmanager
def _patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _write_video(path: str, frames: np.ndarray, codec: str = "mpeg4", fmt: str | None = None) -> None:
    import av

    with av.open(path, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _folder_frames(root: str, name: str, n: int) -> np.ndarray:
    from ops.data.video_io import FrameFolder, read_frames

    return read_frames(FrameFolder(_frames_of(root, name), "img_{:05d}.jpg"), range(1, n + 1))


# ---------------------------------------------------------------------------------------------------------------
# bad data: frame folders, videos, list files
# ---------------------------------------------------------------------------------------------------------------
def case_jpeg_truncated(ctx: Ctx) -> tuple[bool, str]:
    """A JPEG cut in half: read as missing (libjpeg alone would return it grey-filled), replaced by its nearest
    readable neighbour, counted and named."""
    root = ctx.data_copy("jpeg_truncated")
    name, n, label = _rows(root, "val")[0]
    broken = {}
    for kind, t in (("truncated", 2), ("zero-byte", 4)):
        path = os.path.join(_frames_of(root, name), f"img_{t:05d}.jpg")
        data = open(path, "rb").read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2] if kind == "truncated" else b"")
        broken[kind] = path
    with _captured_log() as log:
        ds = _dataset(root, f"{name} {n} {label}\n")
        ds.num_candidates = n  # read every frame
        _load_all(ds)
    named = any(_frames_of(root, name) in line for line in log)
    ok = ds.missing_frames >= 2 and named
    return ok, f"missing_frames {ds.missing_frames}, warned about {name}: {named}"


def case_folder_short(ctx: Ctx) -> tuple[bool, str]:
    """A folder with fewer frames than its row says: the frames past its end are replaced by the last one, counted
    and named (as the original replaced missing frames)."""
    root = ctx.data_copy("folder_short")
    name, n, label = _rows(root, "val")[0]
    with _captured_log() as log:
        ds = _dataset(root, f"{name} {n + 8} {label}\n")
        ds.num_candidates = 8
        _load_all(ds)
    named = any(name in line and "missing frame" in line for line in log)
    return ds.missing_frames > 0 and named, f"missing_frames {ds.missing_frames}, named: {named}"


def case_folder_empty(ctx: Ctx) -> tuple[bool, str]:
    """An empty frame folder: an error naming the list line and the folder; skipped and counted with
    --on_bad_video skip."""
    root = ctx.data_copy("folder_empty")
    rows = _rows(root, "val")[:3]
    name = rows[1][0]
    for f in os.listdir(_frames_of(root, name)):
        os.remove(os.path.join(_frames_of(root, name), f))
    text = "".join(f"{p} {n} {c}\n" for p, n, c in rows)
    held, detail = _expect_error(lambda: _load_all(_dataset(root, text)), RuntimeError, "list.txt:2", name)
    ds = _dataset(root, text, on_bad="skip")
    with _captured_log():
        _load_all(ds)
    return held and ds.bad_videos == 1, f"{detail} | skip: bad_videos {ds.bad_videos}"


def _videos(ctx: Ctx, name: str) -> tuple[str, list]:
    root = ctx.data_copy(name)
    os.makedirs(os.path.join(root, "videos"))
    return root, _rows(root, "val")[:2]


def case_video_zero_byte(ctx: Ctx) -> tuple[bool, str]:
    root, rows = _videos(ctx, "video_zero_byte")
    vids = os.path.join(root, "videos")
    _write_video(os.path.join(vids, rows[0][0] + ".avi"), _folder_frames(root, rows[0][0], rows[0][1]))
    open(os.path.join(vids, rows[1][0] + ".avi"), "wb").close()
    text = "".join(f"{p} {n} {c}\n" for p, n, c in rows)
    held, detail = _expect_error(
        lambda: _load_all(_dataset(root, text, video_root=vids)), RuntimeError, "list.txt:2", rows[1][0]
    )
    ds = _dataset(root, text, on_bad="skip", video_root=vids)
    with _captured_log():
        _load_all(ds)
    return held and ds.bad_videos == 1, f"{detail} | skip: bad_videos {ds.bad_videos}"


def case_video_no_stream(ctx: Ctx) -> tuple[bool, str]:
    import av

    root, rows = _videos(ctx, "video_no_stream")
    vids = os.path.join(root, "videos")
    path = os.path.join(vids, rows[0][0] + ".mkv")
    with av.open(path, "w") as c:  # one second of silence, no video stream
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    text = f"{rows[0][0]} {rows[0][1]} {rows[0][2]}\n"
    return _expect_error(
        lambda: _load_all(_dataset(root, text, video_root=vids)),
        RuntimeError,
        "list.txt:1",
        "no video stream",
    )


def case_video_fewer_frames(ctx: Ctx) -> tuple[bool, str]:
    """A video cut short (its header says more frames than its data holds) and a row asking for more frames than
    it has: the missing frames are replaced by the nearest decoded one, counted and named, or the video is refused
    by name; never garbage."""
    root, rows = _videos(ctx, "video_fewer_frames")
    vids = os.path.join(root, "videos")
    name, n, label = rows[0]
    path = os.path.join(vids, name + ".avi")
    _write_video(path, _folder_frames(root, name, n))
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) * 6 // 10])  # the header (frame count, index) still describes n frames
    with _captured_log() as log:
        ds = _dataset(root, f"{name} {n + 6} {label}\n", video_root=vids)
        ds.num_candidates = n + 6
        try:
            _load_all(ds)
        except RuntimeError as exc:
            named = name in str(exc) and "list.txt:1" in str(exc)
            return named, f"refused: {_short(str(exc))}"
    named = any(name in line for line in log)
    return ds.missing_frames > 0 and named, f"missing_frames {ds.missing_frames}, named: {named}"


def case_video_size_change(ctx: Ctx) -> tuple[bool, str]:
    """A video whose frame size changes mid-stream (two MPEG-TS segments of other sizes, concatenated): refused by
    name, or read with every frame at one size."""
    root, rows = _videos(ctx, "video_size_change")
    vids = os.path.join(root, "videos")
    name, n, label = rows[0]
    frames = _folder_frames(root, name, n)
    half = n // 2
    a, b = os.path.join(ctx.work, "a.ts"), os.path.join(ctx.work, "b.ts")
    _write_video(a, frames[:half], "mpeg2video", "mpegts")
    _write_video(b, np.ascontiguousarray(frames[half:, :48, :64]), "mpeg2video", "mpegts")
    with open(os.path.join(vids, name + ".ts"), "wb") as f:
        f.write(open(a, "rb").read() + open(b, "rb").read())
    ds = _dataset(root, f"{name} {n} {label}\n", video_root=vids, video_ext=".ts")
    ds.num_candidates = n
    try:
        with _captured_log():
            _load_all(ds)
    except RuntimeError as exc:
        msg = str(exc)
        return name in msg and "list.txt:1" in msg, f"refused: {_short(msg)}"
    return False, "read without an error although its frames have two sizes"


def case_list_rows(ctx: Ctx) -> tuple[bool, str]:
    """Rows with a label out of range, a negative frame count, a duplicate path: refused naming file:line (the
    duplicate's later rows skipped by name with --on_bad_video skip)."""
    from ops.data.lists import ListFileError

    root = ctx.data_copy("list_rows")
    (a, na, ca), (b, nb, cb) = _rows(root, "val")[:2]
    results = []
    for text, line, needle in (
        (f"{a} {na} {ca}\n{b} {nb} 7\n", 2, "label 7"),
        (f"{a} {na} {ca}\n{b} -3 {cb}\n", 2, "num_frames"),
        (f"{a} {na} {ca}\n{b} {nb} {cb}\n{a} {na} {ca}\n", 3, "listed again"),
    ):
        ok, detail = _expect_error(
            lambda t=text: _dataset(root, t), ListFileError, f"list.txt:{line}", needle
        )
        results.append((ok, detail))
    with _captured_log() as log:
        ds = _dataset(root, f"{a} {na} {ca}\n{b} {nb} {cb}\n{a} {na} {ca}\n", on_bad="skip")
    skipped = len(ds) == 2 and any("list.txt:3" in x for x in log)
    held = all(ok for ok, _ in results) and skipped
    return held, " | ".join(d for _, d in results) + f" | skip: {len(ds)} rows kept, named: {skipped}"


def case_list_encodings(ctx: Ctx) -> tuple[bool, str]:
    """A list file with a UTF-8 byte-order mark, CRLF line ends, and paths with spaces and non-ASCII characters:
    read, every item loads the frames of its folder."""
    root = ctx.data_copy("list_encodings")
    rows = _rows(root, "val")[:3]
    names = ["clip one", "vidéo_été", "日本 語"]
    for (old, _, _), new in zip(rows, names):
        os.rename(_frames_of(root, old), _frames_of(root, new))
    text = "".join(f"{new} {n} {c}\r\n" for (_, n, c), new in zip(rows, names))
    ds = _dataset(root, b"\xef\xbb\xbf" + text.encode("utf-8"))
    _load_all(ds)
    got = [r.path for r in ds.records]
    ok = got == names and ds.missing_frames == 0
    return ok, f"paths {got}, missing_frames {ds.missing_frames}"


# ---------------------------------------------------------------------------------------------------------------
# training: bad data, non-finite losses, checkpoints, --resume auto
# ---------------------------------------------------------------------------------------------------------------
def _break_train_video(root: str, index: int = 5) -> str:
    name = _rows(root, "train")[index][0]
    folder = _frames_of(root, name)
    for f in os.listdir(folder):
        os.remove(os.path.join(folder, f))
    return name


def case_train_skip_counted(ctx: Ctx) -> tuple[bool, str]:
    """Training with an empty frame folder and --on_bad_video skip: the run ends, metrics.jsonl counts the skip."""
    root = ctx.data_copy("train_skip")
    _break_train_video(root)
    args = _train_args(root, os.path.join(root, "runs"), "--epochs", "1", "--on_bad_video", "skip")
    with _captured_log():
        _train(args)
    train = [r for r in _metrics(args) if r["split"] == "train"]
    bad = train[0].get("bad_videos", 0) if train else 0
    return bad >= 1, f"metrics.jsonl train bad_videos {bad}"


@contextlib.contextmanager
def _nan_loss_at(call: int):
    """Makes the training criterion's loss NaN at its `call`-th call (1-based, counted over the run): main.py's
    train_one_epoch is given a criterion that multiplies that loss by NaN."""
    from ops.engine import train as T

    real, calls = T.train_one_epoch, [0]

    def nan_criterion(criterion):
        def wrapped(outputs, target):
            loss, parts = criterion(outputs, target)
            calls[0] += 1
            return (loss * float("nan"), parts) if calls[0] == call else (loss, parts)

        return wrapped

    def train_one_epoch(model, criterion, *a, **k):
        return real(model, nan_criterion(criterion), *a, **k)

    with _patched(T, "train_one_epoch", train_one_epoch):
        yield


def case_nonfinite_stops(ctx: Ctx) -> tuple[bool, str]:
    """A NaN loss in epoch 2: the run stops naming the step, the loss parts and the batch's videos; the checkpoint
    of epoch 1 stays as it was."""
    root = ctx.folder("nonfinite_stops")
    args = _train_args(ctx.clean, root, "--epochs", "2", "--eval-freq", "5")
    with _nan_loss_at(5):  # 3 steps per epoch: epoch 1, iteration 1
        held, detail = _expect_error(
            lambda: _train(args), FloatingPointError, "epoch 1 iteration 1", "videos", "train_", "loss"
        )
    ckpt = os.path.join(args.run_dir, "ckpt.pth.tar")
    from ops.engine.checkpoint import read_checkpoint

    saved = read_checkpoint(ckpt)
    finite = all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())
    return held and saved[
        "epoch"
    ] == 1 and finite, f"{detail} | checkpoint epoch {saved['epoch']}, finite {finite}"


def case_nonfinite_skip(ctx: Ctx) -> tuple[bool, str]:
    """--on_nonfinite skip: the NaN step's update is skipped and counted (metrics.jsonl nonfinite_steps), the run
    ends with finite weights."""
    root = ctx.folder("nonfinite_skip")
    args = _train_args(ctx.clean, root, "--epochs", "2", "--eval-freq", "5", "--on_nonfinite", "skip")
    with _nan_loss_at(5):
        _train(args)
    train = [r for r in _metrics(args) if r["split"] == "train"]
    counts = [r.get("nonfinite_steps", 0) for r in train]
    weights = _weights(os.path.join(args.run_dir, "ckpt.pth.tar"))
    finite = all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    loss_ok = all(math.isfinite(r["loss"]) for r in train)
    return counts == [
        0,
        1,
    ] and finite and loss_ok, f"nonfinite_steps per epoch {counts}, weights finite {finite}"


def case_save_fails(ctx: Ctx) -> tuple[bool, str]:
    """The disk fills up while the checkpoint of epoch 2 is written: the run stops naming the path and the reason;
    ckpt.pth.tar still holds epoch 1 and loads."""
    from ops.engine import checkpoint
    from ops.engine.checkpoint import CheckpointSaveError, read_checkpoint

    root = ctx.folder("save_fails")
    args = _train_args(ctx.clean, root, "--epochs", "2", "--eval-freq", "5")
    real, calls = torch.save, [0]

    def full_disk(obj, f, *a, **k):
        calls[0] += 1
        if calls[0] < 2:
            return real(obj, f, *a, **k)
        f.write(b"\0" * 1000)  # half a file, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with _patched(checkpoint.torch, "save", full_disk):
        held, detail = _expect_error(
            lambda: _train(args), CheckpointSaveError, "ckpt.pth.tar", "No space left"
        )
    saved = read_checkpoint(os.path.join(args.run_dir, "ckpt.pth.tar"))
    leftovers = [f for f in os.listdir(args.run_dir) if f.startswith(".tmp_")]
    ok = held and saved["epoch"] == 1 and not leftovers
    return ok, f"{detail} | checkpoint epoch {saved['epoch']}, temp files left {leftovers}"


def case_root_log_unwritable(ctx: Ctx) -> tuple[bool, str]:
    """--root_log under a regular file (cannot be created): refused before any training step."""
    from ops.engine import loops
    from ops.engine.checkpoint import CheckpointSaveError

    root = ctx.folder("root_log_unwritable")
    blocker = os.path.join(root, "a_file")
    open(blocker, "w").close()
    args = _train_args(ctx.clean, os.path.join(blocker, "log"), "--epochs", "1")
    steps = [0]

    def counted(*a, **k):
        steps[0] += 1
        raise AssertionError("a training step ran")

    with _patched(loops, "to_input", counted):
        held, detail = _expect_error(lambda: _train(args), CheckpointSaveError, "--root_log", blocker)
    return held and steps[0] == 0, f"{detail} | training steps run: {steps[0]}"


def case_resume_auto(ctx: Ctx) -> tuple[bool, str]:
    """--resume auto: a fresh start when the run folder holds no checkpoint; after an interruption the same command
    line continues from it and ends with the weights of an uninterrupted run; a model flag that differs from the
    checkpoint's model_config is refused naming the flag."""
    from ops.engine import train as T

    root = ctx.folder("resume_auto")
    straight = _train_args(ctx.clean, os.path.join(root, "a"), "--epochs", "2")
    _train(straight)
    argv = ("--epochs", "2", "--resume", "auto")
    first = _train_args(ctx.clean, os.path.join(root, "b"), *argv)
    fresh = first.resume == ""
    real, calls = T.train_one_epoch, []

    def interrupted(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    with _patched(T, "train_one_epoch", interrupted), contextlib.suppress(KeyboardInterrupt):
        _train(first)
    again = _train_args(ctx.clean, os.path.join(root, "b"), *argv)
    picked = again.resume == os.path.join(again.run_dir, "ckpt.pth.tar")
    _train(again)
    a = _weights(os.path.join(straight.run_dir, "ckpt.pth.tar"))
    b = _weights(os.path.join(again.run_dir, "ckpt.pth.tar"))
    equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    mismatch = _parse_error(
        ["synthetic", "RGB", "--root_dataset", ctx.clean, "--root_log", os.path.join(root, "b"), *TINY]
        + [*argv, "--stn_hidden_dim", "16"]
    )
    named = "--stn_hidden_dim" in mismatch
    ok = fresh and picked and equal and named
    return (
        ok,
        f"fresh start {fresh}, resumed {picked}, weights equal {equal}, mismatch: {_short(mismatch, 200)}",
    )


def _parse_error(argv: list[str]) -> str:
    """The message parse_args stops with (argparse prints it to stderr and exits 2)."""
    import io

    from ops.opts import parse_args

    err = io.StringIO()
    with contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parse_args(argv)
        except SystemExit:
            return err.getvalue().strip().splitlines()[-1]
    return "accepted"


# ---------------------------------------------------------------------------------------------------------------
# DDP (2 processes, gloo, CPU) as subprocesses: `python main.py ...`
# ---------------------------------------------------------------------------------------------------------------
def _main_cmd(argv: list[str]) -> list[str]:
    return [sys.executable, os.path.join(ROOT, "main.py"), *argv]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _children(pid: int) -> list[int]:
    """The worker processes mp.spawn started under `pid` (not its resource tracker)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmd:
            kids.append(int(entry))
    return sorted(kids)


def _wait_children(proc: subprocess.Popen, timeout: float) -> list[int]:
    """Waits until mp.spawn has started both processes of `proc` (or it ended, or `timeout`); returns them."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout and proc.poll() is None:
        kids = _children(proc.pid)
        if len(kids) == 2:
            return kids
        time.sleep(0.05)
    return []


def _saved_epoch(runs: str) -> int:
    """The epoch of the checkpoint in the (only) run folder under `runs`; 0 when there is none yet."""
    from ops.engine.checkpoint import read_checkpoint

    for name in os.listdir(runs) if os.path.isdir(runs) else []:
        path = os.path.join(runs, name, "ckpt.pth.tar")
        if os.path.isfile(path):
            return read_checkpoint(path)["epoch"]
    return 0


def _end(proc: subprocess.Popen) -> None:
    for pid in _children(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait()


def _run_main(argv: list[str], log: str, timeout: float) -> tuple[int | None, float]:
    """Runs main.py; returns (exit status or None if it ran past `timeout`, seconds)."""
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(_main_cmd(argv), stdout=out, stderr=subprocess.STDOUT, env=_env())
        try:
            return proc.wait(timeout), time.perf_counter() - t0
        except subprocess.TimeoutExpired:
            _end(proc)
            return None, time.perf_counter() - t0


def _ddp_argv(data_root: str, runs: str) -> list[str]:
    return ["synthetic", "RGB", "--root_dataset", data_root, "--root_log", runs, *TINY, *DDP]


def case_ddp_bad_sample(ctx: Ctx) -> tuple[bool, str]:
    """DDP: an empty frame folder read by one rank stops the job (every rank) with its list line, no hang; with
    --on_bad_video skip the job ends and counts it."""
    root = ctx.data_copy("ddp_bad_sample")
    name = _break_train_video(root)
    argv = _ddp_argv(root, os.path.join(root, "runs")) + ["--epochs", "1"]
    log = os.path.join(root, "error.log")
    rc, secs = _run_main(argv, log, HANG_S * 2)
    text = open(log, errors="replace").read()
    named = name in text and "train_videofolder.txt:" in text
    rc2, _ = _run_main(
        argv + ["--on_bad_video", "skip", "--suffix", "skip"], os.path.join(root, "skip.log"), 300
    )
    runs = os.path.join(root, "runs")
    skipped = [
        r.get("bad_videos", 0)
        for d in os.listdir(runs)
        if d.endswith("_skip")
        for r in (json.loads(x) for x in open(os.path.join(runs, d, "metrics.jsonl")))
        if r["split"] == "train"
    ]
    ok = rc not in (None, 0) and named and rc2 == 0 and skipped and skipped[0] >= 1
    return ok, f"error: exit {rc} after {secs:.0f} s, named {named} | skip: exit {rc2}, bad_videos {skipped}"


def case_ddp_kills(ctx: Ctx, kills: int = 2) -> tuple[bool, str]:
    """DDP: one of the 2 processes is SIGKILLed at a random moment of the training left to do, `kills` times; each
    time the job must end (no hang) and the same command line with --resume auto continues; the final weights must
    equal an uninterrupted DDP run's. The run has 2 x kills epochs (at least 4); once both processes exist, each
    kill comes after their start-up time (measured on the uninterrupted run) plus a delay uniform in [0, 0.9 x the
    time the uninterrupted run took for the epochs still to do].
    The detail lists each kill: the rank, the delay, the epoch of the checkpoint before -> after it, and how long
    the job took to end."""
    epochs = max(4, 2 * kills)
    root = ctx.folder("ddp_kills")
    ref_argv = _ddp_argv(ctx.clean, os.path.join(root, "straight")) + ["--epochs", str(epochs)]
    with open(os.path.join(root, "straight.log"), "ab") as out:
        proc = subprocess.Popen(_main_cmd(ref_argv), stdout=out, stderr=subprocess.STDOUT, env=_env())
    _wait_children(proc, 120)
    t0, first = time.perf_counter(), None
    while proc.poll() is None and time.perf_counter() - t0 < 600:
        if first is None and _saved_epoch(os.path.join(root, "straight")):
            first = time.perf_counter() - t0  # both processes started -> the first checkpoint
        time.sleep(0.05)
    if proc.poll() is None:
        _end(proc)
    rc, total = proc.returncode, time.perf_counter() - t0
    per_epoch = (total - (first or 0)) / (epochs - 1)
    startup = max((first or 0) - per_epoch, 0.0)  # imports, model, data: before the first step
    if rc != 0:
        return False, f"the uninterrupted DDP run failed (exit {rc}), see {root}/straight.log"
    runs = os.path.join(root, "killed")
    argv = _ddp_argv(ctx.clean, runs) + ["--epochs", str(epochs), "--resume", "auto"]
    log = os.path.join(root, "killed.log")
    done, ends, starts = 0, [], 0
    while starts < kills + 10:
        starts += 1
        before = _saved_epoch(runs)
        with open(log, "ab") as out:
            proc = subprocess.Popen(_main_cmd(argv), stdout=out, stderr=subprocess.STDOUT, env=_env())
        if done < kills and before < epochs:
            _wait_children(proc, 120)
            delay = startup + ctx.rng.uniform(0.0, 0.9) * per_epoch * (epochs - before)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(delay)
            kids = _children(proc.pid) if proc.poll() is None else []
            if len(kids) == 2:
                victim = ctx.rng.randrange(2)
                os.kill(kids[victim], signal.SIGKILL)
                done += 1
                t0 = time.perf_counter()
                try:
                    proc.wait(HANG_S)
                except subprocess.TimeoutExpired:
                    _end(proc)
                    return False, f"the job did not end within {HANG_S} s after kill {done}, see {log}"
                ended = time.perf_counter() - t0
                after = _saved_epoch(runs)
                ends.append(f"rank {victim} +{delay:.1f} s (epoch {before}->{after}): ended in {ended:.1f} s")
                continue
        try:
            proc.wait(600)
        except subprocess.TimeoutExpired:
            _end(proc)
            return False, f"a restart did not end within 600 s, see {log}"
        if proc.returncode != 0 or done >= kills:
            break
    name = os.listdir(os.path.join(root, "straight"))[0]
    a = _weights(os.path.join(root, "straight", name, "ckpt.pth.tar"))
    final = os.path.join(runs, name, "ckpt.pth.tar")
    if proc.returncode != 0 or not os.path.isfile(final):
        return False, f"the last restart failed (exit {proc.returncode}), see {log}"
    b = _weights(final)
    equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    detail = f"{done} kills, {starts} starts, {epochs} epochs, weights equal {equal}; " + "; ".join(ends)
    return done == kills and equal, detail


CASES: dict[str, Callable[[Ctx], tuple[bool, str]]] = {
    "jpeg_truncated_or_empty": case_jpeg_truncated,
    "folder_fewer_frames": case_folder_short,
    "folder_empty": case_folder_empty,
    "video_zero_byte": case_video_zero_byte,
    "video_no_stream": case_video_no_stream,
    "video_fewer_frames": case_video_fewer_frames,
    "video_size_change": case_video_size_change,
    "list_bad_rows": case_list_rows,
    "list_bom_crlf_spaces_utf8": case_list_encodings,
    "train_skip_counted": case_train_skip_counted,
    "nonfinite_stops": case_nonfinite_stops,
    "nonfinite_skip": case_nonfinite_skip,
    "checkpoint_save_fails": case_save_fails,
    "root_log_unwritable": case_root_log_unwritable,
    "resume_auto": case_resume_auto,
    "ddp_bad_sample": case_ddp_bad_sample,
    "ddp_kills": case_ddp_kills,
}
FAST = [k for k in CASES if not k.startswith("ddp_")]


def run_cases(work: str, names: list[str], *, kills: int = 2, seed: int = 0, echo=print) -> dict:
    """Runs the named cases in `work`; prints `held|FAILED name (seconds): detail` per case (paths relative to
    `work`) and returns the summary {"held": n, "failed": [names], "cases": {name: {...}}} (also printed as the last line, JSON)."""
    torch.set_num_threads(1)
    ctx = Ctx(work, seed)
    out: dict = {"cases": {}}
    for name in names:
        t0 = time.perf_counter()
        try:
            fn = CASES[name]
            held, detail = fn(ctx, kills=kills) if name == "ddp_kills" else fn(ctx)
        except Exception as exc:  # a case that crashes did not hold
            held, detail = False, f"{type(exc).__name__}: {_short(str(exc), 300)}"
        secs = time.perf_counter() - t0
        detail = detail.replace(ctx.work + os.sep, "")  # paths relative to the work folder
        out["cases"][name] = {"held": bool(held), "seconds": round(secs, 1), "detail": detail}
        echo(f"{'held' if held else 'FAILED':6s} {name} ({secs:.1f} s): {detail}")
    out["held"] = sum(c["held"] for c in out["cases"].values())
    out["failed"] = [n for n, c in out["cases"].items() if not c["held"]]
    echo(json.dumps({"held": out["held"], "failed": out["failed"], "cases": len(names)}))
    return out
