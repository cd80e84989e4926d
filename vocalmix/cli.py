"""The ``vocalmix`` command line.

Errors the user can act on print one line, ``vocalmix: error: ...``, on stderr and
exit with 2 (bad input) or 1 (internal failure); set ``VOCALMIX_DEBUG=1`` to see
a traceback instead.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import NamedTuple, Optional

import click
import typer
from typer.core import TyperGroup

from . import __version__
from .errors import InputError, VocalmixError
from .interrupts import signals_as_interrupts
from .jit_cache import compile_notice
from .progress import Progress

log = logging.getLogger("vocalmix")


class LazyCommand(NamedTuple):
    """A command whose code is imported only when it runs: ``module:attribute`` and the help ``--help`` shows."""

    target: str
    help: str


#: The training commands: `vocalmix --help` lists them, but their modules (and torch) load only when one runs,
#: so rendering never imports training code. tests/test_architecture.py checks each help equals the command's own.
LAZY_COMMANDS: dict[str, LazyCommand] = {
    "train": LazyCommand(
        "vocalmix.training.cli_train:train_command",
        "Train a model on a dataset, validating on held-out songs: the Li & Lerch CNN regressors, "
        "cnn-e2e or the Wave-U-Net.",
    ),
    "evaluate": LazyCommand(
        "vocalmix.training.cli_train:evaluate_command",
        "Mean absolute error per target (physical units) on held-out songs, CNN vs the training-mean baseline.",
    ),
    "dataset": LazyCommand("vocalmix.training.cli_dataset:dataset_app", "Build and inspect training datasets."),
}

_APP_SETTINGS = dict(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def load_lazy_command(name: str) -> click.Command:
    """Import the code of lazy command ``name`` and build its click command."""
    module_name, attribute = LAZY_COMMANDS[name].target.split(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        single = typer.Typer(**_APP_SETTINGS)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _LazyGroup(TyperGroup):
    """The top-level command group: :data:`LAZY_COMMANDS` are listed by name and help, and loaded when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in LAZY_COMMANDS if name not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            self.commands[cmd_name] = load_lazy_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:
                if not self.commands[name].hidden:
                    rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:  # listed without importing it
                short = click.Command(name, help=LAZY_COMMANDS[name].help).get_short_help_str(limit)
                rows.append((name, short))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="vocalmix",
    help="Automatic mixing of a lead vocal with a backing track, with readable IEM plug-in settings.",
    no_args_is_help=True,
    cls=_LazyGroup,
    **_APP_SETTINGS,
)


def _version_callback(value: bool):
    if value:
        typer.echo(f"vocalmix {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print informational messages."),
):
    """vocalmix decides EQ, compression, reverb and level for a vocal over a backing track and renders the mix."""
    _configure_logging(logging.INFO if verbose else logging.WARNING)


def _configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("vocalmix: %(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def _fmt(value: float, digits: int = 1, none: str = "-") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return none
    return f"{value:.{digits}f}"


@app.command()
def analyze(
    files: list[Path] = typer.Argument(..., help="Audio files to measure."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table."),
    sample_rate: int = typer.Option(44100, "--rate", help="Working sample rate in Hz (files are resampled to it)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
):
    """Measure loudness (LUFS), loudness range (LU), true peak (dBTP) and tempo (BPM) of audio files."""
    from . import analysis
    from .audio import load_audio
    from .errors import AudioFileError

    if not 8000 <= sample_rate <= 192000:
        raise InputError(f"--rate {sample_rate} Hz is outside 8000-192000 Hz")
    progress = Progress(quiet or len(files) == 1)
    rows, errors = [], []
    for number, path in enumerate(files, start=1):
        progress(f"measuring {path} ({number} of {len(files)})")
        try:
            audio = load_audio(path, sample_rate)
        except AudioFileError as exc:  # report it, measure the rest, exit 2 at the end
            typer.echo(f"vocalmix: error: {exc}", err=True)
            errors.append({"file": str(path), "error": exc.problem})
            continue
        x = audio.samples
        tempo = analysis.estimate_tempo(x, sample_rate)
        loudness = analysis.integrated_loudness(x, sample_rate)
        gated = loudness <= analysis.SILENCE_LUFS  # silent, or entirely below the -70 LUFS gate
        rows.append(
            {
                "file": str(path),
                "duration_s": round(audio.duration_s, 3),
                "sample_rate_hz": audio.original_rate,
                "channels": audio.original_channels,
                # None (JSON null) where there is nothing to measure, never the internal -200 floor.
                "integrated_loudness_lufs": None if gated else loudness,
                "loudness_range_lu": None if gated else analysis.loudness_range(x, sample_rate),
                "true_peak_dbtp": _level_or_none(analysis.true_peak(x, sample_rate)),
                "sample_peak_dbfs": _level_or_none(analysis.sample_peak(x)),
                "tempo_bpm": tempo if math.isfinite(tempo) else None,
            }
        )
    if as_json:
        document = {"vocalmix_version": __version__, "files": rows}
        if errors:
            document["errors"] = errors
        typer.echo(json.dumps(document, indent=2))
    elif rows:
        header = f"{'file':<40} {'dur s':>7} {'LUFS':>7} {'LRA LU':>7} {'dBTP':>7} {'BPM':>7}"
        typer.echo(header)
        typer.echo("-" * len(header))
        for r in rows:
            name = r["file"] if len(r["file"]) <= 40 else "..." + r["file"][-37:]
            typer.echo(
                f"{name:<40} {r['duration_s']:>7.2f} {_fmt(r['integrated_loudness_lufs'], none='silent'):>7} "
                f"{_fmt(r['loudness_range_lu'], none='silent'):>7} {_fmt(r['true_peak_dbtp'], none='-inf'):>7} "
                f"{_fmt(r['tempo_bpm']):>7}"
            )
    if errors:
        raise typer.Exit(2)


def _level_or_none(db: float):
    from .analysis import SILENCE_DB

    return None if db <= SILENCE_DB else db


@app.command()
def render(
    vocal_path: Path = typer.Argument(..., metavar="VOCAL", help="The raw lead vocal (any format libsndfile reads)."),
    backing_path: Path = typer.Argument(..., metavar="BACKING", help="The finished backing track."),
    output: Path = typer.Option(..., "--output", "-o", help="Mix to write (.wav or .flac)."),
    method: Optional[str] = typer.Option(
        None,
        "--method",
        "-m",
        help="How settings are decided: rules (default), cnn or cnn-e2e; or waveunet (the network mixes the audio "
        "itself, no settings).",
    ),
    settings_file: Optional[Path] = typer.Option(
        None,
        "--settings",
        help="Render these settings (JSON) instead of deciding them; --loudness and --ceiling still apply.",
    ),
    relevel: bool = typer.Option(
        False, "--relevel", help="With --settings: decide the vocal level again on that chain (to --relative-loudness)."
    ),
    fill_defaults: bool = typer.Option(
        False,
        "--fill-defaults",
        help="With --settings: take settings the file leaves out from the defaults (named in a warning) instead of "
        "refusing it.",
    ),
    model: Optional[Path] = typer.Option(
        None, "--model", help="Model folder for --method cnn, cnn-e2e or waveunet (default: the shipped models)."
    ),
    relative_loudness: Optional[float] = typer.Option(
        None,
        "--relative-loudness",
        help="Vocal minus backing loudness, LU [default: -1.77; the earlier study used -0.5].",
    ),
    target_lra: Optional[float] = typer.Option(
        None, "--target-lra", help="Vocal loudness range the compressor aims below, LU [default: 16.36]."
    ),
    reverb_mode: Optional[str] = typer.Option(
        None,
        "--reverb-mode",
        help="tempo (default): reverb time from tempo; return-level: also set dry/wet so the reverb sits 14 LU below "
        "the mix.",
    ),
    tempo: Optional[float] = typer.Option(
        None, "--tempo", help="Tempo in BPM instead of estimating it from the backing."
    ),
    loudness: Optional[float] = typer.Option(
        None, "--loudness", help="Normalise the mix to this integrated loudness (LUFS), with a true-peak limiter."
    ),
    ceiling: Optional[float] = typer.Option(
        None, "--ceiling", help="Highest true peak of the mix as written, dBTP [default: -1, or the settings file's]."
    ),
    reverb_ir_max: Optional[float] = typer.Option(
        None,
        "--reverb-ir-max",
        help="Longest reverb impulse response, seconds [default: 20]; a warning says when a setting's decay is cut by "
        "it.",
    ),
    tail: Optional[str] = typer.Option(
        None,
        "--tail",
        help="Keep the reverb tail past the end of the inputs: 'auto' (until it has decayed by 60 dB, at most 30 s) or "
        "seconds. Off by default, so the output is as long as the input.",
    ),
    stems: bool = typer.Option(
        False, "--stems", help="Also write <out>.vocal.wav and <out>.backing.wav, which sum to the mix."
    ),
    export_dir: Optional[Path] = typer.Option(
        None, "--export", help="Also export the settings as plug-in presets to this folder."
    ),
    sample_format: str = typer.Option("pcm24", "--format", help="Sample format: pcm16, pcm24 or float (WAV only)."),
    rate: str = typer.Option(
        "input", "--rate", help="Output sample rate: 'input' (the backing's) or 'working' (44.1 kHz)."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs (never the inputs)."),
    max_minutes: float = typer.Option(20.0, "--max-minutes", help="Refuse inputs longer than this (minutes)."),
    engine: str = typer.Option(
        "dsp",
        "--engine",
        help="What renders the vocal chain: dsp (vocalmix's models) or iem (the installed IEM plug-ins, package "
        "iem-plugin-suite-vst).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
):
    """Decide settings for VOCAL over BACKING, render the mix, and write it with its settings."""
    from .render import RenderRequest, run_render

    request = RenderRequest(
        vocal_path=vocal_path,
        backing_path=backing_path,
        output=output,
        method=method,
        settings_file=settings_file,
        model=model,
        relative_loudness=relative_loudness,
        target_lra=target_lra,
        reverb_mode=reverb_mode,
        tempo=tempo,
        loudness=loudness,
        ceiling=ceiling,
        relevel=relevel,
        fill_defaults=fill_defaults,
        tail=tail,
        reverb_ir_max=reverb_ir_max,
        stems=stems,
        export_dir=export_dir,
        sample_format=sample_format,
        rate=rate,
        force=force,
        max_minutes=max_minutes,
        engine=engine,
    )
    progress = Progress(quiet)
    with compile_notice(progress):
        result = run_render(request, progress=progress)
    for path in result.written:
        typer.echo(str(path))


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("vocalmix-demo"), "--out", "-o", help="Folder for the demo files."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite files from an earlier demo."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
):
    """Write a synthesised demo vocal and backing (no recordings) and mix them with the rules."""
    from .audio import write_audio
    from .demo import demo_backing, demo_vocal
    from .render import RenderRequest, run_render

    progress = Progress(quiet)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress("synthesising the demo vocal and backing (generated in code, not recordings)")
    vocal_path = write_audio(out_dir / "demo_vocal.wav", demo_vocal(), 44100, force=force)
    backing_path = write_audio(out_dir / "demo_backing.wav", demo_backing(), 44100, force=force)
    request = RenderRequest(
        vocal_path=vocal_path, backing_path=backing_path, output=out_dir / "demo_mix.wav", stems=True, force=force
    )
    with compile_notice(progress):
        result = run_render(request, progress=progress)
    for path in [vocal_path, backing_path, *result.written]:
        typer.echo(str(path))


@app.command("batch")
def batch(
    manifest: Path = typer.Argument(
        ..., metavar="MANIFEST.csv", help="CSV with columns vocal, backing, optional output and per-song options."
    ),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the mixes, their settings and batch_summary.csv."
    ),
    workers: int = typer.Option(1, "--jobs", "-j", help="Worker processes (each pays the start-up once)."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Render on a Ray cluster at ADDR ('local' starts one here)."
    ),
    method: str = typer.Option(
        "rules", "--method", "-m", help="How settings are decided, unless a row says otherwise."
    ),
    loudness: Optional[float] = typer.Option(None, "--loudness", help="Normalise every mix to this loudness (LUFS)."),
    ceiling: float = typer.Option(-1.0, "--ceiling", help="Highest true peak of every mix, dBTP."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
):
    """Render many songs listed in a CSV; finished songs are skipped, failures are listed in a summary."""
    from .batch import batch_command_body

    defaults = {"method": method, "loudness": loudness, "ceiling": ceiling}
    code = batch_command_body(manifest, out_dir, workers, ray_address, defaults, Progress(quiet))
    if code:
        raise typer.Exit(code)


@app.command("verify")
def verify(
    preset_dir: Path = typer.Argument(
        ..., metavar="PRESET_DIR", help="A folder written by vocalmix export (or render --export)."
    ),
    vocal_path: Path = typer.Argument(
        ..., metavar="VOCAL", help="A vocal to render both ways (folded to mono, 44.1 kHz)."
    ),
    tolerance: float = typer.Option(
        -60.0, "--tolerance", help="Largest difference (dB re the signal) a stage may show."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
):
    """Render VOCAL through the presets in PRESET_DIR with the installed IEM plug-ins and with vocalmix, and print
    the difference per stage (needs the package iem-plugin-suite-vst)."""
    from .audio import WORKING_RATE, load_audio, to_mono
    from .iem_engine import find_plugin_dir, verify_presets

    find_plugin_dir()
    progress = Progress(quiet)
    progress(f"loading {vocal_path}")
    vocal = to_mono(load_audio(vocal_path, WORKING_RATE, allow_silent=False).samples)
    rows = verify_presets(preset_dir, vocal, WORKING_RATE, progress=progress)
    failed = [r for r in rows if r["stage_db"] > tolerance or r["chain_db"] > tolerance]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "vocalmix_version": __version__,
                    "preset_dir": str(preset_dir),
                    "vocal": str(vocal_path),
                    "tolerance_db": tolerance,
                    "ok": not failed,
                    # -inf (sample-identical) is not JSON: null stands for it
                    "stages": [{k: (None if v == float("-inf") else v) for k, v in r.items()} for r in rows],
                },
                indent=2,
            )
        )
    else:
        typer.echo(f"{'stage':<11} {'plug-in':<15} {'stage dB':>9} {'chain dB':>9}")
        for r in rows:
            mark = "  differs" if r in failed else ""
            shown = ["same" if v == float("-inf") else _fmt(v) for v in (r["stage_db"], r["chain_db"])]
            typer.echo(f"{r['stage']:<11} {r['plugin']:<15} {shown[0]:>9} {shown[1]:>9}{mark}")
        typer.echo(
            f"difference of vocalmix from the plug-ins, dB relative to the signal (same: sample-identical); "
            f"tolerance {tolerance:g} dB"
        )
    if failed:
        typer.echo(f"vocalmix: {', '.join(r['plugin'] for r in failed)} differ by more than {tolerance:g} dB", err=True)
        raise typer.Exit(1)


@app.command("settings")
def settings_table(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List every setting with its unit, range and default."""
    from .settings import describe

    rows = describe()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return

    def shown(value):
        return (
            "null"
            if value is None
            else str(value).lower()
            if isinstance(value, bool)
            else f"{value:g}"
            if isinstance(value, (int, float))
            else str(value)
        )

    header = f"{'setting':<30} {'default':>10} {'unit':<5} {'range':<14} meaning; rule"
    typer.echo(header)
    typer.echo("-" * len(header))
    for r in rows:
        span = f"[{r['min']:g}, {r['max']:g}]" if r["min"] is not None else ""
        rule = f"; {r['rule']}" if r["rule"] else ""
        typer.echo(f"{r['name']:<30} {shown(r['default']):>10} {r['unit']:<5} {span:<14} {r['description']}{rule}")


def _register_optional_commands() -> None:
    """Commands whose code lives in other parts of the package."""
    try:
        from .cli_export import export_command, import_command
    except ImportError:  # pragma: no cover - part not installed yet
        pass
    else:
        app.command("export")(export_command)
        app.command("import")(import_command)
    from .compare import compare_command
    from .listening.cli import listening_app

    app.command("compare")(compare_command)
    app.add_typer(listening_app, name="listening-test")


_register_optional_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn failures into one line and an exit code."""
    from .memory import keep_freed_memory, skip_huge_page_advice

    keep_freed_memory()  # song-sized buffers are reused, not faulted in anew (vocalmix/memory.py)
    skip_huge_page_advice()  # first touches of large arrays without huge-page stalls (vocalmix/memory.py)
    _configure_logging(logging.WARNING)
    with signals_as_interrupts() as caught:  # SIGTERM cleans up like Ctrl-C
        return _run_app(argv, caught)


def _run_app(argv: list[str] | None, caught) -> int:
    try:
        app(args=argv, prog_name="vocalmix", standalone_mode=True)
    except SystemExit as exc:
        if caught.signum is not None:  # typer turns an interrupt into exit code 130, silently
            typer.echo(caught.message, err=True)
            return caught.exit_code
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except VocalmixError as exc:
        if os.environ.get("VOCALMIX_DEBUG"):
            raise
        typer.echo(f"vocalmix: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo(caught.message, err=True)
        return caught.exit_code
    except MemoryError:
        typer.echo("vocalmix: error: out of memory (try a shorter file)", err=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("VOCALMIX_DEBUG"):
            raise
        typer.echo(
            f"vocalmix: internal error: {type(exc).__name__}: {exc} (set VOCALMIX_DEBUG=1 for details)", err=True
        )
        return 1
    return 0


def run() -> None:
    sys.exit(main())
