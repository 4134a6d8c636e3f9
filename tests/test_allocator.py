"""djepa_core/allocator.py: with the fixed thresholds, a freed 16 MiB block stays in the heap, so allocating and
writing it again faults no pages in (glibc's default unmaps it at every free). Counted by the kernel, not timed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, resource, sys
from djepa_core.allocator import tune_malloc
applied = tune_malloc() if sys.argv[1] == "tuned" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes, libc.memset.argtypes = [ctypes.c_void_p], [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
size = 16 << 20

def cycle():
    p = libc.malloc(size)
    libc.memset(p, 1, size)
    libc.free(p)

cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str, **env: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    applied, count = out.stdout.split()
    return applied, int(count)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_malloc_keeps_freed_blocks_in_the_heap() -> None:
    applied, tuned = faults("tuned")
    _, plain = faults("plain")
    assert applied == "True"
    # 10 x 16 MiB: glibc's default maps each block afresh at every malloc (a freed block raises its threshold to
    # the block's own size, and a block of that size is mmap-ed again), so each cycle faults (~400 here, fewer
    # with huge pages); tuned, the heap keeps them (0 here)
    assert plain >= 10 and tuned * 4 < plain, (plain, tuned)


def test_the_opt_out_is_respected() -> None:
    applied, _ = faults("tuned", DJEPA_MALLOC="default")
    assert applied == "False"
