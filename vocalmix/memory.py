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
import os
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


def skip_huge_page_advice() -> bool:
    """Stop numpy advising the kernel to back large arrays with transparent huge pages; True if it did.

    numpy ``madvise(MADV_HUGEPAGE)``s every array of 4 MB or more. Where the kernel's
    ``transparent_hugepage/defrag`` is ``madvise`` (this project's machines), each first touch
    of such memory then stalls while the kernel assembles and zeroes a 2 MB page: on a
    3-minute render 4.2-5.1 s of system time, against 1.1-1.3 s without the advice (same
    minutes; user time the same either way, so fewer TLB misses win nothing back). Like
    :func:`keep_freed_memory` this is for the command-line programs; an explicit
    ``NUMPY_MADVISE_HUGEPAGE`` in the environment is left to decide.
    """
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return False
    import numpy as np

    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    setter = getattr(core.multiarray, "_set_madvise_hugepage", None)
    if setter is None:
        return False
    setter(False)
    return True
