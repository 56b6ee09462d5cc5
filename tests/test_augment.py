"""TAdaConv's training augmentations (ops/data/augment.py): the short-side-jitter and random-resized crop boxes,
RandAugment and random grayscale on whole clips, and their hook in the dataset."""

import math

import numpy as np
import pytest

from models import get_method
from models.core.registry import config_from_args
from ops.data.augment import (
    RAND_OPS_INCREASING,
    ClipAugment,
    jitter_crop_box,
    parse_randaugment,
    resized_crop_box,
)
from ops.data.transforms import Box
from ops.engine.loops import build_dataset
from ops.engine.setup import load_dataset_config
from ops.opts import parse_args


class Scripted:
    """A generator stand-in that returns scripted fractions: uniform(lo, hi) = lo + f * (hi - lo),
    integers(n) = int(f * n)."""

    def __init__(self, fractions):
        self.fractions = list(fractions)

    def uniform(self, lo=0.0, hi=1.0):
        return lo + self.fractions.pop(0) * (hi - lo)

    def integers(self, n):
        return int(self.fractions.pop(0) * n)


def test_jitter_box_is_tadaconvs_resize_then_crop_mapped_back():
    # KineticsResizedCrop on a 320x240 frame: short side int(224 + 0.5 * 116) = 282, long int(320/240 * 282) = 376;
    # x = int(0.25 * (376 - 224)) = 38, y = int(1.0 * (282 - 224)) = 58; back by 240/282: (32.3, 49.4, 190.6)
    assert jitter_crop_box(320, 240, 224, Scripted([0.5, 0.25, 1.0])) == Box(32, 49, 191, 191)
    # a portrait frame: the width is the short side, resized to 224 (the whole width), the height to
    # int(320/240 * 224) = 298; y = int(0.5 * 74) = 37; back by 320/298: (39.7, 240.5)
    assert jitter_crop_box(240, 320, 224, Scripted([0.0, 0.0, 0.5])) == Box(0, 40, 240, 241)
    rng = np.random.default_rng(0)
    for _ in range(200):  # every box lies in the frame and covers 224/340 .. 1 of the short side
        b = jitter_crop_box(340, 256, 224, rng)
        assert b.x >= 0 and b.y >= 0 and b.x + b.w <= 340 and b.y + b.h <= 256
        assert 256 * 224 / 340 - 1 <= b.w <= 256 and abs(b.w - b.h) <= 1


def test_random_resized_crop_box():
    # try 1: area 0.5 of 100x80, log-ratio midway (r = 1.0): w = h = round(sqrt(4000)) = 63; y = int(0.5 * 18)
    assert resized_crop_box(100, 80, Scripted([(0.5 - 0.08) / 0.92, 0.5, 0.5, 0.0])) == Box(0, 9, 63, 63)
    # nothing fits: the centre crop with the ratio clamped to 4/3 (a 1000x100 frame: 133 x 100)
    assert resized_crop_box(1000, 100, np.random.default_rng(0), scale=(1.5, 2.0)) == Box(433, 0, 133, 100)
    rng = np.random.default_rng(1)
    areas, ratios = [], []
    for _ in range(500):
        b = resized_crop_box(160, 120, rng)
        assert b.x >= 0 and b.y >= 0 and b.x + b.w <= 160 and b.y + b.h <= 120
        areas.append(b.w * b.h / (160 * 120))
        ratios.append(b.w / b.h)
    assert 0.07 < min(areas) and max(areas) <= 1.0 and np.mean(areas) == pytest.approx(0.5, abs=0.08)
    assert 0.7 < min(ratios) and max(ratios) < 1.4


def test_randaugment_spec_of_the_convnext_configs():
    spec = parse_randaugment("rand-m9-n4-mstd0.5-inc1")
    assert (spec.magnitude, spec.num_ops, spec.magnitude_std, spec.magnitude_max) == (9, 4, 0.5, 10)
    assert spec.ops == RAND_OPS_INCREASING and len(spec.ops) == 15
    assert "SolarizeIncreasing" in spec.ops and "Solarize" not in spec.ops
    assert parse_randaugment("rand-m7").ops[4] == "Posterize" and parse_randaugment("rand-m7").num_ops == 2
    with pytest.raises(ValueError, match="cannot read 'x3'"):
        parse_randaugment("rand-m9-x3")
    with pytest.raises(SystemExit):
        parse_args(["kinetics", "RGB", "--model", "tada", "--randaugment", "rand-q1", "--root_dataset", "x"])


def test_one_draw_per_clip_and_known_ops():
    g = np.random.default_rng(0)
    frame = g.integers(0, 256, (3, 24, 24), dtype=np.uint8)
    clip = np.stack([frame] * 4)
    aug = ClipAugment("rand-m9-n4-mstd0.5-inc1", 0.0)
    for seed in range(20):  # the same ops with the same arguments on every frame of the clip
        out = aug(clip.copy(), np.random.default_rng(seed))
        assert all(np.array_equal(out[0], out[t]) for t in range(4))
    rng = np.random.default_rng(3)
    ops, grey = aug.draw(rng)
    assert not grey and all(name in RAND_OPS_INCREASING for name, _ in ops)
    applied = [len(aug.draw(np.random.default_rng(s))[0]) for s in range(400)]
    assert np.mean(applied) == pytest.approx(4 * 0.5, abs=0.15)  # each of the 4 ops with probability 0.5
    # Invert is 255 - x; SolarizeIncreasing at m = 9 inverts every value >= 256 - int(0.9 * 256) = 26
    inv = ClipAugment(None, 0.0)
    inv.draw = lambda rng: ([("Invert", None)], False)
    np.testing.assert_array_equal(inv(clip.copy(), g)[0], 255 - frame)
    sol = ClipAugment(None, 0.0)
    sol.draw = lambda rng: ([("SolarizeIncreasing", 256 - int(0.9 * 256))], False)
    np.testing.assert_array_equal(sol(clip.copy(), g)[0], np.where(frame >= 26, 255 - frame, frame))


def test_grayscale_is_the_601_luma_in_every_channel():
    clip = np.zeros((2, 3, 2, 2), dtype=np.uint8)
    clip[:, 0] = 255  # pure red: 0.299 * 255 = 76.2
    clip[:, 1, 0, 0] = 100  # + 0.587 * 100 at one pixel: 134.9
    out = ClipAugment(None, 1.0)(clip.copy(), np.random.default_rng(0))
    assert out[:, :, 0, 0].tolist() == [[135] * 3] * 2 and out[:, :, 1, 1].tolist() == [[76] * 3] * 2
    greys = [ClipAugment(None, 0.2).draw(np.random.default_rng(s))[1] for s in range(1000)]
    assert np.mean(greys) == pytest.approx(0.2, abs=0.04)


def test_convnext_recipe_augments_training_clips_after_crop_and_flip(data_root):
    args = parse_args(
        ["synthetic", "RGB", "--model", "tada", "--arch", "tadaconvnextv2_t", "--root_dataset", data_root]
    )
    cfg = config_from_args(args, num_classes=3)
    model_cls = get_method("tada").model_cls
    spec = model_cls.input_spec(cfg)
    assert spec.train_crop == "rrc" and (args.randaugment, args.grayscale) == ("rand-m9-n4-mstd0.5-inc1", 0.2)
    config = load_dataset_config(args)
    layout = model_cls.input_layout(cfg)
    ds = build_dataset(args, config, "train", layout, spec=spec)
    assert ds.augment.fill == (115, 115, 115)  # round(255 * 0.45), as TAdaConv's img_mean
    plain = build_dataset(args, config, "train", layout, spec=spec)
    plain.augment = None
    ds.seed(4)
    plain.seed(4)
    frames = ds[2][0].numpy()
    expected = plain[2][0].numpy().copy()
    ds.augment(expected, plain.rng())  # the augmentation draws after the sampler, the crop and the flip
    np.testing.assert_array_equal(frames, expected)
    val = build_dataset(args, config, "val", layout, spec=spec)

    def refuse(frames, rng):
        raise AssertionError("evaluation items must not be augmented")

    val.augment = refuse
    assert val[0][0].shape == (16, 3, 224, 224)
    assert math.isclose(args.lr, 5e-4 * 16 / 512)
