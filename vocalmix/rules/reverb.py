"""Reverb: reverb time from the backing's tempo, or a wet level set against the mix.

Tempo rule (Li & Lerch, after Moffat & Sandler): RT = -T/45 + 40/9 s for a tempo
of T BPM, clamped to the plug-in's range, so slow songs get long tails and fast
songs short ones. The other reverb settings keep the documented defaults of
:class:`~vocalmix.settings.ReverbSettings`.

Return-level rule (De Man et al.): the dry/wet share is chosen so that the
reverb return sits a fixed distance (14 LU) below the loudness of the whole mix.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np

from .. import analysis
from ..settings import ReverbSettings, spec_of

log = logging.getLogger("vocalmix")

FALLBACK_TEMPO_BPM = 120.0
RETURN_BELOW_MIX_LU = 14.0


def reverb_time_for_tempo(tempo_bpm: float) -> float:
    """RT (s) = -T/45 + 40/9, clamped to the plug-in's 0.1-9 s."""
    spec = spec_of(ReverbSettings, "reverb_time_s")
    return float(min(spec.maximum, max(spec.minimum, -tempo_bpm / 45.0 + 40.0 / 9.0)))


def decide_reverb(
    backing: np.ndarray | None,
    sample_rate: int,
    base: ReverbSettings | None = None,
    tempo_bpm: float | None = None,
    song: analysis.SongAnalysis | None = None,
) -> tuple[ReverbSettings, dict]:
    """Reverb settings from the tempo of ``backing`` ``(2, samples)`` (or a given tempo).

    ``song``: the song's analysis, whose backing is ``backing``, if it has been made already.
    """
    base = base or ReverbSettings()
    report: dict = {}
    if tempo_bpm is None:
        tempo_bpm = song.tempo_bpm if song is not None else analysis.estimate_tempo(backing, sample_rate)
        report["tempo_source"] = "estimated from the backing"
        if not math.isfinite(tempo_bpm):
            log.warning("backing: no clear tempo found; using %g BPM for the reverb time", FALLBACK_TEMPO_BPM)
            tempo_bpm = FALLBACK_TEMPO_BPM
            report["tempo_source"] = "fallback (no tempo detected)"
    else:
        report["tempo_source"] = "given"
    rt = reverb_time_for_tempo(tempo_bpm)
    report.update({"tempo_bpm": float(tempo_bpm), "reverb_time_s": rt})
    return replace(base, reverb_time_s=rt), report


def dry_wet_for_return_level(
    dry: np.ndarray,
    wet: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    target_relative_lu: float,
    below_mix_lu: float = RETURN_BELOW_MIX_LU,
    backing_lufs: float | None = None,
) -> tuple[float, dict]:
    """Dry/wet (%) putting the reverb return ``below_mix_lu`` under the mix.

    ``dry`` is the compressed vocal as stereo ``(2, samples)``, ``wet`` the fully wet
    reverb output of it. For a share w the vocal is ``w*wet + (1-w)*dry``, levelled
    to ``target_relative_lu`` against the backing; the return is its ``w*wet`` part.
    The return's distance below the mix grows as w falls, so a bisection finds w.
    ``backing_lufs``: the backing's integrated loudness, if it has been measured already.
    """
    if backing_lufs is None:
        backing_lufs = analysis.integrated_loudness(backing, sample_rate)

    def distance(w: float) -> float:
        vocal = w * wet + (1 - w) * dry
        gain = 10 ** ((target_relative_lu - (analysis.integrated_loudness(vocal, sample_rate) - backing_lufs)) / 20)
        mix = backing + gain * vocal
        reverb_lufs = analysis.integrated_loudness(gain * w * wet, sample_rate)
        return analysis.integrated_loudness(mix, sample_rate) - reverb_lufs

    lo, hi = 0.0, 1.0
    if distance(hi) >= below_mix_lu:
        w = hi
    else:
        for _ in range(14):  # 1/2^14 of the range: far below the plug-in's 1 % step
            mid = 0.5 * (lo + hi)
            if distance(mid) > below_mix_lu:
                lo = mid
            else:
                hi = mid
        w = 0.5 * (lo + hi)
    pct = 100.0 * w
    return pct, {"return_below_mix_lu": below_mix_lu, "dry_wet_pct": pct, "achieved_lu": distance(max(w, 1e-6))}
