"""``vocalmix render`` as a function: load, decide, render, master, write.

Every output path is checked before any work starts, so a run that is going to
be refused is refused at once; every file is written atomically, and an input
is never overwritten.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

from . import __version__, analysis, streaming
from .audio import (
    DEFAULT_MAX_SECONDS,
    OUTPUT_SUBTYPES,
    WORKING_RATE,
    Audio,
    AudioFileBlocks,
    check_output_path,
    load_vocal,
    match_length,
    report_length_change,
    resample,
)
from .dsp.reverb import IR_MAX_SECONDS as DEFAULT_REVERB_IR_SECONDS
from .errors import InputError
from .files import write_atomic
from .jsonable import jsonable
from .methods import available, check_audio_method_outputs, get_method
from .mixing import fit_length, reverb_decay_left_db, vocal_before_level
from .plugins import reverb_tail_seconds, snap_to_plugin_grids
from .rules.compression import DEFAULT_TARGET_LRA_LU
from .rules.level import DEFAULT_RELATIVE_LOUDNESS_LU
from .rules.method import REVERB_MODES
from .settings import (
    SCHEMA_VERSION,
    LevelSettings,
    MixSettings,
    OutputSettings,
    spec_of,
    warn_about_settings,
    with_effective_fade_in,
)

log = logging.getLogger("vocalmix")

SHORT_VOCAL_FRACTION = 0.1  # a vocal under a tenth of the backing's length is probably the wrong file


@dataclass
class RenderRequest:
    """What ``vocalmix render`` was asked for. ``None`` means "not given" (so a settings
    file can be told apart from options that would decide its settings again)."""

    vocal_path: Path
    backing_path: Path
    output: Path
    method: Optional[str] = None
    settings_file: Optional[Path] = None
    model: Optional[Path] = None
    relative_loudness: Optional[float] = None
    target_lra: Optional[float] = None
    reverb_mode: Optional[str] = None
    tempo: Optional[float] = None
    loudness: Optional[float] = None
    ceiling: Optional[float] = None
    relevel: bool = False
    fill_defaults: bool = False
    tail: Optional[str] = None
    reverb_ir_max: Optional[float] = None
    stems: bool = False
    export_dir: Optional[Path] = None
    sample_format: str = "pcm24"
    rate: str = "input"
    force: bool = False
    max_minutes: float = DEFAULT_MAX_SECONDS / 60
    engine: str = "dsp"  # "iem": the real IEM plug-ins render the chain (vocalmix/iem_engine.py)


@dataclass
class RenderResult:
    settings: MixSettings
    report: dict
    written: list[Path] = field(default_factory=list)


#: Options that decide settings; a settings file has decided them already.
DECIDING_OPTIONS = (
    ("method", "--method"),
    ("model", "--model"),
    ("tempo", "--tempo"),
    ("target_lra", "--target-lra"),
    ("reverb_mode", "--reverb-mode"),
    ("relative_loudness", "--relative-loudness"),
)
MAX_TAIL_SECONDS = 60.0
MAX_REVERB_IR_SECONDS = 120.0
#: A reverb tail still above -60 dB where its impulse response is cut is reported.
REVERB_CUT_WARN_DB = 60.0


def output_paths(output: Path, stems: bool) -> dict[str, Path]:
    """The files a render writes: the mix, its settings and optionally the two stems."""
    stem = output.with_suffix("")
    paths = {"mix": output, "settings": Path(f"{stem}.settings.json")}
    if stems:
        paths["vocal"] = Path(f"{stem}.vocal{output.suffix}")
        paths["backing"] = Path(f"{stem}.backing{output.suffix}")
    return paths


def _check_options(req: RenderRequest) -> None:
    if req.settings_file is not None:
        for attr, flag in DECIDING_OPTIONS:
            if getattr(req, attr) is None or (attr == "relative_loudness" and req.relevel):
                continue
            hint = " (add --relevel to re-decide only the vocal level)" if attr == "relative_loudness" else ""
            raise InputError(
                f"{flag} decides settings, but --settings {req.settings_file} fixes them; drop {flag}{hint}"
            )
    else:
        if req.relevel:
            raise InputError(
                "--relevel re-decides the vocal level of a --settings file; without --settings the "
                "level is always decided last"
            )
        if req.fill_defaults:
            raise InputError("--fill-defaults completes a --settings file; it needs --settings")
        if req.method is not None and req.method not in available():
            get_method(req.method)  # the registry's one-line error (unknown, or planned but not built)
    if req.sample_format not in OUTPUT_SUBTYPES:
        raise InputError(f"--format {req.sample_format!r}: choose one of {', '.join(OUTPUT_SUBTYPES)}")
    if req.rate not in ("input", "working"):
        raise InputError(f"--rate {req.rate!r}: choose 'input' or 'working'")
    ceiling_spec = spec_of(OutputSettings, "ceiling_dbtp")
    if req.ceiling is not None and not (ceiling_spec.minimum <= req.ceiling <= ceiling_spec.maximum):
        raise InputError(
            f"--ceiling {req.ceiling:g} dBTP is outside [{ceiling_spec.minimum:g}, {ceiling_spec.maximum:g}]"
        )
    loudness_spec = spec_of(OutputSettings, "target_loudness_lufs")
    if req.loudness is not None and not (loudness_spec.minimum <= req.loudness <= loudness_spec.maximum):
        raise InputError(
            f"--loudness {req.loudness:g} LUFS is outside [{loudness_spec.minimum:g}, {loudness_spec.maximum:g}]"
        )
    if req.relative_loudness is not None and not (-30.0 <= req.relative_loudness <= 30.0):
        raise InputError(f"--relative-loudness {req.relative_loudness:g} LU is outside [-30, 30]")
    if req.target_lra is not None and not (1.0 <= req.target_lra <= 40.0):
        raise InputError(f"--target-lra {req.target_lra:g} LU is outside [1, 40]")
    if req.reverb_mode is not None and req.reverb_mode not in REVERB_MODES:
        raise InputError(f"--reverb-mode {req.reverb_mode!r}: choose 'tempo' or 'return-level'")
    if not (0 < req.max_minutes <= 600):
        raise InputError(f"--max-minutes {req.max_minutes:g} is outside (0, 600]")
    if req.tempo is not None and not (20.0 <= req.tempo <= 400.0):
        raise InputError(f"--tempo {req.tempo:g} BPM is outside [20, 400]")
    _tail_request(req.tail)
    if req.reverb_ir_max is not None and not (1.0 <= req.reverb_ir_max <= MAX_REVERB_IR_SECONDS):
        raise InputError(f"--reverb-ir-max {req.reverb_ir_max:g} s is outside [1, {MAX_REVERB_IR_SECONDS:g}] s")
    if req.engine not in ("dsp", "iem"):
        raise InputError(f"--engine {req.engine!r}: choose 'dsp' or 'iem'")
    if req.engine == "iem":
        from .iem_engine import find_plugin_dir
        from .methods import AUDIO_METHODS

        if req.method in AUDIO_METHODS:
            raise InputError(f"--engine iem renders the effect chain; --method {req.method} mixes the audio itself")
        find_plugin_dir()  # a missing plug-in package is reported before any work


def _tail_request(tail) -> Optional[float]:
    """``--tail``: None (off), ``"auto"`` (-1.0 here: decided from the reverb) or seconds."""
    if tail is None:
        return None
    if str(tail).strip().lower() == "auto":
        return -1.0
    try:
        seconds = float(tail)
    except ValueError:
        raise InputError(f"--tail {tail!r}: give 'auto' or a number of seconds") from None
    if not (0.0 <= seconds <= MAX_TAIL_SECONDS):
        raise InputError(f"--tail {seconds:g} s is outside [0, {MAX_TAIL_SECONDS:g}] s")
    return seconds


def _check_request(req: RenderRequest) -> dict[str, Path]:
    _check_options(req)
    if req.settings_file is None:
        check_audio_method_outputs(req.method or "rules", stems=req.stems, export=req.export_dir is not None)
    paths = output_paths(req.output, req.stems)
    inputs = tuple(p for p in (req.vocal_path, req.backing_path, req.settings_file) if p is not None)
    for kind, path in paths.items():
        if kind == "settings":
            if any(Path(p).resolve() == path.resolve() for p in inputs):
                raise InputError(f"{path}: output path is one of the inputs; choose another name")
            if path.exists() and not req.force:
                raise InputError(f"{path}: already exists (use --force to overwrite)")
        else:
            check_output_path(path, force=req.force, protected=inputs)
    folders = {path.parent for path in paths.values()}
    if req.export_dir is not None:
        from .export import export_paths

        export_dir = Path(req.export_dir)
        if export_dir.exists() and not export_dir.is_dir():
            raise InputError(f"{export_dir}: exists and is not a folder")
        if not req.force:
            existing = [p for p in export_paths(export_dir) if p.exists()]
            if existing:
                raise InputError(f"{existing[0]}: already exists (use --force to overwrite)")
        # The folder is created at the end; its nearest existing parent must take it.
        folders.add(next(p for p in (export_dir, *export_dir.parents) if p.exists()))
    for folder in sorted(folders):
        _check_writable(folder, next((p for p in paths.values() if p.parent == folder), folder))
    return paths


def _check_writable(folder: Path, named: Path) -> None:
    """Create and remove a file in ``folder``: the one test that holds for every user and file system."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".vocalmix-write-test.", dir=folder)
    except OSError as exc:
        raise InputError(f"{named}: cannot write to {folder} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def open_pair(
    vocal_path: Path, backing_path: Path, sample_rate: int = WORKING_RATE, max_seconds: float = DEFAULT_MAX_SECONDS
):
    """The vocal as mono ``(1, length)`` at ``sample_rate`` (in memory), the backing as a checked file read
    block by block (:class:`~vocalmix.audio.AudioFileBlocks`), the vocal's :class:`~vocalmix.audio.Audio`,
    and ``length``: the longer input's length at ``sample_rate``, to which both are padded."""
    # Mono, without DC, at least 3 s long; a stereo take whose channels cancel gives its louder channel.
    vocal_audio = load_vocal(vocal_path, sample_rate, max_seconds=max_seconds)
    backing = AudioFileBlocks(backing_path, max_seconds=max_seconds)
    vocal = vocal_audio.samples
    n_vocal, n_backing = vocal.shape[-1], backing.samples_at(sample_rate)
    if n_vocal < SHORT_VOCAL_FRACTION * n_backing:
        log.warning(
            "%s: only %.1f s against a %.1f s backing; is it the right file?",
            vocal_path,
            n_vocal / sample_rate,
            n_backing / sample_rate,
        )
    length = max(n_vocal, n_backing)
    vocal = match_length(vocal, length, str(vocal_path))
    vocal_audio.samples = vocal[:, :n_vocal]  # a view: the unpadded samples are not kept twice
    report_length_change(n_backing, length, str(backing_path))
    return vocal, backing, vocal_audio, length


def load_pair(
    vocal_path: Path, backing_path: Path, sample_rate: int = WORKING_RATE, max_seconds: float = DEFAULT_MAX_SECONDS
):
    """Vocal as mono ``(1, n)`` and backing as stereo ``(2, n)``, same length, at ``sample_rate``;
    and the backing as stereo at its own rate, untouched (all in memory: :func:`open_pair` reads the backing
    block by block)."""
    vocal, backing, vocal_audio, length = open_pair(vocal_path, backing_path, sample_rate, max_seconds)
    native = np.concatenate(list(backing.blocks(backing.original_rate)), axis=1)
    backing_audio = Audio(
        native, backing.original_rate, str(backing_path), backing.original_rate, backing.original_channels
    )
    return vocal, np.concatenate(list(backing.blocks(sample_rate, length)), axis=1), vocal_audio, backing_audio, native


def _file_rate(path: Path, fallback: int) -> int:
    try:
        return int(sf.info(str(path)).samplerate) or fallback
    except Exception:  # noqa: BLE001 - load_audio reports what is wrong with the file
        return fallback


@dataclass
class _Decided:
    """Settings to render, where they came from, and the level target to decide last (None: keep)."""

    settings: MixSettings
    method: str
    report: dict
    level_target: Optional[float]
    audio: Optional[np.ndarray] = None  # an audio method's mix (2, samples) at the working rate
    chain: Optional[Callable] = None  # the vocal chain as the method rendered it while deciding (render_mix's chain)
    compressed: Optional[np.ndarray] = None  # the vocal through EQ and compressor as rendered while deciding (1, n)


def _chain_samples(output_samples: int, sr: int, out_rate: int) -> int:
    """Length at ``sr`` of the vocal given to the chain for an output of ``output_samples`` at ``out_rate``
    (one sample to spare for the resampling to the output rate)."""
    return int(math.ceil(output_samples * sr / out_rate)) + 1


def _decide(
    req: RenderRequest,
    vocal: np.ndarray,
    backing: np.ndarray,
    sr: int,
    progress: Callable[[str], None],
    file_settings: Optional[MixSettings] = None,
    song: Optional[analysis.SongAnalysis] = None,
    chain_samples: int | Callable[[MixSettings], int] | None = None,
) -> _Decided:
    """Settings to render. ``song``: the inputs' analysis, shared by every rule; ``chain_samples``:
    the length of the vocal the render gives the chain, so the rules can render the chain once,
    while deciding, for it (a function of the settings when the length follows from the reverb's tail;
    None: the render runs the chain itself)."""
    if req.settings_file is not None:
        progress(f"using the settings of {req.settings_file}")
        settings = file_settings or read_settings_file(req.settings_file, fill_defaults=req.fill_defaults)
        warn_about_settings(settings, str(req.settings_file))
        output = settings.output
        settings = replace(
            settings,
            output=OutputSettings(
                ceiling_dbtp=output.ceiling_dbtp if req.ceiling is None else req.ceiling,
                target_loudness_lufs=output.target_loudness_lufs if req.loudness is None else req.loudness,
            ),
        )
        target = None
        if not req.relevel and "level.vocal_gain_db" in _taken_from_defaults(req.settings_file):
            log.warning(
                "%s: the vocal level was not in the imported presets (%+g dB is the default); add --relevel "
                "to decide it",
                req.settings_file,
                settings.level.vocal_gain_db,
            )
        if req.relevel:
            target = DEFAULT_RELATIVE_LOUDNESS_LU if req.relative_loudness is None else req.relative_loudness
        return _Decided(settings, "settings-file", {"settings_file": str(req.settings_file)}, target)
    method_name = req.method or "rules"
    options = {}
    if method_name == "rules":
        options = dict(
            target_relative_lu=_or(req.relative_loudness, DEFAULT_RELATIVE_LOUDNESS_LU),
            target_lra_lu=_or(req.target_lra, DEFAULT_TARGET_LRA_LU),
            reverb_mode=_or(req.reverb_mode, "tempo"),
            tempo_bpm=req.tempo,
        )
    else:
        given = [
            flag
            for attr, flag in DECIDING_OPTIONS
            if attr not in ("method", "model") and getattr(req, attr) is not None
        ]
        if given:
            raise InputError(f"{given[0]} applies to --method rules, not --method {method_name}")
        if req.model is not None:
            options = {"model_dir": req.model}
    method = get_method(method_name, **options)
    progress(f"deciding settings with the {method_name} method")
    if method_name == "rules":
        return _decide_rules(method, req, song or analysis.SongAnalysis(vocal, backing, sr), chain_samples)
    decision = method.decide(vocal, song.backing if song is not None else backing, sr)
    if decision.mix is not None:
        output = OutputSettings(ceiling_dbtp=_or(req.ceiling, -1.0), target_loudness_lufs=req.loudness)
        return _Decided(replace(decision.settings, output=output), method_name, decision.report, None, decision.mix)
    # Put on the plug-ins' grids (so the presets reproduce this very render), with no fade-in
    # the plug-in would not play; the level is then decided last on this chain.
    settings = snap_to_plugin_grids(
        replace(
            with_effective_fade_in(decision.settings),
            output=OutputSettings(ceiling_dbtp=_or(req.ceiling, -1.0), target_loudness_lufs=req.loudness),
        )
    )
    target = (decision.report.get("level") or {}).get("target_relative_lu")
    return _Decided(settings, method_name, decision.report, target)


def _decide_rules(
    method, req: RenderRequest, song: analysis.SongAnalysis, chain_samples: int | Callable[[MixSettings], int] | None
) -> _Decided:
    """The rules in one pass: each stage rendered once as it is decided; the level is left to the render,
    which decides it last on this very chain at the output rate."""
    # The real plug-ins (--engine iem) render the chain themselves.
    staged = method.decide_stages(
        song,
        render_samples=chain_samples if req.engine == "dsp" else None,
        reverb_ir_max_s=req.reverb_ir_max,
        render_reverb=False,  # the render runs the reverb block by block on the compressed vocal
    )
    decision = staged.decision
    settings = snap_to_plugin_grids(
        replace(
            with_effective_fade_in(decision.settings),
            output=OutputSettings(ceiling_dbtp=_or(req.ceiling, -1.0), target_loudness_lufs=req.loudness),
        )
    )
    chain = None if staged.wet is None else _RenderedChain(staged.wet, settings)
    compressed = None
    rendered_as_decided = settings.eq == decision.settings.eq and settings.compressor == decision.settings.compressor
    if staged.compressed is not None and rendered_as_decided and not settings.compressor.lookahead:
        compressed = staged.compressed
    return _Decided(settings, "rules", decision.report, method.target_relative_lu, chain=chain, compressed=compressed)


class _RenderedChain:
    """``render_mix``'s ``chain`` for a vocal chain rendered while deciding: hands that render over for the
    same settings and length, and renders afresh (as :func:`vocal_before_level`) for anything else."""

    def __init__(self, wet: np.ndarray, settings: MixSettings):
        self.wet, self.settings = wet, settings

    def __call__(self, vocal: np.ndarray, sample_rate: int, settings: MixSettings) -> np.ndarray:
        same = (
            vocal.shape[-1] == self.wet.shape[-1]
            and settings.eq == self.settings.eq
            and settings.compressor == self.settings.compressor
            and settings.reverb == self.settings.reverb
        )
        if not same:
            log.debug("the chain rendered while deciding does not match the render; rendering it again")
            return vocal_before_level(vocal, sample_rate, settings)
        return self.wet


def _or(value, default):
    return default if value is None else value


def _taken_from_defaults(path: Path) -> list:
    """The settings ``vocalmix import`` filled from defaults, as its report lists them."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8")).get("report") or {}
    except (OSError, ValueError, AttributeError):
        return []
    names = report.get("taken_from_defaults") if isinstance(report, dict) else None
    return names if isinstance(names, list) else []


def read_settings_file(path: Path, fill_defaults: bool = False) -> MixSettings:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return MixSettings.from_json(text, source=str(path), fill_defaults=fill_defaults)


def _check_loudness_target(req: RenderRequest, file_settings: Optional[MixSettings]) -> None:
    """Refuse a loudness target above the true-peak ceiling: only a full-scale square-like wave reaches
    that, so limiting a song towards it ends far short of the target and badly distorted."""
    output = file_settings.output if file_settings is not None else OutputSettings()
    ceiling = output.ceiling_dbtp if req.ceiling is None else req.ceiling
    target = output.target_loudness_lufs if req.loudness is None else req.loudness
    if target is None or target <= ceiling:
        return
    what = (
        f"--loudness {target:g} LUFS"
        if req.loudness is not None
        else f"{req.settings_file}: target_loudness_lufs {target:g} LUFS"
    )
    raise InputError(
        f"{what} is above the {ceiling:g} dBTP ceiling; no song reaches that loudness under "
        "that peak limit; choose a target below the ceiling"
    )


def _check_vocal_level(song: analysis.SongAnalysis, target_lu: float, path: Path) -> None:
    """Refuse, before any work, a vocal that no fader position in range brings to the target."""
    gain_max = spec_of(LevelSettings, "vocal_gain_db").maximum
    peak = song.vocal_peak_dbfs
    vocal_lufs = song.vocal_lufs
    backing_lufs = song.backing_lufs
    if vocal_lufs <= analysis.SILENCE_LUFS:
        raise InputError(
            f"{path}: too quiet to mix (peak {peak:.1f} dBFS, below the -70 LUFS loudness gate); "
            "raise its level and render again"
        )
    needed = target_lu + backing_lufs - vocal_lufs
    if needed > gain_max:
        raise InputError(
            f"{path}: too quiet to mix ({vocal_lufs:.1f} LUFS, peak {peak:.1f} dBFS): it needs "
            f"{needed:+.1f} dB to sit {target_lu:g} LU against the backing, the vocal level goes up to "
            f"{gain_max:+g} dB; raise its level and render again"
        )


def run_render(req: RenderRequest, progress: Callable[[str], None] = lambda m: None) -> RenderResult:
    paths = _check_request(req)
    tail_request = _tail_request(req.tail)
    file_settings = None
    if req.settings_file is not None:
        # A broken settings file is refused before the audio is read.
        file_settings = read_settings_file(req.settings_file, fill_defaults=req.fill_defaults)
    _check_loudness_target(req, file_settings)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    progress(f"loading {req.vocal_path} and {req.backing_path}")
    # The vocal is held at the working rate; the backing is read from its file block by block at each
    # pass (analysis, render), so a long song is never held whole (issue 19 item 9).
    vocal, backing_file, vocal_audio, n_working = open_pair(
        req.vocal_path, req.backing_path, max_seconds=req.max_minutes * 60
    )
    sr = WORKING_RATE
    timings["load_s"] = time.perf_counter() - start
    # Every rule and the render read the inputs' analysis, made once.
    song = analysis.SongAnalysis(vocal, backing_file.block_source(sr, n_working), sr)
    level_check = req.relative_loudness if req.relative_loudness is not None else DEFAULT_RELATIVE_LOUDNESS_LU
    if req.settings_file is None or req.relevel:
        _check_vocal_level(song, level_check, req.vocal_path)
    out_rate = backing_file.original_rate if req.rate == "input" else sr
    # The output is as long as the longer input, plus the tail if one is asked for.
    vocal_seconds = vocal_audio.samples.shape[-1] / sr
    backing_samples = backing_file.frames if req.rate == "input" else n_working
    length = max(backing_samples, int(round(vocal_seconds * out_rate)))

    start = time.perf_counter()

    # A tail decided from the reverb makes the chain's length a function of the reverb settings (the rules
    # decide the reverb before rendering their first stage, so they still render each stage once).
    def with_decided_tail(decided: MixSettings) -> int:
        return _chain_samples(length + int(round(reverb_tail_seconds(decided) * out_rate)), sr, out_rate)

    chain_samples: int | Callable[[MixSettings], int] = (
        with_decided_tail
        if tail_request is not None and tail_request < 0
        else _chain_samples(length + int(round((tail_request or 0.0) * out_rate)), sr, out_rate)
    )
    decided = _decide(req, vocal, None, sr, progress, file_settings, song=song, chain_samples=chain_samples)
    settings = decided.settings
    timings["decide_s"] = time.perf_counter() - start

    start = time.perf_counter()
    progress("rendering the vocal chain and the mix")
    tail_s = 0.0
    if tail_request is not None:
        tail_s = reverb_tail_seconds(settings) if tail_request < 0 else tail_request
    length += int(round(tail_s * out_rate))
    # The backing at the output rate, padded to the output's length, in a temporary file.
    backing_out = streaming.spool_blocks(backing_file.blocks(out_rate), 2, length)
    chain_length = _chain_samples(length, sr, out_rate)
    if decided.audio is not None:
        # The network mixed already: its mix goes through the output stage alone (no vocal chain).
        source = streaming.MixSource(fit_length(resample(decided.audio, sr, out_rate), length), None)
        stage: dict = {}
    else:
        chain = decided.chain
        if req.engine == "iem":
            from .iem_engine import vocal_before_level_iem as chain
        else:
            _warn_if_reverb_cut(settings, req.reverb_ir_max)
        compressed = decided.compressed
        if compressed is not None and (chain is not None or compressed.shape[-1] != chain_length):
            compressed = None
        # The chain's input (not needed, nor copied, when the compressed vocal is handed over).
        vocal_in = vocal if compressed is not None else fit_length(vocal, chain_length)
        decided.compressed = decided.chain = None  # the render holds them only as long as it needs them
        # The backing's loudness at the working rate is the analysed one when the output is that backing.
        same_backing = out_rate == sr and length == n_working
        source, settings, stage = streaming.mix_source(
            vocal_in,
            backing_out,
            sr,
            out_rate,
            settings,
            relevel_to=decided.level_target,
            chain=chain,
            compressed=compressed,
            reverb_ir_max_s=req.reverb_ir_max,
            backing_lufs=song.backing_lufs if same_backing else None,
        )
        del chain, compressed
    report = dict(decided.report)
    report["engine"] = req.engine
    if "level" in stage:
        report["level"] = {**stage.pop("level"), "decided_on": f"the rendered chain at {out_rate} Hz"}
        _check_level_range(report["level"], req.vocal_path)
    timings["render_s"] = time.perf_counter() - start

    # The output stage and the files, block by block (vocalmix/streaming.py).
    start = time.perf_counter()
    inputs = tuple(p for p in (req.vocal_path, req.backing_path, req.settings_file) if p is not None)
    audio_paths = {kind: path for kind, path in paths.items() if kind != "settings"}
    for path in audio_paths.values():
        check_output_path(path, force=req.force, protected=inputs)
    stage.update(
        streaming.master_and_write(audio_paths, source, settings, out_rate, req.sample_format, progress=progress)
    )
    stage["tail_s"] = tail_s
    written = list(audio_paths.values())
    timings["write_s"] = time.perf_counter() - start

    document = {
        "vocalmix_version": __version__,
        "method": decided.method,
        "inputs": {
            "vocal": str(req.vocal_path),
            "backing": str(req.backing_path),
            "vocal_sample_rate_hz": vocal_audio.original_rate,
            "backing_sample_rate_hz": backing_file.original_rate,
        },
        "report": {**jsonable(report), "output_stage": jsonable(stage), "timings_s": timings},
    }
    if decided.audio is not None:
        document = {
            "schema_version": SCHEMA_VERSION,
            **document,
            "settings": None,
            "effect_settings": f"none: the {decided.method} method outputs the mix itself; "
            "there is nothing to export or re-render",
        }
    _write_text_atomic(
        paths["settings"], settings.to_json(**document) if decided.audio is None else json.dumps(document, indent=2)
    )
    written.insert(1, paths["settings"])
    if req.export_dir is not None:
        from .export import export_settings

        progress(f"exporting presets to {req.export_dir}")
        written.extend(export_settings(settings, req.export_dir, force=req.force))
    progress("done")
    return RenderResult(settings, document["report"], written)


def _warn_if_reverb_cut(settings: MixSettings, ir_seconds: Optional[float]) -> None:
    if settings.reverb.dry_wet_pct <= 0:
        return
    limit = DEFAULT_REVERB_IR_SECONDS if ir_seconds is None else ir_seconds
    decayed = reverb_decay_left_db(settings, limit)
    if decayed < REVERB_CUT_WARN_DB:
        log.warning(
            "reverb: with reverb_time_s %g s, low_gain_db_per_s %g and high_gain_db_per_s %g dB/s the tail "
            "has decayed only %.0f dB when its %g s impulse response is cut; a longer --reverb-ir-max keeps "
            "more of it",
            settings.reverb.reverb_time_s,
            settings.reverb.low_gain_db_per_s,
            settings.reverb.high_gain_db_per_s,
            decayed,
            limit,
        )


def _check_level_range(level: dict, vocal_path: Path) -> None:
    if not level.get("limited_by_range"):
        return
    spec = spec_of(LevelSettings, "vocal_gain_db")
    if level["vocal_gain_db"] >= spec.maximum:
        raise InputError(
            f"{vocal_path}: too quiet to mix (processed vocal {level['vocal_lufs']:.1f} LUFS): it "
            f"needs more than the {spec.maximum:+g} dB the vocal level goes up to; raise its level and "
            "render again"
        )
    log.warning(
        "%s: so loud that the vocal level stops at %+g dB; the vocal sits above the target", vocal_path, spec.minimum
    )


def _write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, text + "\n")
