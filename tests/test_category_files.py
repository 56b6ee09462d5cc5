"""Category files as datasets ship them: UCF101/HMDB51 classInd.txt rows `1 ApplyEyeMakeup` give the index and
the name; files of bare names (TSM category.txt, names with spaces) read as before."""

from __future__ import annotations

import pytest

from ops.data.dataset_config import get_dataset_config, numbered_class_names, read_class_names
from ops.tools.labels import read_ucf101

UCF = ["ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling"]


def _write(path, text: str, encoding: str = "utf-8") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return str(path)


@pytest.mark.parametrize("name, folder", [("ucf101", "UCF101"), ("hmdb51", "HMDB51")])
def test_builtin_datasets_read_class_ind_as_shipped(tmp_path, name, folder):
    rows = "".join(f"{i} {c}\r\n" for i, c in enumerate(UCF, 1))  # as UCF101 ships it: CRLF line ends
    _write(tmp_path / folder / "labels" / "classInd.txt", rows)
    cfg = get_dataset_config(name, str(tmp_path))
    assert cfg.categories == UCF and cfg.num_classes == 4


def test_numbered_names_any_order_zero_based_bom_tabs(tmp_path):
    shuffled = "3\tArchery\n1 ApplyEyeMakeup\n\n4  BabyCrawling  \n2 ApplyLipstick\n"  # tabs, spaces, a gap
    assert read_class_names(_write(tmp_path / "a.txt", shuffled)) == UCF
    zero = "".join(f"{i} {c}\n" for i, c in enumerate(UCF))
    assert read_class_names(_write(tmp_path / "b.txt", zero, "utf-8-sig")) == UCF  # with a byte-order mark
    spaced = "0 playing guitar\n1 tying bow tie\n"  # a name with spaces keeps them
    assert read_class_names(_write(tmp_path / "c.txt", spaced)) == ["playing guitar", "tying bow tie"]


def test_bare_names_unchanged(tmp_path):
    plain = [
        "Pushing something from left to right",
        "3 point shot",
        "Archery",
    ]  # one line starts with a number
    assert read_class_names(_write(tmp_path / "c.txt", "".join(f"{c}\n" for c in plain))) == plain
    assert numbered_class_names([(1, "Archery"), (2, "2 Ballet")], "x") is None


def test_bad_numbering_names_the_line(tmp_path):
    with pytest.raises(ValueError, match=r"d.txt:3: class number 2 repeats line 2"):
        read_class_names(_write(tmp_path / "d.txt", "1 A\n2 B\n2 C\n"))
    with pytest.raises(ValueError, match=r"e.txt:2: class number 5 outside 1..2"):
        read_class_names(_write(tmp_path / "e.txt", "1 A\n5 B\n"))
    with pytest.raises(ValueError, match=r"f.txt:2: class 'A' repeats line 1"):  # names still checked
        read_class_names(_write(tmp_path / "f.txt", "1 A\n2 A\n"))


def test_gen_label_ucf101_reads_the_same_way(tmp_path):
    ind = _write(tmp_path / "classInd.txt", "2 ApplyLipstick\n1\tApplyEyeMakeup\n")
    train = _write(tmp_path / "trainlist01.txt", "ApplyLipstick/v_ApplyLipstick_g01_c01.avi 2\n")
    val = _write(tmp_path / "testlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    names, splits = read_ucf101(ind, train, val)
    assert names == ["ApplyEyeMakeup", "ApplyLipstick"]
    assert [labels for _, labels in splits["train"]] == [[1]] and [labels for _, labels in splits["val"]] == [
        [0]
    ]
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'index name', got 'Archery'"):
        read_ucf101(_write(tmp_path / "bad.txt", "1 A\nArchery\n"), train, val)
