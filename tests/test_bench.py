"""Timing arithmetic of scripts/bench.py and scripts/bench_vs_official.py (ops/tools/benchmark.py), the
official-code loader's module isolation (ops/tools/official_tsm.py) and the clean skip without the code."""

from __future__ import annotations

import sys
import time

import pytest

from ops.tools.benchmark import median_ratio, spread, timed_rounds


def test_median_ratio_is_the_median_of_per_round_ratios():
    # round 2 is slowed for both callables alike (load): per-round ratios are all 2, the medians' ratio not
    times = {"baseline": [2.0, 20.0, 2.2, 1.8, 6.0], "preset": [1.0, 10.0, 1.1, 0.9, 3.0]}
    assert median_ratio(times, "baseline", "preset") == pytest.approx(2.0, abs=1e-12)
    times = {"a": [3.0, 1.0, 8.0], "b": [1.0, 1.0, 2.0]}  # ratios 3, 1, 4 -> 3
    assert median_ratio(times, "a", "b") == 3.0
    assert spread([1.0, 1.25, 0.75]) == 0.5
    with pytest.raises(ValueError):
        median_ratio({"a": [1.0], "b": [1.0, 2.0]}, "a", "b")


def test_timed_rounds_interleaves_and_counts_the_warmup_apart():
    calls: list[str] = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = timed_rounds(fns, warmup=2, rounds=3)
    assert calls == ["a", "b"] * 5
    assert [len(v) for v in times.values()] == [3, 3]


def test_cpu_clock_ignores_waiting_and_wall_clock_does_not():
    fns = {"sleep": lambda: time.sleep(0.05)}
    assert min(timed_rounds(fns, 0, 2, "wall")["sleep"]) >= 0.045
    assert max(timed_rounds(fns, 0, 2, "cpu")["sleep"]) < 0.02


def test_bench_vs_official_skips_cleanly_without_the_official_code(tmp_path, capsys):
    from scripts.bench_vs_official import main

    assert main([]) is None
    assert "no --official" in capsys.readouterr().out
    assert main(["--official", str(tmp_path)]) is None
    out = capsys.readouterr().out
    assert "skipped" in out and "uni_adafocus_tsm.py" in out


def test_official_packages_are_kept_apart_from_ours(tmp_path):
    from ops.tools.official_tsm import OfficialTSM

    (tmp_path / "archs").mkdir()
    (tmp_path / "ops").mkdir()
    (tmp_path / "archs" / "__init__.py").write_text("")
    (tmp_path / "ops" / "__init__.py").write_text("WHO = 'official'\n")
    (tmp_path / "archs" / "uni_adafocus_tsm.py").write_text("from ops import WHO\n")
    for name in ("dataset", "transforms", "temporal_shift"):
        (tmp_path / "ops" / f"{name}.py").write_text("")
    ours = sys.modules["ops"]
    off = OfficialTSM(str(tmp_path))
    assert off.arch.WHO == "official"
    assert sys.modules["ops"] is ours and not hasattr(ours, "WHO")
    assert str(tmp_path) not in sys.path
    with off.namespace():
        import ops  # noqa: PLC0415

        assert ops.WHO == "official"
    assert sys.modules["ops"] is ours and sys.modules["ops.data"].__file__.startswith(ours.__path__[0])


def test_official_summary_reports_per_round_speedups_and_rates():
    from ops.tools.bench_official import summary

    times = {"official": [2.0, 8.0, 3.0], "plain": [1.0, 2.0, 3.0], "fast": [0.5, 4.0, 1.0]}
    out = summary(times, "videos_per_s", lambda s: 8 / s)
    assert out["speedup_plain"] == 2.0  # ratios 2, 4, 1
    assert out["speedup_fast"] == 3.0  # ratios 4, 2, 3
    assert out["official_videos_per_s"] == 8 / 3.0 and out["fast_videos_per_s"] == 8.0
    assert out["rounds"] == 3 and "speedup_official" not in out


def test_each_side_gets_its_own_scripts_memory_setting():
    from ops.tools.bench_official import side_host_memory, thp_alloc
    from scripts.bench_vs_official import parse_args

    args = parse_args(
        []
    )  # as each code's own scripts run it: glibc's default for the official, keep for ours
    assert [side_host_memory(s, args) for s in ("official", "ours")] == ["release", "keep"]
    assert [thp_alloc(side_host_memory(s, args)) for s in ("official", "ours")] == [True, False]
    args = parse_args(["--official_host_memory", "keep", "--host_memory", "release"])
    assert [side_host_memory(s, args) for s in ("official", "ours")] == ["keep", "release"]
