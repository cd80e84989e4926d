"""The command line: help, version, one-line errors with exit codes, machine-readable output."""

import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from vocalmix import __version__
from vocalmix.cli import main


def run(args, cwd=None):
    proc = subprocess.run(
        [sys.executable, "-m", "vocalmix", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vocalmix {__version__}"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("render", "analyze", "demo", "settings"):
        assert command in out


def test_python_m_is_the_same_program():
    code, out, _ = run(["--version"])
    assert code == 0 and out.strip() == f"vocalmix {__version__}"


def _assert_one_line_error(code, err, expected_code, *fragments):
    assert code == expected_code
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("vocalmix: error:")
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0]


def test_missing_file_is_one_line_exit_2(tmp_path):
    missing = tmp_path / "nope.wav"
    code, _, err = run(["analyze", str(missing)])
    _assert_one_line_error(code, err, 2, str(missing), "not found")


def test_render_refuses_bad_inputs_before_work(tmp_path):
    vocal = tmp_path / "v.wav"
    backing = tmp_path / "b.wav"
    sf.write(vocal, np.zeros((4410, 1)), 44100)
    sf.write(backing, np.random.default_rng(0).normal(0, 0.1, (44100, 2)), 44100)
    code, _, err = run(["render", str(vocal), str(backing), "-o", str(vocal), "-q"])
    _assert_one_line_error(code, err, 2, "one of the inputs")
    code, _, err = run(["render", str(vocal), str(backing), "-o", str(tmp_path / "m.wav"), "-q"])
    _assert_one_line_error(code, err, 2, str(vocal), "silent")
    code, _, err = run(["render", str(backing), str(backing), "-o", str(tmp_path / "m.mp3"), "-q"])
    _assert_one_line_error(code, err, 2, ".wav or .flac")
    code, _, err = run(["render", str(backing), str(backing), "-o", str(tmp_path / "m.wav"), "--ceiling", "3", "-q"])
    _assert_one_line_error(code, err, 2, "--ceiling")
    code, _, err = run(["render", str(backing), str(backing), "-o", str(tmp_path / "m.wav"), "--method", "magic", "-q"])
    _assert_one_line_error(code, err, 2, "unknown method")
    assert not (tmp_path / "m.wav").exists()


def test_settings_table_is_machine_readable():
    code, out, _ = run(["settings", "--json"])
    assert code == 0
    rows = json.loads(out)
    assert any(r["name"] == "compressor.ratio" and r["unit"] == ":1" for r in rows)


def test_length_limit_is_configurable(tmp_path, capsys):
    song = tmp_path / "long.wav"
    sf.write(song, np.random.default_rng(1).normal(0, 0.1, (8000 * 7, 1)), 8000)
    code = main(["render", str(song), str(song), "-o", str(tmp_path / "m.wav"), "--max-minutes", "0.1", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and str(song) in err and "limit is 0.1 min" in err


def test_analyze_json_is_stable_and_reports_progress_for_many_files(tmp_path, capsys):
    t = np.arange(44100 * 4) / 44100
    paths = []
    for i, amp in enumerate((0.5, 0.05)):
        p = tmp_path / f"tone{i}.wav"
        sf.write(p, np.stack([amp * np.sin(2 * np.pi * 1000 * t)] * 2).T, 44100, subtype="FLOAT")
        paths.append(str(p))
    assert main(["analyze", *paths, "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)["files"]
    # A stereo 1 kHz sine reads its peak level in LUFS (BS.1770): 0.5 -> -6.02, 0.05 -> -26.02.
    assert [round(r["integrated_loudness_lufs"], 1) for r in rows] == [-6.0, -26.0]
    assert "measuring" in captured.err and "2 of 2" in captured.err
    assert main(["analyze", paths[0], "--rate", "100"]) == 2


def _demo_pair(folder, seconds=4.0):
    from vocalmix.demo import demo_backing, demo_vocal

    vocal, backing = folder / "vocal.wav", folder / "backing.wav"
    sf.write(vocal, demo_vocal(44100, seconds).T, 44100)
    sf.write(backing, demo_backing(44100, seconds).T, 44100)
    return vocal, backing


def test_render_outputs_follow_the_umask(tmp_path):
    import os
    import stat

    vocal, backing = _demo_pair(tmp_path)
    out = tmp_path / "mix.wav"
    old = os.umask(0o027)
    try:
        assert main(["render", str(vocal), str(backing), "-o", str(out), "--stems", "-q"]) == 0
    finally:
        os.umask(old)
    written = [out, tmp_path / "mix.settings.json", tmp_path / "mix.vocal.wav", tmp_path / "mix.backing.wav"]
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {p.name: "0o640" for p in written}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_truncated_short_and_dc_only_vocals_are_one_line_errors(tmp_path, capsys):
    vocal, backing = _demo_pair(tmp_path)
    data = vocal.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:60])  # the header and 8 samples: libsndfile alone reads it as an 8-sample file
    short = tmp_path / "short.wav"
    sf.write(short, sf.read(vocal)[0][:44100], 44100)
    dc = tmp_path / "dc.wav"
    sf.write(dc, np.full((44100 * 4, 1), 0.6), 44100)
    for bad, problem in ((cut, "truncated"), (short, "is only 1.00 s long"), (dc, "DC")):
        code = main(["render", str(bad), str(backing), "-o", str(tmp_path / "m.wav"), "-q"])
        _assert_one_line_error(code, capsys.readouterr().err, 2, str(bad), problem)
    assert not (tmp_path / "m.wav").exists()


def test_stereo_vocal_in_opposite_polarity_with_dc_is_mixed_at_its_level(tmp_path, capsys):
    from vocalmix import analysis
    from vocalmix.demo import demo_backing, demo_vocal

    voice = demo_vocal(44100, 6.0)[0]
    vocal = tmp_path / "phase.wav"
    sf.write(vocal, np.stack([voice + 0.3, -0.99 * voice + 0.3]).T, 44100, subtype="FLOAT")
    backing = tmp_path / "backing.wav"
    sf.write(backing, demo_backing(44100, 6.0).T, 44100, subtype="FLOAT")
    out = tmp_path / "mix.wav"
    assert main(["render", str(vocal), str(backing), "-o", str(out), "--stems", "--format", "float", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"{vocal}: its channels cancel when folded" in err and "left channel" in err
    assert f"{vocal}: DC offset" in err
    vocal_stem = sf.read(tmp_path / "mix.vocal.wav", always_2d=True)[0].T
    backing_stem = sf.read(tmp_path / "mix.backing.wav", always_2d=True)[0].T
    mix = sf.read(out, always_2d=True)[0].T
    # The vocal sits at the default relative loudness (-1.77 LU), not 9 LU under with its gain at the cap.
    relative = analysis.integrated_loudness(vocal_stem, 44100) - analysis.integrated_loudness(backing_stem, 44100)
    assert abs(relative - (-1.77)) < 0.5
    # No DC reaches the mix: its mean is the backing's (the input offset was 0.3).
    assert np.max(np.abs(mix.mean(axis=1) - backing_stem.mean(axis=1))) < 1e-3


def test_analyze_reports_silence_as_null_and_finishes_a_batch_with_a_missing_file(tmp_path, capsys):
    t = np.arange(44100 * 4) / 44100
    tone, silent, missing = tmp_path / "tone.wav", tmp_path / "silent.wav", tmp_path / "missing.wav"
    sf.write(tone, np.stack([0.5 * np.sin(2 * np.pi * 1000 * t)] * 2).T, 44100, subtype="FLOAT")
    sf.write(silent, np.zeros((t.size, 2)), 44100)
    files = [str(silent), str(missing), str(tone)]

    assert main(["analyze", *files, "--json", "-q"]) == 2
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    rows = {r["file"]: r for r in document["files"]}
    assert list(rows) == [str(silent), str(tone)]  # the file after the missing one was measured too
    for field in ("integrated_loudness_lufs", "loudness_range_lu", "true_peak_dbtp", "sample_peak_dbfs", "tempo_bpm"):
        assert rows[str(silent)][field] is None, field
    assert round(rows[str(tone)]["integrated_loudness_lufs"], 1) == -6.0  # BS.1770: stereo 1 kHz sine at 0.5
    assert document["errors"] == [{"file": str(missing), "error": "file not found"}]
    assert [line for line in captured.err.splitlines() if "error" in line] == [
        f"vocalmix: error: {missing}: file not found"
    ]

    assert main(["analyze", *files, "-q"]) == 2
    table = capsys.readouterr().out.splitlines()
    silent_row = next(line for line in table if "silent.wav" in line)
    assert silent_row.split()[-4:] == ["silent", "silent", "-inf", "-"]
    assert "-200" not in "\n".join(table)
    assert any("-6.0" in line for line in table)
