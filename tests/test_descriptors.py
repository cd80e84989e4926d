"""Descriptors against signals whose answers are known from their construction."""

import math

import numpy as np
import pytest

from vocalmix import descriptors as d

SR = 44100


def _tone(freqs_amps, seconds=2.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return sum(a * np.sin(2 * np.pi * f * t + 0.3 * k) for k, (f, a) in enumerate(freqs_amps))[None, :]


def test_pure_tone_is_all_odd_harmonic_and_not_noisy():
    x = _tone([(220.0, 0.5)])
    out = d.harmonic_descriptors(x, SR)
    # Only the first (odd) harmonic: the ratio sits at the documented +60 dB floor.
    assert out["odd_even_ratio_db"] == pytest.approx(10 * math.log10(1 / d.ODD_EVEN_FLOOR), abs=1.0)
    assert out["noisiness"] < 0.005
    # Harmonic energy of a sine of amplitude A is its mean square A^2 / 2.
    assert out["harmonic_energy_db"] == pytest.approx(10 * math.log10(0.5**2 / 2), abs=0.1)


@pytest.mark.parametrize("f0", [110.0, 196.0, 330.0])
def test_odd_even_ratio_of_a_band_limited_sawtooth(f0):
    # Harmonic h with amplitude 1/h, h = 1..10: odd/even energy = sum 1/h^2 over odd h / over even h.
    harmonics = [(h * f0, 0.3 / h) for h in range(1, 11)]
    odd = sum(1 / h**2 for h in range(1, 11, 2))
    even = sum(1 / h**2 for h in range(2, 11, 2))
    out = d.harmonic_descriptors(_tone(harmonics), SR)
    assert out["odd_even_ratio_db"] == pytest.approx(10 * math.log10(odd / even), abs=0.2)
    assert out["noisiness"] < 0.01


def test_equal_first_and_second_harmonic_read_zero_db():
    out = d.harmonic_descriptors(_tone([(300.0, 0.3), (600.0, 0.3)]), SR)
    assert out["odd_even_ratio_db"] == pytest.approx(0.0, abs=0.1)


def test_noisiness_of_noise_and_of_a_tone_in_noise():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.1, (1, 2 * SR))
    assert d.harmonic_descriptors(noise, SR)["noisiness"] > 0.9
    # Tone power 0.125, noise power 0.03125: 20 % of the energy is noise; the harmonic windows
    # (about 5 % of the bins) take their share of the noise with them.
    tone = _tone([(220.0, 0.5)]) + rng.normal(0, math.sqrt(0.03125), (1, 2 * SR))
    assert d.harmonic_descriptors(tone, SR)["noisiness"] == pytest.approx(0.2, abs=0.025)


def test_yin_finds_the_fundamental_and_marks_noise_unvoiced():
    spec = d.spectra(_tone([(f, 0.2 / k) for k, f in enumerate((147.0, 294.0, 441.0), start=1)]), SR)
    f0 = d.yin_f0(spec.frames, SR)
    assert np.nanmedian(f0) == pytest.approx(147.0, rel=0.003)
    noise = d.spectra(np.random.default_rng(2).normal(0, 0.1, (1, SR)), SR)
    assert np.isnan(d.yin_f0(noise.frames, SR, unvoiced_as_nan=True)).mean() > 0.9


def test_rms_envelope_of_a_sine_and_of_two_levels():
    out = d.rms_envelope(_tone([(1000.0, 0.5)]), SR)
    assert out["rms_envelope_median_db"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.05)
    assert out["rms_envelope_iqr_db"] < 0.2
    # Half the time 20 dB quieter: the quartiles fall in the two halves, 20 dB apart.
    x = _tone([(1000.0, 0.5)], seconds=4.0)
    x[:, 2 * SR :] *= 0.1
    assert d.rms_envelope(x, SR)["rms_envelope_iqr_db"] == pytest.approx(20.0, abs=0.3)


def test_centroid_and_tilt():
    assert d.spectral_centroid(_tone([(1000.0, 0.5)]), SR) == pytest.approx(1000.0, abs=2.0)
    rng = np.random.default_rng(3)
    white = rng.normal(0, 0.1, (1, 4 * SR))
    # Flat power density from 20 Hz to Nyquist: centroid halfway, slope 0 dB per octave.
    assert d.spectral_centroid(white, SR) == pytest.approx((20 + SR / 2) / 2, rel=0.01)
    assert d.spectral_tilt(white, SR) == pytest.approx(0.0, abs=0.2)
    spectrum = np.fft.rfft(rng.normal(size=8 * SR))
    freqs = np.fft.rfftfreq(8 * SR, 1 / SR)
    spectrum[1:] /= np.sqrt(freqs[1:])  # power density 1/f: pink
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum)[None, :]
    assert d.spectral_tilt(0.3 * pink / np.abs(pink).max(), SR) == pytest.approx(-10 * math.log10(2), abs=0.2)


def test_mrstft_is_zero_for_identical_mixes_and_ignores_level():
    rng = np.random.default_rng(4)
    mix = 0.1 * rng.standard_normal((2, SR // 2))
    assert d.mrstft_distance(mix, mix, SR) == 0.0
    # Loudness-matched first: a quieter copy is the same mix.
    assert d.mrstft_distance(0.25 * mix, mix, SR) == pytest.approx(0.0, abs=1e-4)
    other = _tone([(440.0, 0.3)], seconds=0.5).repeat(2, axis=0)
    assert d.mrstft_distance(other, mix, SR) > 1.0
    # A small change gives a small distance, a larger change a larger one.
    slight = mix + 0.01 * rng.standard_normal(mix.shape)
    more = mix + 0.05 * rng.standard_normal(mix.shape)
    assert 0 < d.mrstft_distance(slight, mix, SR) < d.mrstft_distance(more, mix, SR)


def test_chroma_puts_a_tone_in_its_pitch_class():
    chroma = d.chromagram(_tone([(440.0, 0.5)]), SR)
    assert chroma.shape[0] == 12
    assert np.argmax(chroma.sum(axis=1)) == 9  # A, with C = 0
    assert np.argmax(d.chromagram(_tone([(261.63, 0.5)]), SR).sum(axis=1)) == 0  # middle C


def _progression(chords, seconds_each=1.0):
    parts = [_tone([(f, 0.2) for f in chord], seconds=seconds_each) for chord in chords]
    return np.concatenate(parts, axis=1)


C_MAJOR, A_MINOR, F_MAJOR, G_MAJOR = (
    (261.63, 329.63, 392.0),
    (220.0, 261.63, 329.63),
    (174.61, 220.0, 261.63),
    (196.0, 246.94, 293.66),
)


def test_ssm_of_identical_or_rescaled_mixes_is_identical():
    x = _progression([C_MAJOR, A_MINOR, F_MAJOR, G_MAJOR] * 2)
    same = d.ssm_comparison(x, x, SR)
    assert same["ssm_similarity"] == pytest.approx(1.0, abs=1e-12) and same["ssm_rmse"] == 0.0
    # Chroma vectors are standardised per frame: level does not change the SSM.
    assert d.ssm_comparison(0.3 * x, x, SR)["ssm_similarity"] == pytest.approx(1.0, abs=1e-9)
    ssm = same["ssm"]
    assert np.allclose(np.diag(ssm)[np.abs(np.diag(ssm)) > 0], 1.0)  # a frame is perfectly like itself
    assert ssm.min() >= -1 - 1e-12 and ssm.max() <= 1 + 1e-12


def test_ssm_similarity_drops_when_the_harmony_differs():
    x = _progression([C_MAJOR, A_MINOR, F_MAJOR, G_MAJOR] * 2)
    repeated = _progression([C_MAJOR, C_MAJOR, G_MAJOR, G_MAJOR] * 2)
    different = d.ssm_comparison(repeated, x, SR)
    assert different["ssm_similarity"] < 0.8 and different["ssm_rmse"] > 0.1


def test_ssim_known_values():
    a = np.random.default_rng(5).uniform(-1, 1, (20, 20))
    assert d.ssim(a, a) == pytest.approx(1.0)
    noise = np.random.default_rng(6).uniform(-1, 1, (20, 20))
    # More disturbance, less similarity.
    assert 1.0 > d.ssim(a, a + 0.1 * noise) > d.ssim(a, a + 0.5 * noise) > d.ssim(a, noise)
    # One window (matrix smaller than 7 x 7): the global SSIM formula by hand.
    b = np.array([[0.0, 1.0], [1.0, 0.0]])
    c = np.array([[0.0, 0.5], [0.5, 0.0]])
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    mb, mc, vb, vc, cov = 0.5, 0.25, 0.25, 0.0625, 0.125
    expected = (2 * mb * mc + c1) * (2 * cov + c2) / ((mb**2 + mc**2 + c1) * (vb + vc + c2))
    assert d.ssim(b, c) == pytest.approx(expected)


def test_level_descriptors_come_from_the_analysis_module():
    x = _tone([(997.0, 10 ** (-20 / 20))], seconds=3.0).repeat(2, axis=0)
    out = d.level_descriptors(x, SR)
    # BS.1770: a stereo 997 Hz sine at -20 dBFS peak per channel reads -20 + 3.01 - 3.01 = -20 LUFS... per the
    # standard's calibration a 0 dBFS sine in one channel reads -3.01 LUFS, so two channels read 0.0 + (-20).
    assert out["integrated_lufs"] == pytest.approx(-20.0, abs=0.1)
    assert out["rms_dbfs"] == pytest.approx(-23.01, abs=0.02)
    assert out["true_peak_dbtp"] == pytest.approx(-20.0, abs=0.05)
    assert out["lra_lu"] == pytest.approx(0.0, abs=0.1)


def test_vocal_descriptors_relative_loudness():
    vocal = _tone([(1000.0, 0.1)], seconds=3.0).repeat(2, axis=0)
    backing = 2 * vocal
    out = d.vocal_descriptors(vocal, backing, SR)
    assert out["relative_loudness_lu"] == pytest.approx(-20 * math.log10(2), abs=0.01)
    assert out["vocal_centroid_hz"] == pytest.approx(1000.0, abs=2.0)


def _harmonic_power_frame_by_frame(x, sr):
    """The harmonic measurement written plainly, one frame and one harmonic at a time."""
    spec = d.spectra(x, sr)
    f0 = d.yin_f0(spec.frames, sr)
    bin_hz, n_bins = spec.freqs[1], spec.power.shape[1]
    out = np.zeros((len(f0), d.N_HARMONICS))
    for i in range(len(f0)):
        claimed = np.zeros(n_bins, dtype=bool)
        for h in range(1, d.N_HARMONICS + 1):
            centre = h * f0[i] / bin_hz
            reach = max(d.MAIN_LOBE_BINS, d.HARMONIC_TOLERANCE * centre)
            lo, hi = math.floor(centre - reach), math.ceil(centre + reach) + 1
            if lo >= n_bins - 1:
                break
            lo, hi = max(lo, 1), min(hi, n_bins)
            peak = lo + int(np.argmax(spec.power[i, lo:hi]))
            lobe = [
                k
                for k in range(peak - d.MAIN_LOBE_BINS, peak + d.MAIN_LOBE_BINS + 1)
                if 0 <= k < n_bins and not claimed[k]
            ]
            claimed[lobe] = True
            out[i, h - 1] = spec.power[i, lobe].sum()
    return out


@pytest.mark.parametrize("f0", [52.0, 180.0, 900.0])
def test_vectorised_harmonics_equal_the_plain_loop(f0):
    # 52 Hz: lobes of neighbouring harmonics overlap (4.8 bins apart), so bins must be claimed once.
    rng = np.random.default_rng(7)
    x = _tone([(h * f0, 0.2 / h) for h in range(1, 25) if h * f0 < 20000], seconds=0.6)
    x = x + 0.02 * rng.standard_normal(x.shape)
    assert np.allclose(
        d.harmonic_frames(x, SR).harmonic_power, _harmonic_power_frame_by_frame(x, SR), rtol=1e-12, atol=0
    )
