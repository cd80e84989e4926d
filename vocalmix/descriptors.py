"""Objective descriptors of a mix, as Koszewski et al. compared mixes.

Everything takes audio ``(channels, samples)`` (numpy, float) and an explicit
sample rate. Level descriptors come from :mod:`vocalmix.analysis` (one
definition of loudness, LRA and true peak in the project); this module adds

* the low-level MPEG-7 / Timbre-Toolbox descriptors the paper used: odd-to-even
  harmonic ratio, RMS-energy envelope, harmonic energy and noisiness, from a
  per-frame fundamental (YIN's cumulative mean normalised difference) and the
  spectral peaks at its first :data:`N_HARMONICS` multiples;
* spectral centroid and tilt (for the processed vocal);
* the multi-resolution STFT distance between two mixes (auraloss);
* the chroma self-similarity matrix (SSM) of a mix and the similarity of two SSMs.

Definitions are written out in each function's docstring and in docs/compare.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.ndimage

from . import analysis

#: Analysis frame and hop for the harmonic descriptors (93 ms / 46 ms at 44.1 kHz).
FRAME_SECONDS = 4096 / 44100
HOP_SECONDS = FRAME_SECONDS / 2
#: Harmonics per frame, as the Timbre Toolbox's default.
N_HARMONICS = 20
#: Fundamental search range (Hz) and YIN threshold: a frame whose normalised
#: difference never drops below the threshold has no fundamental (unvoiced).
F0_RANGE_HZ = (50.0, 1000.0)
YIN_THRESHOLD = 0.3
#: A harmonic may sit this fraction of its frequency away from h * f0 (f0 error, inharmonicity).
HARMONIC_TOLERANCE = 0.03
#: Half-width in bins of the Hann main lobe: a sinusoid's energy lies within +/- 2 bins of its peak.
MAIN_LOBE_BINS = 2
#: Frames more than this far below the loudest frame (dB) are silence and are not summarised.
ACTIVE_RANGE_DB = 50.0
#: Odd or even harmonic energy below this fraction of the frame's energy counts as this floor,
#: so a pure tone reads +60 dB instead of infinity.
ODD_EVEN_FLOOR = 1e-6
#: Bands for the spectral tilt: third octaves from 50 Hz to 16 kHz.
TILT_RANGE_HZ = (50.0, 16000.0)
#: Chroma analysis: FFT size 8192 at 44.1 kHz (5.4 Hz bins), bins from 55 Hz (A1) to 5 kHz.
CHROMA_FRAME_SECONDS = 8192 / 44100
CHROMA_RANGE_HZ = (55.0, 5000.0)
#: Longest SSM side; longer songs have their chroma frames averaged in blocks.
MAX_SSM_FRAMES = 600
#: SSIM window (frames) and constants (Wang et al. 2004) for SSM entries in [-1, 1].
SSIM_WINDOW = 7
SSIM_DATA_RANGE = 2.0
#: Mixes are brought to this loudness before the MR-STFT distance, so it measures balance and
#: timbre, not the overall level (which integrated_lufs reports).
MRSTFT_LOUDNESS_LUFS = -23.0
#: The MR-STFT distance is averaged over segments this long (memory stays bounded for long songs).
MRSTFT_SEGMENT_SECONDS = 30.0


def _mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x if x.ndim == 1 else x.mean(axis=0)


def _frames(signal: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """``(n_frames, frame)`` views, the last frame zero-padded; at least one frame."""
    n = signal.shape[-1]
    n_frames = max(1, 1 + math.ceil(max(0, n - frame) / hop))
    padded = np.pad(signal, (0, (n_frames - 1) * hop + frame - n))
    return np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][:n_frames]


@dataclass
class Spectra:
    """Calibrated one-sided power spectra of Hann-windowed frames.

    ``power[f, k]`` is scaled so that a sinusoid of amplitude A contributes A^2/2 (its mean
    square) summed over its main lobe, and a frame's total is its windowed mean square.
    """

    power: np.ndarray  # (frames, bins)
    freqs: np.ndarray  # (bins,)
    frames: np.ndarray  # (frames, frame) time-domain samples (unwindowed)
    sample_rate: float

    @property
    def frame_power(self) -> np.ndarray:
        return self.power.sum(axis=1)

    def active(self) -> np.ndarray:
        """Frames within ACTIVE_RANGE_DB of the loudest one (and not digital silence)."""
        p = self.frame_power
        if p.size == 0 or p.max() <= 0:
            return np.zeros(p.shape, dtype=bool)
        return p > max(p.max() * 10 ** (-ACTIVE_RANGE_DB / 10), 1e-12)


def spectra(
    x: np.ndarray, sr: float, frame_seconds: float = FRAME_SECONDS, hop_seconds: float = HOP_SECONDS
) -> Spectra:
    mono = _mono(x)
    frame = int(round(frame_seconds * sr))
    hop = int(round(hop_seconds * sr))
    frames = _frames(mono, frame, hop)
    window = np.hanning(frame + 2)[1:-1]  # periodic-free, no zero end points
    spectrum = scipy.fft.rfft(frames * window, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2) / (frame * np.sum(window**2))
    power[:, 1 : (frame + 1) // 2] *= 2.0  # one-sided: fold the negative frequencies in
    return Spectra(power, np.fft.rfftfreq(frame, 1.0 / sr), frames, float(sr))


def yin_f0(
    frames: np.ndarray,
    sr: float,
    f0_range: tuple[float, float] = F0_RANGE_HZ,
    threshold: float = YIN_THRESHOLD,
    unvoiced_as_nan: bool = False,
) -> np.ndarray:
    """Fundamental per frame (Hz) by YIN (de Cheveigne & Kawahara 2002).

    Where the normalised difference never dips below ``threshold`` the global minimum is taken,
    as in YIN (so a polyphonic mix, which rarely dips that low, still gets a fundamental to
    measure harmonics against); with ``unvoiced_as_nan`` such frames are NaN instead.

    The difference function over the first ``frame - max_lag`` samples is computed for all
    lags with one FFT cross-correlation per frame; the first dip of the cumulative mean
    normalised difference below ``threshold`` is refined by parabolic interpolation.
    """
    n_frames, frame = frames.shape
    min_lag = max(2, int(math.floor(sr / f0_range[1])))
    max_lag = int(math.ceil(sr / f0_range[0]))
    width = frame - max_lag - 1  # lags up to max_lag + 1 are read (the dip's right neighbour)
    if width <= max_lag:
        raise ValueError("frame too short for the lowest fundamental")
    head = frames[:, :width]
    size = scipy.fft.next_fast_len(frame + width)
    corr = scipy.fft.irfft(
        scipy.fft.rfft(frames, size, axis=1) * np.conj(scipy.fft.rfft(head, size, axis=1)), size, axis=1
    )[:, : max_lag + 2]
    squares = np.concatenate([np.zeros((n_frames, 1)), np.cumsum(frames**2, axis=1)], axis=1)
    lags = np.arange(max_lag + 2)
    energy_at_lag = squares[:, lags + width] - squares[:, lags]
    diff = squares[:, width][:, None] + energy_at_lag - 2 * corr
    diff[:, 0] = 0.0
    diff = np.maximum(diff, 0.0)
    cumulative = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    with np.errstate(invalid="ignore", divide="ignore"):
        cmnd[:, 1:] = np.where(cumulative > 0, diff[:, 1:] * lags[1:] / cumulative, 1.0)
    f0 = np.full(n_frames, np.nan)
    for i in range(n_frames):
        row = cmnd[i]
        below = np.nonzero(row[min_lag : max_lag + 1] < threshold)[0]
        if below.size:
            tau = min_lag + below[0]
        elif unvoiced_as_nan:
            continue
        else:  # YIN's step 4: no dip below the threshold, take the global minimum
            tau = min_lag + int(np.argmin(row[min_lag : max_lag + 1]))
        while tau + 1 <= max_lag and row[tau + 1] < row[tau]:
            tau += 1
        a, b, c = row[tau - 1], row[tau], row[tau + 1]
        denominator = a - 2 * b + c
        shift = 0.5 * (a - c) / denominator if denominator > 0 else 0.0
        f0[i] = sr / (tau + float(np.clip(shift, -1, 1)))
    return f0


@dataclass
class HarmonicFrames:
    f0: np.ndarray  # (frames,) Hz, NaN unvoiced
    harmonic_power: np.ndarray  # (frames, N_HARMONICS) mean-square power of each harmonic
    total_power: np.ndarray  # (frames,)
    active: np.ndarray  # (frames,) bool


def harmonic_frames(x: np.ndarray, sr: float, n_harmonics: int = N_HARMONICS) -> HarmonicFrames:
    """Per-frame fundamental and the power of each harmonic (its peak's main lobe, bins claimed once)."""
    spec = spectra(x, sr)
    f0 = yin_f0(spec.frames, sr)
    bin_hz = spec.freqs[1]
    n_bins = spec.power.shape[1]
    harmonic_power = np.zeros((len(f0), n_harmonics))
    voiced = np.nonzero(np.isfinite(f0))[0]
    power = spec.power[voiced]
    rows = np.arange(len(voiced))[:, None]
    claimed = np.zeros(power.shape, dtype=bool)
    lobe_offsets = np.arange(-MAIN_LOBE_BINS, MAIN_LOBE_BINS + 1)
    # Harmonic by harmonic, all frames at once; a bin already in a lower harmonic's lobe is not counted again.
    for h in range(1, n_harmonics + 1):
        centre = h * f0[voiced] / bin_hz
        reach = np.maximum(MAIN_LOBE_BINS, HARMONIC_TOLERANCE * centre)
        lo = np.floor(centre - reach).astype(int)
        hi = np.ceil(centre + reach).astype(int) + 1
        below_nyquist = lo < n_bins - 1
        if not below_nyquist.any():
            break
        lo, hi = np.maximum(lo, 1), np.minimum(hi, n_bins)
        search = lo[:, None] + np.arange(max(1, int((hi - lo).max())))
        candidates = np.where(search < hi[:, None], power[rows, np.minimum(search, n_bins - 1)], -np.inf)
        peak = lo + np.argmax(candidates, axis=1)
        lobe = peak[:, None] + lobe_offsets
        lobe_bins = np.clip(lobe, 0, n_bins - 1)
        take = (lobe >= 0) & (lobe < n_bins) & below_nyquist[:, None] & ~claimed[rows, lobe_bins]
        harmonic_power[voiced, h - 1] = np.sum(np.where(take, power[rows, lobe_bins], 0.0), axis=1)
        claimed[np.broadcast_to(rows, take.shape)[take], lobe_bins[take]] = True
    return HarmonicFrames(f0, harmonic_power, spec.frame_power, spec.active())


def _db(power: float) -> float:
    return float(10 * math.log10(power)) if power > 0 else analysis.SILENCE_DB


def harmonic_frame_values(x: np.ndarray, sr: float) -> dict[str, np.ndarray]:
    """Per active frame: ``odd_even_ratio_db``, ``harmonic_power`` (mean square), ``harmonic_energy_db``,
    ``noisiness`` (definitions in :func:`harmonic_descriptors`)."""
    hf = harmonic_frames(x, sr)
    active = hf.active & np.isfinite(hf.f0)
    harmonic_total = hf.harmonic_power[active].sum(axis=1)
    total = hf.total_power[active]
    floor = ODD_EVEN_FLOOR * total
    odd = np.maximum(hf.harmonic_power[active, 0::2].sum(axis=1), floor)
    even = np.maximum(hf.harmonic_power[active, 1::2].sum(axis=1), floor)
    with np.errstate(divide="ignore"):
        energy_db = np.where(harmonic_total > 0, 10 * np.log10(harmonic_total), analysis.SILENCE_DB)
    return {
        "odd_even_ratio_db": 10 * np.log10(odd / even),
        "harmonic_power": harmonic_total,
        "harmonic_energy_db": energy_db,
        "noisiness": 1.0 - np.clip(harmonic_total / total, 0.0, 1.0),
    }


def harmonic_descriptors(x: np.ndarray, sr: float, frames: dict | None = None) -> dict[str, float]:
    """Odd-to-even harmonic ratio, harmonic energy and noisiness, summarised over active frames.

    * ``odd_even_ratio_db``: per active frame, 10 log10 of the energy of the odd harmonics
      (1st, 3rd, ...) over that of the even ones (each floored at ODD_EVEN_FLOOR of the frame's
      energy, so a pure tone reads +60 dB); the median. NaN for silence.
    * ``harmonic_energy_db``: mean over active frames of the summed power of the harmonics
      (mean square, so a sine of amplitude A reads 20 log10(A/sqrt 2)), in dB.
    * ``noisiness``: per active frame, the share of its energy outside the harmonics; the
      median. 0 for a pure tone, about 0.9 for white noise (its harmonic windows still catch
      the largest noise peaks near the multiples of a spurious fundamental).

    Every frame gets a fundamental (YIN's global minimum where nothing is clearly periodic),
    as the Timbre Toolbox measures harmonics of a mix against its estimated f0. ``frames``:
    the result of :func:`harmonic_frame_values`, if already computed.
    """
    values = harmonic_frame_values(x, sr) if frames is None else frames
    if values["noisiness"].size == 0:
        return {"odd_even_ratio_db": float("nan"), "harmonic_energy_db": analysis.SILENCE_DB, "noisiness": float("nan")}
    return {
        "odd_even_ratio_db": float(np.median(values["odd_even_ratio_db"])),
        "harmonic_energy_db": _db(float(np.mean(values["harmonic_power"]))),
        "noisiness": float(np.median(values["noisiness"])),
    }


def rms_envelope_frames(x: np.ndarray, sr: float) -> np.ndarray:
    """Frame RMS (all channels) in dBFS over non-overlapping frames of HOP_SECONDS, active frames only."""
    audio = np.atleast_2d(np.asarray(x, dtype=np.float64))
    hop = int(round(HOP_SECONDS * sr))
    n = audio.shape[-1] // hop
    if n == 0:
        level = analysis.rms(audio)
        return np.array([level]) if level > analysis.SILENCE_DB else np.array([])
    blocks = audio[:, : n * hop].reshape(audio.shape[0], n, hop)
    power = np.mean(blocks**2, axis=(0, 2))
    if power.max() <= 0:
        return np.array([])
    keep = power > max(power.max() * 10 ** (-ACTIVE_RANGE_DB / 10), 1e-12)
    return 10 * np.log10(power[keep])


def rms_envelope(x: np.ndarray, sr: float, levels: np.ndarray | None = None) -> dict[str, float]:
    """RMS-energy envelope (:func:`rms_envelope_frames`): its median and interquartile range
    (a steady sine: IQR 0)."""
    levels = rms_envelope_frames(x, sr) if levels is None else levels
    if levels.size == 0:
        return {"rms_envelope_median_db": analysis.SILENCE_DB, "rms_envelope_iqr_db": 0.0}
    q25, q50, q75 = np.percentile(levels, [25, 50, 75])
    return {"rms_envelope_median_db": float(q50), "rms_envelope_iqr_db": float(q75 - q25)}


def long_term_spectrum(x: np.ndarray, sr: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean calibrated power spectrum over active frames, and its frequencies."""
    spec = spectra(x, sr)
    active = spec.active()
    if not active.any():
        return spec.freqs, np.zeros_like(spec.freqs)
    return spec.freqs, spec.power[active].mean(axis=0)


def spectral_centroid(x: np.ndarray, sr: float) -> float:
    """Power-weighted mean frequency (Hz) of the long-term spectrum above 20 Hz; NaN for silence."""
    freqs, power = long_term_spectrum(x, sr)
    band = freqs >= 20.0
    total = power[band].sum()
    return float(np.sum(freqs[band] * power[band]) / total) if total > 0 else float("nan")


def spectral_tilt(x: np.ndarray, sr: float, band_hz: tuple[float, float] = TILT_RANGE_HZ) -> float:
    """Slope (dB per octave) of the least-squares line through the power density (per Hz) of the
    long-term spectrum in third-octave bands from 50 Hz to 16 kHz: white noise 0, pink noise -3.01."""
    freqs, power = long_term_spectrum(x, sr)
    top = min(band_hz[1], 0.45 * sr)
    centres = band_hz[0] * 2.0 ** (np.arange(0, 3 * math.log2(top / band_hz[0]) + 1e-9) / 3)
    bin_hz = freqs[1]
    xs, ys = [], []
    for fc in centres:
        lo, hi = fc * 2 ** (-1 / 6), fc * 2 ** (1 / 6)
        inside = (freqs >= lo) & (freqs < hi)
        if inside.sum() == 0:
            continue
        density = power[inside].sum() / (inside.sum() * bin_hz)
        if density > 0:
            xs.append(math.log2(fc))
            ys.append(10 * math.log10(density))
    if len(xs) < 3:
        return float("nan")
    return float(np.polyfit(xs, ys, 1)[0])


def level_descriptors(x: np.ndarray, sr: float) -> dict[str, float]:
    """Waveform statistics (paper Figs. 4-7) from the project's BS.1770 / EBU Tech 3342 code."""
    return {
        "rms_dbfs": analysis.rms(x),
        "integrated_lufs": analysis.integrated_loudness(x, sr),
        "lra_lu": analysis.loudness_range(x, sr),
        "true_peak_dbtp": analysis.true_peak(x, sr),
    }


#: The frame-wise descriptors (one value per analysis frame), for the paper's per-song statistics.
FRAME_DESCRIPTORS = ("rms_envelope_db", "odd_even_ratio_db", "harmonic_energy_db", "noisiness")


def mix_descriptors_and_frames(x: np.ndarray, sr: float) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every descriptor of one mix that needs no other signal, and the FRAME_DESCRIPTORS frame by frame."""
    harmonic = harmonic_frame_values(x, sr)
    levels = rms_envelope_frames(x, sr)
    summary = {**level_descriptors(x, sr), **rms_envelope(x, sr, levels), **harmonic_descriptors(x, sr, harmonic)}
    frames = {"rms_envelope_db": levels, **{k: harmonic[k] for k in FRAME_DESCRIPTORS if k in harmonic}}
    return summary, frames


def mix_descriptors(x: np.ndarray, sr: float) -> dict[str, float]:
    """Every descriptor of one mix that needs no other signal."""
    return mix_descriptors_and_frames(x, sr)[0]


def vocal_descriptors(vocal: np.ndarray, backing: np.ndarray, sr: float) -> dict[str, float]:
    """Relative loudness (vocal minus backing, LU) and the processed vocal's centroid and tilt."""
    vocal_lufs = analysis.integrated_loudness(vocal, sr)
    backing_lufs = analysis.integrated_loudness(backing, sr)
    silent = min(vocal_lufs, backing_lufs) <= analysis.SILENCE_LUFS
    return {
        "relative_loudness_lu": float("nan") if silent else vocal_lufs - backing_lufs,
        "vocal_centroid_hz": spectral_centroid(vocal, sr),
        "vocal_tilt_db_per_oct": spectral_tilt(vocal, sr),
    }


def _loudness_matched(x: np.ndarray, sr: float) -> np.ndarray | None:
    loudness = analysis.integrated_loudness(x, sr)
    if loudness <= analysis.SILENCE_LUFS:
        return None
    return np.asarray(x, dtype=np.float64) * 10 ** ((MRSTFT_LOUDNESS_LUFS - loudness) / 20)


def mrstft_distance(x: np.ndarray, reference: np.ndarray, sr: float) -> float:
    """auraloss's MultiResolutionSTFTLoss (defaults: FFT 1024/2048/512, spectral convergence +
    log-magnitude L1) between ``x`` and ``reference``, both loudness-matched to -23 LUFS first.

    Channels are compared pairwise (a mono input is doubled against a stereo one); the signals
    are cut to the shorter length; the loss is averaged over 30 s segments, weighted by length.
    Identical inputs give 0. NaN if either is silent.
    """
    import torch
    from auraloss.freq import MultiResolutionSTFTLoss

    a, b = np.atleast_2d(x), np.atleast_2d(reference)
    channels = max(a.shape[0], b.shape[0])
    a, b = np.broadcast_to(a, (channels, a.shape[-1])), np.broadcast_to(b, (channels, b.shape[-1]))
    n = min(a.shape[-1], b.shape[-1])
    matched_a, matched_b = _loudness_matched(a[:, :n], sr), _loudness_matched(b[:, :n], sr)
    if matched_a is None or matched_b is None:
        return float("nan")
    a, b = matched_a, matched_b
    loss = MultiResolutionSTFTLoss()
    segment = int(MRSTFT_SEGMENT_SECONDS * sr)
    total, weight = 0.0, 0
    with torch.no_grad():
        for start in range(0, n, segment):
            stop = min(n, start + segment)
            if stop - start < 2048 and weight:
                break  # a sliver at the end is shorter than the longest FFT
            pa = torch.from_numpy(np.ascontiguousarray(a[None, :, start:stop], dtype=np.float32))
            pb = torch.from_numpy(np.ascontiguousarray(b[None, :, start:stop], dtype=np.float32))
            total += float(loss(pa, pb)) * (stop - start)
            weight += stop - start
    return total / weight


def chromagram(x: np.ndarray, sr: float, max_frames: int = MAX_SSM_FRAMES) -> np.ndarray:
    """12-bin chromagram ``(12, frames)``, C = row 0: the power of every STFT bin from 55 Hz to
    5 kHz is added to the pitch class nearest its frequency (f = 440 * 2^(m/12)).
    Frames (186 ms, hop 93 ms at 44.1 kHz) are averaged in blocks so there are at most ``max_frames``."""
    spec = spectra(x, sr, CHROMA_FRAME_SECONDS, CHROMA_FRAME_SECONDS / 2)
    band = (spec.freqs >= CHROMA_RANGE_HZ[0]) & (spec.freqs <= CHROMA_RANGE_HZ[1])
    semitone = np.round(12 * np.log2(spec.freqs[band] / 440.0)).astype(int)
    pitch_class = (semitone + 9) % 12  # A is 9 semitones above C
    chroma = np.zeros((12, spec.power.shape[0]))
    for pc in range(12):
        chroma[pc] = spec.power[:, band][:, pitch_class == pc].sum(axis=1)
    block = max(1, math.ceil(chroma.shape[1] / max_frames))
    if block > 1:
        usable = chroma.shape[1] // block * block
        chroma = chroma[:, :usable].reshape(12, -1, block).mean(axis=2)
    return chroma


def self_similarity(chroma: np.ndarray) -> np.ndarray:
    """Paper eqs. (2)-(3): each frame's chroma vector standardised (zero mean, unit SD over the
    12 bins), then S = X^T X / 12, so S[i, j] is the correlation of frames i and j, in [-1, 1].
    Frames with a flat (or silent) chroma are zero vectors."""
    mean = chroma.mean(axis=0, keepdims=True)
    sd = chroma.std(axis=0, keepdims=True)
    flat = sd <= 1e-12 * np.maximum(np.abs(mean), 1e-30)
    normalised = np.where(flat, 0.0, (chroma - mean) / np.where(flat, 1.0, sd))
    return normalised.T @ normalised / chroma.shape[0]


def ssim(a: np.ndarray, b: np.ndarray, window: int = SSIM_WINDOW, data_range: float = SSIM_DATA_RANGE) -> float:
    """Mean structural similarity (Wang et al. 2004) of two equal-shape matrices: local means,
    variances and covariance over ``window`` x ``window`` squares (population statistics),
    C1 = (0.01 L)^2, C2 = (0.03 L)^2, averaged over every position where the window fits.
    Identical matrices give 1; a matrix smaller than the window is taken as one window."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    if min(a.shape) < window:
        mu_a, mu_b = a.mean(), b.mean()
        var_a, var_b, cov = a.var(), b.var(), np.mean((a - mu_a) * (b - mu_b))
    else:

        def local(m):
            return scipy.ndimage.uniform_filter(m, size=window, mode="constant")

        half = window // 2
        inner = (slice(half, a.shape[0] - half), slice(half, a.shape[1] - half))
        mu_a, mu_b = local(a)[inner], local(b)[inner]
        var_a = local(a * a)[inner] - mu_a**2
        var_b = local(b * b)[inner] - mu_b**2
        cov = local(a * b)[inner] - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(np.mean(index))


def ssm_comparison(x: np.ndarray, reference: np.ndarray, sr: float) -> dict:
    """SSIM and RMSE between the chroma SSMs of ``x`` and ``reference`` (cut to the shorter), and the SSMs."""
    n = min(np.shape(x)[-1], np.shape(reference)[-1])
    ssm_x = self_similarity(chromagram(np.atleast_2d(x)[:, :n], sr))
    ssm_ref = self_similarity(chromagram(np.atleast_2d(reference)[:, :n], sr))
    return {
        "ssm_similarity": ssim(ssm_x, ssm_ref),
        "ssm_rmse": float(np.sqrt(np.mean((ssm_x - ssm_ref) ** 2))),
        "ssm": ssm_x,
        "reference_ssm": ssm_ref,
    }
