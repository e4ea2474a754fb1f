"""Freed arrays given back to the system while the interpreter runs.

glibc's malloc serves a block of 128 KiB or more from a mapping of its own, unmapped when freed,
until a block of that kind is freed: it then raises the threshold to that block's size (up to
32 MiB) and serves such blocks from its heaps, one heap per thread, where a freed block stays
resident for reuse unless it is at a heap's top.  A rank's arrays of one layer ([m, n] values,
their shares, the GEMM's blocks) are such blocks: the 32-layer prefill on 8 rank threads held
about 550 MiB of freed arrays (benchmarks/interpreter_scale.py: peak RSS 2.7x its inputs at 8
layers, 4.2x without).  A fixed threshold keeps every array of `MMAP_THRESHOLD` or more in its
own mapping.  The price: the pages of each new array are fresh (about 20% more CPU time there).
"""

from __future__ import annotations

import ctypes
import functools

MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


@functools.cache
def unmap_large_frees() -> bool:
    """Every block of `MMAP_THRESHOLD` bytes or more gets a mapping of its own, unmapped when
    freed, for the rest of the process (glibc's mallopt; nothing elsewhere).  True when set."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: its malloc has no such threshold to set
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
