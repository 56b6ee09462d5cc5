"""Synthetic dataset: layout, determinism, idempotence, and the premise (class readable in a full-resolution
focus patch, not at glance resolution)."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ops.data import dataset, dataset_config, synthetic
from ops.data.synthetic import class_names, ensure_current, ensure_synthetic, generate, glyph_mask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(num_classes=3, videos_per_class_train=2, videos_per_class_val=1, min_frames=10, max_frames=12)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    return root, generate(root, **TINY)


def test_class_names_pattern_major_alphabetical():
    assert class_names(3) == ["checker_blue", "checker_green", "checker_red"]
    assert class_names(12) == sorted(class_names(12))  # index order is alphabetical
    # the default 8 classes: 2 patterns x all 4 hues, so the hue alone leaves 2 candidates
    assert sorted({c.split("_")[1] for c in class_names(8)}) == sorted(synthetic.HUES)
    with pytest.raises(ValueError):
        class_names(13)


def test_glyph_flip_invariant_and_flat_at_glance_resolution():
    masks = [glyph_mask(label, phase) for label in range(12) for phase in (0, 1)]
    for label in range(12):
        a, b = glyph_mask(label, 0), glyph_mask(label, 1)
        # a horizontal flip gives the same class (at most the other phase)
        assert any(np.array_equal(a[:, ::-1], m) for m in (a, b))
        # every 2x2 window (any offset) is half light: a 2x area downsampling leaves a flat blob
        windows = np.lib.stride_tricks.sliding_window_view(a, (2, 2)).mean((-1, -2))
        np.testing.assert_allclose(windows, 0.5)
    # the three patterns differ at full resolution (hue is drawn in colour, not in the mask)
    assert len({m.tobytes() for m in masks}) == 3 * 2


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
                (w, h) == (28, 28) and 24 <= x and x + w <= 136 and 8 <= y and y + h <= 120
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
    marker = os.path.join(folder, "marker.txt")  # a regeneration replaces the folder, and the marker with it
    open(marker, "w").write("kept")
    assert ensure_synthetic(other, **TINY) == folder
    assert open(marker).read() == "kept"  # nothing regenerated
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


def test_pattern_readable_in_focus_patch_hue_at_glance_resolution(tmp_path):
    """1-nearest-neighbour (|cosine| of normalised grey pixels) from val to train frames of the window, on the
    pattern (2 per hue); and the hue from the mean colour of the glyph box at half resolution."""
    folder = ensure_synthetic(
        str(tmp_path),
        num_classes=8,
        videos_per_class_train=3,
        videos_per_class_val=2,
        min_frames=16,
        max_frames=20,
        seed=0,
    )
    ann = json.load(open(os.path.join(folder, "annotations.json")))
    hues = np.float32([synthetic.HUES[h] for h in sorted(synthetic.HUES)]) * (1 + synthetic.DARK) / 2
    feats, hue_hits = {}, []
    g = synthetic.GLYPH
    for name, a in ann.items():
        start, end = a["window"]
        pattern, hue = divmod(a["label"], 4)
        for t in range(start, end):
            img = cv2.imread(os.path.join(folder, "frames", name, f"img_{t + 1:05d}.jpg"))[..., ::-1]
            small = cv2.resize(img.astype(np.float32), (80, 64), interpolation=cv2.INTER_AREA)  # 2x down
            grey, small_grey = img.astype(np.float32).mean(-1), small.mean(-1)
            x, y, w, h = a["boxes"][t]
            if x % 2 or y % 2:  # keep the 2x2 grid aligned with the box: the flatness is exact there
                continue
            views = {
                "focus": grey[y + 2 : y + h - 2, x + 2 : x + w - 2],  # the GLYPH x GLYPH pattern
                "glance": small_grey[y // 2 + 1 : y // 2 + 1 + g // 2, x // 2 + 1 : x // 2 + 1 + g // 2],
            }
            for key, v in views.items():
                f = v.ravel() - v.mean()
                feats.setdefault((key, a["split"]), []).append((f / (np.linalg.norm(f) + 1e-6), pattern))
            inner = small[y // 2 + 2 : y // 2 + g // 2, x // 2 + 2 : x // 2 + g // 2]
            mean_colour = inner.reshape(-1, 3).mean(0)
            hue_hits.append(int(np.abs(hues - mean_colour).sum(1).argmin() == hue))
    acc = {}
    for key in ("focus", "glance"):
        xt, yt = map(np.array, zip(*feats[(key, "train")]))
        xv, yv = map(np.array, zip(*feats[(key, "val")]))
        acc[key] = float((yt[np.abs(xv @ xt.T).argmax(1)] == yv).mean())
    assert acc["focus"] == 1.0  # the pattern at full resolution (chance 0.5)
    assert acc["glance"] <= 0.7  # at half resolution the pattern is (nearly) gone
    assert np.mean(hue_hits) >= 0.9  # ... but the hue is still there


def test_videos_match_frames(tmp_path):
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
    root, _ = tiny
    cfg = dataset_config.get_dataset_config("synthetic", root=root)
    assert (cfg.num_classes, cfg.flip, cfg.image_tmpl) == (3, synthetic.FLIP_ALLOWED, "img_{:05d}.jpg")
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
    env = dict(os.environ, PYTHONPATH=ROOT)  # scripts import the project's packages (or `pip install -e .`)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    assert "4 videos, 16 frames" in out
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    assert "up to date" in out


def test_ensure_current_keeps_this_version_regenerates_older_ones(tmp_path, monkeypatch):
    # the defaults made small for the test (the point is which parameters a regeneration uses, not their size)
    monkeypatch.setattr(synthetic, "DEFAULTS", {**synthetic.DEFAULTS, **TINY, "seed": 5})
    root = str(tmp_path)
    folder = ensure_synthetic(root, **TINY)
    path = os.path.join(folder, "params.json")
    params = json.load(open(path))
    marker = os.path.join(folder, "marker.txt")  # a regeneration replaces the folder, and the marker with it
    open(marker, "w").write("kept")
    assert ensure_current(root) == folder and open(marker).read() == "kept"  # this version, any size: kept
    json.dump({**params, "version": 1}, open(path, "w"))  # as if an older generator had made it
    ensure_current(root)
    assert not os.path.exists(marker)
    assert json.load(open(path)) == synthetic._params({})  # regenerated: this version, default parameters
    assert json.load(open(path))["seed"] == 5 and json.load(open(path))["version"] == synthetic.SYNTH_VERSION
