"""The demo's two figures, written into its run folder: where the policies look on a few validation videos
(ops/tools/visualize.py's picture, with the annotated glyph box added), and top-1 accuracy against GFLOPs of
the learned policies, the random-patch control, the glance network alone and the early-exit curve."""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from ops.data.dataset import VideoDataset
from ops.demo.policy_check import view_transform
from ops.engine.loops import to_input
from ops.tools.visualize import box_corners, decision_picture, draw_box, save_png

GLYPH_BOX = (255, 64, 64)  # outline of the annotated glyph (RGB), drawn 1 px inside the focus-region colour


@torch.no_grad()
def policy_picture(
    model: torch.nn.Module, dataset: VideoDataset, folder: str, path: str, videos: int = 4
) -> str:
    """Writes one PNG at `path` stacking the decision pictures of the first `videos` videos of `dataset` (an
    evaluation VideoDataset of the synthetic data in `folder`, one view): glance frames, selected frames with the
    focus region (green) and, where the glyph is on screen, its annotated box (red). Returns the path."""
    with open(os.path.join(folder, "annotations.json")) as f:
        annotations = json.load(f)
    with open(os.path.join(folder, "category.txt")) as f:
        names = f.read().split()
    zoom, shift = view_transform(folder, dataset)
    model.eval()
    device = next(model.parameters()).device
    items = [dataset[i] for i in range(min(videos, len(dataset)))]
    x = torch.stack([frames for frames, _, _ in items])
    out = model(to_input(x, device))
    chosen = model.decisions(out)  # None: a model without policies (all frames whole)
    decisions = {k: v.cpu().numpy() for k, v in chosen.items()} if chosen is not None else None
    predicted = out["logits"].argmax(1).tolist()
    pictures = []
    for b, (frames, label, index) in enumerate(items):
        record = dataset.records[index]
        numbers = dataset.frame_numbers(record)[0]
        one = {k: v[b] for k, v in decisions.items()} if decisions is not None else None
        view = frames.permute(0, 2, 3, 1).numpy()  # (T, S, S, 3) uint8
        truth = names[int(label.view(-1)[0])]
        header = [f"{record.path}: true {truth}, predicted {names[predicted[b]]}"]
        picture = decision_picture(view, numbers, one, header)
        boxes = annotations[record.path]["boxes"]
        for (x0, y0), t in zip(
            picture.tiles.get("selected", []), [] if one is None else one["selected"].tolist()
        ):
            box = boxes[int(numbers[t]) - 1]
            if box is not None:
                tile = picture.image[y0 : y0 + picture.tile, x0 : x0 + picture.tile]
                glyph = np.float64(box) * zoom - shift
                draw_box(tile, box_corners(glyph, picture.zoom, picture.tile, picture.tile), 1, GLYPH_BOX)
        pictures.append(picture.image)
    width = max(p.shape[1] for p in pictures)
    padded = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=32) for p in pictures]
    return save_png(path, np.concatenate(padded, axis=0))


def accuracy_gflops_plot(points: dict[str, tuple[float, float]], curve: list[dict], path: str) -> str:
    """Writes a PNG at `path`: top-1 (%) against GFLOPs per video of each method in `points` (name -> (gflops,
    top1)) and the early-exit curve (`curve`: run_early_exit's points, each with 'gflops' and 'metric').
    Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    ax.plot([q["gflops"] for q in curve], [q["metric"] for q in curve], "-", color="0.5", label="early exit")
    for (name, (gflops, top1)), marker in zip(points.items(), "o^sDv"):
        ax.plot([gflops], [top1], marker, markersize=8, label=f"{name} ({top1:.1f}%)")
    ax.set_xlabel("GFLOPs per video")
    ax.set_ylabel("top-1 (%), validation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
