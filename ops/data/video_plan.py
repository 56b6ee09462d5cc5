"""Where a read of a video file may seek: found once per file by checking seeks against decoding from the start.

Frame k of a video is the k-th frame that decoding the file from its start gives: what scripts/vid2img.py
extracts and what list files count. Seeking gets there faster, but timestamps and keyframe flags place frames
exactly only where the file and the decoder agree, and real files break that in several ways: MPEG-4 Part 2
AVIs with packed B-frames (DivX/Xvid, as UCF101 and HMDB51 ship: a P-frame and the next B-frame in one chunk,
then a placeholder N-VOP) give frames the timestamps of other frames, and the B-frames right after a seek to
their keyframe decode differently; an N-VOP standing for a dropped frame gives no frame at all, so every later
timestamp is one off; an AVI index may flag frames as keyframes that are not; after a seek into an open GOP
the decoder first outputs broken leading frames.

So no timestamp is trusted before it is checked. The first read of a file decodes it from its start once,
recording each frame's pts, keyframe flag and a CRC of its first plane. Then it seeks to the keyframes the
demuxer lists (at most MAX_SEEK_POINTS, evenly spread; by pts, then by dts where keyframes were missed) and
keeps a seek point only where, after the seek, the decoder's first frame equals (pts and CRC) exactly one
recorded frame and, counting on from it, VERIFY_FRAMES frames in a row equal the recorded ones.
The outcome, a VideoPlan (the frame count and a few numbers per seek point), is kept per file (path, size,
mtime) for the life of the process.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from ops.data.errors import FrameReadError

MAX_SEEK_POINTS = 64  # keyframes tried per file, evenly spread (more would only shorten forward decoding)
VERIFY_FRAMES = 8  # frames in a row that must match: a keyframe and up to 7 B-frames before the next P-frame
MAX_LEAD = 32  # frames a decoder may output after a seek before the seek point (open-GOP leading frames)
PLAN_CACHE_BYTES = 64 << 20  # per process; a plan takes a few hundred bytes

Alloc = Callable[[tuple[int, ...]], np.ndarray]


def new_frames(shape: tuple[int, ...]) -> np.ndarray:
    """The default Alloc: a fresh uint8 array."""
    return np.empty(shape, dtype=np.uint8)


def store_rgb(dst: np.ndarray, img: np.ndarray, bgr: bool = False) -> None:
    """Write a frame (H, W, 3), RGB or (`bgr`) the JPEG decoder's BGR, as RGB into `dst`, a slot of what an Alloc
    returned: interleaved, or planes seen as (H, W, 3) (channel stride H*W), written by one cv2.split (a strided
    numpy copy costs ~10x more; from BGR it replaces the colour conversion, for its cost). PyAV's frames have
    padded rows; cv2.split reads those 9x slower than a C-contiguous copy of them (340x256: 0.20 vs 0.022 ms with
    the copy), so they are copied first."""
    if dst.strides[-1] != dst.itemsize and dst.shape == img.shape:
        planes = [dst[..., 0], dst[..., 1], dst[..., 2]]
        cv2.split(np.ascontiguousarray(img), planes[::-1] if bgr else planes)
    elif bgr:
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=dst)
    else:
        dst[...] = img


class SeekPoint(NamedTuple):
    """A verified way into a video: after seeking to `ts`, the decoder outputs `lead` frames to drop, then
    frame `pos` (0-based, counted from the start), whose pts and first-plane CRC are `pts` and `crc`."""

    ts: int
    lead: int
    pos: int
    pts: int | None
    crc: int


@dataclass(frozen=True)
class VideoPlan:
    """What the first read of a video found: how many frames it has and where a read may seek."""

    num_frames: int  # frames that decoding from the start gives
    packets: int  # packets that carry a frame (N-VOPs make this larger than num_frames)
    keyframes: np.ndarray  # (k,) 0-based positions of the frames the decoder flags as keyframes
    points: tuple[SeekPoint, ...]  # verified seek points, ascending pos (the start is always one)
    tried: int  # keyframes after the first that seeks were tried at
    rejected: int  # ... where no seek gave the recorded frames

    def starts(self) -> np.ndarray:
        """Returns (p,) the 0-based frames a read can start decoding at: 0 and every seek point."""
        return np.array([0] + [p.pos for p in self.points], dtype=np.int64)


def open_video(path: str):
    """Returns (container, first video stream) of `path`; raises FrameReadError naming it."""
    import av  # imported lazily: frame-folder users never pay for it

    if not os.path.isfile(path):
        raise FrameReadError(f"video file does not exist: {path}")
    try:
        container = av.open(path)
    except Exception as e:  # PyAV raises several error types for corrupt/unsupported input
        raise FrameReadError(f"cannot open video {path}: {e}") from e
    if not container.streams.video:
        container.close()
        raise FrameReadError(f"no video stream in {path}")
    return container, container.streams.video[0]


def frame_crc(frame) -> int:
    """Returns the CRC-32 of the visible bytes of a decoded frame's first plane (luma, or all of a packed
    format): cheap, and equal for equal decoder output."""
    plane, fmt = frame.planes[0], frame.format
    if fmt.is_planar:
        row = plane.width * (2 if fmt.components[0].bits > 8 else 1)
    else:
        row = -(-plane.width * fmt.padded_bits_per_pixel // 8)
    line = plane.line_size
    if line <= 0 or row > line:  # an unusual layout: hash a conversion instead
        return zlib.crc32(frame.to_ndarray(format="gray"))
    data = np.frombuffer(plane, dtype=np.uint8)[: line * plane.height].reshape(plane.height, line)
    return zlib.crc32(data if row == line else np.ascontiguousarray(data[:, :row]))


class _Record:
    """Per-frame facts of decoding a file from its start, and the (pts, dts) of its keyframe packets after
    the first packet."""

    def __init__(self) -> None:
        self.pts: list[int | None] = []
        self.key: list[bool] = []
        self.crc: list[int] = []
        self.key_ts: list[tuple[int | None, int | None]] = []
        self.packets = 0

    def packet(self, packet) -> None:
        if packet.size and not packet.is_discard:
            self.packets += 1
            if packet.is_keyframe and self.packets > 1 and (packet.pts, packet.dts) != (None, None):
                self.key_ts.append((packet.pts, packet.dts))

    def frame(self, frame) -> None:
        self.pts.append(frame.pts)
        self.key.append(bool(frame.key_frame))
        self.crc.append(frame_crc(frame))


def decode_from_start(container, stream, targets: list[int], alloc: Alloc, record: _Record | None = None):
    """Decodes from the start, keeping frames at the 0-based positions `targets` (ascending, distinct);
    with `record`, decodes to the end and records every frame. Returns (uint8 RGB frames (len(targets), H, W,
    3) or None if none was found, how many targets were found, frames decoded, the last frame decoded)."""
    out, filled, count, last = None, 0, 0, None
    for packet in container.demux(stream):
        if record is not None:
            record.packet(packet)
        for frame in packet.decode():
            if record is not None:
                record.frame(frame)
            while filled < len(targets) and targets[filled] == count:
                img = frame.to_ndarray(format="rgb24")
                if out is None:
                    out = alloc((len(targets),) + img.shape)
                store_rgb(out[filled], img)
                filled += 1
            last, count = frame, count + 1
        if record is None and filled == len(targets):
            break
    return out, filled, count, last


def _verify_seek(frames: Iterator, ts: int, rec: _Record, at: dict, span: int) -> SeekPoint | None:
    """Returns the seek point that the decoder output `frames` after a seek to `ts` gives, or None.

    The first output frame must equal (pts and CRC) exactly one recorded frame: that tells where the seek
    landed (a seek that lands on a frame that is not a keyframe gives broken frames). From there output frames
    are counted, and the point is the first of `span` frames in a row equal to the recorded ones (the frames
    right after the keyframe may differ: packed B-frames)."""
    n, outputs, pos, run, first = len(rec.crc), 0, None, 0, None
    try:
        for frame in frames:
            crc = frame_crc(frame)
            if pos is None:  # the first output frame
                found = at.get((frame.pts, crc), ())
                if len(found) != 1:  # a broken frame (not a keyframe after all), or not known uniquely
                    return None
                pos = found[0]
            else:
                pos += 1
            if frame.pts == rec.pts[pos] and crc == rec.crc[pos]:
                first = first if run else SeekPoint(int(ts), outputs, pos, frame.pts, crc)
                run += 1
                if run == span or pos == n - 1:
                    return first
            else:
                run = 0
            outputs += 1
            if outputs > MAX_LEAD + span or pos == n - 1:
                return None
    except Exception:  # a decoder error after a seek: not a way in
        return None
    return None


def _seek_points(container, stream, rec: _Record) -> tuple[tuple[SeekPoint, ...], int, int]:
    """Returns (verified seek points ascending, keyframes tried, keyframes rejected) for the recorded file.

    Each keyframe is sought by its pts; then, if some keyframe no seek reached, by the dts of the others."""
    keys = list(dict.fromkeys(rec.key_ts))
    if len(keys) > MAX_SEEK_POINTS:
        keys = [keys[i] for i in np.linspace(0, len(keys) - 1, MAX_SEEK_POINTS).round().astype(int)]
    at: dict[tuple, list[int]] = {}
    for pos, key in enumerate(zip(rec.pts, rec.crc)):
        at.setdefault(key, []).append(pos)
    span = max(1, min(VERIFY_FRAMES, len(rec.crc) // max(1, len(keys))))  # bounds the work on short GOPs
    points: dict[int, SeekPoint] = {}
    reached = [False] * len(keys)

    def attempt(i: int, ts: int | None) -> None:
        if ts is None:
            return
        try:
            container.seek(int(ts), stream=stream, backward=True, any_frame=False)
        except Exception:  # the demuxer cannot seek there: not a way in
            return
        point = _verify_seek(container.decode(stream), ts, rec, at, span)
        if point is not None:
            reached[i] = True
            if point.pos > 0:  # a seek landing on the first frame is no better than the start
                points.setdefault(point.pos, point)

    for i, (pts, _) in enumerate(keys):
        attempt(i, pts)
    key_pos = np.flatnonzero(rec.key).tolist()
    spans = list(zip(key_pos[1:], key_pos[2:] + [len(rec.crc)]))  # a keyframe is reached by a point before
    for i, (pts, dts) in enumerate(keys):  # the next one
        if all(any(a <= p < b for p in points) for a, b in spans):
            break
        if dts != pts:
            attempt(i, dts)
    return tuple(points[p] for p in sorted(points)), len(keys), reached.count(False)


def probe(path: str, targets: list[int], alloc: Alloc):
    """Decodes `path` from its start (keeping the frames at the 0-based `targets`), then verifies its seek
    points. Returns (VideoPlan, kept frames or None, how many targets were found, the last frame decoded)."""
    container, stream = open_video(path)
    rec = _Record()
    try:
        out, filled, count, last = decode_from_start(container, stream, targets, alloc, rec)
        if count == 0:
            raise FrameReadError(f"video {path} has no decodable frame")
        points, tried, rejected = _seek_points(container, stream, rec)
    except FrameReadError:
        raise
    except Exception as e:
        raise FrameReadError(f"corrupt video {path}: {e}") from e
    finally:
        container.close()
    keyframes = np.flatnonzero(rec.key).astype(np.int32)
    return VideoPlan(count, rec.packets, keyframes, points, tried, rejected), out, filled, last


class PlanCache:
    """VideoPlans by (absolute path, size, mtime); the least recently used dropped beyond `budget` bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._plans: OrderedDict[tuple, tuple[VideoPlan, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(path: str) -> tuple:
        """Returns the cache key of `path`; raises FrameReadError when it does not exist."""
        try:
            st = os.stat(path)
        except OSError:
            raise FrameReadError(f"video file does not exist: {path}") from None
        return os.path.abspath(path), st.st_size, st.st_mtime_ns

    def get(self, key: tuple) -> VideoPlan | None:
        with self._lock:
            hit = self._plans.get(key)
            if hit is None:
                return None
            self._plans.move_to_end(key)
            return hit[0]

    def put(self, key: tuple, plan: VideoPlan) -> None:
        size = 400 + 200 * len(plan.points) + plan.keyframes.nbytes + len(key[0])
        with self._lock:
            old = self._plans.pop(key, None)
            self._bytes += size - (old[1] if old else 0)
            self._plans[key] = (plan, size)
            while self._bytes > self.budget and len(self._plans) > 1:
                self._bytes -= self._plans.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self._bytes = 0


PLANS = PlanCache(PLAN_CACHE_BYTES)  # per process: each DataLoader worker probes the files it reads


def video_plan(path: str) -> VideoPlan:
    """Returns the VideoPlan of `path`: remembered, or found by decoding it once (see the module docstring)."""
    key = PLANS.key(path)
    plan = PLANS.get(key)
    if plan is None:
        plan = probe(path, [], np.empty)[0]
        PLANS.put(key, plan)
    return plan


def forget_video_plans() -> None:
    """Drops every remembered VideoPlan (the next read of each file probes it again)."""
    PLANS.clear()
