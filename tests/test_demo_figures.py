"""The demo's diagnosis and figures: oracle patches centred on the glyph, the accuracy the model reaches on them,
the picture of where the policies look and the accuracy-vs-GFLOPs plot."""

import pytest
import torch

from models.core.heads import TSN
from models.core.patches import deformable_regions
from ops.data.dataset import VideoDataset
from ops.data.dataset_config import get_dataset_config
from ops.data.lists import sample_eval
from ops.data.synthetic import BORDER, GLYPH, ensure_synthetic
from ops.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ops.demo.demo_figures import accuracy_gflops_plot, policy_picture
from ops.demo.frame_pretrain import load_frames
from ops.demo.policy_check import oracle_accuracy, oracle_actions
from tests.test_frame_pretrain import tiny_tsm_model


def test_oracle_actions_centre_the_glyph_inside_the_frame():
    s, p = 128, 64
    boxes = torch.tensor([[50.0, 40.0, 20.0, 20.0], [2.0, 100.0, 20.0, 20.0], [108.0, 0.0, 20.0, 20.0]])
    regions = deformable_regions(oracle_actions(boxes, p, s), p, s)
    expected = torch.tensor([[28.0, 18.0, 64, 64], [0.0, 64.0, 64, 64], [64.0, 0.0, 64, 64]])
    assert torch.allclose(regions, expected, atol=1e-3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("oracle"))
    folder = ensure_synthetic(
        root,
        num_classes=2,
        videos_per_class_train=1,
        videos_per_class_val=3,
        min_frames=10,
        max_frames=12,
        height=64,
        width=80,
        num_clutter=3,
        num_distractors=1,
    )
    return root, folder, tiny_tsm_model(glance_size=32, patch_size=40)


class _Reader(TSN):
    """Test double for a focus/glance net: records its input and answers `answer(x)` as every logit."""

    def __init__(self, net: TSN, answer) -> None:
        torch.nn.Module.__init__(self)
        self.net, self.answer, self.seen = net, answer, []

    def forward(self, x: torch.Tensor, num_segments: int) -> dict:
        self.seen.append(x)
        logits = self.answer(x).view(-1, num_segments, 2).mean(1)
        return {"reg": logits, "final": logits}


def test_oracle_accuracy_feeds_glyph_centred_patches(tiny):
    _, folder, model = tiny
    k, p, s = 2, 40, 64
    videos = load_frames(folder, "val", s)
    labels = torch.tensor([v["label"] for v in videos])
    glance, focus = model.global_CNN, model.local_CNN
    try:  # the glance always answers class 0, the focus class 1
        model.global_CNN = _Reader(glance, lambda x: torch.tensor([[1.0, 0.0]]).expand(len(x), 2))
        model.local_CNN = _Reader(focus, lambda x: torch.tensor([[0.0, 1.0]]).expand(len(x), 2))
        result = oracle_accuracy(model, videos, batch=4)
        patches = torch.cat(model.local_CNN.seen)
    finally:
        model.global_CNN, model.local_CNN = glance, focus
    assert patches.shape == (len(videos) * k, 3, p, p)
    assert result["focus"] == pytest.approx(100 * float((labels == 1).float().mean()))
    assert result["glance"] == pytest.approx(100 * float((labels == 0).float().mean()))
    # fused = glance final + focus final = [1, 1]: a tie, argmax takes class 0
    assert result["fused"] == pytest.approx(result["glance"])
    # each patch holds the glyph's white frame where its annotated box lies (K frames spread over the window)
    boxes = []
    for v in videos:
        lo, hi = v["window"]
        boxes.append(torch.from_numpy(v["boxes"][lo + sample_eval(hi - lo, k) - 1]))
    boxes = torch.cat(boxes)
    inside = (
        boxes[:, :2] - deformable_regions(oracle_actions(boxes, p, s), p, s)[:, :2]
    )  # glyph top-left (x, y)
    zoom = 73 / 64  # the evaluation view scales the 64-px short side to 64 * 256 // 224 = 73 px
    side = (GLYPH + 2 * BORDER) * zoom
    pixels = (
        patches * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    ) * 255
    for patch, (x, y) in zip(pixels, inside.tolist()):
        assert -1e-3 <= x and x + side <= p + 1e-3 and -1e-3 <= y and y + side <= p + 1e-3  # wholly inside
        cols = slice(int(x + 1), int(x + side - 1))
        for row in (int(y + zoom), int(y + side - zoom)):  # inside the 2-px white frame's top and bottom
            assert float(patch[:, row, cols].min(0).values.mean()) > 200


def test_policy_picture_and_plot(tiny, tmp_path):
    root, folder, model = tiny
    dataset = VideoDataset(
        get_dataset_config("synthetic", root), "val", num_glance=2, num_candidates=4, input_size=64
    )
    path = policy_picture(model, dataset, folder, str(tmp_path / "policies.png"), videos=2)
    import cv2

    image = cv2.imread(path)[..., ::-1]  # RGB
    assert image.shape[0] > 2 * 2 * 128 and image.shape[1] >= 2 * 128  # 2 videos x (glance + selected rows)
    colours = {tuple(c) for c in image.reshape(-1, 3).tolist()}
    assert (0, 255, 0) in colours  # focus regions
    assert (255, 64, 64) in colours  # the glyph box, on a selected frame that shows it
    curve = [{"gflops": 0.1, "metric": 50.0}, {"gflops": 0.2, "metric": 60.0}]
    plot = accuracy_gflops_plot({"a": (0.2, 61.0), "b": (0.1, 50.0)}, curve, str(tmp_path / "acc.png"))
    assert cv2.imread(plot).shape == (504, 720, 3)
