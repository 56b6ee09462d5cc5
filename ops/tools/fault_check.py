"""Fault injection on tiny synthetic data (what scripts/fault_check.py runs): each case breaks one thing (a data
file, a list row, a loss, a checkpoint write, a process of a DDP job) and checks that the run stops with a message
naming the fault, or goes on where a flag asked it to and counts what it skipped; never a hang, never a silent
wrong result. Each case returns (held, detail); `run_cases` prints one line per case and a final JSON line.
The cases are in ops/tools/faults/ (data.py: files and lists; training.py: main.py in this process; ddp.py: DDP
subprocesses).

The cases run the framework's own code: the dataset (ops.data.dataset.VideoDataset), main.py's training
(ops.engine.train.run, in this process or as `python main.py` subprocesses for DDP) on the synthetic dataset
(ops.data.synthetic) with tiny networks. Faults inside a training process (a NaN loss, a disk that fills up) are
injected by replacing one function of the engine for the duration of the case.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import torch

from ops.tools.faults.common import Ctx, short
from ops.tools.faults.data import (
    case_folder_empty,
    case_folder_short,
    case_jpeg_truncated,
    case_list_encodings,
    case_list_rows,
    case_video_fewer_frames,
    case_video_no_stream,
    case_video_size_change,
    case_video_zero_byte,
)
from ops.tools.faults.ddp import case_ddp_bad_sample, case_ddp_kills
from ops.tools.faults.training import (
    case_nonfinite_skip,
    case_nonfinite_stops,
    case_resume_auto,
    case_root_log_unwritable,
    case_save_fails,
    case_train_skip_counted,
)

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
            held, detail = False, f"{type(exc).__name__}: {short(str(exc), 300)}"
        secs = time.perf_counter() - t0
        detail = detail.replace(ctx.work + os.sep, "")  # paths relative to the work folder
        out["cases"][name] = {"held": bool(held), "seconds": round(secs, 1), "detail": detail}
        echo(f"{'held' if held else 'FAILED':6s} {name} ({secs:.1f} s): {detail}")
    out["held"] = sum(c["held"] for c in out["cases"].values())
    out["failed"] = [n for n, c in out["cases"].items() if not c["held"]]
    echo(json.dumps({"held": out["held"], "failed": out["failed"], "cases": len(names)}))
    return out
