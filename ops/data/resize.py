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

Planar frames: where the 'pil' backend runs on the vectorised kernel, the loader decodes its frames as planes
(N, 3, H, W) (one cv2.split of the decoder's BGR instead of the colour conversion) and `resize_planes` computes
the same kernel's pixels, bit for bit, as two height passes (the width pass on transposed planes), written
straight into the output planes. 96 crops of planar 340x256 frames, with the cache flushed before each set
(same run, interleaved, minimum of 15): 256x256 -> 224 0.151 ms per frame instead of 0.183 ms for the
interleaved kernel plus the channels-first write, 192x192 0.126 / 0.145, 168x168 0.102 / 0.122, 224x256 (width
only) 0.110 / 0.151, 256x224 (height only) 0.055 / 0.060.
"""

from __future__ import annotations

import functools
import math
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
# `resize_planes` in the loader: chunks of 4 to 24 frames equal within the spread, 1 frame ~0.06 ms more per frame.
RESIZE_CHUNK = 8


@functools.cache
def torch_kernel_is_fast() -> bool:
    """Return whether torch's uint8 antialiased resize is vectorised on this CPU (AVX2 / AVX-512, or aarch64);
    False where torch is not installed (the ONNX runtime), which then resizes with Pillow. Asked for every item
    the loader reads: answered once per process."""
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
        size = math.prod(shape)
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

    'pil': torch's kernel where it is vectorised, else Pillow (see the module docstring); 'cv2': INTER_LINEAR.
    Planar frames (`is_planar`) come back planar where `planes_resize_is_fast(backend)` (`resize_planes`)."""
    if backend not in RESIZE_BACKENDS:
        raise ValueError(f"resize backend must be one of {RESIZE_BACKENDS}, got {backend!r}")
    w, h = size
    if frames.shape[1:3] == (h, w):
        return frames
    frames = _layout_for(frames, backend)
    if is_planar(frames):
        out = _new((frames.shape[0], 3, h, w), scratch)
        resize_planes(frames, out)
        return planar(out)
    return _resize_into(frames, _new((frames.shape[0], h, w, frames.shape[3]), scratch), backend)


def _resize_into(frames: np.ndarray, out: np.ndarray, backend: str) -> np.ndarray:
    """Resize frames (N, h, w, 3), possibly strided, into C-contiguous out (N, H, W, 3); returns out."""
    size = (out.shape[2], out.shape[1])
    if backend == "cv2":
        for i in range(frames.shape[0]):
            cv2.resize(frames[i], size, dst=out[i], interpolation=cv2.INTER_LINEAR)
        return out
    return resize_torch(frames, size, out) if torch_kernel_is_fast() else resize_pillow(frames, size, out)


def planar(buffer: np.ndarray) -> np.ndarray:
    """Return planes (N, 3, H, W) seen as frames (N, H, W, 3) (a view: channel stride H*W), the layout the
    loader decodes into when `planes_resize_is_fast`."""
    return buffer.transpose(0, 2, 3, 1)


def is_planar(frames: np.ndarray) -> bool:
    """Whether frames (N, h, w, 3) are planes seen as frames (rows contiguous, channels apart)."""
    return frames.strides[2] == 1 and frames.strides[3] != 1


def planes_resize_is_fast(backend: str) -> bool:
    """Whether `backend` resizes planar frames with `resize_planes` (the 'pil' backend on the vectorised
    torch kernel); other backends take interleaved frames."""
    return backend == "pil" and torch_kernel_is_fast()


def _layout_for(frames: np.ndarray, backend: str) -> np.ndarray:
    """`frames` as `backend` resizes them: planar frames stay planar where `planes_resize_is_fast(backend)`, else
    they are copied interleaved."""
    if is_planar(frames) and not planes_resize_is_fast(backend):
        return np.ascontiguousarray(frames)
    return frames


def _ceil4(n: int) -> int:
    return -(-n // 4) * 4


def _vertical_pass(src: np.ndarray, out: np.ndarray) -> None:
    """PIL's bilinear height pass of src (m, h, b) into out (m, H, b), both C-contiguous, b % 4 == 0.

    Torch's kernel runs on the rows' bytes grouped as 4-channel pixels: a height pass filters every byte
    column on its own with the same weights, so the grouping changes nothing, and 4-channel pixels are the
    kernel's native layout (no RGB unpacking)."""
    import torch

    (m, h, b), rows = src.shape, out.shape[1]
    x = torch.from_numpy(src).view(m, h, b // 4, 4).permute(0, 3, 1, 2)
    y = torch.from_numpy(out).view(m, rows, b // 4, 4).permute(0, 3, 1, 2)
    torch.ops.aten._upsample_bilinear2d_aa.out(x, [rows, b // 4], False, None, None, out=y)


def resize_planes(
    frames: np.ndarray, out: np.ndarray, scratch: tuple[Scratch, Scratch] | None = None
) -> None:
    """Resize planar frames (N, h, w, 3) (`is_planar`, may be a crop) into planes out (N, 3, H, W), C-contiguous,
    with PIL's bilinear filter: the width pass, then the height pass, as torch's kernel computes them.

    Both passes run as height passes (`_vertical_pass`): the width pass on the transposed planes (all rows of
    the set stacked, one cv2.transpose each way). Torch's width pass on interleaved RGB costs 3x its
    height pass; this gives its pixels bit for bit, written planar with no further pass (timings in the module
    docstring). The crop is first copied row by row: transposing it straight from memory the cache no longer
    holds (the decoded clip) cost ~15% more. Intermediates go to `scratch` (two buffers) if given."""
    n, h, w, _ = frames.shape
    rows, cols = out.shape[2:]
    planes, flat = frames.transpose(0, 3, 1, 2), out.reshape(3 * n, rows, cols)
    if (h, w) == (rows, cols):
        np.copyto(out, planes)
        return
    s0, s1 = scratch or (None, None)
    if w == cols:
        mid = _new((3 * n, h, _ceil4(cols)), s0)
        np.copyto(mid[:, :, :cols].reshape(n, 3, h, cols), planes)
    else:  # the planes' rows stacked (3 N h, w), transposed once: a height pass filters every column alone
        m = 3 * n * h
        staged = _new((m, w), s1)
        np.copyto(staged.reshape(n, 3, h, w), planes)
        turned = _new((1, w, _ceil4(m)), s0)
        cv2.transpose(staged, turned[0, :, :m])
        widened = _new((1, cols, _ceil4(m)), s1)
        _vertical_pass(turned, widened)
        mid = _new((3 * n, h, _ceil4(cols)), s0)  # `turned` is spent: its buffer is reused
        cv2.transpose(widened[0, :, :m], mid.reshape(m, -1)[:, :cols])
    if h == rows:
        np.copyto(flat, mid[:, :, :cols])
    elif mid.shape[2] == cols:
        _vertical_pass(mid, flat)
    else:
        tall = _new((3 * n, rows, mid.shape[2]), s1)
        _vertical_pass(mid, tall)
        np.copyto(flat, tall[:, :, :cols])


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


def _runs(*indices: np.ndarray, longest: int | None = None) -> list[tuple[int, int]]:
    """Returns the (start, stop) positions of the runs over which every array of `indices` (same length) counts
    up by one, at most `longest` long."""
    index = indices[0]
    cuts = np.ones(index.size, dtype=bool)
    cuts[1:] = np.logical_or.reduce([np.diff(i) != 1 for i in indices])
    starts = np.flatnonzero(cuts).tolist() + [index.size]
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
    copied. Planar frames (`is_planar`, with `planes_resize_is_fast(backend)`) are resized by `resize_planes`
    straight into the slots, a run of consecutive frames in consecutive slots per call. Interleaved ones without
    a resize are gathered C-contiguous first. The intermediates go to `scratch` (two buffers) if given."""
    distinct, first, inverse = np.unique(slots, return_index=True, return_inverse=True)
    rows = np.sort(first)  # the slot where each distinct frame first appears: it is written there
    picked = slots[rows]
    frames = _layout_for(frames, backend)
    if is_planar(frames):
        for a, b in _runs(picked, rows, longest=RESIZE_CHUNK):
            resize_planes(frames[picked[a] : picked[a] + b - a], out[rows[a] : rows[a] + b - a], scratch)
    elif frames.shape[1:3] != out.shape[2:4]:
        pixels = _new((picked.size, *out.shape[2:4], frames.shape[3]), scratch and scratch[1])
        for a, b in _runs(picked, longest=RESIZE_CHUNK):  # picked[a:b] are consecutive frames
            _resize_into(frames[picked[a] : picked[a] + b - a], pixels[a:b], backend)
    else:
        pixels = _new((picked.size, *frames.shape[1:]), scratch and scratch[0])
        np.take(frames, picked, axis=0, out=pixels)
    if not is_planar(frames):
        for a, b in _runs(rows):  # consecutive slots: one channels-first write each
            to_planes(pixels[a:b], out[rows[a] : rows[a] + b - a])
    source = first[inverse.reshape(-1)]
    for t in np.flatnonzero(
        source != np.arange(source.size)
    ).tolist():  # the repeats: copies of written slots
        out[t] = out[source[t]]
    return out
