"""Host memory: the process keeps the memory it frees for its next allocations (glibc malloc, Linux).

glibc serves every block above its mmap threshold (which settles at 32 MiB at most) with a fresh mmap and unmaps
it on free; the activations of a video batch are such blocks, so every forward and backward faults all of its
activation memory in again, and the kernel zeroes each page before handing it over. Measured on a 2-core CPU VM
(Uni-AdaFocus-TSM, 2 threads): the eval forward at batch 8 took 4.2-5.1 s (3.8-4.5 s of it system time) with
glibc's defaults and 2.1-2.3 s with `keep_freed_memory()`; peak resident memory 1.46 -> 1.89 GiB.

`keep_freed_memory()` turns malloc's mmap off (every block comes from the heap) and raises the trim threshold to
2 GiB, so freed blocks stay in the process and are reused. Outputs are unchanged; the process keeps its peak heap
until it exits (as jemalloc or tcmalloc would), and the heap settles after a few batches (a training step at batch
2: 4.29 GiB resident from step 5 to step 30, as with glibc's defaults). With torch's THP_MEM_ALLOC_ENABLE=1
(2 MiB-aligned blocks) the heap fragments and keeps growing (4.78 -> 5.16 GiB over the same 30 steps): it warns.
The entry scripts call it unless `--host_memory release`. Elsewhere than glibc (macOS, musl, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
import warnings

HOST_MEMORY = ("keep", "release")
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest value


def keep_freed_memory() -> bool:
    """Makes glibc malloc keep freed memory in the process (see the module docstring); returns whether it did
    (False where the C library is not glibc)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if os.environ.get("THP_MEM_ALLOC_ENABLE") == "1":
        warnings.warn(
            "THP_MEM_ALLOC_ENABLE=1 with --host_memory keep: 2 MiB-aligned blocks fragment the heap, which grows "
            "slowly; unset it (freed memory is reused anyway) or use --host_memory release",
            stacklevel=2,
        )
    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def apply_host_memory(setting: str | None) -> bool:
    """Applies `--host_memory` ('keep', the default when None, or 'release': glibc's own behaviour); returns
    whether freed memory is kept."""
    if setting not in (None, *HOST_MEMORY):
        raise ValueError(f"--host_memory must be one of {HOST_MEMORY}, got {setting!r}")
    return setting != "release" and keep_freed_memory()
