"""Fault-check cases of main.py's training in this process: bad data skipped, NaN losses, a checkpoint write that
fails, an unwritable log folder, --resume auto (ops/tools/fault_check.py)."""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import warnings

import torch

from ops.tools.faults.common import (
    TINY,
    Ctx,
    captured_log,
    expect_error,
    frames_dir,
    list_rows,
    patched,
    run_metrics,
    run_training,
    saved_weights,
    short,
    train_args,
)


def break_train_video(root: str, index: int = 5) -> str:
    name = list_rows(root, "train")[index][0]
    folder = frames_dir(root, name)
    for f in os.listdir(folder):
        os.remove(os.path.join(folder, f))
    return name


def case_train_skip_counted(ctx: Ctx) -> tuple[bool, str]:
    """Training with an empty frame folder and --on_bad_video skip: the run ends, metrics.jsonl counts the skip."""
    root = ctx.data_copy("train_skip")
    break_train_video(root)
    args = train_args(root, os.path.join(root, "runs"), "--epochs", "1", "--on_bad_video", "skip")
    with captured_log():
        run_training(args)
    train = [r for r in run_metrics(args) if r["split"] == "train"]
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

    with patched(T, "train_one_epoch", train_one_epoch):
        yield


def case_nonfinite_stops(ctx: Ctx) -> tuple[bool, str]:
    """A NaN loss in epoch 2: the run stops naming the step, the loss parts and the batch's videos; the checkpoint
    of epoch 1 stays as it was."""
    root = ctx.folder("nonfinite_stops")
    args = train_args(ctx.clean, root, "--epochs", "2", "--eval-freq", "5")
    with _nan_loss_at(5):  # 3 steps per epoch: epoch 1, iteration 1
        held, detail = expect_error(
            lambda: run_training(args), FloatingPointError, "epoch 1 iteration 1", "videos", "train_", "loss"
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
    args = train_args(ctx.clean, root, "--epochs", "2", "--eval-freq", "5", "--on_nonfinite", "skip")
    with _nan_loss_at(5):
        run_training(args)
    train = [r for r in run_metrics(args) if r["split"] == "train"]
    counts = [r.get("nonfinite_steps", 0) for r in train]
    weights = saved_weights(os.path.join(args.run_dir, "ckpt.pth.tar"))
    finite = all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    loss_ok = all(math.isfinite(r["loss"]) for r in train)
    return counts == [
        0,
        1,
    ] and finite and loss_ok, f"nonfinite_steps per epoch {counts}, weights finite {finite}"


def case_save_fails(ctx: Ctx) -> tuple[bool, str]:
    """The disk fills up while the checkpoint of epoch 2 is written (the file's write raises ENOSPC half-way): the
    run stops naming the path and the reason; ckpt.pth.tar still holds epoch 1 and loads; no temporary file stays."""
    from ops.engine.checkpoint import CheckpointSaveError, read_checkpoint

    root = ctx.folder("save_fails")
    args = train_args(ctx.clean, root, "--epochs", "2", "--eval-freq", "5")
    real, calls = os.fdopen, [0]

    class FullDisk(io.FileIO):
        def write(self, data):
            super().write(bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(fd, mode="r", *a, **k):  # the checkpoint writer opens its temporary file with os.fdopen
        calls[0] += 1
        return FullDisk(fd, "wb") if calls[0] == 2 and "w" in mode else real(fd, mode, *a, **k)

    with patched(os, "fdopen", fdopen):
        held, detail = expect_error(
            lambda: run_training(args), CheckpointSaveError, "ckpt.pth.tar", "No space left"
        )
    saved = read_checkpoint(os.path.join(args.run_dir, "ckpt.pth.tar"))
    leftovers = [f for f in os.listdir(args.run_dir) if f.startswith(".tmp_")]
    ok = held and saved["epoch"] == 1 and not leftovers and calls[0] == 2
    return ok, f"{detail} | checkpoint epoch {saved['epoch']}, temp files left {leftovers}"


def case_root_log_unwritable(ctx: Ctx) -> tuple[bool, str]:
    """--root_log under a regular file (cannot be created): refused before any training step."""
    from ops.engine import loops
    from ops.engine.checkpoint import CheckpointSaveError

    root = ctx.folder("root_log_unwritable")
    blocker = os.path.join(root, "a_file")
    open(blocker, "w").close()
    args = train_args(ctx.clean, os.path.join(blocker, "log"), "--epochs", "1")
    steps = [0]

    def counted(*a, **k):
        steps[0] += 1
        raise AssertionError("a training step ran")

    with patched(loops, "to_input", counted):
        held, detail = expect_error(lambda: run_training(args), CheckpointSaveError, "--root_log", blocker)
    return held and steps[0] == 0, f"{detail} | training steps run: {steps[0]}"


def case_resume_auto(ctx: Ctx) -> tuple[bool, str]:
    """--resume auto: a fresh start when the run folder holds no checkpoint; after an interruption the same command
    line continues from it and ends with the weights of an uninterrupted run; a model flag that differs from the
    checkpoint's model_config is refused naming the flag."""
    from ops.engine import train as T

    root = ctx.folder("resume_auto")
    straight = train_args(ctx.clean, os.path.join(root, "a"), "--epochs", "2")
    run_training(straight)
    argv = ("--epochs", "2", "--resume", "auto")
    first = train_args(ctx.clean, os.path.join(root, "b"), *argv)
    fresh = not first.resume
    real, calls = T.train_one_epoch, []

    def interrupted(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    with patched(T, "train_one_epoch", interrupted), contextlib.suppress(KeyboardInterrupt):
        run_training(first)
    again = train_args(ctx.clean, os.path.join(root, "b"), *argv)
    picked = again.resume == os.path.join(again.run_dir, "ckpt.pth.tar")
    run_training(again)
    a = saved_weights(os.path.join(straight.run_dir, "ckpt.pth.tar"))
    b = saved_weights(os.path.join(again.run_dir, "ckpt.pth.tar"))
    equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    mismatch = parse_error(
        ["synthetic", "RGB", "--root_dataset", ctx.clean, "--root_log", os.path.join(root, "b"), *TINY]
        + [*argv, "--stn_hidden_dim", "16"]
    )
    named = "--stn_hidden_dim" in mismatch
    ok = fresh and picked and equal and named
    return (
        ok,
        f"fresh start {fresh}, resumed {picked}, weights equal {equal}, mismatch: {short(mismatch, 200)}",
    )


def parse_error(argv: list[str]) -> str:
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
