"""Level: set the vocal fader so vocal loudness minus backing loudness hits a target."""

from __future__ import annotations

import numpy as np

from .. import analysis
from ..errors import InputError
from ..settings import LevelSettings, spec_of

#: Mean vocal-minus-backing integrated loudness over 21,936 songs (Li & Lerch).
DEFAULT_RELATIVE_LOUDNESS_LU = -1.77
#: The value of the earlier study, offered as an alternative.
EARLIER_RELATIVE_LOUDNESS_LU = -0.5
LEVEL_PASSES = 4
LEVEL_TOLERANCE_LU = 0.01


def decide_level(
    processed_vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    target_relative_lu: float = DEFAULT_RELATIVE_LOUDNESS_LU,
    backing_lufs: float | None = None,
) -> tuple[LevelSettings, dict]:
    """Vocal gain (dB) so that L(vocal) - L(backing) = ``target_relative_lu`` (BS.1770 integrated).

    ``processed_vocal`` is the vocal after EQ, compression and reverb; the backing keeps its level.
    ``backing_lufs``: the backing's integrated loudness, if it has been measured already.
    """
    # K-weighting is linear, so a gain of g dB adds g to every gating block's loudness: one
    # weighting pass serves every trial gain below.
    vocal_blocks = analysis.momentary_loudness(processed_vocal, sample_rate)
    if backing_lufs is None:
        backing_lufs = analysis.integrated_loudness(backing, sample_rate)
    return decide_level_from_loudness(vocal_blocks, backing_lufs, target_relative_lu)


def decide_level_from_loudness(
    vocal_blocks: np.ndarray,
    backing_lufs: float,
    target_relative_lu: float = DEFAULT_RELATIVE_LOUDNESS_LU,
) -> tuple[LevelSettings, dict]:
    """:func:`decide_level` from the processed vocal's momentary loudness series (its BS.1770 gating
    blocks, LUFS) and the backing's integrated loudness, for a caller that measured them block by block."""
    vocal_lufs = analysis.integrated_from_momentary(vocal_blocks)
    if vocal_lufs <= analysis.SILENCE_LUFS:
        raise InputError("vocal: too quiet to measure its loudness (below the -70 LUFS gate)")
    if backing_lufs <= analysis.SILENCE_LUFS:
        raise InputError("backing: too quiet to measure its loudness (below the -70 LUFS gate)")
    wanted = target_relative_lu - (vocal_lufs - backing_lufs)
    # Gated loudness is not exactly scale-invariant (a gain moves quiet blocks across the
    # -70 LUFS gate, which moves the relative gate), so the gain is refined on the vocal as raised.
    for _ in range(LEVEL_PASSES):
        raised = analysis.integrated_from_momentary(vocal_blocks + wanted)
        error = target_relative_lu - (raised - backing_lufs)
        if abs(error) < LEVEL_TOLERANCE_LU or raised <= analysis.SILENCE_LUFS:
            break
        wanted += error
    spec = spec_of(LevelSettings, "vocal_gain_db")
    gain_db = min(spec.maximum, max(spec.minimum, wanted))
    report = {
        "vocal_lufs": vocal_lufs,
        "backing_lufs": backing_lufs,
        "target_relative_lu": target_relative_lu,
        "vocal_gain_db": gain_db,
        "limited_by_range": gain_db != wanted,
    }
    return LevelSettings(vocal_gain_db=gain_db), report
