"""Time vocalmix.analysis on a synthetic 3-minute stereo song and compare with pyloudnorm.

Usage: python scripts/bench_analysis.py [--seconds 180] [--sr 44100] [--repeats 3]

Each analysis function is timed (best of --repeats runs) on the same signal;
pyloudnorm's integrated loudness and loudness range run once each on that
signal in the same process, and the ratio pyloudnorm time / ours is printed
with both results.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from scipy.signal import lfilter

from vocalmix import analysis


def synthetic_song(seconds: float, sr: int, bpm: float = 120.0, seed: int = 0) -> np.ndarray:
    """A music-like stereo signal, shape (2, samples), float64.

    Kick on every beat, snare on 2 and 4, eighth-note hats, a bass line, a
    sustained chord pad and a little pink noise; quiet verses alternate with
    louder choruses every 16 bars so that the loudness range is non-trivial.
    One 16-bar loop is synthesised and repeated, which keeps generation quick.
    """
    beat = 60.0 / bpm
    bar = 4 * beat
    loop = _loop(min(seconds, 16 * bar), sr, bpm, seed)
    n = int(seconds * sr)
    repeats = -(-n // loop.shape[1])
    song = np.tile(loop, (1, repeats))[:, :n]
    t = np.arange(n) / sr

    # Verse / chorus dynamics: 16 bars at -8 dB, 16 bars at 0 dB, with 0.5 s ramps.
    section_length = 16 * bar
    boundaries = np.arange(0.0, seconds + section_length, section_length)
    levels_db = np.where(np.arange(boundaries.shape[0]) % 2 == 1, 0.0, -8.0)
    knot_times = np.stack([boundaries, boundaries + 0.5], axis=1).reshape(-1)
    knot_levels = np.stack([np.roll(levels_db, 1), levels_db], axis=1).reshape(-1)
    knot_levels[0] = levels_db[0]
    song *= 10.0 ** (np.interp(t, knot_times, knot_levels) / 20.0)
    return 0.9 * song / np.max(np.abs(song))


def _loop(seconds: float, sr: int, bpm: float, seed: int) -> np.ndarray:
    """The repeating part of :func:`synthetic_song`, shape (2, samples)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    beat = 60.0 / bpm
    left = np.zeros(n)
    right = np.zeros(n)

    def place(events: np.ndarray, sound: np.ndarray, gain_left: float, gain_right: float) -> None:
        # Sum copies of `sound` starting at each event time with one bincount per sound.
        starts = np.round(events * sr).astype(np.int64)
        starts = starts[starts < n]
        index = (starts[:, None] + np.arange(sound.shape[0])[None, :]).reshape(-1)
        values = np.broadcast_to(sound, (starts.shape[0], sound.shape[0])).reshape(-1)
        inside = index < n
        summed = np.bincount(index[inside], weights=values[inside], minlength=n)
        left[:] += gain_left * summed
        right[:] += gain_right * summed

    tk = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * np.cumsum(45.0 + 90.0 * np.exp(-tk / 0.04)) / sr) * np.exp(-tk / 0.08)
    ts = np.arange(int(0.2 * sr)) / sr
    snare = (0.6 * rng.standard_normal(ts.shape[0]) + 0.5 * np.sin(2 * np.pi * 190.0 * ts)) * np.exp(-ts / 0.05)
    th = np.arange(int(0.05 * sr)) / sr
    hat = np.diff(rng.standard_normal(th.shape[0] + 1)) * np.exp(-th / 0.012)

    beats = np.arange(0.0, seconds, beat)
    place(beats, 0.8 * kick, 1.0, 1.0)
    place(beats[1::2], 0.5 * snare, 0.9, 1.0)
    place(np.arange(0.0, seconds, beat / 2), 0.15 * hat, 0.6, 1.0)

    # Bass: one note per bar from a I-vi-IV-V loop in A.
    bar = 4 * beat
    roots_hz = np.array([55.0, 46.25, 36.71, 41.2])
    bar_index = (t // bar).astype(np.int64)
    bass_freq = roots_hz[bar_index % 4]
    bass_phase = 2 * np.pi * np.cumsum(bass_freq) / sr
    bass = 0.3 * np.tanh(2.0 * np.sin(bass_phase)) * np.exp(-(t % beat) / 0.4)
    left += bass
    right += bass

    # Pad: a major triad on the bar's root, two octaves up, slightly detuned per channel.
    for ratio, detune in ((4.0, 1.002), (5.04, 0.998), (6.0, 1.001)):
        phase_left = 2 * np.pi * np.cumsum(bass_freq * ratio * detune) / sr
        phase_right = 2 * np.pi * np.cumsum(bass_freq * ratio / detune) / sr
        left += 0.05 * np.sin(phase_left)
        right += 0.05 * np.sin(phase_right)

    # Pink-ish noise floor: white noise through a one-pole low-pass.
    noise = lfilter([0.05], [1.0, -0.95], rng.standard_normal((2, n)), axis=-1)
    return np.stack([left + 0.02 * noise[0], right + 0.02 * noise[1]])


def best_time(function, repeats: int) -> tuple[float, float, object]:
    """Best wall-clock time, the CPU time of that same run, and the result.

    CPU time (all threads of this process) is printed too because it is far
    less disturbed than wall time when other processes share the cores.
    """
    best = (math.inf, math.inf)
    result = None
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        elapsed = (time.perf_counter() - start_wall, time.process_time() - start_cpu)
        best = min(best, elapsed)
    return best[0], best[1], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--sr", type=int, default=44100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    song = synthetic_song(args.seconds, args.sr)
    sr = args.sr
    print(f"signal: synthetic song, {args.seconds:.0f} s stereo at {sr} Hz, shape {song.shape}")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"timings: best of {args.repeats} runs; {os.cpu_count()} CPUs, load average {load} (1/5/15 min)\n")

    jobs = [
        ("integrated_loudness", lambda: analysis.integrated_loudness(song, sr), "LUFS"),
        ("loudness_range", lambda: analysis.loudness_range(song, sr), "LU"),
        ("true_peak", lambda: analysis.true_peak(song, sr), "dBTP"),
        ("estimate_tempo", lambda: analysis.estimate_tempo(song, sr), "BPM"),
        ("octave_band_rms", lambda: analysis.octave_band_rms(song, sr), "dB"),
        ("momentary_loudness", lambda: analysis.momentary_loudness(song, sr), "LUFS"),
        ("short_term_loudness", lambda: analysis.short_term_loudness(song, sr), "LUFS"),
        ("sample_peak", lambda: analysis.sample_peak(song), "dBFS"),
        ("rms", lambda: analysis.rms(song), "dBFS"),
        ("crest_factor", lambda: analysis.crest_factor(song), "dB"),
    ]
    ours: dict[str, tuple[float, float, object]] = {}
    print(f"{'function':22s} {'wall':>9s} {'cpu':>9s}   result")
    for name, function, unit in jobs:
        seconds, cpu_seconds, value = best_time(function, args.repeats)
        ours[name] = (seconds, cpu_seconds, value)
        if isinstance(value, np.ndarray):
            shown = f"array{value.shape} [{np.array2string(value[:9], precision=1, separator=', ')[1:-1]}]"
        else:
            shown = f"{value:.3f} {unit}"
        print(f"{name:22s} {seconds:7.4f} s {cpu_seconds:7.4f} s   {shown}")
    core = ["integrated_loudness", "loudness_range", "true_peak", "estimate_tempo", "octave_band_rms"]
    total = sum(ours[name][0] for name in core)
    total_cpu = sum(ours[name][1] for name in core)
    print(f"\ncore analysis total ({' + '.join(core)}): wall {total:.3f} s, cpu {total_cpu:.3f} s")

    import pyloudnorm

    meter = pyloudnorm.Meter(sr)
    interleaved = np.ascontiguousarray(song.T)  # pyloudnorm wants (samples, channels)
    print("\npyloudnorm (same signal, same run):")
    for name, function, unit in [
        ("integrated_loudness", lambda: meter.integrated_loudness(interleaved), "LUFS"),
        ("loudness_range", lambda: meter.loudness_range(interleaved), "LU"),
    ]:
        seconds, _, value = best_time(function, 1)
        our_seconds, _, our_value = ours[name]
        print(
            f"{name:22s} pyloudnorm {seconds:8.3f} s = {value:8.3f} {unit:4s} | ours {our_seconds:7.4f} s = "
            f"{our_value:8.3f} {unit:4s} | speed-up x{seconds / our_seconds:6.1f}, difference {our_value - value:+.3f}"
        )


if __name__ == "__main__":
    main()
