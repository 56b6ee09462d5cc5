"""Resizing a whole frame set (N, h, w, 3) uint8 at once, and writing it channels-first into the loader's output.

Backends:
- 'pil' (the dataset's default): PIL's bilinear filter, as the originals resized (TSM's GroupScale and
  GroupMultiScaleCrop, with the Pillow of their time): two taps when enlarging, a triangle as wide as the scale when shrinking
  (antialiased); a horizontal pass, then a vertical pass, each rounded to 8 bits. Computed by torch's uint8
  antialiased kernel (`F.interpolate(..., mode='bilinear', antialias=True)`: the same passes in the same order,
  with 14-15-bit instead of Pillow's 22-bit fixed-point weights) on all frames of a set in one call. Its pixels
  are Pillow's or one grey level apart, two on a few pixels in a million (tests/test_resize.py: natural-looking
  frames at every size of the presets, enlarging and shrinking: 0-8% of the values differ, 0.7% on average;
  exact where the weights are dyadic, e.g. 168 -> 224). The kernel gives the same pixels on every CPU but is
  vectorised only on x86 with AVX2 / AVX-512 and on aarch64; on an x86 CPU without AVX2 it runs ~3x slower than
  Pillow, so Pillow itself is used there (`resize_pillow`: the originals' pixels bit for bit).
- 'cv2': OpenCV INTER_LINEAR (half-pixel centres, 2x2 taps, 11-bit weights): the same filter as PIL when
  enlarging (within 1 grey level) but no antialiasing when shrinking (up to 6-11 levels apart on the fixture
  frames, 30-40 at sharp edges).
Per frame on one core (AVX-512 machine, a set of 100 crops of 340x256 frames): 256x256 -> 224 0.12 ms, 192x192
-> 224 0.09 ms, 168x168 -> 224 0.08 ms (cv2 0.08-0.09 ms, Pillow 0.5-0.7 ms); the kernel returns channels-last
pixels and one cv2.split call writes the set channels-first for 0.02 ms per frame (asking the kernel for
channels-first output costs 0.07 ms).
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

if TYPE_CHECKING:  # torch is imported where it is used: the ONNX runtime resizes frames without it
    pass

RESIZE_BACKENDS = ("pil", "cv2")
# Frames per call of the resize kernel in resize_to_slots: 96 crops of 256x256 -> 224 took 14.4 ms in calls of 8,
# 17.8 ms in one call (its intermediate rows outgrow the cache) and 19.4 ms frame by frame (AVX-512, one core).
RESIZE_CHUNK = 8


def torch_kernel_is_fast() -> bool:
    """Return whether torch's uint8 antialiased resize is vectorised on this CPU (AVX2 / AVX-512, or aarch64);
    False where torch is not installed (the ONNX runtime), which then resizes with Pillow."""
    try:
        import torch
    except ImportError:
        return False
    if platform.machine().lower() in ("aarch64", "arm64"):
        return True
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def resize_pillow(src: np.ndarray, size: tuple[int, int], out: np.ndarray) -> np.ndarray:
    """Resize frames (N, h, w, 3) into out (N, H, W, 3), size=(W, H), with Pillow's BILINEAR; returns out.

    The horizontal pass runs first, as in the Pillow the originals used: Pillow >= 13 runs the vertical pass
    first when the height shrinks much more than the width, which moves ~20% of the values by a grey level."""
    w, h = size
    for i in range(src.shape[0]):
        img = Image.fromarray(np.ascontiguousarray(src[i]))
        if img.width != w:
            img = img.resize((w, img.height), Image.BILINEAR)
        out[i] = np.asarray(img.resize((w, h), Image.BILINEAR) if img.height != h else img)
    return out


class Scratch:
    """A reusable byte buffer: `take(shape)` returns a uint8 array of that shape on it (grown when needed, contents
    undefined). Fresh multi-MB arrays cost a page fault per 4 KB: on the gathered crops and the resized frames
    that took bench_loader's overhead from 0.30 to 0.13-0.22 (a loaded 2-core VM)."""

    def __init__(self) -> None:
        self._buf = np.empty(0, dtype=np.uint8)

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape))
        if self._buf.size < size:
            self._buf = np.empty(size, dtype=np.uint8)
        return self._buf[:size].reshape(shape)


def _new(shape: tuple[int, ...], scratch: Scratch | None) -> np.ndarray:
    return np.empty(shape, dtype=np.uint8) if scratch is None else scratch.take(shape)


def resize_torch(src: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """Return frames (N, h, w, 3) resized to size=(W, H) by torch's uint8 antialiased bilinear kernel in one call,
    written into out (N, H, W, 3) C-contiguous if given. `src` may be a strided view (a crop)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(src).permute(0, 3, 1, 2)  # channels-last strides: the kernel's fast layout
    if out is None:
        y = F.interpolate(x, size=(size[1], size[0]), mode="bilinear", antialias=True, align_corners=False)
        return np.ascontiguousarray(y.permute(0, 2, 3, 1).numpy())  # channels-last output: no copy
    y = torch.from_numpy(out).permute(0, 3, 1, 2)  # F.interpolate's op, with its output given (channels-last)
    torch.ops.aten._upsample_bilinear2d_aa.out(x, [size[1], size[0]], False, None, None, out=y)
    return out


def resize_frames(
    frames: np.ndarray, size: tuple[int, int], backend: str = "cv2", scratch: Scratch | None = None
) -> np.ndarray:
    """Return frames (N, h, w, 3) resized to size=(W, H), C-contiguous (on `scratch` if given), or `frames` itself
    if already that size.

    'pil': torch's kernel where it is vectorised, else Pillow (see the module docstring); 'cv2': INTER_LINEAR."""
    if backend not in RESIZE_BACKENDS:
        raise ValueError(f"resize backend must be one of {RESIZE_BACKENDS}, got {backend!r}")
    w, h = size
    if frames.shape[1:3] == (h, w):
        return frames
    return _resize_into(frames, _new((frames.shape[0], h, w, frames.shape[3]), scratch), backend)


def _resize_into(frames: np.ndarray, out: np.ndarray, backend: str) -> np.ndarray:
    """Resize frames (N, h, w, 3), possibly strided, into C-contiguous out (N, H, W, 3); returns out."""
    size = (out.shape[2], out.shape[1])
    if backend == "cv2":
        for i in range(frames.shape[0]):
            cv2.resize(frames[i], size, dst=out[i], interpolation=cv2.INTER_LINEAR)
        return out
    return resize_torch(frames, size, out) if torch_kernel_is_fast() else resize_pillow(frames, size, out)


def to_planes(pixels: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write C-contiguous pixels (N, H, W, 3) into out (N, 3, H, W) (planes C-contiguous) in one cv2.split call;
    returns out."""
    n, c, h, w = out.shape
    if pixels.shape != (n, h, w, c) or not pixels.flags.c_contiguous or out.strides[1:] != (h * w, w, 1):
        raise ValueError(
            f"to_planes: need C-contiguous pixels (N, H, W, 3) and planar out (N, 3, H, W), "
            f"got {pixels.shape} and {out.shape} with strides {out.strides}"
        )
    if n:
        cv2.split(pixels.reshape(n, h * w, c), [out[:, k].reshape(n, h * w) for k in range(c)])
    return out


def _runs(index: np.ndarray, longest: int | None = None) -> list[tuple[int, int]]:
    """Returns the (start, stop) positions of the runs of consecutive values in `index`, at most `longest` long."""
    starts = np.flatnonzero(np.diff(index, prepend=index[:1] - 2) != 1).tolist() + [index.size]
    step = longest or max(index.size, 1)
    return [(a, min(a + step, b)) for a, b in zip(starts[:-1], starts[1:]) for a in range(a, b, step)]


def resize_to_slots(
    frames: np.ndarray,
    slots: np.ndarray,
    out: np.ndarray,
    backend: str = "cv2",
    scratch: tuple[Scratch, Scratch] | None = None,
) -> np.ndarray:
    """Fill out (T, 3, S, S) with out[t] = resize(frames[slots[t]]) for frames (U, h, w, 3); returns out.

    One batch: each distinct frame's crop is resized once, straight from the (strided) crops, one call per run
    of consecutive frames (gathering the crops first cost more than resizing them), and written channels-first
    once; a frame that fills several slots (segments less than a frame apart, a loop-padded clip) is then
    copied. Without a resize, the crops are gathered C-contiguous first. The gathered crops and the resized
    frames go to `scratch` (two buffers) if given."""
    distinct, first, inverse = np.unique(slots, return_index=True, return_inverse=True)
    rows = np.sort(first)  # the slot where each distinct frame first appears: it is written there
    picked = slots[rows]
    if frames.shape[1:3] != out.shape[2:4]:
        pixels = _new((picked.size, *out.shape[2:4], frames.shape[3]), scratch and scratch[1])
        for a, b in _runs(picked, RESIZE_CHUNK):  # picked[a:b] are consecutive frames
            _resize_into(frames[picked[a] : picked[a] + b - a], pixels[a:b], backend)
    else:
        pixels = _new((picked.size, *frames.shape[1:]), scratch and scratch[0])
        np.take(frames, picked, axis=0, out=pixels)
    for a, b in _runs(rows):  # consecutive slots: one channels-first write each
        to_planes(pixels[a:b], out[rows[a] : rows[a] + b - a])
    source = first[inverse.reshape(-1)]
    for t in np.flatnonzero(
        source != np.arange(source.size)
    ).tolist():  # the repeats: copies of written slots
        out[t] = out[source[t]]
    return out
