"""Synthetic material and the batch renderer.

Two things live here:

- **Synthetic songs** (NumPy, deterministic from a seed): a harmonic "vocal" with
  vibrato, formants and syllable envelopes, and a backing of drums, bass and chords.
  Tests and :func:`vocalmix.training.build.build_synthetic` use them where real
  stems are not at hand, and the reverb estimator trains on them.
- **:class:`BatchRenderer`**: renders whole batches of clips with per-item random
  settings through ``vocalmix.dsp`` (MultiEQ degradations, FdnReverb renders, full
  vocal-chain renders). All settings of a batch are drawn at once from a seeded CPU
  generator (so CPU and CUDA runs get identical settings) and the audio goes through
  the batched effects in one call. On the CPU the EQ stages run the plug-in's recursion
  (:func:`vocalmix.dsp.sosfilt.sosfilt_rows`, the clips side by side); on CUDA, or when gradients are wanted,
  they use frequency sampling (see :meth:`BatchRenderer.apply_octave_gains`).
  :func:`render_shards` streams clip shards from disk through it and back, with
  loading and saving overlapped with rendering by a background thread.

The renderer uses ``cuda`` when available unless told otherwise; apart from that choice,
the only device-dependent branch is the EQ path above.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vocalmix.dsp import biquads
from vocalmix.dsp import reverb as dsp_reverb
from vocalmix.dsp.chain import apply_reverb, vocal_chain
from vocalmix.dsp.constants import FilterType
from vocalmix.dsp.convolution import overlap_save
from vocalmix.dsp.eq import band_coefficients, fft_length, multi_eq
from vocalmix.dsp.params import ChainParams, CompressorParams, EQParams, LevelParams, ReverbParams
from vocalmix.files import write_atomic
from vocalmix.nets.cnn_targets import OCTAVE_CENTRES_HZ, REVERB_TARGETS
from vocalmix.settings import CompressorSettings, spec_of

from .targets import relative_loudness_lu

__all__ = [
    "synthetic_vocal",
    "synthetic_backing",
    "default_device",
    "EQ_BANDS_CHANGED",
    "EQ_GAIN_RANGE_DB",
    "EQ_Q",
    "VOCAL_REVERB_PRIOR",
    "RECORDING_VARIATION",
    "recording_variation",
    "BatchRenderer",
    "reverb_params_from_settings",
    "render_shards",
]

EQ_BANDS_CHANGED = 4  # bands degraded per synthetic raw vocal, as in the research
EQ_GAIN_RANGE_DB = 15.0  # degradation gains are uniform in [-15, 15] dB
EQ_Q = 1.0


#: Share of synthetic reverbs with no fade-in (see :data:`VOCAL_REVERB_PRIOR`).
FADE_IN_ZERO_SHARE = 0.8

#: Offset of the reverb bank's seed from the renderer's (``BatchRenderer(reverb_bank=...)``).
REVERB_BANK_SEED_OFFSET = 7919

#: The prior of the synthetic reverb settings: ``name -> (kind, low, high)`` in the units
#: of ``ReverbSettings``. ``kind`` is "uniform", "log" (log-uniform), "int" (uniform whole
#: numbers) or "zero_or_uniform" (0 with probability :data:`FADE_IN_ZERO_SHARE`, else
#: uniform). It describes reverbs put on a lead vocal in a pop/rock mix, not the plug-in's
#: whole ranges: drawing uniformly over those (as this function did before) trains on
#: settings like 90 % wet, 10 kHz low-shelf corners or 8-s fade-ins, and the reverb model,
#: which starts at the training mean and moves little from it, proposed about 53 % wet,
#: 0.8 s and a 380 Hz high-shelf corner for real songs.
#: Choices:
#:
#: - ``dry_wet_pct`` 5-35 %: a lead vocal sits on top of the mix and its reverb supports it
#:   from behind; more than about a third wet pushes the voice back into the room. (In
#:   FdnReverb the wet path also carries the shelved input at delay 0, so 35 % wet is still
#:   mostly direct sound.) Uniform: no level inside the range is favoured.
#: - ``reverb_time_s`` 0.4-3.5 s, log-uniform: from a small room or a short ambience
#:   (0.4-1 s) through plates (1-2.5 s) to halls (2-3.5 s); log-uniform because the
#:   audible difference is about ratios (0.5 vs 1 s matters as much as 2 vs 4 s). Longer
#:   tails smear the words; shorter ones are hardly a reverb at this network's densities.
#: - ``room_size`` 8-30 (whole numbers): below 8 the network's delay lines are all shorter
#:   than 0.17 s (mean under 50 ms at 64 lines), a small box whose closely spaced echoes
#:   tend to sound metallic; 20 is the plug-in's default, 30 its maximum (lines up to
#:   0.83 s, a big space).
#: - ``low_cutoff_hz`` 50-300 Hz and ``high_cutoff_hz`` 2-10 kHz, log-uniform: the shelves
#:   shape the decay of the lows (around the voice's fundamental and below) and of the
#:   highs (presence and air); the plug-in's defaults, 100 Hz and 2 kHz, are inside.
#:   Corners outside these bands turn a "shelf" into a tilt of the whole tail.
#: - ``low_gain_db_per_s`` -10..+3 dB/s and ``high_gain_db_per_s`` -25..0 dB/s (defaults +1
#:   and -10): vocal reverbs are usually kept lean in the lows and darker than the dry
#:   voice in the highs (air absorption, a damped plate), so mostly extra decay; only a
#:   little low boost, which with 3.5-s tails (17 dB/s base decay) stays stable.
#: - ``low_q`` and ``high_q`` 0.3-0.7 (default 0.5): the shelves' transition width; below
#:   0.707 so they do not overshoot.
#: - ``fade_in_s``: 0 in 80 % of the draws (no build-up, the usual vocal reverb), else
#:   uniform up to 0.5 s (a softened onset that keeps the words clear, shorter than the
#:   tails above).
VOCAL_REVERB_PRIOR: dict[str, tuple[str, float, float]] = {
    "room_size": ("int", 8, 30),
    "reverb_time_s": ("log", 0.4, 3.5),
    "low_cutoff_hz": ("log", 50.0, 300.0),
    "low_q": ("uniform", 0.3, 0.7),
    "low_gain_db_per_s": ("uniform", -10.0, 3.0),
    "high_cutoff_hz": ("log", 2000.0, 10000.0),
    "high_q": ("uniform", 0.3, 0.7),
    "high_gain_db_per_s": ("uniform", -25.0, 0.0),
    "dry_wet_pct": ("uniform", 5.0, 35.0),
    "fade_in_s": ("zero_or_uniform", 0.0, 0.5),
}


def default_device() -> torch.device:
    """CUDA when there is one, else CPU (the one place a device is chosen)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------
# Synthetic songs
# ---------------------------------------------------------------------------------------


def _envelope(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    t = np.arange(n) / sr
    rise = np.clip(t / max(attack_s, 1e-3), 0, 1)
    fall = np.clip((n / sr - t) / max(release_s, 1e-3), 0, 1)
    return (rise * fall).astype(np.float32)


def synthetic_vocal(seconds: float, sr: int, rng: np.random.Generator, phrase_spread_db: float = 6.0) -> np.ndarray:
    """A sung-like mono line ``(1, T)`` float32 peaking near -6 dBFS.

    Notes of 0.15-0.6 s with short gaps and occasional rests; each note is a harmonic
    tone (fundamental 110-440 Hz, 5-6 Hz vibrato) shaped by two formant resonances, plus
    a little breath noise. The line is cut into sections of 2.5-3.5 s that alternate between
    full level and ``phrase_spread_db`` dB lower (±1.5 dB), so the spread controls the
    loudness range (a loud/quiet alternation is what EBU LRA's 3-s windows can see).
    """
    n = int(round(seconds * sr))
    out = np.zeros(n, dtype=np.float64)
    base_midi = rng.uniform(48, 64)
    formants = rng.uniform([500, 1400], [900, 2600])
    # Section levels: loud, quiet, loud, ... (or the reverse), with a little jitter.
    bounds, levels, t, loud = [], [], 0.0, bool(rng.random() < 0.5)
    while t < seconds:
        t += rng.uniform(2.5, 3.5)
        bounds.append(t)
        levels.append((0.0 if loud else -phrase_spread_db) + rng.uniform(-1.5, 1.5))
        loud = not loud
    t = 0.05
    while t < seconds - 0.2:
        if rng.random() < 0.12:  # a short rest
            t += rng.uniform(0.2, 0.5)
            continue
        dur = rng.uniform(0.15, 0.6)
        start, stop = int(t * sr), min(n, int((t + dur) * sr))
        m = stop - start
        if m <= 16:
            break
        tt = np.arange(m) / sr
        f0 = 440.0 * 2 ** ((base_midi + rng.integers(-5, 8) - 69) / 12)
        vibrato = 1 + 0.015 * np.sin(2 * np.pi * rng.uniform(5, 6) * tt) * np.clip(tt / 0.2, 0, 1)
        phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sr
        tone = np.zeros(m)
        for h in range(1, int(min(30, 8000 / f0)) + 1):
            fh = f0 * h
            # Two formant bumps over a -9 dB/octave slope.
            amp = h**-1.5 * (
                1 + 4 * np.exp(-(((fh - formants[0]) / 200) ** 2)) + 3 * np.exp(-(((fh - formants[1]) / 300) ** 2))
            )
            tone += amp * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
        breath = rng.standard_normal(m) * 0.02
        level_db = levels[int(np.searchsorted(bounds, t))]
        env = _envelope(m, sr, 0.03, 0.06) * rng.uniform(0.8, 1.0) * 10 ** (level_db / 20)
        out[start:stop] += (tone / 3 + breath) * env
        t += dur + rng.uniform(0.02, 0.15)
    peak = np.max(np.abs(out)) or 1.0
    return (out / peak * 0.5)[None].astype(np.float32)


#: Ranges of :func:`recording_variation` (name -> value): probabilities, corner
#: frequencies (Hz, drawn log-uniform) and gains (dB, drawn uniform).
RECORDING_VARIATION = {
    "highpass_probability": 0.7,
    "highpass_hz": (40.0, 250.0),
    "lowpass_probability": 0.5,
    "lowpass_hz": (6000.0, 19000.0),
    "low_shelf_hz": (100.0, 400.0),
    "high_shelf_hz": (2000.0, 8000.0),
    "shelf_gain_db": (-6.0, 6.0),
    "noise_below_rms_db": (45.0, 80.0),
}


def recording_variation(vocal: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``vocal`` ``(T,)`` as another microphone, room, singer and recording chain might give it.

    The EQ task's label is the undo of a degradation *we* apply, but a model can only
    see the degraded vocal, so it must judge "degraded" against what vocals usually look
    like. Trained on a handful of vocals, it takes their exact spectra as the reference
    and reads every real difference as a degradation (the model shipped before this
    proposed -8 dB at 4 kHz on average for real songs). This draws, per call and not
    part of any label (ranges in :data:`RECORDING_VARIATION`): a 2nd-order high-pass
    (rumble filter, 70 % of calls) at 40-250 Hz; an 8th-order low-pass (band-limited
    recordings: 16 kHz sampling as in karaoke apps and phones, MP3 encoders' 16 kHz
    low-pass; 50 % of calls) at 6-19 kHz; a low shelf (100-400 Hz) and a high shelf
    (2-8 kHz) of ±6 dB each (singer, microphone and distance); white noise 45-80 dB
    below the vocal's RMS (the recording's noise floor). Returns float32 ``(T,)``.
    """
    from scipy import signal

    r = RECORDING_VARIATION
    x = np.asarray(vocal, dtype=np.float64)

    def log_uniform(lo_hi):
        return float(np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]))))

    if rng.random() < r["highpass_probability"]:
        x = signal.sosfilt(signal.butter(2, log_uniform(r["highpass_hz"]), "highpass", fs=sr, output="sos"), x)
    if rng.random() < r["lowpass_probability"]:
        cutoff = min(log_uniform(r["lowpass_hz"]), 0.45 * sr)
        x = signal.sosfilt(signal.butter(8, cutoff, "lowpass", fs=sr, output="sos"), x)
    for design, band in ((biquads.low_shelf, "low_shelf_hz"), (biquads.high_shelf, "high_shelf_hz")):
        one = torch.ones(1, dtype=torch.float64)
        b, a = design(one * log_uniform(r[band]), one * rng.uniform(*r["shelf_gain_db"]), one / math.sqrt(2), sr)
        x = signal.lfilter(b[0].numpy(), a[0].numpy(), x)
    rms = math.sqrt(float(np.mean(x**2))) or 1.0
    x = x + rng.standard_normal(x.shape) * rms * 10 ** (-rng.uniform(*r["noise_below_rms_db"]) / 20)
    return x.astype(np.float32)


def synthetic_backing(seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Drums, bass and chords ``(2, T)`` float32 peaking near -6 dBFS, at 90-140 BPM."""
    n = int(round(seconds * sr))
    left = np.zeros(n)
    right = np.zeros(n)
    beat = 60.0 / rng.uniform(90, 140)
    n_beats = int(seconds / beat) + 1
    kick_len, snare_len, hat_len = int(0.25 * sr), int(0.18 * sr), int(0.05 * sr)
    tk = np.arange(kick_len) / sr
    kick = np.sin(2 * np.pi * (50 * tk + 60 * (1 - np.exp(-tk * 30)) / 30)) * np.exp(-tk * 14)
    snare = rng.standard_normal(snare_len) * np.exp(-np.arange(snare_len) / sr * 25)
    hat = np.diff(rng.standard_normal(hat_len + 1)) * np.exp(-np.arange(hat_len) / sr * 80)
    root = 440.0 * 2 ** ((rng.uniform(33, 45) - 69) / 12)
    progression = rng.choice([0, 3, 5, 7, 8, 10], size=4)
    for i in range(n_beats):
        s = int(i * beat * sr)
        if s >= n:
            break

        def put(sig, gain_l, gain_r, start=s):
            m = min(len(sig), n - start)
            left[start : start + m] += sig[:m] * gain_l
            right[start : start + m] += sig[:m] * gain_r

        put(kick if i % 2 == 0 else snare * 0.5, 0.8, 0.8)
        put(hat * 0.3, 0.5, 0.3)
        put(hat * 0.2, 0.3, 0.5, start=min(n - 1, s + int(beat * sr / 2)))
        # Bass and a triad follow the chord of the bar (4 beats).
        chord = root * 2 ** (progression[(i // 4) % 4] / 12)
        m = min(int(beat * sr), n - s)
        tb = np.arange(m) / sr
        env = _envelope(m, sr, 0.01, 0.05)
        bass = sum(np.sin(2 * np.pi * chord * k * tb) / k for k in range(1, 6)) * env * 0.35
        pad = sum(np.sin(2 * np.pi * chord * 2 * 2 ** (iv / 12) * tb) for iv in (0, 4, 7)) * env * 0.08
        left[s : s + m] += bass + pad * 1.2
        right[s : s + m] += bass + pad * 0.8
    stereo = np.stack([left, right])
    peak = np.max(np.abs(stereo)) or 1.0
    return (stereo / peak * 0.5).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Batch renderer
# ---------------------------------------------------------------------------------------


@dataclass
class EqDegradation:
    """Random MultiEQ degradations of a batch.

    ``applied_db`` ``(B, 9)``: the peak gains applied at the octave centres (0 where the band
    is untouched); ``target_db = -applied_db`` undoes them exactly (a peak filter with the
    opposite gain at the same frequency and Q is the exact inverse); ``changed`` ``(B, 9)``
    bool; ``bands`` ``(B, 4)`` the indices of the changed centres, ascending.
    """

    applied_db: torch.Tensor
    changed: torch.Tensor
    bands: torch.Tensor

    @property
    def target_db(self) -> torch.Tensor:
        return -self.applied_db


def _sample_normalised(spec, u: torch.Tensor) -> torch.Tensor:
    """Map uniform ``u`` in [0, 1] onto a ParamSpec's range (log-uniform for "log" specs)."""
    if spec.scale == "log":
        lo, hi = math.log(spec.minimum), math.log(spec.maximum)
        return torch.exp(lo + u * (hi - lo))
    return spec.minimum + u * (spec.maximum - spec.minimum)


def reverb_params_from_settings(settings: Mapping[str, torch.Tensor], fdn_lines: int = 64) -> ReverbParams:
    """Reverb settings as the renderer draws them (``{name: (n,)}`` with ``ReverbSettings``' names
    and units, :meth:`BatchRenderer.sample_reverb_settings`) as FdnReverb's :class:`ReverbParams`:
    the one conversion of such draws (``dry_wet_pct`` in % becomes the fraction ``dry_wet``;
    every other name and unit is the same). Any other key is refused by name."""
    names = {f.name for f in dataclasses.fields(ReverbParams)} - {"dry_wet", "fdn_lines"}
    unknown = set(settings) - names - {"dry_wet_pct"}
    if unknown:
        raise KeyError(f"unknown reverb settings: {sorted(unknown)}")
    return ReverbParams(
        **{name: settings[name] for name in names},
        dry_wet=settings["dry_wet_pct"] / 100.0,
        fdn_lines=fdn_lines,
    )


class BatchRenderer:
    """Per-item random settings, rendered a batch at a time through ``vocalmix.dsp``.

    ``seed`` fixes every random draw: the same seed and the same sequence of calls give the
    same settings and therefore the same audio (up to floating-point differences between
    devices). Settings are drawn on the CPU and then moved to ``device``.
    """

    def __init__(
        self,
        sample_rate: int = 44100,
        device: str | torch.device | None = None,
        seed: int = 0,
        fdn_lines: int = 64,
        reverb_bank: int | None = None,
    ):
        self.sample_rate = sample_rate
        self.device = torch.device(device) if device is not None else default_device()
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.fdn_lines = fdn_lines
        self.centres = torch.tensor(OCTAVE_CENTRES_HZ, dtype=torch.float32)
        if reverb_bank is not None and reverb_bank < 1:
            raise ValueError(f"reverb_bank must be at least 1, got {reverb_bank}")
        # With a bank, reverb settings are drawn from ``reverb_bank`` settings fixed by the
        # seed (their own generator, so the bank does not depend on the calls made before)
        # and each distinct setting's impulse responses are computed once per renderer:
        # the FDN recursion, most of a chain render's cost, is then paid per bank entry
        # instead of per clip. The cache holds at most one IR per bank entry and clip length.
        self.reverb_bank = reverb_bank
        self._bank = None
        self._bank_seed = seed + REVERB_BANK_SEED_OFFSET
        self._irs: dict[tuple, torch.Tensor] = {}

    def _rand(self, *shape) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator)

    # -- EQ degradations -----------------------------------------------------------------
    def sample_eq_degradation(self, n: int) -> EqDegradation:
        """4 of the 9 octave centres per item, gains ``U[-15, 15]`` dB."""
        order = torch.argsort(self._rand(n, len(OCTAVE_CENTRES_HZ)), dim=1)
        bands = torch.sort(order[:, :EQ_BANDS_CHANGED], dim=1).values
        gains = (self._rand(n, EQ_BANDS_CHANGED) * 2 - 1) * EQ_GAIN_RANGE_DB
        applied = torch.zeros(n, len(OCTAVE_CENTRES_HZ))
        applied.scatter_(1, bands, gains)
        changed = torch.zeros(n, len(OCTAVE_CENTRES_HZ), dtype=torch.bool)
        changed.scatter_(1, bands, True)
        return EqDegradation(applied, changed, bands)

    def apply_octave_gains(self, clips: torch.Tensor, gains_db: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
        """Peak filters (Q 1) at the octave centres ``bands`` ``(B, n)`` with the gains of
        ``gains_db`` ``(B, 9)`` at those centres, on ``clips`` ``(B, C, T)``.

        Same filters as MultiEQ's peak bands (JUCE/RBJ design of :mod:`vocalmix.dsp.biquads`),
        by one of two paths, chosen as ``multi_eq(method="auto")`` chooses:

        - **CPU and no gradient wanted** (every data-set render on a CPU): the plug-in's
          recursion, :func:`vocalmix.dsp.eq.multi_eq` with ``method="iir"``
          (``scipy.signal.sosfilt`` in float64), a few multiply-adds per sample and band,
          cheaper than any FFT of the clip.
        - **CUDA (any non-CPU device), or** ``clips``/``gains_db`` **requiring grad**: the
          frequency-sampled response with MultiEQ's -80 dB tail criterion (see
          :mod:`vocalmix.dsp.eq`), which a GPU runs well and autograd differentiates, made
          fast for this fixed-centre case:

          * a peak's numerator and denominator are ``P(z) ± αA·Q(z)`` and ``P(z) + (α/A)·Q(z)``
            with ``P = 1 - 2cos(ω0) z⁻¹ + z⁻²`` and ``Q = 1 - z⁻²`` depending only on the
            centre, so ``P`` and ``Q`` are evaluated once per centre (in float64, then
            rounded) and each item costs two complex multiply-adds and a division per band
            and bin;
          * the clip is filtered by overlap-save in blocks of a few times the filters'
            ringing length, so the response is needed on a block's bins, not on a whole
            clip's.

        The two differ by -70 to -105 dB (relative energy, 16 random degradations of 3-s
        clips), the effect of the FFT path's -80 dB tail criterion.
        """
        clips = clips.to(self.device)
        freq = self.centres[bands].to(self.device)
        gain = torch.gather(gains_db, 1, bands).to(self.device)
        q = torch.full_like(freq, EQ_Q)
        kind = torch.full(freq.shape, int(FilterType.PEAK), dtype=torch.long, device=self.device)
        wants_grad = torch.is_grad_enabled() and (clips.requires_grad or gains_db.requires_grad)
        if self.device.type == "cpu" and not wants_grad:
            return multi_eq(clips, float(self.sample_rate), freq, gain, q, kind, method="iir")
        all_on = torch.ones_like(kind, dtype=torch.bool)
        _, a, _ = band_coefficients(float(self.sample_rate), freq, gain, q, kind, all_on)
        tail = fft_length(1, a)  # samples until the slowest ringing is 80 dB down
        block = 1 << max(13, math.ceil(math.log2(2.5 * tail)))
        p_grid, q_grid = self._peak_grids(block)  # (9, bins) complex64 each
        w0 = 2 * math.pi * self.centres.to(torch.float64) / self.sample_rate
        alpha = (torch.sin(w0) / (2 * EQ_Q)).to(self.device)[bands]  # (B, n)
        amp = torch.pow(10.0, gain.to(torch.float64) / 40.0)
        num_c = (alpha * amp).to(torch.float32)[..., None]
        den_c = (alpha / amp).to(torch.float32)[..., None]
        pb, qb = p_grid[bands], q_grid[bands]  # (B, n, bins)
        response = ((pb + num_c * qb) / (pb + den_c * qb)).prod(dim=1)  # (B, bins)
        spectra = response[:, None, None, :].to(torch.complex64)
        return overlap_save(clips, block, tail, lambda frames: frames * spectra).contiguous()

    def _peak_grids(self, block: int):
        key = (block, str(self.device))
        cache = self.__dict__.setdefault("_grids", {})
        if key not in cache:
            k = torch.arange(block // 2 + 1, dtype=torch.float64)
            z1 = torch.exp(-2j * math.pi * k / block)  # z^-1 on the rfft grid
            w0 = 2 * math.pi * self.centres.to(torch.float64) / self.sample_rate
            # P = (1 - e^{jω0} z⁻¹)(1 - e^{-jω0} z⁻¹), written as a product so that the small
            # values next to ω0 keep their relative precision when rounded to complex64.
            e = torch.exp(1j * w0)[:, None]
            p = (1 - e * z1) * (1 - e.conj() * z1)
            qq = (1 - z1 * z1).expand_as(p)
            cache[key] = (p.to(torch.complex64).to(self.device), qq.to(torch.complex64).to(self.device))
        return cache[key]

    def eq_degrade(self, clips: torch.Tensor, degradation: EqDegradation | None = None):
        """Degrade ``clips`` ``(B, C, T)``; returns ``(degraded (B, C, T), EqDegradation)``."""
        degradation = degradation or self.sample_eq_degradation(clips.shape[0])
        return self.apply_octave_gains(clips, degradation.applied_db, degradation.bands), degradation

    # -- reverb ----------------------------------------------------------------------------
    def sample_reverb_settings(self, n: int) -> dict[str, torch.Tensor]:
        """Random FdnReverb settings ``{name: (n,)}`` in physical units (names as ``ReverbSettings``),
        drawn from :data:`VOCAL_REVERB_PRIOR`, a prior typical of lead-vocal reverbs.

        One uniform number per setting and item, drawn in the order of ``REVERB_TARGETS``, so
        a seed fixes every value. The prior only narrows what is *drawn*: the targets'
        normalisation (``TARGET_RANGES``, the plug-in's whole ranges) is unchanged, so a
        model trained on these settings still denormalises (and clips) over the full ranges.
        With ``reverb_bank`` set, each item is one of the bank's settings, chosen uniformly
        (one integer per item from the renderer's generator).
        """
        if self.reverb_bank is not None:
            if self._bank is None:
                bank_generator = torch.Generator(device="cpu").manual_seed(self._bank_seed)
                self._bank = self._draw_reverb_settings(
                    self.reverb_bank, lambda k: torch.rand(k, generator=bank_generator)
                )
            pick = torch.randint(self.reverb_bank, (n,), generator=self.generator)
            return {name: value[pick] for name, value in self._bank.items()}
        return self._draw_reverb_settings(n, self._rand)

    @staticmethod
    def _draw_reverb_settings(n: int, rand) -> dict[str, torch.Tensor]:
        out = {}
        for name in REVERB_TARGETS:
            kind, lo, hi = VOCAL_REVERB_PRIOR[name]
            u = rand(n)
            if kind == "int":
                value = torch.floor(lo + u * (hi - lo + 1)).clamp(max=hi)
            elif kind == "log":
                value = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
            elif kind == "zero_or_uniform":
                # Exactly 0 for u < FADE_IN_ZERO_SHARE, else uniform over (lo, hi] (u rescaled).
                rest = (u - FADE_IN_ZERO_SHARE) / (1 - FADE_IN_ZERO_SHARE)
                value = torch.where(u < FADE_IN_ZERO_SHARE, torch.zeros_like(u), lo + rest * (hi - lo))
            else:
                value = lo + u * (hi - lo)
            out[name] = value
        return out

    def reverberate(self, clips: torch.Tensor, settings: dict[str, torch.Tensor]) -> torch.Tensor:
        """FdnReverb on ``clips`` ``(B, 1|2, T)`` with per-item ``settings`` (as drawn by
        :meth:`sample_reverb_settings`); returns ``(B, 2, T)``."""
        params = reverb_params_from_settings(settings, self.fdn_lines).to(self.device)
        return apply_reverb(clips.to(self.device), self.sample_rate, params)

    def reverb_examples(self, clips: torch.Tensor, settings: dict[str, torch.Tensor] | None = None):
        """Training data for the reverb estimator: ``(wet (B, 2, T), settings)``."""
        settings = settings or self.sample_reverb_settings(clips.shape[0])
        return self.reverberate(clips, settings), settings

    # -- full chain ------------------------------------------------------------------------
    def sample_chain_params(self, n: int) -> ChainParams:
        """Random settings for :func:`vocalmix.dsp.chain.vocal_chain` (one row per item).

        EQ: a 2nd-order high-pass at 20-200 Hz, four peaks (log-uniform 80 Hz-12 kHz,
        ±9 dB, Q 0.5-4) and a high shelf at 6-16 kHz (±6 dB); compressor: threshold -40..-5
        dB, ratio 1-8, the rest uniform over their ranges; reverb from the lead-vocal prior of
        :meth:`sample_reverb_settings`; vocal gain ±6 dB.
        """
        r = self._rand
        bands = 6
        freq = torch.empty(n, bands)
        freq[:, 0] = 20 * 10 ** r(n)
        freq[:, 1:5] = torch.exp(math.log(80) + r(n, 4) * math.log(12000 / 80))
        freq[:, 5] = 6000 + 10000 * r(n)
        gain = torch.zeros(n, bands)
        gain[:, 1:5] = (r(n, 4) * 2 - 1) * 9
        gain[:, 5] = (r(n) * 2 - 1) * 6
        q = torch.full((n, bands), 0.7)
        q[:, 1:5] = torch.exp(math.log(0.5) + r(n, 4) * math.log(8))
        kind = torch.tensor([int(FilterType.HIGHPASS_2)] + [int(FilterType.PEAK)] * 4 + [int(FilterType.HIGH_SHELF)])
        eq = EQParams(
            frequency_hz=freq,
            gain_db=gain,
            q=q,
            filter_type=kind.expand(n, bands).clone(),
            enabled=torch.ones(n, bands, dtype=torch.bool),
        )
        # Drawn in this order (threshold, ratio, knee, attack, release, makeup): the seed fixes every draw.
        threshold_db, ratio = -40 + 35 * r(n), 1 + 7 * r(n)
        knee_db, attack_ms, release_ms = (
            _sample_normalised(spec_of(CompressorSettings, name), r(n))
            for name in ("knee_db", "attack_ms", "release_ms")
        )
        compressor = CompressorParams(
            threshold_db=threshold_db,
            ratio=ratio,
            knee_db=knee_db,
            attack_ms=attack_ms,
            release_ms=release_ms,
            makeup_db=6 * r(n),
            lookahead=torch.zeros(n, dtype=torch.bool),
        )
        reverb = reverb_params_from_settings(self.sample_reverb_settings(n), self.fdn_lines)
        return ChainParams(eq, compressor, reverb, LevelParams(vocal_gain_db=(r(n) * 2 - 1) * 6))

    def render_chain(self, clips: torch.Tensor, params: ChainParams | None = None):
        """Mono ``clips`` ``(B, 1, T)`` through the whole vocal chain; returns ``((B, 2, T), params)``."""
        params = params or self.sample_chain_params(clips.shape[0])
        on_device = params.to(self.device)
        clips = clips.to(self.device)
        if self.reverb_bank is None:
            return vocal_chain(clips, self.sample_rate, on_device), params
        # The same stages as vocal_chain, with the reverb's IRs taken from the cache: the
        # output is vocal_chain's bit for bit (tests/test_training_data.py).
        y = vocal_chain(clips, self.sample_rate, on_device, upto="compressor")
        keys = self._fill_ir_cache(on_device.reverb, y.shape[-1])
        n_in, k = y.shape[-1], max(self._irs[key].shape[-1] for key in keys)
        # fdn_reverb's rule for one FFT of the whole clip (reverb._fft_convolve); longer
        # clips take its overlap-save path with the cached IRs.
        block = 1 << max(15, math.ceil(math.log2(4 * k)))
        if n_in + k > 2 * block or torch.is_grad_enabled():
            y = dsp_reverb.reverb_with_ir(y, self._padded_irs(keys), on_device.reverb.dry_wet)
        else:
            # The same arithmetic as reverb_with_ir's one-FFT convolution, with each
            # setting's wet/dry-folded IR spectrum kept: per clip one forward and two
            # inverse FFTs instead of three and two, and each clip's product written
            # straight into the inverse FFT's input (no stacked copy of the spectra).
            n_fft = 1 << math.ceil(math.log2(n_in + k - 1))
            dry_wet = on_device.reverb.dry_wet.to(y.dtype).clamp(0.0, 1.0)
            spectrum = torch.fft.rfft(y, n=n_fft)  # (B, 1, bins)
            product = spectrum.new_empty(y.shape[0], 2, spectrum.shape[-1])
            for i, key in enumerate(keys):
                torch.mul(spectrum[i], self._cached_spectrum(key, dry_wet[i], n_fft), out=product[i])
            y = torch.fft.irfft(product, n=n_fft)[..., :n_in]
        return vocal_chain(y, self.sample_rate, on_device, start="level"), params

    def _cached_spectrum(self, key: tuple, dry_wet: torch.Tensor, n_fft: int) -> torch.Tensor:
        """rfft ``(2, n_fft // 2 + 1)`` of a setting's IR with the dry path folded in as
        reverb_with_ir folds it (``dry_wet`` a 0-d tensor already clamped to 0..1); one
        per (setting, dry/wet, FFT length) per renderer. The IR's zero padding to a batch's
        longest would not change it: rfft pads to ``n_fft`` anyway."""
        cache = self.__dict__.setdefault("_spectra", {})
        skey = (key, float(dry_wet), n_fft)
        if skey not in cache:
            w = dry_wet.view(1, 1, 1, 1)
            wet = w * self._irs[key][None, None].to(dry_wet.dtype)  # (1, 1, 2, n)
            dry = torch.zeros_like(wet[..., :1])
            dry[:, 0, :, 0] = 1.0
            folded = torch.cat([wet[..., :1] + (1.0 - w) * dry, wet[..., 1:]], dim=-1)
            cache[skey] = torch.fft.rfft(folded, n=n_fft)[0, 0]
        return cache[skey]

    def _fill_ir_cache(self, params: ReverbParams, n_samples: int) -> list[tuple]:
        """The cache keys of the items' reverb settings, each distinct setting's mono-feed
        wet IR ``(2, n)`` computed once per renderer, as :func:`fdn_reverb` computes it for
        ``n_samples``-long input (one setting per call, so the IR has exactly its own length:
        its decay floor or the clip length)."""
        # Every reverb parameter but the mix, which is applied to the IR's output, keys an IR.
        ir_params = {name: t for name, t in params.named_tensors() if name != "dry_wet"}
        fdn_lines = params.fdn_lines
        rows = torch.stack([t.detach().to(torch.float64).cpu() for t in ir_params.values()], dim=1).tolist()
        keys = [(fdn_lines, n_samples, *row) for row in rows]
        for i, key in enumerate(keys):
            if key not in self._irs:
                self._irs[key] = dsp_reverb.fdn_impulse_response(
                    self.sample_rate,
                    **{name: t[i : i + 1] for name, t in ir_params.items()},
                    fdn_lines=fdn_lines,
                    mono_input=True,
                    max_samples=n_samples,
                )[0]
        return keys

    def _padded_irs(self, keys: list[tuple]) -> torch.Tensor:
        """The items' cached IRs ``(B, 1, 2, n)``, zero-padded to the batch's longest as fdn_reverb pads."""
        irs = [self._irs[key] for key in keys]
        longest = max(ir.shape[-1] for ir in irs)
        return torch.stack([torch.nn.functional.pad(ir, (0, longest - ir.shape[-1])) for ir in irs])[:, None]


# ---------------------------------------------------------------------------------------
# Streaming shards through the renderer
# ---------------------------------------------------------------------------------------

RENDER_KINDS = ("eq", "reverb", "chain")


def _save_atomic(obj, path: Path) -> None:
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def render_shards(
    in_paths: list[str | Path],
    out_dir: str | Path,
    kind: str,
    renderer: BatchRenderer,
    batch_size: int = 64,
    progress=None,
) -> list[Path]:
    """Render every clip of ``in_paths`` (``torch.save`` dicts with ``clips`` ``(N, C, T)``)
    with random ``kind`` settings ("eq", "reverb" or "chain"), one output shard per input.

    Output shards hold ``audio`` ``(N, C', T)`` float32 (CPU) and the settings used
    (``applied_db``/``target_db``/``changed`` for "eq", the settings dict for the others).
    Reading the next shard and writing the last one run in a background thread while the
    device renders; an output already present is skipped, so an interrupted run resumes.
    """
    if kind not in RENDER_KINDS:
        raise ValueError(f"unknown render kind {kind!r}; one of {RENDER_KINDS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = []
    with ThreadPoolExecutor(max_workers=2) as io:

        def load(p):
            return torch.load(p, map_location="cpu", weights_only=True)

        pending_load = io.submit(load, in_paths[0]) if in_paths else None
        pending_save = None
        for i, path in enumerate(in_paths):
            shard = pending_load.result()
            pending_load = io.submit(load, in_paths[i + 1]) if i + 1 < len(in_paths) else None
            out_path = out_dir / f"{kind}-{Path(path).stem}.pt"
            outputs.append(out_path)
            if out_path.exists():
                continue
            clips = shard["clips"].to(torch.float32)
            audio, meta = [], []
            for start in range(0, clips.shape[0], batch_size):
                batch = clips[start : start + batch_size]
                if kind == "eq":
                    y, d = renderer.eq_degrade(batch)
                    meta.append({"applied_db": d.applied_db, "target_db": d.target_db, "changed": d.changed})
                elif kind == "reverb":
                    y, s = renderer.reverb_examples(batch[:, :1])
                    meta.append(s)
                else:
                    y, s = renderer.render_chain(batch[:, :1])
                    meta.append(dict(s.named_tensors()))
                audio.append(y.detach().to("cpu"))
            merged = {k: torch.cat([m[k] for m in meta]) for k in meta[0]} if meta else {}
            if pending_save is not None:
                pending_save.result()
            pending_save = io.submit(
                _save_atomic, {"audio": torch.cat(audio) if audio else clips[:0], "settings": merged}, out_path
            )
            if progress is not None:
                progress(i + 1, len(in_paths))
        if pending_save is not None:
            pending_save.result()
    return outputs


# ---------------------------------------------------------------------------------------
# Whole synthetic songs with known targets
# ---------------------------------------------------------------------------------------


def synthetic_song(seed: int, seconds: float, sample_rate: int = 44100) -> dict:
    """A synthetic song with known settings, deterministic from ``seed``.

    Returns ``{"vocal": (2, T), "backing": (2, T), "dry_vocal": (1, T), "reverb": {name: value},
    "relative_loudness_lu": float}``: the dry vocal is reverberated by FdnReverb with random
    settings (:meth:`BatchRenderer.sample_reverb_settings`), then scaled so that its
    integrated loudness is ``relative_loudness_lu`` (drawn from U[-8, 4] LU) against the
    backing. The section-level spread (12-20 dB) varies the vocal's loudness range.
    """
    rng = np.random.default_rng(seed)
    dry = synthetic_vocal(seconds, sample_rate, rng, phrase_spread_db=float(rng.uniform(12, 20)))
    backing = synthetic_backing(seconds, sample_rate, rng)
    renderer = BatchRenderer(sample_rate, device="cpu", seed=seed)
    settings = renderer.sample_reverb_settings(1)
    with torch.no_grad():
        wet = renderer.reverberate(torch.from_numpy(dry)[None], settings)[0].numpy()
    target = float(rng.uniform(-8, 4))
    vocal = wet.astype(np.float32)
    # Gating makes loudness not exactly proportional to gain (blocks cross the -70 LUFS
    # gate), so the correction is repeated until it sticks.
    for _ in range(4):
        measured = relative_loudness_lu(vocal, backing, sample_rate)
        if not math.isfinite(measured) or abs(measured - target) < 0.005:
            break
        vocal = (vocal * 10 ** ((target - measured) / 20)).astype(np.float32)
    return {
        "vocal": vocal,
        "backing": backing,
        "dry_vocal": dry,
        "reverb": {k: float(v[0]) for k, v in settings.items()},
        "relative_loudness_lu": target,
    }
