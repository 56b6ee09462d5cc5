"""Fault-check cases of 2-process DDP jobs (gloo, CPU) run as `python main.py` subprocesses: a bad sample on one
rank, and a process SIGKILLed at random moments (ops/tools/fault_check.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import torch

from ops.tools.faults.common import DDP, HANG_S, ROOT, TINY, Ctx, saved_weights
from ops.tools.faults.training import break_train_video


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


def _ckpt_mtime(runs: str) -> float | None:
    """The modification time of the checkpoint in the (only) run folder under `runs`; None when there is none."""
    for name in os.listdir(runs) if os.path.isdir(runs) else []:
        with contextlib.suppress(OSError):
            return os.stat(os.path.join(runs, name, "ckpt.pth.tar")).st_mtime
    return None


def _ddp_argv(data_root: str, runs: str) -> list[str]:
    return ["synthetic", "RGB", "--root_dataset", data_root, "--root_log", runs, *TINY, *DDP]


def case_ddp_bad_sample(ctx: Ctx) -> tuple[bool, str]:
    """DDP: an empty frame folder read by one rank stops the job (every rank) with its list line, no hang; with
    --on_bad_video skip the job ends and counts it."""
    root = ctx.data_copy("ddp_bad_sample")
    name = break_train_video(root)
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
    """DDP: one of the 2 processes is SIGKILLed at a random moment, `kills` times; each time the job must end (no
    hang) and the same command line with --resume auto continues; the final weights must equal an uninterrupted DDP
    run's. The run has 3 x kills epochs (at least 4). A kill picks a random epoch among the next (epochs left) /
    (kills left) of the restart, waits until its checkpoint exists (the restart's first epoch: until both
    processes are up), then a random part of one epoch's time (plus the start-up time, for the first epoch), both
    measured on the uninterrupted run: it comes in the start-up, in training, in validation or in a checkpoint
    write. The detail lists each kill: the rank, the moment, the checkpoint's epoch when the restart began -> when
    the job had ended, and how long the job took to end after the kill."""
    epochs = max(4, 3 * kills)
    root = ctx.folder("ddp_kills")
    ref_argv = _ddp_argv(ctx.clean, os.path.join(root, "straight")) + ["--epochs", str(epochs)]
    with open(os.path.join(root, "straight.log"), "ab") as out:
        proc = subprocess.Popen(_main_cmd(ref_argv), stdout=out, stderr=subprocess.STDOUT, env=_env())
    _wait_children(proc, 120)
    saves: list[float] = []  # when each checkpoint appeared (its file's modification time)
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < 600:
        stamp = _ckpt_mtime(os.path.join(root, "straight"))
        if stamp is not None and (not saves or stamp != saves[-1]):
            saves.append(stamp)
        time.sleep(0.05)
    if proc.poll() is None:
        _end(proc)
    rc = proc.returncode
    per_epoch = (saves[-1] - saves[0]) / (len(saves) - 1) if len(saves) > 1 else 1.0
    startup = max(saves[0] - t0 - per_epoch, 0.0) if saves else 0.0  # processes up -> first step
    if rc != 0:
        return False, f"the uninterrupted DDP run failed (exit {rc}), see {root}/straight.log"
    runs = os.path.join(root, "killed")
    argv = _ddp_argv(ctx.clean, runs) + ["--epochs", str(epochs), "--resume", "auto"]
    log = os.path.join(root, "killed.log")
    done, ends, starts, missed = 0, [], 0, 0
    while starts < kills + 10:
        before = _saved_epoch(runs)
        if before >= epochs:
            break
        starts += 1
        with open(log, "ab") as out:
            proc = subprocess.Popen(_main_cmd(argv), stdout=out, stderr=subprocess.STDOUT, env=_env())
        if done < kills and before <= epochs - 2:
            # a random moment: once the checkpoint of a random epoch still to do exists, a random part of an epoch
            window = max(1, (epochs - 1 - before) // (kills - done))  # leaves epochs for the kills to come
            target = before + ctx.rng.randrange(window)
            _wait_children(proc, 120)
            while proc.poll() is None and _saved_epoch(runs) < target:
                time.sleep(0.1)
            delay = ctx.rng.uniform(0.0, 1.0) * (per_epoch + (startup if target == before else 0.0))
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
                moment = "both processes were up" if target == before else f"checkpoint {target} appeared"
                ends.append(
                    f"rank {victim} {delay:.1f} s after {moment} (checkpoint {before}->{after}): job ended in "
                    f"{ended:.1f} s"
                )
                continue
            missed += 1
        try:
            proc.wait(600)
        except subprocess.TimeoutExpired:
            _end(proc)
            return False, f"a restart did not end within 600 s, see {log}"
        if proc.returncode != 0 or done >= kills:
            break
    name = os.listdir(os.path.join(root, "straight"))[0]
    a = saved_weights(os.path.join(root, "straight", name, "ckpt.pth.tar"))
    final = os.path.join(runs, name, "ckpt.pth.tar")
    if proc.returncode != 0 or not os.path.isfile(final):
        return False, f"the last restart failed (exit {proc.returncode}), see {log}"
    b = saved_weights(final)
    equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    detail = f"{done} kills ({missed} missed: the job had ended), {starts} starts, {epochs} epochs, weights "
    detail += f"equal {equal}; " + "; ".join(ends)
    return done == kills and equal, detail
