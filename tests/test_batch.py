"""``vocalmix batch``: a catalogue renders, skips what is finished, survives bad songs and kills."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from vocalmix import analysis
from vocalmix.batch import SUMMARY_NAME, read_manifest, run_batch
from vocalmix.demo import demo_backing, demo_vocal
from vocalmix.errors import InputError

SECONDS = 5.0


def _song(folder: Path, seed: int) -> None:
    folder.mkdir(parents=True)
    sf.write(folder / "vocal.wav", demo_vocal(seconds=SECONDS, seed=seed).T, 44100)
    sf.write(folder / "backing.wav", demo_backing(seconds=SECONDS, seed=seed + 1).T, 44100)


def _manifest(tmp_path: Path, songs: list[str], extra_rows: list[dict] = ()) -> Path:
    path = tmp_path / "songs.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["vocal", "backing", "output", "loudness"])
        writer.writeheader()
        for name in songs:
            writer.writerow(
                {"vocal": f"{name}/vocal.wav", "backing": f"{name}/backing.wav", "output": "", "loudness": ""}
            )
        for row in extra_rows:
            writer.writerow(row)
    return path


def _summary(out: Path) -> dict[str, dict]:
    with open(out / SUMMARY_NAME, newline="") as f:
        return {row["song"]: row for row in csv.DictReader(f)}


def test_batch_renders_reports_bad_song_and_skips_finished(tmp_path):
    _song(tmp_path / "one", 0)
    _song(tmp_path / "two", 10)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "vocal.wav").write_bytes(b"not audio at all")
    manifest = _manifest(
        tmp_path,
        ["one", "broken", "two"],
        [{"vocal": "two/vocal.wav", "backing": "two/backing.wav", "output": "two_loud", "loudness": "-20"}],
    )
    out = tmp_path / "mixes"
    jobs = read_manifest(manifest, out)
    summary = run_batch(jobs, out, {"method": "rules"})

    rows = _summary(out)
    assert [r["song"] for r in summary.rows] == ["one", "broken", "two", "two_loud"]
    assert rows["broken"]["status"] == "error" and "vocal.wav" in rows["broken"]["message"]
    assert {rows[s]["status"] for s in ("one", "two", "two_loud")} == {"ok"}
    assert not list(out.glob("broken*")), "a failed song leaves nothing behind"
    # The per-song option is honoured: measured on the written file, not taken from the report.
    loud, rate = sf.read(out / "two_loud.wav", always_2d=True)
    assert abs(analysis.integrated_loudness(loud.T, rate) - (-20.0)) < 0.5
    plain, _ = sf.read(out / "two.wav", always_2d=True)
    assert abs(analysis.integrated_loudness(plain.T, rate) - (-20.0)) > 1.0

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")}
    again = run_batch(read_manifest(manifest, out), out, {"method": "rules"})
    statuses = {r["song"]: r["status"] for r in again.rows}
    assert statuses == {"one": "skipped", "broken": "error", "two": "skipped", "two_loud": "skipped"}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")} == stamps


def test_manifest_errors_name_the_row_and_column(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("vocal,backing,colour\na.wav,b.wav,red\n")
    with pytest.raises(InputError, match="unknown column 'colour'"):
        read_manifest(path, tmp_path)
    path.write_text("vocal\na.wav\n")
    with pytest.raises(InputError, match="no 'backing' column"):
        read_manifest(path, tmp_path)
    path.write_text("vocal,backing\nx/vocal.wav,x/backing.wav\ny/x.wav,y/b.wav\n")
    with pytest.raises(InputError, match="row 3.*also row 2"):
        read_manifest(path, tmp_path)
    path.write_text("vocal,backing,tempo\na.wav,b.wav,fast\n")
    with pytest.raises(InputError, match="row 2, column 'tempo'"):
        read_manifest(path, tmp_path)
    with pytest.raises(InputError, match="no such file"):
        read_manifest(tmp_path / "missing.csv", tmp_path)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_killed_batch_resumes_without_redoing_songs(tmp_path):
    names = ["a", "b", "c"]
    for i, name in enumerate(names):
        _song(tmp_path / name, 20 + 2 * i)
    manifest = _manifest(tmp_path, names)
    out = tmp_path / "mixes"
    command = [sys.executable, "-m", "vocalmix", "batch", str(manifest), "--out", str(out), "-q"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while not (out / "a.settings.json").exists():
            assert proc.poll() is None, "the batch ended before it could be killed"
            assert time.monotonic() < deadline, "the first song took too long"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("a.*")}
    # Nothing visible is half-written: every visible mix opens and has the input's length.
    for mix in out.glob("*.wav"):
        assert sf.info(mix).frames == int(SECONDS * 44100)

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = _summary(out)
    assert rows["a"]["status"] == "skipped"
    assert {rows["b"]["status"], rows["c"]["status"]} <= {"ok", "skipped"}
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("a.*")} == finished


def test_batch_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'vocalmix[ray]')")
    _song(tmp_path / "one", 30)
    manifest = _manifest(tmp_path, ["one"])
    out = tmp_path / "mixes"
    summary = run_batch(read_manifest(manifest, out), out, {"method": "rules"}, ray_address="local")
    assert [r["status"] for r in summary.rows] == ["ok"], summary.rows
    assert sf.info(out / "one.wav").frames == int(SECONDS * 44100)
