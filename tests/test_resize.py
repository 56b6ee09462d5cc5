"""The loader's resizing (ops/data/resize.py) against Pillow, the originals' resize, on natural-looking frames at
every size the presets use, enlarging and shrinking; the batched write into the output slots."""

import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ops.data import dataset as dataset_mod
from ops.data import resize as resize_mod
from ops.data.dataset import VideoDataset
from ops.data.dataset_config import DatasetConfig
from ops.data.lists import sample_train
from ops.data.resize import (
    RESIZE_CHUNK,
    Scratch,
    is_planar,
    planar,
    planes_resize_is_fast,
    resize_frames,
    resize_pillow,
    resize_planes,
    resize_to_slots,
    resize_torch,
    to_planes,
)
from ops.data.transforms import e3d_crop_box, multiscale_crop_box, scaled_size
from ops.data.video_plan import store_rgb

# X3D-L 312, TSM / AN / X3D-S 224, X3D glance 160, p128 and synthetic input 128, Efficient-3DCNNs 112, p96 96,
# synthetic glance 64 (models/presets.py)
PRESET_SIZES = (312, 224, 160, 128, 112, 96, 64)


def natural_frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """(n, h, w, 3) uint8: smooth colour gradients, flat shapes with hard and antialiased edges, a blurred texture
    and pixel noise (not flat colours: every rounding of the resize shows)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        phase = rng.uniform(0, 6, (3, 3))
        img = np.stack([127 + 100 * np.sin(xx / w * a + yy / h * b + c) for a, b, c in phase], -1)
        for _ in range(10):
            colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
            x0, y0 = int(rng.integers(w)), int(rng.integers(h))
            if rng.random() < 0.5:
                x1, y1 = x0 + int(rng.integers(1, w // 2 + 2)), y0 + int(rng.integers(1, h // 2 + 2))
                cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
            else:
                cv2.circle(img, (x0, y0), int(rng.integers(1, h // 4 + 2)), colour, -1, lineType=cv2.LINE_AA)
        img += cv2.GaussianBlur(rng.normal(0, 40, (h, w, 3)).astype(np.float32), (0, 0), 1.5)
        img += rng.normal(0, 4, (h, w, 3)).astype(np.float32)
        out[i] = np.clip(np.rint(img), 0, 255)
    return out


def pillow_reference(src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow BILINEAR as the originals ran it: the width pass, then the height pass (each rounded to 8 bits)."""
    out = []
    for frame in src:
        img = Image.fromarray(np.ascontiguousarray(frame))
        img = img.resize((size[0], img.height), Image.BILINEAR) if img.width != size[0] else img
        out.append(np.asarray(img.resize(size, Image.BILINEAR) if img.height != size[1] else img))
    return np.stack(out)


# frame sizes: a large video (455x341), the list files' usual 340x256, the synthetic dataset's 160x128
SOURCES = ((455, 341), (340, 256), (160, 128))


def _transform_resizes(w: int, h: int, size: int, rng: np.random.Generator) -> list[tuple[tuple, tuple]]:
    """The resizes the transforms make for input `size` from w x h frames: TSM multi-scale crops, the
    Efficient-3DCNNs crops, and the evaluation GroupScale of the whole frame (short side size * 256 // 224)."""
    boxes = {multiscale_crop_box(w, h, size, rng) for _ in range(20)}
    boxes |= {e3d_crop_box(w, h, rng, mode) for mode in ("random", "corner") for _ in range(2)}
    resizes = [((b.x, b.y, b.w, b.h), (size, size)) for b in sorted(boxes) if (b.w, b.h) != (size, size)]
    return resizes + [((0, 0, w, h), scaled_size(w, h, size * 256 // 224))]


@pytest.mark.parametrize("size", PRESET_SIZES)
def test_torch_kernel_gives_pillows_pixels_at_every_preset_size(size):
    rng = np.random.default_rng(size)
    enlarged = shrunk = differing = total = 0
    for w, h in SOURCES:
        frames = natural_frames(2, h, w, seed=size + w)
        for (x, y, cw, ch), out_size in _transform_resizes(w, h, size, rng):
            crop = frames[:, y : y + ch, x : x + cw]
            got = resize_torch(crop, out_size)
            ref = pillow_reference(crop, out_size)
            assert got.shape == ref.shape and got.flags.c_contiguous
            d = np.abs(got.astype(np.int16) - ref)
            # 14-15-bit weights instead of 22: a grey level on a few % of the values, two on a few per million
            assert d.max() <= 2 and (d == 2).mean() < 1e-4 and (d > 0).mean() < 0.08, ((cw, ch), out_size)
            differing, total = differing + int((d > 0).sum()), total + d.size
            enlarged += out_size[0] > cw
            shrunk += out_size[0] < cw
    assert shrunk > 0 and (enlarged > 0 or size == 64)  # 64 only shrinks these frames
    assert differing / total < 0.03


def test_torch_kernel_equals_pillow_where_the_weights_are_dyadic():
    frames = natural_frames(2, 256, 340, seed=1)
    for (w, h), size in (((168, 168), (224, 224)), ((112, 96), (224, 128)), ((256, 256), (64, 64))):
        crop = frames[:, :h, 20 : 20 + w]  # scales 3/4, 1/2 and 4: no weight is rounded
        np.testing.assert_array_equal(resize_torch(crop, size), pillow_reference(crop, size))


def test_pil_backend_picks_the_vectorised_kernel_or_pillow(monkeypatch):
    frames = natural_frames(2, 64, 80, seed=2)[:, 3:50, 5:66]  # a strided crop, shrunk to 40x32
    for fast, expect in ((True, resize_torch(frames, (40, 32))), (False, pillow_reference(frames, (40, 32)))):
        monkeypatch.setattr(resize_mod, "torch_kernel_is_fast", lambda fast=fast: fast)
        np.testing.assert_array_equal(resize_frames(frames, (40, 32), "pil"), expect)
    assert not np.array_equal(resize_torch(frames, (40, 32)), pillow_reference(frames, (40, 32)))
    np.testing.assert_array_equal(
        resize_pillow(frames, (40, 32), np.empty((2, 32, 40, 3), np.uint8)),
        pillow_reference(frames, (40, 32)),
    )
    assert resize_frames(frames, (61, 47), "pil") is frames  # already that size: no copy
    with pytest.raises(ValueError, match="backend"):
        resize_frames(frames, (40, 32), "lanczos")


def test_pillow_path_keeps_the_originals_pass_order():
    # Pillow >= 13 runs the height pass first when the height shrinks much more than the width; the originals
    # ran the width pass first. 168x192 -> 160x160 is such a case: the two orders differ on many values.
    frame = natural_frames(1, 192, 168, seed=3)
    ref = pillow_reference(frame, (160, 160))
    np.testing.assert_array_equal(resize_pillow(frame, (160, 160), np.empty_like(ref)), ref)
    height_first = np.asarray(Image.fromarray(frame[0]).resize((168, 160), Image.BILINEAR).resize((160, 160)))
    assert (height_first != ref[0]).mean() > 0.05


@pytest.mark.parametrize("backend", ["pil", "cv2"])
def test_resize_to_slots_writes_each_distinct_frame_once_channels_first(backend):
    frames = natural_frames(4, 40, 50, seed=4)[:, 2:34, 3:43]  # 40x32 crops
    scratch = (Scratch(), Scratch())  # reused across calls: the results must not depend on what was there
    for slots in (
        np.array([3, 0, 2]),
        np.array([1, 3, 1, 1, 0]),
        np.array([0, 1, 2, 3]),
    ):  # unsorted; repeats
        ref = resize_frames(np.ascontiguousarray(frames), (24, 24), backend)[slots].transpose(0, 3, 1, 2)
        for buffers in (None, scratch):
            out = np.zeros((len(slots), 3, 24, 24), np.uint8)
            assert resize_to_slots(frames, slots, out, backend, buffers) is out
            np.testing.assert_array_equal(out, ref)
    out = np.zeros((4, 3, 32, 40), np.uint8)  # the frames' own size: no resize, only the channels-first write
    resize_to_slots(frames, np.arange(4), out, backend)
    np.testing.assert_array_equal(out, frames.transpose(0, 3, 1, 2))


def test_resize_to_slots_cuts_runs_of_consecutive_frames_into_chunks():
    frames = natural_frames(20, 30, 36, seed=6)[:, 1:29, 2:30]  # 28x28 crops
    slots = np.array(
        [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 19, 4]
    )  # runs of 4, 12, 1, 1
    ref = resize_frames(np.ascontiguousarray(frames), (20, 20), "pil")[slots].transpose(0, 3, 1, 2)
    out = np.zeros((len(slots), 3, 20, 20), np.uint8)
    np.testing.assert_array_equal(resize_to_slots(frames, slots, out, "pil", (Scratch(), Scratch())), ref)
    assert RESIZE_CHUNK < 12


def test_to_planes_checks_its_layouts():
    pixels = natural_frames(2, 6, 5, seed=5)
    out = np.zeros((2, 3, 6, 5), np.uint8)
    np.testing.assert_array_equal(to_planes(pixels, out), pixels.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="planar"):
        to_planes(pixels[:, :, ::-1], out)  # pixels not C-contiguous
    with pytest.raises(ValueError, match="planar"):
        to_planes(pixels.transpose(0, 2, 1, 3).copy(), np.zeros((2, 3, 5, 6), np.uint8)[:, :, :, :5])


def png_dataset(root, frames: np.ndarray, flip: bool) -> DatasetConfig:
    """A one-video frame-folder dataset under `root` holding `frames` losslessly (PNG content under the .jpg
    template's names)."""
    os.makedirs(root / "frames" / "v0")
    for t, rgb in enumerate(frames, 1):
        cv2.imwrite(str(root / "x.png"), rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
        os.replace(root / "x.png", root / "frames" / "v0" / f"img_{t:05d}.jpg")
    (root / "list.txt").write_text(f"v0 {len(frames)} 0\n")
    return DatasetConfig(
        name="t", num_classes=2, categories=["a", "b"], frames_root=str(root / "frames"),
        train_list=str(root / "list.txt"), val_list=str(root / "list.txt"), image_tmpl="img_{:05d}.jpg",
        separator=" ", multi_label=False, flip=flip,
    )  # fmt: skip


def test_dataset_default_resize_is_pillows_within_a_grey_level(tmp_path):
    frames = natural_frames(12, 256, 320, seed=6)
    cfg = png_dataset(tmp_path, frames, flip=False)
    ds = VideoDataset(cfg, "train", num_glance=4, num_candidates=8)  # resize_backend 'pil' by default
    for seed in range(4):
        rng = np.random.default_rng(seed)  # the dataset's draws: glance, candidates, then one box per set
        numbers = (sample_train(12, 4, rng), sample_train(12, 8, rng))
        ds.seed(seed)
        x = ds[0][0].numpy().transpose(0, 2, 3, 1)
        for part, n in ((x[:4], numbers[0]), (x[4:], numbers[1])):
            b = multiscale_crop_box(320, 256, 224, rng)
            ref = pillow_reference(frames[n - 1, b.y : b.y + b.h, b.x : b.x + b.w], (224, 224))
            d = np.abs(part.astype(np.int16) - ref)
            assert d.max() <= 2 and (d > 0).mean() < 0.08


def test_dataset_eval_scale_and_reused_buffers(tmp_path):
    frames = natural_frames(6, 256, 320, seed=7)
    cfg = png_dataset(tmp_path, frames, flip=True)
    # evaluation at 112: GroupScale(128) halves the 320x256 frames (dyadic: Pillow's pixels exactly), then the
    # 3 views of 112 at x = 0, 48, 24 (y = 8)
    ds = VideoDataset(cfg, "val", num_glance=2, num_candidates=3, input_size=112, test_crops=3)
    x = ds[0][0].numpy().transpose(0, 1, 3, 4, 2)
    scaled = pillow_reference(frames, (160, 128))
    numbers = np.array([2, 5, 2, 4, 6]) - 1  # sample_eval(6, 2), sample_eval(6, 3)
    for view, x0 in zip(x, (0, 48, 24)):
        np.testing.assert_array_equal(view, scaled[numbers, 8:120, x0 : x0 + 112])
    # training items drawn with reused buffers equal those of a fresh dataset
    train = VideoDataset(cfg, "train", num_glance=2, num_candidates=3, input_size=96)
    items = []
    for seed in (0, 1, 0):
        train.seed(seed)
        items.append(train[0][0].clone())
    fresh = VideoDataset(cfg, "train", num_glance=2, num_candidates=3, input_size=96)
    fresh.seed(1)
    assert torch.equal(items[0], items[2]) and torch.equal(items[1], fresh[0][0])
    assert not torch.equal(items[0], items[1])


def as_planes(frames: np.ndarray) -> np.ndarray:
    """The frames stored as planes, seen as frames (N, H, W, 3): the loader's decode layout."""
    return planar(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


# (crop w, h) -> (out W, H): both passes shrinking / enlarging, one pass only, none, sizes not multiples of 4
PLANAR_CASES = (
    ((256, 256), (224, 224)),
    ((168, 192), (224, 224)),
    ((224, 256), (224, 224)),
    ((256, 224), (224, 224)),
    ((224, 224), (224, 224)),
    ((301, 255), (113, 97)),
    ((37, 29), (23, 41)),
    ((50, 61), (50, 30)),
    ((63, 40), (30, 40)),
)


def test_planar_resize_gives_the_interleaved_kernels_pixels_bit_for_bit():
    frames = natural_frames(3, 256, 340, seed=8)
    planes = as_planes(frames)
    assert is_planar(planes) and not is_planar(frames)
    scratch = (Scratch(), Scratch())
    for (w, h), (W, H) in PLANAR_CASES:
        crop, planar_crop = frames[:, 5 : 5 + h, 11 : 11 + w], planes[:, 5 : 5 + h, 11 : 11 + w]
        ref = resize_torch(crop, (W, H)).transpose(0, 3, 1, 2)
        for buffers in (None, scratch):  # reused buffers hold the previous case's values
            out = np.full((3, 3, H, W), 7, np.uint8)
            resize_planes(planar_crop, out, buffers)
            np.testing.assert_array_equal(out, ref, err_msg=f"{(w, h)} -> {(W, H)}")
    resized = resize_frames(planes[:, :61, :50], (30, 50), "pil")
    assert is_planar(resized) == planes_resize_is_fast("pil")
    np.testing.assert_array_equal(resized, resize_torch(frames[:, :61, :50], (30, 50)))


@pytest.mark.parametrize("backend", ["pil", "cv2"])
def test_resize_to_slots_takes_planar_frames(backend):
    frames = natural_frames(20, 40, 50, seed=9)
    planes = as_planes(frames)
    slots = np.array([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 19, 4, 2])
    for (x, y, w, h), size in (((3, 2, 40, 32), 24), ((3, 2, 36, 36), 36), ((1, 1, 30, 36), 36)):
        ref = np.zeros((len(slots), 3, size, size), np.uint8)
        resize_to_slots(frames[:, y : y + h, x : x + w], slots, ref, backend)
        for buffers in (None, (Scratch(), Scratch())):
            out = np.zeros_like(ref)
            resize_to_slots(planes[:, y : y + h, x : x + w], slots, out, backend, buffers)
            np.testing.assert_array_equal(out, ref)


def test_store_rgb_writes_either_layout():
    rgb = natural_frames(1, 6, 5, seed=10)[0]
    for dst in (np.zeros((6, 5, 3), np.uint8), planar(np.zeros((1, 3, 6, 5), np.uint8))[0]):
        store_rgb(dst, rgb)
        np.testing.assert_array_equal(dst, rgb)


def test_dataset_decodes_into_planes_with_the_same_items(tmp_path, monkeypatch):
    cfg = png_dataset(tmp_path, natural_frames(12, 300, 400, seed=11), flip=True)
    kinds = (
        ("train", dict(num_glance=4, num_candidates=8, input_size=224)),
        ("val", dict(num_glance=4, num_candidates=8, input_size=160, test_crops=3, num_clips=2)),
    )
    items = {}
    for planes in (True, False):
        monkeypatch.setattr(dataset_mod, "planes_resize_is_fast", lambda backend, planes=planes: planes)
        for split, kw in kinds:
            ds = VideoDataset(cfg, split, **kw)
            assert is_planar(ds._alloc((2, 8, 8, 3))) == planes
            for seed in range(3):
                ds.seed(seed)
                items[planes, split, seed] = ds[0][0]
    for key in [k for k in items if k[0]]:
        assert torch.equal(items[key], items[(False, *key[1:])]), key
    assert not torch.equal(items[True, "train", 0], items[True, "train", 1])
