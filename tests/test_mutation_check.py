"""scripts/mutation_check.py: every listed bug still matches the code it changes (once), a bug is made in a copy only,
and one mutation run end to end is reported caught (the full check takes minutes and is not run here)."""

from __future__ import annotations

import json
import os

import pytest

from scripts import mutation_check as mc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_mutation_matches_its_code_once_and_names_existing_tests():
    assert len(mc.MUTATIONS) == 17 and len({m.name for m in mc.MUTATIONS}) == 17
    for m in mc.MUTATIONS:
        with open(os.path.join(ROOT, m.path), encoding="utf-8") as f:
            assert f.read().count(m.old) == 1, m.name
        assert m.old != m.new and all(
            os.path.isfile(os.path.join(ROOT, t)) for t in m.tests if t.startswith("tests/")
        )


def test_a_mutation_changes_the_copy_only_and_stale_text_is_an_error(tmp_path):
    m = next(m for m in mc.MUTATIONS if m.name == "cdf_tie_to_upper_bin")
    os.makedirs(tmp_path / os.path.dirname(m.path))
    with open(os.path.join(ROOT, m.path), encoding="utf-8") as f:
        (tmp_path / m.path).write_text(f.read())
    original = mc.apply(str(tmp_path), m)
    changed = (tmp_path / m.path).read_text()
    assert m.new in changed and m.old not in changed and changed == original.replace(m.old, m.new)
    with open(os.path.join(ROOT, m.path), encoding="utf-8") as f:
        assert f.read() == original  # the repository is untouched
    with pytest.raises(
        ValueError, match="cdf_tie_to_upper_bin: models/uniadafocus/policies.py holds its text 0"
    ):
        mc.apply(str(tmp_path), m)  # already applied: the text is gone


def test_one_mutation_end_to_end_is_caught(capsys):
    assert mc.main(["--only", "cdf_tie_to_upper_bin", "--no-baseline", "--timeout", "300"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("caught  cdf_tie_to_upper_bin (frame selection")
    summary = json.loads(lines[-1])
    assert summary["caught"] == ["cdf_tie_to_upper_bin"] and summary["missed"] == summary["errors"] == []
