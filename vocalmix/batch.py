"""``vocalmix batch``: render a catalogue of songs listed in a CSV manifest.

Each worker process imports torch and loads the JIT caches once and then renders
many songs, so start-up is paid per worker, not per song. A song is finished when
its settings file exists (``run_render`` writes it after the mix, atomically), so a
killed batch resumes where it stopped and never reads a half-written file. One
song's bad input is recorded in the summary and never stops the others.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Optional

from .errors import InputError, VocalmixError
from .files import write_atomic

log = logging.getLogger("vocalmix")

SUMMARY_NAME = "batch_summary.csv"
SUMMARY_COLUMNS = ["song", "status", "seconds", "vocal", "backing", "output", "message"]

#: Manifest column -> (RenderRequest field, converter). Empty cells take the batch-wide value.
OPTION_COLUMNS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "method": ("method", str),
    "model": ("model", Path),
    "settings": ("settings_file", Path),
    "relative_loudness": ("relative_loudness", float),
    "target_lra": ("target_lra", float),
    "reverb_mode": ("reverb_mode", str),
    "tempo": ("tempo", float),
    "loudness": ("loudness", float),
    "ceiling": ("ceiling", float),
    "stems": ("stems", lambda v: _parse_bool(v)),
    "format": ("sample_format", str),
    "rate": ("rate", str),
}
PATH_COLUMNS = {"vocal", "backing", "output"}


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "y"):
        return True
    if value in ("0", "false", "no", "n"):
        return False
    raise ValueError(f"{text!r} is not a yes/no value")


@dataclass
class BatchJob:
    """One song: its name (the output's stem), inputs, and RenderRequest options."""

    song: str
    vocal: Path
    backing: Path
    output: Path
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def settings_path(self) -> Path:
        return self.output.with_suffix("").with_name(self.output.stem + ".settings.json")


def read_manifest(manifest: Path, out_dir: Path, extension: str = ".wav") -> list[BatchJob]:
    """Parse ``manifest``; every problem names the manifest, the row and the column."""
    try:
        with open(manifest, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = [c.strip() for c in (reader.fieldnames or [])]
    except FileNotFoundError:
        raise InputError(f"{manifest}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{manifest}: cannot read as CSV ({exc})") from None
    for needed in ("vocal", "backing"):
        if needed not in columns:
            raise InputError(
                f"{manifest}: no '{needed}' column (columns are vocal, backing, optional output "
                f"and options: {', '.join(OPTION_COLUMNS)})"
            )
    unknown = [c for c in columns if c not in PATH_COLUMNS and c not in OPTION_COLUMNS]
    if unknown:
        raise InputError(
            f"{manifest}: unknown column '{unknown[0]}' (known: vocal, backing, output, {', '.join(OPTION_COLUMNS)})"
        )
    if not rows:
        raise InputError(f"{manifest}: no songs listed")
    base = manifest.resolve().parent
    jobs: list[BatchJob] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(rows, start=2):  # row 1 is the header
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"{manifest}, row {number}"
        if not row.get("vocal") or not row.get("backing"):
            raise InputError(f"{where}: 'vocal' and 'backing' must both be given")
        vocal, backing = (base / row["vocal"]), (base / row["backing"])
        name = row.get("output") or _default_name(vocal)
        output = out_dir / (name if Path(name).suffix else name + extension)
        song = output.stem
        if song in seen:
            raise InputError(f"{where}: output '{output.name}' is also row {seen[song]}'s; give an 'output' column")
        seen[song] = number
        options: dict[str, Any] = {}
        for column, (field_name, convert) in OPTION_COLUMNS.items():
            if row.get(column):
                try:
                    value = convert(row[column])
                except ValueError as exc:
                    raise InputError(f"{where}, column '{column}': {exc}") from None
                options[field_name] = base / value if isinstance(value, Path) else value
        jobs.append(BatchJob(song, vocal, backing, output, options))
    return jobs


def _default_name(vocal: Path) -> str:
    # Song folders hold vocal.wav / backing.wav: the folder names the song.
    return vocal.parent.name if vocal.stem.lower() in ("vocal", "vocals") else vocal.stem


def is_finished(job: BatchJob) -> bool:
    return job.settings_path.exists() and job.output.exists()


def render_job(job: BatchJob, defaults: dict[str, Any]) -> dict[str, Any]:
    """Render one song in this process; never raises for the song's own problems."""
    from .render import RenderRequest, run_render

    start = time.perf_counter()
    row = {"song": job.song, "vocal": str(job.vocal), "backing": str(job.backing), "output": str(job.output)}
    warnings = _WarningCollector()
    log.addHandler(warnings)
    try:
        request = RenderRequest(
            vocal_path=job.vocal, backing_path=job.backing, output=job.output, **{**defaults, **job.options}
        )
        run_render(request)
        status, message = "ok", "; ".join(warnings.messages)
    except VocalmixError as exc:
        status, message = "error", str(exc)
    except MemoryError:
        status, message = "error", "out of memory"
    except Exception as exc:  # noqa: BLE001 - one song's failure must not stop the batch
        status, message = "error", f"internal error: {type(exc).__name__}: {exc}"
    finally:
        log.removeHandler(warnings)
    return {**row, "status": status, "seconds": round(time.perf_counter() - start, 2), "message": message}


class _WarningCollector(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _worker_init(threads: int) -> None:
    import torch

    from .memory import keep_freed_memory, skip_huge_page_advice

    # A worker is the vocalmix program as much as the process that started it (vocalmix.cli.main).
    keep_freed_memory()
    skip_huge_page_advice()
    torch.set_num_threads(threads)
    logging.getLogger("vocalmix").setLevel(logging.WARNING)


@dataclass
class BatchSummary:
    rows: list[dict[str, Any]]
    path: Path

    @property
    def failed(self) -> int:
        return sum(r["status"] == "error" for r in self.rows)


def run_batch(
    jobs: list[BatchJob],
    out_dir: Path,
    defaults: dict[str, Any],
    workers: int = 1,
    ray_address: Optional[str] = None,
    progress: Callable[[str], None] = lambda m: None,
) -> BatchSummary:
    """Render every unfinished job and write ``out_dir/batch_summary.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(out_dir, os.W_OK):
        raise InputError(f"{out_dir}: output folder is not writable")
    if workers < 1:
        raise InputError(f"-j {workers}: use at least one worker")
    rows: list[dict[str, Any]] = []
    todo = []
    for job in jobs:
        if is_finished(job):
            rows.append(
                {
                    "song": job.song,
                    "status": "skipped",
                    "seconds": 0.0,
                    "vocal": str(job.vocal),
                    "backing": str(job.backing),
                    "output": str(job.output),
                    "message": "finished in an earlier run",
                }
            )
        else:
            todo.append(job)
    if rows:
        progress(f"{len(rows)} of {len(jobs)} songs already finished; rendering the other {len(todo)}")
    meter = _Meter(len(todo), progress)
    if ray_address is not None:
        results = _run_ray(todo, defaults, ray_address)
    elif workers == 1 or len(todo) <= 1:
        results = (render_job(job, defaults) for job in todo)
    else:
        results = _run_pool(todo, defaults, workers)
    for result in results:
        rows.append(result)
        meter.done(result)
    order = {job.song: i for i, job in enumerate(jobs)}
    rows.sort(key=lambda r: order[r["song"]])
    summary_path = out_dir / SUMMARY_NAME
    _write_summary(summary_path, rows)
    return BatchSummary(rows, summary_path)


def _run_pool(jobs: list[BatchJob], defaults: dict[str, Any], workers: int) -> Iterable[dict[str, Any]]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn: the parent may already hold torch's thread pools, which do not survive a fork.
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(threads,)
    ) as pool:
        pending = {pool.submit(render_job, job, defaults): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    yield future.result()
                except Exception as exc:  # a worker died (killed, out of memory): report, go on
                    yield {
                        "song": job.song,
                        "status": "error",
                        "seconds": 0.0,
                        "vocal": str(job.vocal),
                        "backing": str(job.backing),
                        "output": str(job.output),
                        "message": f"worker failed: {type(exc).__name__}: {exc}",
                    }


def _run_ray(jobs: list[BatchJob], defaults: dict[str, Any], address: str) -> Iterable[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise InputError("--ray-address needs Ray: pip install 'vocalmix[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        remote = ray.remote(num_cpus=1)(render_job)
        pending = [remote.remote(job, defaults) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()


class _Meter:
    """One progress line per finished song, with the rate so far and the time left."""

    def __init__(self, total: int, progress: Callable[[str], None]):
        self.total, self.count, self.progress = total, 0, progress
        self.start = time.perf_counter()

    def done(self, row: dict[str, Any]) -> None:
        self.count += 1
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.count * (self.total - self.count)
        status = row["status"] if row["status"] != "error" else f"error: {row['message']}"
        self.progress(
            f"[{self.count}/{self.total}] {row['song']}: {status} "
            f"({elapsed:.0f} s elapsed, about {_duration(eta)} left)"
        )


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: r.get(k, "") for k in SUMMARY_COLUMNS} for r in rows)
    write_atomic(path, buffer.getvalue())


def batch_command_body(
    manifest: Path,
    out_dir: Path,
    workers: int,
    ray_address: Optional[str],
    defaults: dict[str, Any],
    progress: Callable[[str], None],
) -> int:
    """What the CLI runs; returns the exit code (2 when any song failed)."""
    jobs = read_manifest(manifest, out_dir)
    summary = run_batch(jobs, out_dir, defaults, workers=workers, ray_address=ray_address, progress=progress)
    ok = sum(r["status"] == "ok" for r in summary.rows)
    skipped = sum(r["status"] == "skipped" for r in summary.rows)
    print(
        f"{ok} rendered, {skipped} already finished, {summary.failed} failed; summary: {summary.path}", file=sys.stderr
    )
    return 2 if summary.failed else 0
