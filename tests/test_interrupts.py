"""SIGTERM and Ctrl-C: the run stops with one line and 143/130, and leaves no temporary files."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import soundfile as sf

from vocalmix.demo import demo_backing, demo_vocal

SR = 44100


def _pair(folder, seconds):
    vocal, backing = folder / "vocal.wav", folder / "backing.wav"
    sf.write(vocal, demo_vocal(SR, seconds).T, SR)
    sf.write(backing, demo_backing(SR, seconds).T, SR)
    return vocal, backing


def _debris(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sigterm_while_writing_removes_the_temporary_file_and_exits_143(tmp_path):
    vocal, backing = _pair(tmp_path, 4.0)
    out = tmp_path / "mix.wav"
    # A temporary file left by an earlier run that was SIGKILLed: older than this run, its process gone.
    stale = tmp_path / f".mix.wav.vocalmix-{_dead_pid()}-0123456789ab.part"
    stale.write_bytes(b"\0" * 4096)
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    # The signal arrives from outside while the mix is half written: the writer sends it to its own process.
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        import soundfile
        from vocalmix.cli import main

        real_write = soundfile.SoundFile.write

        def write_then_get_killed(self, data):
            real_write(self, data)
            if not str(self.name).endswith(".part"):  # in-memory writes (measuring the written samples)
                return
            self.flush()
            assert os.path.getsize(self.name) > 0
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal is handled long before this ends

        # The files are written block by block (vocalmix/streaming.py): the first block is on disk.
        soundfile.SoundFile.write = write_then_get_killed
        sys.exit(main(["render", {str(vocal)!r}, {str(backing)!r}, "-o", {str(out)!r}, "--stems", "-q"]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip().splitlines() == ["vocalmix: terminated"]
    assert not out.exists()
    assert _debris(tmp_path) == []  # neither this run's temporary file nor the stale one


@pytest.mark.parametrize(
    "signum, code, line", [(signal.SIGTERM, 143, "vocalmix: terminated"), (signal.SIGINT, 130, "vocalmix: interrupted")]
)
def test_signal_during_a_render_is_one_line_and_the_shell_exit_code(tmp_path, signum, code, line):
    vocal, backing = _pair(tmp_path, 20.0)
    out = tmp_path / "mix.wav"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vocalmix", "render", str(vocal), str(backing), "-o", str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for text in proc.stderr:  # progress lines; deciding the settings takes seconds
        lines.append(text.rstrip("\n"))
        if "deciding settings" in text:
            proc.send_signal(signum)
            break
    rest = proc.stderr.read().splitlines()
    proc.wait(timeout=600)
    assert proc.returncode == code, "\n".join(lines + rest)
    assert rest == [line], "\n".join(lines + rest)
    assert not out.exists() and _debris(tmp_path) == []
