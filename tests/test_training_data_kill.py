"""Issue 7: a *killed* ``vocalmix dataset build`` resumes without redoing finished songs
and without corrupt shards.

The in-process resume test (tests/test_training_data.py) simulates the interruption with an
exception; this one starts the real command in a subprocess, SIGKILLs it while songs are
being processed, and resumes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vocalmix.errors import InputError
from vocalmix.nets.cnn_targets import TASKS as TARGETS_BY_TASK
from vocalmix.training import data as D
from vocalmix.training.datasets import synthetic_songs

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

# Small but not instant: ~0.3 s per song on one core after ~3-5 s of start-up, so the build
# spends several seconds between its first finished song and its manifest.
N_SONGS = 16
SECONDS = 6.0
SEED = 3
TASKS = ("level", "compression", "eq")
KILL_AFTER = 2  # finished songs to wait for before the kill
WAIT_S = 120.0


def _command(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vocalmix",
        "dataset",
        "build",
        f"synthetic:{N_SONGS}",
        str(out),
        "--serial",
        "--no-progress",
        "--tasks",
        ",".join(TASKS),
        "--eq-count",
        str(3 * N_SONGS),
        "--synthetic-seconds",
        str(SECONDS),
        "--shard-blocks",
        "8",
        "--seed",
        str(SEED),
    ]


def _start(out: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "wb") as fh:  # a file, not a pipe: a full pipe would stall the build
        return subprocess.Popen(_command(out), stdout=fh, stderr=subprocess.STDOUT, env=env)


def _finish(proc: subprocess.Popen, log: Path, timeout: float = WAIT_S) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"build did not finish within {timeout} s:\n{log.read_text(errors='replace')}")
    assert rc == 0, f"build failed ({rc}):\n{log.read_text(errors='replace')}"


def _finished(work: Path) -> list[Path]:
    """Work files under their final names (temporary files are hidden ``.*.part``)."""
    return sorted(p for p in work.glob("*.pt") if not p.name.startswith("."))


def _fingerprint(p: Path) -> tuple:
    st = p.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size, hashlib.sha256(p.read_bytes()).hexdigest()


def test_sigkilled_build_resumes_without_redoing_songs_or_corrupt_shards(tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    work = killed / "work"
    stems = {s.file_stem: s.id for s in synthetic_songs(N_SONGS, SECONDS, SEED)}
    assert len(stems) == N_SONGS

    # The uninterrupted reference build runs alongside (two cores; it also slows the other).
    ref_proc = _start(reference, tmp_path / "reference.log")
    proc = _start(killed, tmp_path / "killed.log")
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if (killed / "manifest.json").exists() or proc.poll() is not None:
                break
            if work.is_dir() and len(_finished(work)) >= KILL_AFTER:
                break
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=30)
    except BaseException:
        for p in (proc, ref_proc):
            if p.poll() is None:
                p.kill()
                p.wait()
        raise
    log = (tmp_path / "killed.log").read_text(errors="replace")
    if (killed / "manifest.json").exists():
        ref_proc.kill()
        ref_proc.wait()
        pytest.skip(
            f"the build finished before it could be killed (machine too fast for {N_SONGS} songs); nothing to resume"
        )
    if rc != -signal.SIGKILL:
        ref_proc.kill()
        ref_proc.wait()
        pytest.fail(f"build ended on its own ({rc}) before the kill or the timeout:\n{log}")
    done = _finished(work)
    assert len(done) >= KILL_AFTER, f"no song finished within {WAIT_S} s:\n{log}"
    assert len(done) < N_SONGS or not (killed / "manifest.json").exists()

    # What the kill left: no manifest, so the reader refuses the folder; every file under a
    # final name is a complete song result; anything else is a hidden temporary file that
    # no reader looks at (the resume removes it).
    with pytest.raises(InputError, match="manifest"):
        D.load_split(killed, "level", "train")
    for p in work.iterdir():
        if p.name.startswith("."):
            assert p.name.endswith(".part"), p
            continue
        assert p.suffix == ".pt" and p.stem in stems, p
        result = torch.load(p, map_location="cpu", weights_only=False)
        assert result["id"] == stems[p.stem] and result["blocks"].shape[1:] == D.FEATURE_SHAPE
    for p in (killed / "shards").iterdir():  # only if the kill hit the packing
        if not p.name.startswith("."):
            assert torch.load(p, weights_only=True)["features"].shape[1:] == D.FEATURE_SHAPE, p
    before = {p.name: _fingerprint(p) for p in done}

    # Resume with the same command, to completion.
    _finish(_start(killed, tmp_path / "resumed.log"), tmp_path / "resumed.log")
    _finish(ref_proc, tmp_path / "reference.log")

    # Finished songs were not recomputed: same inode, mtime and bytes (a rewrite renames
    # a new file into place, so the inode and mtime would change).
    for name, fp in before.items():
        assert _fingerprint(work / name) == fp, f"{name} was recomputed by the resume"
    assert {p.stem for p in _finished(work)} == set(stems)
    for folder in (work, killed / "shards"):
        assert not [p for p in folder.iterdir() if p.name.startswith(".")], "temporary files left behind"

    # A complete, readable dataset ...
    manifest = D.read_manifest(killed)
    assert sorted(manifest["tasks"]) == sorted(TASKS)
    for task in TASKS:
        total = 0
        for split in D.SPLITS:
            d = D.load_split(killed, task, split)
            assert d.features.shape[1:] == D.FEATURE_SHAPE and d.targets.shape == (len(d), len(TARGETS_BY_TASK[task]))
            assert set(d.songs) <= set(manifest["splits"][split])
            total += len(d)
        assert total == sum(manifest["tasks"][task]["blocks"].values()) and total > 0, task

    # ... identical to the uninterrupted build: the same shard files holding equal tensors
    # (not compared as bytes: torch.save names the archive after the temporary file, whose
    # name holds the writer's pid), and the same manifest apart from its creation time.
    names = sorted(p.name for p in (killed / "shards").iterdir())
    assert names == sorted(p.name for p in (reference / "shards").iterdir()) and names
    for name in names:
        sa, sb = (torch.load(f / "shards" / name, weights_only=True) for f in (killed, reference))
        assert sa.keys() == sb.keys(), name
        for key in sa:
            same = torch.equal(sa[key], sb[key]) if torch.is_tensor(sa[key]) else sa[key] == sb[key]
            assert same, (name, key)
    ma, mb = (json.loads((f / "manifest.json").read_text()) for f in (killed, reference))
    ma.pop("created"), mb.pop("created")
    assert ma == mb
