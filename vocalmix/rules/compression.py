"""Compression: search threshold and ratio until the vocal's loudness range reaches a target.

The search of Li & Lerch: start at threshold 0 dB and ratio 3:1; each step lowers
the threshold by 3 dB and raises the ratio by 0.1; stop as soon as the loudness
range (EBU Tech 3342) is below the target, or when the next threshold would be
below the floor. Attack 30 ms, release 150 ms.

Every step is measured with values OmniCompressor can hold (ratio on its 0.2
grid, halves rounding up as the plug-in does, so the rule's 3.0, 3.1, 3.2, ...
become 3.0, 3.2, 3.2, 3.4, ...; threshold on its 0.1 dB grid), so the report
describes the compressor that is rendered.

Thresholds in the search are relative to the vocal's sample peak, so the steps
mean the same for a vocal recorded at -20 dBFS as for one at 0 dBFS (with a
peak-normalised vocal the two readings coincide); the settings hold the absolute
threshold the compressor sees. The LRA is measured on the vocal normalised to
-23 LUFS so that the -70 LUFS absolute gate treats quiet and loud takes alike.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .. import analysis
from ..errors import InputError
from ..settings import CompressorSettings, spec_of
from ..streaming import compress_to_spool

DEFAULT_TARGET_LRA_LU = 16.36
START_THRESHOLD_DB = 0.0
START_RATIO = 3.0
THRESHOLD_STEP_DB = -3.0
RATIO_STEP = 0.1
THRESHOLD_FLOOR_DB = -35.0
ATTACK_MS = 30.0
RELEASE_MS = 150.0
MEASUREMENT_LUFS = -23.0
SEARCH_THREADS = 2


def on_compressor_grid(param_id: str, value: float) -> float:
    """``value`` on OmniCompressor's grid for ``param_id`` (ratio in 0.2 steps, threshold and times in 0.1)."""
    from ..plugins import PLUGINS_BY_NAME

    param = PLUGINS_BY_NAME["OmniCompressor"].param(param_id)
    return param.grid_value(param.grid_index(float(value))[0])


def vocal_loudness_range(vocal: np.ndarray, sample_rate: int) -> float:
    """LRA (LU) of ``vocal`` measured after normalising it to -23 LUFS."""
    return analysis.loudness_range(vocal, sample_rate, normalise_to_lufs=MEASUREMENT_LUFS)


@dataclass
class CompressionSearch:
    """The search's outcome: the chosen compressor, the report, and the vocal through it.

    ``audio`` is the chosen step's render, ``(1, samples)`` float32 (in a :class:`vocalmix.audio.Spool`,
    a temporary file read by slices like an array, with ``on_disk``), exactly what the
    chain's compressor stage gives for ``settings`` (so the chain need not run it again);
    ``None`` when the target was met without compression. ``renders``: compressor runs
    the search made (the speculative ones of the threaded steps included).
    """

    settings: CompressorSettings
    report: dict
    audio: np.ndarray | None
    renders: int


def decide_compression(
    vocal: np.ndarray,
    sample_rate: int,
    target_lra_lu: float = DEFAULT_TARGET_LRA_LU,
    threshold_floor_db: float = THRESHOLD_FLOOR_DB,
    attack_ms: float = ATTACK_MS,
    release_ms: float = RELEASE_MS,
) -> tuple[CompressorSettings, dict]:
    """Compressor settings for ``vocal`` ``(1, samples)`` (the EQ'd vocal) and the search's report."""
    found = search_compression(vocal, sample_rate, target_lra_lu, threshold_floor_db, attack_ms, release_ms)
    return found.settings, found.report


def search_compression(
    vocal: np.ndarray,
    sample_rate: int,
    target_lra_lu: float = DEFAULT_TARGET_LRA_LU,
    threshold_floor_db: float = THRESHOLD_FLOOR_DB,
    attack_ms: float = ATTACK_MS,
    release_ms: float = RELEASE_MS,
    measured_samples: int | None = None,
    on_disk: bool = False,
) -> CompressionSearch:
    """:func:`decide_compression`, keeping the chosen step's audio.

    ``on_disk``: keep the chosen step's render in a :class:`vocalmix.audio.Spool` (every step is
    rendered into one, block by block) rather than read it back into memory.
    ``measured_samples``: the decision reads only the first this many samples (peak
    and loudness range), while every step is rendered over all of ``vocal``; a
    caller that renders the chain on a longer, zero-padded vocal gets that render's
    compressor stage with the decision of the unpadded one (the compressor is causal).
    """
    measured = vocal[:, :measured_samples]
    peak = float(np.max(np.abs(measured)))
    if peak <= 0:
        raise InputError("vocal: silent, nothing to compress")
    peak_db = 20 * np.log10(peak)
    threshold_spec = spec_of(CompressorSettings, "threshold_db")
    attack_ms, release_ms = on_compressor_grid("attack", attack_ms), on_compressor_grid("release", release_ms)

    def absolute_threshold(threshold_rel: float) -> float:
        return on_compressor_grid("threshold", peak_db + threshold_rel)

    def render(threshold_rel: float, ratio: float) -> np.ndarray:
        step = CompressorSettings(
            threshold_db=absolute_threshold(threshold_rel),
            ratio=ratio,
            knee_db=0.0,
            attack_ms=attack_ms,
            release_ms=release_ms,
            makeup_db=0.0,
        )
        # Block by block (the same samples as apply_compressor) into a temporary file, its loudness range
        # measured on the blocks as they come: a step's render holds one block in memory (issue 19 item 9).
        return compress_to_spool(vocal, sample_rate, step, measured_samples)

    lra = vocal_loudness_range(measured, sample_rate)
    steps = [{"threshold_db": None, "ratio": 1.0, "loudness_range_lu": lra}]
    settings = CompressorSettings(threshold_db=0.0, ratio=1.0, attack_ms=attack_ms, release_ms=release_ms)
    chosen = None
    renders = 0
    if lra < target_lra_lu:
        stopped_by = "target already met"
    else:
        # The steps are fixed in advance; only where the search stops depends on the audio.
        plan = []
        for k in range(1000):
            threshold_rel = START_THRESHOLD_DB + k * THRESHOLD_STEP_DB
            if threshold_rel < threshold_floor_db:
                break
            plan.append((threshold_rel, on_compressor_grid("ratio", START_RATIO + k * RATIO_STEP)))

        def measure(step):
            audio, loudness = render(*step)
            return audio, loudness.loudness_range(normalise_to_lufs=MEASUREMENT_LUFS)  # vocal_loudness_range

        stopped_by = "threshold floor"
        # Steps are measured a few at a time in threads (the kernels release the GIL) and
        # read in order, so the result is exactly that of the one-by-one search.
        workers = max(1, min(SEARCH_THREADS, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for first in range(0, len(plan), workers):
                batch = plan[first : first + workers]
                valid = [st for st in batch if absolute_threshold(st[0]) >= threshold_spec.minimum]
                results = list(pool.map(measure, valid))
                renders += len(results)
                done = False
                for (threshold_rel, ratio), result in zip(batch, results + [None] * (len(batch) - len(valid))):
                    if result is None:
                        stopped_by, done = "compressor threshold range", True
                        break
                    chosen, lra = result
                    absolute = absolute_threshold(threshold_rel)
                    settings = CompressorSettings(
                        threshold_db=absolute, ratio=ratio, attack_ms=attack_ms, release_ms=release_ms
                    )
                    steps.append(
                        {
                            "threshold_db": absolute,
                            "threshold_re_peak_db": threshold_rel,
                            "ratio": ratio,
                            "loudness_range_lu": lra,
                        }
                    )
                    if lra < target_lra_lu:
                        stopped_by, done = "target reached", True
                        break
                # Only the step kept is held while the next steps render (each render is song-long).
                del results, result
                if done:
                    break
    if chosen is not None and not on_disk:
        chosen = chosen[:, :]  # read back into memory
    report = {
        "target_lra_lu": target_lra_lu,
        "vocal_peak_dbfs": float(peak_db),
        "initial_lra_lu": steps[0]["loudness_range_lu"],
        "final_lra_lu": steps[-1]["loudness_range_lu"],
        "steps": steps,
        "stopped_by": stopped_by,
    }
    return CompressionSearch(settings, report, chosen, renders)
