"""``vocalmix dataset ...``: build and inspect training datasets, train the reverb estimator.

``vocalmix.cli`` lists ``dataset`` in ``LAZY_COMMANDS``: this module (and torch) is imported
only when a ``dataset`` command runs, so its imports can be plain module-level ones.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from vocalmix.audio import load_audio
from vocalmix.errors import InputError
from vocalmix.files import write_atomic
from vocalmix.methods.cnn import reverb_from_values
from vocalmix.nets.cnn_targets import TASKS
from vocalmix.settings import MixSettings

from . import build as B
from .datasets import discover_songs, synthetic_songs
from .reverb_estimation import ReverbEstimator, build_estimator, fit_impulse_response

if TYPE_CHECKING:
    from rich.progress import TaskID

dataset_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Build and inspect training datasets.",
)

_SYNTHETIC_PREFIX = "synthetic:"


def _parse_tasks(text: str) -> tuple[str, ...]:
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise InputError(f"--tasks: unknown task(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(TASKS)}")
    return tasks


def _parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(p < 0 or not math.isfinite(p) for p in parts) or sum(parts) <= 0:
        raise InputError(f"--split must be three non-negative numbers like 0.8,0.1,0.1, got {text!r}")
    return parts


@dataset_app.command("build")
def build_command(
    source: str = typer.Argument(
        ...,
        help="MUSDB18-HQ root, folder of song folders, CSV manifest, folder of "
        "MIR-1K-style stereo files, or 'synthetic:N' for N synthetic songs.",
    ),
    out: Path = typer.Argument(..., help="Dataset folder to create (or resume)."),
    layout: str = typer.Option("auto", help="auto, musdb, folders, csv or mir1k."),
    tasks: str = typer.Option("level,compression,eq,reverb", help="Comma-separated tasks to build."),
    seed: int = typer.Option(0, help="Seed of the splits and of every random draw."),
    split: str = typer.Option("0.8,0.1,0.1", help="Train, val, test fractions of the songs."),
    eq_count: int = typer.Option(
        73900,
        help="Synthetic raw vocals for the EQ task in total, spread evenly over "
        "the songs (the research made 73,900 from 100 songs).",
    ),
    reverb_estimator: Optional[Path] = typer.Option(
        None,
        help="Reverb estimator (from 'vocalmix dataset "
        "reverb-estimator') that labels the reverb task. "
        "Without it, a default one is trained first.",
    ),
    random_gain_db: float = typer.Option(
        0.0, help="Random per-channel gain augmentation of the feature blocks, up to this many dB down (0 = off)."
    ),
    shard_blocks: int = typer.Option(2048, help="Blocks per shard file."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Worker processes (default: all cores)."),
    ray: bool = typer.Option(
        False,
        "--ray",
        help="Run one Ray task per song on a local Ray instance, or on the "
        "cluster given by --ray-address (needs vocalmix[ray]).",
    ),
    ray_address: Optional[str] = typer.Option(None, help="Address of a running Ray cluster (implies --ray)."),
    serial: bool = typer.Option(False, help="Process songs one after another in this process."),
    synthetic_seconds: float = typer.Option(30.0, help="Length of each song for 'synthetic:N'."),
    force: bool = typer.Option(False, help="Start over in OUT, discarding a previous build."),
    keep_work: bool = typer.Option(True, help="Keep the per-song work files (needed to re-pack cheaply)."),
    progress: bool = typer.Option(True, help="Show a progress bar on stderr."),
):
    """Build a dataset of feature blocks and targets from SOURCE into OUT (resumable)."""
    task_list = _parse_tasks(tasks)
    fractions = _parse_fractions(split)
    if eq_count < 0:
        raise InputError("--eq-count must be 0 or more")
    if shard_blocks < 1:
        raise InputError("--shard-blocks must be at least 1")
    if jobs is not None and jobs < 1:
        raise InputError("--jobs must be at least 1")
    ray = ray or ray_address is not None
    if ray and serial:
        raise InputError("--ray and --serial exclude each other")
    if source.startswith(_SYNTHETIC_PREFIX):
        try:
            n = int(source[len(_SYNTHETIC_PREFIX) :])
        except ValueError:
            n = 0
        if n < 1:
            raise InputError(f"{source!r}: write synthetic:N with N a positive whole number")
        songs = synthetic_songs(n, synthetic_seconds, seed)
        source_info = {"layout": "synthetic", "n_songs": n, "seconds": synthetic_seconds}
    else:
        songs = discover_songs(Path(source), layout)
        source_info = {"path": str(Path(source).resolve()), "layout": layout, "n_songs": len(songs)}
    eq_per_song = math.ceil(eq_count / len(songs)) if eq_count else 0
    executor = "ray" if ray else ("serial" if serial else "process")
    # A build that cannot fit in memory is refused before any work, a reverb estimator included.
    workers = 0 if ray_address not in (None, "local") else (1 if serial else jobs or os.cpu_count() or 1)
    B.check_memory(
        songs,
        B.BuildConfig(seed=seed, tasks=task_list, eq_per_song=eq_per_song, shard_blocks=shard_blocks),
        workers,
        executor,
    )

    estimator_state, estimator_info = None, None
    needs_estimator = "reverb" in task_list and any(s.kind != "synthetic" for s in songs)
    if needs_estimator:
        if reverb_estimator is not None:
            if not reverb_estimator.is_file():
                raise InputError(f"{reverb_estimator}: reverb estimator not found")
            try:
                est = ReverbEstimator.load(reverb_estimator)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
                raise InputError(f"{reverb_estimator}: not a reverb estimator ({exc})") from None
            estimator_info = {"path": str(reverb_estimator.resolve()), **(est.meta or {})}
        else:
            out.mkdir(parents=True, exist_ok=True)
            path = out / "reverb_estimator.pt"
            if path.exists():
                est = ReverbEstimator.load(path)
            else:
                typer.echo(
                    f"no --reverb-estimator given: training a default one on synthetic renders (saved to {path})",
                    err=True,
                )
                est = build_estimator(n_settings=400, clips_per_setting=2, held_out=100, seed=seed)
                est.save(path)
            estimator_info = {"path": str(path.resolve()), **(est.meta or {})}
        estimator_state = est.state()

    config = B.BuildConfig(
        seed=seed,
        tasks=task_list,
        split_fractions=fractions,
        eq_per_song=eq_per_song,
        random_gain_db=random_gain_db,
        shard_blocks=shard_blocks,
        reverb_estimator=estimator_state,
    )
    manifest = B.build_dataset(
        songs,
        out,
        config,
        executor=executor,
        jobs=jobs,
        ray_address=ray_address,
        progress=progress,
        force=force,
        source_info=source_info,
        reverb_estimator_info=estimator_info,
        keep_work=keep_work,
    )
    _print_info(B.dataset_info(out))
    if manifest.get("failed"):
        typer.echo(
            f"{len(manifest['failed'])} song(s) could not be read; see 'failed' in {out / 'manifest.json'}", err=True
        )


def _print_info(info: dict) -> None:
    typer.echo(
        f"dataset {info['path']}  (format {info['format_version']}, vocalmix {info['vocalmix_version']}, "
        f"seed {info['seed']}, {info['shard_mb']} MB of shards)"
    )
    songs = info["songs"]
    typer.echo(
        f"songs: {songs.get('train', 0)} train, {songs.get('val', 0)} val, {songs.get('test', 0)} test"
        + (f"; {info['failed']} failed to load" if info["failed"] else "")
    )
    typer.echo(f"{'task':<12} {'train':>12} {'val':>12} {'test':>12} {'dropped':>8}   (blocks, songs in brackets)")
    for task, entry in info["tasks"].items():
        cells = [f"{entry['blocks'][s]} ({entry['songs'][s]})" for s in ("train", "val", "test")]
        typer.echo(f"{task:<12} {cells[0]:>12} {cells[1]:>12} {cells[2]:>12} {info['dropped'].get(task, 0):>8}")


@dataset_app.command("info")
def info_command(
    out: Path = typer.Argument(..., help="A dataset folder made by 'vocalmix dataset build'."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Summarise a built dataset: songs per split, blocks per task, dropped outliers."""
    info = B.dataset_info(out)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        _print_info(info)


@dataset_app.command("reverb-estimator")
def reverb_estimator_command(
    out: Path = typer.Argument(..., help="Where to save the estimator (.pt)."),
    settings: int = typer.Option(1200, help="Random reverb settings to train on."),
    clips_per_setting: int = typer.Option(2, help="Dry clips reverberated with each setting."),
    held_out: int = typer.Option(200, help="Unseen settings (and clips) to validate on."),
    dry: Optional[list[Path]] = typer.Option(
        None, help="Dry vocal files mixed in with the synthetic vocals (repeat the option for several)."
    ),
    epochs: int = typer.Option(300, help="Training epochs."),
    seed: int = typer.Option(0, help="Seed of the settings, clips and training."),
    force: bool = typer.Option(False, help="Overwrite OUT."),
):
    """Train the reverb-settings estimator on FdnReverb renders and report its validation MAE."""
    if out.exists() and not force:
        raise InputError(f"{out}: already exists (use --force to overwrite)")
    if not out.parent.exists():
        raise InputError(f"{out}: folder {out.parent} does not exist")
    if settings < 1 or held_out < 1 or clips_per_setting < 1 or epochs < 1:
        raise InputError("--settings, --held-out, --clips-per-setting and --epochs must be at least 1")
    sources = [load_audio(p).samples.mean(0) for p in (dry or [])]
    state = {"last": -1}

    def progress(done, total):
        pct = int(100 * done / total)
        if pct // 10 != state["last"]:
            state["last"] = pct // 10
            typer.echo(f"rendering training data: {done}/{total} settings", err=True)

    est = build_estimator(
        n_settings=settings,
        clips_per_setting=clips_per_setting,
        held_out=held_out,
        seed=seed,
        epochs=epochs,
        dry_sources=sources,
        progress=progress,
    )
    est.save(out)
    typer.echo(f"saved {out}; validation on {held_out} held-out settings (MAE, and MAE of the mean predictor):")
    for name, row in (est.meta or {})["validation"].items():
        typer.echo(f"  {name:<20} {row['mae']:>10.3f} {row['mean_baseline_mae']:>10.3f}")


@dataset_app.command("fit-ir")
def fit_ir_command(
    ir: Path = typer.Argument(..., help="An impulse response (audio file)."),
    steps: int = typer.Option(120, help="Gradient steps after the room-size search."),
    search_steps: int = typer.Option(25, help="Gradient steps for each candidate room size (5, 12, 20, 28)."),
    max_seconds: float = typer.Option(1.5, help="Length of the IR that is matched (s)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    settings_out: Optional[Path] = typer.Option(
        None,
        "--settings-out",
        "-o",
        help="Also write a settings file (default settings with the fitted "
        "reverb) for `vocalmix render --settings` or `vocalmix export`.",
    ),
    force: bool = typer.Option(False, help="Overwrite an existing --settings-out file."),
    progress: bool = typer.Option(True, help="Show the fitting progress on stderr."),
):
    """Fit FdnReverb settings to a known impulse response by gradient descent."""
    if steps < 1 or search_steps < 1 or max_seconds <= 0:
        raise InputError("--steps and --search-steps must be at least 1 and --max-seconds above 0")
    if settings_out is not None:
        if settings_out.exists() and not force:
            raise InputError(f"{settings_out}: already exists (use --force to overwrite)")
        if settings_out.resolve() == ir.resolve():
            raise InputError(f"{settings_out}: is the impulse response itself; choose another file")
        if not settings_out.parent.is_dir():
            raise InputError(f"{settings_out}: folder {settings_out.parent} does not exist")
    audio = load_audio(ir)
    bar = _FitProgress(ir.name) if progress else None
    try:
        result = fit_impulse_response(
            audio.samples,
            audio.sample_rate,
            steps=steps,
            search_steps=search_steps,
            max_seconds=max_seconds,
            progress=bar.update if bar else None,
        )
    finally:
        if bar:
            bar.close()
    if settings_out is not None:
        _write_fitted_settings(settings_out, result, ir)
        typer.echo(f"wrote {settings_out}", err=True)
    if as_json:
        typer.echo(json.dumps({"settings": result["settings"], "loss": result["loss"]}, indent=2))
        return
    typer.echo(f"fitted FdnReverb settings (spectrogram distance {result['loss']:.3f}):")
    for name, value in result["settings"].items():
        typer.echo(f"  {name:<20} {value:.3f}")


class _FitProgress:
    """A progress bar (steps, current distance) on stderr for `dataset fit-ir`."""

    def __init__(self, name: str):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn(f"fitting {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            TextColumn("distance {task.fields[loss]}"),
            console=Console(stderr=True),
        )
        self.task: TaskID | None = None

    def update(self, done: int, total: int, loss: float) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("fit", total=total, loss="-")
        self.bar.update(self.task, completed=done, loss=f"{loss:.3f}")

    def close(self) -> None:
        if self.task is not None:
            self.bar.stop()


def _write_fitted_settings(path: Path, result: dict, ir: Path) -> None:
    """Default settings with the fitted reverb, validated, written atomically with the user's umask."""
    settings = MixSettings()
    settings.reverb = reverb_from_values(result["settings"], replace(settings.reverb))
    text = settings.validate().to_json(
        method="fit-ir", impulse_response=str(ir.resolve()), spectrogram_distance=float(result["loss"])
    )
    write_atomic(path, text + "\n")
