"""EQ by masking reduction (Hafezi & Reiss 2015, as modified by Li & Lerch).

Both signals are gated to the passages where each is active, K-weighted and
measured as RMS in the nine octave bands 63 Hz-16 kHz. The per-band difference
vocal minus backing, less its mean over the bands, says where the vocal is
masked. The six loudest vocal bands and the two loudest backing bands are
"essential". A band essential to the vocal only, where the vocal is weaker than
its average balance, is boosted; a band essential to the backing only, where the
vocal is stronger, is cut. The gain is minus the normalised difference, bounded
to the plug-in's range; the four largest corrections become peak filters with
Q = 1 at the band centres, on MultiEQ bands 1-4 in frequency order.
"""

from __future__ import annotations

import numpy as np

from .. import analysis
from ..errors import InputError
from ..settings import EQBand, EQSettings, spec_of

N_VOCAL_ESSENTIAL = 6
N_BACKING_ESSENTIAL = 2
MAX_BANDS = 4
PEAK_Q = 1.0
GATE_RELATIVE_LU = -20.0  # a 400 ms block counts as active within 20 LU of the signal's integrated loudness
MOMENTARY_WINDOW_S = 0.4


def active_mask(x: np.ndarray, sample_rate: int, loudness: analysis.Loudness | None = None) -> np.ndarray:
    """Boolean ``(samples,)``: samples inside 400 ms blocks that pass the absolute and relative gates.

    ``loudness``: ``x``'s :class:`~vocalmix.analysis.Loudness`, if it has been measured already.
    """
    n = x.shape[-1]
    loudness = loudness or analysis.Loudness(x, sample_rate)
    momentary = np.asarray(loudness.momentary())
    integrated = analysis.integrated_from_momentary(momentary)
    mask = np.zeros(n, dtype=bool)
    if integrated <= analysis.SILENCE_LUFS:
        return mask
    hop = int(round(analysis.LOUDNESS_HOP_S * sample_rate))
    window = int(round(MOMENTARY_WINDOW_S * sample_rate))
    gate = max(-70.0, integrated + GATE_RELATIVE_LU)
    for i in np.flatnonzero(momentary >= gate):
        mask[i * hop : i * hop + window] = True
    return mask


def decide_eq(
    vocal: np.ndarray,
    backing: np.ndarray | None,
    sample_rate: int,
    max_bands: int = MAX_BANDS,
    song: analysis.SongAnalysis | None = None,
) -> tuple[EQSettings, dict]:
    """Masking-reduction EQ for ``vocal`` ``(1, samples)`` against ``backing`` ``(2, samples)`` (unused
    when ``song`` is given: its backing, of the vocal's length, is read from there).

    ``song``: the two signals' analysis, when it has been made already (their loudness is then not measured again).
    """
    song = song or analysis.SongAnalysis(vocal, backing, sample_rate)
    # The backing is as long as the vocal (and may be read from its file in blocks, never held whole).
    mask = active_mask(vocal, sample_rate, song.vocal_loudness) & active_mask(vocal, sample_rate, song.backing_loudness)
    min_samples = int(MOMENTARY_WINDOW_S * sample_rate)
    if np.count_nonzero(mask) < min_samples:
        raise InputError("vocal and backing are never active at the same time; nothing to balance")
    vocal_bands, backing_bands = song.masked_band_rms(mask, k_weighted=True)
    centres = list(analysis.OCTAVE_CENTRES_HZ)

    difference = vocal_bands - backing_bands
    normalised = difference - difference.mean()
    vocal_essential = set(np.argsort(-vocal_bands)[:N_VOCAL_ESSENTIAL].tolist())
    backing_essential = set(np.argsort(-backing_bands)[:N_BACKING_ESSENTIAL].tolist())

    gain_spec = spec_of(EQBand, "gain_db")
    candidates = []
    for i in range(len(centres)):
        boost = i in vocal_essential and i not in backing_essential and normalised[i] < 0
        cut = i in backing_essential and i not in vocal_essential and normalised[i] > 0
        if boost or cut:
            gain = float(np.clip(-normalised[i], gain_spec.minimum, gain_spec.maximum))
            candidates.append((abs(normalised[i]), i, gain))
    chosen = sorted(sorted(candidates, reverse=True)[:max_bands], key=lambda c: c[1])

    settings = EQSettings()
    for slot, (_, band_index, gain) in enumerate(chosen, start=1):
        settings.bands[slot] = EQBand(
            enabled=True, type="peak", frequency_hz=float(centres[band_index]), q=PEAK_Q, gain_db=gain
        )
    report = {
        "band_centres_hz": centres,
        "vocal_band_db": vocal_bands.tolist(),
        "backing_band_db": backing_bands.tolist(),
        "normalised_difference_db": normalised.tolist(),
        "vocal_essential": sorted(int(centres[i]) for i in vocal_essential),
        "backing_essential": sorted(int(centres[i]) for i in backing_essential),
        "bands": [{"frequency_hz": centres[i], "gain_db": g} for _, i, g in chosen],
        "active_seconds": float(np.count_nonzero(mask) / sample_rate),
    }
    return settings, report
