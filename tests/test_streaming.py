"""Block-wise rendering (vocalmix/streaming.py, issue 19 item 9) against the whole-song functions.

The references are the whole-song implementations in vocalmix.mixing and vocalmix.analysis,
which hold every stage as one array; the block-wise passes must give the same samples
(bit for bit where the arithmetic is the same, within float64 rounding for the limiter's
moving average) whatever the block size.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalmix import analysis, mixing, streaming
from vocalmix.dsp.compressor import CompressorStream, compressor
from vocalmix.settings import EQBand, MixSettings

SR = 44100


def _voice(seconds: float, seed: int = 0) -> np.ndarray:
    """A vocal-like test signal: a gliding harmonic tone with syllable envelopes and breath noise, (1, n)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 180 + 40 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    tone = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 2.1 * t), 0, None) ** 2 * (0.3 + 0.7 * (np.sin(2 * np.pi * 0.07 * t) > 0))
    x = 0.3 * tone * syllables + 0.01 * rng.standard_normal(t.shape)
    return x[None, :].astype(np.float32)


def _backing(seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    beat = (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(n)
    pad = 0.2 * np.sin(2 * np.pi * 110 * t)[None, :] * np.array([[1.0], [0.8]])
    return (pad + 0.4 * beat).astype(np.float32)


def _settings(reverb_time_s: float = 0.4, lookahead: bool = True) -> MixSettings:
    s = MixSettings()
    bands = (
        EQBand(enabled=True, type="highpass2", frequency_hz=90.0, q=0.7),
        EQBand(enabled=True, type="peak", frequency_hz=300.0, q=2.0, gain_db=-4.0),
        EQBand(enabled=True, type="peak", frequency_hz=3000.0, q=1.0, gain_db=3.0),
        *s.eq.bands[3:5],
        EQBand(enabled=True, type="lowpass_lr", frequency_hz=12000.0, q=0.7),
    )  # Linkwitz-Riley: a doubled section
    return replace(
        s,
        eq=replace(s.eq, bands=bands),
        compressor=replace(s.compressor, threshold_db=-24.0, ratio=4.0, lookahead=lookahead),
        reverb=replace(s.reverb, reverb_time_s=reverb_time_s, dry_wet_pct=30.0),
    )


@pytest.mark.parametrize("seconds, reverb_time_s", [(14.0, 0.4), (4.0, 1.5)])
def test_vocal_chain_in_blocks_equals_the_whole_song_render_bit_for_bit(seconds, reverb_time_s):
    # 14 s with a short reverb: the convolution's overlap-save path; 4 s with a longer one: its one-FFT path.
    vocal = _voice(seconds)
    settings = _settings(reverb_time_s)
    whole = mixing.vocal_before_level(vocal, SR, settings)
    for block in (4099, 65536, 1 << 22):
        pieces = list(streaming.wet_blocks(vocal, SR, settings, block))
        assert np.array_equal(np.concatenate(pieces, axis=1), whole), block


@pytest.mark.parametrize("lookahead", [False, True])
def test_compressor_stream_equals_the_compressor(lookahead):
    x = torch.from_numpy(_voice(3.0)).unsqueeze(0)
    args = (
        SR,
        torch.tensor([-30.0]),
        torch.tensor([6.0]),
        torch.tensor([3.0]),
        torch.tensor([2.0]),
        torch.tensor([80.0]),
        torch.tensor([2.5]),
    )
    with torch.no_grad():
        whole = compressor(x, *args, lookahead=lookahead)
    stream = CompressorStream(*args, lookahead=lookahead)
    # Blocks shorter than the 220-sample lookahead too.
    sizes = [100, 37, 5000, 1, 20000] + [30011] * 10
    pieces, start = [], 0
    for size in sizes:
        if start >= x.shape[-1]:
            break
        pieces.append(stream.process(x[..., start : start + size].clone()))
        start += size
    assert torch.equal(torch.cat(pieces, dim=-1), whole[..., :start])


@pytest.mark.parametrize("rate", [44100, 16000])
def test_meters_in_blocks_equal_the_whole_signal_readings(rate):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, int(7.3 * rate))) * np.linspace(0.01, 0.5, int(7.3 * rate))
    x[:, rate : 2 * rate] = 0.0  # silence, below the gate
    loudness, peak = streaming.LoudnessMeter(rate, 2), streaming.TruePeakMeter(rate, 2)
    for start in range(0, x.shape[1], 12345):
        loudness.add(x[:, start : start + 12345])
        peak.add(x[:, start : start + 12345])
    assert loudness.integrated() == analysis.integrated_loudness(x, rate)
    assert np.array_equal(loudness.momentary(), analysis.momentary_loudness(x, rate))
    assert peak.finish() == analysis.true_peak(x, rate)


def test_output_stage_in_blocks_matches_the_whole_song_output_gain():
    vocal, backing = np.vstack([_voice(12.0)] * 2), _backing(12.0)
    source = streaming.MixSource(vocal, backing, vocal_gain_db=3.0)
    mix = vocal.astype(np.float64) * 10 ** (3.0 / 20) + backing.astype(np.float64)
    # Without a target: one static trim, equal exactly.
    stage, report = streaming.decide_output(source, SR, -6.0, None, block=10007)
    curve, expected = mixing.output_gain(mix, SR, -6.0, None)
    assert report == expected and stage.gain == curve[0, 0] and not stage.limiter
    # With a loudness target: the limiter. Its moving average is summed per block, so float64 rounding differs.
    stage, report = streaming.decide_output(source, SR, -1.0, -9.0, block=10007)
    curve, expected = mixing.output_gain(mix, SR, -1.0, -9.0)
    assert report["limiter"] == expected["limiter"] == "on"
    for key in ("gain_db", "max_gain_reduction_db", "achieved_loudness_lufs"):
        assert report[key] == pytest.approx(expected[key], abs=1e-6), key
    blocks = np.concatenate([c for _, _, c in stage.curves(source, SR, 10007)], axis=1)
    assert np.max(np.abs(blocks / curve - 1)) < 1e-9
    assert analysis.true_peak(mix * blocks, SR) <= -1.0


@pytest.mark.parametrize("loudness, sample_format", [(None, "pcm16"), (-14.0, "pcm24")])
def test_a_song_rendered_in_small_blocks_is_the_song_rendered_in_one(loudness, sample_format, tmp_path):
    vocal, backing = _voice(16.0), _backing(16.0)
    settings = replace(_settings(), output=replace(MixSettings().output, target_loudness_lufs=loudness))
    written = {}
    for block in (8191, 1 << 24):
        paths = {kind: tmp_path / f"{block}.{kind}.wav" for kind in ("mix", "vocal", "backing")}
        source, rendered, report = streaming.mix_source(vocal, backing, SR, SR, settings, relevel_to=-1.77, block=block)
        report.update(streaming.master_and_write(paths, source, rendered, SR, sample_format, block=block))
        written[block] = ({k: sf.read(p, dtype="float32")[0] for k, p in paths.items()}, report, rendered)
    (small, small_report, small_settings), (one, one_report, one_settings) = written.values()
    assert small_settings == one_settings  # the level decided last: bit-identical loudness series
    for kind in small:
        if loudness is None:
            assert np.array_equal(small[kind], one[kind]), kind
        else:  # the limiter's curve differs at float64 rounding: at most one step of 24-bit rounding
            assert np.max(np.abs(small[kind] - one[kind])) <= 2.0**-23, kind
    assert small_report["true_peak_dbtp"] <= -1.0 and one_report["true_peak_dbtp"] <= -1.0
    if loudness is not None:
        assert small_report["integrated_loudness_lufs"] == pytest.approx(loudness, abs=0.5)
    # The stems add up to the mix as written.
    assert np.max(np.abs(small["vocal"] + small["backing"] - small["mix"])) <= 2.0**-14


def test_whole_song_render_and_block_render_write_the_same_file(tmp_path):
    """render_mix + hold_ceiling_as_written (the whole-song path) against the streaming one."""
    vocal, backing = _voice(16.0), _backing(16.0)
    settings = _settings()
    mix = mixing.hold_ceiling_as_written(
        mixing.render_mix(vocal, backing, SR, settings, relevel_to=-1.77, measure=False), "PCM_24"
    )
    source, rendered, report = streaming.mix_source(vocal, backing, SR, SR, settings, relevel_to=-1.77, block=5000)
    report.update(streaming.master_and_write({"mix": tmp_path / "m.wav"}, source, rendered, SR, "pcm24", block=5000))
    assert rendered == mix.settings
    assert np.array_equal(sf.read(tmp_path / "m.wav", dtype="float32")[0].T, mixing.as_written(mix.mix, SR, "PCM_24"))
    for key, value in mix.report.items():
        assert report[key] == value, key


# ------------------------------------------------------------------------------------------------
# the analysis from blocks (the backing read from its file, never held whole)
# ------------------------------------------------------------------------------------------------


def _blocks(x: np.ndarray, size: int) -> list[np.ndarray]:
    return [x[:, start : start + size] for start in range(0, x.shape[1], size)]


def _one_pass_hop_energies(x: np.ndarray, sr: int) -> np.ndarray:
    """The reference: the whole signal K-weighted by scipy in one call, every whole hop summed in one einsum."""
    from scipy.signal import sosfilt

    hop = analysis._hop_samples(sr)
    weighted = sosfilt(analysis.k_weighting_sos(sr), x.astype(np.float64), axis=-1)
    n_hops = x.shape[1] // hop
    hops = weighted[:, : n_hops * hop].reshape(x.shape[0], n_hops, hop)
    return analysis._channel_weights(x.shape[0]) @ np.einsum("cjh,cjh->cj", hops, hops)


def _real_clips(shared_audio):
    """Real stems as the render reads them: float32 (channels, samples) at their own rate."""
    clips = []
    for path in (
        sorted(shared_audio.glob("songs/*/*.flac"))[:4] + sorted(shared_audio.glob("karaoke/*/backing.flac"))[:2]
    ):
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        clips.append((path.name, np.ascontiguousarray(data.T), rate))
    return clips


@pytest.mark.parametrize("rate", [44100, 16000, 96000])
@pytest.mark.parametrize("block", [1, 1234, 9600, 1 << 18])
def test_loudness_from_blocks_equals_one_pass_over_the_whole_signal(rate, block):
    rng = np.random.default_rng(rate + block)
    for seconds, channels in ((0.15, 1), (2.5, 2), (7.3, 1), (7.3, 2)):
        n = int(seconds * rate)
        x = (rng.standard_normal((channels, n)) * np.linspace(0.0, 1.0, n) ** 4).astype(np.float32)
        if block == 1 and n > 20000:
            continue  # one sample at a time is slow in Python; the short signals cover it
        whole = analysis.Loudness(x, rate)
        blocks = analysis.Loudness.from_blocks(_blocks(x, block), rate, channels)
        np.testing.assert_array_equal(whole.energies, _one_pass_hop_energies(x, rate))
        np.testing.assert_array_equal(blocks.energies, whole.energies)
        assert blocks.integrated() == whole.integrated()
        assert blocks.loudness_range() == whole.loudness_range()
        np.testing.assert_array_equal(blocks.short_term(), whole.short_term())  # < 3 s: one reading over all


def test_loudness_and_bands_from_blocks_equal_whole_readings_on_real_clips(shared_audio):
    for name, x, rate in _real_clips(shared_audio):
        whole = analysis.Loudness(x, rate)
        np.testing.assert_array_equal(whole.energies, _one_pass_hop_energies(x, rate), err_msg=name)
        blocks = analysis.Loudness.from_blocks(_blocks(x, 9973), rate, x.shape[0])
        np.testing.assert_array_equal(blocks.energies, whole.energies, err_msg=name)
        one_pass = analysis._OctaveBandMeter(rate, x.shape[0], x.shape[1], True, -70.0)
        one_pass.add(x)  # one block: every frame cut from the one padded signal
        in_blocks = analysis._OctaveBandMeter(rate, x.shape[0], x.shape[1], True, -70.0)
        for block in _blocks(x, 9973):
            in_blocks.add(block)
        reference = one_pass.finish()
        assert np.all(reference > analysis.SILENCE_DB + 50) or rate < 32000, name
        np.testing.assert_array_equal(in_blocks.finish(), reference, err_msg=name)
        np.testing.assert_array_equal(analysis.octave_band_rms(x, rate, k_weighted=True), reference, err_msg=name)


def test_onset_envelope_and_tempo_from_blocks_equal_one_pass(monkeypatch, shared_audio):
    from vocalmix.demo import demo_backing

    rng = np.random.default_rng(5)
    signals = [(f"demo@{rate}", demo_backing(rate, 40.0).astype(np.float32), rate) for rate in (44100, 22050, 48000)]
    signals += [(name, x, rate) for name, x, rate in _real_clips(shared_audio) if x.shape[1] > 3 * rate]
    for name, x, rate in signals:
        x = x + np.float32(0.001) * rng.standard_normal(x.shape).astype(np.float32)
        in_blocks = analysis._OnsetMeter(rate)
        for block in _blocks(x, 12345):  # odd sizes: decimation steps cut across blocks
            in_blocks.add(block)
        monkeypatch.setattr(analysis._OnsetMeter, "FRAMES_PER_STEP", 1 << 30)  # the reference: one transform
        one_pass = analysis._OnsetMeter(rate)
        one_pass.add(x)
        reference, frame_rate = one_pass.finish()
        monkeypatch.undo()
        envelope, blocks_rate = in_blocks.finish()
        assert reference.shape[0] > 50 and blocks_rate == frame_rate
        np.testing.assert_array_equal(envelope, reference, err_msg=name)
        tempo = analysis._tempo_from_blocks(_blocks(x, 12345), rate)
        assert tempo == analysis.estimate_tempo(x, rate) or (
            np.isnan(tempo) and np.isnan(analysis.estimate_tempo(x, rate))
        )
    assert np.isnan(analysis._tempo_from_blocks(_blocks(np.zeros((2, 5 * SR), np.float32), 9999), SR))


def test_song_analysis_from_file_blocks_equals_the_analysis_of_the_arrays(tmp_path):
    from vocalmix.demo import demo_backing, demo_vocal
    from vocalmix.rules.eq import decide_eq

    n = int(12.5 * SR)
    vocal = demo_vocal(SR, 12.5).astype(np.float32)[:, :n]
    backing = demo_backing(SR, 12.5).astype(np.float32)[:, :n]
    whole = analysis.SongAnalysis(vocal, backing, SR)
    streamed = analysis.SongAnalysis(vocal, lambda: iter(_blocks(backing, 7919)), SR)
    assert "backing" not in streamed.__dict__
    assert streamed.backing_lufs == whole.backing_lufs
    assert streamed.tempo_bpm == whole.tempo_bpm
    mask = np.zeros(n, dtype=bool)
    mask[SR : 5 * SR] = mask[7 * SR : 11 * SR] = True
    for got, reference in zip(streamed.masked_band_rms(mask), whole.masked_band_rms(mask)):
        np.testing.assert_array_equal(got, reference)
    np.testing.assert_array_equal(
        whole.masked_band_rms(mask)[1], analysis.octave_band_rms(backing[:, mask], SR, k_weighted=True)
    )
    assert decide_eq(vocal, None, SR, song=streamed) == decide_eq(vocal, backing, SR)
    assert "backing" not in streamed.__dict__  # nothing above needed the whole backing
    np.testing.assert_array_equal(streamed.backing, backing)


@pytest.mark.parametrize(
    "rates", [(48000, 44100), (16000, 44100), (44100, 48000), (44100, 22050), (8000, 44100), (44100, 44100)]
)
def test_resampling_in_blocks_equals_resampling_the_whole_signal(rates):
    from vocalmix.audio import resample, resample_blocks

    rng = np.random.default_rng(sum(rates))
    for n, block in ((37, 5), (20011, 777), (150000, 65536)):
        x = rng.standard_normal((2, n)).astype(np.float32)
        reference = resample(x, *rates)
        pieces = list(resample_blocks(_blocks(x, block), *rates, n))
        got = np.concatenate(pieces, axis=1)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, reference)


def test_eq_and_compressor_in_blocks_equal_the_whole_song_stages():
    from vocalmix.dsp.chain import apply_compressor

    vocal = _voice(9.0)
    for settings in (_settings(lookahead=False), _settings(lookahead=True), MixSettings()):
        eq_whole = mixing.process_vocal(vocal, SR, settings, upto="eq")
        eq_blocks = streaming.eq_in_blocks(vocal, SR, settings.eq, block=10007)
        np.testing.assert_array_equal(eq_blocks, eq_whole)
        for length in (vocal.shape[-1] + 33333, vocal.shape[-1] - 5):  # padded with silence, cut
            padded = mixing.process_vocal(mixing.fit_length(vocal, length), SR, settings, upto="eq")
            np.testing.assert_array_equal(streaming.eq_in_blocks(vocal, SR, settings.eq, length, 10007), padded)
        with torch.no_grad():
            compressed = apply_compressor(
                torch.from_numpy(eq_whole).unsqueeze(0), SR, mixing.compressor_params([settings.compressor])
            )[0].numpy()
        np.testing.assert_array_equal(streaming.compress_in_blocks(eq_whole, SR, settings.compressor, 7001), compressed)
        if settings.compressor.ratio > 1:
            assert not np.array_equal(eq_whole, compressed)  # it compresses


def test_spool_reads_back_what_was_written_and_leaves_no_file(tmp_path, monkeypatch):
    import tempfile

    from vocalmix.audio import Spool

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    x = np.random.default_rng(9).standard_normal((2, 100_003)).astype(np.float32)
    spool = Spool(2, 120_000)
    for block in _blocks(x, 30_001):
        spool.append(block)
    spool.fill()  # silence to the full length
    assert os.listdir(tmp_path) == []  # anonymous: nothing named to leave behind, however the process ends
    np.testing.assert_array_equal(spool[:, 5:70_000], x[:, 5:70_000])
    assert spool[:, 0:10].flags.writeable  # torch warns on read-only arrays (the reverb reads a spool)
    np.testing.assert_array_equal(spool[:, 99_000:120_000], np.pad(x[:, 99_000:], ((0, 0), (0, 19_997))))
    assert spool[:, 119_999:130_000].shape == (2, 1)
    growing = Spool(1)
    growing.append(x[:1, :10])
    growing.append(x[:1, 10:25])
    assert growing.shape == (1, 25)
    np.testing.assert_array_equal(growing[:, 0:25], x[:1, :25])
    with pytest.raises(ValueError):
        spool.append(x[:, :1])  # full


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device whose writes fail with ENOSPC)")
def test_a_full_temporary_disk_is_one_clear_error_naming_the_folder(tmp_path, monkeypatch):
    import tempfile

    from vocalmix.audio import Spool
    from vocalmix.errors import VocalmixError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spool = Spool(1)
    spool._file = open("/dev/full", "wb", buffering=0)  # every write fails as on a full disk
    with pytest.raises(VocalmixError, match=f"temporary file in {tmp_path}: No space left on device.*TMPDIR"):
        spool.append(np.zeros((1, 64), np.float32))
    spool._file.close()
