"""Audio analysis: loudness (ITU-R BS.1770-4 / EBU R 128), peaks, octave-band
balance and tempo.

Conventions shared by every function here
-----------------------------------------
* ``x`` is audio shaped ``(channels, samples)`` or ``(samples,)``, as a numpy
  array or a torch tensor (converted to numpy float64 on entry).  Channel order
  for loudness follows BS.1770: L, R, C, Ls, Rs.  Full scale is +/-1.0.
  Inputs must be finite; more than :data:`MAX_CHANNELS` channels is rejected
  because it almost always means a ``(samples, channels)`` array was passed.
* ``sr`` is the sample rate in Hz.
* Silence never raises and never yields ``-inf`` or NaN from the level
  functions: a silent (or fully gated, or empty) input reads
  :data:`SILENCE_LUFS` (``-200.0``), and every dB value is floored there, so
  callers can compare with ``<= SILENCE_LUFS`` instead of special-casing
  infinities.  :func:`loudness_range` returns ``0.0`` for silence,
  :func:`crest_factor` returns ``0.0``, :func:`estimate_tempo` returns NaN.
* Level conventions: ``dBFS`` here is ``20*log10(amplitude)``, so a
  full-scale sine has a sample peak of 0 dBFS and an RMS of -3.01 dBFS.

Speed
-----
Each loudness function runs its own K-weighting (one pass of a compiled
``sosfilt``, bit-identical to scipy's) and sums energies per 100 ms hop; a
:class:`Loudness` keeps one pass's hop energies, so every loudness reading of one
signal (momentary, short-term, integrated, LRA) shares it, and :class:`SongAnalysis`
holds those of a song's vocal and backing for all the rules; true peak is a block-Toeplitz matrix
product; octave bands and tempo take one short-time FFT each.  No BLAS call
is large enough to go multi-threaded, because threaded OpenBLAS stalls when
the cores are shared.  ``scripts/bench_analysis.py`` times everything on a
3-minute stereo song at 44.1 kHz.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from .dsp.sosfilt import sosfilt as _sosfilt

# scipy.fft is imported where a transform is taken (octave bands, tempo) and scipy.signal
# not at all: its import alone costs 1-2 s of CPU, more than a render's K-weighting.

__all__ = [
    "SILENCE_LUFS",
    "SILENCE_DB",
    "MAX_CHANNELS",
    "LOUDNESS_HOP_S",
    "CHANNEL_WEIGHTS",
    "OCTAVE_CENTRES_HZ",
    "OCTAVE_BAND_EDGES_HZ",
    "TEMPO_RANGE_BPM",
    "k_weighting_sos",
    "Loudness",
    "SongAnalysis",
    "integrated_loudness",
    "loudness_range",
    "momentary_loudness",
    "short_term_loudness",
    "true_peak",
    "sample_peak",
    "rms",
    "crest_factor",
    "octave_band_rms",
    "estimate_tempo",
]

#: Floor for every loudness / level in this module (LUFS or dB).  Returned for
#: silent, fully gated or empty input instead of -inf.
SILENCE_LUFS = -200.0
#: Same floor, named for the dBFS / dBTP / dB functions.
SILENCE_DB = SILENCE_LUFS

#: More channels than this is taken to be a transposed (samples, channels) array.
MAX_CHANNELS = 32

#: Hop of the momentary / short-term series and of the gating blocks, seconds.
#: The hop in samples is ``round(LOUDNESS_HOP_S * sr)``.
LOUDNESS_HOP_S = 0.1

#: BS.1770-4 channel weights G_i for L, R, C, Ls, Rs.  Channels beyond the fifth
#: get weight 1.0 (an LFE channel should be removed by the caller).
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)

_ABSOLUTE_GATE_LUFS = -70.0
_RELATIVE_GATE_LU = -10.0  # BS.1770-4 integrated loudness
_LRA_RELATIVE_GATE_LU = -20.0  # EBU Tech 3342
_LRA_PERCENTILES = (10.0, 95.0)
_LOUDNESS_OFFSET_DB = -0.691  # makes a 1 kHz sine read its peak level in LUFS
_MOMENTARY_HOPS = 4  # 400 ms
_SHORT_TERM_HOPS = 30  # 3 s

# --------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------


def _as_channels(x: Any, keep_float32: bool = False) -> np.ndarray:
    """Return ``x`` as a float64 numpy array shaped (channels, samples) (float32 kept as it is with
    ``keep_float32``, for a reader that widens each sample exactly as it goes)."""
    if type(x).__module__.split(".")[0] == "torch":
        # Cast on the torch side: numpy has no bfloat16.
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x)
    if not (keep_float32 and arr.dtype == np.float32):
        arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    elif arr.ndim != 2:
        raise ValueError(f"audio must be (channels, samples) or (samples,), got shape {arr.shape}")
    if arr.shape[0] > MAX_CHANNELS:
        raise ValueError(
            f"audio has {arr.shape[0]} channels (shape {arr.shape}); expected (channels, samples) "
            f"with at most {MAX_CHANNELS} channels - transpose a (samples, channels) array"
        )
    return arr


def _check_rate(sr: float) -> float:
    sr = float(sr)
    # The K-weighting shelf sits at ~1.7 kHz, so it needs a Nyquist above that.
    if not sr >= 4000.0:
        raise ValueError(f"sample rate must be at least 4000 Hz, got {sr}")
    return sr


def _power_to_db(power: float, offset: float = 0.0) -> float:
    """``offset + 10*log10(power)`` floored at SILENCE_DB (no -inf, no warnings)."""
    if not power > 0.0:
        return SILENCE_DB
    return max(SILENCE_DB, offset + 10.0 * math.log10(power))


def _powers_to_db(power: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Vectorised :func:`_power_to_db`."""
    power = np.asarray(power, dtype=np.float64)
    out = np.full(power.shape, SILENCE_DB)
    positive = power > 0.0
    out[positive] = np.maximum(SILENCE_DB, offset + 10.0 * np.log10(power[positive]))
    return out


# --------------------------------------------------------------------------
# K-weighting (BS.1770-4 stage 1 shelf + stage 2 RLB high-pass)
# --------------------------------------------------------------------------

# The standard publishes these two biquads for 48 kHz only (BS.1770-4 Tables 1, 2).
_SHELF_48K = ((1.53512485958697, -2.69169618940638, 1.19839281085285), (1.0, -1.69065929318241, 0.73248077421585))
_HIGHPASS_48K = ((1.0, -2.0, 1.0), (1.0, -1.99004745483398, 0.99007225036621))


def _analog_prototype(b, a, fs: float) -> tuple[float, float, float, float, float]:
    """Invert a prewarped bilinear transform of a digital biquad.

    The biquad is taken as the bilinear image of the analog section
    ``H(s) = (n2 s^2 + n1 s + n0) / (s^2 + s/Q + 1)`` with ``s`` normalised to
    its pole frequency ``f0`` and the transform prewarped at ``f0``
    (``K = tan(pi f0 / fs)``).  Returns ``(f0, Q, n0, n1, n2)``.

    Evaluating the digital polynomials at z = 1 and z = -1 (and their
    difference) separates K, Q and the numerator terms in closed form.
    """
    b0, b1, b2 = (float(v) / float(a[0]) for v in b)
    _, a1, a2 = (float(v) / float(a[0]) for v in a)
    k_squared = (1.0 + a1 + a2) / (1.0 - a1 + a2)
    k = math.sqrt(k_squared)
    norm = 4.0 / (1.0 - a1 + a2)  # 1 + K/Q + K^2
    q = k / (norm * (1.0 - a2) / 2.0)
    n0 = (b0 + b1 + b2) * norm / (4.0 * k_squared)
    n1 = (b0 - b2) * norm / (2.0 * k)
    n2 = (b0 - b1 + b2) * norm / 4.0
    f0 = fs * math.atan(k) / math.pi
    return f0, q, n0, n1, n2


def _bilinear_biquad(f0: float, q: float, n0: float, n1: float, n2: float, fs: float) -> np.ndarray:
    """Digital biquad (one SOS row) of the analog section, prewarped at ``f0``."""
    k = math.tan(math.pi * f0 / fs)
    norm = 1.0 + k / q + k * k
    b = np.array([n2 + n1 * k + n0 * k * k, 2.0 * (n0 * k * k - n2), n2 - n1 * k + n0 * k * k]) / norm
    a = np.array([1.0, 2.0 * (k * k - 1.0) / norm, (1.0 - k / q + k * k) / norm])
    return np.concatenate([b, a])


_SHELF_PROTOTYPE = _analog_prototype(*_SHELF_48K, 48000.0)  # f0 ~ 1682 Hz, +4 dB shelf
_HIGHPASS_PROTOTYPE = _analog_prototype(*_HIGHPASS_48K, 48000.0)  # f0 ~ 38 Hz, Q ~ 0.5
_K_SOS_CACHE: dict[float, np.ndarray] = {}


def k_weighting_sos(sr: float) -> np.ndarray:
    """K-weighting filter for sample rate ``sr`` as second-order sections (2, 6).

    The BS.1770-4 48 kHz coefficients are mapped back to their analog
    prototypes (pole frequency, Q, numerator) and re-discretised with a
    bilinear transform prewarped at each section's pole frequency.  At 48 kHz
    this reproduces the published coefficients to rounding error; at other
    rates the shelf and high-pass corners stay at the same frequencies in Hz.
    """
    sr = _check_rate(sr)
    sos = _K_SOS_CACHE.get(sr)
    if sos is None:
        sos = np.stack([_bilinear_biquad(*_SHELF_PROTOTYPE, sr), _bilinear_biquad(*_HIGHPASS_PROTOTYPE, sr)])
        _K_SOS_CACHE[sr] = sos
    return sos.copy()


def _channel_weights(n_channels: int) -> np.ndarray:
    weights = np.ones(n_channels)
    surround = CHANNEL_WEIGHTS[: min(n_channels, len(CHANNEL_WEIGHTS))]
    weights[: len(surround)] = surround
    return weights


def _hop_samples(sr: float) -> int:
    return max(1, int(round(LOUDNESS_HOP_S * sr)))


#: Samples K-weighted at a time: the filter's float64 output is one block long, never song-long.
#: A multiple of every 100 ms hop at the common rates, so blocks hold whole hops.
ANALYSIS_BLOCK_SAMPLES = 1 << 18


class _HopEnergyMeter:
    """K-weighted energy per 100 ms hop of a signal fed in blocks ``(channels, m)``.

    The K-weighting recursion keeps its state from block to block (blocks in a row are
    the whole signal's ``sosfilt``, bit for bit) and each hop is summed as one whole hop,
    wherever the blocks are cut; the per-hop sums are joined and channel-weighted at the
    end, so the energies equal those of the whole signal filtered at once. The K-weighted
    samples themselves are kept only while the signal is shorter than a 3 s window (a
    short signal is read as one block over all of it).
    """

    def __init__(self, sr: float, n_channels: int):
        self.sample_rate = _check_rate(sr)
        self.hop = _hop_samples(self.sample_rate)
        self.n_channels = n_channels
        self.samples = 0
        self._sos = k_weighting_sos(self.sample_rate)
        self._zi = np.zeros((self._sos.shape[0], n_channels, 2))
        self._rest = np.zeros((n_channels, 0))
        self._sums: list[np.ndarray] = []
        self._short: list[np.ndarray] | None = []  # K-weighted samples while under one 3 s window

    def add(self, block: np.ndarray) -> None:
        if block.shape[-1] == 0:
            return
        weighted, self._zi = _sosfilt(self._sos, block, zi=self._zi)
        self.samples += block.shape[-1]
        if self._short is not None:
            self._short.append(weighted)
            if self.samples >= (_SHORT_TERM_HOPS + 1) * self.hop:
                self._short = None
        joined = np.concatenate([self._rest, weighted], axis=1) if self._rest.shape[1] else weighted
        n_hops = joined.shape[1] // self.hop
        if n_hops < 2:  # numpy sums a lone hop of one channel in another order (see _hop_sums); wait for more
            self._rest = joined if joined is not weighted else joined.copy()
            return
        self._sums.append(self._hop_sums(joined[:, : n_hops * self.hop]))
        self._rest = joined[:, n_hops * self.hop :].copy()

    def _hop_sums(self, whole_hops: np.ndarray) -> np.ndarray:
        """Sum of squares of each hop of ``whole_hops`` ``(channels, j * hop)``, per channel: ``(channels, j)``.

        ``einsum`` over ``(1, 1, hop)`` (one channel, one hop) flattens to one long reduction and
        adds in another order than over ``(channels, j, hop)`` with ``j >= 2``, where every hop is
        summed alike whatever ``j`` is (both checked in tests/test_streaming.py); so a lone hop
        is summed as one of two unless it is the whole signal, which the one-pass reading sums alone.
        """
        j = whole_hops.shape[1] // self.hop
        hops = whole_hops.reshape(self.n_channels, j, self.hop)
        if j == 1 and self._sums:
            hops = np.concatenate([hops, hops], axis=1)
            return np.einsum("cjh,cjh->cj", hops, hops)[:, :1]
        return np.einsum("cjh,cjh->cj", hops, hops)

    def finish(self) -> tuple[np.ndarray, float]:
        """The channel-weighted hop energies and, for a signal shorter than 3 s, its mean weighted power."""
        if self._rest.shape[1] >= self.hop:  # one whole hop left waiting
            self._sums.append(self._hop_sums(self._rest[:, : self.hop]))
            self._rest = self._rest[:, self.hop :]
        weights = _channel_weights(self.n_channels)
        energies = weights @ np.concatenate(self._sums, axis=1) if self._sums else np.zeros(0)
        whole_power = 0.0
        if self.samples // self.hop < _SHORT_TERM_HOPS and self.samples and self._short is not None:
            weighted = np.concatenate(self._short, axis=1)
            whole_power = float(weights @ np.mean(weighted * weighted, axis=1))
        return energies, whole_power


class Loudness:
    """One K-weighting pass over a signal, and every BS.1770 / EBU Tech 3342 reading that shares it.

    ``energies[j]`` is the channel-weighted energy of the K-weighted signal over
    samples ``[j*hop, (j+1)*hop)`` (``sum_c G_c * sum(y_c^2)``, 100 ms hops, a trailing
    partial hop dropped); summing whole hops (rather than differencing one long
    cumulative sum) keeps quiet passages exact after loud ones. Momentary and
    short-term series, integrated loudness and loudness range are all read from it,
    so a signal measured several ways is filtered once; the module's functions
    (:func:`integrated_loudness` and the others) are this class read once.

    The signal is K-weighted in blocks of :data:`ANALYSIS_BLOCK_SAMPLES` (the same numbers
    as one pass); :meth:`from_blocks` measures a signal read block by block (from a file).
    """

    def __init__(self, x: Any, sr: float):
        audio = _as_channels(x, keep_float32=True)  # the filter widens each sample to float64, exactly
        meter = _HopEnergyMeter(sr, audio.shape[0])
        for start in range(0, audio.shape[1], ANALYSIS_BLOCK_SAMPLES):
            meter.add(audio[:, start : start + ANALYSIS_BLOCK_SAMPLES])
        self._take(meter)

    @classmethod
    def from_blocks(cls, blocks: Iterable[np.ndarray], sr: float, n_channels: int) -> Loudness:
        """The loudness of the signal made of ``blocks`` ``(n_channels, m)`` laid end to end."""
        meter = _HopEnergyMeter(sr, n_channels)
        for block in blocks:
            meter.add(block)
        loudness = cls.__new__(cls)
        loudness._take(meter)
        return loudness

    def _take(self, meter: _HopEnergyMeter) -> None:
        self.sample_rate = meter.sample_rate
        self.hop = meter.hop
        # A signal shorter than a 3 s window is read as one block over all of it.
        self.energies, self._whole_power = meter.finish()

    def block_powers(self, hops_per_window: int) -> np.ndarray:
        """Mean K-weighted power of each window of ``hops_per_window`` hops, stepped by one hop; one
        reading over everything for a signal shorter than a window."""
        powers = _window_powers(self.energies, hops_per_window, self.hop)
        if powers.shape[0] == 0:
            powers = np.array([self._whole_power])
        return powers

    def momentary(self) -> np.ndarray:
        """:func:`momentary_loudness` of the signal."""
        return _powers_to_db(self.block_powers(_MOMENTARY_HOPS), _LOUDNESS_OFFSET_DB)

    def short_term(self) -> np.ndarray:
        """:func:`short_term_loudness` of the signal."""
        return _powers_to_db(self.block_powers(_SHORT_TERM_HOPS), _LOUDNESS_OFFSET_DB)

    def integrated(self) -> float:
        """:func:`integrated_loudness` of the signal."""
        return _gated_mean_loudness(self.block_powers(_MOMENTARY_HOPS))

    def loudness_range(self, normalise_to_lufs: float | None = None) -> float:
        """:func:`loudness_range` of the signal."""
        energies = self.energies
        if normalise_to_lufs is not None:
            loudness = _gated_mean_loudness(_window_powers(energies, _MOMENTARY_HOPS, self.hop))
            if loudness <= SILENCE_LUFS:
                return 0.0
            energies = energies * 10.0 ** ((normalise_to_lufs - loudness) / 10.0)
        powers = _window_powers(energies, _SHORT_TERM_HOPS, self.hop)
        absolute_threshold = 10.0 ** ((_ABSOLUTE_GATE_LUFS - _LOUDNESS_OFFSET_DB) / 10.0)
        above_absolute = powers[powers > absolute_threshold]
        if above_absolute.shape[0] < 2:
            return 0.0
        relative_threshold = float(np.mean(above_absolute)) * 10.0 ** (_LRA_RELATIVE_GATE_LU / 10.0)
        kept = above_absolute[above_absolute >= relative_threshold]
        if kept.shape[0] < 2:
            return 0.0
        low, high = np.percentile(10.0 * np.log10(kept), _LRA_PERCENTILES)
        return float(high - low)


def _window_powers(hop_energies: np.ndarray, hops_per_window: int, hop: int) -> np.ndarray:
    """Mean-square power of windows of ``hops_per_window`` hops, stepped by one hop."""
    if hop_energies.shape[0] < hops_per_window:
        return np.zeros(0)
    sums = np.lib.stride_tricks.sliding_window_view(hop_energies, hops_per_window).sum(axis=-1)
    return sums / (hops_per_window * hop)


def momentary_loudness(x: Any, sr: float) -> np.ndarray:
    """Momentary loudness (400 ms window) every 100 ms, LUFS, shape (n,).

    Value ``i`` measures samples ``[i*hop, i*hop + 4*hop)`` with
    ``hop = round(0.1*sr)``, i.e. it is what a meter shows at time
    ``(i + 4) * hop / sr``.  Only whole windows are reported, so
    ``n = floor(samples/hop) - 3``.  An input shorter than one window yields a
    single value over the whole input; silent windows read SILENCE_LUFS.
    """
    return Loudness(x, sr).momentary()


def short_term_loudness(x: Any, sr: float) -> np.ndarray:
    """Short-term loudness (3 s window) every 100 ms, LUFS, shape (n,).

    Value ``i`` measures samples ``[i*hop, i*hop + 30*hop)`` with
    ``hop = round(0.1*sr)``; ``n = floor(samples/hop) - 29``.  Same short-input
    and silence rules as :func:`momentary_loudness`.
    """
    return Loudness(x, sr).short_term()


def integrated_loudness(x: Any, sr: float) -> float:
    """Gated integrated loudness, ITU-R BS.1770-4, in LUFS.

    400 ms blocks with 75 % overlap (100 ms hop, whole blocks only), absolute
    gate -70 LUFS, relative gate 10 LU below the absolutely gated level.
    Inputs shorter than one block are measured as a single block.
    Returns SILENCE_LUFS when nothing passes the gates (including silence
    and empty input).
    """
    return Loudness(x, sr).integrated()


def integrated_from_momentary(momentary_lufs: np.ndarray) -> float:
    """Integrated loudness (LUFS) from a :func:`momentary_loudness` series of the same signal.

    The momentary values are the BS.1770 gating blocks, so this equals
    :func:`integrated_loudness` without a second K-weighting pass.
    """
    levels = np.asarray(momentary_lufs, dtype=np.float64)
    return _gated_mean_loudness(10.0 ** ((levels - _LOUDNESS_OFFSET_DB) / 10.0))


def _gated_mean_loudness(block_powers: np.ndarray) -> float:
    # Gates compare in the power domain: l > gate  <=>  p > 10^((gate - offset)/10).
    absolute_threshold = 10.0 ** ((_ABSOLUTE_GATE_LUFS - _LOUDNESS_OFFSET_DB) / 10.0)
    above_absolute = block_powers[block_powers > absolute_threshold]
    if above_absolute.shape[0] == 0:
        return SILENCE_LUFS
    relative_threshold = float(np.mean(above_absolute)) * 10.0 ** (_RELATIVE_GATE_LU / 10.0)
    kept = above_absolute[above_absolute > relative_threshold]
    if kept.shape[0] == 0:
        return SILENCE_LUFS
    return _power_to_db(float(np.mean(kept)), _LOUDNESS_OFFSET_DB)


def loudness_range(x: Any, sr: float, normalise_to_lufs: float | None = None) -> float:
    """Loudness range (LRA), EBU Tech 3342, in LU.

    With ``normalise_to_lufs`` the LRA is that of ``x`` scaled to this integrated
    loudness (which only moves the -70 LUFS absolute gate), computed from the same
    K-weighted pass instead of a second one.

    Short-term loudness (3 s windows, whole windows only, every 100 ms);
    values at or below -70 LUFS are dropped, then values more than 20 LU below
    the power mean of the rest; LRA is the 95th minus the 10th percentile of
    what remains (linear interpolation between ranks).  Returns 0.0 for
    silence and for inputs of 3 s or less (a single short-term value).

    Unlike pyloudnorm 0.2, no silence is appended to the input, so windows
    fading out past its end are not counted; on clips shorter than about
    20 s those can otherwise dominate the 10th percentile.
    """
    return Loudness(x, sr).loudness_range(normalise_to_lufs)


# --------------------------------------------------------------------------
# Peaks and RMS
# --------------------------------------------------------------------------

_TRUE_PEAK_HALF_TAPS = 8  # 16 taps per phase
_TRUE_PEAK_KAISER_BETA = 5.0  # with 16 taps: within 0.03 dB of ideal up to 0.8 * Nyquist
_INTERPOLATOR_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _oversampling_factor(sr: float) -> int:
    """4x at 44.1 kHz and above; doubled per octave below so the rate stays >= 176.4 kHz."""
    factor = 4
    while sr * factor < 4 * 44100.0 - 1e-6:
        factor *= 2
    return factor


def _interpolator_matrices(factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Block-Toeplitz form of the fractional-delay phases of a 1:factor interpolator.

    Each phase ``p/factor`` (p = 1..factor-1) is a Kaiser-windowed sinc over
    ``2*H`` neighbouring samples, normalised to unit DC gain; phase 0 is the
    samples themselves, so it needs no filter.  With the padded signal cut
    into rows of ``B = 2*H`` samples, the outputs for row k are
    ``rows[k] @ current + rows[k+1] @ following``, two contiguous matrix
    products that BLAS runs far faster than a strided convolution.
    Returns float32 matrices of shape (B, B*(factor-1)).
    """
    cached = _INTERPOLATOR_CACHE.get(factor)
    if cached is not None:
        return cached
    half = _TRUE_PEAK_HALF_TAPS
    taps = 2 * half
    offsets = np.arange(-half + 1, half + 1)  # sample positions relative to the left neighbour
    current = np.zeros((taps, taps * (factor - 1)))
    following = np.zeros_like(current)
    row = np.arange(taps)[:, None]
    col = np.arange(taps)[None, :]
    for phase in range(1, factor):
        distance = phase / factor - offsets
        window = np.i0(_TRUE_PEAK_KAISER_BETA * np.sqrt(np.clip(1.0 - (distance / half) ** 2, 0.0, None)))
        kernel = np.sinc(distance) * window
        kernel /= kernel.sum()
        # Output r of a row uses padded samples r .. r+taps-1 of that row and the next.
        lag = row - col
        block = slice((phase - 1) * taps, phase * taps)
        current[:, block] = np.where(lag >= 0, kernel[np.clip(lag, 0, taps - 1)], 0.0)
        following[:, block] = np.where(lag < 0, kernel[np.clip(lag + taps, 0, taps - 1)], 0.0)
    result = (current.astype(np.float32), following.astype(np.float32))
    _INTERPOLATOR_CACHE[factor] = result
    return result


def _interpolated_peak(channel: np.ndarray, factor: int, known_peak: float) -> float:
    """Largest |value| of one channel at its inter-sample positions, or ``known_peak`` if larger.

    Linear scale.  A stretch whose samples are all below ``known_peak`` /
    (sum of |taps| of the worst phase, about 2.1) cannot produce a larger
    interpolated value, so it is skipped; stretches are visited loudest
    first so the bar rises quickly.
    """
    current, following = _interpolator_matrices(factor)
    taps = current.shape[0]
    worst_gain = float(np.max(np.abs(current).sum(axis=0) + np.abs(following).sum(axis=0)))
    n = channel.shape[0]
    # With `half` leading zeros, output q sits between samples q-1 and q, so the
    # positions just before the first sample and after the last (where the
    # surrounding silence begins) are covered too.
    lead = taps // 2
    # Small products stay under OpenBLAS's threading threshold; threaded ones
    # are no faster here and collapse when the cores are busy elsewhere.
    chunk_rows = 512
    rows_needed = -(-(n + lead + taps) // taps)  # ceiling divisions
    n_chunks = -(-rows_needed // chunk_rows)
    n_rows = n_chunks * chunk_rows + 1  # one spare row: each chunk also reads the next row
    padded = np.zeros(n_rows * taps, dtype=np.float32)
    padded[lead : lead + n] = channel
    rows = padded.reshape(n_rows, taps)
    by_chunk = padded[: n_chunks * chunk_rows * taps].reshape(n_chunks, -1)
    chunk_peak = np.maximum(by_chunk.max(axis=1), -by_chunk.min(axis=1))
    # Inputs of chunk k: its own rows plus the first row of chunk k+1.
    reach = np.maximum(chunk_peak, np.append(chunk_peak[1:], 0.0)) * worst_gain
    peak = known_peak
    for index in np.argsort(-reach, kind="stable"):
        if reach[index] <= peak:
            break  # sorted: no later chunk can beat the current peak either
        start = int(index) * chunk_rows
        values = rows[start : start + chunk_rows] @ current
        values += rows[start + 1 : start + chunk_rows + 1] @ following
        peak = max(peak, float(values.max()), -float(values.min()))
    return peak


def true_peak(x: Any, sr: float) -> float:
    """True peak, ITU-R BS.1770-4 Annex 2, in dBTP (max over channels).

    The signal is oversampled 4x at 44.1 kHz and above (8x at 22.05-44.1 kHz,
    and so on, keeping >= 176.4 kHz) with a 16-tap-per-phase Kaiser-windowed
    sinc interpolator, accurate to about 0.03 dB up to 0.8 x Nyquist; the
    signal is taken to be surrounded by silence.  Never below
    :func:`sample_peak`.  Silence reads SILENCE_DB.
    """
    audio = _as_channels(x, keep_float32=True)  # read into float32 buffers below: no float64 copy
    sr = _check_rate(sr)
    peak = _largest_magnitude(audio)
    if peak == 0.0:
        return SILENCE_DB
    factor = _oversampling_factor(sr)
    for channel in audio:
        peak = _interpolated_peak(channel, factor, peak)
    return _power_to_db(peak * peak)


def _largest_magnitude(audio: np.ndarray) -> float:
    if audio.size == 0:
        return 0.0
    return max(float(audio.max()), -float(audio.min()))  # no |x| temporary


def _mean_square(audio: np.ndarray) -> float:
    if audio.size == 0:
        return 0.0
    flat = audio.reshape(-1)
    return float(np.einsum("i,i->", flat, flat)) / flat.shape[0]


def sample_peak(x: Any) -> float:
    """Largest absolute sample value over all channels, dBFS (SILENCE_DB for silence)."""
    peak = _largest_magnitude(_as_channels(x, keep_float32=True))  # float32's extremes are exact in float64
    return _power_to_db(peak * peak)


def rms(x: Any) -> float:
    """RMS level over all channels and samples, dBFS (full-scale sine: -3.01).

    SILENCE_DB for silence or empty input.
    """
    return _power_to_db(_mean_square(_as_channels(x)))


def crest_factor(x: Any) -> float:
    """Peak-to-RMS ratio in dB (``sample_peak - rms``; a sine gives 3.01).

    0.0 for silence.
    """
    audio = _as_channels(x)
    mean_square = _mean_square(audio)
    if _power_to_db(mean_square) <= SILENCE_DB:
        return 0.0
    peak = _largest_magnitude(audio)
    return _power_to_db(peak * peak) - _power_to_db(mean_square)


# --------------------------------------------------------------------------
# Octave bands
# --------------------------------------------------------------------------

#: Nominal octave-band centre frequencies, Hz (IEC 61260-1 labels).
OCTAVE_CENTRES_HZ = (63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)

# Exact base-10 midband frequencies 1000 * 10^(0.3 k), k = -4..4, and band edges
# a factor 10^0.15 (about sqrt 2) either side.
_OCTAVE_MIDBANDS_HZ = 1000.0 * 10.0 ** (0.3 * np.arange(-4, 5))
#: Band edges in Hz, shape (9, 2): lower, upper (-3 dB points of each filter).
#: 63 Hz band: 44.7-89.1 Hz ... 16 kHz band: 11.2-22.4 kHz.
OCTAVE_BAND_EDGES_HZ = np.stack([_OCTAVE_MIDBANDS_HZ * 10.0**-0.15, _OCTAVE_MIDBANDS_HZ * 10.0**0.15], axis=1)
OCTAVE_BAND_EDGES_HZ.setflags(write=False)

_OCTAVE_FILTER_ORDER = 4  # Butterworth order: about 26 dB down one octave from the centre
_OCTAVE_RELATIVE_BANDWIDTH = 10.0**0.15 - 10.0**-0.15  # (upper - lower) / midband


def _octave_band_response(freqs_hz: np.ndarray) -> np.ndarray:
    """Power response |H(f)|^2 of each octave filter at ``freqs_hz``, shape (n, 9).

    Each band is an analog Butterworth band-pass of order 4 around the exact
    midband ``fm`` with -3 dB at the edges of OCTAVE_BAND_EDGES_HZ:
    ``|H(f)|^2 = 1 / (1 + ((f/fm - fm/f) / B)^8)`` with
    ``B = 10^0.15 - 10^-0.15``.  Using the analog response (rather than a
    bilinear design) keeps every band the same shape on a log-frequency
    axis right up to Nyquist; a sampled signal has nothing above Nyquist,
    which is how the 16 kHz band is cut there at 44.1 kHz.
    """
    freqs = np.asarray(freqs_hz, dtype=np.float64)[:, None]
    midbands = _OCTAVE_MIDBANDS_HZ[None, :]
    with np.errstate(divide="ignore"):
        detuning = (freqs / midbands - midbands / freqs) / _OCTAVE_RELATIVE_BANDWIDTH
    response = 1.0 / (1.0 + detuning ** (2 * _OCTAVE_FILTER_ORDER))
    response[~np.isfinite(detuning[:, 0]), :] = 0.0  # DC
    return response


def _sos_response(sos: np.ndarray, freqs_hz: np.ndarray, sr: float) -> np.ndarray:
    """Complex response of second-order sections at ``freqs_hz``: ``scipy.signal.sosfreqz``'s
    arithmetic (Horner in z^-1 per section, product over sections), without importing scipy.signal."""
    zm1 = np.exp(-1j * (2 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / float(sr)))

    def polyval(c: np.ndarray) -> np.ndarray:
        value = np.full(zm1.shape, c[-1], dtype=np.complex128)
        for coefficient in c[-2::-1]:
            value = coefficient + value * zm1
        return value

    response = 1.0
    for row in np.asarray(sos, dtype=np.float64):
        response *= polyval(row[:3]) / polyval(row[3:])
    return response


def octave_band_rms(x: Any, sr: float, k_weighted: bool = False, gate: float | None = -70.0) -> np.ndarray:
    """RMS level in each octave band of :data:`OCTAVE_CENTRES_HZ`, dB, shape (9,).

    Each band is a 4th-order Butterworth band-pass (analog response, see
    ``_octave_band_response``) between the edges in
    :data:`OCTAVE_BAND_EDGES_HZ`: -3 dB there, about -26 dB one octave from
    the centre.  The 16 kHz band (11.2-22.4 kHz) is cut at Nyquist: at
    44.1 kHz it covers 11.2-22.05 kHz and reads about 0.4 dB low on white
    noise.  Bands whose lower edge is at or above Nyquist (8 and 16 kHz at
    8 kHz sampling) read SILENCE_DB.

    The level is what an RMS meter after that filter would read, in dB re
    full scale (a full-scale sine at a band centre reads about -3 dB in its
    band), averaged in power over channels.  It is computed without running
    nine filters: a short-time power spectrum (sine window, frames of about
    170 ms, 50 % overlap, so each sample's energy counts exactly once) is
    weighted by each filter's squared magnitude response (Parseval).

    ``k_weighted``: apply the BS.1770 K-weighting response first.
    ``gate``: frames (170 ms, every 85 ms) whose channel-mean level over the
    whole spectrum (after K-weighting if requested) is below ``gate`` dBFS
    are ignored, so pauses do not pull the levels down; ``None`` keeps
    every frame.  If no frame
    passes, every band reads SILENCE_DB.
    """
    audio = _as_channels(x, keep_float32=True)  # read into float32 buffers below: no float64 copy
    meter = _OctaveBandMeter(sr, audio.shape[0], audio.shape[1], k_weighted, gate)
    for start in range(0, audio.shape[1], ANALYSIS_BLOCK_SAMPLES):
        meter.add(audio[:, start : start + ANALYSIS_BLOCK_SAMPLES])
    return meter.finish()


class _OctaveBandMeter:
    """:func:`octave_band_rms` of a signal of ``n_samples`` known in advance, fed in blocks ``(channels, m)``.

    The frames are those of the one-pass reading (the signal padded with half a frame of
    silence at each end) and are transformed in the same groups of ``frames_per_chunk``
    (each group's energies are summed together), so the levels equal the one-pass
    reading's; only the samples of the group being transformed are held.
    """

    def __init__(self, sr: float, n_channels: int, n_samples: int, k_weighted: bool, gate: float | None):
        self.sr = sr = _check_rate(sr)
        self.n_channels, self.n_samples = n_channels, n_samples
        self.frame = frame = 1 << int(math.ceil(math.log2(0.15 * sr)))
        self.hop = hop = frame // 2
        # A sine window at 50 % overlap is power-complementary (sin^2 + cos^2 = 1):
        # with half a frame of zeros at each end, every sample's energy is counted
        # exactly once over the frames, as a true RMS needs.
        window = np.sin(np.pi * (np.arange(frame) + 0.5) / frame)
        self.n_frames = n_frames = -(-n_samples // hop) + 1
        self.padded_length = (n_frames + 1) * hop
        # Window energy falling on real samples, per frame (less than frame/2 only
        # at the ends); the mean square of the kept frames is divided by it.
        coverage = np.full(n_frames, frame / 2.0)
        for index in {0, 1, n_frames - 2, n_frames - 1} if n_samples >= 2 else ():
            position = np.arange(index * hop, index * hop + frame)
            inside = ((position >= hop) & (position < hop + n_samples)).astype(np.float64)
            coverage[index] = float(np.dot(window * window, inside))
        self.coverage = coverage
        self.freqs = np.fft.rfftfreq(frame, 1.0 / sr)
        # Parseval for a one-sided spectrum: interior bins stand for two.
        bin_weight = np.full(self.freqs.shape[0], 2.0 / frame)
        bin_weight[0] = bin_weight[-1] = 1.0 / frame
        if k_weighted:
            bin_weight = bin_weight * np.abs(_sos_response(k_weighting_sos(sr), self.freqs, sr)) ** 2
        self.bin_weight = bin_weight
        self.window32 = window.astype(np.float32)
        self.bin_weight32 = bin_weight.astype(np.float32)
        self.gate_power = None if gate is None else 10.0 ** (float(gate) / 10.0)
        self.kept_spectrum = np.zeros(self.freqs.shape[0])  # channel-summed energy per bin over kept frames
        self.kept_coverage = 0.0
        self.frames_per_chunk = max(1, (1 << 21) // (frame * n_channels))
        self.any_signal = False
        self._fed = 0
        self._frames_done = 0
        # The padded signal from the first frame not yet transformed: half a frame of silence first.
        self._pending = np.zeros((n_channels, hop), dtype=np.float32)
        self._scratch = np.empty((self.frames_per_chunk, self.freqs.shape[0]), dtype=np.float32)

    def add(self, block: np.ndarray) -> None:
        if block.shape[1] == 0:
            return
        self._fed += block.shape[1]
        if self._fed > self.n_samples:
            raise ValueError(f"more than the {self.n_samples} samples announced")
        self.any_signal = self.any_signal or bool(np.any(block))
        self._pending = np.concatenate([self._pending, block.astype(np.float32, copy=False)], axis=1)
        self._chunks()

    def _chunks(self) -> None:
        hop, frame = self.hop, self.frame
        taken = 0
        while self._frames_done < self.n_frames:
            count = min(self.frames_per_chunk, self.n_frames - self._frames_done)
            needed = (count - 1) * hop + frame
            if self._pending.shape[1] - taken * hop < needed:
                break
            piece = self._pending[:, taken * hop : taken * hop + needed]
            self._chunk(piece, self._frames_done, count)
            self._frames_done += count
            taken += count
        self._pending = self._pending[:, taken * hop :].copy()

    def _chunk(self, piece: np.ndarray, first: int, count: int) -> None:
        import scipy.fft

        block = np.lib.stride_tricks.sliding_window_view(piece, self.frame, axis=-1)[:, :: self.hop] * self.window32
        spectrum = scipy.fft.rfft(block, axis=-1, workers=2)
        # |X|^2 summed over channels, accumulated in place to spare temporaries.
        # Plain numpy reductions rather than BLAS products: threaded BLAS gains
        # nothing at these sizes and stalls badly when other processes hold the cores.
        scratch = self._scratch
        power = np.square(spectrum.real[0])
        power += np.square(spectrum.imag[0], out=scratch[: power.shape[0]])
        for channel in range(1, self.n_channels):
            power += np.square(spectrum.real[channel], out=scratch[: power.shape[0]])
            power += np.square(spectrum.imag[channel], out=scratch[: power.shape[0]])
        chunk_coverage = self.coverage[first : first + count]
        if self.gate_power is not None:
            frame_energy = np.einsum("fk,k->f", power, self.bin_weight32)
            keep = frame_energy >= chunk_coverage * (self.gate_power * self.n_channels)
            power = power[keep]
            chunk_coverage = chunk_coverage[keep]
        self.kept_spectrum += power.sum(axis=0, dtype=np.float64)
        self.kept_coverage += float(chunk_coverage.sum())

    def finish(self) -> np.ndarray:
        silent = np.full(len(OCTAVE_CENTRES_HZ), SILENCE_DB)
        if self._fed != self.n_samples:
            raise ValueError(f"{self._fed} samples fed, {self.n_samples} announced")
        if self.n_samples < 2 or not self.any_signal:
            return silent
        # The padded signal ends with silence up to whole frames.
        tail = self.padded_length - (self.hop + self.n_samples)
        self._pending = np.pad(self._pending, ((0, 0), (0, tail)))
        self._chunks()
        if self.kept_coverage == 0.0:
            return silent
        band_powers = (self.kept_spectrum * self.bin_weight) @ _octave_band_response(self.freqs)
        band_powers /= self.kept_coverage * self.n_channels
        # A band whose lower edge is past Nyquist only catches its filter's skirt.
        band_powers[OCTAVE_BAND_EDGES_HZ[:, 0] >= self.sr / 2.0] = 0.0
        return _powers_to_db(band_powers)


# --------------------------------------------------------------------------
# Tempo
# --------------------------------------------------------------------------

#: Range that :func:`estimate_tempo` folds its answer into, BPM (inclusive).
TEMPO_RANGE_BPM = (60.0, 180.0)

_TEMPO_SEARCH_BPM = (30.0, 320.0)  # candidates; wider than the output so x2 / x0.5 relatives compete
_TEMPO_PRIOR_CENTRE_BPM = 120.0
_TEMPO_PRIOR_OCTAVES = 1.0  # std dev of the log2-Gaussian preference
_TEMPO_COMB_TEETH = 4
_TEMPO_SUBDIVISION_PENALTY = 0.7
_TEMPO_MAX_SUBDIVISION = 8
_FASTEST_PULSE_BPM = 600.0  # shortest lag read from the autocorrelation: 0.1 s
_TEMPO_MIN_STRENGTH = 0.1  # weakest periodicity (autocorrelation, 0..1) still reported
_TEMPO_MIN_SECONDS = 3.0
_TEMPO_FOLD_SLACK = 0.02
# Onset envelopes whose standard deviation is below this (log-energy units per
# frame) contain no onsets: a steady tone's envelope is ~1e-5, music's ~1.
_MIN_ONSET_ACTIVITY = 0.01
_ONSET_FRAME_RATE_HZ = 100.0
_ONSET_BANDS = 12


class _OnsetMeter:
    """Spectral-flux onset envelope of (channels, samples) audio fed in blocks, and its frame rate (Hz).

    The channels are summed and the rate halved while at or above 32 kHz
    (pairwise averaging is enough: the aliased treble still marks onsets);
    then a Hann STFT of 23-46 ms is taken every 10 ms, the power grouped
    into 12 log-spaced bands from 30 Hz to 12 kHz and log-compressed, and
    the positive frame-to-frame increases summed over bands.

    Blocks are decimated as they come (a sample short of a whole decimation step waits
    for the next block), the frames of the mono signal transformed a few thousand at a time
    and only their 12 band powers kept (the log compression is relative to the
    loudest band of the whole signal, so it waits for :meth:`finish`): the envelope
    equals the one-pass reading's, a frame's spectrum not depending on its neighbours.
    """

    FRAMES_PER_STEP = 4096

    def __init__(self, sr: float):
        factor = 1
        while sr / factor >= 32000.0:
            factor *= 2
        self.factor = factor
        self.sr = sr / factor
        self.hop = max(1, int(round(self.sr / _ONSET_FRAME_RATE_HZ)))
        self.n_fft = 1 << int(math.ceil(math.log2(0.023 * self.sr)))
        self.window = np.hanning(self.n_fft).astype(np.float32)
        freqs = np.fft.rfftfreq(self.n_fft, 1.0 / self.sr)
        edges_hz = np.geomspace(30.0, min(12000.0, 0.95 * self.sr / 2.0), _ONSET_BANDS + 1)
        self.first_bins = np.unique(np.searchsorted(freqs, edges_hz[:-1]))
        self._mono = np.zeros(0, dtype=np.float32)  # mono samples from the first frame not yet taken
        self._pending = np.zeros((0, 0), dtype=np.float32)
        self._bands: list[np.ndarray] = []
        self.samples = 0
        self.any_signal = False

    def add(self, block: np.ndarray) -> None:
        self.samples += block.shape[1]
        self.any_signal = self.any_signal or bool(np.any(block))
        if self._pending.shape[1]:  # samples short of a whole decimation step, from the block before
            block = np.concatenate([self._pending, block], axis=1)
        usable = block.shape[1] // self.factor * self.factor
        self._pending = block[:, usable:].copy()
        # Downmix and decimate in one float32 pass per channel and phase; the overall gain
        # does not matter (the envelope is normalised below).
        mono = np.zeros(usable // self.factor, dtype=np.float32)
        for channel in block:
            for phase in range(self.factor):
                mono += channel[phase : usable : self.factor]
        self._mono = np.concatenate([self._mono, mono]) if self._mono.shape[0] else mono
        self._frames(final=False)

    def _frames(self, final: bool) -> None:
        import scipy.fft

        available = (self._mono.shape[0] - self.n_fft) // self.hop + 1 if self._mono.shape[0] >= self.n_fft else 0
        step = self.FRAMES_PER_STEP
        taken = 0
        while available - taken >= step or (final and available > taken):
            count = min(step, available - taken)
            piece = self._mono[taken * self.hop : (taken + count - 1) * self.hop + self.n_fft]
            frames = np.lib.stride_tricks.sliding_window_view(piece, self.n_fft)[:: self.hop]
            spectrum = scipy.fft.rfft(frames * self.window, axis=-1, workers=2)
            power = spectrum.real * spectrum.real + spectrum.imag * spectrum.imag
            self._bands.append(np.add.reduceat(power, self.first_bins, axis=1))
            taken += count
        self._mono = self._mono[taken * self.hop :].copy()

    def finish(self) -> tuple[np.ndarray, float]:
        frame_rate = self.sr / self.hop
        self._frames(final=True)
        if not self._bands:
            return np.zeros(0), frame_rate
        bands = np.concatenate(self._bands)
        reference = float(np.max(bands))
        if not reference > 0.0:
            return np.zeros(bands.shape[0]), frame_rate
        # log1p compression: loud onsets count, near-silent noise flicker does not.
        compressed = np.log1p(bands * (1000.0 / reference))
        flux = np.maximum(np.diff(compressed, axis=0), 0.0).sum(axis=1)
        return flux.astype(np.float64), frame_rate


def _onset_strength(audio: np.ndarray, sr: float) -> tuple[np.ndarray, float]:
    """Spectral-flux onset envelope of (channels, samples) audio and its frame rate (Hz) (:class:`_OnsetMeter`)."""
    meter = _OnsetMeter(sr)
    step = ANALYSIS_BLOCK_SAMPLES
    for start in range(0, audio.shape[1], step):
        meter.add(audio[:, start : start + step])
    return meter.finish()


def _periodicity(envelope: np.ndarray, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Comb score of every candidate tempo on the onset envelope.

    Returns ``(bpm_grid, strength)``, both shape (n_candidates,): for beat
    period T, ``strength`` is the mean normalised autocorrelation at T, 2T,
    3T, 4T minus 0.7 x the largest mean over the subdivisions of the beat
    into d = 2..8 equal parts (lags (k - j/d) T, j = 1..d-1; lags under
    0.1 s are ignored).  A click train of period P therefore scores about 1
    at T = P, much less at 2P, 3P, ... whose subdivisions are full of
    onsets, and about 1/2 or 1/3 at P/2, P/3, whose teeth miss onsets.
    """
    n = envelope.shape[0]
    # Remove the local mean (1 s) so swells and fades do not read as periodicity,
    # then smooth lightly so the autocorrelation can be read at fractional lags.
    trend_length = max(1, int(frame_rate))
    trend = np.convolve(envelope, np.ones(trend_length) / trend_length, mode="same")
    smoothing = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)
    detrended = np.convolve(envelope - trend, smoothing / smoothing.sum(), mode="same")

    import scipy.fft

    size = scipy.fft.next_fast_len(2 * n)
    spectrum = scipy.fft.rfft(detrended, n=size)
    autocorr = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=size)[:n]
    bpm_grid = np.geomspace(_TEMPO_SEARCH_BPM[0], _TEMPO_SEARCH_BPM[1], 2400)
    if not autocorr[0] > 1e-12 * float(np.sum(envelope * envelope)) or n < 4:
        return bpm_grid, np.zeros_like(bpm_grid)
    max_lag = n // 2
    # Unbiased: divide by the number of overlapping frames so long lags are not starved.
    lags = np.arange(max_lag + 1)
    autocorr = autocorr[: max_lag + 1] / (n - lags) * (n / autocorr[0])

    def mean_at(multiples: np.ndarray) -> np.ndarray:
        lag = multiples[:, None] * period[None, :]
        # Lags under the shortest pulse considered are inside the smoothing
        # kernel's own correlation, not evidence of a pulse.
        usable = (lag <= max_lag) & (lag >= min_lag)
        values = np.interp(np.clip(lag, 0, max_lag), lags, autocorr)
        return np.where(usable, values, 0.0).sum(axis=0) / np.maximum(usable.sum(axis=0), 1)

    period = 60.0 * frame_rate / bpm_grid  # frames per beat
    min_lag = 60.0 * frame_rate / _FASTEST_PULSE_BPM
    teeth = np.arange(1, _TEMPO_COMB_TEETH + 1, dtype=np.float64)
    on_beat = mean_at(teeth)
    # The strongest subdivision of the beat into 2..8 equal parts: a full one
    # means a shorter pulse explains the onsets better than T does (this
    # is what stops T from landing on 3, 5 or 7 eighth notes).
    subdivision = np.zeros_like(on_beat)
    for divisor in range(2, _TEMPO_MAX_SUBDIVISION + 1):
        fractions = np.arange(1, divisor) / divisor
        offsets = (teeth[:, None] - fractions[None, :]).reshape(-1)
        subdivision = np.maximum(subdivision, mean_at(offsets))
    strength = on_beat - _TEMPO_SUBDIVISION_PENALTY * subdivision
    # Candidates whose first tooth does not fit in the usable lags are unscored.
    strength[period > max_lag] = 0.0
    return bpm_grid, strength


def estimate_tempo(x: Any, sr: float) -> float:
    """Estimate the tempo of music in beats per minute; NaN if none is found.

    Method: a spectral-flux onset envelope (100 frames/s, see
    ``_onset_strength``) is detrended and autocorrelated; every candidate
    beat period T between 30 and 320 BPM is scored by a comb (mean
    autocorrelation at T..4T, minus 0.7 x the strongest subdivision of
    the beat into 2..8 parts, which are empty when T is the true pulse)
    and weighted by a log-normal prior centred at 120 BPM (1 octave std
    dev).  The best candidate is refined by parabolic interpolation.

    Half/double tempo: the answer is folded into ``TEMPO_RANGE_BPM``
    (60-180 BPM, with 2 % slack at both ends, so results lie in 58.8-183.6)
    by halving or doubling, so a 200 BPM pulse is reported as 100, a 240 BPM
    pulse as 120 and a 50 BPM pulse as 100.  Inside the range a pattern of
    beats without strong off-beat onsets is reported at its own rate (70
    stays 70, not 140; 170 stays 170, not 85).  Strong off-beat
    (eighth-note) onsets make the eighth-note pulse the stronger
    periodicity, and then the doubled tempo may be reported, as a human
    tapper might.

    Returns ``math.nan`` (never raises for these) when the input is silent,
    shorter than 3 s, has no onsets (a steady tone), or shows no
    periodicity with comb strength of at least 0.1 on a 0..1
    autocorrelation scale (e.g. noise).  Callers should fall back to a
    default.
    """
    audio = _as_channels(x, keep_float32=True)  # summed into float32 below: no float64 copy
    sr = _check_rate(sr)
    if audio.shape[1] < _TEMPO_MIN_SECONDS * sr or not np.any(audio):
        return math.nan
    return _tempo_from_envelope(*_onset_strength(audio, sr))


def _tempo_from_blocks(blocks: Iterable[np.ndarray], sr: float) -> float:
    """:func:`estimate_tempo` of the signal made of ``blocks`` ``(channels, m)`` float32 laid end to end."""
    sr = _check_rate(sr)
    meter = _OnsetMeter(sr)
    for block in blocks:
        meter.add(block)
    if meter.samples < _TEMPO_MIN_SECONDS * sr or not meter.any_signal:
        return math.nan
    return _tempo_from_envelope(*meter.finish())


def _tempo_from_envelope(envelope: np.ndarray, frame_rate: float) -> float:
    if envelope.shape[0] < 0.9 * _TEMPO_MIN_SECONDS * frame_rate or np.std(envelope) < _MIN_ONSET_ACTIVITY:
        return math.nan
    bpm_grid, strength = _periodicity(envelope, frame_rate)
    prior = np.exp(-0.5 * (np.log2(bpm_grid / _TEMPO_PRIOR_CENTRE_BPM) / _TEMPO_PRIOR_OCTAVES) ** 2)
    score = np.maximum(strength, 0.0) * prior

    best = int(np.argmax(score))
    if not strength[best] >= _TEMPO_MIN_STRENGTH:
        return math.nan
    log_bpm = math.log(bpm_grid[best])
    if 0 < best < bpm_grid.shape[0] - 1:
        left, middle, right = score[best - 1 : best + 2]
        curvature = left - 2.0 * middle + right
        if curvature < 0.0:
            step = math.log(bpm_grid[1] / bpm_grid[0])
            log_bpm += step * 0.5 * (left - right) / curvature
    bpm = math.exp(log_bpm)

    # The slack keeps a pulse at exactly 60 or 180 BPM from being flipped to
    # 120 or 90 by a hair of estimation error.
    low = TEMPO_RANGE_BPM[0] * (1.0 - _TEMPO_FOLD_SLACK)
    high = TEMPO_RANGE_BPM[1] * (1.0 + _TEMPO_FOLD_SLACK)
    while bpm > high:
        bpm /= 2.0
    while bpm < low:
        bpm *= 2.0
    return float(bpm)


# --------------------------------------------------------------------------
# A song's analysis, made once
# --------------------------------------------------------------------------


class SongAnalysis:
    """A song's vocal and backing measured once, for every rule and for the render.

    ``vocal`` ``(1, samples)`` at ``sr``, as the rules see it. ``backing``: ``(2, samples)``
    at ``sr``, or a callable returning an iterator of ``(2, m)`` float32 blocks at ``sr``
    that laid end to end are that backing (read from its file again at each call, so a
    long backing is never held whole). Each reading is made on first use and kept: the
    loudness of each signal (one K-weighting pass serving its momentary, short-term and
    integrated readings), the vocal's sample peak, the backing's tempo and its octave
    bands where both are active; each backing reading is one pass over its blocks and
    equals the reading of the whole array. :attr:`backing` makes the whole array, for
    the methods that need it whole (the networks, the reverb's return-level mode).
    """

    def __init__(self, vocal: np.ndarray, backing: np.ndarray | Callable[[], Iterator[np.ndarray]], sr: float):
        self.vocal = vocal
        self.sample_rate = sr
        if callable(backing):
            self._backing_blocks = backing
            self._backing_channels = 2
        else:
            whole = backing
            self.__dict__["backing"] = whole  # the cached property, already known
            self._backing_channels = whole.shape[0]
            self._backing_blocks = lambda: (
                whole[:, start : start + ANALYSIS_BLOCK_SAMPLES]
                for start in range(0, whole.shape[1], ANALYSIS_BLOCK_SAMPLES)
            )

    @functools.cached_property
    def backing(self) -> np.ndarray:
        """The whole backing ``(2, samples)`` (read from its blocks on first use)."""
        return np.concatenate(list(self._backing_blocks()), axis=1)

    def backing_blocks(self) -> Iterator[np.ndarray]:
        """The backing as ``(2, m)`` blocks at ``sample_rate``, in order."""
        return iter(self._backing_blocks())

    @functools.cached_property
    def vocal_loudness(self) -> Loudness:
        return Loudness(self.vocal, self.sample_rate)

    @functools.cached_property
    def backing_loudness(self) -> Loudness:
        return Loudness.from_blocks(self.backing_blocks(), self.sample_rate, self._backing_channels)

    @functools.cached_property
    def vocal_lufs(self) -> float:
        return self.vocal_loudness.integrated()

    @functools.cached_property
    def backing_lufs(self) -> float:
        return self.backing_loudness.integrated()

    @functools.cached_property
    def vocal_peak_dbfs(self) -> float:
        return sample_peak(self.vocal)

    @functools.cached_property
    def tempo_bpm(self) -> float:
        """:func:`estimate_tempo` of the backing (NaN when none is found)."""
        return _tempo_from_blocks(self.backing_blocks(), self.sample_rate)

    def masked_band_rms(
        self, mask: np.ndarray, k_weighted: bool = True, gate: float | None = -70.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`octave_band_rms` of the vocal and of the backing over the samples where ``mask`` is True
        (as of ``vocal[:, mask]`` and ``backing[:, mask]``; the backing's read block by block)."""
        vocal_bands = octave_band_rms(self.vocal[:, mask], self.sample_rate, k_weighted=k_weighted, gate=gate)
        meter = _OctaveBandMeter(
            self.sample_rate, self._backing_channels, int(np.count_nonzero(mask)), k_weighted, gate
        )
        offset = 0
        for block in self.backing_blocks():
            meter.add(block[:, mask[offset : offset + block.shape[1]]])
            offset += block.shape[1]
        return vocal_bands, meter.finish()

    def backing_lufs_if_same(self, backing: np.ndarray, sr: float) -> float | None:
        """The backing's integrated loudness if ``backing`` at ``sr`` is the analysed backing sample for
        sample (as when the output rate is the working rate and no tail is added), else None."""
        if sr != self.sample_rate or "backing" not in self.__dict__:
            return None
        if backing.shape != self.backing.shape:
            return None
        if backing is not self.backing and not np.array_equal(backing, self.backing):
            return None
        return self.backing_lufs
