"""Built-in demo material, synthesised in code: a sung-like vocal line and a backing track.

Nothing here is a recording. The vocal is a harmonic voice with vibrato, vowel-like
formants and syllable envelopes, recorded "raw" (uneven level, some low rumble);
the backing has kick, snare, hi-hat, bass and chords at a fixed tempo, mastered
loud. They exist so that ``vocalmix demo`` shows the whole product without any
input files.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

DEMO_TEMPO_BPM = 96.0
DEMO_SECONDS = 16.0

# A minor-key progression (Am F C G) and a melody on it, in MIDI notes.
_CHORDS = [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)]
_MELODY = [69, 72, 71, 69, 67, 69, 64, 0, 65, 69, 67, 65, 64, 67, 62, 0]


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def demo_vocal(sample_rate: int = 44100, seconds: float = DEMO_SECONDS, seed: int = 0) -> np.ndarray:
    """Mono ``(1, samples)`` float32 vocal-like line."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    beat = 60.0 / DEMO_TEMPO_BPM
    note_len = 2 * beat
    f0 = np.zeros(n)
    envelope = np.zeros(n)
    for k in range(int(np.ceil(seconds / note_len))):
        note = _MELODY[k % len(_MELODY)]
        start, stop = int(k * note_len * sample_rate), min(n, int((k + 1) * note_len * sample_rate))
        if note == 0 or start >= n:
            continue
        f0[start:stop] = _midi_hz(note - 12 * (k % 3 == 2))
        seg = np.arange(stop - start) / sample_rate
        # Syllables: two per note, each with a fast attack and a slower decay; the singer drifts in level.
        syll = np.sin(np.pi * np.clip((seg % beat) / (0.9 * beat), 0, 1)) ** 0.6
        # An untrained singer: whole phrases come out loud or soft, up to 26 dB apart.
        phrase_db = (0.0, -22.0, -4.0, -26.0)[(k // 4) % 4]
        envelope[start:stop] = syll * 10 ** ((phrase_db + rng.uniform(-3.0, 0.0)) / 20)
    vibrato = 1 + 0.012 * np.sin(2 * np.pi * 5.5 * t) * np.clip(t % note_len / 0.4, 0, 1)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sample_rate
    voice = sum(np.sin(h * phase) / h**1.2 for h in range(1, 25))
    # Vowel-like resonances at typical formant frequencies.
    for formant, bandwidth, weight in ((700, 110, 1.0), (1220, 120, 0.6), (2600, 160, 0.35)):
        b, a = signal.iirpeak(formant, formant / bandwidth, fs=sample_rate)
        voice = voice + weight * signal.lfilter(b, a, voice)
    breath = signal.lfilter(*signal.butter(2, [2000, 8000], btype="band", fs=sample_rate), rng.normal(size=n))
    rumble = signal.lfilter(*signal.butter(2, 60, fs=sample_rate), rng.normal(size=n))
    x = voice * envelope + 0.02 * breath * envelope + 0.03 * rumble
    x = x / np.max(np.abs(x)) * 0.5
    return x[None, :].astype(np.float32)


def demo_backing(sample_rate: int = 44100, seconds: float = DEMO_SECONDS, seed: int = 1) -> np.ndarray:
    """Stereo ``(2, samples)`` float32 backing at :data:`DEMO_TEMPO_BPM`."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    beat = 60.0 / DEMO_TEMPO_BPM
    out = np.zeros((2, n))

    def place(sound: np.ndarray, at_s: float, pan: float = 0.0):
        start = int(at_s * sample_rate)
        stop = min(n, start + sound.size)
        if start < n:
            out[0, start:stop] += sound[: stop - start] * np.cos((pan + 1) * np.pi / 4)
            out[1, start:stop] += sound[: stop - start] * np.sin((pan + 1) * np.pi / 4)

    tk = np.arange(int(0.35 * sample_rate)) / sample_rate
    kick = np.sin(2 * np.pi * (50 * tk + 60 * (1 - np.exp(-tk * 30)) / 30)) * np.exp(-tk * 9)
    ts = np.arange(int(0.2 * sample_rate)) / sample_rate
    snare = (rng.normal(size=ts.size) * 0.6 + np.sin(2 * np.pi * 190 * ts)) * np.exp(-ts * 22)
    hat_noise = signal.lfilter(
        *signal.butter(2, 7000, btype="high", fs=sample_rate), rng.normal(size=int(0.05 * sample_rate))
    )
    hat = hat_noise * np.exp(-np.arange(hat_noise.size) / sample_rate * 80)

    n_beats = int(seconds / beat)
    for k in range(n_beats):
        at = k * beat
        place(kick * 0.9, at) if k % 2 == 0 else place(snare * 0.5, at, 0.1)
        place(hat * 0.25, at, -0.4)
        place(hat * 0.15, at + beat / 2, -0.4)
    bar = 4 * beat
    for k in range(int(np.ceil(seconds / bar))):
        chord = _CHORDS[k % len(_CHORDS)]
        tc = np.arange(int(bar * sample_rate)) / sample_rate
        pad = sum(signal.sawtooth(2 * np.pi * _midi_hz(m) * tc) for m in chord) * 0.08
        pad = signal.lfilter(*signal.butter(2, 1800, fs=sample_rate), pad) * np.minimum(1, tc / 0.05)
        place(pad, k * bar, -0.3)
        place(pad, k * bar + 0.011, 0.3)
        for j in range(4):
            tb = np.arange(int(beat * 0.9 * sample_rate)) / sample_rate
            bass = np.sin(2 * np.pi * _midi_hz(chord[0] - 24) * tb) * np.exp(-tb * 3) * 0.5
            place(bass, k * bar + j * beat)
    out = np.tanh(1.5 * out) / np.tanh(1.5)
    out = out / np.max(np.abs(out)) * 0.89
    return out.astype(np.float32)
