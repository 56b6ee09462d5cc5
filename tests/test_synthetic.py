"""Synthetic dataset: layout, determinism, idempotence, and the premise (class readable in a full-resolution
focus patch, not at glance resolution)."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ops import synthetic
from ops.synthetic import CODEWORDS, class_names, ensure_synthetic, generate, glyph_mask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(num_classes=3, videos_per_class_train=2, videos_per_class_val=1, min_frames=10, max_frames=12)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    return root, generate(root, **TINY)


def test_codewords_are_distinct_hamming_code():
    dist = [sum(a != b for a, b in zip(x, y)) for i, x in enumerate(CODEWORDS) for y in CODEWORDS[i + 1 :]]
    assert len(CODEWORDS) == 16 and min(dist) == 3
    assert class_names(3) == ["glyph_0000000", "glyph_0001111", "glyph_0010110"]
    assert class_names(16) == sorted(class_names(16))  # index order is alphabetical
    with pytest.raises(ValueError):
        class_names(17)


def test_glyph_flip_invariant_and_flat_at_glance_resolution():
    for label in range(16):
        a, b = glyph_mask(label, 0), glyph_mask(label, 1)
        # a horizontal flip complements every row phase: the same class with the other polarity
        np.testing.assert_array_equal(a[:, ::-1], b)
        # inside the full-contrast columns every 4 px horizontal window is half on, half off
        windows = np.lib.stride_tricks.sliding_window_view(a[:, 4:12], 4, axis=1).mean(-1)
        np.testing.assert_allclose(windows, 0.5)
    # classes differ at full resolution, in >= 3 of the 7 row boundaries
    flat = np.array([glyph_mask(k, 0).ravel() for k in range(16)])
    assert len({row.tobytes() for row in flat}) == 16


def test_layout_lists_and_annotations(tiny):
    root, stats = tiny
    folder = os.path.join(root, "synthetic")
    assert stats["folder"] == folder and stats["videos"] == 9
    with open(os.path.join(folder, "category.txt")) as f:
        assert f.read().split() == class_names(3)
    ann = json.load(open(os.path.join(folder, "annotations.json")))
    total = 0
    for split, count in (("train", 6), ("val", 3)):
        rows = [line.split() for line in open(os.path.join(folder, f"{split}_videofolder.txt"))]
        assert len(rows) == count
        assert sorted(int(r[2]) for r in rows) == sorted(list(range(3)) * (count // 3))  # balanced classes
        for name, n, label in rows:
            files = sorted(os.listdir(os.path.join(folder, "frames", name)))
            assert files == [f"img_{t:05d}.jpg" for t in range(1, int(n) + 1)]
            a = ann[name]
            assert (a["split"], a["num_frames"], a["label"]) == (split, int(n), int(label))
            start, end = a["window"]
            assert 0.3 * int(n) - 0.5 <= end - start <= 0.5 * int(n) + 0.5 and 0 <= start < end <= int(n)
            assert [b is not None for b in a["boxes"]] == [start <= t < end for t in range(int(n))]
            img = cv2.imread(os.path.join(folder, "frames", name, f"img_{start + 1:05d}.jpg"))
            assert img.shape == (128, 160, 3)
            x, y, w, h = a["boxes"][start]
            assert (
                (w, h) == (20, 20) and 24 <= x and x + w <= 136 and 8 <= y and y + h <= 120
            )  # centre 112 crop
            grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            assert (
                grey[y, x : x + w].mean() > 225 and grey[y + h - 1, x : x + w].mean() > 225
            )  # white frame here
            total += int(n)
    assert stats["frames"] == total


def test_deterministic_and_idempotent(tmp_path, tiny):
    root, _ = tiny
    other = str(tmp_path)
    folder = ensure_synthetic(other, **TINY)
    ref = os.path.join(root, "synthetic", "frames", "train_00001", "img_00003.jpg")
    same = os.path.join(folder, "frames", "train_00001", "img_00003.jpg")
    assert open(ref, "rb").read() == open(same, "rb").read()  # same seed, same bytes
    stamp = os.stat(os.path.join(folder, "params.json")).st_mtime_ns
    assert ensure_synthetic(other, **TINY) == folder
    assert os.stat(os.path.join(folder, "params.json")).st_mtime_ns == stamp  # nothing regenerated
    ensure_synthetic(other, **{**TINY, "seed": 1})  # other params: regenerated in place
    assert json.load(open(os.path.join(folder, "params.json")))["seed"] == 1
    assert open(same, "rb").read() != open(ref, "rb").read()
    assert not [d for d in os.listdir(other) if d.startswith(".synthetic.tmp")]
    with pytest.raises(TypeError):
        ensure_synthetic(other, colour="red")


def test_refuses_foreign_folder(tmp_path):
    os.makedirs(tmp_path / "synthetic")
    (tmp_path / "synthetic" / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        generate(str(tmp_path), **TINY)
    assert (tmp_path / "synthetic" / "mine.txt").exists()


def test_class_readable_in_focus_patch_not_at_glance_resolution(tmp_path):
    """1-nearest-neighbour (|cosine| of normalised grey pixels) from val to train frames of the window."""
    folder = ensure_synthetic(
        str(tmp_path),
        num_classes=4,
        videos_per_class_train=6,
        videos_per_class_val=3,
        min_frames=16,
        max_frames=20,
        seed=0,
    )
    ann = json.load(open(os.path.join(folder, "annotations.json")))
    feats = {}
    for name, a in ann.items():
        start, end = a["window"]
        for t in range(start, end):
            img = cv2.imread(
                os.path.join(folder, "frames", name, f"img_{t + 1:05d}.jpg"), cv2.IMREAD_GRAYSCALE
            )
            small = cv2.resize(img.astype(np.float32), (40, 32), interpolation=cv2.INTER_AREA)  # 4x down
            x, y, w, h = a["boxes"][t]
            views = {
                "focus": img[y + 2 : y + h - 2, x + 2 : x + w - 2].astype(np.float32),  # 16x16 glyph
                "glance_box": small[y // 4 : y // 4 + 5, x // 4 : x // 4 + 5],
                "glance_frame": small,
            }
            for key, v in views.items():
                if key == "glance_box" and v.shape != (5, 5):  # box on the frame edge
                    continue
                f = v.ravel() - v.mean()
                feats.setdefault((key, a["split"]), []).append((f / (np.linalg.norm(f) + 1e-6), a["label"]))
    acc = {}
    for key in ("focus", "glance_box", "glance_frame"):
        xt, yt = map(np.array, zip(*feats[(key, "train")]))
        xv, yv = map(np.array, zip(*feats[(key, "val")]))
        acc[key] = float((yt[np.abs(xv @ xt.T).argmax(1)] == yv).mean())
    assert acc["focus"] == 1.0  # chance is 0.25
    assert acc["glance_frame"] <= 0.3  # the downsampled frame gives nothing beyond chance
    assert acc["glance_box"] <= 0.6  # even knowing the box, 4x down leaks little (edges only)


def test_videos_match_frames(tmp_path):
    pytest.importorskip("av")
    import av

    folder = ensure_synthetic(
        str(tmp_path),
        num_classes=1,
        videos_per_class_train=1,
        videos_per_class_val=1,
        min_frames=6,
        max_frames=6,
        write_videos=True,
    )
    with av.open(os.path.join(folder, "videos", "val_00000.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 6
    jpg = cv2.imread(os.path.join(folder, "frames", "val_00000", "img_00004.jpg"))[..., ::-1]
    assert np.abs(frames[3].astype(int) - jpg).mean() < 6  # both lossy copies of the same frame


def test_dataset_config_reads_it(tiny):
    dataset_config = pytest.importorskip("ops.dataset_config")
    dataset = pytest.importorskip("ops.dataset")
    root, _ = tiny
    cfg = dataset_config.get_dataset_config("synthetic", root=root)
    assert (cfg.num_classes, cfg.flip, cfg.image_tmpl, cfg.preset) == (
        3,
        synthetic.FLIP_ALLOWED,
        "img_{:05d}.jpg",
        "tsm",
    )
    records = dataset.read_list_file(cfg.train_list, cfg.separator, cfg.num_classes, cfg.multi_label)
    assert len(records) == 6 and all(os.path.isdir(os.path.join(cfg.frames_root, r.path)) for r in records)


def test_cli(tmp_path):
    cmd = [
        sys.executable,
        os.path.join(ROOT, "scripts", "make_synthetic.py"),
        "--root_dataset",
        str(tmp_path),
        "--num_classes",
        "2",
        "--train_per_class",
        "1",
        "--val_per_class",
        "1",
        "--min_frames",
        "4",
        "--max_frames",
        "4",
        "--quiet",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "4 videos, 16 frames" in out
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "up to date" in out
