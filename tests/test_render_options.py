"""`vocalmix render` does what it is asked: options honoured, the level hit after snapping,
the backing untouched but for gain, the ceiling held in the file as written (issues 14 and 19).

Every check measures the written files with vocalmix.analysis (BS.1770 loudness and
true peak) or compares samples with the inputs; nothing is read back from the report alone.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix import analysis
from vocalmix.cli import main
from vocalmix.demo import demo_backing, demo_vocal
from vocalmix.settings import MixSettings

SR = 44100
LOW_RATE = 16000


def run(args, capsys):
    """Exit code and stderr of ``vocalmix ARGS``."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def relative_loudness(stem_base):
    """Vocal minus backing integrated loudness (LU) of the stems written next to ``stem_base`` (a .wav)."""
    vocal, rate = sf.read(stem_base.with_suffix(".vocal.wav"), dtype="float64")
    backing, rate_b = sf.read(stem_base.with_suffix(".backing.wav"), dtype="float64")
    assert rate == rate_b
    return analysis.integrated_loudness(vocal.T, rate) - analysis.integrated_loudness(backing.T, rate)


def written(path):
    data, rate = sf.read(path, dtype="float64", always_2d=True)
    return data.T, rate


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    paths = {"vocal": folder / "vocal.wav", "backing": folder / "backing.wav", "backing16": folder / "backing16.wav"}
    sf.write(paths["vocal"], demo_vocal(SR, seconds=10.0).T, SR, subtype="PCM_24")
    sf.write(paths["backing"], demo_backing(SR, seconds=10.0).T, SR, subtype="PCM_24")
    paths["short_vocal"], paths["short_backing"] = folder / "short_vocal.wav", folder / "short_backing.wav"
    sf.write(paths["short_vocal"], demo_vocal(SR, seconds=4.0).T, SR, subtype="PCM_24")
    sf.write(paths["short_backing"], demo_backing(SR, seconds=4.0).T, SR, subtype="PCM_24")
    # A 16 kHz backing with content up to its Nyquist frequency, loud enough that --loudness drives the limiter.
    low = demo_backing(LOW_RATE, seconds=10.0)
    rng = np.random.default_rng(3)
    low = low + 0.05 * rng.standard_normal(low.shape).astype(np.float32)
    sf.write(paths["backing16"], (0.9 * low / np.max(np.abs(low))).T, LOW_RATE, subtype="PCM_24")
    return folder, paths


@pytest.fixture(scope="module")
def decided(inputs):
    """A rules render whose settings file the --settings tests start from."""
    folder, paths = inputs
    out = folder / "rules.wav"
    assert main(["render", str(paths["vocal"]), str(paths["backing"]), "-o", str(out), "--stems", "-q"]) == 0
    return out, folder / "rules.settings.json"


# -- item 14.2: the level is decided last, on the chain as snapped -------------------------------------
SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"


def _song_folders():
    songs = SHARED_AUDIO / "songs"
    return sorted(p.name for p in songs.iterdir()) if songs.is_dir() else []


@pytest.mark.parametrize(
    "method, song", [("rules", "demo"), ("cnn", "demo"), *(("cnn", song) for song in _song_folders())]
)
def test_level_hits_the_target_after_snapping(method, song, tmp_path, capsys):
    """The full-length demo and the shared songs: the snapped compressor (ratio 3.5 -> 3.6, 4.1 -> 4.2)
    used to leave the level 0.05-0.25 LU off."""
    if song == "demo":
        vocal, backing = tmp_path / "demo_vocal.wav", tmp_path / "demo_backing.wav"
        sf.write(vocal, demo_vocal(SR).T, SR, subtype="PCM_24")
        sf.write(backing, demo_backing(SR).T, SR, subtype="PCM_24")
    else:
        vocal, backing = SHARED_AUDIO / "songs" / song / "vocal.flac", SHARED_AUDIO / "songs" / song / "backing.flac"
    out = tmp_path / "mix.wav"
    code, err = run(["render", vocal, backing, "-o", out, "--method", method, "--stems", "-q"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "mix.settings.json").read_text())
    target = doc["report"]["level"]["target_relative_lu"]
    if method == "rules":
        assert target == -1.77
    # The issue asks for 0.1 LU; deciding the gain on the rendered chain gets within 0.02 (24-bit stems).
    assert relative_loudness(out) == pytest.approx(target, abs=0.02)


# -- item 14.1: --settings honours the output stage and refuses what would decide settings ----------------
def test_settings_render_applies_loudness_and_ceiling(inputs, decided, tmp_path, capsys):
    _, paths = inputs
    _, settings_path = decided
    out = tmp_path / "loud.wav"
    code, err = run(
        [
            "render",
            paths["vocal"],
            paths["backing"],
            "-o",
            out,
            "--settings",
            settings_path,
            "--loudness",
            "-14",
            "--ceiling",
            "-6",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    mix, rate = written(out)
    assert analysis.integrated_loudness(mix, rate) == pytest.approx(-14.0, abs=0.5)
    assert analysis.true_peak(mix, rate) <= -6.0
    recorded = MixSettings.from_json((tmp_path / "loud.settings.json").read_text())
    assert recorded.output.target_loudness_lufs == -14.0 and recorded.output.ceiling_dbtp == -6.0


@pytest.mark.parametrize(
    "option",
    [
        ["--method", "cnn"],
        ["--method", "rules"],
        ["--tempo", "100"],
        ["--model", "models"],
        ["--relative-loudness", "0"],
        ["--target-lra", "10"],
        ["--reverb-mode", "tempo"],
    ],
)
def test_settings_render_refuses_options_that_decide_settings(option, inputs, decided, tmp_path, capsys):
    _, paths = inputs
    _, settings_path = decided
    out = tmp_path / "refused.wav"
    code, err = run(
        ["render", paths["vocal"], paths["backing"], "-o", out, "--settings", settings_path, *option, "-q"], capsys
    )
    assert code == 2
    assert err.count("\n") == 1 and option[0] in err and "--settings" in err
    assert not out.exists()


def test_relevel_decides_only_the_level_on_the_given_chain(inputs, decided, tmp_path, capsys):
    _, paths = inputs
    _, settings_path = decided
    out = tmp_path / "relevel.wav"
    code, err = run(
        [
            "render",
            paths["vocal"],
            paths["backing"],
            "-o",
            out,
            "--settings",
            settings_path,
            "--relevel",
            "--relative-loudness",
            "0",
            "--stems",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    assert relative_loudness(out) == pytest.approx(0.0, abs=0.1)
    before = MixSettings.from_json(settings_path.read_text())
    after = MixSettings.from_json((tmp_path / "relevel.settings.json").read_text())
    assert (after.eq, after.compressor, after.reverb) == (before.eq, before.compressor, before.reverb)
    assert after.level.vocal_gain_db == pytest.approx(before.level.vocal_gain_db + 1.77, abs=0.1)


# -- item 14.4: the backing reaches the output changed in gain only, at its own rate ---------------------
def test_low_rate_backing_is_only_gain_changed_and_lengths_match(inputs, tmp_path, capsys):
    _, paths = inputs
    out = tmp_path / "low.wav"
    code, err = run(
        ["render", paths["vocal"], paths["backing16"], "-o", out, "--stems", "--format", "float", "-q"], capsys
    )
    assert code == 0, err
    original, rate = written(paths["backing16"])
    stem, stem_rate = written(tmp_path / "low.backing.wav")
    mix, mix_rate = written(out)
    assert rate == stem_rate == mix_rate == LOW_RATE
    assert stem.shape == mix.shape == original.shape  # not one sample longer
    gain = float(np.sum(stem * original) / np.sum(original * original))
    # Float output: the only change is one gain (float32 rounding aside), so nothing between 7 and 8 kHz is lost.
    assert np.max(np.abs(stem - gain * original)) < 1e-6


# -- issue 19.1: the ceiling holds in the file as written --------------------------------------------------
@pytest.mark.parametrize("ceiling, loudness, fmt", [("-1", "-9", "pcm24"), ("0", "-6", "pcm16")])
def test_ceiling_holds_in_the_written_low_rate_file(ceiling, loudness, fmt, inputs, tmp_path, capsys):
    _, paths = inputs
    out = tmp_path / "loud.wav"
    code, err = run(
        [
            "render",
            paths["vocal"],
            paths["backing16"],
            "-o",
            out,
            "--loudness",
            loudness,
            "--ceiling",
            ceiling,
            "--format",
            fmt,
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    mix, rate = written(out)
    assert rate == LOW_RATE
    assert analysis.true_peak(mix, rate) <= float(ceiling)
    if fmt == "pcm16":
        assert np.max(np.abs(mix)) < 32767 / 32768  # not a single sample at full scale


def test_ceiling_holds_on_a_karaoke_clip(shared_audio, tmp_path, capsys):
    clip = shared_audio / "karaoke" / "amy_14_05"
    out = tmp_path / "k.wav"
    code, err = run(["render", clip / "vocal.flac", clip / "backing.flac", "-o", out, "--loudness", "-9", "-q"], capsys)
    assert code == 0, err
    mix, rate = written(out)
    assert rate == LOW_RATE and mix.shape[-1] == sf.info(clip / "backing.flac").frames
    assert analysis.true_peak(mix, rate) <= -1.0


# -- issue 19.4: a missed loudness target is reported; an impossible one refused ---------------------------
def test_missed_loudness_target_is_reported_with_what_was_reached(inputs, tmp_path, capsys):
    _, paths = inputs
    out = tmp_path / "hot.wav"
    code, err = run(["render", paths["vocal"], paths["backing"], "-o", out, "--loudness", "-3", "-q"], capsys)
    assert code == 0, err
    mix, rate = written(out)
    achieved = analysis.integrated_loudness(mix, rate)
    doc = json.loads((tmp_path / "hot.settings.json").read_text())
    limiting = doc["report"]["output_stage"]["max_gain_reduction_db"]
    assert abs(achieved + 3) > 0.5 or limiting > 12  # the case the warning is for
    assert "loudness target -3 LUFS" in err and f"{achieved:.1f} LUFS" in err and f"{limiting:.1f} dB" in err


def test_loudness_target_above_the_ceiling_is_refused_before_work(inputs, tmp_path, capsys):
    _, paths = inputs
    out = tmp_path / "impossible.wav"
    code, err = run(
        ["render", paths["vocal"], paths["backing"], "-o", out, "--loudness", "0", "--ceiling", "-1"], capsys
    )
    assert code == 2 and "--loudness 0" in err and "loading" not in err
    assert not out.exists()


# -- issue 19.5: a vocal too quiet for the level range is named, with its level ----------------------------
def test_vocal_too_quiet_for_the_level_range_is_refused_by_name(inputs, tmp_path, capsys):
    _, paths = inputs
    vocal = demo_vocal(SR, seconds=10.0)
    quiet = tmp_path / "whisper.wav"
    sf.write(quiet, (vocal / np.max(np.abs(vocal)) * 10 ** (-60 / 20)).T, SR, subtype="PCM_24")
    code, err = run(["render", quiet, paths["backing"], "-o", tmp_path / "q.wav", "-q"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and str(quiet) in err and "too quiet" in err and "-60.0 dBFS" in err
    assert "never active" not in err


def test_quiet_vocal_within_the_range_is_mixed_to_the_target(inputs, tmp_path, capsys):
    _, paths = inputs
    vocal = demo_vocal(SR, seconds=10.0)
    quiet = tmp_path / "soft.wav"
    sf.write(quiet, (vocal / np.max(np.abs(vocal)) * 10 ** (-40 / 20)).T, SR, subtype="PCM_24")
    out = tmp_path / "soft_mix.wav"
    code, err = run(["render", quiet, paths["backing"], "-o", out, "--stems", "-q"], capsys)
    assert code == 0, err
    assert relative_loudness(out) == pytest.approx(-1.77, abs=0.1)


# -- issue 19.7: an output folder that cannot be written is refused before any work -------------------------
def _make_unwritable(folder):
    """Make ``folder`` refuse new files (immutable for root, read-only otherwise); False if that fails."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            return False
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            return False
    else:
        folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        return True
    (folder / "probe").unlink()
    return False


def _make_writable(folder):
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


@pytest.mark.parametrize("where", ["mix", "export"])
def test_unwritable_output_folder_is_refused_before_any_work(where, inputs, tmp_path, capsys):
    _, paths = inputs
    locked = tmp_path / "locked"
    locked.mkdir()
    if not _make_unwritable(locked):
        pytest.skip("this file system lets this user write into any folder")
    try:
        out = locked / "mix.wav" if where == "mix" else tmp_path / "mix.wav"
        extra = ["--export", locked / "presets"] if where == "export" else []
        code, err = run(["render", paths["vocal"], paths["backing"], "-o", out, *extra], capsys)
    finally:
        _make_writable(locked)
    assert code == 2
    assert "loading" not in err  # refused before the inputs were read
    named = out if where == "mix" else locked
    assert str(named) in err and "cannot write" in err
    assert not (tmp_path / "mix.wav").exists()


# -- item 14.5: the lookahead's latency is compensated in the mix, as a DAW does -----------------------------
@pytest.mark.parametrize("rate", [SR, 48000])
def test_lookahead_latency_is_compensated(rate, tmp_path, capsys):
    from dataclasses import replace

    from vocalmix.settings import CompressorSettings, ReverbSettings

    rng = np.random.default_rng(7)
    n = 3 * rate
    vocal = (0.1 * rng.standard_normal(n) * np.exp(-np.arange(n) / rate)).astype(np.float32)
    backing = (0.05 * rng.standard_normal((2, n))).astype(np.float32)
    sf.write(tmp_path / "v.wav", vocal, rate, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", backing.T, rate, subtype="FLOAT")
    # Lookahead on, otherwise transparent: no EQ, no gain reduction (threshold above every peak), dry reverb.
    settings = replace(
        MixSettings(),
        compressor=CompressorSettings(threshold_db=10.0, lookahead=True),
        reverb=replace(ReverbSettings(), dry_wet_pct=0.0),
    )
    (tmp_path / "s.json").write_text(settings.to_json())
    code, err = run(
        [
            "render",
            tmp_path / "v.wav",
            tmp_path / "b.wav",
            "-o",
            tmp_path / "m.wav",
            "--settings",
            tmp_path / "s.json",
            "--stems",
            "--format",
            "float",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    stem, stem_rate = written(tmp_path / "m.vocal.wav")
    assert stem_rate == rate and stem.shape[-1] == n
    lags = np.arange(-400, 401)
    corr = [float(np.dot(stem[0, 400:-400], vocal[400 + k : n - 400 + k])) for k in lags]
    assert lags[int(np.argmax(corr))] == 0  # not 220 (44.1 kHz) or 239 (48 kHz) samples late


# -- item 14.6: no fade-in the plug-in would not play ---------------------------------------------------------
@pytest.mark.parametrize("predicted, kept", [(0.03, 0.0), (0.05, 0.08), (0.07, 0.08), (0.2, 0.2)])
def test_decided_fade_in_is_zero_or_at_least_0_08_s(predicted, kept, inputs, tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    import vocalmix.render
    from vocalmix.methods import Decision
    from vocalmix.settings import ReverbSettings

    class FadeMethod:  # a method that decides a short fade-in, as a model may
        name = "fade"

        def decide(self, vocal, backing, sample_rate):
            settings = replace(MixSettings(), reverb=replace(ReverbSettings(), fade_in_s=predicted))
            return Decision(settings, {"level": {"target_relative_lu": -1.77}})

    monkeypatch.setattr(vocalmix.render, "get_method", lambda name, **options: FadeMethod())
    monkeypatch.setattr(vocalmix.render, "available", lambda: ["fade"])
    _, paths = inputs
    code, err = run(
        ["render", paths["short_vocal"], paths["short_backing"], "-o", tmp_path / "f.wav", "--method", "fade", "-q"],
        capsys,
    )
    assert code == 0, err
    rendered = MixSettings.from_json((tmp_path / "f.settings.json").read_text())
    assert rendered.reverb.fade_in_s == kept


def test_hand_edited_fade_in_below_0_08_s_is_named_in_a_warning(inputs, tmp_path, capsys):
    from dataclasses import replace

    from vocalmix.settings import ReverbSettings

    _, paths = inputs
    for fade, warned in ((0.05, True), (0.0, False), (0.08, False)):
        (tmp_path / "s.json").write_text(
            replace(MixSettings(), reverb=replace(ReverbSettings(), fade_in_s=fade)).to_json()
        )
        code, err = run(
            [
                "render",
                paths["short_vocal"],
                paths["short_backing"],
                "-o",
                tmp_path / f"h{fade}.wav",
                "--settings",
                tmp_path / "s.json",
                "-q",
            ],
            capsys,
        )
        assert code == 0, err
        assert ("'reverb.fade_in_s' = 0.05 s" in err) == warned, err


# -- item 14.3: a settings file with fields missing is refused by name unless defaults are asked for ------------
def test_settings_file_with_missing_fields_is_refused_unless_filled(inputs, decided, tmp_path, capsys):
    _, paths = inputs
    _, settings_path = decided
    doc = json.loads(settings_path.read_text())
    del doc["settings"]["level"], doc["settings"]["compressor"]["knee_db"]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(doc))
    args = ["render", paths["short_vocal"], paths["short_backing"], "--settings", partial, "-q"]
    code, err = run([*args, "-o", tmp_path / "a.wav"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert str(partial) in err and "compressor.knee_db" in err and "level" in err and "--fill-defaults" in err
    code, err = run([*args, "-o", tmp_path / "b.wav", "--fill-defaults", "--relevel"], capsys)
    assert code == 0, err
    assert "compressor.knee_db" in err and "level" in err  # named in the warning
    assert relative_loudness_of_mix_settings(tmp_path / "b.settings.json") == -1.77


def relative_loudness_of_mix_settings(path):
    return json.loads(path.read_text())["report"]["level"]["target_relative_lu"]


# -- item 14.14: --tail keeps the reverb tail past the end of the inputs ----------------------------------------
def test_tail_extends_the_output_by_the_reverb_tail(inputs, decided, tmp_path, capsys):
    from vocalmix.plugins import reverb_tail_seconds

    _, paths = inputs
    _, settings_path = decided
    n = sf.info(paths["short_backing"]).frames
    settings = MixSettings.from_json(settings_path.read_text())
    for tail, seconds in (("1.5", 1.5), ("auto", reverb_tail_seconds(settings))):
        out = tmp_path / f"tail_{tail}.wav"
        code, err = run(
            [
                "render",
                paths["short_vocal"],
                paths["short_backing"],
                "-o",
                out,
                "--settings",
                settings_path,
                "--tail",
                tail,
                "--stems",
                "-q",
            ],
            capsys,
        )
        assert code == 0, err
        mix, rate = written(out)
        assert mix.shape[-1] == n + round(seconds * rate)
        vocal, _ = written(out.with_suffix(".vocal.wav"))
        after = vocal[:, n:]
        # The reverb rings on past the end of the input and decays there.
        first, last = (float(np.sqrt(np.mean(b**2))) for b in (after[:, : rate // 10], after[:, -rate // 10 :]))
        assert first > 1e-4 and last < first / 10
    code, err = run(
        ["render", paths["short_vocal"], paths["short_backing"], "-o", tmp_path / "bad.wav", "--tail", "long", "-q"],
        capsys,
    )
    assert code == 2 and "--tail" in err


# -- issue 19.10: the reverb's impulse-response limit is an option, and a cut tail is reported ------------------
def test_reverb_ir_limit_is_an_option_and_a_cut_tail_is_reported(tmp_path, capsys):
    from dataclasses import replace

    from vocalmix.settings import ReverbSettings

    rate = SR
    n = int(3.5 * rate)
    vocal = np.zeros(n, dtype=np.float32)
    burst = np.hanning(441) * np.sin(2 * np.pi * 1000 * np.arange(441) / rate)  # 10 ms of 1 kHz, no DC
    vocal[rate // 10 : rate // 10 + 441] = 0.5 * (burst - burst.mean())
    backing = (0.01 * np.random.default_rng(2).standard_normal((2, n))).astype(np.float32)
    sf.write(tmp_path / "v.wav", vocal, rate, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", backing.T, rate, subtype="FLOAT")
    # 9 s with a +6 dB/s low shelf: the low band decays at 60/9 - 6 = 0.67 dB/s, 13 dB in the default 20 s.
    slow = replace(
        MixSettings(), reverb=replace(ReverbSettings(), reverb_time_s=9.0, low_gain_db_per_s=6.0, dry_wet_pct=100.0)
    )
    (tmp_path / "slow.json").write_text(slow.to_json())
    tails = {}
    for limit in ("1.5", "3"):
        out = tmp_path / f"ir{limit}.wav"
        code, err = run(
            [
                "render",
                tmp_path / "v.wav",
                tmp_path / "b.wav",
                "-o",
                out,
                "--settings",
                tmp_path / "slow.json",
                "--reverb-ir-max",
                limit,
                "--format",
                "float",
                "--stems",
                "-q",
            ],
            capsys,
        )
        assert code == 0, err
        assert f"when its {limit} s impulse response is cut" in err and "reverb_time_s 9 s" in err
        stem, _ = written(out.with_suffix(".vocal.wav"))
        tails[limit] = stem[:, int(1.8 * rate) :]  # from 1.7 s after the burst on
    assert np.max(np.abs(tails["1.5"])) < 1e-6  # the 1.5 s impulse response has ended there (FFT noise aside)
    assert np.sqrt(np.mean(tails["3"] ** 2)) > 1e-4  # the 3 s one still rings
    (tmp_path / "plain.json").write_text(MixSettings().to_json())
    code, err = run(
        [
            "render",
            tmp_path / "v.wav",
            tmp_path / "b.wav",
            "-o",
            tmp_path / "plain.wav",
            "--settings",
            tmp_path / "plain.json",
            "-q",
        ],
        capsys,
    )
    assert code == 0 and "impulse response is cut" not in err


def test_imported_presets_render_with_a_level_warning_and_relevel_decides_it(inputs, decided, tmp_path, capsys):
    _, paths = inputs
    _, settings_path = decided
    presets = tmp_path / "presets"
    assert main(["export", str(settings_path), "--to", str(presets), "-f", "vstpreset"]) == 0
    imported = tmp_path / "imported.json"
    code, err = run(["import", *sorted(presets.glob("*.vstpreset")), "-o", imported], capsys)
    assert code == 0 and "level.vocal_gain_db" in err and "--relevel" in err
    args = ["render", paths["short_vocal"], paths["short_backing"], "--settings", imported, "--stems", "-q"]
    code, err = run([*args, "-o", tmp_path / "plain.wav"], capsys)
    assert code == 0 and "vocal level was not in the imported presets" in err and "--relevel" in err
    code, err = run([*args, "-o", tmp_path / "relevel.wav", "--relevel"], capsys)
    assert code == 0 and "imported presets" not in err
    assert relative_loudness(tmp_path / "relevel.wav") == pytest.approx(-1.77, abs=0.02)
