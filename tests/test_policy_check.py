"""The demo's direct evidence: focus regions in pixels, and the glyph-coverage count on synthetic videos."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from models import ModelConfig
from models.core.patches import deformable_regions, random_actions, region_range
from ops.data.dataset import VideoDataset
from ops.data.dataset_config import get_dataset_config
from ops.data.synthetic import ensure_synthetic
from ops.demo.frame_pretrain import glyph_actions
from ops.demo.policy_check import glyph_coverage, view_transform


def test_deformable_regions_in_pixels():
    s, p = 128, 64
    lo, _ = region_range(s)
    actions = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.25, 0.5, 0.0, 1.0]])
    boxes = deformable_regions(actions, p, s)
    assert boxes[0].tolist() == pytest.approx([0, 0, lo, lo], abs=1e-4)
    assert boxes[1].tolist() == pytest.approx([0, 0, s, s], abs=1e-4)
    # [y, x, scale_h, scale_w]: height lo at top 0.25 * (S - lo), width S at left 0
    assert boxes[2].tolist() == pytest.approx([0, 0.25 * (s - lo), s, lo], abs=1e-4)
    # random patches are exactly P x P
    rand = deformable_regions(
        random_actions(50, p, generator=torch.Generator().manual_seed(0), frame_size=s), p, s
    )
    assert torch.allclose(rand[:, 2:], torch.full((50, 2), float(p)), atol=1e-4)


class _Looker(torch.nn.Module):
    """Test double for the model: returns the frame choice and focus actions it is given."""

    def __init__(self, cfg: ModelConfig, indices: torch.Tensor, actions: torch.Tensor) -> None:
        super().__init__()
        self.cfg, self.indices, self.actions = cfg, indices, actions
        self.weight = torch.nn.Parameter(
            torch.zeros(())
        )  # tells glyph_coverage the device, as a model's would

    def forward(self, x: torch.Tensor) -> dict:
        assert x.dtype == torch.float32 and x.shape[0] == len(self.indices)
        return {"focus_indices": self.indices, "actions": self.actions}

    def decisions(self, out: dict) -> dict:  # as UniAdaFocus.decisions: positions after the 2 glance frames
        regions = deformable_regions(out["actions"], self.cfg.patch_size, self.cfg.input_size)
        return {"selected": out["focus_indices"] + 2, "regions": regions[:, None]}


def test_glyph_coverage_maps_regions_onto_the_annotated_boxes(tmp_path):
    s, p, n = 64, 32, 6
    root = str(tmp_path)
    folder = ensure_synthetic(  # 96-px frames: the 28-px framed glyph is 21 px in the 64-px view, below the
        root,  # smallest region (27.4 px), so a covering region is never exactly the glyph's size
        num_classes=2,
        videos_per_class_train=1,
        videos_per_class_val=3,
        min_frames=12,
        max_frames=14,
        height=96,
        width=120,
        num_clutter=3,
        num_distractors=1,
    )
    dataset = VideoDataset(
        get_dataset_config("synthetic", root), "val", num_glance=2, num_candidates=n, input_size=s
    )
    with open(os.path.join(folder, "annotations.json")) as f:
        annotations = json.load(f)
    zoom, shift = view_transform(folder, dataset)
    cfg = ModelConfig(preset="tsm", num_classes=2, input_size=s, patch_size=p, glance_size=s)
    shown, hidden, covering, far = [], [], [], []
    gen = torch.Generator().manual_seed(0)
    lo, _ = region_range(s)
    for record in dataset.records:
        numbers = dataset.frame_numbers(record)[0, 2:]
        boxes = [annotations[record.path]["boxes"][k - 1] for k in numbers]
        with_glyph = [j for j, b in enumerate(boxes) if b is not None]
        shown.append(with_glyph[0])
        hidden.append(next(j for j, b in enumerate(boxes) if b is None))
        box = torch.from_numpy(np.float32(boxes[with_glyph[0]]) * zoom - shift)
        covering.append(glyph_actions(box[None], s, p, gen)[0])
        # the smallest region (side lo < S / 2) in the frame half away from the glyph's centre cannot hold it
        cx, cy = (box[:2] + box[2:] / 2).tolist()
        far.append(torch.tensor([float(cy <= s / 2), float(cx <= s / 2), 0.0, 0.0]))
    shown, hidden = torch.tensor(shown)[:, None], torch.tensor(hidden)[:, None]
    covering, far = torch.stack(covering), torch.stack(far)

    hit = glyph_coverage(_Looker(cfg, shown, covering), dataset, folder)
    assert hit["glyph_frames"] == 100 and hit["glyph_in_patch"] == 100
    assert lo - 1e-3 <= hit["region_side"] <= p + 1e-3
    miss = glyph_coverage(_Looker(cfg, shown, far), dataset, folder)
    assert miss["glyph_frames"] == 100 and miss["glyph_in_patch"] == 0
    assert miss["region_side"] == pytest.approx(lo, abs=1e-3)
    none = glyph_coverage(_Looker(cfg, hidden, covering), dataset, folder)
    assert none["glyph_frames"] == 0 and none["glyph_in_patch"] == 0
    with pytest.raises(ValueError, match="one view"):
        glyph_coverage(
            _Looker(cfg, shown, covering),
            VideoDataset(
                get_dataset_config("synthetic", root),
                "val",
                num_glance=2,
                num_candidates=n,
                input_size=s,
                test_crops=3,
            ),
            folder,
        )


def test_demo_refuses_a_method_without_learned_policies(tmp_path):
    """(b) evaluates the model with --policy random: a method without that control stops before any work."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [sys.executable, "scripts/demo.py", "--method", "tsm"]
    argv += ["--root_dataset", str(tmp_path / "data"), "--root_log", str(tmp_path / "runs")]
    env = dict(os.environ, PYTHONPATH=root)  # scripts import the project's packages (or `pip install -e .`)
    result = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--method tsm: the demo compares learned policies with random ones" in result.stderr
    assert "learned policies: uniadafocus, adafocus_v1, adafocus_v2" in result.stderr
    assert not os.listdir(tmp_path)
