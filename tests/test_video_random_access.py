"""Random-access reads equal decoding from the start on videos as real datasets ship them: DivX/Xvid packed
B-frames with N-VOP placeholders (UCF101, HMDB51), N-VOPs for dropped frames, open GOPs and variable frame
rates, in AVI, MP4 and MKV; each file's seek points are found once and remembered."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest

from ops.data import video_decode
from ops.data.video_io import FrameReadError, read_frames
from ops.data.video_plan import PLANS, forget_video_plans, video_plan
from tests.video_samples import clip, write_h264, write_nvop, write_packed

N, H, W = 20, 48, 64
OPEN_GOP = "keyint=10:min-keyint=10:open-gop=1:bframes=3:b-pyramid=normal:scenecut=0"
VFR = [1, 1, 3, 1, 2]  # frame durations in 1/25 s, cycled
# name -> (writer, frames decoding gives, packets, decoder keyframes, verified seek starts after 0)
CASES = {
    "packed.avi": (write_packed, N, N, [0, 9, 15], [12, 18]),
    "packed.mkv": (write_packed, N, N, [0, 9, 15], [12, 18]),
    "packed.mp4": (write_packed, N, N, [0, 9, 15], [12, 18]),
    "nvop.avi": (lambda p, f: write_nvop(p, f, (4, 11)), N, N + 2, [0, 8, 16], [8, 16]),
    "nvop.mkv": (lambda p, f: write_nvop(p, f, (4, 11)), N, N + 2, [0, 8, 16], [8, 16]),
    "opengop.avi": (lambda p, f: write_h264(p, f, OPEN_GOP), N, N, [0, 10], [10]),
    "opengop.mp4": (lambda p, f: write_h264(p, f, OPEN_GOP), N, N, [0, 10], [10]),
    "opengop-vfr.mkv": (lambda p, f: write_h264(p, f, OPEN_GOP, VFR), N, N, [0, 10], [10]),
    "vfr.mp4": (
        lambda p, f: write_h264(p, f, "keyint=6:bframes=2:scenecut=0", VFR),
        N,
        N,
        [0, 6, 12, 18],
        [6, 12, 18],
    ),
    "vfr.avi": (
        lambda p, f: write_h264(p, f, "keyint=6:bframes=2:scenecut=0", VFR),
        N,
        N,
        [0, 6, 12, 18],
        [6, 12, 18],
    ),
}
CLIPS = [
    [17, 3, 3, 20, 1, 9, 2],
    [1, 3],
    [10, 11, 12, 13],
    [13, 19],
    [20, 11, 12, 13, 16],
    [4, 7, 10, 13, 16, 19],
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_like")
    frames = clip(N, H, W)
    for name, (write, *_) in CASES.items():
        write(str(root / name), frames)
    return frames, root


def _decode_all(path: str) -> np.ndarray:
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


@pytest.mark.parametrize("name", list(CASES))
def test_random_access_equals_sequential_decoding(videos, name):
    frames, root = videos
    path = str(root / name)
    _, n, packets, keyframes, starts = CASES[name]
    reference = _decode_all(path)
    assert len(reference) == n
    # each decoded frame is the source frame of its number (lossy: the nearest), so the reference is sound
    err = np.abs(reference[:, None].astype(np.int16) - frames[None].astype(np.int16)).mean(axis=(2, 3, 4))
    assert err.argmin(axis=1).tolist() == list(range(N))
    forget_video_plans()
    first = read_frames(path, CLIPS[0])  # the first read decodes from the start and finds the seek points
    np.testing.assert_array_equal(first, reference[np.array(CLIPS[0]) - 1])
    plan = video_plan(path)
    assert (plan.num_frames, plan.packets, plan.keyframes.tolist()) == (n, packets, keyframes)
    assert plan.starts().tolist() == [0] + starts and plan.rejected == 0
    if name.startswith("packed"):  # after a seek to keyframe 9 (15) the two B-frames after it decode unlike
        assert [p.lead for p in plan.points] == [3, 3]  # from the start: reads enter at the P-frame 12 (18)
    for t in range(1, n + 1):  # every frame on its own: each seeks to the verified point before it
        np.testing.assert_array_equal(
            read_frames(path, [t])[0], reference[t - 1], err_msg=f"{name} frame {t}"
        )
    for numbers in CLIPS + [list(range(n, 0, -1))]:
        np.testing.assert_array_equal(read_frames(path, numbers), reference[np.array(numbers) - 1])
    subs = []
    np.testing.assert_array_equal(read_frames(path, [n + 3, 12], subs), reference[[n - 1, 11]])
    assert subs == [(n + 3, n)]
    with pytest.raises(FrameReadError, match=f"{name} has {n} frames, frame {n + 1} requested"):
        read_frames(path, [n + 1])
    assert video_plan(path) is plan  # every read landed where verified: the plan was kept as it was


def test_what_misleads_timestamp_seeking(videos):
    """The conditions the reader must not trust: in the packed file the decoder labels frames with other
    frames' timestamps, and N-VOPs hold chunks (with timestamps) that decode to no frame."""
    _, root = videos
    with av.open(str(root / "packed.avi")) as c:
        pts = [f.pts for f in c.decode(c.streams.video[0])]
    assert pts[:7] == [1, 2, 4, 3, 5, 7, 6]  # frames 3 and 4 (and 6, 7, ...) carry each other's timestamps
    with av.open(str(root / "nvop.avi")) as c:
        stream = c.streams.video[0]
        chunk_ts = [p.pts for p in c.demux(stream) if p.size]
    assert len(chunk_ts) == N + 2 and video_plan(str(root / "nvop.avi")).num_frames == N


def test_plan_found_once_per_file_and_redone_when_it_changes(videos, tmp_path, monkeypatch):
    frames, _ = videos
    path = str(tmp_path / "v.avi")
    write_packed(path, frames)
    probes = []
    real_probe = video_decode.probe
    monkeypatch.setattr(video_decode, "probe", lambda *a: probes.append(a[0]) or real_probe(*a))
    reference = _decode_all(path)
    for numbers in CLIPS:
        np.testing.assert_array_equal(read_frames(path, numbers), reference[np.array(numbers) - 1])
    assert probes == [path]  # decided once, remembered for the later reads
    write_nvop(path, frames[:12], (3,))  # the file changes (size and mtime): its plan is found again
    os.utime(path, ns=(1, 1))
    np.testing.assert_array_equal(read_frames(path, [2, 11, 12]), _decode_all(path)[[1, 10, 11]])
    assert probes == [path, path] and video_plan(path).num_frames == 12


def test_seek_point_that_no_longer_matches_falls_back_to_decoding_from_the_start(videos, tmp_path):
    frames, _ = videos
    path = str(tmp_path / "v.mp4")
    write_h264(path, frames, "keyint=5:bframes=2:scenecut=0")
    reference = _decode_all(path)
    plan = video_plan(path)
    assert plan.starts().tolist() == [0, 5, 10, 15]
    key = PLANS.key(path)
    broken = plan.points[1]._replace(crc=plan.points[1].crc ^ 1)  # as if decoding after the seek had changed
    PLANS.put(key, type(plan)(**{**plan.__dict__, "points": (plan.points[0], broken, plan.points[2])}))
    np.testing.assert_array_equal(read_frames(path, [3, 12, 13]), reference[[2, 11, 12]])
    assert PLANS.get(key).points == ()  # remembered: this file is now read from its start
    np.testing.assert_array_equal(read_frames(path, [19, 6]), reference[[18, 5]])
