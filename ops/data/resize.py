"""Resizing a whole frame set (N, h, w, 3) uint8 at once, and writing it channels-first into the loader's output.

Backends:
- 'pil' (the dataset's default): PIL's bilinear filter, as the originals resized (TSM's GroupScale and
  GroupMultiScaleCrop, Pillow <= 12): two taps when enlarging, a triangle as wide as the scale when shrinking
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

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

RESIZE_BACKENDS = ("pil", "cv2")


def torch_kernel_is_fast() -> bool:
    """Return whether torch's uint8 antialiased resize is vectorised on this CPU (AVX2 / AVX-512, or aarch64)."""
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


def resize_torch(src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return frames (N, h, w, 3) resized to size=(W, H) by torch's uint8 antialiased bilinear kernel in one call,
    C-contiguous (N, H, W, 3). `src` may be a strided view (a crop of the decoded frames)."""
    x = torch.from_numpy(src).permute(0, 3, 1, 2)  # channels-last strides: the kernel's fast layout
    y = F.interpolate(x, size=(size[1], size[0]), mode="bilinear", antialias=True, align_corners=False)
    return np.ascontiguousarray(y.permute(0, 2, 3, 1).numpy())  # channels-last output: no copy


def resize_frames(frames: np.ndarray, size: tuple[int, int], backend: str = "cv2") -> np.ndarray:
    """Return frames (N, h, w, 3) resized to size=(W, H), or `frames` itself if already that size.

    'pil': torch's kernel where it is vectorised, else Pillow (see the module docstring); 'cv2': INTER_LINEAR."""
    if backend not in RESIZE_BACKENDS:
        raise ValueError(f"resize backend must be one of {RESIZE_BACKENDS}, got {backend!r}")
    w, h = size
    if frames.shape[1:3] == (h, w):
        return frames
    if backend == "pil" and torch_kernel_is_fast():
        return resize_torch(frames, size)
    out = np.empty((frames.shape[0], h, w, frames.shape[3]), dtype=frames.dtype)
    if backend == "pil":
        return resize_pillow(frames, size, out)
    for i in range(frames.shape[0]):
        cv2.resize(frames[i], size, dst=out[i], interpolation=cv2.INTER_LINEAR)
    return out


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


def resize_to_slots(
    frames: np.ndarray, slots: np.ndarray, out: np.ndarray, backend: str = "cv2"
) -> np.ndarray:
    """Fill out (T, 3, S, S) with out[t] = resize(frames[slots[t]]) for frames (U, h, w, 3); returns out.

    One batch: each distinct frame's crop is gathered once, resized once and written channels-first once; a
    frame that fills several slots (segments shorter than a frame apart, a loop-padded clip) is then copied."""
    size = (out.shape[3], out.shape[2])
    distinct, first, inverse = np.unique(slots, return_index=True, return_inverse=True)
    if distinct.size == slots.size:  # straight into out, in slot order
        src = frames if np.array_equal(slots, np.arange(frames.shape[0])) else frames[slots]
        return to_planes(np.ascontiguousarray(resize_frames(src, size, backend)), out)
    rows = np.sort(first)  # the slot where each distinct frame first appears: it is written there
    pixels = np.ascontiguousarray(resize_frames(frames[slots[rows]], size, backend))
    runs = np.split(np.arange(rows.size), np.flatnonzero(np.diff(rows) != 1) + 1)
    for run in runs:  # consecutive slots: one channels-first write each
        to_planes(pixels[run[0] : run[-1] + 1], out[rows[run[0]] : rows[run[0]] + run.size])
    source = first[inverse.reshape(-1)]
    for t in np.flatnonzero(
        source != np.arange(source.size)
    ).tolist():  # the repeats: copies of written slots
        out[t] = out[source[t]]
    return out
