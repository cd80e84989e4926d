"""A rules render is one pass (issue 15 item 4): the song analysed once, each stage rendered once.

Counts are taken by wrapping the functions that do the work (the dsp compressor, the
reverb, the K-weighting filter); the single-pass render is compared sample for sample
with the chain rendered afresh from the vocal, and the compiled filter and the one-pass
loudness readings with scipy's filter and the step-by-step readings they replace.
"""

from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from vocalmix import analysis, render, streaming
from vocalmix.demo import demo_backing, demo_vocal
from vocalmix.dsp import chain as dsp_chain
from vocalmix.dsp import compressor as dsp_compressor
from vocalmix.dsp import reverb as dsp_reverb
from vocalmix.dsp.sosfilt import sosfilt
from vocalmix.mixing import process_vocal, vocal_before_level
from vocalmix.rules.compression import search_compression
from vocalmix.rules.method import RulesMethod

SR = 44100


# --------------------------------------------------------------------------
# The compiled filter and the one-pass loudness equal what they replace
# --------------------------------------------------------------------------


def test_sosfilt_equals_scipy_bit_for_bit():
    rng = np.random.default_rng(0)
    cases = [analysis.k_weighting_sos(SR), analysis.k_weighting_sos(48000), analysis.k_weighting_sos(16000)]
    for _ in range(4):  # random stable peak / shelf sections, as the EQ uses, several in series
        sections = []
        for _ in range(rng.integers(1, 5)):
            b, a = scipy.signal.iirpeak(rng.uniform(40, 15000), rng.uniform(0.3, 8), fs=SR)
            sections.append(np.r_[b * rng.uniform(0.3, 3), a])
        cases.append(np.array(sections))
    x = rng.standard_normal((2, 30011)) * np.linspace(0, 1, 30011)
    for sos in cases:
        np.testing.assert_array_equal(sosfilt(sos, x), scipy.signal.sosfilt(sos, x, axis=-1))
    one = np.asarray(x[0], dtype=np.float32)  # float32 in: filtered in float64, as scipy's float64 call
    np.testing.assert_array_equal(sosfilt(cases[0], one), scipy.signal.sosfilt(cases[0], one.astype(np.float64)))
    for sos in (cases[0], cases[-1]):  # in blocks with the state carried (scipy's zi layout)
        zi = rng.standard_normal((sos.shape[0], 2, 2))
        expected, expected_state = scipy.signal.sosfilt(sos, x, axis=-1, zi=zi)
        first, state = sosfilt(sos, x[:, :10007], zi=zi)
        rest, state = sosfilt(sos, x[:, 10007:], zi=state)
        np.testing.assert_array_equal(np.concatenate([first, rest], axis=-1), expected)
        np.testing.assert_array_equal(state, expected_state)


def test_sosfilt_refuses_unnormalised_sections():
    with pytest.raises(ValueError, match="a0"):
        sosfilt(np.array([[1.0, 0, 0, 2.0, 0, 0]]), np.zeros(10))


def test_k_weighting_response_equals_scipy():
    freqs = np.fft.rfftfreq(8192, 1 / SR)
    for rate in (SR, 48000, 22050):
        sos = analysis.k_weighting_sos(rate)
        _, expected = scipy.signal.sosfreqz(sos, worN=freqs, fs=rate)
        np.testing.assert_array_equal(analysis._sos_response(sos, freqs, rate), expected)


def _scipy_hop_energies(x, sr):
    """The K-weighted hop energies as the analysis computed them before (scipy's filter)."""
    hop = int(round(0.1 * sr))
    n_hops = x.shape[1] // hop
    y = scipy.signal.sosfilt(analysis.k_weighting_sos(sr), x[:, : n_hops * hop].astype(np.float64), axis=-1)
    blocks = y.reshape(x.shape[0], n_hops, hop)
    return np.ones(x.shape[0]) @ np.einsum("cjh,cjh->cj", blocks, blocks)


def test_one_pass_loudness_equals_the_readings_it_replaces():
    backing = demo_backing(SR, seconds=12.0)
    loudness = analysis.Loudness(backing, SR)
    np.testing.assert_array_equal(loudness.energies, _scipy_hop_energies(backing, SR))
    assert loudness.integrated() == analysis.integrated_loudness(backing, SR)
    np.testing.assert_array_equal(loudness.momentary(), analysis.momentary_loudness(backing, SR))
    np.testing.assert_array_equal(loudness.short_term(), analysis.short_term_loudness(backing, SR))
    assert loudness.loudness_range(-23.0) == analysis.loudness_range(backing, SR, normalise_to_lufs=-23.0)
    # A signal shorter than one 400 ms block is one reading over all of it.
    short = backing[:, : int(0.25 * SR)]
    y = scipy.signal.sosfilt(analysis.k_weighting_sos(SR), short.astype(np.float64), axis=-1)
    expected = -0.691 + 10 * np.log10(np.sum(np.mean(y * y, axis=1)))
    assert analysis.Loudness(short, SR).integrated() == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------
# The compressor search hands over the chosen step's audio
# --------------------------------------------------------------------------


def test_search_audio_is_the_chain_compressor_stage_and_decides_on_the_prefix():
    # A take alternating loud and 26 dB softer every 4 s: a loudness range far above the target.
    vocal = demo_vocal(SR, seconds=20.0)
    vocal = vocal * np.where((np.arange(vocal.shape[-1]) // (4 * SR)) % 2 == 0, 1.0, 0.05).astype(np.float32)
    padded = np.pad(vocal, ((0, 0), (0, 777)))
    found = search_compression(padded, SR, measured_samples=vocal.shape[-1])
    plain = search_compression(vocal, SR)
    assert found.report == plain.report and found.settings == plain.settings
    assert found.renders == plain.renders >= len(found.report["steps"]) - 1 >= 2
    settings = RulesMethod().base
    settings.compressor = found.settings
    np.testing.assert_array_equal(
        found.audio, process_vocal(padded, SR, settings, start="compressor", upto="compressor")
    )
    np.testing.assert_array_equal(found.audio[:, : vocal.shape[-1]], plain.audio)


# --------------------------------------------------------------------------
# A rules render: counts and identity with rendering the chain afresh
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def song(demo_song_10s):
    return demo_song_10s


class _Counter:
    """Wraps ``module.name`` and counts the calls (and keeps what ``record`` takes from their arguments)."""

    def __init__(self, monkeypatch, modules, name, record=None):
        self.calls = 0
        self.records = []
        original = getattr(modules[0], name)

        def counted(*args, **kwargs):
            self.calls += 1
            if record is not None:
                self.records.append(record(*args))
            return original(*args, **kwargs)

        for module in modules:
            monkeypatch.setattr(module, name, counted)


def _render(folder: Path, name: str, **options):
    request = render.RenderRequest(
        vocal_path=folder / "vocal.wav",
        backing_path=folder / "backing.wav",
        output=folder / f"{name}.wav",
        stems=True,
        force=True,
        **options,
    )
    result = render.run_render(request)
    mix, _ = sf.read(folder / f"{name}.wav", dtype="float32", always_2d=True)
    vocal, _ = sf.read(folder / f"{name}.vocal.wav", dtype="float32", always_2d=True)
    return result, mix, vocal


def test_rules_render_runs_each_stage_once_and_analyses_the_backing_once(song, monkeypatch):
    backing_in = sf.read(song / "backing.wav", dtype="float32", always_2d=True)[0].T
    compressor = _Counter(monkeypatch, [dsp_compressor, dsp_chain], "compressor")
    compressor_in_blocks = _Counter(monkeypatch, [streaming], "_compressor_stream")  # a render block by block
    reverb = _Counter(monkeypatch, [dsp_reverb, dsp_chain], "fdn_reverb")
    streamed_reverb = _Counter(monkeypatch, [streaming], "_reverb_ir")  # the render's block-wise reverb
    k_weighting = _Counter(monkeypatch, [analysis], "_sosfilt", record=lambda sos, x: np.array(x, copy=True))
    result, _, _ = _render(song, "counted")

    steps = result.report["compressor"]["steps"]
    assert result.report["compressor"]["stopped_by"] == "target reached"
    # The demo's search measures six steps, two at a time, and stops on the sixth: six renders, the
    # chosen one handed over (before: eight, the chosen step rendered again and the chain once more).
    assert len(steps) - 1 == 6
    assert compressor.calls + compressor_in_blocks.calls == 6
    assert reverb.calls + streamed_reverb.calls == 1
    # The backing is K-weighted in blocks from its file: a pass starts with its first block.
    first_block = analysis.ANALYSIS_BLOCK_SAMPLES
    assert backing_in.shape[1] > first_block
    backing_passes = [x for x in k_weighting.records if np.array_equal(x, backing_in[:, :first_block])]
    assert len(backing_passes) == 1


def test_single_pass_render_equals_rendering_the_chain_again(song, monkeypatch):
    _, mix, vocal = _render(song, "single")
    # The render's chain run afresh from the vocal (block by block), as before the single pass: the
    # compressed vocal the rules handed over is dropped, so nothing of the decision's render is reused.
    mix_source = streaming.mix_source
    reused = []

    def afresh(*args, compressed=None, **kwargs):
        reused.append(compressed is not None)
        return mix_source(*args, compressed=None, **kwargs)

    monkeypatch.setattr(streaming, "mix_source", afresh)
    _, mix_again, vocal_again = _render(song, "again")
    assert reused == [True]
    np.testing.assert_array_equal(vocal, vocal_again)
    np.testing.assert_array_equal(mix, mix_again)


def test_decide_is_the_staged_decision_with_the_level(song):
    vocal = demo_vocal(SR, seconds=10.0)
    backing = demo_backing(SR, seconds=10.0)
    method = RulesMethod()
    decision = method.decide(vocal, backing, SR)
    staged = method.decide_stages(analysis.SongAnalysis(vocal, backing, SR), render_samples=vocal.shape[-1])
    assert staged.decision.settings.eq == decision.settings.eq
    assert staged.decision.settings.compressor == decision.settings.compressor
    assert staged.decision.settings.reverb == decision.settings.reverb
    np.testing.assert_array_equal(staged.wet, vocal_before_level(vocal, SR, decision.settings))
    level = decision.report["level"]
    assert level["vocal_lufs"] == analysis.integrated_loudness(staged.wet, SR)
    assert level["backing_lufs"] == analysis.integrated_loudness(backing, SR)
