"""List files, samplers and VideoDataset, checked against the official fixtures (frame numbers, inputs)."""

import dataclasses
import json
import logging
import math
import os

import cv2
import numpy as np
import pytest
import torch

from ops.data import video_io
from ops.data.dataset import VideoDataset, collate, make_loader
from ops.data.dataset_config import DatasetNotFoundError, get_dataset_config
from ops.data.lists import ListFileError, VideoRecord, read_list_file, sample_eval, sample_train
from ops.data.transforms import multiscale_crop_box, normalize, resize_frames
from ops.data.video_io import FrameReadError
from ops.engine.loops import build_dataset
from ops.opts import parse_args
from tests.official import fixture_frame

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "official")
PRESET_T = {"x3d": (16, 96), "tsm": (8, 36), "an": (0, 48)}  # (T_g, N) of the fixture runs


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """vid0 (40 frames, label 0) in the somethingv2 and actnet layouts of the fixture runs."""
    root = tmp_path_factory.mktemp("data")
    frames = np.stack([fixture_frame(0, t) for t in range(1, 41)])
    sth = root / "something-something-v2"
    an = root / "actnet"
    for d, tmpl in (
        (sth / "20bn-something-something-v2-frames/vid0", "{:06d}.jpg"),
        (an / "frames/vid0", "image_{:05d}.jpg"),
    ):
        os.makedirs(d)
        for t in range(1, 41):  # PNG content under the .jpg name, as the fixture data
            cv2.imwrite(str(d / "x.png"), frames[t - 1][..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
            os.replace(d / "x.png", d / tmpl.format(t))
    (sth / "category.txt").write_text("".join(f"c{i}\n" for i in range(174)))
    (sth / "val_videofolder.txt").write_text("vid0 40 0\n")
    (sth / "train_videofolder.txt").write_text("vid0 40 0\n")
    (an / "classInd.txt").write_text("".join(f"c{i}\n" for i in range(200)))
    (an / "actnet_val_split.txt").write_text("vid0,40,7,3,7\n")
    (an / "actnet_train_split.txt").write_text("vid0,40,7,3,9\n")
    return str(root), frames


# ------------------------------------------------------------------------------------------------------------
# samplers
# ------------------------------------------------------------------------------------------------------------
def test_eval_sampler_equals_official_frame_indices():
    with open(os.path.join(FIX, "frame_indices.json")) as f:
        data = json.load(f)["frames"]
    for preset, videos in data.items():
        g, n = PRESET_T[preset]
        for v in videos:
            cand = sample_eval(v["num_frames"], n)
            assert cand.tolist() == v["candidates"], preset
            glance = sample_eval(v["num_frames"], g) if g else cand[1::3]  # AN: glance taken inside the model
            assert glance.tolist() == v["glance"], preset


@pytest.mark.parametrize("n,T", [(40, 16), (75, 96), (7, 8), (300, 48)])
def test_train_sampler_formula(n, T):
    got = sample_train(n, T, np.random.default_rng(n))
    u = np.random.default_rng(n).random(T)
    assert got.tolist() == [math.floor((i + u[i]) / T * n) + 1 for i in range(T)]
    assert got.dtype == np.int64 and 1 <= got.min() and got.max() <= n


def test_multi_clip_eval_offsets():
    # clip c of 2: floor((i + (c + 0.5) / 2) / 3 * 30) + 1 -> offsets 0.25 / 0.75 of a 10-frame segment
    assert sample_eval(30, 3, 0, 2).tolist() == [3, 13, 23]
    assert sample_eval(30, 3, 1, 2).tolist() == [8, 18, 28]
    assert sample_eval(30, 3, 0, 1).tolist() == [6, 16, 26]
    with pytest.raises(ValueError):
        sample_eval(30, 3, 2, 2)


# ------------------------------------------------------------------------------------------------------------
# list files
# ------------------------------------------------------------------------------------------------------------
def test_read_list_file_rows(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("a 10 0\n\nb/c 3 4\nmy video 5 2\n")  # blank line skipped; minik rule: path with spaces
    assert read_list_file(str(p), " ", 5, False) == [
        VideoRecord("a", 10, (0,)),
        VideoRecord("b/c", 3, (4,)),
        VideoRecord("my video", 5, (2,)),
    ]
    p.write_text("v1,10,7\nv2,12,9,3\nv3, 4, 1, 1, 0\n")
    assert read_list_file(str(p), ",", 10, True) == [
        VideoRecord("v1", 10, (7,)),
        VideoRecord("v2", 12, (3, 9)),
        VideoRecord("v3", 4, (0, 1)),
    ]


@pytest.mark.parametrize(
    "text,sep,multi,msg",
    [
        ("a 10 0\nb 10\n", " ", False, ":2: expected 'path num_frames label'"),
        ("a 10 0\nb ten 1\n", " ", False, ":2: num_frames and labels must be integers"),
        ("a 10 x\n", " ", False, ":1: num_frames and labels must be integers"),
        ("a 10 0\n\nb 10 5\n", " ", False, ":3: label 5 outside [0, 5)"),
        ("a 10 -1\n", " ", False, ":1: label -1 outside"),
        ("a 0 1\n", " ", False, ":1: num_frames must be >= 1"),
        ("a,3,1,2,3,4\n", ",", True, ":1: expected 'path num_frames label [label2 label3]'"),
        ("a,3,1,2\n", ",", False, ":1: expected 'path num_frames label'"),
        ("\n\n", " ", False, ":0: list file has no rows"),
    ],
)
def test_read_list_file_errors(tmp_path, text, sep, multi, msg):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(ListFileError) as e:
        read_list_file(str(p), sep, 5, multi)
    assert str(e.value).startswith(f"{p}:") and msg in str(e.value)


# ------------------------------------------------------------------------------------------------------------
# VideoDataset on the official fixture data
# ------------------------------------------------------------------------------------------------------------
def test_val_item_equals_official_input(official):
    root, frames = official
    cfg = get_dataset_config("somethingv2", root=root)
    ds = VideoDataset(cfg, "val", num_glance=8, num_candidates=36)
    x, target, index = ds[0]
    assert x.shape == (44, 3, 224, 224) and x.dtype == torch.uint8 and x.is_contiguous()
    assert (target.item(), index) == (0, 0)
    numbers = np.concatenate([sample_eval(40, 8), sample_eval(40, 36)])
    ref = frames[numbers - 1, 16:240, 48:272]  # GroupScale(256) is the identity on 320x256; centre crop
    assert torch.equal(x, torch.from_numpy(ref).permute(0, 3, 1, 2))
    with open(os.path.join(FIX, "tsm_gain1.json")) as f:
        video = json.load(f)["videos"][0]
    for part, key in ((x[:8], "input_glance_stats"), (x[8:], "input_candidates_stats")):
        y = normalize(part)
        stats = video[key]
        assert y.sum(dtype=torch.float64).item() == pytest.approx(stats["sum"], rel=1e-9)
        assert (y.min().item(), y.max().item()) == (stats["min"], stats["max"])


def test_an_preset_multilabel_and_official_input(official):
    root, frames = official
    cfg = get_dataset_config("actnet", data_dir=os.path.join(root, "actnet"))
    ds = VideoDataset(cfg, "val", num_glance=0, num_candidates=48)  # the AN layout: candidates only
    x, target, _ = ds[0]
    assert x.shape == (48, 3, 224, 224) and target.tolist() == [3, 7, -1]  # distinct labels sorted, padded
    with open(os.path.join(FIX, "an_gain1.json")) as f:
        stats = json.load(f)["videos"][0]["input_stats"]
    assert normalize(x).sum(dtype=torch.float64).item() == pytest.approx(stats["sum"], rel=1e-9)
    train = VideoDataset(cfg, "train", num_glance=0, num_candidates=48, input_size=32)
    train.seed(0)
    assert train[0][0].shape == (48, 3, 32, 32)
    seen = {tuple(train.target(train.records[0]).tolist()) for _ in range(100)}
    assert seen == {
        (3, 7, 9),
        (3, 9, 7),
        (7, 3, 9),
        (7, 9, 3),
        (9, 3, 7),
        (9, 7, 3),
    }  # permuted, as the original


def _crop_set(frames, numbers, rng, size=224, backend="pil", flip_allowed=False):
    """Expected training frames (T, S, S, 3) of one frame set, drawing as the dataset: crop size and offset,
    then the flip (if allowed). Returns (box, frames, flipped)."""
    box = multiscale_crop_box(320, 256, size, rng)
    crop = frames[numbers - 1, box.y : box.y + box.h, box.x : box.x + box.w]
    ref = resize_frames(crop, (size, size), backend)
    flipped = flip_allowed and rng.random() < 0.5
    return box, (ref[:, :, ::-1] if flipped else ref), flipped


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.numpy().transpose(0, 2, 3, 1)


def test_train_item_seeded_independent_crops(official):
    root, frames = official
    cfg = get_dataset_config("somethingv2", root=root)  # flip not allowed
    kcfg = dataclasses.replace(cfg, flip=True)  # same data, flip allowed
    different_boxes, different_flips = 0, 0
    for seed in range(8):
        for c in (cfg, kcfg):
            ds = VideoDataset(c, "train", num_glance=8, num_candidates=36)
            assert ds.crop_sets() == [slice(0, 8), slice(8, 44)]
            ds.seed(seed)
            x = _hwc(ds[0][0])
            # documented order: glance sampler, candidate sampler, then crop size, offset, flip per set
            rng = np.random.default_rng(seed)
            glance, candidates = sample_train(40, 8, rng), sample_train(40, 36, rng)
            box_g, ref_g, flip_g = _crop_set(frames, glance, rng, flip_allowed=c.flip)
            box_c, ref_c, flip_c = _crop_set(frames, candidates, rng, flip_allowed=c.flip)
            np.testing.assert_array_equal(x[:8], ref_g)
            np.testing.assert_array_equal(x[8:], ref_c)
            different_boxes += box_g != box_c
            different_flips += flip_g != flip_c
    assert different_boxes >= 8 and different_flips >= 2  # the sets are cropped and flipped independently


def test_train_item_seeded_shared_crop(official):
    root, frames = official
    cfg = get_dataset_config("somethingv2", root=root)
    for c in (cfg, dataclasses.replace(cfg, flip=True)):
        flips = []
        for seed in range(6):
            ds = VideoDataset(c, "train", num_glance=8, num_candidates=36, shared_crop=True)
            assert ds.crop_sets() == [slice(0, 44)]
            ds.seed(seed)
            x = _hwc(ds[0][0])
            rng = np.random.default_rng(seed)  # glance, candidates, then one crop size, offset, flip
            numbers = np.concatenate([sample_train(40, 8, rng), sample_train(40, 36, rng)])
            _, ref, flipped = _crop_set(frames, numbers, rng, flip_allowed=c.flip)
            np.testing.assert_array_equal(x, ref)  # one box (and flip) for glance and candidate frames
            flips.append(flipped)
        assert (any(flips) and not all(flips)) if c.flip else not any(flips)


def test_eval_items_and_an_items_do_not_depend_on_shared_crop(official):
    root, _ = official
    cfg = get_dataset_config("somethingv2", root=root)
    for kw in (dict(num_glance=8, num_candidates=36), dict(num_glance=2, num_candidates=3, test_crops=3)):
        independent = VideoDataset(cfg, "val", **kw)[0][0]
        assert torch.equal(independent, VideoDataset(cfg, "val", shared_crop=True, **kw)[0][0])
    # AN layout: one frame set (the model takes the glance frames from the candidates), so one crop either way
    an = get_dataset_config("actnet", data_dir=os.path.join(root, "actnet"))
    items = []
    for shared in (False, True):
        ds = VideoDataset(an, "train", num_glance=0, num_candidates=48, input_size=32, shared_crop=shared)
        assert ds.crop_sets() == [slice(0, 48)]
        ds.seed(5)
        items.append(ds[0])
    assert torch.equal(items[0][0], items[1][0]) and torch.equal(items[0][1], items[1][1])


def test_resize_backends(official, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(
        "ops.data.resize.torch_kernel_is_fast", lambda: False
    )  # Pillow (torch: test_resize.py)

    root, frames = official
    cfg = get_dataset_config("somethingv2", root=root)
    seed = 0
    rng = np.random.default_rng(seed)
    glance = sample_train(40, 8, rng)
    sample_train(40, 36, rng)
    box = multiscale_crop_box(320, 256, 224, rng)
    assert (box.w, box.h) != (224, 224)  # the crop is resized
    crop = np.ascontiguousarray(frames[glance[0] - 1, box.y : box.y + box.h, box.x : box.x + box.w])
    pil = np.asarray(Image.fromarray(crop).resize((224, 224), Image.BILINEAR))
    ocv = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_LINEAR)
    assert not np.array_equal(pil, ocv)
    for backend, ref in (("pil", pil), ("cv2", ocv)):
        ds = VideoDataset(cfg, "train", num_glance=8, num_candidates=36, resize_backend=backend)
        ds.seed(seed)
        np.testing.assert_array_equal(_hwc(ds[0][0])[0], ref)
    assert VideoDataset(cfg, "train").resize_backend == "pil"  # the originals' resizing by default
    with pytest.raises(ValueError, match="resize_backend"):
        VideoDataset(cfg, "train", resize_backend="nearest")


def test_crop_and_resize_flags_reach_the_dataset(official):
    root, _ = official
    cfg = get_dataset_config("somethingv2", root=root)
    base = ["somethingv2", "RGB", "--root_dataset", root]
    layout = (2, 3)  # glance, candidate frames
    ds = build_dataset(parse_args(base), cfg, "train", layout)
    assert (ds.resize_backend, ds.shared_crop, len(ds.crop_sets())) == ("pil", False, 2)
    args = parse_args(base + ["--shared_crop", "--resize_backend", "cv2"])
    assert {"shared_crop", "resize_backend"} <= set(args.explicit)
    for split in ("train", "val"):
        ds = build_dataset(args, cfg, split, layout)
        assert (ds.resize_backend, ds.shared_crop, ds.frames_per_view) == ("cv2", True, 5)
    assert len(build_dataset(args, cfg, "train", layout).crop_sets()) == 1


def test_views_crops_and_clips(official):
    root, frames = official
    cfg = get_dataset_config("somethingv2", root=root)
    ds = VideoDataset(cfg, "val", num_glance=2, num_candidates=3, test_crops=3, num_clips=2)
    x = ds[0][0]
    assert x.shape == (6, 5, 3, 224, 224) and ds.num_views == 6
    for c in range(2):
        numbers = np.concatenate([sample_eval(40, 2, c, 2), sample_eval(40, 3, c, 2)])
        for k, x0 in enumerate((0, 96, 48)):  # left, right, centre (clip-major, then crop)
            ref = frames[numbers - 1, 16:240, x0 : x0 + 224]
            assert torch.equal(x[c * 3 + k], torch.from_numpy(ref).permute(0, 3, 1, 2))
    ten = VideoDataset(cfg, "val", num_glance=1, num_candidates=1, test_crops=10)[0][0]
    assert ten.shape == (10, 2, 3, 224, 224)
    assert torch.equal(ten[1], ten[0].flip(-1)) and torch.equal(ten[9], ten[8].flip(-1))
    assert torch.equal(ten[8], torch.from_numpy(frames[[20, 20], 16:240, 48:272]).permute(0, 3, 1, 2))


def test_each_distinct_frame_decoded_once(official, monkeypatch):
    root, _ = official
    ds = VideoDataset(get_dataset_config("somethingv2", root=root), "val", num_glance=16, num_candidates=96)
    calls = []
    real = video_io._imread_rgb  # every frame file is read (and decoded) through it
    monkeypatch.setattr(video_io, "_imread_rgb", lambda path, *a: calls.append(path) or real(path, *a))
    ds[0]
    assert len(calls) == len(set(calls)) == len(np.unique(ds.frame_numbers(ds.records[0])))


def test_missing_frames_counted_and_bad_videos(official, tmp_path, caplog):
    root, frames = official
    src = os.path.join(root, "something-something-v2")
    data = tmp_path / "something-something-v2"
    os.makedirs(data / "20bn-something-something-v2-frames/vid0")
    for t in range(1, 41):
        if t not in (20, 21):
            os.link(
                os.path.join(src, "20bn-something-something-v2-frames/vid0", f"{t:06d}.jpg"),
                data / f"20bn-something-something-v2-frames/vid0/{t:06d}.jpg",
            )
    os.link(os.path.join(src, "category.txt"), data / "category.txt")
    os.symlink("vid0", data / "20bn-something-something-v2-frames/vid0b")  # a path listed twice is refused
    (data / "val_videofolder.txt").write_text("vid0 40 0\ngone 40 1\nvid0b 40 2\n")
    cfg = get_dataset_config("somethingv2", root=str(tmp_path))
    ds = VideoDataset(
        cfg, "val", num_glance=2, num_candidates=4
    )  # glance [11, 31], candidates [6, 16, 26, 36]
    ds_big = VideoDataset(cfg, "val", num_glance=0, num_candidates=40)  # every frame, 20 and 21 missing
    with caplog.at_level(logging.WARNING, logger="ops.data.dataset"):
        x = ds_big[0][0]
        ds_big[0]
    np.testing.assert_array_equal(x[19].numpy(), x[18].numpy())  # 20 -> 19 (nearest, earlier on ties)
    np.testing.assert_array_equal(x[20].numpy(), x[21].numpy())  # 21 -> 22
    assert ds_big.missing_frames == 4
    assert sum("missing frame" in r.message for r in caplog.records) == 1  # warned once per video
    ds_big.reset_counters()
    assert ds_big.missing_frames == 0
    with pytest.raises(FrameReadError, match="gone"):
        ds[1]
    skip = VideoDataset(cfg, "val", num_glance=2, num_candidates=4, on_bad_video="skip")
    _, target, index = skip[1]
    assert (index, target.item(), skip.bad_videos) == (2, 2, 1)
    # counters are shared with DataLoader workers
    loader = make_loader(skip, 1, workers=1)
    assert [int(b[2]) for b in loader] == [0, 2, 2]
    assert skip.bad_videos == 2


def test_missing_list_and_collate(official, tmp_path):
    root, _ = official
    cfg = get_dataset_config("somethingv2", root=root)
    with pytest.raises(DatasetNotFoundError, match="list file not found: .*nope.txt[\\s\\S]*gen_label"):
        VideoDataset(cfg, "val", list_file=str(tmp_path / "nope.txt"))
    ds = VideoDataset(cfg, "val", num_glance=1, num_candidates=2, input_size=64, scale_size=80)
    items = [ds[0], ds[0]]
    frames, targets, index = collate(items)
    assert torch.equal(frames, torch.stack([i[0] for i in items])) and frames.shape == (2, 3, 3, 64, 64)
    assert targets.tolist() == [0, 0] and index.tolist() == [0, 0]
    one = collate(items[:1])
    assert torch.equal(one[0], items[0][0][None]) and one[1].shape == (1,)


def test_raw_video_mode_equals_frame_folders(official, tmp_path):
    import av

    root, frames = official
    videos = tmp_path / "videos"
    videos.mkdir()
    with av.open(str(videos / "vid0.mkv"), "w") as c:  # lossless, GOP 8: the reader seeks between GOPs
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 320, 256, "bgr0"
        s.codec_context.gop_size = 8
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    cfg = get_dataset_config("somethingv2", root=root)
    kw = dict(num_glance=8, num_candidates=36, test_crops=3)
    from_video = VideoDataset(cfg, "val", video_root=str(videos), video_ext=".mkv", **kw)[0][0]
    assert torch.equal(from_video, VideoDataset(cfg, "val", **kw)[0][0])
    found = VideoDataset(cfg, "val", video_root=str(videos), **kw)  # no extension given: finds vid0.mkv
    assert torch.equal(found[0][0], from_video)
    forced = VideoDataset(cfg, "val", video_root=str(videos), video_ext=".mp4", **kw)  # looks for vid0.mp4
    with pytest.raises(FrameReadError, match="vid0.mp4"):
        forced[0]


def test_batches_built_in_place_and_recycled(official, tmp_path):
    root, _ = official
    cfg = get_dataset_config("somethingv2", root=root)
    records = [VideoRecord("vid0", 40, (label,)) for label in range(3)]  # one video three times
    ds = VideoDataset(
        cfg, "val", num_glance=1, num_candidates=2, input_size=64, scale_size=80, records=records
    )
    ref = torch.stack([ds[i][0] for i in range(3)])
    loader = make_loader(ds, 3)
    b1 = next(iter(loader))
    assert torch.equal(b1[0], ref) and b1[1].tolist() == [0, 1, 2] and b1[2].tolist() == [0, 1, 2]
    ptr = b1[0].data_ptr()
    b2 = next(iter(loader))  # b1 is still referenced: its memory must not be reused
    assert b2[0].data_ptr() != ptr and torch.equal(b2[0], ref)
    del b1
    b3 = next(iter(loader))
    assert b3[0].data_ptr() == ptr and torch.equal(b3[0], ref)  # recycled, not freshly allocated
    wb = next(iter(make_loader(ds, 3, workers=1)))  # loaded in a worker, straight into shared memory
    assert torch.equal(wb[0], ref) and wb[0].is_shared()


def test_worker_start_after_opencv_and_pyav_in_parent(official, tmp_path):
    # Regression: cv2.setNumThreads in a forked worker deadlocked after the parent had used OpenCV's
    # thread pool and PyAV; the loaders must not set up workers that way.
    import av

    from ops.data.video_io import read_frames

    cv2.GaussianBlur(np.zeros((1000, 1000, 3), np.uint8), (0, 0), 3)  # starts OpenCV's pool
    with av.open(str(tmp_path / "v.mkv"), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "bgr0"
        for p in [*s.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8))), *s.encode()]:
            c.mux(p)
    read_frames(str(tmp_path / "v.mkv"), [1])
    root, _ = official
    ds = VideoDataset(get_dataset_config("somethingv2", root=root), "val", num_glance=1, num_candidates=1)
    loader = make_loader(ds, 1, workers=1, timeout=60)
    assert [int(b[2]) for b in loader] == [0]


def test_synthetic_recipe_shares_the_crop_and_independent_crop_restores_the_original(data_root):
    base = ["synthetic", "RGB", "--root_dataset", data_root]
    assert parse_args(base).shared_crop is True
    args = parse_args(base + ["--independent_crop"])
    assert args.shared_crop is False and "shared_crop" in args.explicit
    assert parse_args(["somethingv2", "RGB"]).shared_crop is not True  # published datasets: the original's
