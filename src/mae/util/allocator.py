"""Keep freed memory in the process, so that each training step does not fault it in anew.

glibc's malloc hands large freed blocks back to the kernel (blocks above its mmap threshold
are unmapped; a free top of the heap is trimmed), and the next step's tensors of the same
sizes then arrive as fresh pages, each zeroed by the kernel when first touched: some 8-23
thousand page faults per ViT-T bf16 CPU step, 10-20% of its time (docs/benchmarks.md). With
the mmap threshold at glibc's ceiling and no trimming, from the third step on the heap is
reused and a step faults almost nothing. The cost: the process keeps its peak heap until it
exits, which a training process reaches at every step anyway.

The training commands and the benchmarks call `keep_freed_memory()`; `import mae` does not,
since a library should not change how a user's own process manages its memory.
MAE_KEEP_FREED_MEMORY=0 turns it off; off glibc (macOS, musl, Windows) it does nothing.
"""

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses more on 64-bit: blocks above it are always mapped
NEVER_TRIM = 2**31 - 1  # the largest value mallopt takes (an int)


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse; True when it took both settings."""
    if os.environ.get("MAE_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) & bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
