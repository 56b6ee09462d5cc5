"""Data-preparation tools: frame templates, vid2img extraction, gen_label formats, validate_data defects."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ops.data import dataset, dataset_config
from ops.data.lists import parse_list_row
from ops.tools.extract import (
    _target_size,
    extract_folder,
    extract_frames,
    extract_summary,
    frame_name,
    frame_numbers,
    template_regex,
)
from ops.tools.labels import count_frames, gen_label
from ops.tools.validate import validate_list
from tests.run_checks import run_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(script, *args):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", script), *map(str, args)],
        env=dict(os.environ, PYTHONPATH=ROOT),  # the project's packages (or `pip install -e .`)
        capture_output=True,
        text=True,
    )


def make_video(path, n=10, rate=10, size=(64, 48)):
    """Grey frames of level 20 * i (i = 0..n-1), H.264 lossless (qp 0): decodes back within +-2."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt, s.options = size[0], size[1], "yuv420p", {"qp": "0"}
        for i in range(n):
            img = np.full((size[1], size[0], 3), 20 * i, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def make_frames(folder, n, size=8):
    """Writes n real JPEGs img_00001.jpg.. into folder."""
    os.makedirs(folder, exist_ok=True)
    for t in range(1, n + 1):
        cv2.imwrite(os.path.join(folder, f"img_{t:05d}.jpg"), np.full((size, size, 3), 10 * t, np.uint8))


def touch_frames(folder, n, template="img_{:05d}.jpg"):
    os.makedirs(folder, exist_ok=True)
    for t in range(1, n + 1):
        open(os.path.join(folder, frame_name(template, t)), "w").close()


# ---------------------------------------------------------------------------------------------- templates
def test_templates_and_counting(tmp_path):
    assert frame_name("img_{:05d}.jpg", 7) == "img_00007.jpg"
    assert frame_name("image_%05d.jpg", 7) == "image_00007.jpg"
    assert frame_name("{:06d}.jpg", 12) == "000012.jpg"
    rx = template_regex("image_%05d.jpg")
    assert rx.match("image_00012.jpg").group(1) == "00012" and not rx.match("img_00012.jpg")
    assert not rx.match("image_00012.jpg.tmp")
    with pytest.raises(ValueError):
        template_regex("frame.jpg")
    touch_frames(tmp_path, 3)
    for junk in (".done", "img_1.png", "other.jpg", "img_00004.jpg~"):
        open(tmp_path / junk, "w").close()
    open(tmp_path / "img_00010.jpg", "w").close()
    assert frame_numbers(str(tmp_path), "img_{:05d}.jpg") == [1, 2, 3, 10]
    assert count_frames(str(tmp_path), "img_{:05d}.jpg") == 4


def test_parse_list_row_matches_dataset_reader(tmp_path):
    assert parse_list_row("a/b 12 3", " ", False) == ("a/b", 12, [3])
    assert parse_list_row("my video 12 3", " ", False) == ("my video", 12, [3])  # minik rule
    assert parse_list_row("v_x,40,5,7", ",", True) == ("v_x", 40, [5, 7])
    for bad, sep, multi in (
        ("a 12", " ", False),
        ("a x 3", " ", False),
        ("a 0 1", " ", False),
        ("a,1,2,3,4,5", ",", True),
        ("a,5,1,2", ",", False),
    ):
        with pytest.raises(ValueError):
            parse_list_row(bad, sep, multi)
    good = tmp_path / "good.txt"
    good.write_text("a 12 3\nmy video 5 0\n\n")
    records = dataset.read_list_file(str(good), " ", 4, False)
    assert [(r.path, r.num_frames, list(r.labels)) for r in records] == [
        parse_list_row(line, " ", False) for line in ("a 12 3", "my video 5 0")
    ]


# ---------------------------------------------------------------------------------------------- vid2img
def test_extract_frames_resize_and_order(tmp_path):
    make_video(tmp_path / "v.mp4")
    n = extract_frames(str(tmp_path / "v.mp4"), str(tmp_path / "out"), short_side=32)
    assert n == 10
    assert sorted(os.listdir(tmp_path / "out")) == [f"img_{t:05d}.jpg" for t in range(1, 11)]
    img = cv2.imread(str(tmp_path / "out" / "img_00004.jpg"))
    assert img.shape == (32, 43, 3)  # 64x48 -> short side 32, width 42.7 -> 43
    assert _target_size(1080, 1920, 331) == (331, 588)  # portrait: the width is the short side
    levels = [cv2.imread(str(tmp_path / "out" / f"img_{t:05d}.jpg")).mean() for t in range(1, 11)]
    np.testing.assert_allclose(levels, 20 * np.arange(10), atol=3)
    # --fps: output frame k is the first source frame at or after k / fps
    assert (
        extract_frames(
            str(tmp_path / "v.mp4"), str(tmp_path / "f5"), fps=5, short_side=0, template="image_%05d.jpg"
        )
        == 5
    )
    five = [cv2.imread(str(tmp_path / "f5" / f"image_{t:05d}.jpg")).mean() for t in range(1, 6)]
    np.testing.assert_allclose(five, [0, 40, 80, 120, 160], atol=3)
    assert cv2.imread(str(tmp_path / "f5" / "image_00001.jpg")).shape == (48, 64, 3)  # short_side 0: kept
    assert extract_frames(str(tmp_path / "v.mp4"), str(tmp_path / "f20"), fps=20) == 19  # repeats


def test_extract_folder_skips_corrupt_and_resumes(tmp_path):
    videos, frames = tmp_path / "videos", tmp_path / "frames"
    os.makedirs(videos / "classA")
    make_video(videos / "classA" / "good.mp4", n=4)
    make_video(videos / "ok.mp4", n=3)
    (videos / "bad.mp4").write_bytes(b"not a video at all")
    (videos / "empty.avi").write_bytes(b"")
    (videos / "notes.txt").write_text("ignored")
    res = {os.path.basename(r.video): r for r in extract_folder(str(videos), str(frames))}
    assert sorted(res) == ["bad.mp4", "empty.avi", "good.mp4", "ok.mp4"]
    assert (res["good.mp4"].status, res["good.mp4"].num_frames) == ("done", 4)
    assert res["good.mp4"].out_dir == str(frames / "classA" / "good")  # class folders kept
    assert res["bad.mp4"].status == res["empty.avi"].status == "failed" and res["bad.mp4"].error
    assert not (frames / "bad").exists() and not (frames / "empty").exists()  # no half folders left
    assert (frames / "ok" / ".done").read_text().strip() == "3"
    # an interrupted folder (no .done) is redone; finished ones are skipped
    os.remove(frames / "ok" / ".done")
    open(frames / "ok" / "img_00099.jpg", "w").close()
    res = {os.path.basename(r.video): r.status for r in extract_folder(str(videos), str(frames))}
    assert res == {"bad.mp4": "failed", "empty.avi": "failed", "good.mp4": "skipped", "ok.mp4": "done"}
    assert sorted(os.listdir(frames / "ok")) == [".done"] + [f"img_{t:05d}.jpg" for t in (1, 2, 3)]
    summary = extract_summary(extract_folder(str(videos), str(frames)))
    assert summary.endswith("4 videos: 0 extracted, 2 already done, 2 failed")
    # the CLI with 2 worker processes: the batch completes, failures reported, exit status 1
    out = run_cli("vid2img.py", videos, tmp_path / "f2", "--short_side", "16", "-j", "2", "--quiet")
    assert (
        out.returncode == 1
        and "FAILED" in out.stderr
        and "2 extracted, 0 already done, 2 failed" in out.stdout
    )
    assert cv2.imread(str(tmp_path / "f2" / "classA" / "good" / "img_00004.jpg")).shape == (16, 21, 3)


# ---------------------------------------------------------------------------------------------- gen_label
def read(path):
    with open(path) as f:
        return f.read().splitlines()


def test_gen_label_something_v1_and_jester(tmp_path):
    ann = tmp_path / "ann"
    os.makedirs(ann)
    (ann / "labels.csv").write_text("Pushing something\nDropping something\nHolding something\n")
    (ann / "train.csv").write_text("101;Pushing something\n102;Dropping something\n103;Holding something\n")
    (ann / "val.csv").write_text("201;Holding something\n202;Pushing something\n")
    out = tmp_path / "something-something-v1"
    frames = out / "20bn-something-something-v1"
    for vid, n in (("101", 30), ("102", 12), ("201", 7)):
        touch_frames(frames / vid, n, "{:05d}.jpg")
    res = gen_label(
        "something",
        str(out),
        labels=str(ann / "labels.csv"),
        train=str(ann / "train.csv"),
        val=str(ann / "val.csv"),
    )
    assert read(out / "category.txt") == ["Dropping something", "Holding something", "Pushing something"]
    assert read(out / "train_videofolder.txt") == ["101 30 2", "102 12 0"]
    assert read(out / "val_videofolder.txt") == ["201 7 1"]
    assert res["missing"] == {"train": ["103"], "val": ["202"]} and res["rows"] == {"train": 2, "val": 1}
    bad = tmp_path / "bad.csv"
    bad.write_text("101;Pushing something\n102 Dropping\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        gen_label(
            "jester",
            str(tmp_path / "j"),
            labels=str(ann / "labels.csv"),
            train=str(bad),
            val=str(ann / "val.csv"),
        )
    # the dataset config reads what was written
    cfg = dataset_config.get_dataset_config("something", root=str(tmp_path))
    assert cfg.num_classes == 3 and cfg.train_list == str(out / "train_videofolder.txt")


def test_gen_label_something_v2(tmp_path):
    (tmp_path / "labels.json").write_text(
        json.dumps(
            {
                "Holding something": "1",
                "Approaching something with your camera": "0",
                "Putting something on something": "2",
            }
        )
    )
    (tmp_path / "train.json").write_text(
        json.dumps(
            [
                {
                    "id": "5",
                    "label": "putting a cup on a table",
                    "template": "Putting [something] on [something]",
                    "placeholders": ["a cup", "a table"],
                },
                {
                    "id": "6",
                    "label": "holding pen",
                    "template": "Holding [something]",
                    "placeholders": ["pen"],
                },
            ]
        )
    )
    (tmp_path / "val.json").write_text(
        json.dumps([{"id": "7", "template": "Approaching [something] with your camera"}])
    )
    for vid, n in (("5", 3), ("6", 4), ("7", 5)):
        touch_frames(tmp_path / "out" / "20bn-something-something-v2-frames" / vid, n, "{:06d}.jpg")
    gen_label(
        "somethingv2",
        str(tmp_path / "out"),
        labels=str(tmp_path / "labels.json"),
        train=str(tmp_path / "train.json"),
        val=str(tmp_path / "val.json"),
    )
    assert read(tmp_path / "out" / "category.txt") == [
        "Approaching something with your camera",
        "Holding something",
        "Putting something on something",
    ]
    assert read(tmp_path / "out" / "train_videofolder.txt") == ["5 3 2", "6 4 1"]
    assert read(tmp_path / "out" / "val_videofolder.txt") == ["7 5 0"]


def test_gen_label_kinetics(tmp_path):
    header = "label,youtube_id,time_start,time_end,split,is_cc\n"
    (tmp_path / "train.csv").write_text(
        header + "riding a bike,abc,10,20,train,0\n"
        "abseiling,def,0,10,train,0\n"
        'playing "cello",ghi,5,15,train,0\n'
    )
    (tmp_path / "val.csv").write_text("youtube_id,time_start,time_end,split,label\nxyz,1,11,val,abseiling\n")
    images = tmp_path / "kinetics" / "images"
    touch_frames(images / "abc_000010_000020", 5)  # flat layout
    touch_frames(images / "abseiling" / "def_000000_000010", 6)  # class sub-folder
    touch_frames(images / "abseiling" / "xyz_000001_000011", 7)
    res = gen_label(
        "kinetics",
        str(tmp_path / "kinetics"),
        train=str(tmp_path / "train.csv"),
        val=str(tmp_path / "val.csv"),
    )
    labels = tmp_path / "kinetics" / "labels"
    assert read(labels / "category.txt") == ["abseiling", 'playing "cello"', "riding a bike"]
    assert read(labels / "train_videofolder.txt") == [
        "abc_000010_000020 5 2",
        "abseiling/def_000000_000010 6 0",
    ]
    assert read(labels / "val_videofolder.txt") == ["abseiling/xyz_000001_000011 7 0"]
    assert res["missing"]["train"] == ["ghi_000005_000015"]


def test_gen_label_activitynet_multilabel(tmp_path):
    def seg(label):
        return {"label": label, "segment": [0.0, 1.0]}

    db = {
        "database": {
            "aaa": {"subset": "training", "annotations": [seg("Surfing"), seg("Surfing"), seg("Archery")]},
            "bbb": {
                "subset": "training",
                "annotations": [seg("Archery"), seg("Ballet"), seg("Cooking"), seg("Diving")],
            },
            "ccc": {"subset": "validation", "annotations": [seg("Ballet")]},
            "ddd": {"subset": "testing", "annotations": []},
            "eee": {"subset": "validation", "annotations": [seg("Diving")]},
        }
    }
    (tmp_path / "an.json").write_text(json.dumps(db))
    out = tmp_path / "actnet"
    for vid, n in (("aaa", 9), ("bbb", 8), ("ccc", 7), ("ddd", 6)):
        touch_frames(out / "frames" / f"v_{vid}", n, "image_{:05d}.jpg")
    res = gen_label("actnet", str(out), annotations=str(tmp_path / "an.json"), prefix="v_")
    assert read(out / "classInd.txt") == ["Archery", "Ballet", "Cooking", "Diving", "Surfing"]
    assert read(out / "actnet_train_split.txt") == ["v_aaa,9,4,0", "v_bbb,8,0,1,2"]  # distinct, at most 3
    assert read(out / "actnet_val_split.txt") == ["v_ccc,7,1"]
    assert res["missing"] == {"train": [], "val": ["v_eee"]}
    cfg = dataset_config.get_dataset_config("actnet", data_dir=str(out))
    records = dataset.read_list_file(cfg.train_list, cfg.separator, cfg.num_classes, cfg.multi_label)
    assert [(r.path, r.num_frames) for r in records] == [("v_aaa", 9), ("v_bbb", 8)]
    assert cfg.image_tmpl == "image_{:05d}.jpg"


def test_gen_label_ucf101_and_hmdb51(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n3 BabyCrawling\n")
    (tmp_path / "trainlist01.txt").write_text(
        "Archery/v_Archery_g08_c01.avi 2\nApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02.avi 1\n"
    )
    (tmp_path / "testlist01.txt").write_text("BabyCrawling/v_BabyCrawling_g01_c01.avi\n")
    out = tmp_path / "UCF101"
    touch_frames(out / "jpg" / "v_Archery_g08_c01", 4)
    touch_frames(out / "jpg" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g09_c02", 5)
    touch_frames(out / "jpg" / "v_BabyCrawling_g01_c01", 6)
    gen_label(
        "ucf101",
        str(out),
        class_ind=str(tmp_path / "classInd.txt"),
        train=str(tmp_path / "trainlist01.txt"),
        val=str(tmp_path / "testlist01.txt"),
    )
    assert read(out / "labels" / "classInd.txt") == ["ApplyEyeMakeup", "Archery", "BabyCrawling"]
    assert read(out / "file_list" / "ucf101_rgb_train_split_1.txt") == [
        "v_Archery_g08_c01 4 1",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02 5 0",
    ]
    assert read(out / "file_list" / "ucf101_rgb_val_split_1.txt") == ["v_BabyCrawling_g01_c01 6 2"]

    splits = tmp_path / "testTrainMulti_7030_splits"
    os.makedirs(splits)
    (splits / "wave_test_split2.txt").write_text("w1.avi 1 \nw2.avi 2 \nw3.avi 0 \n")
    (splits / "clap_test_split2.txt").write_text("c1.avi 2 \n")
    (splits / "clap_test_split1.txt").write_text("c9.avi 1 \n")
    out = tmp_path / "HMDB51"
    for vid in ("w1", "w2", "w3", "c1"):
        touch_frames(out / "images" / vid, 3)
    gen_label("hmdb51", str(out), splits_dir=str(splits), split=2)
    assert read(out / "labels" / "classInd.txt") == ["clap", "wave"]
    assert read(out / "splits" / "hmdb51_rgb_train_split_2.txt") == ["w1 3 1"]
    assert read(out / "splits" / "hmdb51_rgb_val_split_2.txt") == ["c1 3 0", "w2 3 1"]


def test_gen_label_cli(tmp_path):
    (tmp_path / "labels.csv").write_text("Swiping Left\nNo gesture\n")
    (tmp_path / "train.csv").write_text("1;Swiping Left\n2;No gesture\n")
    (tmp_path / "val.csv").write_text("3;No gesture\n")
    touch_frames(tmp_path / "jester" / "20bn-jester-v1" / "1", 37, "{:05d}.jpg")
    out = run_cli(
        "gen_label.py",
        "jester",
        tmp_path / "jester",
        "--labels",
        tmp_path / "labels.csv",
        "--train",
        tmp_path / "train.csv",
        "--val",
        tmp_path / "val.csv",
    )
    assert out.returncode == 0, out.stderr
    assert "rows written: train 1, val 0" in out.stdout and "missing frames: train 2" in out.stderr
    assert read(tmp_path / "jester" / "train_videofolder.txt") == ["1 37 1"]
    missing_train = ["jester", str(tmp_path / "j2"), "--labels", "x"]
    assert run_script("scripts/gen_label.py", missing_train) == 2


# ---------------------------------------------------------------------------------------------- validate_data
@pytest.fixture
def frames_root(tmp_path):
    root = tmp_path / "frames"
    for vid in ("a", "b", "c"):
        make_frames(root / vid, 5)
    return root


def check(tmp_path, frames_root, rows, **kw):
    lst = tmp_path / "list.txt"
    lst.write_text("".join(r + "\n" for r in rows))
    n, problems = validate_list(str(lst), str(frames_root), template="img_{:05d}.jpg", num_classes=3, **kw)
    return n, [(p.kind, int(p.where.rsplit(":", 1)[1])) for p in problems], problems


def test_validate_clean(tmp_path, frames_root):
    assert check(tmp_path, frames_root, ["a 5 0", "b 5 1", "", "c 5 2"])[:2] == (3, [])


@pytest.mark.parametrize(
    "rows, expected",
    [
        (["a 5 0", "b 5", "c 5 2"], [("malformed", 2)]),
        (["a 5 0", "b five 1"], [("malformed", 2)]),
        (["a 5 0", "b 5 3", "c 5 -1"], [("label", 2), ("label", 3)]),
        (["a 5 0", "zzz 5 1"], [("missing_folder", 2)]),
        (["a 5 0", "b 6 1"], [("frame_count", 2)]),  # fewer frames than listed
        (["a 4 0", "b 5 1"], [("frame_count", 1)]),  # more frames than listed
    ],
)
def test_validate_catches_each_defect(tmp_path, frames_root, rows, expected):
    n, found, problems = check(tmp_path, frames_root, rows)
    assert n == len(rows) and found == expected
    assert all(str(p).startswith(f"{tmp_path / 'list.txt'}:") for p in problems)


def test_validate_numbering_gap_and_bad_images(tmp_path, frames_root):
    os.rename(frames_root / "a" / "img_00003.jpg", frames_root / "a" / "img_00006.jpg")  # same count, a gap
    _, found, problems = check(tmp_path, frames_root, ["a 5 0"])
    assert found == [("frame_count", 1)] and "missing frames 3" in problems[0].message
    assert "beyond the listed range 6" in problems[0].message
    open(frames_root / "b" / "img_00002.jpg", "w").close()  # empty
    data = (frames_root / "c" / "img_00003.jpg").read_bytes()
    (frames_root / "c" / "img_00003.jpg").write_bytes(data[: len(data) // 2])  # truncated
    (frames_root / "c" / "img_00005.jpg").write_text("not an image")
    _, found, problems = check(tmp_path, frames_root, ["b 5 1", "c 5 2"])
    assert found == [("bad_image", 1), ("bad_image", 2), ("bad_image", 2)]
    assert "empty file" in problems[0].message and "img_00003.jpg" in problems[1].message
    # --quick decodes frames 1, 3 (middle) and 5 only: the empty frame 2 of b goes unseen
    _, found, _ = check(tmp_path, frames_root, ["b 5 1", "c 5 2"], quick=True)
    assert found == [("bad_image", 2), ("bad_image", 2)]


def test_validate_cli(tmp_path, frames_root, capsys):
    lst = tmp_path / "list.txt"
    lst.write_text("a 5 0\nb 5 1\n")
    # status 0 and the usage error in this process; the problems found (status 1) from the command line
    assert run_script("scripts/validate_data.py", ["--list", str(lst)]) == 2  # no frames root / classes
    argv = ["--list", str(lst), "--frames_root", str(frames_root), "--num_classes", "2", "--quiet"]
    assert run_script("scripts/validate_data.py", argv) == 0
    assert "2 rows checked, OK" in capsys.readouterr().out
    lst.write_text("a 5 0\nb 5 7\nmissing 3 0\n")
    bad = run_cli(
        "validate_data.py",
        "--list",
        lst,
        "--frames_root",
        frames_root,
        "--num_classes",
        "2",
        "--quiet",
        "-j",
        "2",
    )
    assert bad.returncode == 1
    assert f"{lst}:2: [label]" in bad.stdout and f"{lst}:3: [missing_folder]" in bad.stdout
    assert "2 problems in 2 rows" in bad.stdout


def test_validate_videos_random_access_and_slow_seek(tmp_path, monkeypatch):
    """--video_root: frame counts as decoding gives them, random-access reads held to decoding from the start,
    and videos that cannot seek at every keyframe (packed B-frames) noted with how much more they decode."""
    from ops.tools import validate
    from tests.video_samples import clip, write_h264, write_nvop, write_packed

    frames = clip(20, 48, 64)
    videos = tmp_path / "videos"
    videos.mkdir()
    write_packed(str(videos / "packed.avi"), frames)  # keyframes 9, 15; exact seeks at 12, 18
    write_nvop(str(videos / "nvop.avi"), frames, (4, 11))  # 22 chunks, 20 frames
    write_h264(str(videos / "plain.mp4"), frames, "keyint=5:bframes=2:scenecut=0")
    lst = tmp_path / "list.txt"
    lst.write_text("packed 20 0\nnvop 22 1\nplain 20 2\n")
    kw = dict(template="", num_classes=3, video_root=str(videos))
    rows, found = validate_list(str(lst), None, **kw)
    assert rows == 3 and [(p.kind, p.where.rsplit(":", 1)[1]) for p in found] == [
        ("slow_seek", "1"),
        ("frame_count", "2"),
    ]
    assert "2 of its 2 keyframes after the first are no exact seek point" in found[0].message
    # the sampled reads and every single-frame read: from frames 0, 12, 18 instead of 0, 9, 12, 15, 18
    reads = validate.sample_reads(20, validate.zlib.crc32(b"packed"), False)
    singles = [np.array([t]) for t in range(1, 21)]
    ratio = validate.decoded_frames(reads + singles, np.array([0, 12, 18])) / validate.decoded_frames(
        reads + singles, np.array([0, 9, 12, 15, 18])
    )
    assert f"decode {ratio:.2f}x the frames" in found[0].message and ratio > 1
    assert (
        "listed 22 frames, decoding gives 20" in found[1].message and "its index lists 22" in found[1].message
    )
    # frames 3, 4, 11, 13 with starts 0, 5, 10 (0-based): 0..2, on to 3, seek to 10, on to 11 and 12
    assert validate.decoded_frames([np.array([3, 4, 11, 13])], np.array([0, 5, 10])) == 3 + 1 + 1 + 2
    summary = validate.summarize(str(lst), rows, found)
    assert "1 problems in 1 rows" in summary and "1 videos seek more slowly" in summary
    # a random-access read that differs from decoding from the start is a problem naming the frames
    real = validate.read_frames
    monkeypatch.setattr(validate, "read_frames", lambda v, n: real(v, np.maximum(np.asarray(n) - 1, 1)))
    _, found = validate_list(str(lst), None, **kw)
    bad = [p for p in found if p.kind == "random_access"]
    assert len(bad) == 3 and "plain.mp4: random-access reads of frames" in bad[2].message
    monkeypatch.undo()
    out = run_cli(
        "validate_data.py", "--list", lst, "--video_root", videos, "--num_classes", "3", "--quiet", "--quick"
    )
    assert out.returncode == 1 and f"{lst}:2: [frame_count]" in out.stdout and "[slow_seek]" in out.stdout
    lst.write_text("packed 20 0\nplain 20 2\n")  # notes alone: exit status 0
    out = run_cli("validate_data.py", "--list", lst, "--video_root", videos, "--num_classes", "3", "--quiet")
    assert out.returncode == 0 and f"{lst}:1: [slow_seek]" in out.stdout, out.stdout
