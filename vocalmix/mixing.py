"""From settings to a mix: the vocal chain, the sum with the backing, the output stage.

The output stage applies one gain curve to the whole mix, so the two stems it
writes (processed vocal and backing) add up to the mix exactly and the balance
the method chose is kept. By default that curve is a static gain that brings
the true peak to the ceiling only if it is above it; with a loudness target it
is the gain to the target followed by a true-peak limiter.

``vocalmix render`` runs the same output stage block by block (:mod:`vocalmix.streaming`,
bounded memory for long songs); :func:`render_mix`, :func:`output_gain` and
:func:`hold_ceiling_as_written` here hold whole songs, serve callers with short clips and
are the reference the block-wise passes are tested against.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field, replace

import numba
import numpy as np
import torch

from . import analysis
from .dsp import reverb as dsp_reverb
from .dsp.chain import vocal_chain
from .dsp.compressor import lookahead_samples
from .dsp.params import ChainParams, CompressorParams, EQParams, LevelParams, ReverbParams
from .settings import FILTER_TYPES, CompressorSettings, EQSettings, MixSettings, ReverbSettings

log = logging.getLogger("vocalmix")

# The chain is rendered in float32 as everything in dsp; these stay fixed so that a
# settings file renders to identical audio on every run.
LIMITER_LOOKAHEAD_S = 0.002
LIMITER_RELEASE_S = 0.08
TRUE_PEAK_OVERSAMPLING = 4
LOUDNESS_PASSES = 4
LOUDNESS_TOLERANCE_LU = 0.1
#: A loudness target missed by more than this, or reached only with more limiting than
#: LIMITING_WARN_DB, is reported: the user asked for something the mix does not do cleanly.
LOUDNESS_MISS_WARN_LU = 0.5
LIMITING_WARN_DB = 12.0


def settings_to_params(settings: list[MixSettings], device: torch.device | str = "cpu") -> ChainParams:
    """The chain's parameters for a batch of settings, one row per item: the one place settings become
    :class:`vocalmix.dsp.params.ChainParams` (units: the reverb's ``dry_wet_pct`` becomes the fraction
    ``dry_wet``, filter types their plug-in numbers; everything else as in the settings)."""
    if not settings:
        raise ValueError("no settings to render")
    return ChainParams(
        eq=eq_params([s.eq for s in settings], device),
        compressor=compressor_params([s.compressor for s in settings], device),
        reverb=reverb_params([s.reverb for s in settings], device),
        level=LevelParams(vocal_gain_db=_column([s.level.vocal_gain_db for s in settings], device)),
    )


def eq_params(eqs: list[EQSettings], device: torch.device | str = "cpu") -> EQParams:
    """MultiEQ's parameters for a batch of EQ settings."""
    bands = [e.bands for e in eqs]
    return EQParams(
        frequency_hz=_column([[b.frequency_hz for b in bs] for bs in bands], device),
        gain_db=_column([[b.gain_db for b in bs] for bs in bands], device),
        q=_column([[b.q for b in bs] for bs in bands], device),
        filter_type=_column([[FILTER_TYPES[b.type] for b in bs] for bs in bands], device, torch.long),
        enabled=_column([[b.enabled for b in bs] for bs in bands], device, torch.bool),
    )


def compressor_params(compressors: list[CompressorSettings], device: torch.device | str = "cpu") -> CompressorParams:
    """OmniCompressor's parameters for a batch of compressor settings."""
    c = compressors
    return CompressorParams(
        threshold_db=_column([s.threshold_db for s in c], device),
        ratio=_column([s.ratio for s in c], device),
        knee_db=_column([s.knee_db for s in c], device),
        attack_ms=_column([s.attack_ms for s in c], device),
        release_ms=_column([s.release_ms for s in c], device),
        makeup_db=_column([s.makeup_db for s in c], device),
        lookahead=_column([s.lookahead for s in c], device, torch.bool),
    )


def reverb_params(reverbs: list[ReverbSettings], device: torch.device | str = "cpu") -> ReverbParams:
    """FdnReverb's parameters for a batch of reverb settings (one network size for the batch)."""
    r = reverbs
    fdn_lines = {s.fdn_lines for s in r}
    if len(fdn_lines) != 1:
        raise ValueError("one batch must share reverb.fdn_lines")
    return ReverbParams(
        room_size=_column([s.room_size for s in r], device),
        reverb_time_s=_column([s.reverb_time_s for s in r], device),
        low_cutoff_hz=_column([s.low_cutoff_hz for s in r], device),
        low_q=_column([s.low_q for s in r], device),
        low_gain_db_per_s=_column([s.low_gain_db_per_s for s in r], device),
        high_cutoff_hz=_column([s.high_cutoff_hz for s in r], device),
        high_q=_column([s.high_q for s in r], device),
        high_gain_db_per_s=_column([s.high_gain_db_per_s for s in r], device),
        dry_wet=_column([s.dry_wet_pct / 100.0 for s in r], device),
        fade_in_s=_column([s.fade_in_s for s in r], device),
        fdn_lines=fdn_lines.pop(),
    )


def _column(values: list, device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device)


def process_vocal(
    vocal: np.ndarray, sample_rate: int, settings: MixSettings, upto: str = "level", start: str = "eq"
) -> np.ndarray:
    """Run ``vocal`` (``(1, samples)``, or the output of the stage before ``start``) through
    the chain's stages ``start`` to ``upto``; numpy in, numpy out."""
    x = torch.from_numpy(np.ascontiguousarray(vocal, dtype=np.float32)).unsqueeze(0)
    with torch.no_grad():
        y = vocal_chain(x, sample_rate, settings_to_params([settings]), upto=upto, start=start)
    return y[0].numpy()


@dataclass
class Mix:
    """The rendered mix and the two parts it is the exact sum of, all ``(2, samples)`` at ``sample_rate``.

    ``settings`` are the settings as rendered: with ``relevel_to`` the vocal level is the one
    decided last, on the rendered chain at the output rate.
    """

    mix: np.ndarray
    vocal: np.ndarray
    backing: np.ndarray
    report: dict = field(default_factory=dict)
    settings: MixSettings | None = None
    sample_rate: int = 0


def vocal_before_level(vocal: np.ndarray, sample_rate: int, settings: MixSettings) -> np.ndarray:
    """The vocal through EQ, compressor and reverb, ``(2, samples)``, aligned with the input.

    With lookahead the compressor delays its output by D samples; a DAW compensates
    the latency the plug-in reports, so the vocal is rendered with D extra samples
    and moved back by D, as it would sit against the backing in a session.
    """
    delay = lookahead_samples(sample_rate) if settings.compressor.lookahead else 0
    if delay:
        vocal = np.pad(vocal, ((0, 0), (0, delay)))
    wet = process_vocal(vocal, sample_rate, settings, upto="reverb")
    return wet[:, delay:] if delay else wet


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Cut or pad with silence to ``length`` samples (no message: the caller said why)."""
    n = x.shape[-1]
    if n >= length:
        return x[..., :length]
    return np.pad(x, ((0, 0), (0, length - n)))


@contextlib.contextmanager
def reverb_ir_limit(seconds: float | None):
    """Within the block FdnReverb's impulse responses are cut at ``seconds`` (None: the dsp default, 20 s)."""
    if seconds is None:
        yield
        return
    previous = dsp_reverb.IR_MAX_SECONDS
    dsp_reverb.IR_MAX_SECONDS = float(seconds)
    try:
        yield
    finally:
        dsp_reverb.IR_MAX_SECONDS = previous


def reverb_decay_left_db(settings: MixSettings, ir_seconds: float | None = None) -> float:
    """How far (dB) the slowest band of the reverb has decayed when its impulse response is cut.

    FdnReverb's shelves add their gain in dB per second to the decay of 60/T60 dB/s in
    their bands, so the slowest band decays at 60/T60 - max(0, low, high gain) dB/s
    (never slower than the stability guard's minimum rate).
    """
    r = settings.reverb
    seconds = dsp_reverb.IR_MAX_SECONDS if ir_seconds is None else ir_seconds
    rate = 60.0 / r.reverb_time_s - max(0.0, r.low_gain_db_per_s, r.high_gain_db_per_s)
    return max(rate, dsp_reverb.MIN_DECAY_DB_PER_S) * seconds


def render_mix(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    settings: MixSettings,
    backing_rate: int | None = None,
    relevel_to: float | None = None,
    chain=None,
    reverb_ir_max_s: float | None = None,
    measure: bool = True,
    backing_lufs: float | None = None,
) -> Mix:
    """Process ``vocal`` ``(1, samples)`` at ``sample_rate``, add ``backing`` ``(2, samples)``, apply the output stage.

    The chain runs at ``sample_rate``; the processed vocal is then brought to
    ``backing_rate`` (default: the same) and the backing is used as it is, so it
    reaches the mix changed in gain only. The mix is as long as ``backing``.
    ``relevel_to`` (LU) decides the vocal level last, on the rendered vocal at the
    backing's rate, so vocal minus backing loudness is that target in the output.
    ``chain`` renders EQ, compressor and reverb, like (and by default)
    :func:`vocal_before_level`; ``render --engine iem`` passes the real plug-ins'.
    ``reverb_ir_max_s`` cuts the reverb's impulse response there (default 20 s).
    ``measure=False`` leaves the mix's true peak and loudness out of the report, for a
    caller that measures the file as written (:func:`hold_ceiling_as_written`).
    ``backing_lufs``: the integrated loudness of ``backing`` if the caller has measured it already.
    """
    from .audio import resample  # audio I/O is only needed here, not by the batch renderers

    backing_rate = backing_rate or sample_rate
    with reverb_ir_limit(reverb_ir_max_s):
        wet = (chain or vocal_before_level)(vocal, sample_rate, settings)
    wet = fit_length(resample(wet, sample_rate, backing_rate), backing.shape[-1]).astype(np.float64)
    backing = backing.astype(np.float64)
    report: dict = {}
    if relevel_to is not None:
        from .rules.level import decide_level

        level, report["level"] = decide_level(wet, backing, backing_rate, relevel_to, backing_lufs=backing_lufs)
        settings = replace(settings, level=level)
    vocal_out = wet * 10 ** (settings.level.vocal_gain_db / 20)
    gain_curve, stage = output_gain(
        vocal_out + backing, backing_rate, settings.output.ceiling_dbtp, settings.output.target_loudness_lufs
    )
    report.update(stage)
    vocal_out = (vocal_out * gain_curve).astype(np.float32)
    backing_out = (backing * gain_curve).astype(np.float32)
    mix = vocal_out + backing_out
    if measure:
        report["true_peak_dbtp"] = analysis.true_peak(mix, backing_rate)
        report["integrated_loudness_lufs"] = analysis.integrated_loudness(mix, backing_rate)
    return Mix(mix, vocal_out, backing_out, report, settings, backing_rate)


def as_written(samples: np.ndarray, sample_rate: int, subtype: str) -> np.ndarray:
    """``samples`` ``(channels, samples)`` as they read back from a WAV file of ``subtype``
    (a soundfile subtype such as ``"PCM_16"``): libsndfile's own rounding and clipping."""
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(samples, dtype=np.float32).T, sample_rate, subtype=subtype, format="WAV")
    buffer.seek(0)
    data, _ = sf.read(buffer, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def hold_ceiling_as_written(mix: Mix, subtype: str) -> Mix:
    """Trim ``mix`` until the true peak of its samples as written in ``subtype`` is at or below the ceiling.

    Rounding to whole PCM steps (and clipping at full scale) can lift a peak that
    sat just under the ceiling; the measure is the file's own samples.
    """
    ceiling = mix.settings.output.ceiling_dbtp if mix.settings is not None else mix.report.get("ceiling_dbtp", -1.0)
    trim_db = 0.0
    for attempt in range(5):
        written = as_written(mix.mix, mix.sample_rate, subtype)
        peak = analysis.true_peak(written, mix.sample_rate)
        if peak <= ceiling or attempt == 4:  # the report always describes the samples returned
            break
        step_db = ceiling - peak - 0.005
        trim_db += step_db
        scale = np.float32(10 ** (step_db / 20))
        mix = replace(mix, mix=mix.mix * scale, vocal=mix.vocal * scale, backing=mix.backing * scale)
    report = dict(mix.report, true_peak_dbtp=peak, written_trim_db=trim_db)
    report["integrated_loudness_lufs"] = analysis.integrated_loudness(written, mix.sample_rate)
    return replace(mix, report=report)


def report_limiting(
    report: dict, pre_gain: float, reduction_db: float, achieved: float, target_lufs: float, ceiling_dbtp: float
) -> None:
    """Record a limited output stage in ``report`` and warn when the target is missed or reached only by heavy
    limiting (the whole-song and the block-wise output stage share this)."""
    report["gain_db"] = 20 * math.log10(pre_gain)
    report["limiter"] = "on"
    report["max_gain_reduction_db"] = reduction_db
    report["achieved_loudness_lufs"] = achieved
    if abs(target_lufs - achieved) > LOUDNESS_MISS_WARN_LU or reduction_db > LIMITING_WARN_DB:
        log.warning(
            "loudness target %g LUFS: the mix reaches %.1f LUFS with up to %.1f dB of limiting under the "
            "%g dBTP ceiling; a lower target or a higher ceiling distorts less",
            target_lufs,
            achieved,
            reduction_db,
            ceiling_dbtp,
        )


def output_gain(
    mix: np.ndarray, sample_rate: int, ceiling_dbtp: float, target_lufs: float | None
) -> tuple[np.ndarray, dict]:
    """Gain to apply to ``mix`` ``(channels, samples)``: a scalar, or a per-sample curve when limiting."""
    report: dict = {"ceiling_dbtp": ceiling_dbtp}
    pre_gain_db = 0.0
    if target_lufs is not None:
        loudness = analysis.integrated_loudness(mix, sample_rate)
        if loudness > analysis.SILENCE_LUFS:
            pre_gain_db = target_lufs - loudness
        report["target_loudness_lufs"] = target_lufs
    report["gain_db"] = pre_gain_db
    pre_gain = 10 ** (pre_gain_db / 20)
    peak_db = analysis.true_peak(mix, sample_rate) + pre_gain_db
    if peak_db <= ceiling_dbtp:
        report["limiter"] = "off"
        return np.full((1, mix.shape[-1]), pre_gain), report
    if target_lufs is None:
        # No loudness target: one static gain keeps the mix as it is, only quieter.
        trim_db = ceiling_dbtp - peak_db - 0.01
        report["gain_db"] = trim_db
        report["limiter"] = "off"
        return np.full((1, mix.shape[-1]), 10 ** (trim_db / 20)), report
    # Limiting takes loudness away; raise the drive by what is missing and limit again.
    for _ in range(LOUDNESS_PASSES):
        curve = pre_gain * true_peak_limiter_gain(mix * pre_gain, sample_rate, ceiling_dbtp)
        achieved = analysis.integrated_loudness(mix * curve, sample_rate)
        shortfall = target_lufs - achieved
        if abs(shortfall) < LOUDNESS_TOLERANCE_LU:
            break
        pre_gain *= 10 ** (shortfall / 20)
    reduction_db = float(-20 * np.log10(np.min(curve) / pre_gain))
    report_limiting(report, pre_gain, reduction_db, achieved, target_lufs, ceiling_dbtp)
    return curve[None, :], report


def true_peak_limiter_gain(mix: np.ndarray, sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """Per-sample gain ``(samples,)`` that keeps the true peak of ``mix`` at or below the ceiling.

    The gain needed at each sample comes from the 4x-oversampled peak; a sliding
    minimum over twice the look-ahead followed by a moving average over the
    look-ahead ramps the gain down before each peak and never rises above what a
    peak needs, then a one-pole release lets it recover smoothly.
    """
    ceiling = 10 ** (ceiling_dbtp / 20)
    envelope = _true_peak_envelope(mix)
    needed = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-12))
    lookahead = max(1, int(round(LIMITER_LOOKAHEAD_S * sample_rate)))
    from scipy import ndimage  # imported when a limiter runs: scipy's imports cost seconds at start-up

    held = ndimage.minimum_filter1d(needed, size=2 * lookahead + 1, mode="nearest")
    smoothed = ndimage.uniform_filter1d(held, size=lookahead, mode="nearest")
    smoothed = np.minimum(smoothed, needed)
    release = 1 - math.exp(-1 / (LIMITER_RELEASE_S * sample_rate))
    curve = _release(smoothed, release)
    # Interpolation between samples can still graze the ceiling; a final trim makes it a guarantee.
    overshoot = analysis.true_peak(mix * curve, sample_rate) - ceiling_dbtp
    if overshoot > -0.005:
        curve *= 10 ** (-(overshoot + 0.01) / 20)
    return curve


def _true_peak_envelope(mix: np.ndarray) -> np.ndarray:
    from scipy import signal

    up = signal.resample_poly(mix, TRUE_PEAK_OVERSAMPLING, 1, axis=-1)
    n = mix.shape[-1]
    per_sample = np.abs(up[..., : n * TRUE_PEAK_OVERSAMPLING]).reshape(mix.shape[0], n, TRUE_PEAK_OVERSAMPLING)
    # Each output sample is also responsible for the inter-sample peaks just before it.
    env = per_sample.max(axis=(0, 2))
    return np.maximum(env, np.abs(mix).max(axis=0))


@numba.njit(cache=True)
def _release(target, coeff):
    out = np.empty_like(target)
    g = 1.0
    for n in range(target.shape[0]):
        g = g + coeff * (1.0 - g)
        if target[n] < g:
            g = target[n]
        out[n] = g
    return out
