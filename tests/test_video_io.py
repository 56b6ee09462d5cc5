"""Frame-folder and PyAV readers: exact frames, dedup, seeking with small GOPs, missing/corrupt input."""

import os

import av
import cv2
import numpy as np
import pytest

from ops.data.resize import is_planar, planar
from ops.data.video_decode import read_from_start, seek_plan
from ops.data.video_io import FrameFolder, FrameReadError, read_frames
from ops.data.video_plan import video_plan

N, H, W = 40, 48, 64
TMPL = "img_{:05d}.jpg"


def _clip() -> np.ndarray:
    """(N, H, W, 3) uint8: a noise texture panning 2 px per frame (inter-frame codecs find motion)."""
    tex = np.random.default_rng(7).integers(0, 256, (H, W + 2 * N, 3), dtype=np.uint8)
    tex = cv2.GaussianBlur(tex, (3, 3), 0)
    return np.stack([tex[:, 2 * t : 2 * t + W] for t in range(N)])


def _write_video(path: str, frames: np.ndarray, codec: str, pix_fmt: str, options: dict, gop: int) -> None:
    with av.open(path, "w") as c:
        s = c.add_stream(codec, rate=25, options=options)
        s.width, s.height, s.pix_fmt = W, H, pix_fmt
        s.codec_context.gop_size = gop
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    frames = _clip()
    folder = root / "frames"
    folder.mkdir()
    for t, f in enumerate(frames, 1):  # PNG content under .jpg names: lossless, read by content
        cv2.imwrite(str(folder / "tmp.png"), f[..., ::-1])
        os.replace(folder / "tmp.png", folder / TMPL.format(t))
    paths = {
        # lossless H.264 (RGB), keyframe every 8 frames, P-frames in between
        "x264rgb": (root / "a.mp4", "libx264rgb", "rgb24", {"qp": "0", "sc_threshold": "0"}, 8),
        # FFV1 (lossless), GOP 5
        "ffv1": (root / "b.mkv", "ffv1", "bgr0", {}, 5),
        # lossy H.264 with B-frames: checked against a sequential decode of the same file
        "x264": (root / "c.mp4", "libx264", "yuv420p", {"crf": "20", "bf": "2", "sc_threshold": "0"}, 10),
    }
    for path, codec, pix, opts, gop in paths.values():
        _write_video(str(path), frames, codec, pix, opts, gop)
    return frames, FrameFolder(str(folder), TMPL, N), {k: str(v[0]) for k, v in paths.items()}


def _decode_all(path: str) -> np.ndarray:
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


ORDERS = [list(range(1, N + 1)), [17, 3, 3, 40, 1, 17, 25, 2, 39], [40, 1], [9, 9, 9], [33, 1, 16, 8]]


def test_frame_folder_exact(media):
    frames, folder, _ = media
    for numbers in ORDERS:
        np.testing.assert_array_equal(read_frames(folder, numbers), frames[np.array(numbers) - 1])


@pytest.mark.parametrize("kind", ["x264rgb", "ffv1"])
def test_lossless_video_equals_frame_folder(media, kind):
    frames, folder, videos = media
    for numbers in ORDERS:
        got = read_frames(videos[kind], numbers)
        assert got.dtype == np.uint8 and got.shape == (len(numbers), H, W, 3)
        np.testing.assert_array_equal(got, read_frames(folder, numbers))


def test_keyframes_and_seek_plan(media):
    _, _, videos = media
    plan = video_plan(videos["x264rgb"])
    assert plan.num_frames == plan.packets == N and (plan.tried, plan.rejected) == (4, 0)
    np.testing.assert_array_equal(plan.keyframes, [0, 8, 16, 24, 32])
    keys = plan.starts()  # every keyframe verified as a seek point, landing right on it
    np.testing.assert_array_equal(keys, [0, 8, 16, 24, 32])
    assert [p.lead for p in plan.points] == [0, 0, 0, 0]
    # 0-based targets: first always seeks; 1 decodes forward; 20 (key 16 > 1) seeks; 21 forward;
    # 23 forward (key 16); 38 (key 32 > 23) seeks; 39 forward
    plan = seek_plan(np.array([0, 1, 20, 21, 23, 38, 39]), keys)
    np.testing.assert_array_equal(plan, [True, False, True, False, False, True, False])
    # a target right after its keyframe, previous target before it: seek; same GOP: no seek
    np.testing.assert_array_equal(seek_plan(np.array([5, 8, 9]), keys), [True, True, False])


def test_lossy_bframes_frame_accurate(media):
    _, _, videos = media
    ref = _decode_all(videos["x264"])
    assert len(ref) == N
    assert len(video_plan(videos["x264"]).points) >= 3  # several GOPs, so seeking is exercised
    for numbers in ORDERS + [[t] for t in range(1, N + 1)]:
        np.testing.assert_array_equal(read_frames(videos["x264"], numbers), ref[np.array(numbers) - 1])


def test_past_end_and_missing_frames(media, tmp_path):
    frames, folder, videos = media
    subs = []
    got = read_frames(videos["ffv1"], [39, 45, 41], subs)
    np.testing.assert_array_equal(got, frames[[38, 39, 39]])
    assert sorted(subs) == [(41, 40), (45, 40)]
    with pytest.raises(FrameReadError, match="b.mkv"):
        read_frames(videos["ffv1"], [41])
    # frame folder with holes: nearest readable frame, ties -> the earlier one; unreadable file == missing
    holes = tmp_path / "holes"
    holes.mkdir()
    for t in range(1, 11):
        if t not in (5, 6, 7):
            os.link(os.path.join(folder.folder, TMPL.format(t)), holes / TMPL.format(t))
    (holes / TMPL.format(7)).write_bytes(b"not an image")
    src = FrameFolder(str(holes), TMPL, 10)
    subs = []
    got = read_frames(src, [5, 6, 7, 10], subs)
    # 5 -> 4; 6: 5 missing, 7 unreadable, so 4; 7: 6 missing -> 8
    np.testing.assert_array_equal(got, frames[[3, 3, 7, 9]])
    assert subs == [(5, 4), (6, 4), (7, 8)]
    with pytest.raises(FrameReadError, match="img_00006.jpg"):
        read_frames(src, [6])


def test_bad_sources(tmp_path):
    with pytest.raises(FrameReadError, match="does not exist: .*nope.mp4"):
        read_frames(str(tmp_path / "nope.mp4"), [1])
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(FrameReadError, match="bad.mp4"):
        read_frames(str(bad), [1])
    with pytest.raises(FrameReadError, match="frame folder does not exist"):
        read_frames(FrameFolder(str(tmp_path / "none"), TMPL, 3), [1], [])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FrameReadError, match="no readable frame"):
        read_frames(FrameFolder(str(empty), TMPL, 3), [2], [])
    with pytest.raises(ValueError, match="1-based"):
        read_frames(FrameFolder(str(empty), TMPL, 3), [0])


def _planes_alloc(shape: tuple[int, ...]) -> np.ndarray:
    """A decode buffer of planes seen as frames, filled with a value no frame write may leave behind."""
    n, h, w, c = shape
    return planar(np.full((n, c, h, w), 7, np.uint8))


@pytest.mark.parametrize("kind", ["folder", "x264", "ffv1"])
def test_frames_decode_into_planes(media, kind):
    _, folder, videos = media
    src = folder if kind == "folder" else videos[kind]
    for numbers in ([1, 3, 17, 40], list(range(1, N + 1))):  # distinct, ascending: the buffer comes back
        got = read_frames(src, numbers, [], _planes_alloc)
        assert is_planar(got)
        np.testing.assert_array_equal(got, read_frames(src, numbers))
    assert read_from_start(videos["x264"], np.array([1, 5])).dtype == np.uint8


def test_replaced_frames_decode_into_planes(media, tmp_path):
    _, folder, videos = media
    holes = tmp_path / "holes"
    holes.mkdir()
    for t in range(1, N + 1):
        if t not in (1, 9):
            os.link(os.path.join(folder.folder, TMPL.format(t)), holes / TMPL.format(t))
    cases = ((FrameFolder(str(holes), TMPL, N), [1, 5, 9, 12]), (videos["x264"], [3, 38, N + 1, N + 5]))
    for src, numbers in cases:
        subs, ref_subs = [], []
        got = read_frames(src, numbers, subs, _planes_alloc)
        np.testing.assert_array_equal(got, read_frames(src, numbers, ref_subs))
        assert subs == ref_subs and subs
