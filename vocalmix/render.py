"""``vocalmix render`` as a function: load, decide, render, master, write.

Every output path is checked before any work starts, so a run that is going to
be refused is refused at once; every file is written atomically, and an input
is never overwritten.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import __version__
from .audio import (DEFAULT_MAX_SECONDS, OUTPUT_SUBTYPES, WORKING_RATE, check_output_path, load_audio, match_length, resample,
                    to_mono, to_stereo, write_audio)
from .errors import InputError
from .export import snap_to_plugin_grids
from .methods import get_method
from .mixing import render_mix
from .settings import MixSettings, OutputSettings, spec_of

log = logging.getLogger("vocalmix")

SHORT_VOCAL_FRACTION = 0.1  # a vocal under a tenth of the backing's length is probably the wrong file


@dataclass
class RenderRequest:
    vocal_path: Path
    backing_path: Path
    output: Path
    method: str = "rules"
    settings_file: Optional[Path] = None
    model: Optional[Path] = None
    relative_loudness: float = -1.77
    target_lra: float = 16.36
    reverb_mode: str = "tempo"
    tempo: Optional[float] = None
    loudness: Optional[float] = None
    ceiling: float = -1.0
    stems: bool = False
    export_dir: Optional[Path] = None
    sample_format: str = "pcm24"
    rate: str = "input"
    force: bool = False
    max_minutes: float = DEFAULT_MAX_SECONDS / 60


@dataclass
class RenderResult:
    settings: MixSettings
    report: dict
    written: list[Path] = field(default_factory=list)


def output_paths(output: Path, stems: bool) -> dict[str, Path]:
    """The files a render writes: the mix, its settings and optionally the two stems."""
    stem = output.with_suffix("")
    paths = {"mix": output, "settings": Path(f"{stem}.settings.json")}
    if stems:
        paths["vocal"] = Path(f"{stem}.vocal{output.suffix}")
        paths["backing"] = Path(f"{stem}.backing{output.suffix}")
    return paths


def _check_request(req: RenderRequest) -> dict[str, Path]:
    if req.sample_format not in OUTPUT_SUBTYPES:
        raise InputError(f"--format {req.sample_format!r}: choose one of {', '.join(OUTPUT_SUBTYPES)}")
    if req.rate not in ("input", "working"):
        raise InputError(f"--rate {req.rate!r}: choose 'input' or 'working'")
    ceiling_spec = spec_of(OutputSettings, "ceiling_dbtp")
    if not (ceiling_spec.minimum <= req.ceiling <= ceiling_spec.maximum):
        raise InputError(f"--ceiling {req.ceiling:g} dBTP is outside [{ceiling_spec.minimum:g}, {ceiling_spec.maximum:g}]")
    if req.loudness is not None and not (-60.0 <= req.loudness <= 0.0):
        raise InputError(f"--loudness {req.loudness:g} LUFS is outside [-60, 0]")
    if not (-30.0 <= req.relative_loudness <= 30.0):
        raise InputError(f"--relative-loudness {req.relative_loudness:g} LU is outside [-30, 30]")
    if not (1.0 <= req.target_lra <= 40.0):
        raise InputError(f"--target-lra {req.target_lra:g} LU is outside [1, 40]")
    if not (0 < req.max_minutes <= 600):
        raise InputError(f"--max-minutes {req.max_minutes:g} is outside (0, 600]")
    if req.tempo is not None and not (20.0 <= req.tempo <= 400.0):
        raise InputError(f"--tempo {req.tempo:g} BPM is outside [20, 400]")
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
    if req.export_dir is not None and not req.force:
        from .export import export_paths

        existing = [p for p in export_paths(req.export_dir) if p.exists()]
        if existing:
            raise InputError(f"{existing[0]}: already exists (use --force to overwrite)")
    return paths


def load_pair(vocal_path: Path, backing_path: Path, sample_rate: int = WORKING_RATE,
              max_seconds: float = DEFAULT_MAX_SECONDS):
    """Vocal as mono ``(1, n)`` and backing as stereo ``(2, n)``, same length, at ``sample_rate``."""
    vocal_audio = load_audio(vocal_path, sample_rate, max_seconds=max_seconds, allow_silent=False)
    backing_audio = load_audio(backing_path, sample_rate, max_seconds=max_seconds, allow_silent=False)
    vocal = vocal_audio.samples
    if vocal.shape[0] > 1:
        log.info("%s: %d channels folded to mono", vocal_path, vocal.shape[0])
        vocal = to_mono(vocal)
    backing = to_stereo(backing_audio.samples, str(backing_path))
    n_vocal, n_backing = vocal.shape[-1], backing.shape[-1]
    if n_vocal < SHORT_VOCAL_FRACTION * n_backing:
        log.warning("%s: only %.1f s against a %.1f s backing; is it the right file?", vocal_path,
                    n_vocal / sample_rate, n_backing / sample_rate)
    length = max(n_vocal, n_backing)
    vocal = match_length(vocal, length, str(vocal_path))
    backing = match_length(backing, length, str(backing_path))
    return vocal, backing, vocal_audio, backing_audio


def run_render(req: RenderRequest, progress: Callable[[str], None] = lambda m: None) -> RenderResult:
    paths = _check_request(req)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    progress(f"loading {req.vocal_path} and {req.backing_path}")
    vocal, backing, vocal_audio, backing_audio = load_pair(req.vocal_path, req.backing_path,
                                                           max_seconds=req.max_minutes * 60)
    sr = WORKING_RATE
    timings["load_s"] = time.perf_counter() - start

    start = time.perf_counter()
    if req.settings_file is not None:
        progress(f"reading settings from {req.settings_file}")
        try:
            text = Path(req.settings_file).read_text()
        except OSError as exc:
            raise InputError(f"{req.settings_file}: cannot read ({exc.strerror})") from None
        settings = MixSettings.from_json(text, source=str(req.settings_file))
        method_name, report = "settings-file", {"settings_file": str(req.settings_file)}
    else:
        options = {}
        if req.method == "rules":
            options = dict(target_relative_lu=req.relative_loudness, target_lra_lu=req.target_lra,
                           reverb_mode=req.reverb_mode, tempo_bpm=req.tempo)
            if req.reverb_mode not in ("tempo", "return-level"):
                raise InputError(f"--reverb-mode {req.reverb_mode!r}: choose 'tempo' or 'return-level'")
        elif req.model is not None:
            options = {"model_dir": req.model}
        method = get_method(req.method, **options)
        progress(f"deciding settings with the {req.method} method")
        decision = method.decide(vocal, backing, sr)
        # Decided values are put on the plug-ins' grids, so the presets reproduce this very render.
        settings = snap_to_plugin_grids(replace(
            decision.settings, output=OutputSettings(ceiling_dbtp=req.ceiling, target_loudness_lufs=req.loudness)))
        method_name, report = req.method, decision.report
    timings["decide_s"] = time.perf_counter() - start

    start = time.perf_counter()
    progress("rendering the vocal chain and the mix")
    mix = render_mix(vocal, backing, sr, settings)
    timings["render_s"] = time.perf_counter() - start

    start = time.perf_counter()
    out_rate = backing_audio.original_rate if req.rate == "input" else sr
    outputs = {"mix": mix.mix, "vocal": mix.vocal, "backing": mix.backing}
    if out_rate != sr:
        # Resampling is linear, so the stems still sum to the mix.
        outputs = {k: np.clip(resample(v, sr, out_rate), -1.0, 1.0) for k, v in outputs.items()}
    inputs = tuple(p for p in (req.vocal_path, req.backing_path, req.settings_file) if p is not None)
    written = []
    for kind in ("mix", "vocal", "backing"):
        if kind in paths:
            progress(f"writing {paths[kind]}")
            written.append(write_audio(paths[kind], outputs[kind], out_rate, req.sample_format, force=req.force,
                                       protected=inputs))
    timings["write_s"] = time.perf_counter() - start

    document = {
        "vocalmix_version": __version__,
        "method": method_name,
        "inputs": {"vocal": str(req.vocal_path), "backing": str(req.backing_path),
                   "vocal_sample_rate_hz": vocal_audio.original_rate,
                   "backing_sample_rate_hz": backing_audio.original_rate},
        "report": {**_jsonable(report), "output_stage": _jsonable(mix.report), "timings_s": timings},
    }
    _write_text_atomic(paths["settings"], settings.to_json(**document))
    written.insert(1, paths["settings"])
    if req.export_dir is not None:
        from .export import export_settings

        progress(f"exporting presets to {req.export_dir}")
        req.export_dir.mkdir(parents=True, exist_ok=True)
        written.extend(export_settings(settings, req.export_dir, force=req.force))
    progress("done")
    return RenderResult(settings, document["report"], written)


def _jsonable(obj):
    """Replace non-finite floats (not valid JSON) with None and numpy scalars with Python ones."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text + "\n")
    tmp.replace(path)
