"""Songs, mix targets and streamed raw-audio windows for the Wave-U-Net mixer.

Sources are those of :mod:`vocalmix.training.datasets` (MUSDB18-HQ, song folders, a
CSV, MIR-1K-style files) plus ``synthetic:N`` (generated songs). The target of a song
is its **reference mix**:

- MUSDB18-HQ: ``mixture.wav`` (the sum of the professional stems);
- song folders: ``mix.*`` or ``mixture.*`` next to the stems;
- CSV: a ``mix`` column (relative to the CSV's folder, or absolute).

Where a song has no reference mix (MIR-1K, synthetic songs, CSV rows without ``mix``),
``target="rules"`` (or any settings method, e.g. ``cnn``) renders one with that method
exactly as ``vocalmix render`` does with its defaults; ``target="auto"`` takes the
reference where there is one and the rules' render elsewhere. The manifest records
which target each song got.

Each song is prepared once into ``<cache>/<song>.npy``: float32 ``(5, samples)`` at
44.1 kHz holding vocal (1 channel), backing (2) and target mix (2). Training reads its
windows from these files memory-mapped, so only the windows of the current batch are
in memory, never the songs. (Disk: about 53 MB per minute of song.)
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vocalmix.audio import WORKING_RATE, load_audio, match_length, to_mono, to_stereo
from vocalmix.errors import InputError
from vocalmix.files import write_atomic
from vocalmix.methods import get_method
from vocalmix.mixing import render_mix
from vocalmix.plugins import snap_to_plugin_grids
from vocalmix.settings import OutputSettings, with_effective_fade_in

from .datasets import AUDIO_SUFFIXES, Song, discover_songs, split_songs, synthetic_songs

__all__ = ["MixSong", "discover_mix_songs", "prepare_songs", "SongCache", "TARGET_CHOICES"]

#: ``reference`` (the song's own mix), ``auto`` (reference, else the rules' render) or a method name.
TARGET_CHOICES = ("reference", "auto", "rules", "cnn")
MIX_NAMES = ("mix", "mixture")
CHANNELS = 5  # vocal, backing L/R, target L/R
SYNTHETIC_SECONDS = 20.0
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class MixSong:
    """A song's stems (:class:`Song`), its reference mix if it has one, and the target chosen."""

    song: Song
    reference: str | None
    target: str  # "reference" or a method name

    @property
    def id(self) -> str:
        return self.song.id


def _find_mix(folder: Path) -> Path | None:
    files = {p.stem.lower(): p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES}
    return next((files[n] for n in MIX_NAMES if n in files), None)


def _csv_mix_column(path: Path) -> list[str | None]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out: list[str | None] = []
    for i, row in enumerate(rows, start=2):
        value = (row.get("mix") or "").strip()
        if not value:
            out.append(None)
            continue
        p = Path(value)
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise InputError(f"{path}, line {i}: mix file {value!r} not found")
        out.append(str(p))
    return out


def _parse_synthetic(source: str) -> tuple[int, float] | None:
    m = re.fullmatch(r"synthetic:(\d+)(?::(\d+(?:\.\d+)?))?", source)
    if not m:
        return None
    return int(m.group(1)), float(m.group(2) or SYNTHETIC_SECONDS)


def discover_mix_songs(
    source: str | os.PathLike, target: str = "reference", layout: str = "auto", seed: int = 0
) -> list[MixSong]:
    """The songs of ``source`` with their targets; InputError for a song that would have none."""
    if target not in TARGET_CHOICES:
        raise InputError(f"--target {target!r}: choose one of {', '.join(TARGET_CHOICES)}")
    synthetic = _parse_synthetic(str(source))
    if synthetic is not None:
        n, seconds = synthetic
        if n < 1:
            raise InputError(f"{source}: ask for at least one synthetic song")
        songs = synthetic_songs(n, seconds, seed)
        references: list[str | None] = [None] * n
    else:
        source = Path(source)
        songs = discover_songs(source, layout)
        if source.is_file():  # CSV: rows and songs are in the same order
            references = _csv_mix_column(source)
        else:
            mixes = [None if s.kind != "stems" else _find_mix(Path(s.vocal).parent) for s in songs]
            references = [None if r is None else str(r) for r in mixes]
    out = []
    for song, reference in zip(songs, references):
        if target == "reference":
            if reference is None:
                where = song.vocal or song.id
                raise InputError(
                    f"{where}: song '{song.id}' has no reference mix (mix.* / mixture.* / a CSV 'mix' "
                    "column); use --target rules or --target auto to train on rendered mixes"
                )
            chosen = "reference"
        elif target == "auto":
            chosen = "reference" if reference is not None else "rules"
        else:
            chosen = target
        out.append(MixSong(song, reference, chosen))
    return out


def _render_target(vocal: np.ndarray, backing: np.ndarray, method_name: str) -> np.ndarray:
    """The mix ``vocalmix render --method <method_name>`` writes with its default options."""
    decision = get_method(method_name).decide(vocal, backing, WORKING_RATE)
    # As vocalmix.render: snapped to the plug-ins' grids, then the level decided last on that chain.
    settings = snap_to_plugin_grids(replace(with_effective_fade_in(decision.settings), output=OutputSettings()))
    level_target = (decision.report.get("level") or {}).get("target_relative_lu")
    return render_mix(vocal, backing, WORKING_RATE, settings, relevel_to=level_target).mix


def load_song_arrays(item: MixSong) -> np.ndarray:
    """``(5, samples)`` float32 at 44.1 kHz: vocal, backing L/R, target mix L/R."""
    vocal, backing = item.song.load(WORKING_RATE)
    vocal = to_mono(vocal) if vocal.shape[0] > 1 else vocal
    backing = to_stereo(backing, item.song.id)
    n = max(vocal.shape[-1], backing.shape[-1])
    vocal, backing = match_length(vocal, n, item.song.id), match_length(backing, n, item.song.id)
    if item.target == "reference":
        assert item.reference is not None  # discover_mix_songs gives every reference-target song its mix
        mix = to_stereo(load_audio(item.reference, WORKING_RATE).samples, item.reference)
        mix = match_length(mix, n, item.reference)
    else:
        mix = _render_target(vocal, backing, item.target)
    return np.concatenate([vocal, backing, mix]).astype(np.float32)


def _cache_name(item: MixSong) -> str:
    key = json.dumps(
        [
            item.song.id,
            item.song.vocal,
            list(item.song.backing),
            item.song.synthetic_seed,
            item.song.seconds,
            item.reference,
            item.target,
        ]
    )
    return f"{item.song.file_stem}-{hashlib.sha1(key.encode()).hexdigest()[:8]}.npy"


def prepare_songs(items: list[MixSong], cache_dir: Path, progress=lambda m: None) -> dict[str, Path]:
    """Write each song's ``.npy`` once (one song in memory at a time); returns id -> path.

    Files are written under a temporary name and renamed, so an interrupted preparation
    leaves only complete songs and resumes where it stopped.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for number, item in enumerate(items, start=1):
        path = cache_dir / _cache_name(item)
        if not path.is_file():
            what = "reference mix" if item.target == "reference" else f"target rendered by {item.target}"
            progress(f"preparing song {number}/{len(items)}: {item.id} ({what})")
            data = load_song_arrays(item)
            write_atomic(path, functools.partial(_save_npy, data=data))
        paths[item.id] = path
    return paths


def _save_npy(path: Path, data: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would append ".npy" to a name
        np.save(fh, data, allow_pickle=False)


class SongCache:
    """Memory-mapped prepared songs; :meth:`window` cuts zero-padded input/target windows."""

    def __init__(self, paths: dict[str, Path]):
        self.paths = dict(paths)
        self._maps: dict[str, np.ndarray] = {}

    def array(self, song_id: str) -> np.ndarray:
        if song_id not in self._maps:
            try:
                self._maps[song_id] = np.load(self.paths[song_id], mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise InputError(
                    f"{self.paths[song_id]}: unreadable prepared song ({exc}); delete it to redo"
                ) from None
        return self._maps[song_id]

    def length(self, song_id: str) -> int:
        return int(self.array(song_id).shape[-1])

    def window(self, song_id: str, start: int, n_in: int, n_out: int, context: int) -> tuple[np.ndarray, np.ndarray]:
        """Input ``(3, n_in)`` starting ``context`` samples before ``start`` and target ``(2, n_out)`` from ``start``;
        outside the song both are zeros, as in inference."""
        data = self.array(song_id)
        x = _slice_padded(data[:3], start - context, n_in)
        y = _slice_padded(data[3:], start, n_out)
        return x, y


def _slice_padded(data: np.ndarray, start: int, n: int) -> np.ndarray:
    out = np.zeros((data.shape[0], n), dtype=np.float32)
    lo, hi = max(start, 0), min(start + n, data.shape[-1])
    if hi > lo:
        out[:, lo - start : hi - start] = data[:, lo:hi]
    return out


def song_splits(items: list[MixSong], seed: int) -> dict[str, list[str]]:
    """By song, as the other tasks (CSV ``split`` column honoured); InputError if there is nothing to train on."""
    splits = split_songs([i.song for i in items], seed)
    if not splits["train"]:
        raise InputError("no songs in the train split (give more songs)")
    return splits


def manifest_record(source, items: list[MixSong], splits: dict[str, list[str]], seed: int) -> dict:
    return {
        "kind": "vocalmix-waveunet-data",
        "source": str(source),
        "sample_rate_hz": WORKING_RATE,
        "seed": seed,
        "splits": splits,
        "targets": {
            i.id: (
                {"kind": "reference", "path": i.reference}
                if i.target == "reference"
                else {
                    "kind": "rendered",
                    "method": i.target,
                    "options": "vocalmix render defaults (ceiling -1 dBTP, no loudness target)",
                }
            )
            for i in items
        },
    }
