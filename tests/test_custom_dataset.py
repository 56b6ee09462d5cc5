"""A dataset given by its files (`main.py custom RGB --categories F --train_list F --val_list F --frames_root DIR
| --video_root DIR`): it trains, evaluates (main.py, main_nViewEval.py, test_early_exit.py) and validates
(scripts/validate_data.py) like a built-in one, with the same list checks, and its class names reach the
checkpoint."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from ops.data.dataset import VideoDataset
from ops.data.dataset_config import DatasetNotFoundError, custom_config, python_template
from ops.data.lists import ListFileError
from ops.data.synthetic import TEMPLATE
from ops.data.video_io import FrameFolder, read_frames
from ops.engine.checkpoint import read_checkpoint
from ops.engine.evaluate import run_early_exit, run_nview
from ops.engine.runlog import read_metrics
from ops.engine.train import run
from ops.opts import parse_args
from tests.run_checks import top1_from_scores
from tests.test_entry_scripts import TINY
from tests.test_video_containers import write_video

# The tsm recipe of `custom` with the tiny networks of the synthetic tests (same model as `synthetic RGB` + TINY).
MODEL = (
    TINY + "--glance_arch resnet18 --focus_arch resnet18 --glance_output_stride 16 --pretrain none".split()
)


@pytest.fixture(scope="module")
def files(data_root, tmp_path_factory):
    """The synthetic dataset's files under other names (4 training and 3 validation videos: one batch each),
    and lossless .mkv videos of the validation videos."""
    src = os.path.join(data_root, "synthetic")
    out = tmp_path_factory.mktemp("custom")
    shutil.copy(os.path.join(src, "category.txt"), out / "classes.txt")
    for split, keep in (("train", 4), ("val", 3)):
        with open(os.path.join(src, f"{split}_videofolder.txt")) as f:
            (out / f"{split}.txt").write_text("".join(f.readlines()[:keep]))
    (out / "videos").mkdir()
    for line in (out / "val.txt").read_text().splitlines():
        name, n, _ = line.split()
        frames = read_frames(FrameFolder(os.path.join(src, "frames", name), TEMPLATE), range(1, int(n) + 1))
        write_video(str(out / "videos" / f"{name}.mkv"), frames, "ffv1", "bgr0", {})
    return {
        "categories": str(out / "classes.txt"),
        "train": str(out / "train.txt"),
        "val": str(out / "val.txt"),
        "frames": os.path.join(src, "frames"),
        "videos": str(out / "videos"),
        "dir": out,
    }


def _custom(files: dict, runs: str, *extra: str, script: str = "main", lists=("train", "val")):
    argv = ["custom", "RGB", "--categories", files["categories"], "--root_log", runs, *MODEL]
    argv += [a for k in lists for a in (f"--{k}_list", files[k])]
    if "--video_root" not in extra:
        argv += ["--frames_root", files["frames"]]
    return parse_args(argv + list(extra), script=script)


def test_custom_dataset_trains_evaluates_and_validates_from_its_files(files, data_root, tmp_path):
    from scripts.validate_data import main as validate_data

    args = _custom(files, str(tmp_path), "--epochs", "1", "--seed", "0")
    assert args.store_name.startswith("TSM_custom_RGB_resnet18_shift8_blockres_avg_segment4_e1")
    metrics = run(args)
    ckpt = os.path.join(args.run_dir, "ckpt.best.pth.tar")
    saved = read_checkpoint(ckpt)
    names = open(files["categories"]).read().split()
    assert saved["categories"] == names and saved["model_config"]["num_classes"] == 3
    recorded = [r for r in read_metrics(os.path.join(args.log_dir, "metrics.jsonl")) if r["split"] == "test"]
    assert recorded[-1]["top1"] == metrics["top1"]

    # evaluation needs no training list; the same files as the built-in dataset give the same logits
    scores = {k: str(tmp_path / f"{k}.npz") for k in ("custom", "builtin", "videos")}
    again = run(
        _custom(
            files,
            str(tmp_path),
            "--evaluate",
            "--resume",
            ckpt,
            "--save_scores",
            scores["custom"],
            lists=("val",),
        )
    )
    assert again["top1"] == metrics["top1"]
    builtin = ["synthetic", "RGB", "--root_dataset", data_root, "--root_log", str(tmp_path), *MODEL]
    run(
        parse_args(
            builtin
            + ["--evaluate", "--resume", ckpt, "--val_list", files["val"], "--save_scores", scores["builtin"]]
        )
    )
    from_videos = _custom(
        files, str(tmp_path), "--evaluate", "--resume", ckpt, "--video_root", files["videos"],
        "--save_scores", scores["videos"], lists=("val",),
    )  # fmt: skip
    run(from_videos)
    a, b, c = (np.load(scores[k]) for k in ("custom", "builtin", "videos"))
    np.testing.assert_allclose(a["logits"], b["logits"], rtol=1e-6, atol=0)
    np.testing.assert_allclose(a["logits"], c["logits"], rtol=1e-6, atol=0)  # lossless videos = frames
    assert a["ids"].tolist() == b["ids"].tolist()

    three = str(tmp_path / "three.npz")
    nview = run_nview(
        _custom(files, str(tmp_path), "--resume", ckpt, "--test_crops", "3", "--save_scores", three,
                script="nview", lists=("val",))
    )  # fmt: skip
    # the 3-crop accuracy is that of the saved 3-view mean logits against the custom list's labels (computed here)
    assert nview["views"] == 3 and nview["top1"] == pytest.approx(top1_from_scores(three, files["val"]))
    assert again["top1"] == pytest.approx(top1_from_scores(scores["custom"], files["val"]))
    early_exit = _custom(
        files, str(tmp_path), "--resume", ckpt, "--criteria", "confidence", script="early_exit"
    )
    curves = run_early_exit(early_exit)
    assert len(curves["confidence"]) == 403
    with open(os.path.join(early_exit.log_dir, "log.csv")) as f:  # operating points name their thresholds
        said = [line for line in f if "scripts/predict.py --exit_threshold" in line]
    assert len(said) == 2
    [
        float(line.split("thresholds ")[1].split(":")[0]) for line in said
    ]  # one number per exit before the last

    base = ["--dataset", "custom", "--categories", files["categories"], "--quiet"]
    assert (
        validate_data(
            base
            + ["--train_list", files["train"], "--val_list", files["val"], "--frames_root", files["frames"]]
        )
        == 0
    )
    assert validate_data(base + ["--val_list", files["val"], "--video_root", files["videos"], "--quick"]) == 0
    bad = tmp_path / "bad.txt"
    bad.write_text("val_00000 12 0\nval_00001 12\nval_00002 99 1\n")
    assert validate_data(base + ["--val_list", str(bad), "--video_root", files["videos"]]) == 1


def test_custom_dataset_flags_are_checked(files, tmp_path, capsys):
    def error(*argv: str, script: str = "main") -> str:
        with pytest.raises(SystemExit):
            parse_args(list(argv), script=script)
        return capsys.readouterr().err

    cats, train, val = files["categories"], files["train"], files["val"]
    base = ["custom", "RGB", "--categories", cats, "--val_list", val]
    assert "needs --train_list" in error(*base, "--frames_root", "f")
    assert "--frames_root DIR (frame folders) or --video_root DIR" in error(*base, "--train_list", train)
    assert "one of them" in error(*base, "--train_list", train, "--frames_root", "f", "--video_root", "v")
    assert "needs --categories" in error(
        "custom", "RGB", "--train_list", train, "--val_list", val, "--frames_root", "f"
    )
    assert "needs --train_list" in error(*base, "--frames_root", "f", "--resume", "c", script="early_exit")
    assert "--root_dataset" in error(*base, "--frames_root", "f", "--evaluate", "--root_dataset", "r")
    assert "--image_tmpl: frame template 'x.jpg'" in error(
        *base, "--frames_root", "f", "--evaluate", "--image_tmpl", "x.jpg"
    )
    assert "applies with --frames_root" in error(
        *base, "--video_root", "v", "--evaluate", "--image_tmpl", "{:05d}.jpg"
    )
    assert "--categories only applies to the custom dataset" in error(
        "something", "RGB", "--categories", cats
    )
    assert "--video_ext only applies with --video_root" in error("something", "RGB", "--video_ext", "avi")
    ok = parse_args(
        base + ["--video_root", "v", "--video_ext", "avi", "--evaluate"]
    )  # no training list needed
    assert ok.video_ext == ".avi" and ok.train_list is None
    tmpl = parse_args(base + ["--frames_root", "f", "--evaluate", "--image_tmpl", "frame_%06d.png"])
    assert tmpl.image_tmpl == "frame_{:06d}.png" == python_template("frame_%06d.png")


def test_custom_files_get_the_checks_of_built_in_datasets(files, tmp_path):
    def config(categories=files["categories"], **kw):
        return custom_config(categories=categories, train_list=files["train"], val_list=files["val"], **kw)

    cfg = config(frames_root=files["frames"])
    assert cfg.num_classes == 3 and cfg.categories == open(files["categories"]).read().split()
    with pytest.raises(DatasetNotFoundError, match="custom: category file not found: .*nope.txt"):
        config(categories=str(tmp_path / "nope.txt"), frames_root=files["frames"])
    blank = tmp_path / "blank.txt"
    blank.write_text("a\n\nb\n")
    with pytest.raises(ValueError, match=f"{blank}:2: empty class name"):
        config(categories=str(blank), frames_root=files["frames"])
    twice = tmp_path / "twice.txt"
    twice.write_text("a\nb\na\n")
    with pytest.raises(ValueError, match=f"{twice}:3: class 'a' repeats line 1"):
        config(categories=str(twice), frames_root=files["frames"])
    rows = tmp_path / "rows.txt"
    for text, reason in (("val_00000 12 0\nval_00001 12\n", ":2: expected 'path num_frames label'"),
                         ("val_00000 12 3\n", ":1: label 3 outside \\[0, 3\\)")):  # fmt: skip
        rows.write_text(text)
        with pytest.raises(ListFileError, match=f"{rows}{reason}"):
            VideoDataset(cfg, "val", list_file=str(rows))
    with pytest.raises(
        DatasetNotFoundError, match="list file not found: .*none.txt[\\s\\S]*path num_frames label"
    ):
        VideoDataset(cfg, "val", list_file=str(tmp_path / "none.txt"))
    multi = tmp_path / "multi.txt"
    multi.write_text("val_00000 12 2 0\n")
    ds = VideoDataset(config(frames_root=files["frames"], multi_label=True), "val", list_file=str(multi))
    assert ds.records[0].labels == (0, 2) and ds.target(ds.records[0]).tolist() == [0, 2, -1]


def test_gen_label_custom_writes_the_lists_of_class_folders(files, tmp_path, capsys):
    from scripts.gen_label import main as gen_label
    from scripts.validate_data import main as validate_data

    frames = np.zeros((5, 32, 48, 3), np.uint8) + np.arange(5, dtype=np.uint8)[:, None, None, None] * 40
    tree = tmp_path / "videos"
    for rel, codec, pix in (("walk/a.avi", "mpeg4", "yuv420p"), ("walk/b.mkv", "ffv1", "bgr0"),
                            ("walk/c.webm", "libvpx-vp9", "yuv420p"), ("run/d.mp4", "libx264", "yuv420p"),
                            ("run/e.mov", "prores", "yuv422p10le")):  # fmt: skip
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        write_video(str(tree / rel), frames, codec, pix, {})
    (tree / "run/broken.mp4").write_bytes(b"\x00" * 100)
    (tree / "run/notes.txt").write_text("not a video")
    out = tmp_path / "lists"
    assert gen_label(["custom", str(out), "--videos_dir", str(tree), "--val_fraction", "0.34"]) == 0
    assert "left out: run/broken.mp4" in capsys.readouterr().err
    assert (out / "classes.txt").read_text() == "run\nwalk\n"  # sorted: label 0 = run
    rows = (out / "train.txt").read_text().splitlines() + (out / "val.txt").read_text().splitlines()
    assert sorted(rows) == [
        "run/d.mp4 5 0",
        "run/e.mov 5 0",
        "walk/a.avi 5 1",
        "walk/b.mkv 5 1",
        "walk/c.webm 5 1",
    ]
    assert len((out / "val.txt").read_text().splitlines()) == 2  # one of each class
    lists = ["--categories", str(out / "classes.txt"), "--train_list", str(out / "train.txt")]
    assert validate_data(["--dataset", "custom", *lists, "--val_list", str(out / "val.txt"), "--video_root", str(tree), "--quiet"]) == 0  # fmt: skip
    # frame folders: the synthetic ones, grouped into class folders by symbolic links
    for line in open(files["val"]):
        name, _, label = line.split()
        (tmp_path / "frames" / f"class{label}").mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.join(files["frames"], name), tmp_path / "frames" / f"class{label}" / name)
    out = tmp_path / "from_frames"
    assert (
        gen_label(["custom", str(out), "--frames_dir", str(tmp_path / "frames"), "--val_fraction", "0"]) == 0
    )
    expected = sorted(
        f"class{lab}/{name} {n} {lab}" for name, n, lab in (x.split() for x in open(files["val"]))
    )
    assert (
        sorted((out / "train.txt").read_text().splitlines()) == expected
        and (out / "val.txt").read_text() == ""
    )
