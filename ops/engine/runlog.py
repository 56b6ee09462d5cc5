"""Run-folder writer (rank 0 only): args.json, metrics.jsonl, TensorBoard scalars, log.csv, progress bars.

Files in `log_dir` (= {root_log}/{store_name}):
  args.json      the resolved arguments (plain JSON), plus args.txt = str(args) as the originals wrote
  metrics.jsonl  one JSON object per line: {"epoch", "split", "time", "lr", <metric>: value, ...}
  log.csv        the human-readable text log the originals appended to (one line per message)
  events.*       TensorBoard scalars with the originals' tags: loss/train, acc/train_top1, acc/test_top1, lr, ...
                 per epoch; every --print-freq iterations also train_iter/loss, train_iter/loss_<part>, train_iter/lr
                 at the global iteration (epoch x iterations per epoch + iteration, from 1)
On every other rank the logger is disabled: nothing is created, every method is a no-op.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Mapping

from tqdm import tqdm

from ops.engine.checkpoint import jsonable


def scalar_tag(split: str, key: str) -> str:
    """Returns the TensorBoard tag of metric `key` in `split`: loss -> loss/{split}, loss_x -> loss/{split}_x,
    anything else -> acc/{split}_{key} (the originals' names: loss/train, acc/train_top1, acc/test_top5)."""
    if key == "loss":
        return f"loss/{split}"
    if key.startswith("loss_"):
        return f"loss/{split}_{key[5:]}"
    return f"acc/{split}_{key}"


class RunLogger:
    """Writes the run folder on the main process; `enabled=False` (other ranks) makes every call a no-op."""

    def __init__(self, log_dir: str, enabled: bool = True, tensorboard: bool = True, echo: bool = True):
        self.log_dir, self.enabled, self.echo = log_dir, enabled, echo
        self._writer = None
        if not enabled:
            return
        os.makedirs(log_dir, exist_ok=True)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported here: ~0.2 s, only rank 0 pays it

            self._writer = SummaryWriter(log_dir=log_dir)

    def path(self, name: str) -> str:
        return os.path.join(self.log_dir, name)

    def write_args(self, args: argparse.Namespace | Mapping) -> None:
        """Writes args.json (resolved, JSON-safe) and args.txt (str(args), as the originals)."""
        if not self.enabled:
            return
        with open(self.path("args.json"), "w") as f:
            json.dump(jsonable(args), f, indent=1, sort_keys=True)
        with open(self.path("args.txt"), "w") as f:
            f.write(str(args) + "\n")

    def info(self, message: str) -> None:
        """Prints `message` and appends it to log.csv."""
        if not self.enabled:
            return
        if self.echo:
            print(message, flush=True)
        with open(self.path("log.csv"), "a") as f:
            f.write(message.rstrip("\n") + "\n")

    def log_metrics(
        self, epoch: int, split: str, metrics: Mapping[str, float], lr: float | None = None
    ) -> dict:
        """Appends one line to metrics.jsonl and writes each metric as a TensorBoard scalar at step `epoch`.

        Returns the record written. `split` is 'train' or 'test' (the originals' tag names)."""
        record = {"epoch": int(epoch), "split": split, "time": time.time()}
        if lr is not None:
            record["lr"] = float(lr)
        record.update({k: float(v) for k, v in metrics.items()})
        if not self.enabled:
            return record
        with open(self.path("metrics.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in metrics.items():
            self.scalar(scalar_tag(split, key), float(value), epoch)
        if lr is not None:
            self.scalar("lr", float(lr), epoch)
        return record

    def log_step(self, step: int, losses: Mapping[str, float], lr: float) -> None:
        """Writes one training iteration's loss, its parts and lr as TensorBoard scalars at global iteration
        `step`: train_iter/loss, train_iter/loss_<part> (e.g. loss_fused, loss_glance), train_iter/lr."""
        for key, value in losses.items():
            name = key if key.startswith("loss") else f"loss_{key}"
            self.scalar(f"train_iter/{name}", float(value), step)
        self.scalar("train_iter/lr", float(lr), step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One TensorBoard scalar (e.g. 'acc/test_top1_best')."""
        if self.enabled and self._writer is not None:
            self._writer.add_scalar(tag, value, step)

    def progress(self, iterable: Iterable, **kwargs) -> Iterable:
        """Returns a tqdm bar over `iterable` on the main process, the bare iterable elsewhere."""
        if not self.enabled:
            return iterable
        return tqdm(iterable, dynamic_ncols=True, **kwargs)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: str) -> list[dict]:
    """Returns the records of a metrics.jsonl file (raises ValueError naming the line when one is malformed)."""
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not JSON ({exc})") from exc
    return records
