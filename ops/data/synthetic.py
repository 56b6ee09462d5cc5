"""Seeded synthetic video dataset in TSM format, built so that both *where* and *when* matter.

Each clip shows a cluttered, slowly panning background with moving textured tiles. Exactly one
tile (the *glyph*, a 24x24 px pattern inside a 2 px white frame) carries the class, and it is on
screen only during a random window of 30-50% of the frames. The class is a (pattern, hue) pair:
the glyph's two colours are a light and a dark shade of one of four hues (red, green, blue,
yellow), drawn as one of three 1-px patterns (horizontal stripes, vertical stripes, checkerboard).
Every 2x2 window of each pattern is half light, half dark, so at glance resolution (half the
frame side or less) the glyph is a flat blob of its mean colour framed in white: the glance can
find *where* and *when* and read the hue, but only a full-resolution focus patch reads the pattern.
With the default 8 classes (2 patterns x 4 hues) the hue alone gives ~50%; the rest needs the focus
network looking at the right place at the right time. (The demo's glance, 64 of 128 px, is at that
half-size bound; at 80 px (0.625x) it read a little of the pattern through resize aliasing: 54-59%.)
Distractor tiles use the same hues (random 2-px noise, coloured frame), so hue alone does not say where the
glyph is. The glyph was 16 px up to version 6; at 24 px the focus network learns the pattern reliably
(README, the demo paragraph).
Measured (tests/test_synthetic.py, 1-nearest-neighbour on colour pixels): full-resolution glyph
crop 100%, 2x-downsampled glyph box ~hue only, 2x-downsampled whole frame near chance.

A horizontal flip keeps every pattern (it only swaps the phase of the vertical stripes), so the
class is flip-invariant: horizontal-flip augmentation is allowed.

Layout under `<root>/synthetic/`: `frames/<video>/img_{:05d}.jpg` (1-based), `train_videofolder.txt`,
`val_videofolder.txt` (`path num_frames label`), `category.txt`, `annotations.json` (per video: label,
visible window, per-frame glyph boxes), `params.json` (the generation parameters, written last),
optionally `videos/<video>.mp4`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

SYNTH_VERSION = 7  # bump whenever rendering or the default sizes change, so old folders get regenerated
PATTERNS = ("checker", "hstripe", "vstripe")  # 1-px patterns: readable only at full resolution
HUES = {  # light shade (RGB) of each hue; the dark shade is DARK times it
    "blue": (90, 140, 255),
    "green": (90, 230, 90),
    "red": (250, 90, 80),
    "yellow": (245, 225, 70),
}
DARK = 0.35
# Class index order == alphabetical order of the names "<pattern>_<hue>": the first 4k classes hold
# k patterns x all 4 hues, so with 8 classes each hue comes in 2 patterns.
CLASSES = tuple(f"{p}_{h}" for p in PATTERNS for h in sorted(HUES))
GLYPH = 24  # glyph pattern side in px
CELL = 1  # pattern cell side in px (stripes of period 2 * CELL)
BORDER = 2  # white frame around the glyph
TEMPLATE = "img_{:05d}.jpg"
FLIP_ALLOWED = True

DEFAULTS = dict(
    num_classes=8,
    videos_per_class_train=120,
    videos_per_class_val=25,
    min_frames=16,
    max_frames=32,
    height=128,
    width=160,
    num_distractors=5,
    num_clutter=30,
    window=(0.3, 0.5),
    seed=0,
    write_videos=False,
    jpeg_quality=90,
    fps=12,
)


def class_names(num_classes: int) -> list[str]:
    """Returns the category names (`<pattern>_<hue>`), index order = alphabetical order."""
    if not 1 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be in 1..{len(CLASSES)}, got {num_classes}")
    return list(CLASSES[:num_classes])


def glyph_mask(label: int, phase: int) -> np.ndarray:
    """Returns the (16, 16) float32 pattern of class `label` in {0, 1} (0 = dark, 1 = light shade);
    `phase` (0/1) shifts the pattern by one pixel."""
    i, j = np.indices((GLYPH, GLYPH)) // CELL
    pattern = CLASSES[label].split("_")[0]
    cells = {"checker": i + j, "hstripe": i, "vstripe": j}[pattern] + phase
    return (cells % 2).astype(np.float32)


def glyph_colours(label: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Returns the (light, dark) uint8 RGB shades of the class's hue, jittered per video."""
    light = np.float32(HUES[CLASSES[label].split("_")[1]]) + rng.uniform(-12, 12, 3)
    return np.clip(light, 0, 255).astype(np.uint8), np.clip(light * DARK, 0, 255).astype(np.uint8)


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A light and a dark colour with a clear luminance gap, so JPEG (4:2:0) keeps the pattern."""
    lum = np.array([0.299, 0.587, 0.114])
    while True:
        a, b = rng.integers(0, 256, size=(2, 3))
        if lum @ a - lum @ b >= 90:
            return a.astype(np.uint8), b.astype(np.uint8)


def _tile(mask: np.ndarray, fg: np.ndarray, bg: np.ndarray, border: np.ndarray) -> np.ndarray:
    """Returns a (S+2B, S+2B, 3) uint8 tile: `mask` (S, S) in [0, 1] blends bg..fg, inside a border."""
    tile = np.empty((mask.shape[0] + 2 * BORDER, mask.shape[1] + 2 * BORDER, 3), np.uint8)
    tile[:] = border
    m = mask[..., None].astype(np.float32)
    tile[BORDER:-BORDER, BORDER:-BORDER] = np.round(m * fg + (1 - m) * bg).astype(np.uint8)
    return tile


def _bounce(start: float, velocity: float, lo: float, hi: float, n: int) -> np.ndarray:
    """Returns (n,) int positions moving at constant speed and reflecting at [lo, hi]."""
    span = max(hi - lo, 1e-6)
    s = (start - lo + velocity * np.arange(n)) % (2 * span)
    return np.round(lo + np.where(s > span, 2 * span - s, s)).astype(int)


def _track(rng: np.random.Generator, n: int, box: tuple[int, int, int, int], speed: tuple[float, float]):
    """Returns (ys, xs) int arrays (n,) of a smooth bouncing path inside box (y0, x0, y1, x1)."""
    y0, x0, y1, x1 = box
    ang = rng.uniform(0, 2 * np.pi)
    v = rng.uniform(*speed)
    ys = _bounce(rng.uniform(y0, y1), v * np.sin(ang), y0, y1, n)
    xs = _bounce(rng.uniform(x0, x1), v * np.cos(ang), x0, x1, n)
    return ys, xs


def _canvas(rng: np.random.Generator, h: int, w: int, num_clutter: int) -> np.ndarray:
    """Returns a (h, w, 3) uint8 background: smooth colour field plus textured clutter patches."""
    coarse = rng.integers(40, 216, size=(max(h // 24, 2), max(w // 24, 2), 3)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(field, 0, 255).astype(np.uint8)
    for _ in range(num_clutter):  # same colours and sizes as the tiles, but no glyph frame
        s = int(rng.integers(8, 22))
        y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
        fg, bg = _two_colours(rng)
        if rng.random() < 0.5:
            img[y : y + s, x : x + s] = fg
        else:
            cells = np.kron(rng.random((s // 4 + 1,) * 2) < 0.5, np.ones((4, 4), bool))[:s, :s]
            img[y : y + s, x : x + s] = np.where(cells[..., None], fg, bg)
    return img


def _paste(frame: np.ndarray, tile: np.ndarray, y: int, x: int) -> None:
    """Pastes `tile` with top-left (y, x) into frame, clipped at the frame border."""
    h, w = frame.shape[:2]
    th, tw = tile.shape[:2]
    ya, xa, yb, xb = max(y, 0), max(x, 0), min(y + th, h), min(x + tw, w)
    if ya < yb and xa < xb:
        frame[ya:yb, xa:xb] = tile[ya - y : yb - y, xa - x : xb - x]


def render_video(
    label: int,
    rng: np.random.Generator,
    *,
    num_frames: int,
    height: int,
    width: int,
    num_distractors: int,
    num_clutter: int,
    window: tuple[float, float],
):
    """Returns (frames (T, H, W, 3) uint8 RGB, info dict with 'window' [start, end) 0-based, 'boxes'
    list of [x, y, w, h] of the framed glyph or None per frame)."""
    n, h, w = num_frames, height, width
    margin = 24
    canvas = _canvas(rng, h + 2 * margin, w + 2 * margin, num_clutter)
    cam_y, cam_x = _track(rng, n, (0, 0, 2 * margin, 2 * margin), (0.3, 1.0))
    side = GLYPH + 2 * BORDER
    # keep the glyph inside the centre crop of side 0.875*min(H, W) (the eval crop 112 of 128)
    crop = int(0.875 * min(h, w))
    cy0, cx0 = (h - crop) // 2, (w - crop) // 2
    gy, gx = _track(rng, n, (cy0, cx0, cy0 + crop - side, cx0 + crop - side), (0.7, 2.0))
    length = max(1, int(round(rng.uniform(*window) * n)))
    start = int(rng.integers(0, n - length + 1))
    glyph = _tile(
        glyph_mask(label, int(rng.integers(0, 2))), *glyph_colours(label, rng), np.uint8([255, 255, 255])
    )
    distractors = []
    for _ in range(num_distractors):  # same size and hues as glyphs, 2-px noise pattern, non-white frame
        s = int(rng.integers(GLYPH - 4, GLYPH + 5) // 2 * 2)
        mask = np.kron(rng.random((s // 2,) * 2) < 0.5, np.ones((2, 2), bool))
        border = rng.integers(60, 200, size=3).astype(np.uint8)
        tile = _tile(mask, *glyph_colours(int(rng.integers(len(CLASSES))), rng), border)
        path = _track(rng, n, (-4, -4, h - s, w - s), (0.5, 2.5))
        distractors.append((tile, path))
    frames = np.empty((n, h, w, 3), np.uint8)
    boxes = []
    for t in range(n):
        frame = frames[t]
        frame[:] = canvas[cam_y[t] : cam_y[t] + h, cam_x[t] : cam_x[t] + w]
        for tile, (ys, xs) in distractors:
            _paste(frame, tile, int(ys[t]), int(xs[t]))
        if start <= t < start + length:
            _paste(frame, glyph, int(gy[t]), int(gx[t]))
            boxes.append([int(gx[t]), int(gy[t]), side, side])
        else:
            boxes.append(None)
    return frames, {"window": [start, start + length], "boxes": boxes}


def _write_mp4(path: str, frames: np.ndarray, fps: int) -> None:
    """Writes (T, H, W, 3) uint8 RGB frames as H.264 mp4 (PyAV)."""
    import av  # optional dependency, only needed for write_videos

    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16", "preset": "veryfast"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _params(kw: dict) -> dict:
    unknown = set(kw) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown synthetic parameters: {sorted(unknown)}")
    p = {**DEFAULTS, **kw}
    p["window"] = [float(v) for v in p["window"]]
    if not 0 < p["window"][0] <= p["window"][1] <= 1:
        raise ValueError(f"window must satisfy 0 < lo <= hi <= 1, got {p['window']}")
    if not 1 <= p["min_frames"] <= p["max_frames"]:
        raise ValueError("need 1 <= min_frames <= max_frames")
    if min(p["height"], p["width"]) < 2 * (GLYPH + 2 * BORDER):
        raise ValueError("frames must be at least 40 px on the short side")
    class_names(p["num_classes"])
    return {"version": SYNTH_VERSION, **p}


def _dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _write_split(tmp: str, split: str, split_id: int, per_class: int, params: dict, pool, bar) -> dict:
    """Renders and writes one split; returns {video name: annotation}."""
    labels = np.repeat(np.arange(params["num_classes"]), per_class)
    np.random.default_rng([params["seed"], split_id]).shuffle(labels)
    rows, annotations = [], {}
    quality = [cv2.IMWRITE_JPEG_QUALITY, params["jpeg_quality"]]
    for i, label in enumerate(labels.tolist()):
        # one generator per video: a video's content does not depend on the others
        rng = np.random.default_rng([params["seed"], split_id, i])
        n = int(rng.integers(params["min_frames"], params["max_frames"] + 1))
        frames, info = render_video(
            label,
            rng,
            num_frames=n,
            height=params["height"],
            width=params["width"],
            num_distractors=params["num_distractors"],
            num_clutter=params["num_clutter"],
            window=params["window"],
        )
        name = f"{split}_{i:05d}"
        folder = os.path.join(tmp, "frames", name)
        os.makedirs(folder)
        paths = [os.path.join(folder, TEMPLATE.format(t + 1)) for t in range(n)]
        ok = pool.map(cv2.imwrite, paths, frames[..., ::-1], [quality] * n)  # cv2 encodes without the GIL
        if not all(ok):
            raise OSError(f"cannot write frames to {folder}")
        if params["write_videos"]:
            _write_mp4(os.path.join(tmp, "videos", name + ".mp4"), frames, params["fps"])
        rows.append(f"{name} {n} {label}\n")
        annotations[name] = {"split": split, "label": label, "num_frames": n, **info}
        bar.update(1)
    with open(os.path.join(tmp, f"{split}_videofolder.txt"), "w") as f:
        f.write("".join(rows))
    return annotations


def generate(root: str, *, progress: bool = False, **kw) -> dict:
    """Writes the dataset to `<root>/synthetic/` (replacing an older one made by this module);
    keyword parameters as in DEFAULTS. Returns stats: folder, videos, frames, bytes, seconds, params."""
    from tqdm import tqdm

    params = _params(kw)
    t0 = time.perf_counter()
    final = os.path.join(root, "synthetic")
    if os.path.isdir(final) and os.listdir(final) and _read_params(final) is None:
        raise FileExistsError(f"{final} exists and was not made by ops.data.synthetic; move it away")
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, f".synthetic.tmp-{uuid.uuid4().hex[:8]}")  # renamed into place when complete
    splits = {"train": params["videos_per_class_train"], "val": params["videos_per_class_val"]}
    total = params["num_classes"] * sum(splits.values())
    try:
        os.makedirs(os.path.join(tmp, "frames"))
        if params["write_videos"]:
            os.makedirs(os.path.join(tmp, "videos"))
        with open(os.path.join(tmp, "category.txt"), "w") as f:
            f.write("".join(c + "\n" for c in class_names(params["num_classes"])))
        annotations = {}
        with (
            ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool,
            tqdm(total=total, desc="synthetic", unit="video", disable=not progress) as bar,
        ):
            for split_id, (split, per_class) in enumerate(splits.items()):
                annotations.update(_write_split(tmp, split, split_id, per_class, params, pool, bar))
        with open(os.path.join(tmp, "annotations.json"), "w") as f:
            json.dump(annotations, f)
        with open(os.path.join(tmp, "params.json"), "w") as f:  # last: marks a complete dataset
            json.dump(params, f, indent=1)
        if _read_params(final) == params:  # another process finished the same dataset meanwhile
            shutil.rmtree(tmp)
        else:
            if os.path.exists(final):
                shutil.rmtree(final)
            try:
                os.rename(tmp, final)
            except OSError:  # a concurrent generate() renamed its copy first
                if _read_params(final) != params:
                    raise
                shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "folder": final,
        "videos": total,
        "frames": sum(a["num_frames"] for a in annotations.values()),
        "bytes": _dir_size(final),
        "seconds": time.perf_counter() - t0,
        "params": params,
    }


def _read_params(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, "params.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_current(folder: str, **kw) -> bool:
    """Returns whether `folder` holds a complete dataset generated with these parameters."""
    return _read_params(folder) == _params(kw)


# The tiny dataset of the tests and the fault check: 3 classes, 12 training and 9 validation videos of 64x80 frames.
TINY_DATASET = dict(
    num_classes=3,
    videos_per_class_train=4,
    videos_per_class_val=3,
    min_frames=10,
    max_frames=14,
    height=64,
    width=80,
    num_clutter=5,
    num_distractors=2,
)


def ensure_synthetic(root: str, progress: bool = False, **kw) -> str:
    """Returns `<root>/synthetic`, generating it first when missing or made with other parameters."""
    folder = os.path.join(root, "synthetic")
    if not is_current(folder, **kw):
        generate(root, progress=progress, **kw)
    return folder


def ensure_current(root: str, progress: bool = False) -> str:
    """Returns `<root>/synthetic` for training: a dataset of this version is used as it is (any size); a
    missing one, or one made by an older version of this module (whose sizes were tuned for its rendering),
    is generated with the current defaults."""
    folder = os.path.join(root, "synthetic")
    params = _read_params(folder)
    if params is None or params.get("version") != SYNTH_VERSION:
        if params is not None:
            print(
                f"{folder} was made by synthetic data version {params.get('version')}: regenerating (version "
                f"{SYNTH_VERSION}, default parameters)"
            )
        generate(root, progress=progress)
    return folder
