"""vocalmix.memory.keep_freed_memory: large freed blocks are reused without new page faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Run in a child process: the setting is process-wide and must not leak into the test run.
_CHILD = """
import resource, sys
import numpy as np
from vocalmix.memory import keep_freed_memory

def faults_per_block():
    np.ones(8_000_000)  # a first 64 MB block, allocated and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        np.ones(8_000_000)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5

plain = faults_per_block()
kept = keep_freed_memory()
print(kept, plain, faults_per_block())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_freed_blocks_are_reused_without_faulting_them_in_again():
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True).stdout.split()
    if out[0] != "True":
        pytest.skip("the C library is not glibc (mallopt refused)")
    plain, kept = float(out[1]), float(out[2])
    # glibc's default returns a 64 MB block to the system when it is freed: touching the
    # next one faults its pages in again (at least 64 MB / 2 MB huge pages = 32 faults).
    assert plain >= 32
    assert kept < plain / 10
