"""vocalmix.memory.skip_huge_page_advice: large numpy arrays are no longer backed by transparent huge pages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# A child process: the advice is process-wide. It touches a fresh 64 MB array and prints how much of the
# process' anonymous memory the kernel backed with huge pages while it did (kB, /proc/self/smaps_rollup).
_CHILD = """
import sys
import numpy as np
from vocalmix.memory import skip_huge_page_advice

def huge_kb():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])

if sys.argv[1] == "skip":
    print(skip_huge_page_advice())
else:
    print("kept")
before = huge_kb()
block = np.empty(16_000_000, dtype=np.float32)
block[:] = 1.0
print(huge_kb() - before)
"""


def _run(mode: str, env: dict | None = None) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True, env=environment
    )
    return done.stdout.split()


@pytest.mark.skipif(
    not (Path("/proc/self/smaps_rollup").exists() and _THP.exists() and "[madvise]" in _THP.read_text()),
    reason="needs Linux with transparent huge pages given on request (transparent_hugepage/enabled = madvise)",
)
def test_large_arrays_get_no_huge_pages_once_the_advice_is_off():
    advised = int(_run("keep")[1])
    if advised == 0:
        pytest.skip("the kernel backed no array with huge pages even when numpy asked (THP off or memory fragmented)")
    # numpy's default: a 64 MB array touched once is partly or wholly in 2 MB pages.
    assert advised >= 2048
    skipped = _run("skip")
    assert skipped[0] == "True"
    assert int(skipped[1]) == 0


def test_an_explicit_numpy_setting_is_left_alone():
    assert _run("skip", {"NUMPY_MADVISE_HUGEPAGE": "1"})[0] == "False"


_WORKER = """
import sys
import numpy as np

if sys.argv[1] == "init":
    from vocalmix.batch import _worker_init

    _worker_init(1)
core = getattr(np, "_core", None) or np.core
print(core.multiarray._set_madvise_hugepage(False))  # the setting in force until now
"""


def test_batch_workers_turn_the_advice_off_too():
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}

    def advice(mode: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", _WORKER, mode], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()

    if advice("plain") != "True":
        pytest.skip("numpy does not advise huge pages here by default (old kernel)")
    assert advice("init") == "False"
