"""Building a dataset: songs -> per-song results -> shards + manifest.

The build is split so that it can be parallel, distributed and resumable:

1. :func:`process_song` turns one song into its feature blocks and targets. It is a pure
   function of (song, config): its random draws come from a generator seeded with
   (build seed, song id), so any executor gives identical results.
2. An executor maps it over the songs: ``serial`` (in this process), ``process`` (a local
   process pool, the default) or ``ray`` (one Ray task per song on an existing cluster or
   a local instance). Only the driver writes files.
3. Each finished song is written to ``OUT/work/<song>.pt`` atomically (temporary file,
   then rename), and each further part of its EQ examples to ``OUT/work/<song>.eqNNNN.pt``;
   a part with a work file is never processed again, which is what makes a killed build
   resumable. Memory stays bounded whatever the EQ count: parts are separate tasks, the
   driver keeps only a few results in flight and packs the parts one at a time, and a
   build whose estimated peak does not fit the available memory is refused before any
   work (:func:`check_memory`). ``OUT/build.json`` records the settings, and a resume with
   different settings is refused.
4. When every song is done, the work files are packed into
   ``OUT/shards/<task>-<split>-<NNNN>.pt`` (atomic, songs in sorted order) and
   ``manifest.json`` is written last, so a folder with a manifest is always complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import vocalmix
from vocalmix.errors import InputError, VocalmixError
from vocalmix.features import DEFAULT_FEATURES, FeatureSettings, MelFrontend, clip_features
from vocalmix.files import write_atomic
from vocalmix.jsonable import jsonable
from vocalmix.nets.cnn_targets import OCTAVE_CENTRES_HZ, REVERB_TARGETS, TASKS

from . import targets as T
from .data import FORMAT_VERSION, SPLITS, read_manifest
from .datasets import Song, split_songs, synthetic_songs
from .reverb_estimation import ReverbEstimator
from .synthesis import BatchRenderer, synthetic_song

__all__ = ["BuildConfig", "process_song", "build_dataset", "build_synthetic", "dataset_info", "EXECUTORS"]

EXECUTORS = ("serial", "process", "ray")
WORK_DIR = "work"
SHARD_DIR = "shards"
# EQ examples are made in parts of at most this many (BuildConfig.eq_part_examples), each its
# own task and work file, so a worker's memory (and each result sent back to the driver)
# does not grow with --eq-count.
EQ_PART_EXAMPLES = 512
# Inside a part, clips are cut and degraded this many at a time.
EQ_BATCH = 64


@dataclass
class BuildConfig:
    """Settings that determine a build's content (recorded in ``build.json`` and the manifest).

    ``eq_per_song``: synthetic raw vocals per song for the EQ task (the research made
    73,900 from 100 songs, about 739 per song). ``eq_clip_frames``: frames of vocal
    around each EQ example, from which the first voiced block is kept.
    ``random_gain_db``: see :func:`vocalmix.features.clip_features`.
    ``reverb_estimator``: the estimator's state (see
    :class:`vocalmix.training.reverb_estimation.ReverbEstimator`) used to label songs
    without known settings; without one, only songs with known settings (synthetic)
    get reverb blocks. ``eq_part_examples``: EQ examples per task; a song with more is
    split into parts (see :func:`process_eq_part`), which bounds a worker's memory.
    """

    seed: int = 0
    features: FeatureSettings = DEFAULT_FEATURES
    tasks: tuple[str, ...] = tuple(TASKS)
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    eq_per_song: int = 739
    eq_clip_frames: int = 128
    random_gain_db: float = 0.0
    shard_blocks: int = 2048
    reverb_estimator: dict | None = field(default=None, repr=False)
    eq_part_examples: int = EQ_PART_EXAMPLES

    def fingerprint(self) -> dict:
        """What must match for a build to be resumed (JSON-able)."""
        d = asdict(self)
        d["features"] = self.features.to_dict()
        d["tasks"] = list(self.tasks)
        d["split_fractions"] = list(self.split_fractions)
        est = d.pop("reverb_estimator")
        d["reverb_estimator_sha1"] = _state_digest(est) if est is not None else None
        if self.eq_parts <= 1:
            d.pop("eq_part_examples")  # one part: the same build as before parts existed
        return d

    @property
    def eq_parts(self) -> int:
        """Tasks per song: part 0 holds the song's blocks and its first EQ examples."""
        if "eq" not in self.tasks or self.eq_per_song <= 0:
            return 1
        return math.ceil(self.eq_per_song / self.eq_part_examples)

    def eq_range(self, part: int) -> tuple[int, int]:
        """The EQ examples ``[start, stop)`` of one part."""
        if "eq" not in self.tasks:
            return 0, 0
        start = part * self.eq_part_examples
        return start, max(start, min(self.eq_per_song, start + self.eq_part_examples))


def _state_digest(state: dict) -> str:
    h = hashlib.sha1()
    for key in sorted(state.get("weights", {})):
        h.update(key.encode())
        h.update(state["weights"][key].detach().cpu().numpy().tobytes())
    h.update(json.dumps(state.get("meta", {}), sort_keys=True, default=str).encode())
    return h.hexdigest()


def song_seed(seed: int, song_id: str) -> int:
    """The seed of one song's random draws: a hash of (build seed, song id)."""
    return int(hashlib.sha256(f"{seed}\0{song_id}".encode()).hexdigest()[:15], 16)


# ---------------------------------------------------------------------------------------
# One song
# ---------------------------------------------------------------------------------------


def _load(song: Song, sr: int):
    """``(vocal, backing, known reverb settings or None)``."""
    if song.kind == "synthetic":
        s = synthetic_song(song.synthetic_seed, song.seconds, sr)
        return s["vocal"], s["backing"], s["reverb"]
    vocal, backing = song.load(sr)
    return vocal, backing, None


def _eq_examples(
    vocal_mono: np.ndarray, backing_mono: np.ndarray, config: BuildConfig, generator: torch.Generator, count: int
):
    """``count`` EQ blocks of one song: ``(features (n, 2, 128, 64) float16, target_db (n, 9), changed (n, 9))``.

    Clips are cut and degraded :data:`EQ_BATCH` at a time, so memory does not grow with ``count``
    beyond the float16 blocks returned.
    """
    s = config.features
    empty = (
        torch.zeros((0, *s.block_shape), dtype=torch.float16),
        torch.zeros((0, 9)),
        torch.zeros((0, 9), dtype=torch.bool),
    )
    if count <= 0:
        return empty
    frontend = MelFrontend(s)
    with torch.no_grad():
        _, loudness = frontend(torch.from_numpy(vocal_mono)[None])
    voiced = (loudness[0] >= s.gate_lufs).to(torch.int64)
    window = min(config.eq_clip_frames, voiced.numel())
    if window < s.block_frames:
        return empty
    # Starts (in frames) whose window holds at least one block of voiced frames.
    counts = torch.nn.functional.conv1d(voiced[None, None].float(), torch.ones(1, 1, window))[0, 0]
    starts = torch.nonzero(counts >= s.block_frames)[:, 0]
    if starts.numel() == 0:
        return empty
    pick = starts[torch.randint(starts.numel(), (count,), generator=generator)]
    # A preroll lets the peak filters' start-up transient pass before the kept samples.
    preroll = 8192
    clip_len = s.n_fft + (window - 1) * s.hop
    padded_v = torch.from_numpy(np.pad(vocal_mono, (preroll, 0)))
    backing = torch.from_numpy(backing_mono)
    renderer = BatchRenderer(s.sample_rate, device="cpu", seed=int(torch.randint(2**31, (1,), generator=generator)))
    feats, tgts, changed = [], [], []
    for i in range(0, count, EQ_BATCH):
        first = pick[i : i + EQ_BATCH] * s.hop
        clips = torch.stack([padded_v[f : f + preroll + clip_len] for f in first.tolist()])[:, None, :]
        back = torch.stack([backing[f : f + clip_len] for f in first.tolist()])[:, None, :]
        with torch.no_grad():
            degraded, d = renderer.eq_degrade(clips)
        blocks, owner = clip_features(
            degraded[:, :, preroll:],
            back,
            s,
            random_gain_db=config.random_gain_db,
            generator=generator,
            return_owner=True,
        )
        # Keep the first block of each example.
        first_of_owner = torch.ones_like(owner, dtype=torch.bool)
        first_of_owner[1:] = owner[1:] != owner[:-1]
        feats.append(blocks[first_of_owner].to(torch.float16))
        tgts.append(d.target_db[owner[first_of_owner]])
        changed.append(d.changed[owner[first_of_owner]])
    return torch.cat(feats), torch.cat(tgts), torch.cat(changed)


def process_song(song: Song, config: BuildConfig) -> dict:
    """Everything one song contributes, as a dict of CPU tensors and plain values.

    ``{"id", "blocks": (n, 2, 128, 64) float16, "measures": {...}, "targets": {task: (k,) or
    None}, "dropped": {task: reason}, "eq": {"features", "targets", "changed"}, "seconds"}``.
    The song's blocks serve the level, compression and reverb tasks (one target per song).
    """
    # One intra-op thread everywhere: the summation order of torch's kernels depends on the
    # thread count, and every executor must give bit-identical shards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _process_song(song, config)
    finally:
        torch.set_num_threads(threads)


def _process_song(song: Song, config: BuildConfig) -> dict:
    s = config.features
    generator = torch.Generator().manual_seed(song_seed(config.seed, song.id))
    vocal, backing, known_reverb = _load(song, s.sample_rate)
    n = min(vocal.shape[-1], backing.shape[-1])
    vocal, backing = vocal[:, :n], backing[:, :n]
    vocal_mono = vocal.mean(0).astype(np.float32)
    backing_mono = backing.mean(0).astype(np.float32)
    result: dict = {"id": song.id, "seconds": n / s.sample_rate, "measures": {}, "targets": {}, "dropped": {}}
    with torch.no_grad():
        blocks = clip_features(vocal_mono, backing_mono, s, random_gain_db=config.random_gain_db, generator=generator)
    result["blocks"] = blocks.to(torch.float16)

    scalar_targets = (
        ("level", "relative_loudness_lu", lambda: T.relative_loudness_lu(vocal, backing, s.sample_rate)),
        ("compression", "loudness_range_lu", lambda: T.vocal_loudness_range_lu(vocal, s.sample_rate)),
    )
    for task, measure, compute in scalar_targets:
        if task not in config.tasks:
            continue
        value = compute()
        result["measures"][measure] = value
        reason = T.outlier_reason(measure, value)
        result["targets"][task] = None if reason else torch.tensor([value], dtype=torch.float32)
        if reason:
            result["dropped"][task] = reason
    if "reverb" in config.tasks:
        if known_reverb is not None:
            settings, source = known_reverb, "known"
        elif config.reverb_estimator is not None:
            settings, source = (
                ReverbEstimator.cached(config.reverb_estimator).predict(vocal, s.sample_rate),
                "estimated",
            )
        else:
            settings, source = None, None
        if settings is None:
            result["targets"]["reverb"] = None
            result["dropped"]["reverb"] = "no reverb estimator given and no known settings"
        else:
            result["targets"]["reverb"] = torch.tensor([settings[k] for k in REVERB_TARGETS], dtype=torch.float32)
            result["measures"]["reverb"] = dict(settings, source=source)
    if "eq" in config.tasks:
        start, stop = config.eq_range(0)
        f, t, c = _eq_examples(vocal_mono, backing_mono, config, generator, stop - start)
        result["eq"] = {"features": f.to(torch.float16), "targets": t.to(torch.float32), "changed": c}
    return result


def process_eq_part(song: Song, config: BuildConfig, part: int) -> dict:
    """EQ examples of part ``part`` >= 1 of a song: ``{"id", "part", "eq": {...}}``.

    Each part draws from its own generator (build seed, song id, part), so parts can run
    anywhere, in any order, and the result is the same.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = config.features
        generator = torch.Generator().manual_seed(song_seed(config.seed, f"{song.id}\0eq{part}"))
        vocal, backing, _ = _load(song, s.sample_rate)
        n = min(vocal.shape[-1], backing.shape[-1])
        start, stop = config.eq_range(part)
        f, t, c = _eq_examples(
            vocal[:, :n].mean(0).astype(np.float32),
            backing[:, :n].mean(0).astype(np.float32),
            config,
            generator,
            stop - start,
        )
        return {
            "id": song.id,
            "part": part,
            "eq": {"features": f.to(torch.float16), "targets": t.to(torch.float32), "changed": c},
        }
    finally:
        torch.set_num_threads(threads)


def _run_task(song: Song, config: BuildConfig, part: int) -> dict:
    try:
        result = process_song(song, config) if part == 0 else process_eq_part(song, config, part)
    except VocalmixError as exc:
        return {"id": song.id, "part": part, "error": str(exc)}
    result["part"] = part
    return result


def _process_in_worker(song: Song, config: BuildConfig, part: int = 0) -> dict:
    # Each worker is one of several processes on the machine: one thread each avoids
    # oversubscribing the cores.
    torch.set_num_threads(1)
    return _run_task(song, config, part)


# ---------------------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------------------


def _run_serial(tasks, config):
    for song, part in tasks:
        yield _run_task(song, config, part)


def _run_process_pool(tasks, config, jobs):
    # "spawn" gives workers a clean interpreter (no inherited torch threads or locks).
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        # A few tasks in flight per worker, not all of them: a finished future holds its
        # result, so submitting everything at once would keep every result in the driver.
        queue = iter(tasks)
        pending = set()
        while True:
            for song, part in queue:
                pending.add(pool.submit(_process_in_worker, song, config, part))
                if len(pending) >= 2 * jobs:
                    break
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()


def _run_ray(tasks, config, address, jobs):
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'vocalmix[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs = {"address": address} if address and address != "local" else {"num_cpus": jobs}
        ray.init(
            ignore_reinit_error=True, include_dashboard=False, logging_level="ERROR", log_to_driver=False, **kwargs
        )
        started = True
    try:
        remote = ray.remote(num_cpus=1)(_process_in_worker)
        config_ref = ray.put(config)
        pending = [remote.remote(song, config_ref, part) for song, part in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------


def _save_atomic(obj, path: Path) -> None:
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def _write_json_atomic(obj, path: Path) -> None:
    write_atomic(path, json.dumps(jsonable(obj), indent=2) + "\n")


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, total: int, done: int, enabled: bool, description: str = "songs"):
        self.bar = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(description, total=total, completed=done)

    def advance(self, text: str | None = None):
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=text or None)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def _check_resume(out: Path, fingerprint: dict, songs_digest: str) -> None:
    build_file = out / "build.json"
    record = {"fingerprint": fingerprint, "songs_sha1": songs_digest}
    if build_file.exists():
        try:
            previous = json.loads(build_file.read_text())
        except json.JSONDecodeError:
            previous = None
        if previous != json.loads(json.dumps(record)):
            raise InputError(
                f"{out}: holds a build with other settings or songs; choose a new folder or pass --force to start over"
            )
    else:
        _write_json_atomic(record, build_file)


def build_dataset(
    songs: list[Song],
    out: str | Path,
    config: BuildConfig,
    executor: str = "process",
    jobs: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    force: bool = False,
    source_info: dict | None = None,
    reverb_estimator_info: dict | None = None,
    keep_work: bool = True,
) -> dict:
    """Build (or resume building) a dataset of ``songs`` into ``out``; returns the manifest.

    ``executor`` is "serial", "process" (``jobs`` worker processes, default: all cores) or
    "ray" (``ray_address`` of a running cluster, or None / "local" for a local instance).
    """
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    unknown = set(config.tasks) - set(TASKS)
    if unknown:
        raise InputError(f"unknown task(s) {', '.join(sorted(unknown))}; choose from {', '.join(TASKS)}")
    ids = [s.id for s in songs]
    if len(set(ids)) != len(ids):
        raise InputError("two songs have the same id; song ids must be unique")
    jobs = jobs or os.cpu_count() or 1
    remote = executor == "ray" and ray_address not in (None, "local")  # workers elsewhere: only the driver here
    check_memory(songs, config, 0 if remote else jobs, executor)
    out = Path(out)
    if force and out.exists():
        for name in ("manifest.json", "build.json", WORK_DIR, SHARD_DIR):
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    (out / WORK_DIR).mkdir(parents=True, exist_ok=True)
    (out / SHARD_DIR).mkdir(exist_ok=True)
    songs_digest = hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()
    _check_resume(out, config.fingerprint(), songs_digest)
    (out / "manifest.json").unlink(missing_ok=True)  # the folder is incomplete until packing ends

    by_id = {s.id: s for s in songs}
    work = {s.id: out / WORK_DIR / f"{s.file_stem}.pt" for s in songs}
    # Leftover temporary files of a killed build are never read; remove them.
    for tmp in (out / WORK_DIR).glob(".*.part"):
        tmp.unlink(missing_ok=True)
    parts = config.eq_parts
    todo = [(by_id[i], part) for i in sorted(ids) for part in range(parts) if not _work_path(work[i], part).exists()]
    failed: dict[str, str] = {}
    bar = _Progress(
        len(songs) * parts, len(songs) * parts - len(todo), progress, "songs" if parts == 1 else "song parts"
    )
    jobs = jobs or os.cpu_count() or 1
    try:
        if not todo:
            results = iter(())
        elif executor == "serial" or (executor == "process" and (jobs <= 1 or len(todo) == 1)):
            results = _run_serial(todo, config)
        elif executor == "process":
            results = _run_process_pool(todo, config, jobs)
        else:
            results = _run_ray(todo, config, ray_address, jobs)
        for result in results:
            if "error" in result:
                failed[result["id"]] = result["error"]
            else:
                _save_atomic(result, _work_path(work[result["id"]], result.get("part", 0)))
            del result  # the driver keeps no result once it is on disk
            bar.advance()
    finally:
        bar.close()

    manifest = _pack(out, songs, config, failed, work, source_info, reverb_estimator_info)
    if not keep_work:
        for p in work.values():
            for part in range(parts):
                _work_path(p, part).unlink(missing_ok=True)
    return manifest


# Peak memory of one worker task (scripts/bench_dataset_memory.py: 1.14 GB for part 0 of a
# 30 s song, 1.25 GB for 120 s, 1.14 GB for a later EQ part of 512 examples), rounded up:
# the interpreter with torch, a part of EQ examples, and the whole-song features of part 0,
# which grow with the song's length.
WORKER_BASE_BYTES = 1.2e9
WORKER_BYTES_PER_SONG_SECOND = 2e6
# The driver holds up to one shard of blocks per task and split while packing (float16
# blocks, plus the copy made when a shard is cut).
BLOCK_BYTES = 2 * 2 * 128 * 64


def estimated_memory(songs: list[Song], config: BuildConfig, jobs: int, executor: str) -> dict:
    """Bytes a build needs at its peak: ``{"worker", "workers", "driver", "total", "longest_s"}``."""
    longest = max((_song_seconds(s) for s in songs), default=0.0)
    worker = WORKER_BASE_BYTES + WORKER_BYTES_PER_SONG_SECOND * longest
    buffers = len(config.tasks) * len(SPLITS) * config.shard_blocks * BLOCK_BYTES * 2
    local_workers = {"serial": 0, "process": jobs, "ray": jobs}[executor]
    driver = (worker if executor == "serial" else WORKER_BASE_BYTES) + buffers
    return {
        "worker": worker,
        "workers": local_workers,
        "driver": driver,
        "total": driver + local_workers * worker,
        "longest_s": longest,
    }


def _song_seconds(song: Song) -> float:
    if song.kind == "synthetic":
        return song.seconds
    seconds = 0.0
    for path in (song.vocal, *song.backing):
        try:
            info = sf.info(path)
            seconds = max(seconds, info.frames / info.samplerate)
        except Exception:  # noqa: BLE001 - loading the song reports what is wrong with it
            continue
    return seconds


def available_memory() -> float | None:
    """Bytes the system can give without swapping (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(
    songs: list[Song], config: BuildConfig, jobs: int, executor: str, available: float | None = None
) -> dict:
    """Refuse, before any work, a build whose estimated peak does not fit in the available memory."""
    need = estimated_memory(songs, config, jobs, executor)
    available = available_memory() if available is None else available
    if available is not None and need["total"] > available:
        fit = int((available - need["driver"]) // need["worker"]) if need["workers"] else 0
        advice = f"use --jobs {fit}" if fit >= 1 else "use shorter songs or a smaller --shard-blocks"
        raise InputError(
            f"dataset build needs about {need['total'] / 1e9:.1f} GB ({need['workers']} worker(s) x "
            f"{need['worker'] / 1e9:.1f} GB for songs up to {need['longest_s']:.0f} s, plus "
            f"{need['driver'] / 1e9:.1f} GB for packing shards of {config.shard_blocks} blocks), more than the "
            f"{available / 1e9:.1f} GB available; {advice}"
        )
    return need


def _work_path(main: Path, part: int) -> Path:
    """Work file of one part of a song: the song's own file for part 0, ``<stem>.eqNNNN.pt`` after."""
    return main if part == 0 else main.with_name(f"{main.stem}.eq{part:04d}.pt")


def _pack(
    out: Path,
    songs: list[Song],
    config: BuildConfig,
    failed: dict,
    work: dict,
    source_info: dict | None,
    reverb_estimator_info: dict | None,
) -> dict:
    done_ids = [
        s.id
        for s in songs
        if s.id not in failed and all(_work_path(work[s.id], part).exists() for part in range(config.eq_parts))
    ]
    splits = split_songs([s for s in songs if s.id in set(done_ids)], config.seed, config.split_fractions)
    split_of = {i: name for name, ids in splits.items() for i in ids}
    shard_dir = out / SHARD_DIR
    written: set[str] = set()
    tasks_entry: dict = {}
    dropped: dict = {t: {} for t in config.tasks}
    measures: dict = {}
    buffers = {(t, sp): [] for t in config.tasks for sp in SPLITS}
    shard_lists = {(t, sp): [] for t in config.tasks for sp in SPLITS}
    counts = {(t, sp): 0 for t in config.tasks for sp in SPLITS}
    song_counts = {(t, sp): 0 for t in config.tasks for sp in SPLITS}

    def flush(task, split, final=False):
        buf = buffers[(task, split)]
        while buf and (final or sum(len(b["songs"]) for b in buf) >= config.shard_blocks):
            # Cut exactly shard_blocks blocks (or the rest at the end) into one shard.
            take, taken, rest = config.shard_blocks, [], []
            for b in buf:
                n = len(b["songs"])
                if take <= 0:
                    rest.append(b)
                elif n <= take:
                    taken.append(b)
                    take -= n
                else:
                    taken.append({k: (v[:take] if k != "songs" else v[:take]) for k, v in b.items()})
                    rest.append({k: (v[take:] if k != "songs" else v[take:]) for k, v in b.items()})
                    take = 0
            name = f"{task}-{split}-{len(shard_lists[(task, split)]):04d}.pt"
            shard = {
                "format_version": FORMAT_VERSION,
                "task": task,
                "split": split,
                "target_names": TASKS[task],
                "features": torch.cat([b["features"] for b in taken]),
                "targets": torch.cat([b["targets"] for b in taken]),
                "songs": [s for b in taken for s in b["songs"]],
            }
            if task == "eq":
                shard["changed"] = torch.cat([b["changed"] for b in taken])
            _save_atomic(shard, shard_dir / name)
            shard_lists[(task, split)].append(name)
            written.add(name)
            buf[:] = rest
            if not final and sum(len(b["songs"]) for b in buf) < config.shard_blocks:
                break

    for song_id in sorted(done_ids):
        result = torch.load(work[song_id], map_location="cpu", weights_only=False)
        split = split_of[song_id]
        measures[song_id] = jsonable(result["measures"])
        blocks = result["blocks"]
        for task in config.tasks:
            if task == "eq":
                total = 0
                # Part 0 is in the song's own result; later parts are read one at a time.
                for part in range(config.eq_parts):
                    eq = (
                        result["eq"]
                        if part == 0
                        else torch.load(_work_path(work[song_id], part), map_location="cpu", weights_only=False)["eq"]
                    )
                    n = eq["features"].shape[0]
                    if n:
                        buffers[(task, split)].append(
                            {
                                "features": eq["features"],
                                "targets": eq["targets"],
                                "changed": eq["changed"],
                                "songs": [song_id] * n,
                            }
                        )
                        counts[(task, split)] += n
                        total += n
                        flush(task, split)
                if total:
                    song_counts[(task, split)] += 1
                else:
                    dropped[task][song_id] = "no stretch of voiced frames long enough for a block"
            else:
                target = result["targets"].get(task)
                if target is None:
                    dropped[task][song_id] = result["dropped"].get(task, "no target")
                    continue
                n = blocks.shape[0]
                if n == 0:
                    dropped[task][song_id] = "fewer than one block of vocal frames above the gate"
                    continue
                buffers[(task, split)].append(
                    {"features": blocks, "targets": target[None].expand(n, -1).clone(), "songs": [song_id] * n}
                )
                counts[(task, split)] += n
                song_counts[(task, split)] += 1
            flush(task, split)
    for task in config.tasks:
        for split in SPLITS:
            flush(task, split, final=True)
        tasks_entry[task] = {
            "targets": TASKS[task],
            "shards": {sp: shard_lists[(task, sp)] for sp in SPLITS},
            "blocks": {sp: counts[(task, sp)] for sp in SPLITS},
            "songs": {sp: song_counts[(task, sp)] for sp in SPLITS},
        }
    # Shards of an earlier, differently-cut pack would otherwise linger.
    for p in shard_dir.glob("*.pt"):
        if p.name not in written:
            p.unlink()
    for tmp in shard_dir.glob(".*.part"):
        tmp.unlink(missing_ok=True)

    manifest = {
        "format_version": FORMAT_VERSION,
        "vocalmix_version": vocalmix.__version__,
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seed": config.seed,
        "features": config.features.to_dict(),
        "feature_shape": list(config.features.block_shape),
        "build": {k: v for k, v in config.fingerprint().items() if k not in ("features",)},
        "source": source_info or {},
        "reverb_estimator": reverb_estimator_info,
        "eq": {
            "centres_hz": list(OCTAVE_CENTRES_HZ),
            "bands_changed": 4,
            "gain_range_db": [-15.0, 15.0],
            "q": 1.0,
            "filter": "MultiEQ peak (vocalmix.dsp.eq)",
        },
        "splits": splits,
        "tasks": tasks_entry,
        "dropped": {t: {"count": len(d), "songs": d} for t, d in dropped.items()},
        "failed": failed,
        "measures": measures,
    }
    _write_json_atomic(manifest, out / "manifest.json")
    return manifest


# ---------------------------------------------------------------------------------------
# Conveniences
# ---------------------------------------------------------------------------------------


def build_synthetic(
    out: Path,
    n_songs: int = 6,
    seconds: float = 8.0,
    seed: int = 0,
    eq_per_song: int = 4,
    executor: str = "serial",
    progress: bool = False,
) -> Path:
    """Build a small, valid dataset of synthetic songs with known targets (for tests); returns ``out``.

    Songs are harmonic "vocals" (vibrato, syllable envelopes) over drums + bass + chords,
    mixed at known relative loudness, with a known amount of level riding (LRA) and
    reverberated by FdnReverb with known random settings, so every task's target is known
    by construction (see :mod:`vocalmix.training.synthesis`). Splits are by song. Takes a
    few seconds on a CPU.
    """
    songs = synthetic_songs(n_songs, seconds, seed)
    config = BuildConfig(seed=seed, eq_per_song=eq_per_song, shard_blocks=256)
    build_dataset(
        songs,
        out,
        config,
        executor=executor,
        progress=progress,
        source_info={"layout": "synthetic", "n_songs": n_songs, "seconds": seconds},
    )
    return Path(out)


def dataset_info(out: str | Path) -> dict:
    """A summary of a built dataset: splits, blocks and songs per task and split, drops."""
    m = read_manifest(out)
    shard_bytes = sum(p.stat().st_size for p in (Path(out) / SHARD_DIR).glob("*.pt"))
    return {
        "path": str(out),
        "format_version": m["format_version"],
        "vocalmix_version": m.get("vocalmix_version"),
        "created": m.get("created"),
        "seed": m.get("seed"),
        "source": m.get("source", {}),
        "songs": {sp: len(ids) for sp, ids in m["splits"].items()},
        "tasks": {
            t: {"blocks": e["blocks"], "songs": e["songs"], "shards": sum(len(v) for v in e["shards"].values())}
            for t, e in m["tasks"].items()
        },
        "dropped": {t: d["count"] for t, d in m.get("dropped", {}).items()},
        "failed": len(m.get("failed", {})),
        "shard_mb": round(shard_bytes / 1e6, 2),
        "features": m.get("features"),
        "reverb_estimator": m.get("reverb_estimator"),
    }
