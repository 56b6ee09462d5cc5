"""Reading frames of video files (PyAV), exactly the frames that decoding from the start gives.

A read seeks only to the seek points its file's VideoPlan verified (ops.data.video_plan; the first read of a
file finds the plan while it decodes the file from its start) and counts frames forward from there. Each seek
is checked again on the frame it lands on; a mismatch (the file changed, or decoding is not deterministic)
drops the file's seek points and the read is redone from the start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ops.data.errors import FrameReadError
from ops.data.video_plan import (
    PLANS,
    Alloc,
    VideoPlan,
    decode_from_start,
    frame_crc,
    new_frames,
    open_video,
    probe,
    store_rgb,
)


class _PlanMismatch(Exception):
    """A seek point did not give the frame it gave when it was verified."""


@dataclass(frozen=True)
class StreamIndex:
    """What the demuxer tells about a video stream without decoding it."""

    num_frames: int  # packets that carry a frame (decoding may give fewer: see VideoPlan.num_frames)
    keyframes: int  # packets flagged as keyframes


def stream_index(path: str) -> StreamIndex:
    """Returns the StreamIndex of the first video stream of `path` (demuxing only, no decoding)."""
    container, stream = open_video(path)
    count = keys = 0
    try:
        for packet in container.demux(stream):
            if packet.size and not packet.is_discard:
                count += 1
                keys += bool(packet.is_keyframe)
    except Exception as e:
        raise FrameReadError(f"corrupt video {path}: {e}") from e
    finally:
        container.close()
    if not count:
        raise FrameReadError(f"video {path} has no frames")
    return StreamIndex(count, keys)


def video_frames(path: str) -> tuple[float, Iterator[np.ndarray]]:
    """Returns (frames per second, an iterator over every frame of `path` as uint8 RGB (H, W, 3) in
    presentation order, frame 1 first); the file is closed when the iterator ends or is closed."""
    container, stream = open_video(path)
    fps = float(stream.average_rate or stream.guessed_rate or 25)

    def frames() -> Iterator[np.ndarray]:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except Exception as e:
            raise FrameReadError(f"corrupt video {path}: {e}") from e
        finally:
            container.close()

    return fps, frames()


def read_from_start(path: str, unique: np.ndarray) -> np.ndarray:
    """Returns uint8 RGB frames (n, H, W, 3) at the 1-based frame numbers `unique` (ascending, distinct, within
    the video) by decoding `path` from its start: the reference the seeking reads are held to."""
    container, stream = open_video(path)
    try:
        out, filled, count, _ = decode_from_start(container, stream, (unique - 1).tolist(), new_frames)
    except Exception as e:
        raise FrameReadError(f"corrupt video {path}: {e}") from e
    finally:
        container.close()
    if filled < len(unique):
        raise FrameReadError(f"video {path} has {count} frames, frame {int(unique[filled])} requested")
    return out


def seek_plan(targets: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Return (n,) bool: seek before decoding target i (0-based positions, ascending, distinct)?

    `starts` (ascending, first 0) are the positions decoding can start at. Seek for the first target, and
    whenever the start at or before a target lies after the previous target: decoding forward would pass
    through it anyway, so jumping there is never slower. Otherwise decode forward from the previous target.
    """
    start = starts[np.searchsorted(starts, targets, side="right") - 1]
    plan = np.ones(len(targets), dtype=bool)
    plan[1:] = start[1:] > targets[:-1]
    return plan


def _read_planned(path: str, plan: VideoPlan, wanted: np.ndarray, alloc: Alloc, size: int) -> np.ndarray:
    """Frames at the 0-based positions `wanted` (ascending, distinct, < num_frames) written into the first
    slots of a uint8 array (size, H, W, 3)."""
    starts = plan.starts()
    seeks = seek_plan(wanted, starts)
    start_of = np.searchsorted(starts, wanted, side="right") - 1
    container, stream = open_video(path)
    out = None
    try:
        frames, pos, frame = container.decode(stream), -1, None
        for slot, (target, seek, k) in enumerate(zip(wanted.tolist(), seeks.tolist(), start_of.tolist())):
            if seek and k > 0:  # (k == 0 only for the first target: decode from the start as opened)
                p = plan.points[k - 1]
                container.seek(p.ts, stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
                for _ in range(p.lead):
                    next(frames, None)
                frame = next(frames, None)
                if frame is None or frame.pts != p.pts or frame_crc(frame) != p.crc:
                    raise _PlanMismatch
                pos = p.pos
            while pos < target:
                frame = next(frames, None)
                if frame is None:
                    if plan.points:
                        raise _PlanMismatch
                    raise FrameReadError(f"video {path} ended before frame {target + 1} of {plan.num_frames}")
                pos += 1
            img = frame.to_ndarray(format="rgb24")
            if out is None:
                out = alloc((size,) + img.shape)
            store_rgb(out[slot], img)
    except (FrameReadError, _PlanMismatch):
        raise
    except Exception as e:
        raise FrameReadError(f"corrupt video {path}: {e}") from e
    finally:
        container.close()
    return out


def read_video(path: str, unique: np.ndarray, subs: list[tuple[int, int]] | None, alloc: Alloc) -> np.ndarray:
    """Returns uint8 RGB frames (n, H, W, 3) at the 1-based frame numbers `unique` (ascending, distinct) of
    the video `path`, counted as decoding from the start counts them. Frames past the end raise
    FrameReadError, or with a `subs` list are the last frame (each replacement appended as (wanted, used))."""
    key = PLANS.key(path)
    plan = PLANS.get(key)
    targets = (unique - 1).tolist()
    if plan is None:  # the first read of this file decodes it from the start anyway
        plan, out, filled, last = probe(path, targets, alloc)
        PLANS.put(key, plan)
    else:
        filled, last = int(np.searchsorted(unique - 1, plan.num_frames)), None  # targets before the end
        if filled < len(targets) and subs is None:
            raise FrameReadError(
                f"video {path} has {plan.num_frames} frames, frame {targets[filled] + 1} requested"
            )
        wanted = np.unique(np.minimum(unique - 1, plan.num_frames - 1))
        try:
            out = _read_planned(path, plan, wanted, alloc, len(targets))
        except _PlanMismatch:
            plan = replace(plan, points=())
            PLANS.put(key, plan)
            out = _read_planned(path, plan, wanted, alloc, len(targets))
    if filled == len(targets):
        return out
    n = plan.num_frames
    if subs is None:
        raise FrameReadError(f"video {path} has {n} frames, frame {targets[filled] + 1} requested")
    subs.extend((t + 1, n) for t in targets[filled:])
    if last is None:  # a planned read: its last filled slot holds the last frame
        out[len(wanted) :] = out[len(wanted) - 1]
        return out
    img = last.to_ndarray(format="rgb24")
    if out is None:
        out = alloc((len(targets),) + img.shape)
    for slot in range(filled, len(targets)):
        store_rgb(out[slot], img)
    return out
