"""Training augmentations of the TAdaConv recipes, beside the TSM / Efficient-3DCNNs crops of ops.data.transforms:
two more crop boxes and a clip augmentation (RandAugment, random grayscale) applied to the cropped frames.

Crops (`--train_crop`, a box in the frame as read, then resized to S x S like every training crop):
- 'jitter' (TAda2D, `TRAIN_JITTER_SCALES: [224, 340]`): TAdaConv's KineticsResizedCrop, the short side resized to
  L = int(U(224, 340) * S / 224) (the long side int(long / short * L)), then an S x S crop at x = int(U(0, w' - S)),
  y = int(U(0, h' - S)). Here that crop of the resized frame is mapped back to the frame as read (rounded to whole
  pixels) and resized once: the same region up to half a pixel.
- 'rrc' (TAdaConvNeXtV2, `TRAIN_JITTER_SCALES: [0.08, 1.0]`, `RATIO: [0.75, 1.333]`): torchvision's
  RandomResizedCrop, which TAdaConv's RandomResizedCropVideo calls: up to 10 tries of an area fraction U(0.08, 1)
  and a log-uniform aspect ratio in [3/4, 4/3], w = round(sqrt(A r)), h = round(sqrt(A / r)), kept if it fits, at a
  uniform integer offset; else the centre crop of the frame with its aspect ratio clamped to the range.
The flip follows the crop (TAdaConv flips first; both boxes are mirror-symmetric in distribution).

Clip augmentation (`ClipAugment`, in place on the cropped uint8 frames (T, 3, S, S), one draw per clip for every
frame, as TAdaConv's video versions):
- RandAugment (`--randaugment rand-m9-n4-mstd0.5-inc1`, timm's grammar as TAdaConv's auto_augment.py reads it):
  n ops drawn uniformly with replacement from the 15 of `RAND_OPS` (`inc1`: the variants whose strength grows with
  the magnitude), each applied with probability 0.5 at magnitude N(m, mstd) clipped to [0, 10]; geometric ops
  resample bicubically and fill with the normalisation mean in pixels (TAdaConv: round(255 * 0.45) = 115).
- Grayscale (`--grayscale p`, TAdaConvNeXtV2: 0.2): with probability p every frame becomes its ITU-R 601 luma
  0.299 R + 0.587 G + 0.114 B, in all three channels (rounded to whole grey levels; TAdaConv keeps floats).
Random draws come from the loader's generator (the originals use python's and numpy's global ones), in order:
op indices, then per op: apply?, magnitude, sign (ops with a signed argument); then grayscale?.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from ops.data.transforms import TRAIN_CROPS as BASE_CROPS
from ops.data.transforms import Box, train_crop_box

TRAIN_CROPS = BASE_CROPS + ("jitter", "rrc")
JITTER_SHORT_SIDE = (224, 340)  # TAdaConv K400 configs, at a 224 crop
RRC_SCALE, RRC_RATIO = (0.08, 1.0), (0.75, 1.333)  # TAdaConvNeXtV2 configs
_LEVEL_MAX = 10.0


def crop_box(img_w: int, img_h: int, input_size: int, rng: np.random.Generator, mode: str) -> Box:
    """Returns the training crop box of `mode`: 'jitter', 'rrc' (this module) or one of ops.data.transforms."""
    if mode == "jitter":
        return jitter_crop_box(img_w, img_h, input_size, rng)
    if mode == "rrc":
        return resized_crop_box(img_w, img_h, rng)
    return train_crop_box(img_w, img_h, input_size, rng, mode)


def jitter_crop_box(
    img_w: int,
    img_h: int,
    input_size: int,
    rng: np.random.Generator,
    short_side: tuple[float, float] = JITTER_SHORT_SIDE,
) -> Box:
    """Returns TAdaConv's short-side-jitter crop (module docstring) as a box of the frame as read. Draws, in
    order: the short side, x, y (each `rng.uniform`)."""
    lo, hi = (s * input_size / 224 for s in short_side)
    side = int(rng.uniform(lo, hi))
    if img_h < img_w:
        new_w, new_h = int(img_w / img_h * side), side
    else:
        new_w, new_h = side, int(img_h / img_w * side)
    x = int(rng.uniform(0, new_w - input_size))
    y = int(rng.uniform(0, new_h - input_size))
    sx, sy = img_w / new_w, img_h / new_h
    w, h = min(img_w, round(input_size * sx)), min(img_h, round(input_size * sy))
    return Box(min(round(x * sx), img_w - w), min(round(y * sy), img_h - h), w, h)


def resized_crop_box(
    img_w: int,
    img_h: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = RRC_SCALE,
    ratio: tuple[float, float] = RRC_RATIO,
) -> Box:
    """Returns RandomResizedCrop's box (module docstring). Draws per try: area fraction, log aspect ratio, then
    (if it fits) y, x."""
    area = img_w * img_h
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= img_w and 0 < h <= img_h:
            y = int(rng.integers(img_h - h + 1))
            x = int(rng.integers(img_w - w + 1))
            return Box(x, y, w, h)
    in_ratio = img_w / img_h
    if in_ratio < ratio[0]:
        w, h = img_w, round(img_w / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(img_h * ratio[1]), img_h
    else:
        w, h = img_w, img_h
    return Box((img_w - w) // 2, (img_h - h) // 2, w, h)


# ---- RandAugment -------------------------------------------------------------------------------------------
def _affine(img: Image.Image, coeffs: tuple, fill: tuple) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC, fillcolor=fill)


def _solarize_add(img: Image.Image, add: int) -> Image.Image:
    lut = [min(255, i + add) if i < 128 else i for i in range(256)]
    return img.point(lut * 3)


def _enhance(kind: type) -> Callable:
    return lambda img, f, fill: kind(img).enhance(f)


# name -> (op(img, argument, fill), argument of a magnitude m in [0, 10] (None: no argument), signed argument)
_OPS: dict[str, tuple[Callable, Callable | None, bool]] = {
    "AutoContrast": (lambda img, a, fill: ImageOps.autocontrast(img), None, False),
    "Equalize": (lambda img, a, fill: ImageOps.equalize(img), None, False),
    "Invert": (lambda img, a, fill: ImageOps.invert(img), None, False),
    "Rotate": (
        lambda img, a, fill: img.rotate(a, Image.Resampling.BICUBIC, fillcolor=fill),
        lambda m: m / 10 * 30.0,
        True,
    ),
    "Posterize": (
        lambda img, a, fill: img if a >= 8 else ImageOps.posterize(img, a),
        lambda m: int(m / 10 * 4),
        False,
    ),
    "PosterizeIncreasing": (
        lambda img, a, fill: img if a >= 8 else ImageOps.posterize(img, a),
        lambda m: 4 - int(m / 10 * 4),
        False,
    ),
    "Solarize": (lambda img, a, fill: ImageOps.solarize(img, a), lambda m: int(m / 10 * 256), False),
    "SolarizeIncreasing": (
        lambda img, a, fill: ImageOps.solarize(img, a),
        lambda m: 256 - int(m / 10 * 256),
        False,
    ),
    "SolarizeAdd": (lambda img, a, fill: _solarize_add(img, a), lambda m: int(m / 10 * 110), False),
    "ShearX": (lambda img, a, fill: _affine(img, (1, a, 0, 0, 1, 0), fill), lambda m: m / 10 * 0.3, True),
    "ShearY": (lambda img, a, fill: _affine(img, (1, 0, 0, a, 1, 0), fill), lambda m: m / 10 * 0.3, True),
    "TranslateXRel": (
        lambda img, a, fill: _affine(img, (1, 0, a * img.size[0], 0, 1, 0), fill),
        lambda m: m / 10 * 0.45,
        True,
    ),
    "TranslateYRel": (
        lambda img, a, fill: _affine(img, (1, 0, 0, 0, 1, a * img.size[1]), fill),
        lambda m: m / 10 * 0.45,
        True,
    ),
}
for _name, _kind in (
    ("Color", ImageEnhance.Color),
    ("Contrast", ImageEnhance.Contrast),
    ("Brightness", ImageEnhance.Brightness),
    ("Sharpness", ImageEnhance.Sharpness),
):
    # plain: factor m / 10 * 1.8 + 0.1; increasing: max(0.1, 1 +- m / 10 * 0.9) (the sign drawn)
    _OPS[_name] = (_enhance(_kind), lambda m: m / 10 * 1.8 + 0.1, False)
    _OPS[_name + "Increasing"] = (_enhance(_kind), lambda m: m / 10 * 0.9, True)

_ENHANCE_INCREASING = ("ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing")
_BASE = ("AutoContrast", "Equalize", "Invert", "Rotate")
_TAIL = ("ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
RAND_OPS = (
    _BASE + ("Posterize", "Solarize", "SolarizeAdd", "Color", "Contrast", "Brightness", "Sharpness") + _TAIL
)
RAND_OPS_INCREASING = (
    _BASE + ("PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd") + _ENHANCE_INCREASING + _TAIL
)


@dataclass(frozen=True)
class RandAugmentSpec:
    """A parsed `rand-m{M}-n{N}[-mstd{S}][-mmax{X}][-inc{0|1}]` string."""

    magnitude: float = 10.0
    num_ops: int = 2
    magnitude_std: float = 0.0
    magnitude_max: float = _LEVEL_MAX
    ops: tuple[str, ...] = RAND_OPS


def parse_randaugment(spec: str) -> RandAugmentSpec:
    """Returns the RandAugmentSpec of `spec` (e.g. 'rand-m9-n4-mstd0.5-inc1'); raises ValueError naming the part
    it cannot read."""
    parts = spec.split("-")
    if parts[0] != "rand":
        raise ValueError(f"{spec!r}: a RandAugment spec starts with 'rand-' (e.g. rand-m9-n4-mstd0.5-inc1)")
    values: dict = {}
    for part in parts[1:]:
        m = re.fullmatch(r"(mstd|mmax|inc|m|n)(\d+(?:\.\d*)?)", part)
        if m is None:
            raise ValueError(
                f"{spec!r}: cannot read {part!r} (m<int>, n<int>, mstd<float>, mmax<int>, inc<0|1>)"
            )
        key, value = m.groups()
        values[key] = float(value)
    std = values.get("mstd", 0.0)
    return RandAugmentSpec(
        magnitude=values.get("m", _LEVEL_MAX),
        num_ops=int(values.get("n", 2)),
        magnitude_std=math.inf if std > 100 else std,
        magnitude_max=values.get("mmax", _LEVEL_MAX),
        ops=RAND_OPS_INCREASING if values.get("inc", 0) else RAND_OPS,
    )


class ClipAugment:
    """RandAugment then random grayscale on a clip's cropped frames (module docstring); `fill` is the RGB fill of
    the geometric ops."""

    def __init__(
        self, randaugment: str | None, grayscale: float, fill: Sequence[int] = (115, 115, 115)
    ) -> None:
        self.spec = parse_randaugment(randaugment) if randaugment else None
        self.grayscale, self.fill = float(grayscale), tuple(int(v) for v in fill)

    def draw(self, rng: np.random.Generator) -> tuple[list[tuple[str, float | None]], bool]:
        """Returns the clip's RandAugment ops [(name, argument)] (those drawn and applied) and whether it turns
        grey."""
        ops: list[tuple[str, float | None]] = []
        spec = self.spec
        if spec is not None:
            for index in rng.integers(len(spec.ops), size=spec.num_ops).tolist():
                name = spec.ops[index]
                if rng.random() > 0.5:
                    continue
                m = spec.magnitude
                if spec.magnitude_std == math.inf:
                    m = rng.uniform(0, m)
                elif spec.magnitude_std > 0:
                    m = rng.normal(m, spec.magnitude_std)
                m = max(0.0, min(m, spec.magnitude_max))
                _, level, signed = _OPS[name]
                arg = None if level is None else level(m)
                if signed and rng.random() > 0.5:
                    arg = -arg
                if name in _ENHANCE_INCREASING:
                    arg = max(0.1, 1.0 + arg)
                ops.append((name, arg))
        return ops, self.grayscale > 0 and rng.random() < self.grayscale

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augments frames (T, 3, S, S) uint8 in place (one draw for the clip); returns them."""
        ops, grey = self.draw(rng)
        if ops:
            for t in range(frames.shape[0]):
                img = Image.fromarray(np.ascontiguousarray(frames[t].transpose(1, 2, 0)))
                for name, arg in ops:
                    img = _OPS[name][0](img, arg, self.fill)
                frames[t] = np.asarray(img).transpose(2, 0, 1)
        if grey:
            luma = np.tensordot(np.float32([0.299, 0.587, 0.114]), frames.astype(np.float32), axes=([0], [1]))
            frames[:] = np.rint(luma).clip(0, 255).astype(np.uint8)[:, None]
        return frames


def clip_augment(
    randaugment: str | None,
    grayscale: float | None,
    mean: Sequence[float],
    pixel_scale: float,
    bgr: bool = False,
) -> ClipAugment | None:
    """Returns the ClipAugment of the flags (None when neither is on); the fill is the normalisation mean in
    pixels, round(mean * pixel_scale), in RGB order."""
    if randaugment in (None, "", "none") and not grayscale:
        return None
    fill = [min(255, round(m * pixel_scale)) for m in mean]
    spec = None if randaugment in (None, "", "none") else randaugment
    return ClipAugment(spec, grayscale or 0.0, fill[::-1] if bgr else fill)
