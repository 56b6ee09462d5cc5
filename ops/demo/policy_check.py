"""Where the policies look, measured on the synthetic dataset: the direct evidence behind the demo's accuracies.

Every validation video is run in the evaluation view (1 crop, 1 clip, as main_nViewEval.py); the K selected
frames and the focus regions are mapped onto the glyph boxes of `annotations.json` (same resize and centre crop
as the dataset). Reported, over all selected frames: how many show the glyph, how many hold the whole glyph
inside the focus region, and the region's mean side in pixels (the 1-px pattern survives only regions of about
P pixels or less, which the patch sampler upsamples instead of shrinking).
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from models.core.patches import deformable_patch_grid, scale_action
from ops.data.dataset import VideoDataset
from ops.data.lists import sample_eval
from ops.data.transforms import center_view_map, normalize
from ops.engine.loops import to_input


def view_transform(folder: str, dataset: VideoDataset) -> tuple[np.ndarray, np.ndarray]:
    """Returns (zoom (4,), shift (4,)): a box [x, y, w, h] of a source frame is box * zoom - shift in the view."""
    with open(os.path.join(folder, "params.json")) as f:
        params = json.load(f)
    return center_view_map(params["width"], params["height"], dataset.input_size, dataset.scale_size)


@torch.no_grad()
def glyph_coverage(model: torch.nn.Module, dataset: VideoDataset, folder: str, batch: int = 16) -> dict:
    """Returns {'glyph_frames', 'glyph_in_patch' (fractions of the selected frames, %), 'region_side' (px)} for
    `model` (its current `policy`) on `dataset` (a 'tsm'-layout evaluation VideoDataset of the synthetic data
    in `folder`); the selected frames and their regions are the model's `decisions`."""
    if dataset.train or dataset.num_views != 1:
        raise ValueError("glyph_coverage needs an evaluation dataset with one view (1 crop, 1 clip)")
    with open(os.path.join(folder, "annotations.json")) as f:
        annotations = json.load(f)
    zoom, shift = view_transform(folder, dataset)
    device = next(model.parameters()).device
    model.eval()
    shown, inside, sides = [], [], []
    for start in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        chosen = model.decisions(model(to_input(torch.stack([x for x, _, _ in items]), device)))
        if chosen is None:
            raise ValueError(f"glyph_coverage: {type(model).__name__} has no policies (no focus regions)")
        for (_, _, index), selected, regions in zip(
            items, chosen["selected"].tolist(), chosen["regions"].cpu().numpy()
        ):
            record = dataset.records[index]
            numbers = dataset.frame_numbers(record)[0]
            boxes = annotations[record.path]["boxes"]
            for t, r in zip(selected, regions):
                box = boxes[numbers[t] - 1]
                sides.append(float(r[2:].mean()))
                shown.append(box is not None)
                if box is None:
                    inside.append(False)
                    continue
                x, y, w, h = np.float32(box) * zoom - shift
                inside.append(x >= r[0] and y >= r[1] and x + w <= r[0] + r[2] and y + h <= r[1] + r[3])
    return {
        "glyph_frames": 100 * float(np.mean(shown)),
        "glyph_in_patch": 100 * float(np.mean(inside)),
        "region_side": float(np.mean(sides)),
    }


def oracle_actions(boxes: torch.Tensor, patch_size: int, input_size: int) -> torch.Tensor:
    """Returns deformable actions (M, 4) of P x P regions centred on the glyph boxes (M, 4) [x, y, w, h] (pixels of
    the S-frame), moved inside the frame where the glyph is near its border."""
    p, s = float(patch_size), float(input_size)
    actions = torch.empty(boxes.shape[0], 4)
    actions[:, 2:] = float(scale_action(p, input_size))
    for dim, (pos, extent) in enumerate(((boxes[:, 1], boxes[:, 3]), (boxes[:, 0], boxes[:, 2]))):
        top = (pos + extent / 2 - p / 2).clamp(0, s - p)
        actions[:, dim] = top / (s - p)
    return actions


@torch.no_grad()
def oracle_accuracy(model: torch.nn.Module, videos: list[dict], batch: int = 16) -> dict:
    """Returns top-1 accuracies (%) of a TSM-preset Uni-AdaFocus on `videos` (frame_pretrain.load_frames: frames
    of the evaluation view, glyph boxes, window, label) when the focus network is given the oracle: K frames
    evenly spread over the glyph's on-screen window, each with a P x P patch centred on the glyph. Keys:
    'focus' (focus net alone, its averaged aux logits), 'fused' (glance final + focus final, as the model's
    prediction), 'glance' (glance net alone on T_g evenly spread frames); so a weak 'focus' says the focus net
    cannot read the pattern, a 'fused' near 'glance' says the fusion ignores the focus."""
    parts = model.pretrain_parts()
    if parts is None:
        raise ValueError(
            f"oracle_accuracy needs per-frame glance and focus nets ({type(model).__name__} declares none: "
            "pretrain_parts(); the tsm preset, as the demo, has them)"
        )
    cfg = model.cfg
    tg, k, s = parts.glance_frames, parts.focus_frames, cfg.input_size
    model.eval()
    hits = {"focus": [], "fused": [], "glance": []}
    for start in range(0, len(videos), batch):
        chunk = videos[start : start + batch]
        glance, focus, boxes = [], [], []
        for v in chunk:
            n = len(v["frames"])
            glance.append(v["frames"][sample_eval(n, tg) - 1])
            lo, hi = v["window"]
            t = lo + sample_eval(hi - lo, k) - 1
            focus.append(v["frames"][t])
            boxes.append(v["boxes"][t])
        g = normalize(torch.from_numpy(np.stack(glance)).movedim(-1, -3)).flatten(0, 1)
        f = normalize(torch.from_numpy(np.stack(focus)).movedim(-1, -3)).flatten(0, 1)
        actions = oracle_actions(torch.from_numpy(np.stack(boxes)).flatten(0, 1), cfg.patch_size, s)
        patches = deformable_patch_grid(f, actions, cfg.patch_size, s, cfg.patch_size, s)
        go = parts.glance(parts.glance_resize(g), tg)
        fo = parts.focus(patches, k)
        labels = torch.tensor([v["label"] for v in chunk])
        for key, logits in (
            ("focus", fo["reg"]),
            ("fused", go["final"] + fo["final"]),
            ("glance", go["reg"]),
        ):
            hits[key] += (logits.argmax(1) == labels).tolist()
    return {key: 100 * float(np.mean(value)) for key, value in hits.items()}
