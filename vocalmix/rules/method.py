"""The rules method: each effect decided in signal-chain order on the vocal as processed so far."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..methods import Decision
from ..mixing import process_vocal
from ..plugins import snap_to_plugin_grids
from ..settings import MixSettings, with_effective_fade_in
from .compression import DEFAULT_TARGET_LRA_LU, decide_compression
from .eq import decide_eq
from .level import DEFAULT_RELATIVE_LOUDNESS_LU, decide_level
from .reverb import decide_reverb, dry_wet_for_return_level

REVERB_MODES = ("tempo", "return-level")


def on_plugin_grids(settings: MixSettings) -> MixSettings:
    """``settings`` as the plug-ins hold them, with a fade-in FdnReverb plays (0 or >= 0.08 s)."""
    return snap_to_plugin_grids(with_effective_fade_in(settings))


class RulesMethod:
    """Li & Lerch's rule-based baseline. Every number is an option with the paper's default."""

    name = "rules"

    def __init__(
        self,
        target_relative_lu: float = DEFAULT_RELATIVE_LOUDNESS_LU,
        target_lra_lu: float = DEFAULT_TARGET_LRA_LU,
        reverb_mode: str = "tempo",
        tempo_bpm: float | None = None,
        base: MixSettings | None = None,
    ):
        if reverb_mode not in REVERB_MODES:
            raise ValueError(f"reverb_mode must be one of {REVERB_MODES}")
        self.target_relative_lu = target_relative_lu
        self.target_lra_lu = target_lra_lu
        self.reverb_mode = reverb_mode
        self.tempo_bpm = tempo_bpm
        self.base = base or MixSettings()

    def decide(self, vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> Decision:
        timings: dict[str, float] = {}
        report: dict = {"method": self.name}
        settings = replace(self.base)

        # Every stage is put on the plug-ins' grids as soon as it is decided, so each later
        # decision (and the level, last) is made on the chain exactly as it will be rendered.
        start = time.perf_counter()
        settings.eq, report["eq"] = decide_eq(vocal, backing, sample_rate)
        settings = on_plugin_grids(settings)
        eq_out = process_vocal(vocal, sample_rate, settings, upto="eq")
        timings["eq"] = time.perf_counter() - start

        start = time.perf_counter()
        # The search steps on OmniCompressor's grid already.
        settings.compressor, report["compressor"] = decide_compression(eq_out, sample_rate, self.target_lra_lu)
        timings["compressor"] = time.perf_counter() - start

        start = time.perf_counter()
        settings.reverb, report["reverb"] = decide_reverb(backing, sample_rate, settings.reverb, self.tempo_bpm)
        settings = on_plugin_grids(settings)
        compressed = process_vocal(eq_out, sample_rate, settings, start="compressor", upto="compressor")
        if self.reverb_mode == "return-level":
            fully_wet = replace(settings, reverb=replace(settings.reverb, dry_wet_pct=100.0))
            wet = process_vocal(compressed, sample_rate, fully_wet, start="reverb", upto="reverb")
            pct, report["reverb"]["return_level"] = dry_wet_for_return_level(
                np.repeat(compressed, 2, axis=0), wet, backing, sample_rate, self.target_relative_lu)
            settings = on_plugin_grids(replace(settings, reverb=replace(settings.reverb, dry_wet_pct=pct)))
        reverb_out = process_vocal(compressed, sample_rate, settings, start="reverb", upto="reverb")
        timings["reverb"] = time.perf_counter() - start

        start = time.perf_counter()
        settings.level, report["level"] = decide_level(reverb_out, backing, sample_rate, self.target_relative_lu)
        timings["level"] = time.perf_counter() - start

        report["rule_timings_s"] = timings
        return Decision(settings.validate(), report)
