"""The rules method and `vocalmix render`, end to end, against the rules' own definitions."""

import json
import logging

import numpy as np
import pytest
import soundfile as sf

from vocalmix import analysis
from vocalmix.cli import main
from vocalmix.demo import DEMO_TEMPO_BPM, demo_backing, demo_vocal
from vocalmix.rules.compression import THRESHOLD_FLOOR_DB
from vocalmix.rules.reverb import reverb_time_for_tempo
from vocalmix.settings import MixSettings

SR = 44100


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    vocal, backing = folder / "vocal.wav", folder / "backing.flac"
    sf.write(vocal, demo_vocal(SR, seconds=10.0).T, SR, subtype="PCM_24")
    sf.write(backing, demo_backing(SR, seconds=10.0).T, SR, subtype="PCM_24")
    return folder, vocal, backing


@pytest.fixture(scope="module")
def rendered(demo_files):
    folder, vocal, backing = demo_files
    out = folder / "mix.wav"
    assert main(["render", str(vocal), str(backing), "-o", str(out), "--stems", "-q"]) == 0
    doc = json.loads((folder / "mix.settings.json").read_text())
    read = {
        k: sf.read(folder / f"mix{s}.wav", dtype="float64")[0].T
        for k, s in (("mix", ""), ("vocal", ".vocal"), ("backing", ".backing"))
    }
    return folder, doc, read


def test_level_rule_hits_the_relative_loudness(rendered):
    _, doc, audio = rendered
    relative = analysis.integrated_loudness(audio["vocal"], SR) - analysis.integrated_loudness(audio["backing"], SR)
    assert relative == pytest.approx(-1.77, abs=0.5)
    assert doc["report"]["level"]["target_relative_lu"] == -1.77


def test_stems_sum_to_the_mix(rendered):
    _, _, audio = rendered
    residual = audio["mix"] - audio["vocal"] - audio["backing"]
    assert np.max(np.abs(residual)) < 3 * 2**-23  # three 24-bit roundings


def test_mix_respects_the_true_peak_ceiling(rendered):
    _, doc, audio = rendered
    assert analysis.true_peak(audio["mix"], SR) <= -1.0 + 0.01
    assert doc["report"]["output_stage"]["true_peak_dbtp"] <= -1.0


def test_compression_search_follows_the_rule(rendered):
    _, doc, _ = rendered
    report = doc["report"]["compressor"]
    steps = report["steps"]
    final = steps[-1]
    assert final["loudness_range_lu"] < report["target_lra_lu"] or report["stopped_by"] in (
        "threshold floor",
        "compressor threshold range",
    )
    searched = [s for s in steps if s["threshold_db"] is not None]
    peak_db = report["vocal_peak_dbfs"]
    for k, step in enumerate(searched):
        assert step["threshold_re_peak_db"] == pytest.approx(-3.0 * k)
        # The rule's ratio 3.0 + 0.1 k on OmniCompressor's 1..16 / 0.2 grid (halves round up, as JUCE does),
        # and the threshold on its 0.1 dB grid: the search measures what the plug-in can hold.
        assert step["ratio"] == pytest.approx(1.0 + 0.2 * np.floor((2.0 + 0.1 * k) / 0.2 + 0.5 + 1e-9))
        assert step["threshold_db"] == pytest.approx(round(peak_db - 3.0 * k, 1), abs=1e-9)
        assert step["threshold_re_peak_db"] >= THRESHOLD_FLOOR_DB
    for step in searched[:-1]:  # the search only goes on while the target is not met
        assert step["loudness_range_lu"] >= report["target_lra_lu"]


def test_eq_rule_bands_and_signs(rendered):
    _, doc, _ = rendered
    report = doc["report"]["eq"]
    bands = [b for b in doc["settings"]["eq"]["bands"] if b["enabled"]]
    assert len(bands) <= 4
    centres = report["band_centres_hz"]
    for band in bands:
        assert band["type"] == "peak" and band["q"] == 1.0 and band["frequency_hz"] in centres
        i = centres.index(band["frequency_hz"])
        diff = report["normalised_difference_db"][i]
        assert band["gain_db"] == pytest.approx(max(-60, min(15, -diff)), abs=0.05)  # on MultiEQ's 0.1 dB grid
        if band["gain_db"] > 0:
            assert diff < 0 and int(band["frequency_hz"]) in report["vocal_essential"]
        else:
            assert diff > 0 and int(band["frequency_hz"]) in report["backing_essential"]


def test_reverb_time_follows_the_tempo(rendered):
    _, doc, _ = rendered
    tempo = doc["report"]["reverb"]["tempo_bpm"]
    assert tempo == pytest.approx(DEMO_TEMPO_BPM, rel=0.02)
    # The formula's value on FdnReverb's 0.1 s grid.
    assert doc["settings"]["reverb"]["reverb_time_s"] == pytest.approx(round(-tempo / 45 + 40 / 9, 1))


def test_tempo_formula_is_clamped_to_the_plugin_range():
    assert reverb_time_for_tempo(120) == pytest.approx(40 / 9 - 120 / 45)
    assert reverb_time_for_tempo(300) == 0.1
    assert reverb_time_for_tempo(-500) == 9.0


def test_settings_file_renders_identically(rendered):
    folder, _, audio = rendered
    again = folder / "again.wav"
    assert (
        main(
            [
                "render",
                str(folder / "vocal.wav"),
                str(folder / "backing.flac"),
                "-o",
                str(again),
                "--settings",
                str(folder / "mix.settings.json"),
                "-q",
            ]
        )
        == 0
    )
    assert np.array_equal(sf.read(again, dtype="float64")[0].T, audio["mix"])
    assert MixSettings.from_json((folder / "again.settings.json").read_text()) == MixSettings.from_json(
        (folder / "mix.settings.json").read_text()
    )


def test_loudness_target_with_limiter(demo_files):
    folder, vocal, backing = demo_files
    out = folder / "loud.wav"
    assert main(["render", str(vocal), str(backing), "-o", str(out), "--loudness", "-9", "-q"]) == 0
    mix = sf.read(out, dtype="float64")[0].T
    assert analysis.true_peak(mix, SR) <= -1.0 + 0.01
    assert analysis.integrated_loudness(mix, SR) == pytest.approx(-9, abs=0.5)


def test_existing_output_needs_force(demo_files, rendered):
    folder, vocal, backing = demo_files
    before = (folder / "mix.wav").read_bytes()
    assert main(["render", str(vocal), str(backing), "-o", str(folder / "mix.wav"), "-q"]) == 2
    assert (folder / "mix.wav").read_bytes() == before


def test_real_songs(shared_audio, tmp_path):
    for song in sorted((shared_audio / "songs").iterdir()):
        out = tmp_path / f"{song.name}.wav"
        assert (
            main(["render", str(song / "vocal.flac"), str(song / "backing.flac"), "-o", str(out), "--stems", "-q"]) == 0
        )
        vocal = sf.read(tmp_path / f"{song.name}.vocal.wav", dtype="float64")[0].T
        backing = sf.read(tmp_path / f"{song.name}.backing.wav", dtype="float64")[0].T
        relative = analysis.integrated_loudness(vocal, SR) - analysis.integrated_loudness(backing, SR)
        assert relative == pytest.approx(-1.77, abs=0.1), song.name  # level decided last, on the snapped chain
        assert analysis.true_peak(sf.read(out, dtype="float64")[0].T, SR) <= -0.99


def test_karaoke_clip_at_16khz_comes_back_at_input_rate(shared_audio, tmp_path):
    clip = shared_audio / "karaoke" / "amy_14_05"
    out = tmp_path / "k.wav"
    assert main(["render", str(clip / "vocal.flac"), str(clip / "backing.flac"), "-o", str(out), "-q"]) == 0
    info = sf.info(out)
    assert info.samplerate == 16000 and info.channels == 2


def test_return_level_mode_puts_the_reverb_14_lu_below_the_mix():
    from dataclasses import replace

    from vocalmix.mixing import process_vocal
    from vocalmix.rules.method import RulesMethod

    vocal, backing = demo_vocal(SR, seconds=8.0), demo_backing(SR, seconds=8.0)
    decision = RulesMethod(reverb_mode="return-level").decide(vocal, backing, SR)
    s = decision.settings
    w = s.reverb.dry_wet_pct / 100
    assert 0 < w < 1
    # The return as a send would carry it: the fully wet reverb, scaled by the share and the fader.
    wet_only = process_vocal(vocal, SR, replace(s, reverb=replace(s.reverb, dry_wet_pct=100.0)), upto="reverb")
    reverb_return = wet_only * w * 10 ** (s.level.vocal_gain_db / 20)
    mix = backing + process_vocal(vocal, SR, s)  # before the output stage, which scales both alike
    distance = analysis.integrated_loudness(mix, SR) - analysis.integrated_loudness(reverb_return, SR)
    assert distance == pytest.approx(14.0, abs=0.5)


def test_backing_without_tempo_falls_back_and_says_so(caplog):
    from vocalmix.rules.method import RulesMethod
    from vocalmix.rules.reverb import FALLBACK_TEMPO_BPM

    rng = np.random.default_rng(5)
    backing = (rng.normal(0, 0.05, (2, 8 * SR))).astype(np.float32)  # steady noise: no beat
    vocal = demo_vocal(SR, seconds=8.0)
    logger = logging.getLogger("vocalmix")
    logger.addHandler(caplog.handler)  # the CLI stops propagation to the root logger
    try:
        decision = RulesMethod().decide(vocal, backing, SR)
    finally:
        logger.removeHandler(caplog.handler)
    assert "no clear tempo" in caplog.text
    assert decision.report["reverb"]["tempo_source"].startswith("fallback")
    assert decision.report["reverb"]["reverb_time_s"] == pytest.approx(reverb_time_for_tempo(FALLBACK_TEMPO_BPM))
    # The decided settings are on FdnReverb's 0.1 s grid (the level is decided on that chain).
    assert decision.settings.reverb.reverb_time_s == round(reverb_time_for_tempo(FALLBACK_TEMPO_BPM), 1)


def test_hand_edited_settings_file_errors_name_the_field(demo_files, rendered, capsys):
    folder, vocal, backing = demo_files
    doc = json.loads((folder / "mix.settings.json").read_text())
    doc["settings"]["compressor"]["ratio"] = 99
    bad = folder / "edited.json"
    bad.write_text(json.dumps(doc))
    code = main(["render", str(vocal), str(backing), "-o", str(folder / "bad.wav"), "--settings", str(bad), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert str(bad) in err and "compressor.ratio" in err
    assert not (folder / "bad.wav").exists()


def test_settings_output_may_not_replace_the_settings_input(demo_files, rendered):
    folder, vocal, backing = demo_files
    source = folder / "same.settings.json"
    source.write_text((folder / "mix.settings.json").read_text())
    before = source.read_bytes()
    assert (
        main(
            [
                "render",
                str(vocal),
                str(backing),
                "-o",
                str(folder / "same.wav"),
                "--settings",
                str(source),
                "--force",
                "-q",
            ]
        )
        == 2
    )
    assert source.read_bytes() == before


def test_threaded_compression_search_equals_the_sequential_one(monkeypatch):
    from vocalmix.rules import compression

    vocal = demo_vocal(SR, seconds=10.0)
    monkeypatch.setattr(compression, "SEARCH_THREADS", 1)
    sequential = compression.decide_compression(vocal, SR)
    monkeypatch.setattr(compression, "SEARCH_THREADS", 3)
    threaded = compression.decide_compression(vocal, SR)
    assert threaded == sequential
    assert len(sequential[1]["steps"]) > 2  # the search really ran


def test_decided_settings_export_without_snapping(rendered, tmp_path, caplog):
    from vocalmix.export import export_settings

    folder, doc, _ = rendered
    settings = MixSettings.from_json((folder / "mix.settings.json").read_text())
    logger = logging.getLogger("vocalmix")
    logger.addHandler(caplog.handler)
    try:
        export_settings(settings, tmp_path / "presets")
    finally:
        logger.removeHandler(caplog.handler)
    assert "grid" not in caplog.text  # the render already used values the plug-ins can hold
