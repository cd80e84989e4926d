"""Training targets as the research defined them, measured on finished stems.

- Level: relative integrated loudness, vocal minus backing (LU), per song. Songs outside
  [-10, 6] LU are outliers and dropped.
- Compression: the vocal's loudness range (EBU Tech 3342, LU). Songs outside [5, 30] LU
  are dropped.
- EQ: the gains that undo a random 4-band degradation (see
  :meth:`vocalmix.training.synthesis.BatchRenderer.sample_eq_degradation`).
- Reverb: settings from the reverb estimator (:mod:`vocalmix.training.reverb_estimation`),
  or the known settings of synthetic songs.

Loudness comes from :mod:`vocalmix.analysis` (BS.1770 / EBU R 128), the same code the
mixing rules use, so a target and the rule that acts on it agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vocalmix import analysis
from vocalmix.rules.compression import vocal_loudness_range

__all__ = [
    "LEVEL_RANGE_LU",
    "LRA_RANGE_LU",
    "integrated_loudness",
    "loudness_range",
    "relative_loudness_lu",
    "vocal_loudness_range_lu",
    "outlier_reason",
]

LEVEL_RANGE_LU = (-10.0, 6.0)
LRA_RANGE_LU = (5.0, 30.0)


def _as_channels_first(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x[None] if x.ndim == 1 else x


def integrated_loudness(x, sr: int) -> float:
    """Integrated loudness (LUFS) of ``x`` ``(channels, samples)``; ``-inf`` for silence."""
    value = float(analysis.integrated_loudness(_as_channels_first(x), sr))
    return value if math.isfinite(value) and value > _silence_floor() else -math.inf


def loudness_range(x, sr: int) -> float:
    """EBU loudness range (LU) of ``x`` ``(channels, samples)`` (0 for silence or 3 s or less)."""
    value = float(analysis.loudness_range(_as_channels_first(x), sr))
    return value if math.isfinite(value) else math.nan


def _silence_floor() -> float:
    return float(analysis.SILENCE_LUFS)


def relative_loudness_lu(vocal, backing, sr: int) -> float:
    """Vocal minus backing integrated loudness (LU); NaN if either is silent."""
    lv = integrated_loudness(vocal, sr)
    lb = integrated_loudness(backing, sr)
    if not (math.isfinite(lv) and math.isfinite(lb)):
        return math.nan
    return lv - lb


def vocal_loudness_range_lu(vocal, sr: int) -> float:
    """The vocal's loudness range (LU), measured as the compression rule measures it
    (on the loudness-normalised vocal), so a predicted LRA means the same to the rule."""
    return vocal_loudness_range(_as_channels_first(vocal), sr)


def outlier_reason(name: str, value: float) -> str | None:
    """Why a song's ``value`` of target ``name`` excludes it, or ``None`` if it is kept."""
    lo, hi = {"relative_loudness_lu": LEVEL_RANGE_LU, "loudness_range_lu": LRA_RANGE_LU}[name]
    if not math.isfinite(value):
        return "not measurable (silent or too short)"
    if not (lo <= value <= hi):
        return f"{value:.2f} LU outside [{lo:g}, {hi:g}]"
    return None


@dataclass
class SongMeasures:
    """The per-song loudness targets."""

    relative_loudness_lu: float
    loudness_range_lu: float


def measure_song(vocal, backing, sr: int) -> SongMeasures:
    """Level and compression targets of a song; ``vocal`` and ``backing`` ``(channels, samples)``."""
    return SongMeasures(relative_loudness_lu(vocal, backing, sr), vocal_loudness_range_lu(vocal, sr))
