"""Backbone pretraining on the synthetic dataset: the demo's stand-in for ImageNet weights.

Uni-AdaFocus never starts from scratch: its glance and focus networks begin from ImageNet (or Kinetics)
weights and only the policies start from random. ImageNet weights cannot be used offline on the synthetic
glyphs, so the demo first trains the two backbones briefly as plain clip classifiers, using the glyph boxes of
`annotations.json`:

* glance net (TSN, T_g frames at glance resolution): clips sampled as in training (one frame per segment, the
  glyph on screen in some of them; so the BatchNorm statistics are those the main training sees), the video's
  label, plus, where the model has one (Uni-AdaFocus: its feature-crop aux head), a class-map loss through the
  head of `FramePretrainParts` that makes its features localised (AdaFocus V2 has none: the label loss only);
* focus net (TSN, K patches): frames where the glyph is visible, glyph-centred deformable patches cut by the
  model's own patch sampler, with random position and size jitter (the glyph always inside).

Policies and everything else stay untouched, so in the main training they still
have to learn where and when to look; evaluation with random patches (`--policy random`) runs the same
pretrained networks. The result is saved as a checkpoint for `main.py --tune_from`.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.core.patches import deformable_patch_grid, region_range, scale_action
from ops.data.lists import sample_train
from ops.data.synthetic import TEMPLATE
from ops.data.transforms import center_view_map, eval_views, normalize
from ops.data.video_io import FrameFolder, read_frames


def load_frames(folder: str, split: str, input_size: int) -> list[dict]:
    """Returns, per video of `split`, {'frames': (F, S, S, 3) uint8 RGB, 'boxes': (F, 4) float [x, y, w, h] (NaN
    while the glyph is off screen), 'window': (start, end), 'label'} in the evaluation view's geometry
    (ops.data.transforms eval_views: short side scaled to S * 256 / 224, centre crop S; the glyph stays inside it by
    construction)."""
    with open(os.path.join(folder, "annotations.json")) as f:
        annotations = json.load(f)
    scale_size = input_size * 256 // 224
    videos = []
    for name, a in sorted(annotations.items()):
        if a["split"] != split:
            continue
        source = FrameFolder(os.path.join(folder, "frames", name), TEMPLATE, a["num_frames"])
        frames = read_frames(source, np.arange(a["num_frames"]) + 1)
        zoom, shift = center_view_map(frames.shape[2], frames.shape[1], input_size, scale_size)
        boxes = np.float32([b if b is not None else [np.nan] * 4 for b in a["boxes"]])
        videos.append(
            {
                "frames": eval_views(frames, input_size, scale_size, 1)[0],
                "boxes": boxes * zoom - shift,
                "window": tuple(a["window"]),
                "label": a["label"],
            }
        )
    return videos


def _clips(videos: list[dict], batch: int, length: int, rng: np.random.Generator, visible: bool):
    """Returns (frames (batch, length, S, S, 3) uint8, boxes (batch, length, 4), labels (batch,)) from random
    videos, each clip flipped with p=0.5: `visible`: `length` sorted frames with the glyph on screen (repeats
    when the window is short); else one random frame per segment of the whole video, as training samples."""
    frames, boxes, labels = [], [], []
    for i in rng.integers(len(videos), size=batch):
        v = videos[i]
        if visible:
            start, end = v["window"]
            t = np.sort(rng.integers(start, end, size=length))
        else:
            t = sample_train(len(v["frames"]), length, rng) - 1
        f, b = v["frames"][t], v["boxes"][t].copy()
        if rng.random() < 0.5:
            f = f[:, :, ::-1]
            b[:, 0] = f.shape[2] - b[:, 0] - b[:, 2]
        frames.append(f)
        boxes.append(b)
        labels.append(v["label"])
    return np.stack(frames), np.stack(boxes), torch.tensor(labels)


def glyph_actions(
    boxes: torch.Tensor, input_size: int, patch_size: int, rng: torch.Generator
) -> torch.Tensor:
    """Returns deformable actions (M, 4) whose regions contain the boxes (M, 4) [x, y, w, h] (pixels of the
    S-frame): region side uniform in [smallest, P] (at least the box; never shrunk, so fine patterns survive),
    position uniform among the placements that keep the whole box inside the region and the region inside
    the frame."""
    lo, hi = region_range(input_size)
    m = boxes.shape[0]
    side = torch.maximum(lo + (patch_size - lo) * torch.rand(m, generator=rng), boxes[:, 2:].max(1).values)
    side = side.clamp(max=hi)
    actions = torch.empty(m, 4)
    actions[:, 2:] = scale_action(side, input_size).unsqueeze(1)
    for dim, (pos, extent) in enumerate(((boxes[:, 1], boxes[:, 3]), (boxes[:, 0], boxes[:, 2]))):
        first = (pos + extent - side).clamp(min=0)  # smallest top-left that still holds the box
        last = pos.clamp(max=input_size - side)  # largest top-left inside the frame that still holds it
        top = first + (last - first).clamp(min=0) * torch.rand(m, generator=rng)
        actions[:, dim] = (top / (input_size - side)).clamp(0, 1)
    return actions


def class_map_loss(
    featmap: torch.Tensor, head: torch.nn.Module, boxes: np.ndarray, labels: torch.Tensor, input_size: int
) -> torch.Tensor:
    """Makes the glance feature map a class map, as ImageNet features are on real objects: `head` (the
    spatial aux classifier) applied to every cell of featmap (M, D, h, w) must give the video's label in the
    cell holding the glyph centre (boxes (B, T, 4), M = B*T; NaN rows: glyph off screen) and a uniform
    distribution in every other cell."""
    m, _, h, w = featmap.shape
    logp = head(featmap.flatten(2).transpose(1, 2)).log_softmax(-1)  # (M, h*w, C)
    flat = torch.from_numpy(boxes.reshape(m, 4))
    shown = ~flat.isnan().any(1)
    centre = (flat[:, :2] + flat[:, 2:] / 2).nan_to_num(0.0)
    col = (centre[:, 0] * w / input_size).long().clamp(0, w - 1)
    row = (centre[:, 1] * h / input_size).long().clamp(0, h - 1)
    own = row * w + col
    rows = torch.arange(m)[shown]
    target = labels.repeat_interleave(m // labels.numel())[shown]
    on = -logp[rows, own[shown], target].mean() if len(rows) else logp.new_zeros(())
    off = torch.ones(m, h * w, dtype=torch.bool)
    off[rows, own[shown]] = False
    return on - logp[off].mean()


def pretrain_backbones(
    model: torch.nn.Module,
    folder: str,
    *,
    glance_steps: int = 400,
    focus_steps: int = 600,
    frames_per_step: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Trains the glance net (whole frames) and the focus net (glyph patches) of `model.pretrain_parts()` (a
    TSM-preset Uni-AdaFocus or AdaFocus V2) in place: Adam, cosine learning rate to zero (so BatchNorm statistics settle);
    returns the final training accuracy and loss of each network trained (a network with 0 steps is skipped).

    Each step sees `frames_per_step` frames: 16 glance clips of 8 frames, 32 focus clips of 4 patches. With 16
    focus clips the final focus training accuracy over seeds 0-3 was 0.90 / 0.52 (hue only, the pattern never
    learned) / 0.67 / 0.78; with 32, over seeds 1, 2, 4, 0.81 / 0.73 / 0.76, and seed 0 0.54 (the 16-px glyph of
    synthetic data version 6; the demo's README paragraph gives the 24-px glyph's figures)."""
    cfg = model.cfg
    parts = model.pretrain_parts()
    if parts is None:
        raise ValueError(
            f"frame pretraining needs per-frame glance and focus nets ({type(model).__name__} declares none: "
            "pretrain_parts(); the tsm preset, as the demo, has them)"
        )
    videos = load_frames(folder, "train", cfg.input_size)
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.train()
    report = {}
    for name, net, length, steps in (
        ("glance", parts.glance, parts.glance_frames, glance_steps),
        ("focus", parts.focus, parts.focus_frames, focus_steps),
    ):
        if steps <= 0:
            continue
        head = parts.class_map_head if name == "glance" else None
        params = list(net.parameters()) + (list(head.parameters()) if head is not None else [])
        opt = torch.optim.Adam([p for p in params if p.requires_grad], lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        hits, seen = [], []
        bar = tqdm(range(steps), desc=f"pretrain {name}", unit="step", leave=False, disable=not progress)
        for _ in bar:
            frames, boxes, labels = _clips(
                videos, max(1, frames_per_step // length), length, rng, visible=name == "focus"
            )
            x = normalize(torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3)).flatten(0, 1)
            if name == "glance":
                x = parts.glance_resize(x)
            else:
                actions = glyph_actions(
                    torch.from_numpy(boxes).flatten(0, 1), cfg.input_size, cfg.patch_size, gen
                )
                x = deformable_patch_grid(
                    x, actions, cfg.patch_size, cfg.input_size, cfg.patch_size, cfg.input_size
                )
            out = net(x, length)
            loss = F.cross_entropy(out["reg"], labels) + F.cross_entropy(out["final"], labels)
            if head is not None:
                loss = loss + class_map_loss(out["featmap"], head, boxes, labels, cfg.input_size)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            hits.append((out["reg"].argmax(1) == labels).float().mean().item())
            seen.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(seen[-20:]):.3f}", acc=f"{np.mean(hits[-20:]):.2f}")
        report[name] = {"train_acc": float(np.mean(hits[-20:])), "loss": float(np.mean(seen[-20:]))}
    return report
