"""Raw videos of every container the reader searches (.mp4 .avi .mkv .webm .mov) with the codecs users meet
(H.264, MPEG-4 with B-frames, MS-MPEG4, Cinepak, VP8/VP9, FFV1, ProRes), and list paths with or without
their extension (one directory scan, cached)."""

from __future__ import annotations

import os

import av
import cv2
import numpy as np
import pytest
import torch

from ops.data.dataset import VideoDataset
from ops.data.dataset_config import get_dataset_config
from ops.data.video_io import FrameReadError, read_frames, stream_index
from ops.data.video_paths import VIDEO_EXTS, VideoLocator
from ops.data.video_plan import video_plan

N, H, W = 20, 48, 64
GOP6 = [6, 12, 18]
# (file, codec, pixel format, codec options, verified seek points after frame 0 (None: encoder-chosen))
CASES = {
    "mp4-h264-bframes": ("a.mp4", "libx264", "yuv420p", {"bf": "2", "sc_threshold": "0"}, GOP6),
    # Xvid-style AVI: GOP 3 with 2 B-frames, so a keyframe's pts lies past the next keyframe's dts (the
    # demuxer seeks by dts: seeking by pts lands one GOP late, and the keyframe at 3 is found by its dts)
    "avi-mpeg4-bframes": ("b.avi", "mpeg4", "yuv420p", {"bf": "2", "g": "3"}, [3, 6, 9, 12, 15, 18, 19]),
    "avi-msmpeg4": ("c.avi", "msmpeg4", "yuv420p", {}, GOP6),
    "avi-cinepak": ("d.avi", "cinepak", "rgb24", {}, None),
    # H.264 in AVI: timestamps count decoding order only; seeking is still exact, found by checking
    "avi-h264-bframes": ("e.avi", "libx264", "yuv420p", {"bf": "2", "sc_threshold": "0"}, GOP6),
    "mkv-ffv1": ("f.mkv", "ffv1", "bgr0", {}, GOP6),
    "webm-vp9": ("g.webm", "libvpx-vp9", "yuv420p", {}, GOP6),
    "webm-vp8": ("h.webm", "libvpx", "yuv420p", {}, GOP6),
    "mov-prores": ("i.mov", "prores", "yuv422p10le", {}, list(range(1, N))),  # intra only
}
ORDERS = [[17, 3, 3, 20, 1, 9, 2], [1, 3], [2], [20, 11, 12, 13]]


def _clip() -> np.ndarray:
    """(N, H, W, 3) uint8: a blurred noise texture panning 2 px per frame (each frame unlike its neighbours)."""
    tex = np.random.default_rng(3).integers(0, 256, (H, W + 2 * N, 3), dtype=np.uint8)
    tex = cv2.GaussianBlur(tex, (5, 5), 0)
    return np.stack([tex[:, 2 * t : 2 * t + W] for t in range(N)])


def write_video(path: str, frames: np.ndarray, codec: str, pix_fmt: str, options: dict, gop: int = 6) -> None:
    """Writes RGB frames (T, H, W, 3) with PyAV."""
    with av.open(path, "w") as c:
        s = c.add_stream(codec, rate=25, options=options)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        s.codec_context.gop_size = int(options.get("g", gop))
        if codec == "mpeg4":
            s.codec_context.max_b_frames = 2
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("containers")
    frames = _clip()
    for name, codec, pix, opts, _ in CASES.values():
        write_video(str(root / name), frames, codec, pix, opts)
    return frames, root


def _decode_all(path: str) -> np.ndarray:
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


@pytest.mark.parametrize("case", list(CASES))
def test_every_container_reads_the_requested_frames(videos, case):
    frames, root = videos
    name, codec, _, _, points = CASES[case]
    path = str(root / name)
    assert stream_index(path).num_frames == N
    plan = video_plan(path)
    assert plan.num_frames == N and plan.rejected == 0
    if points is not None:
        assert plan.starts().tolist() == [0] + points
    reference = _decode_all(path)  # the decoder's own output, in presentation order
    assert len(reference) == N
    for t in range(1, N + 1):  # each frame on its own (seeks to the verified point before it)
        np.testing.assert_array_equal(
            read_frames(path, [t])[0], reference[t - 1], err_msg=f"{case} frame {t}"
        )
    for numbers in ORDERS:
        got = read_frames(path, numbers)
        np.testing.assert_array_equal(got, reference[np.array(numbers) - 1])
        # ... and each returned frame is the source frame asked for, not a neighbour (lossy codecs: nearest)
        err = np.abs(got[:, None].astype(np.int16) - frames[None].astype(np.int16)).mean(axis=(2, 3, 4))
        assert err.argmin(axis=1).tolist() == [n - 1 for n in numbers], case
    if codec == "ffv1":
        np.testing.assert_array_equal(read_frames(path, list(range(1, N + 1))), frames)
    subs = []
    assert np.array_equal(read_frames(path, [N + 2, 1], subs), reference[[N - 1, 0]])
    assert subs == [(N + 2, N)]
    with pytest.raises(FrameReadError, match=name):
        read_frames(path, [N + 1])


def _locator_tree(root) -> None:
    for rel in ("a/x.avi", "a/y.MKV", "a/both.mov", "a/both.mp4", "a/dotted.v2.webm", "c.mp4", "a/notes.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def test_list_paths_with_and_without_extension(tmp_path, monkeypatch):
    _locator_tree(tmp_path)
    scans = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: scans.append(p) or real_scandir(p))
    loc = VideoLocator(str(tmp_path))
    found = {p: loc.find(p) for p in ("a/x", "a/y", "a/both", "a/dotted.v2", "c", "a/x.avi", "a/zz.mkv")}
    assert found == {
        "a/x": str(tmp_path / "a/x.avi"),
        "a/y": str(tmp_path / "a/y.MKV"),  # extension case ignored, the file's own name kept
        "a/both": str(tmp_path / "a/both.mp4"),  # .mp4 comes first in VIDEO_EXTS
        "a/dotted.v2": str(tmp_path / "a/dotted.v2.webm"),
        "c": str(tmp_path / "c.mp4"),
        "a/x.avi": str(tmp_path / "a/x.avi"),  # a path with its extension is taken as it is
        "a/zz.mkv": str(tmp_path / "a/zz.mkv"),  # (missing: the reader names it)
    }
    for _ in range(3):  # later look-ups (every epoch) use the cached listings
        loc.find("a/x")
        loc.find("c")
    assert sorted(scans) == sorted([str(tmp_path / "a"), str(tmp_path)])
    with pytest.raises(FrameReadError) as err:
        loc.find("a/notes")
    tried = [str(tmp_path / f"a/notes{e}") for e in VIDEO_EXTS]
    assert f"tried {', '.join(tried)}" in str(err.value) and "--video_ext" in str(err.value)
    with pytest.raises(FrameReadError, match="folder .*/nodir does not exist"):
        loc.find("nodir/v")
    forced = VideoLocator(str(tmp_path), "avi")
    assert forced.find("a/both") == str(tmp_path / "a/both.avi") and forced.find("a/x.avi").endswith("x.avi")


def test_dataset_reads_videos_of_any_container_as_their_frame_folders(data_root, tmp_path):
    """Lossless videos (.mkv, .avi, .mov) of the synthetic frame folders give the same items as the folders,
    with list paths with and without their extension; a missing video names what was tried."""
    cfg = get_dataset_config("synthetic", data_root)
    folders = VideoDataset(cfg, "val", num_glance=2, num_candidates=4, input_size=48)
    videos, rows = tmp_path / "videos", []
    lossless = ((".mkv", "ffv1", "bgr0"), (".avi", "ffv1", "bgr0"), (".mov", "png", "rgb24"))
    for k, (record, (ext, codec, pix)) in enumerate(zip(folders.records[:3], lossless)):
        frames = read_frames(folders.source(record), range(1, record.num_frames + 1))
        (videos / os.path.dirname(record.path)).mkdir(parents=True, exist_ok=True)
        write_video(str(videos / (record.path + ext)), frames, codec, pix, {})
        path = record.path + ext if k == 1 else record.path
        rows.append(f"{path} {record.num_frames} {record.labels[0]}\n")
    rows.append("missing_video 12 0\n")
    (tmp_path / "list.txt").write_text("".join(rows))
    ds = VideoDataset(
        cfg,
        "val",
        num_glance=2,
        num_candidates=4,
        input_size=48,
        list_file=str(tmp_path / "list.txt"),
        video_root=str(videos),
    )
    for i in range(3):
        assert torch.equal(ds[i][0], folders[i][0]) and int(ds[i][1]) == int(folders[i][1])
    with pytest.raises(FrameReadError, match=r"missing_video.mp4, .*missing_video.avi"):
        ds[3]
