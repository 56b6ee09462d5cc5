"""Backbone pretraining for the demo: glyph-centred patch actions, the class-map loss, and that only the
backbones (and the spatial aux head) change while the policies stay untouched."""

import math

import numpy as np
import pytest
import torch

from models import ModelConfig, build_model
from models.adafocus_v2 import V2Config
from models.core.patches import deformable_theta, region_range
from ops.data.synthetic import ensure_synthetic
from ops.demo.frame_pretrain import _clips, class_map_loss, glyph_actions, load_frames, pretrain_backbones


def test_glyph_actions_hold_the_box_inside_the_frame():
    s, p = 128, 64
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(500, 2, generator=gen) * (s - 20)
    boxes = torch.cat([xy, torch.full((500, 2), 20.0)], 1)  # [x, y, w, h]
    theta = deformable_theta(glyph_actions(boxes, s, p, gen), p, s, p, s)
    side_w, side_h = theta[:, 0, 0] * s, theta[:, 1, 1] * s
    left = (theta[:, 0, 2] + 1) * s / 2 - side_w / 2
    top = (theta[:, 1, 2] + 1) * s / 2 - side_h / 2
    lo, _ = region_range(s)
    eps = 1e-3
    assert bool(((side_w >= lo - eps) & (side_w <= p + eps)).all())  # never shrunk below 1:1
    assert bool((left >= -eps).all() and (left + side_w <= s + eps).all())  # inside the frame
    assert bool((left <= boxes[:, 0] + eps).all() and (left + side_w >= boxes[:, 0] + 20 - eps).all())
    assert bool((top <= boxes[:, 1] + eps).all() and (top + side_h >= boxes[:, 1] + 20 - eps).all())
    assert float(left.std()) > 5  # positions vary: the glyph is not always at the patch centre


def test_class_map_loss_value():
    c = 4
    head = torch.nn.Linear(c, c, bias=False)
    torch.nn.init.eye_(head.weight)
    fm = torch.zeros(2, c, 2, 2)  # M = 2 frames (one video), 2x2 map, features = logits
    fm[0, 1, 0, 1] = 5.0  # frame 0: class 1 evidence in cell (row 0, col 1)
    fm[1, 1, 1, 0] = 5.0  # frame 1: in cell (row 1, col 0)
    boxes = np.float32([[[70, 10, 20, 20], [10, 70, 20, 20]]])  # centres (80, 20) and (20, 80) in a 128 frame
    loss = class_map_loss(fm, head, boxes, torch.tensor([1]), 128).detach()
    on = -torch.log_softmax(torch.tensor([0.0, 5.0, 0.0, 0.0]), 0)[1]
    assert float(loss) == pytest.approx(float(on) + math.log(c), abs=1e-5)  # other cells uniform: log C
    wrong = class_map_loss(fm, head, boxes[:, ::-1].copy(), torch.tensor([1]), 128).detach()  # other cells
    assert float(wrong) > float(loss) + 1
    # a frame without the glyph (NaN box): all its cells must be uniform, its class evidence now counts against
    off_screen = boxes.copy()
    off_screen[0, 1] = np.nan
    half = class_map_loss(fm, head, off_screen, torch.tensor([1]), 128).detach()
    logp = torch.log_softmax(fm.flatten(2).transpose(1, 2), -1)  # identity head
    expected = -logp[1, 2, 1] - torch.cat([logp[0].flatten(), logp[1, [0, 1, 3]].flatten()]).mean()
    assert float(half) == pytest.approx(float(expected), abs=1e-5)


def test_pretraining_moves_backbones_only(tmp_path):
    root = str(tmp_path)
    folder = ensure_synthetic(
        root,
        num_classes=2,
        videos_per_class_train=2,
        videos_per_class_val=1,
        min_frames=10,
        max_frames=12,
        height=64,
        width=80,
        num_clutter=3,
        num_distractors=1,
    )
    videos = load_frames(folder, "train", 64)
    assert len(videos) == 4 and videos[0]["frames"].shape[1:] == (64, 64, 3)
    for v in videos:  # boxes exactly inside the visible window
        start, end = v["window"]
        shown = ~np.isnan(v["boxes"]).any(1)
        assert shown.tolist() == [start <= t < end for t in range(len(v["frames"]))]
    rng = np.random.default_rng(0)
    frames, boxes, labels = _clips(videos, 8, 3, rng, visible=True)
    assert frames.shape == (8, 3, 64, 64, 3) and not np.isnan(boxes).any()
    frames, boxes, labels = _clips(videos, 8, 3, rng, visible=False)  # one frame per segment, glyph or not
    assert frames.shape == (8, 3, 64, 64, 3) and np.isnan(boxes).any()
    model = tiny_tsm_model(glance_size=64, patch_size=32)
    assert _moved(model, folder, 2, 2) == ({"glance", "focus"}, {"global_CNN", "local_CNN", "aux_fc"})
    # a network given 0 steps is left alone (no forward pass: its BatchNorm statistics stay too)
    assert _moved(model, folder, 0, 1) == ({"focus"}, {"local_CNN"})
    # AdaFocus V2 (TSN glance and focus, no feature-crop aux head): the two backbones and nothing else
    torch.manual_seed(0)
    v2 = build_model(
        V2Config(
            **TINY_TSM,
            model="adafocus_v2",
            glance_size=64,
            patch_size=32,
            num_input_focus_segments=2,
            pretrain="none",
        )
    )
    assert _moved(v2, folder, 2, 2) == ({"glance", "focus"}, {"global_CNN", "local_CNN"})


def _moved(model, folder: str, glance_steps: int, focus_steps: int) -> tuple[set, set]:
    """Pretrains `model` for the given steps; returns (the networks reported, the top-level modules that changed)."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = pretrain_backbones(
        model, folder, glance_steps=glance_steps, focus_steps=focus_steps, frames_per_step=4, progress=False
    )
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    return set(report), changed


TINY_TSM = dict(  # ResNet-18 width 8, 2 classes, 64 px frames, 2 glance and 2 focus frames
    preset="tsm",
    num_classes=2,
    input_size=64,
    num_glance_segments=2,
    num_focus_segments=2,
    glance_arch="resnet18",
    focus_arch="resnet18",
    glance_base_width=8,
    focus_base_width=8,
    stn_hidden_dim=8,
)


def tiny_tsm_model(glance_size: int, patch_size: int):
    """A seeded tiny Uni-AdaFocus-TSM (TINY_TSM, 4 candidate frames)."""
    cfg = ModelConfig(
        **TINY_TSM,
        glance_size=glance_size,
        patch_size=patch_size,
        num_input_focus_segments=4,
        temporal_hidden_dim=8,
    )
    torch.manual_seed(0)
    return build_model(cfg)
