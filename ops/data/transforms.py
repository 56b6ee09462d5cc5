"""Group (whole-clip) transforms on uint8 numpy frames (T, H, W, 3), as in TSM (and the Efficient-3DCNNs training
crops); device-side normalisation.

Every transform uses ONE box (and one flip decision) for all frames of a clip. The boxes are computed by
pure functions (`multiscale_crop_box`, `center_crop_box`, `view_boxes`) so tests can assert them exactly;
a box is `(x, y, w, h)` in pixels of the frame it is applied to.

Resizing (ops/data/resize.py): backend 'cv2' (INTER_LINEAR; the default of these functions) or 'pil' (PIL's
bilinear filter, what TSM used; VideoDataset's default, so the loader resizes as the originals). The two are the
same filter when enlarging, but PIL antialiases (widens the kernel) when shrinking. Measured on the fixture frames
(5x5-box-blurred noise): enlarging 168->224 differs by at most 1 grey level (mean 0.26); shrinking 256->224 by at
most 6 (mean 0.69), 455x341->341x256 (GroupScale) by at most 11 (mean 1.2). On 256-short-side frames the
validation path (GroupScale(256) = identity, then centre crop) is the same with either backend.
Normalisation of uint8 frames on the CPU goes through a 256-entry table per channel (the formula's exact values,
one pass): ~0.4 ns per value into warm memory instead of ~7 ns for the three float passes of the formula.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np

from ops.data.resize import resize_frames
from ops.data.resize import (
    resize_to_slots as resize_to_slots,
)  # re-exported: the loader and tests use it here

if TYPE_CHECKING:  # torch is imported where it is used: the ONNX runtime reads frames without it
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MULTISCALE_SCALES = (1.0, 0.875, 0.75, 0.66)
TEST_CROPS = (1, 3, 5, 10)
TRAIN_CROPS = ("tsm", "random", "corner", "center")


def _e3d_scales(initial: float = 1.0, n: int = 5, step: float = 0.84089641525) -> tuple[float, ...]:
    scales = [initial]
    for _ in range(1, n):
        scales.append(scales[-1] * step)  # as the original: repeated products, not step ** k
    return tuple(scales)


# Efficient-3DCNNs' multi-scale crop sides (fractions of the short side): 1, 2^-1/4, ..., 2^-1.
E3D_SCALES = _e3d_scales()


class Box(NamedTuple):
    x: int
    y: int
    w: int
    h: int


# ----------------------------------------------------------------------------------------------------------
# Pure box geometry
# ----------------------------------------------------------------------------------------------------------
def fixed_offsets(
    img_w: int, img_h: int, crop_w: int, crop_h: int, more_fix_crop: bool = True
) -> list[tuple[int, int]]:
    """Return the TSM fixed crop offsets (x, y): 5 (corners + centre) or 13 (plus edge centres, quarters).

    Order: upper-left, upper-right, lower-left, lower-right, centre, [centre-left, centre-right,
    lower-centre, upper-centre, the four quarter points UL, UR, LL, LR]; step = (size - crop) // 4.
    """
    ws, hs = (img_w - crop_w) // 4, (img_h - crop_h) // 4
    out = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)]
    if more_fix_crop:
        out += [
            (0, 2 * hs),
            (4 * ws, 2 * hs),
            (2 * ws, 4 * hs),
            (2 * ws, 0),
            (ws, hs),
            (3 * ws, hs),
            (ws, 3 * hs),
            (3 * ws, 3 * hs),
        ]
    return out


def multiscale_crop_box(
    img_w: int,
    img_h: int,
    input_size: int,
    rng: np.random.Generator,
    scales: Sequence[float] = MULTISCALE_SCALES,
    max_distort: int = 1,
    fix_crop: bool = True,
    more_fix_crop: bool = True,
) -> Box:
    """Return the GroupMultiScaleCrop box: sides from `base*scales` (|i-j| <= max_distort), then an offset.

    base = min(img_w, img_h); sides within 3 px of `input_size` snap to it (as TSM) if it fits. Draws, in
    order: `rng.integers(len(pairs))` for the (w, h) pair (pairs listed h-major: for i, h: for j, w), then
    `rng.integers(len(offsets))` over `fixed_offsets` (fix_crop) or two uniform offsets x then y.
    """
    base = min(img_w, img_h)
    sides = [int(base * s) for s in scales]
    # Snapping a side up past the frame (short side 222..223) made TSM's PIL crop pad black: not done here.
    sides = [input_size if abs(s - input_size) < 3 and input_size <= base else s for s in sides]
    pairs = [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= max_distort]
    crop_w, crop_h = pairs[int(rng.integers(len(pairs)))]
    if fix_crop:
        offsets = fixed_offsets(img_w, img_h, crop_w, crop_h, more_fix_crop)
        x, y = offsets[int(rng.integers(len(offsets)))]
    else:
        x = int(rng.integers(img_w - crop_w + 1))
        y = int(rng.integers(img_h - crop_h + 1))
    return Box(x, y, crop_w, crop_h)


def e3d_crop_box(
    img_w: int, img_h: int, rng: np.random.Generator, mode: str, scales: Sequence[float] = E3D_SCALES
) -> Box:
    """Return the Efficient-3DCNNs training crop box (a square, later resized to the input size).

    Side int(min(w, h) * scale), scale drawn from `scales`; then 'random' (MultiScaleRandomCrop): top-left corner
    at round(u * (w - side)), round(v * (h - side)) for uniform u, v (PIL rounds the float box); 'corner'
    (MultiScaleCornerCrop): one of centre, top-left, top-right, bottom-left, bottom-right; 'center': the centre
    box (the original's `--train_crop center` indexes its one position with a draw over five and fails; the
    centre crop it meant is used). The centre box spans 2 * (side // 2) pixels from (w // 2 - side // 2,
    h // 2 - side // 2), as the original. Draws, in order: the scale index, then u and v ('random') or the
    position index ('corner')."""
    side = int(min(img_w, img_h) * scales[int(rng.integers(len(scales)))])
    if mode == "random":
        return Box(round(rng.random() * (img_w - side)), round(rng.random() * (img_h - side)), side, side)
    if mode not in ("corner", "center"):
        raise ValueError(f"train crop must be one of {TRAIN_CROPS[1:]} here, got {mode!r}")
    position = "c" if mode == "center" else ("c", "tl", "tr", "bl", "br")[int(rng.integers(5))]
    if position == "c":
        half = side // 2
        return Box(img_w // 2 - half, img_h // 2 - half, 2 * half, 2 * half)
    x = 0 if position[1] == "l" else img_w - side
    y = 0 if position[0] == "t" else img_h - side
    return Box(x, y, side, side)


def train_crop_box(
    img_w: int, img_h: int, input_size: int, rng: np.random.Generator, mode: str = "tsm"
) -> Box:
    """Return the training crop box of `mode`: 'tsm' (multiscale_crop_box) or an Efficient-3DCNNs crop
    ('random', 'corner', 'center': e3d_crop_box)."""
    if mode == "tsm":
        return multiscale_crop_box(img_w, img_h, input_size, rng)
    return e3d_crop_box(img_w, img_h, rng, mode)


def scaled_size(img_w: int, img_h: int, short_side: int) -> tuple[int, int]:
    """Return (w, h) after GroupScale(short_side): the long side is truncated, as torchvision."""
    if img_w <= img_h:
        return short_side, int(short_side * img_h / img_w)
    return int(short_side * img_w / img_h), short_side


def center_crop_box(img_w: int, img_h: int, crop: int) -> Box:
    """Return the centre-crop box; offsets use Python round() of the half difference, as torchvision."""
    return Box(int(round((img_w - crop) / 2.0)), int(round((img_h - crop) / 2.0)), crop, crop)


def center_view_map(img_w: int, img_h: int, crop: int, short_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (zoom (4,), shift (4,)) float32: a box [x, y, w, h] of an img_w x img_h source frame lies at
    box * zoom - shift in the centre evaluation view (GroupScale(short_side), then the centre crop)."""
    w, h = scaled_size(img_w, img_h, short_side)
    box = center_crop_box(w, h, crop)
    return np.float32([w / img_w, h / img_h] * 2), np.float32([box.x, box.y, 0, 0])


def view_boxes(img_w: int, img_h: int, crop: int, test_crops: int) -> list[tuple[Box, bool]]:
    """Return the evaluation views as (box, flipped) on the already scaled frame (w x h).

    1: centre crop. 3 (GroupFullResSample, flip=False): left, right, centre at mid height.
    5 (GroupOverSample, flip=False): upper-left, upper-right, lower-left, lower-right, centre.
    10 (GroupOverSample, flip=True): the 5 boxes, each followed by its horizontal flip (TSM's order:
    crop0, flip(crop0), crop1, flip(crop1), ...).
    """
    if test_crops == 1:
        return [(center_crop_box(img_w, img_h, crop), False)]
    if test_crops == 3:
        ws, hs = (img_w - crop) // 4, (img_h - crop) // 4
        return [(Box(x, 2 * hs, crop, crop), False) for x in (0, 4 * ws, 2 * ws)]
    if test_crops in (5, 10):
        boxes = [
            Box(x, y, crop, crop) for x, y in fixed_offsets(img_w, img_h, crop, crop, more_fix_crop=False)
        ]
        if test_crops == 5:
            return [(b, False) for b in boxes]
        return [(b, f) for b in boxes for f in (False, True)]
    raise ValueError(f"test_crops must be one of {TEST_CROPS}, got {test_crops}")


# ----------------------------------------------------------------------------------------------------------
# Pixel operations on (T, H, W, 3) uint8
# ----------------------------------------------------------------------------------------------------------
def crop_resize(frames: np.ndarray, box: Box, out_size: int | None = None) -> np.ndarray:
    """Return frames (T, S, S, 3): the box cut from every frame, resized to out_size (a view if no resize)."""
    x, y, w, h = box
    if x < 0 or y < 0 or x + w > frames.shape[2] or y + h > frames.shape[1]:
        raise ValueError(f"crop box {box} outside frames of size {frames.shape[2]}x{frames.shape[1]}")
    cropped = frames[:, y : y + h, x : x + w]
    if out_size is None:
        return cropped
    return resize_frames(cropped, (out_size, out_size))


def flip_frames(frames: np.ndarray) -> np.ndarray:
    """Return the horizontally flipped frames (T, H, W, 3) as a view."""
    return frames[:, :, ::-1]


def flip_inplace(x: np.ndarray) -> np.ndarray:
    """Flip the last axis of a C-contiguous array (..., H, W) in place, e.g. (T, 3, H, W); returns x."""
    rows = x.reshape(-1, x.shape[-1])  # a view: raises if x is not contiguous
    cv2.flip(rows, 1, dst=rows)
    return x


class GroupMultiScaleCrop:
    """Training crop: `multiscale_crop_box` on the frame size, resized to input_size (one box per clip)."""

    def __init__(
        self,
        input_size: int,
        scales: Sequence[float] = MULTISCALE_SCALES,
        max_distort: int = 1,
        fix_crop: bool = True,
        more_fix_crop: bool = True,
    ) -> None:
        self.input_size, self.scales, self.max_distort = input_size, tuple(scales), max_distort
        self.fix_crop, self.more_fix_crop = fix_crop, more_fix_crop

    def box(self, img_w: int, img_h: int, rng: np.random.Generator) -> Box:
        return multiscale_crop_box(
            img_w,
            img_h,
            self.input_size,
            rng,
            self.scales,
            self.max_distort,
            self.fix_crop,
            self.more_fix_crop,
        )

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return (T, input_size, input_size, 3)."""
        return crop_resize(frames, self.box(frames.shape[2], frames.shape[1], rng), self.input_size)


class GroupScale:
    """Resize so the short side is `size` (bilinear), as TSM GroupScale / torchvision Resize(int)."""

    def __init__(self, size: int, backend: str = "cv2") -> None:
        self.size, self.backend = size, backend

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Return (T, H', W', 3) with min(H', W') == size."""
        return resize_frames(frames, scaled_size(frames.shape[2], frames.shape[1], self.size), self.backend)


def random_flip(frames: np.ndarray, rng: np.random.Generator, allowed: bool = True) -> np.ndarray:
    """Flip the whole clip with probability 0.5 (draws `rng.random()` only when allowed); returns a view."""
    if allowed and rng.random() < 0.5:
        return flip_frames(frames)
    return frames


def eval_views(
    frames: np.ndarray, input_size: int, scale_size: int, test_crops: int, backend: str = "cv2"
) -> list[np.ndarray]:
    """Return the `test_crops` views (T, S, S, 3), S = input_size: GroupScale(scale_size), then boxes."""
    scaled = GroupScale(scale_size, backend)(frames)
    views = []
    for box, flipped in view_boxes(scaled.shape[2], scaled.shape[1], input_size, test_crops):
        view = crop_resize(scaled, box)
        views.append(flip_frames(view) if flipped else view)
    return views


class HostBuffers:
    """Recycled float32 CPU buffers for `normalize(..., out=buffers.get(shape))`.

    Fresh multi-MB memory costs a page fault per 4 KB (~1.7 ns per float32 value here, four times the table
    lookup of `normalize`), so a buffer is handed out again once no tensor (view, autograd-saved input) uses it."""

    def __init__(self) -> None:
        self._arrays: list[np.ndarray] = []

    def get(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Return a float32 tensor of `shape` (contents undefined) on the CPU."""
        import torch

        for arr in self._arrays:
            if arr.shape == shape and sys.getrefcount(arr) == 3:  # only the list, `arr` and the call hold it
                return torch.from_numpy(arr)
        arr = np.empty(shape, dtype=np.float32)
        self._arrays = [arr, *self._arrays[:1]]  # the last two: a batch in use and the one before it
        return torch.from_numpy(arr)


def normalize(
    x: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    pixel_scale: float = 255.0,
    bgr: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return float32 `(x.float() / pixel_scale - mean) / std` of uint8 x (..., 3, H, W), contiguous, same device;
    with `bgr` the channels are reversed first (mean and std then apply to B, G, R in that order).

    On the CPU the formula is applied once to the 256 values of each channel and the frames are mapped through
    that table (cv2.LUT): the same float32 values in one pass, written into `out` (float32, x's shape, contiguous)
    if given."""
    import torch

    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(3, 1, 1)
    if x.dtype == torch.uint8 and x.device.type == "cpu" and x.dim() >= 3 and x.shape[-3] == 3:
        levels = torch.arange(256, dtype=torch.uint8).expand(3, 1, 256)
        table = (levels.to(torch.float32) / pixel_scale - m) / s  # the formula's ops on every uint8 value
        return _map_channels(x, table.view(3, 256).numpy(), bgr, out)
    if bgr:
        x = x.flip(-3)
    return (x.to(torch.float32, memory_format=torch.contiguous_format) / pixel_scale - m) / s


def _map_channels(x: torch.Tensor, tables: np.ndarray, bgr: bool, out: torch.Tensor | None) -> torch.Tensor:
    """Return float32 out (..., 3, H, W), out[..., c, :, :] = tables[c][x[..., c', :, :]] (c' = 2 - c if bgr)."""
    import torch

    if out is None:
        out = torch.empty(x.shape, dtype=torch.float32)
    elif out.shape != x.shape or out.dtype != torch.float32 or not out.is_contiguous() or out.is_cuda:
        raise ValueError(f"normalize: out must be a contiguous float32 CPU tensor of shape {tuple(x.shape)}")
    if x.numel() == 0:
        return out
    src = x.contiguous().numpy().reshape(-1, 3, x.shape[-2] * x.shape[-1])
    dst = out.numpy().reshape(src.shape)
    for c in range(3):
        cv2.LUT(src[:, 2 - c if bgr else c], tables[c], dst=dst[:, c])  # writes into the strided view
    return out
