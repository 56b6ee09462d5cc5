"""Dataset table: original on-disk layouts under the root, fixed original bugs, clear missing-data errors."""

import os

import pytest

from ops.data.dataset_config import DATASETS, DatasetNotFoundError, get_dataset_config


def _touch(path, lines=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(f"{x}\n" for x in (lines or [])))


def _cats(n):
    return [f"class{i}" for i in range(n)]


# dataset -> (category file, frames dir, train list, val list) relative to the root, template, classes
TSM_LAYOUT = {
    "something": (
        "something-something-v1/category.txt",
        "something-something-v1/20bn-something-something-v1",
        "something-something-v1/train_videofolder.txt",
        "something-something-v1/val_videofolder.txt",
        "{:05d}.jpg",
        174,
    ),
    "somethingv2": (
        "something-something-v2/category.txt",
        "something-something-v2/20bn-something-something-v2-frames",
        "something-something-v2/train_videofolder.txt",
        "something-something-v2/val_videofolder.txt",
        "{:06d}.jpg",
        174,
    ),
    "jester": (
        "jester/category.txt",
        "jester/20bn-jester-v1",
        "jester/train_videofolder.txt",
        "jester/val_videofolder.txt",
        "{:05d}.jpg",
        27,
    ),
    "ucf101": (
        "UCF101/labels/classInd.txt",
        "UCF101/jpg",
        "UCF101/file_list/ucf101_rgb_train_split_1.txt",
        "UCF101/file_list/ucf101_rgb_val_split_1.txt",
        "img_{:05d}.jpg",
        101,
    ),
    "hmdb51": (
        "HMDB51/labels/classInd.txt",
        "HMDB51/images",
        "HMDB51/splits/hmdb51_rgb_train_split_1.txt",
        "HMDB51/splits/hmdb51_rgb_val_split_1.txt",
        "img_{:05d}.jpg",
        51,
    ),
    "synthetic": (
        "synthetic/category.txt",
        "synthetic/frames",
        "synthetic/train_videofolder.txt",
        "synthetic/val_videofolder.txt",
        "img_{:05d}.jpg",
        8,
    ),
}


@pytest.mark.parametrize("name", sorted(TSM_LAYOUT))
def test_tsm_layouts(tmp_path, name, monkeypatch):
    cat, frames, train, val, tmpl, n = TSM_LAYOUT[name]
    _touch(tmp_path / cat, _cats(n))
    monkeypatch.chdir(
        tmp_path / cat.split("/")[0]
    )  # must not depend on the CWD (UA read jester's file from it)
    cfg = get_dataset_config(name, root=str(tmp_path))
    assert cfg.frames_root == str(tmp_path / frames)
    assert (cfg.train_list, cfg.val_list) == (str(tmp_path / train), str(tmp_path / val))
    assert (cfg.image_tmpl, cfg.num_classes, cfg.categories) == (tmpl, n, _cats(n))
    assert (cfg.separator, cfg.multi_label) == (" ", False)
    if name == "synthetic":
        from ops.data.synthetic import FLIP_ALLOWED  # the generator decides

        assert cfg.flip == FLIP_ALLOWED
    else:
        assert cfg.flip == (name not in ("something", "somethingv2", "jester"))
    assert cfg.video_root == (str(tmp_path / "synthetic/videos") if name == "synthetic" else None)


def test_kinetics_root_separator_and_lists(tmp_path, monkeypatch):
    os.makedirs(tmp_path / "kinetics")
    monkeypatch.setenv("ADAFOCUS_DATA", str(tmp_path))
    cfg = get_dataset_config("kinetics")
    assert cfg.frames_root == str(tmp_path / "kinetics/images")  # UA: ROOT + 'kinetics/images' (no separator)
    assert cfg.train_list == str(
        tmp_path / "kinetics/labels/train_videofolder.txt"
    )  # UA: relative to the CWD
    assert cfg.val_list == str(tmp_path / "kinetics/labels/val_videofolder.txt")
    assert (cfg.num_classes, cfg.categories, cfg.image_tmpl, cfg.flip) == (400, None, "img_{:05d}.jpg", True)


def test_root_precedence_and_missing_root(tmp_path, monkeypatch):
    _touch(tmp_path / "a/jester/category.txt", _cats(27))
    monkeypatch.setenv("ADAFOCUS_DATA", str(tmp_path / "b"))
    assert get_dataset_config("jester", root=str(tmp_path / "a")).dataset_dir == str(tmp_path / "a/jester")
    with pytest.raises(DatasetNotFoundError, match=r"dataset folder not found: .*b/jester[\s\S]*vid2img"):
        get_dataset_config("jester")
    monkeypatch.delenv("ADAFOCUS_DATA")
    with pytest.raises(DatasetNotFoundError, match="ADAFOCUS_DATA"):
        get_dataset_config("jester")


def test_missing_category_file_names_tool(tmp_path):
    os.makedirs(tmp_path / "jester")
    with pytest.raises(
        DatasetNotFoundError, match=r"category file not found: .*jester/category.txt[\s\S]*gen_label"
    ):
        get_dataset_config("jester", root=str(tmp_path))
    os.makedirs(tmp_path / "synthetic")
    with pytest.raises(DatasetNotFoundError, match="make_synthetic"):
        get_dataset_config("synthetic", root=str(tmp_path))


@pytest.mark.parametrize("name,n", [("actnet", 200), ("fcvid", 239)])
def test_activitynet_family(tmp_path, name, n):
    d = tmp_path / "data"
    _touch(d / "classInd.txt", _cats(n))
    cfg = get_dataset_config(name, data_dir=str(d))
    assert (cfg.frames_root, cfg.train_list, cfg.val_list) == (
        str(d / "frames"),
        str(d / f"{name}_train_split.txt"),
        str(d / f"{name}_val_split.txt"),
    )
    assert (cfg.num_classes, cfg.separator, cfg.multi_label, cfg.flip) == (
        n,
        ",",
        True,
        True,
    )
    assert cfg.image_tmpl == "image_{:05d}.jpg"  # the config's own prefix when nothing is extracted yet
    _touch(d / "frames/v_abc/img_00001.jpg")  # extracted with the original tool's default prefix
    assert get_dataset_config(name, data_dir=str(d)).image_tmpl == "img_{:05d}.jpg"
    # root form: <root>/<name>
    _touch(tmp_path / name / "classInd.txt", _cats(n))
    assert get_dataset_config(name, root=str(tmp_path)).dataset_dir == str(tmp_path / name)


def test_fcvid_class_count_checked(tmp_path):
    _touch(tmp_path / "classInd.txt", _cats(200))
    with pytest.raises(ValueError, match="expected 239"):
        get_dataset_config("fcvid", data_dir=str(tmp_path))


def test_minik_frames_dir_and_prefix(tmp_path):
    _touch(tmp_path / "minik_classInd.txt", _cats(200))
    cfg = get_dataset_config("minik", data_dir=str(tmp_path))
    assert (cfg.frames_root, cfg.separator, cfg.multi_label, cfg.image_tmpl) == (
        str(tmp_path),
        " ",
        False,
        "img_{:05d}.jpg",
    )
    assert cfg.train_list == str(tmp_path / "mini_train_videofolder.txt")
    _touch(tmp_path / "frames/vid a/image_00001.jpg")  # V1 layout: frames/ and image_ prefix
    cfg = get_dataset_config("minik", data_dir=str(tmp_path))
    assert (cfg.frames_root, cfg.image_tmpl) == (str(tmp_path / "frames"), "image_{:05d}.jpg")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        get_dataset_config("kinetics700", root=str(tmp_path))
    with pytest.raises(ValueError, match="data_dir"):
        get_dataset_config("jester", root=str(tmp_path), data_dir=str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="data_dir"):
        get_dataset_config("actnet", data_dir=str(tmp_path / "missing"))
    assert set(DATASETS) == {
        "kinetics",
        "something",
        "somethingv2",
        "jester",
        "ucf101",
        "hmdb51",
        "actnet",
        "fcvid",
        "minik",
        "synthetic",
    }
