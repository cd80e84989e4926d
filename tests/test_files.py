"""Atomic writes: permissions from the umask, unique temporary names, no debris."""

import json
import os
import re
import stat
import subprocess
import sys
import time
import types

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


# -- options: never replace, flush to disk -------------------------------------------------------
def test_exclusive_write_never_replaces_an_existing_file(tmp_path):
    target = tmp_path / "answer.json"
    write_atomic(target, "first", replace=False)
    with pytest.raises(FileExistsError):
        write_atomic(target, "second", replace=False)
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["answer.json"]  # the temporary file is gone either way


def test_durable_write_flushes_the_file_before_it_gets_its_name(tmp_path, monkeypatch):
    target = tmp_path / "answer.json"
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append((os.fstat(fd).st_ino, target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(target, "kept", durable=True)
    assert synced == [(os.stat(target).st_ino, False)]
    write_atomic(tmp_path / "other.json", "not flushed")
    assert len(synced) == 1


# -- the writers that use the helper: a failing write leaves the old file and no debris -----------
def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_checkpoint_write_is_atomic(tmp_path, umask):
    import torch

    from training.train import save_checkpoint

    umask(0o027)
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"state_dict": {"w": torch.arange(4.0)}})
    assert _mode(path) == 0o640  # the umask's, not mkstemp's 0600
    before = path.read_bytes()
    # Tensors first (written into the zip), then an object pickle refuses: the write fails half way.
    with pytest.raises(Exception, match="pickle|lambda|attribute"):
        save_checkpoint(path, {"state_dict": {"w": torch.zeros(10_000)}, "bad": lambda: 0})
    assert path.read_bytes() == before
    assert _names(tmp_path) == ["best.pt"]
    assert torch.load(path, weights_only=True)["state_dict"]["w"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_listening_submission_is_flushed_never_replaces_and_leaves_no_debris_on_failure(tmp_path, monkeypatch):
    from vocalmix.listening import server

    document = {"listener_id": "listener-1", "ratings": []}
    monkeypatch.setattr(server.time, "strftime", lambda *a: "20261201T000000Z")
    tokens = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    # The server's own name draws (the helper's temporary names use the real secrets module).
    monkeypatch.setattr(server, "secrets", types.SimpleNamespace(token_hex=lambda n: next(tokens)))
    first = server.store_submission(tmp_path, document)
    second = server.store_submission(tmp_path, {**document, "ratings": [1]})  # the first name drawn is taken
    assert first.name == "20261201T000000Z-listener-1-aaaaaa.json"
    assert second.name == "20261201T000000Z-listener-1-bbbbbb.json"
    assert json.loads(first.read_text())["ratings"] == [] and json.loads(second.read_text())["ratings"] == [1]

    def disk_error(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", disk_error)  # the submission is flushed before it is published
    monkeypatch.setattr(server, "secrets", types.SimpleNamespace(token_hex=lambda n: "cccccc"))
    with pytest.raises(OSError, match="Input/output"):
        server.store_submission(tmp_path, document)
    assert _names(tmp_path / "responses") == [first.name, second.name]


def test_listening_page_files_replace_old_ones_atomically(tmp_path):
    from vocalmix.listening.build import write_json_atomic

    path = write_json_atomic(tmp_path / "test.json", {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}\n'
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "test.json", {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1} and _names(tmp_path) == ["test.json"]


def test_waveunet_song_cache_is_written_whole_under_its_own_name(tmp_path, umask):
    from training.waveunet_data import _save_npy

    umask(0o022)
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = write_atomic(tmp_path / "song-0123abcd.npy", lambda tmp: _save_npy(tmp, data))
    assert _names(tmp_path) == ["song-0123abcd.npy"]  # np.save given a name would have added ".npy"
    assert np.array_equal(np.load(path), data) and _mode(path) == 0o644


def test_reverb_estimator_save_is_atomic(tmp_path, monkeypatch):
    import torch

    from training import reverb_estimation

    path = tmp_path / "estimator.pt"
    path.write_bytes(b"old")

    class Estimator:
        save = reverb_estimation.ReverbEstimator.save

        def state(self):
            return {"bad": lambda: 0}

    with pytest.raises(Exception, match="pickle|lambda|attribute"):
        Estimator().save(path)
    assert path.read_bytes() == b"old" and _names(tmp_path) == ["estimator.pt"]
    Estimator.state = lambda self: {"n_in": 3}
    Estimator().save(path)
    assert torch.load(path, weights_only=True) == {"n_in": 3}
