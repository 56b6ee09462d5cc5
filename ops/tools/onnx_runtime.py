"""An exported model (ops/tools/export.py) run by ONNX Runtime, with numpy alone: no torch.

`Deployed(folder)` reads deploy.json and opens the graphs. `run(x, thresholds)` on normalised frames
x (B, T, 3, S, S) float32 follows scripts/predict.py: without thresholds the full model; with thresholds a
staged model runs its glance graph for the whole batch and its focus graph only for the videos whose glance
score misses thresholds[0] (the rule of ops.tools.inference.predict_with_exit), any other model picks the
first exit whose score reaches its threshold from its exit logits (ops.tools.inference.choose_exits).
"""

from __future__ import annotations

import json
import os

import numpy as np

MANIFEST = "deploy.json"
CRITERIA = ("confidence", "max_softmax", "entropy")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Returns the float32 softmax over the last axis."""
    z = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def exit_scores(exit_logits: np.ndarray, criterion: str = "confidence") -> np.ndarray:
    """Returns the (n, E) confidence of every exit of exit_logits (n, E, C), as ops.engine.early_exit.exit_scores:
    the max logit, the max softmax probability, or the negative entropy sum p log p."""
    if criterion == "confidence":
        return exit_logits.max(axis=-1)
    p = softmax(exit_logits)
    if criterion == "max_softmax":
        return p.max(axis=-1)
    if criterion == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(p > 0, p * np.log(p), 0).sum(axis=-1)
    raise ValueError(f"unknown criterion {criterion!r}; choose from {CRITERIA}")


def first_exit(exit_logits: np.ndarray, thresholds: np.ndarray, criterion: str) -> np.ndarray:
    """Returns per video the first exit (n,) whose score reaches its threshold (the last exit takes the rest)."""
    meets = exit_scores(exit_logits, criterion) >= thresholds.reshape(1, -1)
    meets[:, -1] = True
    return meets.argmax(axis=1)


class Deployed:
    """The graphs of an export folder in ONNX Runtime sessions, and its deploy.json (`manifest`)."""

    def __init__(self, folder: str, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = os.path.join(folder, MANIFEST)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: export a checkpoint with scripts/export.py first")
        with open(path) as f:
            self.manifest = json.load(f)
        if self.manifest["format"] != "onnx":
            raise ValueError(f"{path}: format {self.manifest['format']!r}; this runtime runs ONNX exports")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.sessions = {}
        for name, graph in self.manifest["graphs"].items():
            file = os.path.join(folder, graph["file"])
            self.sessions[name] = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
        batch = self.manifest["batch"]
        self.batch = None if batch == "dynamic" else int(batch)

    @property
    def num_exits(self) -> int:
        return int(self.manifest["num_exits"])

    def _run(self, name: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs graph `name` on `feed` (its inputs, batch first); a fixed-batch graph runs in chunks of its
        batch, the last one padded with copies of its first row."""
        graph, session = self.manifest["graphs"][name], self.sessions[name]
        feed = {k: np.ascontiguousarray(feed[k]) for k in graph["inputs"]}
        n = len(next(iter(feed.values())))
        if self.batch is None or n == self.batch:
            return dict(zip(graph["outputs"], session.run(graph["outputs"], feed)))
        parts = []
        for start in range(0, n, self.batch):
            chunk = {k: v[start : start + self.batch] for k, v in feed.items()}
            m = len(next(iter(chunk.values())))
            pad = {k: np.concatenate([v, np.repeat(v[:1], self.batch - m, axis=0)]) for k, v in chunk.items()}
            parts.append([o[:m] for o in session.run(graph["outputs"], pad)])
        return {k: np.concatenate([p[i] for p in parts]) for i, k in enumerate(graph["outputs"])}

    def forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Returns the full model's outputs (logits, exit_logits, decisions.*) on frames x (B, T, 3, S, S)."""
        if not self.manifest["staged"]:
            return self._run("model", {"frames": x})
        state = self._run("glance", {"frames": x})
        return self._run("focus", {"frames": x, **state})

    def run(
        self, x: np.ndarray, thresholds: list[float] | None = None, criterion: str = "confidence"
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Returns (logits (B, C), exit index (B,) or None without thresholds) on frames x (B, T, 3, S, S)."""
        if thresholds is None:
            return self.forward(x)["logits"], None
        th = np.asarray(thresholds, dtype=np.float32).reshape(-1)
        if th.size != self.num_exits:
            raise ValueError(f"{self.num_exits} exits need {self.num_exits} thresholds, got {th.size}")
        if not self.manifest["staged"]:
            exits = self.forward(x)["exit_logits"]
            k = first_exit(exits, th, criterion)
            return exits[np.arange(len(k)), k], k
        state = self._run("glance", {"frames": x})
        logits = state["glance_logits"].copy()
        exit_index = np.zeros(len(x), dtype=np.int64)
        rows = np.flatnonzero(~(exit_scores(logits[:, None], criterion)[:, 0] >= th[0]))
        if rows.size:
            out = self._run("focus", {"frames": x[rows], **{k: v[rows] for k, v in state.items()}})
            exits = out["exit_logits"]
            k = first_exit(exits[:, 1:], th[1:], criterion) + 1
            logits[rows] = exits[np.arange(rows.size), k]
            exit_index[rows] = k
        return logits, exit_index
