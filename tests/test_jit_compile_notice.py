"""vocalmix.jit_cache.compile_notice: a first run's kernel compilation is told once; cache hits are not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numba

from vocalmix.jit_cache import compile_notice


def _kernel(module: str):
    def add_one(x):
        return x + 1

    add_one.__module__ = module
    return numba.njit(add_one)


def test_the_first_compilation_of_the_packages_kernels_is_told_once():
    told: list[str] = []
    first, second, foreign = _kernel("mypkg.effects"), _kernel("mypkg"), _kernel("otherpkg.effects")
    with compile_notice(told.append, package="mypkg"):
        foreign(1.0)  # another package's kernel: not told
        assert told == []
        first(1.0)
        first(1)  # a second signature of the same kernel
        second(1.0)
    assert len(told) == 1 and "compiling the effect kernels" in told[0]
    later = _kernel("mypkg.effects")
    later(2.0)  # compiled after the notice was withdrawn
    assert len(told) == 1


_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from kernels_for_notice import add_one
    from vocalmix.jit_cache import compile_notice

    with compile_notice(print, package="kernels_for_notice"):
        add_one(1.0)
    """
)


def test_a_kernel_loaded_from_the_cache_is_not_told(tmp_path):
    (tmp_path / "kernels_for_notice.py").write_text(
        "import numba\n\n\n@numba.njit(cache=True)\ndef add_one(x):\n    return x + 1\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def run() -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path)], capture_output=True, text=True, check=True, env=env
        )
        return done.stdout.splitlines()

    first = run()
    assert len(first) == 1 and str(tmp_path / "cache") in first[0]
    assert run() == []  # the second run loads the kernel from the cache
