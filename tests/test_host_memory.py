"""ops/engine/host_memory.py: with keep_freed_memory() a large block freed and allocated again is not faulted in
afresh (glibc's default maps and unmaps it every time); --host_memory is applied by the entry scripts' setup."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys

import pytest

from ops.engine import backends, host_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Minor page faults of 10 allocations of a 64 MiB tensor (filled, so every page is touched) in a fresh process,
# after 30 that bring the heap to its steady state (an aligned block may not fit where the last one was freed).
PROBE = """
import resource, sys
import torch
from ops.engine.host_memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(30):
    torch.empty(2**24).fill_(1.0)  # 64 MiB, freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.empty(2**24).fill_(2.0)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=_env_without_thp(),
    ).stdout.split()
    return out[0], int(out[1])


def _env_without_thp() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
def test_a_freed_block_is_reused_without_page_faults():
    kept, faults_kept = _faults("keep")
    default, faults_default = _faults("release")
    assert (kept, default) == ("True", "False")
    # glibc's default: 16384 faults of 4 KiB pages per allocation (32 with transparent huge pages always on)
    assert faults_default >= 10 * 32 and faults_kept * 10 < faults_default


def test_the_setting_is_applied_by_the_backend_setup(monkeypatch):
    seen = []
    monkeypatch.setattr(backends, "apply_host_memory", seen.append)
    import torch

    for setting in ("keep", "release", None):
        args = argparse.Namespace(host_memory=setting, tf32="off", deterministic=False, amp=None)
        backends.configure_backends(args, torch.device("cpu"), training=True)
    assert seen == ["keep", "release", None]
    assert host_memory.apply_host_memory("release") is False
    with pytest.raises(ValueError, match="host_memory"):
        host_memory.apply_host_memory("free")


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
def test_keeping_memory_warns_about_thp_allocations(monkeypatch):
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    with pytest.warns(UserWarning, match="fragment"):
        host_memory.keep_freed_memory()
