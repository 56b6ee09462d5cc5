"""Prediction on video files with a trained checkpoint (what scripts/predict.py runs).

The model, its configuration and the class names come from the checkpoint alone. Each video (any container
ops.data.video_paths knows, or any other file PyAV opens) is decoded and sampled as the model's evaluation does
(segment centres, the centre crop of the evaluation view: the VideoDataset of main.py --evaluate), videos are
batched through the model, and each gets its top-k classes with softmax probabilities, the GFLOPs it cost
and, with early exit, the exit it took. A video that cannot be read gets an `error` entry; the others are
still predicted.

    from ops.tools.predict import Predictor

    predictor = Predictor.from_checkpoint("log/RUN/ckpt.best.pth.tar", device="cpu")
    result = predictor.predict("walk.mp4", topk=3)  # {'video', 'top3': [[class, probability], ...], 'gflops', 'exit'}
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from models import ModelConfig, model_from_checkpoint
from ops.data.dataset import VideoDataset
from ops.data.dataset_config import DatasetConfig, read_class_names
from ops.data.lists import VideoRecord
from ops.data.video_io import FrameReadError, stream_index
from ops.engine.checkpoint import CheckpointError, read_checkpoint
from ops.engine.distributed import resolve_device
from ops.engine.flops import exit_gflops
from ops.engine.loops import input_spec, to_input
from ops.tools.inference import choose_exits, predict_with_exit
from ops.tools.predict_report import exit_thresholds  # noqa: F401 (part of this module's interface)


@dataclass
class Predictor:
    """A checkpoint's model in eval mode on its device, with what prediction needs to know about it."""

    model: torch.nn.Module
    cfg: ModelConfig
    categories: list[str]
    device: torch.device
    resize_backend: (
        str  # how the checkpoint's run resized frames (its evaluation view is rebuilt the same way)
    )
    gflops: list[float]  # per exit, per video (one view)
    path: str

    @classmethod
    def from_checkpoint(
        cls, path: str, *, device: str = "auto", trust: bool = False, categories: str | None = None
    ) -> Predictor:
        """Returns the Predictor of checkpoint `path` (see load_predictor)."""
        return load_predictor(path, device=device, trust=trust, categories=categories)

    def predict(
        self,
        videos: str | list[str],
        *,
        topk: int = 5,
        batch_size: int = 8,
        thresholds: list[float] | None = None,
        criterion: str = "confidence",
    ) -> dict | list[dict]:
        """Predicts a video file (a dict) or a list of them (a list of dicts, in order): `video`, `top{k}`
        [[class name, softmax probability], ...] most likely first, `gflops` (per video, the exit taken), `exit`
        (its index with `thresholds`, see exit_thresholds; else None), or `video` and `error` for a video that
        cannot be read. Sampled and cropped as the checkpoint's evaluation (one view)."""
        paths = [videos] if isinstance(videos, str) else list(videos)
        results: list[dict] = [{"video": p} for p in paths]
        dataset, errors = video_dataset(self, paths)
        for i, error in errors.items():
            results[i]["error"] = error
        readable = [i for i in range(len(paths)) if i not in errors]
        for items in batches(dataset, batch_size, 0) if dataset is not None else ():
            good = []
            for j, frames, error, _ in items:
                if error is None:
                    good.append((j, frames))
                else:
                    results[readable[j]]["error"] = error
            if not good:
                continue
            logits, exits, _ = run_batch(
                self, torch.stack([f for _, f in good]), thresholds, criterion, False
            )
            for row, ((j, _), top) in enumerate(zip(good, top_classes(logits, self.categories, topk))):
                taken = None if exits is None else int(exits[row])
                gflops = self.gflops[-1 if taken is None else taken]
                results[readable[j]].update({f"top{topk}": top, "gflops": gflops, "exit": taken})
        return results[0] if isinstance(videos, str) else results


def load_predictor(
    path: str, *, device: str = "auto", trust: bool = False, categories: str | None = None
) -> Predictor:
    """Returns the Predictor of checkpoint `path` (one written by main.py: it holds `model_config`, and the
    class names since they are saved). `categories` (one name per line) names the classes of a checkpoint
    without names; without either they are called class_0, class_1, ... Raises CheckpointError naming the
    file when it cannot rebuild the model."""
    ckpt = read_checkpoint(path, trust=trust)
    try:
        model = model_from_checkpoint(ckpt, path)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    cfg = model.cfg
    names = read_class_names(categories) if categories else ckpt.get("categories")
    names = list(names) if names else [f"class_{i}" for i in range(cfg.num_classes)]
    if len(names) != cfg.num_classes:
        source = categories or f"{path} (categories)"
        raise ValueError(f"{source}: {len(names)} class names for a model of {cfg.num_classes} classes")
    target = resolve_device(device)
    gflops = exit_gflops(model)  # counted on the CPU (the count traces zero clips made there)
    model = model.eval().to(target)
    backend = (ckpt.get("args") or {}).get("resize_backend") or "pil"
    return Predictor(model, cfg, names, target, backend, gflops, path)


class _Videos(Dataset):
    """Items (index, frames (T, 3, S, S) uint8 or None, error or None, decode seconds) of an evaluation-view
    VideoDataset; errors are returned, not raised, so one broken video does not stop a batch."""

    def __init__(self, dataset: VideoDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None, float]:
        start = time.perf_counter()
        try:
            frames, _ = self.dataset.load(i)
            return i, frames, None, time.perf_counter() - start
        except FrameReadError as exc:
            return i, None, str(exc), time.perf_counter() - start


def _as_list(batch: list) -> list:
    return batch


def video_dataset(predictor: Predictor, paths: list[str]) -> tuple[VideoDataset | None, dict[int, str]]:
    """Returns (the evaluation-view VideoDataset of the readable videos, {position in `paths`: error} for the
    others); record i of the dataset is the i-th readable path."""
    records, errors = [], {}
    for i, path in enumerate(paths):
        try:
            n = stream_index(os.path.abspath(path)).num_frames
        except FrameReadError as exc:
            errors[i] = str(exc)
            continue
        records.append(VideoRecord(os.path.abspath(path), n, (0,)))
    if not records:
        return None, errors
    root = os.path.commonpath([os.path.dirname(r.path) for r in records])
    records = [VideoRecord(os.path.relpath(r.path, root), r.num_frames, r.labels) for r in records]
    cfg = predictor.cfg
    config = DatasetConfig(
        name="predict",
        num_classes=cfg.num_classes,
        categories=predictor.categories,
        frames_root="",
        train_list="",
        val_list="",
        image_tmpl="",
        separator=" ",
        multi_label=False,
        flip=False,
    )
    glance, candidates = predictor.model.input_layout(cfg)
    spec = input_spec(predictor.model)
    num, den = spec.eval_scale
    dataset = VideoDataset(
        config,
        "val",
        num_glance=glance,
        num_candidates=candidates,
        input_size=cfg.input_size,
        video_root=root,
        resize_backend=predictor.resize_backend,
        records=records,
        scale_size=cfg.input_size * num // den,
        sampling=spec.sampling,
        clip_stride=spec.clip_stride,
    )
    return dataset, errors


@torch.no_grad()
def run_batch(
    predictor: Predictor, frames: torch.Tensor, thresholds: list[float] | None, criterion: str, outputs: bool
) -> tuple[torch.Tensor, torch.Tensor | None, dict | None]:
    """Runs the model on uint8 frames (B, T, 3, S, S); returns (logits (B, C), exit index (B,) or None
    without thresholds, the forward's outputs or None). A `staged` model (VideoModel.glance_stage /
    focus_stage) runs early exit through `predict_with_exit`, so videos that leave at the glance skip the
    rest; any other model picks its exit from a full forward. `outputs=True` returns a full forward's
    outputs (for pictures), computed once more after an early-exit pass."""
    model, device = predictor.model, predictor.device
    spec = input_spec(model)
    out = None
    if thresholds is None:
        out = model(to_input(frames, device, spec))
        logits, exits = out["logits"], None
    elif model.staged:
        x = frames.to(device)
        logits, exits = predict_with_exit(
            model, x, thresholds, criterion, prepare=lambda v: to_input(v, device, spec)
        )
    else:
        out = model(to_input(frames, device, spec))
        logits, exits = choose_exits(out["exit_logits"], thresholds, criterion)
    if outputs and out is None:
        out = model(to_input(frames, device, spec))
    return logits.float().cpu(), None if exits is None else exits.cpu(), out


def top_classes(logits: torch.Tensor, categories: list[str], k: int) -> list[list[list]]:
    """Returns per video [[class name, softmax probability], ...] of the k most likely classes, most likely first."""
    probs = logits.float().softmax(dim=-1)
    values, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return [
        [[categories[j], round(float(p), 6)] for p, j in zip(pv.tolist(), iv.tolist())]
        for pv, iv in zip(values, indices)
    ]


def batches(dataset: VideoDataset, batch_size: int, workers: int) -> DataLoader:
    """Returns a loader of lists of `_Videos` items (decoded in `workers` processes)."""
    return DataLoader(
        _Videos(dataset), batch_size=batch_size, num_workers=workers, collate_fn=_as_list, shuffle=False
    )


def decisions_of(model: torch.nn.Module, out: dict | None, row: int) -> dict | None:
    """Returns one video's `decisions()` of the model as numpy ({glance, selected, regions}), or None."""
    decide = getattr(model, "decisions", None)
    found = decide(out) if (out is not None and decide is not None) else None
    if found is None:
        return None
    return {k: v[row].detach().cpu().numpy() for k, v in found.items()}


def frames_for_picture(frames: torch.Tensor) -> np.ndarray:
    """Returns the model input (T, 3, S, S) uint8 as (T, S, S, 3) numpy for pictures."""
    return frames.permute(0, 2, 3, 1).numpy()
