"""The rules method: each effect decided in signal-chain order on the vocal as processed so far.

One pass: the song's analysis (:class:`~vocalmix.analysis.SongAnalysis`) is made once
and read by every rule; each stage is put on the plug-ins' grids as it is decided and
rendered once (the compressor search hands over its chosen step's audio), so the
chain the later rules measure is the chain that is rendered, and a render can take
the vocal after the reverb from here instead of running the chain again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..analysis import SongAnalysis
from ..audio import Spool
from ..methods import Decision
from ..mixing import process_vocal, reverb_ir_limit
from ..plugins import snap_to_plugin_grids
from ..settings import MixSettings, with_effective_fade_in
from ..streaming import compress_in_blocks, eq_in_blocks
from .compression import DEFAULT_TARGET_LRA_LU, search_compression
from .eq import decide_eq
from .level import DEFAULT_RELATIVE_LOUDNESS_LU, decide_level
from .reverb import decide_reverb, dry_wet_for_return_level

REVERB_MODES = ("tempo", "return-level")


def on_plugin_grids(settings: MixSettings) -> MixSettings:
    """``settings`` as the plug-ins hold them, with a fade-in FdnReverb plays (0 or >= 0.08 s)."""
    return snap_to_plugin_grids(with_effective_fade_in(settings))


@dataclass
class StagedDecision:
    """EQ, compressor and reverb decided (on the plug-ins' grids) and rendered once; the level is left open.

    ``wet`` is the vocal through EQ, compressor and reverb, ``(2, render_samples)`` float32:
    exactly :func:`vocalmix.mixing.vocal_before_level` of the vocal cut or padded with
    silence to ``render_samples`` (None when no render length was asked for).
    ``compressor_renders`` counts the compressor runs, the search's included.
    """

    decision: Decision
    wet: np.ndarray | None
    compressor_renders: int
    #: The vocal through EQ and compressor, ``(1, render_samples)`` float32 (None without a render length):
    #: what a caller renders the reverb from itself when it asks for no ``wet`` (``render_reverb=False``).
    compressed: np.ndarray | Spool | None = None


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
        """Every setting, the level last, on the vocal through the chain at ``sample_rate``."""
        song = SongAnalysis(vocal, backing, sample_rate)
        staged = self.decide_stages(song, render_samples=vocal.shape[-1])
        decision, timings = staged.decision, staged.decision.report["rule_timings_s"]
        start = time.perf_counter()
        decision.settings.level, decision.report["level"] = decide_level(
            staged.wet, backing, sample_rate, self.target_relative_lu, backing_lufs=song.backing_lufs
        )
        timings["level"] = time.perf_counter() - start
        decision.settings.validate()
        return decision

    def decide_stages(
        self,
        song: SongAnalysis,
        render_samples: int | Callable[[MixSettings], int] | None = None,
        reverb_ir_max_s: float | None = None,
        render_reverb: bool = True,
    ) -> StagedDecision:
        """EQ, compressor and reverb for ``song``, each rendered once; the level stays at the base's.

        The rules measure the vocal as it is (``song.vocal``); with ``render_samples``
        the stages are rendered on that vocal cut or padded with silence to that length
        (the length a render gives the chain), and the result is handed back as ``wet``.
        Both readings agree because EQ and compressor are causal: the first samples of
        the longer render are the shorter render, bit for bit. ``reverb_ir_max_s`` cuts the
        rendered reverb's impulse response there, as the render would (default 20 s).
        ``render_reverb=False``: hand back only ``compressed`` (the render streams the reverb block by
        block, never holding the stereo vocal whole). ``render_samples`` may also be a function of the
        settings with the reverb decided (as the plug-ins hold them), for a length that includes the
        reverb's tail (``render --tail auto``): the reverb depends on the tempo alone, so it is decided
        before the first stage is rendered.
        """
        # song.backing (the whole array) is made only for the return-level mode; the rest reads song's analysis.
        vocal, sample_rate = song.vocal, song.sample_rate
        n = vocal.shape[-1]
        timings: dict[str, float] = {}
        report: dict = {"method": self.name}
        settings = replace(self.base)

        # Every stage is put on the plug-ins' grids as soon as it is decided, so each later
        # decision (and the level, last) is made on the chain exactly as it will be rendered.
        start = time.perf_counter()
        settings.eq, report["eq"] = decide_eq(vocal, None, sample_rate, song=song)
        settings = on_plugin_grids(settings)
        reverb_start = time.perf_counter()
        reverb, reverb_report = decide_reverb(None, sample_rate, settings.reverb, self.tempo_bpm, song=song)
        reverb_seconds = time.perf_counter() - reverb_start
        samples = (
            render_samples(on_plugin_grids(replace(settings, reverb=reverb)))
            if callable(render_samples)
            else render_samples
        )
        rendered = n if samples is None else max(n, samples)
        # Block by block (the same samples as process_vocal(..., upto="eq")): no song-long float64 temporaries.
        eq_out = eq_in_blocks(vocal, sample_rate, settings.eq, length=rendered)
        timings["eq"] = time.perf_counter() - start - reverb_seconds

        start = time.perf_counter()
        # The search steps on OmniCompressor's grid already, and keeps the chosen step's render.
        search = search_compression(eq_out, sample_rate, self.target_lra_lu, measured_samples=n, on_disk=True)
        settings.compressor, report["compressor"] = search.settings, search.report
        renders = search.renders
        timings["compressor"] = time.perf_counter() - start

        start = time.perf_counter()
        settings.reverb, report["reverb"] = reverb, reverb_report
        settings = on_plugin_grids(settings)
        compressed = search.audio
        if compressed is None:  # the vocal needed no compression: the stage still runs, at ratio 1
            compressed = compress_in_blocks(eq_out, sample_rate, settings.compressor)
            renders += 1
        if self.reverb_mode == "return-level":
            dry = compressed[:, :n]
            fully_wet = replace(settings, reverb=replace(settings.reverb, dry_wet_pct=100.0))
            wet = process_vocal(dry, sample_rate, fully_wet, start="reverb", upto="reverb")
            pct, report["reverb"]["return_level"] = dry_wet_for_return_level(
                np.repeat(dry, 2, axis=0),
                wet,
                song.backing,
                sample_rate,
                self.target_relative_lu,
                backing_lufs=song.backing_lufs,
            )
            settings = on_plugin_grids(replace(settings, reverb=replace(settings.reverb, dry_wet_pct=pct)))
        reverb_out = None
        if samples is not None and render_reverb:
            with reverb_ir_limit(reverb_ir_max_s):
                reverb_out = process_vocal(
                    compressed[:, :samples], sample_rate, settings, start="reverb", upto="reverb"
                )
        timings["reverb"] = time.perf_counter() - start + reverb_seconds

        report["rule_timings_s"] = timings
        handed = None
        if samples is not None:  # the search's render stays on disk (a Spool); the render reads it in blocks
            handed = compressed.head(samples) if isinstance(compressed, Spool) else compressed[:, :samples]
        return StagedDecision(Decision(settings, report), reverb_out, renders, handed)
