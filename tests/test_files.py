"""Atomic writes: permissions from the umask, unique temporary names, no debris."""

import os
import re
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from vocalmix import files
from vocalmix.audio import write_audio
from vocalmix.files import part_path, remove_stale_parts, write_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.fixture(autouse=True)
def fresh_sweep(monkeypatch):
    monkeypatch.setattr(files, "_swept", set())


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027])
def test_files_get_the_umask_permissions(tmp_path, umask, mask):
    umask(mask)
    text = write_atomic(tmp_path / "a.json", "{}\n")
    data = write_atomic(tmp_path / "b.bin", b"\x00\x01")
    script = write_atomic(tmp_path / "c.py", "print(1)\n", executable=True)
    audio = write_audio(tmp_path / "d.wav", np.zeros((2, 100), np.float32), 44100)
    for path in (text, data, audio):
        assert _mode(path) == 0o666 & ~mask, path
    assert _mode(script) == 0o777 & ~mask
    assert (tmp_path / "a.json").read_text() == "{}\n" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_overwrite_is_atomic_and_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "out.json"
    write_atomic(target, "old")
    seen = []

    def failing_writer(tmp):
        tmp.write_text("half")
        seen.append(tmp)
        assert target.read_text() == "old"  # the destination is untouched while writing
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, failing_writer)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    # The temporary file was in the same folder (so the rename is atomic) and hidden.
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".out.json.")


def test_interrupt_during_write_removes_the_temporary_file(tmp_path):
    def interrupted(tmp):
        tmp.write_bytes(b"x" * 1000)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "mix.wav", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_are_unique_and_recognisable(tmp_path):
    names = {part_path(tmp_path / "mix.settings.json").name for _ in range(200)}
    assert len(names) == 200
    for name in names:
        assert re.fullmatch(rf"\.mix\.settings\.json\.vocalmix-{os.getpid()}-[0-9a-f]{{12}}\.part", name)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_parts_of_killed_runs_are_removed_on_the_next_write(tmp_path):
    dead = _dead_pid()
    alive = os.getppid()
    long_ago = time.time() - 3600
    stale = tmp_path / f".mix.wav.vocalmix-{dead}-0123456789ab.part"
    running = tmp_path / f".mix.wav.vocalmix-{alive}-0123456789ab.part"  # a concurrent run, still writing
    not_ours = tmp_path / ".mix.wav.abc12345.part"
    other = tmp_path / "notes.part"
    for path in (stale, running, not_ours, other):
        path.write_bytes(b"leftover")
        os.utime(path, (long_ago, long_ago))
    fresh = tmp_path / f".other.wav.vocalmix-{dead}-ba9876543210.part"  # newer than this run: leave it
    fresh.write_bytes(b"new")
    os.utime(fresh, (time.time() + 60, time.time() + 60))

    write_atomic(tmp_path / "mix.settings.json", "{}")
    assert not stale.exists()
    assert running.exists() and not_ours.exists() and other.exists() and fresh.exists()
    # Once per folder and process.
    stale.write_bytes(b"again")
    os.utime(stale, (long_ago, long_ago))
    assert remove_stale_parts(tmp_path) == []
