"""Keep freed memory in the process for reuse, so that large audio buffers are not faulted in anew.

A render allocates and frees many arrays of a whole song (a 3-minute stereo float64 copy is
127 MB). glibc serves each block above its mmap threshold (32 MB at most) with a fresh
``mmap`` and returns it with ``munmap`` when freed, so every such array is faulted in again
page by page. On virtual machines that hand freed guest pages back to the host (this
project's Firecracker machines report free pages) a fault costs tens of microseconds: a
64 MB array costs 0.08-0.4 s of system time to touch, and a 3-minute render spent more
system time than user time. With mmap disabled for large blocks and the heap not trimmed,
freed blocks stay in the process and the next array reuses them without faults.

The price is that memory freed during a run is not given back to the system until the
process exits; the peak is what the run needed anyway. So this is for the command-line
programs (one render or one batch per process), not something a library import does to
its host process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

#: Freed memory above this much at the top of the heap is still given back (1 GiB).
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory; True if it did.

    A no-op returning False where the C library is not glibc (macOS, Windows, musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
