"""`vocalmix compare`: layout, reference handling, columns, the rules' known balance, statistics, errors."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix import analysis
from vocalmix.cli import main
from vocalmix.compare import COLUMNS, CompareRequest, _projected_relative_loudness, descriptor_statistics, run_compare
from vocalmix.demo import demo_backing, demo_vocal

SR = 44100


def _song(folder, seed, with_mix=True, seconds=4.0):
    folder.mkdir(parents=True)
    vocal = demo_vocal(SR, seconds, seed=seed)
    backing = demo_backing(SR, seconds, seed=seed + 100)
    sf.write(folder / "vocal.wav", vocal.T, SR)
    sf.write(folder / "backing.flac", backing.T, SR, subtype="PCM_24")
    if with_mix:
        sf.write(folder / "mix.wav", (0.5 * vocal + backing).T * 0.8, SR)
    return folder


def test_compare_two_songs_with_rules(tmp_path, monkeypatch):
    songs = [_song(tmp_path / "in" / "one", 0), _song(tmp_path / "in" / "two", 1, with_mix=False)]
    monkeypatch.chdir(tmp_path)
    out = Path("out")  # relative: compare.json must still hold absolute paths
    result = run_compare(CompareRequest(songs, ["rules"], out))
    rows = {(r["song"], r["method"]): r for r in result.rows}
    assert set(rows) == {("one", "rules"), ("one", "reference"), ("two", "rules")}
    for song in ("one", "two"):
        for suffix in ("wav", "settings.json", "vocal.wav", "backing.wav"):
            assert (out / song / f"rules.{suffix}").is_file()
    # The reference is pointed at, never copied.
    note = (out / "one" / "reference.txt").read_text()
    assert str((tmp_path / "in" / "one" / "mix.wav").resolve()) in note
    link = out / "one" / "reference.wav"
    assert link.is_symlink() and link.resolve() == (tmp_path / "in" / "one" / "mix.wav").resolve()
    assert "no reference" in (out / "two" / "reference.txt").read_text()
    # The rules set vocal minus backing loudness to -1.77 LU; the stems must say so.
    assert rows[("one", "rules")]["relative_loudness_lu"] == pytest.approx(-1.77, abs=0.15)
    assert rows[("one", "rules")]["relative_loudness_source"] == "stems"
    # The reference is 0.5 * vocal + backing: its own balance, from the song's stems, is L(vocal) - L(backing).
    vocal, _ = sf.read(tmp_path / "in" / "one" / "vocal.wav", always_2d=True)
    backing, _ = sf.read(tmp_path / "in" / "one" / "backing.flac", always_2d=True)
    expected = analysis.integrated_loudness(vocal.T, SR) - analysis.integrated_loudness(backing.T, SR)
    assert rows[("one", "reference")]["relative_loudness_lu"] == pytest.approx(expected, abs=1e-6)
    assert rows[("one", "reference")]["mrstft_to_reference"] == 0.0
    assert 0 < rows[("one", "rules")]["mrstft_to_reference"] and 0 < rows[("one", "rules")]["ssm_similarity"] < 1
    assert math.isnan(rows[("two", "rules")]["mrstft_to_reference"])  # no reference, no distance
    with open(out / "descriptors.csv") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        assert COLUMNS[:8] == [
            "song",
            "method",
            "integrated_lufs",
            "lra_lu",
            "true_peak_dbtp",
            "relative_loudness_lu",
            "mrstft_to_reference",
            "ssm_similarity",
        ]
        lines = list(reader)
    assert len(lines) == 3
    written = next(r for r in lines if r["song"] == "one" and r["method"] == "rules")
    measured = analysis.integrated_loudness(sf.read(out / "one" / "rules.wav", always_2d=True)[0].T, SR)
    assert float(written["integrated_lufs"]) == pytest.approx(measured, abs=1e-3)
    manifest = json.loads((out / "compare.json").read_text())
    assert manifest["methods"] == ["rules"]
    written_mix = Path(manifest["songs"][0]["mixes"]["rules"]["mix"])
    assert written_mix.is_absolute() and written_mix == (out / "one" / "rules.wav").resolve()
    with open(out / "statistics_per_song.csv") as handle:
        per_song = list(csv.DictReader(handle))
    anova = [r for r in per_song if r["song"] == "one" and r["test"] == "anova"]
    assert {r["descriptor"] for r in anova} == {
        "rms_envelope_db",
        "odd_even_ratio_db",
        "harmonic_energy_db",
        "noisiness",
    }
    assert all(int(r["n"]) > 30 and 0 <= float(r["p_value"]) <= 1 for r in anova)  # 4 s of 46 ms frames
    for name in ("statistics.csv", "report.md", "plots/descriptors.png", "plots/ssm_one.png"):
        assert (out / name).stat().st_size > 0
    assert "descriptors.png" in (out / "report.md").read_text()
    # A second run, in two worker processes, reuses the renders and describes them identically.
    before = (out / "one" / "rules.wav").stat().st_mtime_ns
    again = run_compare(CompareRequest(songs, ["rules"], out, jobs=2, plots=False))
    assert (out / "one" / "rules.wav").stat().st_mtime_ns == before
    for row in again.rows:
        first = rows[(row["song"], row["method"])]
        for key in COLUMNS[2:-2]:
            assert row[key] == pytest.approx(first[key], nan_ok=True), key


def test_unavailable_or_failing_methods_are_reported_not_fatal(tmp_path, monkeypatch, capsys):
    from vocalmix import compare, methods

    def refuse(name, **options):
        if name == "cnn":
            raise ImportError("cnn weights missing in this test")
        if name == "cnn-e2e":
            return object()  # loads, then fails while rendering (below)
        return original(name, **options)

    def render(song, method, folder, force):
        if method == "cnn-e2e":
            raise RuntimeError("boom")
        return original_render(song, method, folder, force)

    original, original_render = methods.get_method, compare._render
    monkeypatch.setattr(methods, "get_method", refuse)
    monkeypatch.setattr(compare, "_render", render)
    song = _song(tmp_path / "song", 2, seconds=3.0)
    code = main(
        ["compare", str(song), "--methods", "rules,cnn,cnn-e2e", "--out", str(tmp_path / "out"), "-q", "--no-plots"]
    )
    out = capsys.readouterr().out
    assert code == 1  # a method failed on a song: reported, the others finished
    assert "not available: cnn (cnn weights missing in this test)" in out
    assert "failed: song / cnn-e2e: internal error RuntimeError: boom" in out
    assert "rules" in out and not (tmp_path / "out" / "song" / "cnn.wav").exists()
    assert (tmp_path / "out" / "song" / "rules.wav").is_file()
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["unavailable"] == {
        "cnn": "cnn weights missing in this test"
    }


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["compare", str(empty), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(empty) in err[0] and "vocal" in err[0]
    song = _song(tmp_path / "s", 3, seconds=2.0)
    assert main(["compare", str(song), "--methods", "rulez", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rulez" in err[0]


def test_projection_reads_the_balance_of_a_gain_only_mix():
    rng = np.random.default_rng(0)
    vocal = 0.1 * rng.standard_normal((1, 3 * SR))
    backing = 0.1 * rng.standard_normal((2, 3 * SR))
    mix = 0.5 * vocal + 1.5 * backing
    expected = analysis.integrated_loudness(0.5 * vocal, SR) - analysis.integrated_loudness(1.5 * backing, SR)
    assert _projected_relative_loudness(mix, vocal, backing) == pytest.approx(expected, abs=1e-6)


def test_statistics_match_scipy_and_skip_what_cannot_be_tested():
    from scipy import stats

    a, b, c = [1.0, 1.2, 0.9, 1.1], [2.0, 2.1, 1.8, 2.2], [1.0, 1.1, 1.2, 0.95]
    rows = []
    for method, values in (("rules", a), ("cnn", b), ("waveunet", c)):
        for song, value in enumerate(values):
            rows.append({"song": f"s{song}", "method": method, "lra_lu": value, "integrated_lufs": -14.0})
    out = descriptor_statistics(rows)
    anova = next(s for s in out if s["descriptor"] == "lra_lu" and s["test"] == "anova")
    assert anova["statistic"] == pytest.approx(stats.f_oneway(a, b, c).statistic)
    tukey = {(s["group_a"], s["group_b"]): s for s in out if s["descriptor"] == "lra_lu" and s["test"] == "tukey"}
    assert tukey[("rules", "cnn")]["p_value"] < 0.001 and tukey[("rules", "waveunet")]["p_value"] > 0.5
    assert tukey[("rules", "cnn")]["mean_difference"] == pytest.approx(np.mean(a) - np.mean(b))
    constant = next(s for s in out if s["descriptor"] == "integrated_lufs")
    assert constant["note"] == "no variation within methods"


def test_per_song_frame_statistics_match_scipy():
    from scipy import stats

    from vocalmix.compare import frame_statistics

    rng = np.random.default_rng(1)
    values = {"rules": rng.normal(-20, 1, 50), "cnn": rng.normal(-17, 1, 60), "reference": rng.normal(-20, 1, 55)}
    frames = {"song": {m: {"harmonic_energy_db": v, "noisiness": np.full(v.size, 0.2)} for m, v in values.items()}}
    out = frame_statistics(frames)
    anova = next(r for r in out if r["descriptor"] == "harmonic_energy_db" and r["test"] == "anova")
    assert anova["statistic"] == pytest.approx(stats.f_oneway(*values.values()).statistic)
    pairs = {
        (r["group_a"], r["group_b"]): r for r in out if r["descriptor"] == "harmonic_energy_db" and r["test"] == "tukey"
    }
    assert pairs[("rules", "cnn")]["p_value"] < 1e-6 and pairs[("rules", "reference")]["p_value"] > 0.05
    assert next(r for r in out if r["descriptor"] == "noisiness")["note"] == "no variation within methods"
