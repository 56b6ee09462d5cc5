"""Pictures of a prediction: which frames a model glanced at, which it selected, and where it looked.

`decision_picture` lays out the model's own input frames (the evaluation view, S x S, enlarged to at least
`MIN_TILE` px by an integer factor) under a header (video, predicted class, GFLOPs, exit): a row of glance
frames, then the selected frames with the focus region outlined; a model without policies shows the frames it
saw. `annotated_video` draws the same decisions onto the whole video (MP4), the boxes mapped back to the
video's own pixels. Both take what a model's `decisions()` returns (models/core/interface.py), one video at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from ops.data.transforms import center_view_map
from ops.data.video_io import video_frames

BOX = (0, 255, 0)  # focus-region outline (RGB)
BOX_WIDTH = 2  # px, drawn inside the region's edge
TEXT, BACKGROUND, DIM = (255, 255, 255), (32, 32, 32), (170, 170, 170)
MARGIN, GAP, LINE, CAPTION = 10, 6, 22, 16  # px: border, between tiles, a text line, the label under a tile
PER_ROW = 8  # tiles per row before wrapping
MIN_TILE = 128  # tiles are enlarged (nearest neighbour, whole factors) to at least this side
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Picture:
    """The picture (H, W, 3) uint8 RGB and where its tiles are: `tiles[row]` = top-left (x, y) of each tile of
    that row ('glance', 'selected' or 'frames'), each `tile` px square showing an S-frame `zoom` times."""

    image: np.ndarray
    tiles: dict[str, list[tuple[int, int]]]
    tile: int
    zoom: int


def box_corners(region: np.ndarray, zoom: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Returns the outline's inclusive pixel corners (x0, y0, x1, y1) in an image of width x height px for a
    region [x, y, w, h] given in pixels `zoom` times smaller (rounded to the nearest pixel, clipped)."""
    x, y, w, h = (float(v) * zoom for v in region)
    x0, x1 = (min(max(v, 0), width - 1) for v in (round(x), round(x + w) - 1))
    y0, y1 = (min(max(v, 0), height - 1) for v in (round(y), round(y + h) - 1))
    return int(x0), int(y0), int(x1), int(y1)


def draw_box(img: np.ndarray, corners: tuple[int, int, int, int], width: int = BOX_WIDTH, colour=BOX) -> None:
    """Draws the outline of the inclusive box `corners` (x0, y0, x1, y1) into `img` (H, W, 3), `width` px thick
    inward, in place."""
    x0, y0, x1, y1 = corners
    w = max(1, min(width, (x1 - x0 + 1 + 1) // 2, (y1 - y0 + 1 + 1) // 2))
    img[y0 : y0 + w, x0 : x1 + 1] = colour
    img[y1 - w + 1 : y1 + 1, x0 : x1 + 1] = colour
    img[y0 : y1 + 1, x0 : x0 + w] = colour
    img[y0 : y1 + 1, x1 - w + 1 : x1 + 1] = colour


def _text(img: np.ndarray, text: str, x: int, y: int, colour=TEXT, scale: float = 0.5) -> None:
    cv2.putText(img, text, (x, y), FONT, scale, colour, 1, cv2.LINE_AA)


def _text_width(text: str, scale: float = 0.5) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


def decision_picture(
    frames: np.ndarray,
    numbers: np.ndarray,
    decisions: dict | None,
    header: list[str],
) -> Picture:
    """Returns the Picture of one video's prediction.

    frames (T, S, S, 3) uint8 RGB: the model's input x[b] in display layout; numbers (T,): their 1-based
    frame numbers in the video (shown under each tile). decisions: one video's `glance` (T_g,), `selected`
    (K,) positions among the T frames and `regions` (K, 4) [x, y, w, h] in S-frame pixels, as numpy; None:
    all T frames in one row, no box.
    """
    s = frames.shape[1]
    zoom = max(1, -(-MIN_TILE // s))
    side = s * zoom
    if decisions is None:
        rows = [(f"the {len(frames)} frames the model saw", "frames", list(range(len(frames))), None)]
    else:
        glance, selected = decisions["glance"].tolist(), decisions["selected"].tolist()
        regions = np.asarray(decisions["regions"], dtype=np.float64)
        rows = [
            (f"glance: {len(glance)} frames", "glance", glance, None),
            (f"selected: {len(selected)} frames, focus region outlined", "selected", selected, regions),
        ]
    per_row = min(PER_ROW, max(len(r[2]) for r in rows))
    lines = header + [r[0] for r in rows]
    width = max(2 * MARGIN + per_row * (side + GAP) - GAP, 2 * MARGIN + max(map(_text_width, lines)))
    height = MARGIN + LINE * len(header)
    for _, _, items, _ in rows:
        height += LINE + -(-len(items) // per_row) * (side + CAPTION + GAP)
    height += MARGIN
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BACKGROUND
    y = MARGIN
    for line in header:
        _text(img, line, MARGIN, y + 15)
        y += LINE
    tiles: dict[str, list[tuple[int, int]]] = {}
    for title, name, items, regions in rows:
        _text(img, title, MARGIN, y + 15, DIM)
        y += LINE
        tiles[name] = []
        for j, t in enumerate(items):
            x0 = MARGIN + (j % per_row) * (side + GAP)
            y0 = y + (j // per_row) * (side + CAPTION + GAP)
            tile = img[y0 : y0 + side, x0 : x0 + side]
            tile[:] = np.repeat(np.repeat(frames[t], zoom, axis=0), zoom, axis=1)
            if regions is not None:
                draw_box(tile, box_corners(regions[j], zoom, side, side))
            _text(img, f"#{int(numbers[t])}", x0, y0 + side + CAPTION - 4, DIM, 0.4)
            tiles[name].append((x0, y0))
        y += -(-len(items) // per_row) * (side + CAPTION + GAP)
    return Picture(img, tiles, side, zoom)


def save_png(path: str, image: np.ndarray) -> str:
    """Writes the RGB image (H, W, 3) uint8 as PNG at `path` (folders made); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f"cannot write {path}")
    return path


def annotated_video(
    src: str,
    dst: str,
    numbers: np.ndarray,
    decisions: dict | None,
    label: str,
    view: tuple[int, int],
    hold: float = 0.5,
) -> str:
    """Writes the video `src` as MP4 at `dst` with the model's decisions drawn on its own frames: `label` on
    every frame, glance frames tagged, each selected frame boxed where the model looked (held `hold` seconds,
    so the box can be seen); a model without policies tags the frames it saw. numbers (T,): the input frames'
    1-based numbers; view = (S, scale side) of the evaluation view the regions are given in. Returns `dst`."""
    import av

    fps, frames = video_frames(src)
    s, short_side = view
    glance, boxes = set(), {}
    if decisions is None:
        glance = {int(n) for n in numbers}
    else:
        glance = {int(numbers[t]) for t in decisions["glance"].tolist()}
        for t, region in zip(decisions["selected"].tolist(), np.asarray(decisions["regions"])):
            boxes.setdefault(int(numbers[t]), []).append(region)
    tag = "seen" if decisions is None else "glance"
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with av.open(dst, "w") as out:
        stream = None
        for count, rgb in enumerate(frames, 1):
            h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2  # yuv420p needs even sides
            if stream is None:
                codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
                stream = out.add_stream(codec, rate=round(fps))
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                zoom, shift = center_view_map(rgb.shape[1], rgb.shape[0], s, short_side)
                thick = max(2, round(min(h, w) / 120))
            img = np.ascontiguousarray(rgb[:h, :w])
            repeat = 1
            for region in boxes.get(count, []):
                src_box = (np.float64(region) + shift) / zoom  # the view's pixels -> the video's
                draw_box(img, box_corners(src_box, 1, w, h), thick)
                repeat = max(1, round(hold * fps))
            _text(img, label, 6, 18)
            if count in glance or count in boxes:
                _text(img, f"#{count} " + ("selected" if count in boxes else tag), 6, h - 8)
            for _ in range(repeat):
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)
    return dst
