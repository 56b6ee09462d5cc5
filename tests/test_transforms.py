"""Group transforms: exact crop boxes for every layout, seeded multi-scale crops, pixel ops, normalize."""

import cv2
import numpy as np
import pytest
import torch

from ops.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Box,
    GroupMultiScaleCrop,
    GroupScale,
    HostBuffers,
    center_crop_box,
    crop_resize,
    eval_views,
    fixed_offsets,
    flip_inplace,
    multiscale_crop_box,
    normalize,
    random_flip,
    resize_to_slots,
    scaled_size,
    view_boxes,
)


def test_fixed_offsets_13_and_5():
    # 320x256 frame, 224 crop: w_step = 96 // 4 = 24, h_step = 32 // 4 = 8
    assert fixed_offsets(320, 256, 224, 224) == [
        (0, 0),
        (96, 0),
        (0, 32),
        (96, 32),
        (48, 16),  # corners, centre
        (0, 16),
        (96, 16),
        (48, 32),
        (48, 0),  # centre-left/right, lower/upper centre
        (24, 8),
        (72, 8),
        (24, 24),
        (72, 24),  # quarter points
    ]
    assert fixed_offsets(340, 256, 168, 192, more_fix_crop=False) == [
        (0, 0),
        (172, 0),
        (0, 64),
        (172, 64),
        (86, 32),
    ]


# (w, h) pairs for base 256 and sides [256, 224, 192, 168] (0.875*256 = 224, 0.66*256 = 168.96 -> 168),
# listed h-major with |i - j| <= 1, as TSM builds them
PAIRS_256 = [
    (256, 256),
    (224, 256),
    (256, 224),
    (224, 224),
    (192, 224),
    (224, 192),
    (192, 192),
    (168, 192),
    (192, 168),
    (168, 168),
]


@pytest.mark.parametrize("seed", range(6))
def test_multiscale_box_seeded(seed):
    box = multiscale_crop_box(320, 256, 224, np.random.default_rng(seed))
    ref = np.random.default_rng(seed)
    w, h = PAIRS_256[ref.integers(10)]
    ws, hs = (320 - w) // 4, (256 - h) // 4
    offsets = [
        (0, 0),
        (4 * ws, 0),
        (0, 4 * hs),
        (4 * ws, 4 * hs),
        (2 * ws, 2 * hs),
        (0, 2 * hs),
        (4 * ws, 2 * hs),
        (2 * ws, 4 * hs),
        (2 * ws, 0),
        (ws, hs),
        (3 * ws, hs),
        (ws, 3 * hs),
        (3 * ws, 3 * hs),
    ]
    x, y = offsets[ref.integers(13)]
    assert box == Box(x, y, w, h)


def test_multiscale_box_known_values_and_snap():
    # seed 0 draws pair index 8 -> (192, 168), then offset index 8 (upper centre): (2 * (320-192)//4, 0)
    assert multiscale_crop_box(320, 256, 224, np.random.default_rng(0)) == Box(64, 0, 192, 168)
    rng = np.random.default_rng(1)
    sides = {b.w for b in (multiscale_crop_box(300, 226, 224, rng) for _ in range(200))}
    assert sides == {224, 197, 169, 149}  # 226 snaps to 224 (within 3 px)
    sides = {b.w for b in (multiscale_crop_box(300, 222, 224, rng) for _ in range(200))}
    assert 222 in sides and 224 not in sides  # would not fit: no snap (TSM padded black here)
    random_box = multiscale_crop_box(320, 256, 224, np.random.default_rng(3), fix_crop=False)
    assert 0 <= random_box.x <= 320 - random_box.w and 0 <= random_box.y <= 256 - random_box.h


def test_scale_and_center_boxes():
    assert scaled_size(320, 256, 256) == (320, 256)
    assert scaled_size(455, 341, 256) == (341, 256)  # int(256 * 455 / 341) = 341 (truncated)
    assert scaled_size(128, 160, 256) == (256, 320)  # portrait: width is the short side
    assert center_crop_box(320, 256, 224) == Box(48, 16, 224, 224)
    assert center_crop_box(259, 257, 224) == Box(18, 16, 224, 224)  # round(17.5) = 18, round(16.5) = 16


def test_view_boxes_all_layouts():
    b = lambda x, y: Box(x, y, 224, 224)  # noqa: E731
    assert view_boxes(320, 256, 224, 1) == [(b(48, 16), False)]
    # fixtures README section 4: left (0,16), right (96,16), centre (48,16)
    assert view_boxes(320, 256, 224, 3) == [(b(0, 16), False), (b(96, 16), False), (b(48, 16), False)]
    five = [b(0, 0), b(96, 0), b(0, 32), b(96, 32), b(48, 16)]
    assert view_boxes(320, 256, 224, 5) == [(x, False) for x in five]
    assert view_boxes(320, 256, 224, 10) == [(x, f) for x in five for f in (False, True)]
    assert view_boxes(340, 256, 224, 3) == [(b(0, 16), False), (b(116, 16), False), (b(58, 16), False)]
    with pytest.raises(ValueError, match="test_crops"):
        view_boxes(320, 256, 224, 4)


def _frames(t=3, h=40, w=50, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_pixel_ops():
    x = _frames()
    c = crop_resize(x, Box(5, 3, 30, 20), 16)
    for t in range(3):
        np.testing.assert_array_equal(
            c[t], cv2.resize(x[t, 3:23, 5:35], (16, 16), interpolation=cv2.INTER_LINEAR)
        )
    np.testing.assert_array_equal(crop_resize(x, Box(5, 3, 16, 16)), x[:, 3:19, 5:21])
    with pytest.raises(ValueError, match="outside"):
        crop_resize(x, Box(40, 0, 16, 16))
    out = np.zeros((5, 3, 16, 16), np.uint8)  # channels-first slots
    resize_to_slots(x[:, :16, :16], np.array([2, 0, 2, 1, 0]), out)
    np.testing.assert_array_equal(out, x[[2, 0, 2, 1, 0], :16, :16].transpose(0, 3, 1, 2))
    resize_to_slots(x, np.array([1, 1]), out[:2])
    ref = cv2.resize(x[1], (16, 16), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out[0], ref.transpose(2, 0, 1))
    np.testing.assert_array_equal(out[1], out[0])
    y = out.copy()
    flip_inplace(y)
    np.testing.assert_array_equal(y, out[..., ::-1])
    s = GroupScale(20)(x)
    assert s.shape == (3, 20, 25, 3)
    np.testing.assert_array_equal(s[1], cv2.resize(x[1], (25, 20), interpolation=cv2.INTER_LINEAR))
    rng, ref = np.random.default_rng(5), np.random.default_rng(5)
    flipped = [random_flip(x, rng) for _ in range(8)]
    for f, u in zip(flipped, ref.random(8)):
        np.testing.assert_array_equal(f, x[:, :, ::-1] if u < 0.5 else x)
    assert random_flip(x, rng, allowed=False) is x


def test_multiscale_class_and_eval_views():
    x = _frames(2, 64, 80)
    out = GroupMultiScaleCrop(32)(x, np.random.default_rng(4))
    box = multiscale_crop_box(80, 64, 32, np.random.default_rng(4))
    np.testing.assert_array_equal(out, crop_resize(x, box, 32))
    views = eval_views(x, 32, 36, 10)  # scale short side 64 -> 36 (45x36), then 5 boxes + flips
    scaled = GroupScale(36)(x)
    assert len(views) == 10 and scaled.shape == (2, 36, 45, 3)
    for view, (b, f) in zip(views, view_boxes(45, 36, 32, 10)):
        ref = scaled[:, b.y : b.y + 32, b.x : b.x + 32]
        np.testing.assert_array_equal(view, ref[:, :, ::-1] if f else ref)


def test_normalize_exact_and_contiguous():
    x = torch.from_numpy(_frames(4, 6, 7)).permute(0, 3, 1, 2)  # channels-last strides, as the loader gives
    y = normalize(x)
    assert y.dtype == torch.float32 and y.is_contiguous() and y.shape == (4, 3, 6, 7)
    m = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    s = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.equal(y, (x.contiguous().float() / 255 - m) / s)
    assert torch.equal(normalize(x[None]), y[None])


def test_normalize_table_equals_the_formula_for_every_convention():
    x = torch.from_numpy(_frames(6, 5, 7, seed=1)).view(2, 3, 5, 7, 3).movedim(-1, -3)  # (2, 3, 3, 5, 7)
    for mean, std, scale, bgr in (
        ((114.7748, 107.7354, 99.4750), (1.0, 1.0, 1.0), 1.0, True),  # Efficient-3DCNNs Kinetics: BGR 0-255
        ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225), 255.0, False),  # TAdaConv
    ):
        m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        ref = ((x.flip(-3) if bgr else x).contiguous().float() / scale - m) / s
        assert torch.equal(normalize(x, mean, std, scale, bgr), ref)
    empty = torch.zeros((0, 3, 4, 4), dtype=torch.uint8)
    assert normalize(empty).shape == (0, 3, 4, 4)
    m, s = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.equal(normalize(x.float()), (x.float() / 255 - m) / s)  # not uint8: the formula itself


def test_host_buffers_are_reused_only_when_free():
    x = torch.from_numpy(_frames(4, 6, 7)).permute(0, 3, 1, 2)
    buffers = HostBuffers()
    y = normalize(x, out=buffers.get((4, 3, 6, 7)))
    assert torch.equal(y, normalize(x))
    first = y.data_ptr()
    view = y[1:]  # a view keeps the first buffer in use
    del y
    z = buffers.get((4, 3, 6, 7))
    second = z.data_ptr()
    assert second != first
    del z
    assert buffers.get((4, 3, 6, 7)).data_ptr() == second  # free again: no new memory
    del view
    w, u = buffers.get((4, 3, 6, 7)), buffers.get((4, 3, 6, 7))
    assert {w.data_ptr(), u.data_ptr()} == {first, second}
    with pytest.raises(ValueError, match="out must be"):
        normalize(x, out=torch.empty((4, 3, 6, 6)))


def test_pil_backend_matches_pil(monkeypatch):
    from PIL import Image

    monkeypatch.setattr(
        "ops.data.resize.torch_kernel_is_fast", lambda: False
    )  # Pillow (torch: test_resize.py)

    x = _frames(2, 40, 50)
    s = GroupScale(20, "pil")(x)
    for t in range(2):
        np.testing.assert_array_equal(
            s[t], np.asarray(Image.fromarray(x[t]).resize((25, 20), Image.BILINEAR))
        )
    out = np.zeros((2, 3, 16, 16), np.uint8)
    resize_to_slots(x[:, 3:23, 5:35], np.array([1, 0]), out, "pil")
    ref = np.asarray(Image.fromarray(x[1, 3:23, 5:35].copy()).resize((16, 16), Image.BILINEAR))
    np.testing.assert_array_equal(out[0], ref.transpose(2, 0, 1))
    with pytest.raises(ValueError, match="backend"):
        GroupScale(20, "skimage")(x)
