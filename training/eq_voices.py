"""Training examples for the EQ-undo model from licence-clean vocals only.

The EQ model must judge a degraded vocal against what vocals usually look like, and the
only real vocals whose licence allows shipping weights are five CC BY dry takes of three
singers (``CC_BY_DRY_VOCALS``). Two sources widen that:

- :func:`augment_vocal`: each dry take as another voice and recording: played faster or
  slower by up to ``SHIFT_SEMITONES`` (pitch *and* formants move, as for a smaller or larger
  vocal tract), then :func:`~vocalmix.training.synthesis.recording_variation` (high-pass,
  band limit, shelves, noise floor), sometimes the synthetic FDN reverb, and a random level;
- :func:`synthetic_voice`: source-filter singing: a harmonic source with a random spectral
  tilt through five formant resonances (vowel formants of Peterson & Barney 1952, scaled
  for vocal-tract length), sometimes a singer's-formant boost near 3 kHz, breath noise
  shaped by the same tract and short fricative bursts, so the training set sees many
  spectral envelopes instead of three singers' (or one fixed synthetic slope).

:func:`eq_examples_from_vocals` degrades random 3-s stretches with the random 4-band
peak EQ of ``BatchRenderer.eq_degrade`` (the exact undo gains are the labels) and returns
feature blocks as :class:`vocalmix.training.train.Arrays`.
"""

from __future__ import annotations

import numpy as np
import torch

from vocalmix.features import DEFAULT_FEATURES

__all__ = ["SHIFT_SEMITONES", "augment_vocal", "synthetic_voice", "eq_examples_from_vocals"]

SAMPLE_RATE = DEFAULT_FEATURES.sample_rate
#: Largest speed change of :func:`augment_vocal`, in semitones either way.
SHIFT_SEMITONES = 4.0
#: (F1, F2, F3) in Hz of ten English vowels, adult male averages (Peterson & Barney 1952).
VOWEL_FORMANTS_HZ = np.array(
    [
        [270, 2290, 3010],
        [390, 1990, 2550],
        [530, 1840, 2480],
        [660, 1720, 2410],
        [730, 1090, 2440],
        [570, 840, 2410],
        [440, 1020, 2240],
        [300, 870, 2240],
        [640, 1190, 2390],
        [490, 1350, 1690],
    ],
    dtype=float,
)


def _loudness_to(x: np.ndarray, lufs: float) -> np.ndarray:
    from .targets import integrated_loudness

    return (x * 10 ** ((lufs - integrated_loudness(x[None], SAMPLE_RATE)) / 20)).astype(np.float32)


def _resample_speed(x: np.ndarray, ratio: float) -> np.ndarray:
    """``x`` played ``ratio`` times as fast (linear interpolation): pitch and formants scale by ``ratio``."""
    t = np.arange(int(len(x) / ratio)) * ratio
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def augment_vocal(vocal: np.ndarray, rng: np.random.Generator, renderer=None) -> np.ndarray:
    """``vocal`` ``(T,)`` as another voice and recording (see the module docstring); float32 ``(T',)``."""
    from .synthesis import recording_variation

    x = np.asarray(vocal, dtype=np.float32)
    if rng.random() < 0.8:
        x = _resample_speed(x, 2 ** (rng.uniform(-SHIFT_SEMITONES, SHIFT_SEMITONES) / 12))
    x = recording_variation(x, SAMPLE_RATE, rng)
    if renderer is not None and rng.random() < 0.5:
        x = _reverberate(x, rng, renderer)
    return _loudness_to(x, -20.0 + rng.uniform(-6, 6))


def _reverberate(x: np.ndarray, rng: np.random.Generator, renderer) -> np.ndarray:
    settings = renderer.sample_reverb_settings(1)
    settings["dry_wet_pct"] = torch.tensor([float(rng.uniform(3, 30))])
    with torch.no_grad():
        y = renderer.reverberate(torch.from_numpy(x)[None, None], settings)
    return y[0].mean(0).numpy().astype(np.float32)


def _resonances_db(f: np.ndarray, formants, bandwidths) -> np.ndarray:
    """Cascade of 2nd-order resonances (0 dB at DC), in dB at frequencies ``f``."""
    out = np.zeros_like(f, dtype=float)
    for centre, width in zip(formants, bandwidths):
        out += 20 * np.log10(centre**2 / np.sqrt((centre**2 - f**2) ** 2 + (f * width) ** 2))
    return out


def synthetic_voice(seconds: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Source-filter singing of one random voice, float32 ``(T,)`` peaking at 0.5 (see the module docstring)."""
    n = int(seconds * sr)
    y = np.zeros(n)
    female = rng.random() < 0.5
    tract = rng.uniform(1.1, 1.25) if female else rng.uniform(0.9, 1.05)  # formant scale
    lowest, highest = (180.0, 700.0) if female else (90.0, 380.0)
    tilt = rng.uniform(0.8, 2.0)  # harmonic amplitude ~ h^-tilt: -5 to -12 dB per octave
    f4, f5 = rng.uniform(3200, 3800) * tract, rng.uniform(4000, 4900) * tract
    singer_formant_db = rng.uniform(0, 12) if rng.random() < 0.5 else 0.0
    breath = 10 ** (-rng.uniform(20, 45) / 20)
    vibrato_hz, vibrato_depth = rng.uniform(4.5, 6.5), rng.uniform(0, 0.03)
    centre = np.exp(rng.uniform(np.log(lowest * 1.2), np.log(highest / 1.3)))
    start = 0
    while start < n:
        m = min(int(rng.uniform(0.15, 0.8) * sr), n - start)
        f0 = float(np.clip(centre * 2 ** (rng.normal(0, 4) / 12), lowest, highest))
        t = np.arange(m) / sr
        vibrato = 1 + vibrato_depth * np.sin(2 * np.pi * vibrato_hz * t + rng.uniform(0, 6.3))
        phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sr
        vowel = VOWEL_FORMANTS_HZ[rng.integers(len(VOWEL_FORMANTS_HZ))]
        formants = [*(vowel * tract * rng.uniform(0.93, 1.07, 3)), f4, f5]
        widths = [
            rng.uniform(50, 110),
            rng.uniform(70, 140),
            rng.uniform(100, 200),
            rng.uniform(150, 300),
            rng.uniform(200, 400),
        ]
        harmonics = np.arange(1, int(0.45 * sr / f0) + 1)
        freqs = f0 * harmonics
        amp_db = -20 * tilt * np.log10(harmonics) + _resonances_db(freqs, formants, widths)
        if singer_formant_db:
            amp_db += singer_formant_db * np.exp(-0.5 * ((freqs - 3000 * np.sqrt(tract)) / 400) ** 2)
        amp = 10 ** (amp_db / 20)
        note = np.zeros(m)
        for h in np.nonzero(amp > amp.max() * 1e-4)[0]:
            note += amp[h] * np.sin(harmonics[h] * phase + rng.uniform(0, 6.3))
        noise = np.fft.rfft(rng.standard_normal(m))
        fr = np.maximum(np.fft.rfftfreq(m, 1 / sr), 1.0)
        noise = np.fft.irfft(
            noise * 10 ** ((_resonances_db(fr, formants, widths) - 10 * np.log10(np.maximum(fr, 50) / 50)) / 20), m
        )
        note = note / (np.abs(note).max() + 1e-9) + 0.3 * breath * noise / (noise.std() + 1e-9)
        if rng.random() < 0.5:  # a fricative at the note's start
            k = min(m, int(rng.uniform(0.03, 0.12) * sr))
            burst = np.fft.rfft(rng.standard_normal(k))
            fb = np.maximum(np.fft.rfftfreq(k, 1 / sr), 1.0)
            burst = np.fft.irfft(burst / np.sqrt(1 + (rng.uniform(2500, 7000) / fb) ** 4), k)
            note[:k] += burst / (np.abs(burst).max() + 1e-9) * 10 ** (-rng.uniform(5, 25) / 20)
        envelope = np.clip(np.minimum(t / rng.uniform(0.01, 0.06), (m / sr - t) / 0.04), 0, 1)
        y[start : start + m] = note * envelope * 10 ** (rng.uniform(-6, 0) / 20)
        start += m + int(rng.uniform(0, 0.08) * sr)
    return (y / (np.abs(y).max() + 1e-9) * 0.5).astype(np.float32)


def eq_examples_from_vocals(vocals, per_vocal: int, seed: int):
    """EQ examples of ``vocals`` (iterable of ``(name, float32 (T,))``), ``per_vocal`` each.

    Each vocal is paired with a quiet synthetic backing (the EQ model does not read it);
    returns :class:`~vocalmix.training.train.Arrays` with the undo gains as targets and
    ``songs`` the vocals' names.
    """
    from .build import BuildConfig, _eq_examples, song_seed
    from .synthesis import synthetic_backing
    from .train import Arrays

    config = BuildConfig(seed=seed, eq_per_song=per_vocal, random_gain_db=0.0)
    features, targets, changed, names = [], [], [], []
    for j, (name, vocal) in enumerate(vocals):
        rng = np.random.default_rng([seed, j])
        generator = torch.Generator().manual_seed(song_seed(seed, name))
        backing = synthetic_backing(len(vocal) / SAMPLE_RATE, SAMPLE_RATE, rng)[:, : len(vocal)].mean(0) * 0.3
        f, t, c = _eq_examples(vocal, backing.astype(np.float32), config, generator, per_vocal)
        features.append(f.numpy())
        targets.append(t.numpy())
        changed.append(c.numpy())
        names += [name] * len(f)
    return Arrays(
        np.concatenate(features).astype(np.float32),
        np.concatenate(targets).astype(np.float64),
        names,
        np.concatenate(changed).astype(bool),
    )
