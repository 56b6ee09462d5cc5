"""What a test asserts about a finished run, computed here and not by the engine: top-1 from the saved per-video
scores and the list file's labels, the logged records of a split, and GFLOPs by PyTorch's own operation counter
(torch.utils.flop_counter, independent of the fvcore counting in models/core/flops.py)."""

from __future__ import annotations

import json
import os
import runpy
import sys

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode


def list_labels(list_file: str) -> dict[str, int]:
    """Returns {video path: label} of a TSM list file (`path num_frames label` per line, first label only)."""
    labels = {}
    with open(list_file) as f:
        for line in f:
            fields = line.split()
            if fields:
                labels[fields[0]] = int(fields[2])
    return labels


def top1_from_scores(scores_file: str, list_file: str) -> float:
    """Returns 100 x the fraction of videos whose argmax logit is their list-file label, from a --save_scores file
    (every video of the list must be there exactly once)."""
    saved = np.load(scores_file)
    labels = list_labels(list_file)
    ids = [os.path.basename(str(i)) for i in saved["ids"]]
    by_name = {os.path.basename(k): v for k, v in labels.items()}
    assert sorted(ids) == sorted(by_name), "the scores do not cover the list's videos once each"
    hits = [int(np.argmax(row)) == by_name[i] for i, row in zip(ids, saved["logits"], strict=True)]
    return 100.0 * sum(hits) / len(hits)


def logged(run_dir: str, split: str) -> list[dict]:
    """Returns the metrics.jsonl records of `split` ('train' | 'test') of a run folder, in order."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == split]


def torch_gflops(fn, *inputs: torch.Tensor) -> float:
    """Returns the multiply-accumulates (x 1e-9) of convolutions and matrix products in `fn(*inputs)`, counted by
    PyTorch's FlopCounterMode (which counts 2 FLOPs per multiply-accumulate), under no_grad."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(*inputs)
    return counter.get_total_flops() / 2 / 1e9


def retry_on_port_clash(call, attempts: int = 3):
    """Returns `call()`, called again (up to `attempts` times) when it failed because the rendezvous port, free when
    the launcher picked it, was taken by another process before gloo bound it."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:  # torch.multiprocessing's ProcessRaisedException carries the child's message
            if attempt == attempts - 1 or "address already in use" not in str(exc).lower():
                raise
    return None


def run_script(path: str, argv: list[str]) -> int:
    """Runs the repository script `path` (e.g. 'main.py', 'scripts/demo.py') as `python path *argv` would, but in
    this process (no interpreter start-up); returns its exit status (0 when it returns). The caller captures the
    output (pytest's capsys)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    saved = sys.argv
    sys.argv = [path, *argv]
    try:
        runpy.run_path(os.path.join(root, path), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0
