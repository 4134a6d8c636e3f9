"""glibc malloc settings for generation loops: keep freed memory in the heap instead of returning it to the kernel.

A sampler allocates and frees the same activation-sized blocks at every AR and head step. With glibc's defaults
blocks above a sliding threshold are mmap-ed and munmap-ed each time, and the heap's top is trimmed back to the
kernel, so every step faults its pages in again (zeroed by the kernel). On this CPU that cost 12% of the time of
djepa-m256 at batch 64 (2000 -> 1754 ms/image, 66% -> 78% of the matmul rate) and 25-30% on the tiny serving
model (bench/RESULTS.md "Page faults"). `tune_malloc` fixes the mmap threshold at glibc's maximum (32 MiB: larger
blocks are still mmap-ed) and the trim threshold at 1 GiB. The process then keeps its peak heap; it does not grow
past it.

The `djepa` command applies it at start (`DJEPA_MALLOC=default` keeps glibc's settings). Service replicas set the
same through their environment at process start instead (service/deployments.py REPLICA_ENV), which also limits
them to one arena: a worker thread's arena is only chosen when the thread first allocates.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's maximum on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30
# the same as environment variables, read by glibc when a process starts (`tune_malloc` cannot undo the
# layout of what was allocated before it), plus one arena for every thread; service replicas start with these
MALLOC_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
              "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's mmap and trim thresholds for this process; True when applied (False: not glibc, or
    `DJEPA_MALLOC=default`)."""
    if os.environ.get("DJEPA_MALLOC", "") == "default" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success; setting either threshold also stops glibc moving them itself
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
