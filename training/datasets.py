"""Song sources and song-level splits.

Supported sources (``discover_songs`` detects which one a path is):

- **MUSDB18-HQ layout**: ``<root>/{train,test}/<song>/{vocals,drums,bass,other}.wav``
  (``mixture.wav`` is ignored); the backing is drums + bass + other.
- **Folder of songs**: ``<root>/<song>/<vocal> + <root>/<song>/<backing>`` where the vocal
  file is named ``vocals.*`` or ``vocal.*`` and the backing ``accompaniment.*``,
  ``backing.*`` or ``instrumental.*`` (any format libsndfile reads).
- **CSV manifest**: a ``.csv`` file with columns ``vocal`` and ``backing`` (paths,
  relative to the CSV's folder or absolute) and optionally ``id`` and ``split``.
- **MIR-1K-style stereo files**: a folder of stereo audio files with the accompaniment
  on the left channel and the vocal on the right.

A :class:`Song` is a small picklable description; :meth:`Song.load` reads the stems at
the working rate. Splits are by song, never by segment: :func:`split_songs` orders songs
by a hash of (seed, song id), so the assignment of a song does not depend on which other
songs are present, and a CSV ``split`` column overrides it.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from vocalmix.audio import WORKING_RATE, load_audio
from vocalmix.errors import InputError

from .data import SPLITS
from .synthesis import synthetic_song

#: The dry vocals of ``shared/audio/dry`` whose licence (CC BY 4.0) allows shipping weights
#: trained on them, with the credit each needs; every shipped model trains only on these and
#: on synthetic audio (see shared/audio/README.md).
CC_BY_DRY_VOCALS = {
    "vocadito_1": "vocadito track 1 (Bittner et al., ISMIR LBD 2021), CC BY 4.0",
    "vocalset_male1_vibrato": "VocalSet, singer male1, vibrato (Wilkins et al., ISMIR 2018), CC BY 4.0",
    "vocalset_male1_spoken": "VocalSet, singer male1, spoken (Wilkins et al., ISMIR 2018), CC BY 4.0",
    "vocalset_female1_straight": "VocalSet, singer female1, straight (Wilkins et al., ISMIR 2018), CC BY 4.0",
    "vocalset_female1_vibrato": "VocalSet, singer female1, vibrato (Wilkins et al., ISMIR 2018), CC BY 4.0",
}

__all__ = ["Song", "discover_songs", "split_songs", "synthetic_songs", "LAYOUTS"]

LAYOUTS = ("auto", "musdb", "folders", "csv", "mir1k", "synthetic")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"}
VOCAL_NAMES = ("vocals", "vocal")
BACKING_NAMES = ("accompaniment", "backing", "instrumental")
MUSDB_BACKING = ("drums", "bass", "other")


@dataclass(frozen=True)
class Song:
    """Where one song's stems are.

    ``kind`` is "stems" (``vocal`` path and one or more ``backing`` paths summed),
    "mir1k" (``vocal`` is a stereo file: left backing, right vocal) or "synthetic"
    (generated from ``synthetic_seed``; ``seconds`` long). ``split`` is a split forced by
    the source (CSV column), else ``None``.
    """

    id: str
    kind: str
    vocal: str = ""
    backing: tuple[str, ...] = ()
    split: str | None = None
    synthetic_seed: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def file_stem(self) -> str:
        """A filesystem-safe, unique name for this song's work files."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.id)[:60]
        return f"{safe}-{hashlib.sha1(self.id.encode()).hexdigest()[:10]}"

    def load(self, sample_rate: int = WORKING_RATE) -> tuple[np.ndarray, np.ndarray]:
        """``(vocal (C, T), backing (C, T))`` float32 at ``sample_rate``, equal lengths."""
        if self.kind == "synthetic":
            song = synthetic_song(self.synthetic_seed, self.seconds, sample_rate)
            return song["vocal"], song["backing"]
        if self.kind == "mir1k":
            audio = load_audio(self.vocal, sample_rate).samples
            if audio.shape[0] != 2:
                raise InputError(f"{self.vocal}: MIR-1K-style files must be stereo (left backing, right vocal)")
            return audio[1:2].copy(), audio[0:1].copy()
        vocal = load_audio(self.vocal, sample_rate).samples
        parts = [load_audio(p, sample_rate).samples for p in self.backing]
        n = max([vocal.shape[-1], *(p.shape[-1] for p in parts)])
        channels = max(p.shape[0] for p in parts)
        backing = np.zeros((channels, n), dtype=np.float32)
        for p in parts:
            backing[:, : p.shape[-1]] += p if p.shape[0] == channels else np.repeat(p, channels, axis=0)
        vocal = np.pad(vocal, ((0, 0), (0, n - vocal.shape[-1])))
        return vocal.astype(np.float32), backing


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _find_stem(folder: Path, names: tuple[str, ...]) -> Path | None:
    files = {p.stem.lower(): p for p in _audio_files(folder)}
    for name in names:
        if name in files:
            return files[name]
    return None


def _musdb_songs(root: Path) -> list[Song]:
    songs = []
    for part in ("train", "test"):
        for folder in sorted(p for p in (root / part).glob("*") if p.is_dir()):
            stems = [_find_stem(folder, (name,)) for name in ("vocals", *MUSDB_BACKING)]
            if any(s is None for s in stems):
                missing = [n for n, s in zip(("vocals", *MUSDB_BACKING), stems) if s is None]
                raise InputError(f"{folder}: MUSDB18-HQ song without {', '.join(missing)}")
            songs.append(
                Song(
                    id=f"{part}/{folder.name}",
                    kind="stems",
                    vocal=str(stems[0]),
                    backing=tuple(str(s) for s in stems[1:]),
                )
            )
    return songs


def _folder_songs(root: Path) -> list[Song]:
    songs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        vocal, backing = _find_stem(folder, VOCAL_NAMES), _find_stem(folder, BACKING_NAMES)
        if vocal is None and backing is None:
            continue
        if vocal is None or backing is None:
            what = "vocal (vocals.* or vocal.*)" if vocal is None else "backing (accompaniment.*, backing.*)"
            raise InputError(f"{folder}: no {what} file")
        songs.append(Song(id=folder.name, kind="stems", vocal=str(vocal), backing=(str(backing),)))
    return songs


def _csv_songs(path: Path) -> list[Song]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable CSV ({exc})") from None
    if not rows:
        raise InputError(f"{path}: the CSV has no rows")
    missing = {"vocal", "backing"} - set(rows[0])
    if missing:
        raise InputError(f"{path}: the CSV needs columns 'vocal' and 'backing' (missing {', '.join(sorted(missing))})")
    songs, seen = [], set()
    for i, row in enumerate(rows, start=2):

        def resolve(p: str) -> str:
            named = Path(p.strip())
            return str(named if named.is_absolute() else path.parent / named)

        song_id = (row.get("id") or "").strip() or Path(row["vocal"].strip()).parent.name or f"row{i}"
        if song_id in seen:
            song_id = f"{song_id}#{i}"
        seen.add(song_id)
        split = (row.get("split") or "").strip() or None
        if split is not None and split not in SPLITS:
            raise InputError(f"{path}, line {i}: split {split!r} is not one of {', '.join(SPLITS)}")
        for column in ("vocal", "backing"):
            if not Path(resolve(row[column])).is_file():
                raise InputError(f"{path}, line {i}: {column} file {row[column]!r} not found")
        songs.append(
            Song(id=song_id, kind="stems", vocal=resolve(row["vocal"]), backing=(resolve(row["backing"]),), split=split)
        )
    return songs


def _mir1k_songs(root: Path) -> list[Song]:
    songs = []
    for p in _audio_files(root):
        try:
            channels = sf.info(str(p)).channels
        except RuntimeError:
            raise InputError(f"{p}: not a readable audio file") from None
        if channels != 2:
            raise InputError(
                f"{p}: MIR-1K-style files must be stereo (left backing, right vocal), "
                f"this one has {channels} channel(s)"
            )
        songs.append(Song(id=p.stem, kind="mir1k", vocal=str(p)))
    return songs


def detect_layout(source: Path) -> str:
    """Which of :data:`LAYOUTS` ``source`` looks like (``InputError`` if none)."""
    if source.is_file():
        if source.suffix.lower() == ".csv":
            return "csv"
        raise InputError(f"{source}: a dataset source is a folder or a .csv manifest")
    if not source.is_dir():
        raise InputError(f"{source}: not found")
    if (source / "train").is_dir() or (source / "test").is_dir():
        for part in ("train", "test"):
            for folder in (source / part).glob("*") if (source / part).is_dir() else []:
                if folder.is_dir() and _find_stem(folder, ("vocals",)) and _find_stem(folder, ("drums",)):
                    return "musdb"
    if any(p.is_dir() and _find_stem(p, VOCAL_NAMES) for p in source.iterdir()):
        return "folders"
    if _audio_files(source):
        return "mir1k"
    raise InputError(
        f"{source}: no songs found (expected MUSDB18-HQ train/test folders, song folders with "
        "vocals.* and accompaniment.*, a .csv manifest, or MIR-1K-style stereo files)"
    )


def discover_songs(source: str | Path, layout: str = "auto") -> list[Song]:
    """All songs of ``source`` in a stable order (``InputError`` if none or malformed)."""
    source = Path(source)
    if layout not in LAYOUTS or layout == "synthetic":
        choices = ", ".join(name for name in LAYOUTS if name != "synthetic")
        raise InputError(f"unknown layout {layout!r}; choose one of {choices}")
    if not source.exists():
        raise InputError(f"{source}: not found")
    layout = detect_layout(source) if layout == "auto" else layout
    songs = {"musdb": _musdb_songs, "folders": _folder_songs, "csv": _csv_songs, "mir1k": _mir1k_songs}[layout](source)
    if not songs:
        raise InputError(f"{source}: no songs found in the {layout} layout")
    return songs


def synthetic_songs(n_songs: int, seconds: float, seed: int) -> list[Song]:
    """``n_songs`` synthetic songs; song ``i`` is generated from ``(seed, i)``."""
    return [
        Song(id=f"synthetic-{i:04d}", kind="synthetic", synthetic_seed=seed * 100003 + i, seconds=seconds)
        for i in range(n_songs)
    ]


def _rank(seed: int, song_id: str) -> str:
    return hashlib.sha256(f"{seed}\0{song_id}".encode()).hexdigest()


def split_songs(
    songs: list[Song], seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> dict[str, list[str]]:
    """Song ids per split ``{"train": [...], "val": [...], "test": [...]}``.

    Songs with a forced split keep it; the rest are ordered by a hash of (seed, id) and cut
    by ``fractions`` (rounded, with at least one song in val and test when there are three
    or more free songs). Each list is sorted.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise InputError(f"split fractions must be three non-negative numbers, got {fractions}")
    total = sum(fractions)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    free = []
    for song in songs:
        (out[song.split].append(song.id) if song.split else free.append(song.id))
    free.sort(key=lambda i: _rank(seed, i))
    n = len(free)
    n_val = round(n * fractions[1] / total)
    n_test = round(n * fractions[2] / total)
    if n >= 3:
        n_val = max(n_val, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_train = max(0, n - n_val - n_test)
    out["train"] += free[:n_train]
    out["val"] += free[n_train : n_train + n_val]
    out["test"] += free[n_train + n_val :]
    return {k: sorted(v) for k, v in out.items()}
