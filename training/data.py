"""Reading built datasets: the stable interface between the data pipeline and the models.

A dataset folder made by ``vocalmix dataset build`` (or :func:`make_synthetic_dataset`)
holds

- ``manifest.json``: format version, vocalmix version, feature settings, seed, the
  song splits ``{"train": [...], "val": [...], "test": [...]}``, per task the shard
  files and block counts per split, and the songs dropped as outliers;
- ``shards/<task>-<split>-<NNNN>.pt``: ``torch.save`` dicts with ``features``
  ``(N, 2, 128, 64)`` (stored as float16 to halve the disk; read back as float32),
  ``targets`` ``(N, k)`` float32 in physical units, ``songs`` (song id per block)
  and, for the EQ task, ``changed`` ``(N, 9)`` bool.

Tasks and their targets (physical units):

- ``level``: ``relative_loudness_lu``, vocal minus backing integrated loudness (LU);
- ``compression``: ``loudness_range_lu``, the vocal's EBU loudness range (LU);
- ``eq``: ``gain_<f>hz`` for the 9 octave centres, the peak-filter gains (dB) that undo
  a random degradation (0 where the band was left alone);
- ``reverb``: the 10 FdnReverb settings (names as in :class:`vocalmix.settings.ReverbSettings`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vocalmix.errors import InputError
from vocalmix.settings import ReverbSettings, spec_of

from .features import DEFAULT_FEATURES, FeatureSettings, clip_features

__all__ = [
    "FORMAT_VERSION",
    "FEATURE_SHAPE",
    "OCTAVE_CENTRES_HZ",
    "TASKS",
    "TARGET_RANGES",
    "SPLITS",
    "TaskData",
    "read_manifest",
    "load_split",
    "normalise_targets",
    "denormalise_targets",
    "song_features",
    "make_synthetic_dataset",
]

FORMAT_VERSION = 1
FEATURE_SHAPE = DEFAULT_FEATURES.block_shape  # (2, 128, 64)
SPLITS = ("train", "val", "test")

#: Octave-band centres of the EQ task (Hz), as in the research's masking EQ.
OCTAVE_CENTRES_HZ = (63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000)

REVERB_TARGETS = [
    "room_size", "reverb_time_s", "low_cutoff_hz", "low_q", "low_gain_db_per_s",
    "high_cutoff_hz", "high_q", "high_gain_db_per_s", "dry_wet_pct", "fade_in_s",
]

TASKS: dict[str, list[str]] = {
    "level": ["relative_loudness_lu"],
    "compression": ["loudness_range_lu"],
    "eq": [f"gain_{c}hz" for c in OCTAVE_CENTRES_HZ],
    "reverb": list(REVERB_TARGETS),
}

#: Target name -> (minimum, maximum, scale); ``scale`` is "linear" or "log".
TARGET_RANGES: dict[str, tuple[float, float, str]] = {
    "relative_loudness_lu": (-10.0, 6.0, "linear"),
    "loudness_range_lu": (5.0, 30.0, "linear"),
    **{name: (-15.0, 15.0, "linear") for name in TASKS["eq"]},
    **{name: (spec_of(ReverbSettings, name).minimum, spec_of(ReverbSettings, name).maximum,
              spec_of(ReverbSettings, name).scale) for name in REVERB_TARGETS},
}


@dataclass
class TaskData:
    """All blocks of one task and split.

    ``features`` ``(N, 2, 128, 64)`` float32; ``targets`` ``(N, k)`` float32 in physical
    units (columns as ``TASKS[task]``); ``songs`` the song id of each block; ``changed``
    ``(N, 9)`` bool for the EQ task (which bands were degraded), else ``None``.
    """

    task: str
    split: str
    features: torch.Tensor
    targets: torch.Tensor
    songs: list[str]
    changed: torch.Tensor | None = None

    @property
    def target_names(self) -> list[str]:
        return TASKS[self.task]

    def __len__(self) -> int:
        return int(self.features.shape[0])


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def read_manifest(dataset_dir: str | Path) -> dict:
    """The parsed ``manifest.json`` of a dataset folder (``InputError`` if missing or unreadable)."""
    path = Path(dataset_dir) / "manifest.json"
    if not path.is_file():
        raise InputError(f"{dataset_dir}: no manifest.json (not a built dataset, or the build has not finished)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: dataset format {manifest.get('format_version')!r} is not supported "
                         f"(expected {FORMAT_VERSION}); rebuild it")
    return manifest


def load_split(dataset_dir: str | Path, task: str, split: str) -> TaskData:
    """Every block of ``task`` in ``split`` ("train", "val" or "test") of a built dataset."""
    _check_task(task)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    manifest = read_manifest(dataset_dir)
    entry = manifest.get("tasks", {}).get(task)
    if entry is None:
        raise InputError(f"{dataset_dir}: the dataset has no {task!r} task")
    features, targets, changed, songs = [], [], [], []
    for name in entry["shards"].get(split, []):
        shard = torch.load(Path(dataset_dir) / "shards" / name, map_location="cpu", weights_only=True)
        features.append(shard["features"].to(torch.float32))
        targets.append(shard["targets"].to(torch.float32))
        songs.extend(shard["songs"])
        if task == "eq":
            changed.append(shard["changed"].to(torch.bool))
    k = len(TASKS[task])
    return TaskData(
        task=task,
        split=split,
        features=torch.cat(features) if features else torch.zeros((0, *FEATURE_SHAPE)),
        targets=torch.cat(targets) if targets else torch.zeros((0, k)),
        songs=songs,
        changed=(torch.cat(changed) if changed else torch.zeros((0, k), dtype=torch.bool)) if task == "eq" else None,
    )


def _range_tensors(task: str, like: torch.Tensor):
    names = TASKS[task]
    lo = torch.tensor([TARGET_RANGES[n][0] for n in names], dtype=like.dtype, device=like.device)
    hi = torch.tensor([TARGET_RANGES[n][1] for n in names], dtype=like.dtype, device=like.device)
    is_log = torch.tensor([TARGET_RANGES[n][2] == "log" for n in names], device=like.device)
    return lo, hi, is_log


def normalise_targets(task: str, t: torch.Tensor) -> torch.Tensor:
    """Physical targets ``(..., k)`` -> [0, 1] (log-scaled where the range is "log").

    Values outside the range map outside [0, 1]; nothing is clipped here.
    """
    _check_task(task)
    t = torch.as_tensor(t, dtype=torch.float32)
    lo, hi, is_log = _range_tensors(task, t)
    lin = (t - lo) / (hi - lo)
    safe_lo = torch.where(is_log, lo, torch.ones_like(lo))
    safe_hi = torch.where(is_log, hi, torch.full_like(hi, math.e))
    safe_t = torch.where(is_log, torch.clamp(t, min=1e-12), torch.ones_like(t))
    log = (torch.log(safe_t) - torch.log(safe_lo)) / (torch.log(safe_hi) - torch.log(safe_lo))
    return torch.where(is_log, log, lin)


def denormalise_targets(task: str, u: torch.Tensor) -> torch.Tensor:
    """[0, 1] ``(..., k)`` -> physical units; ``u`` is clipped to [0, 1] first, so results stay in range."""
    _check_task(task)
    u = torch.clamp(torch.as_tensor(u, dtype=torch.float32), 0.0, 1.0)
    lo, hi, is_log = _range_tensors(task, u)
    lin = lo + u * (hi - lo)
    safe_lo = torch.where(is_log, lo, torch.ones_like(lo))
    safe_hi = torch.where(is_log, hi, torch.ones_like(hi))
    log = torch.exp(torch.log(safe_lo) + u * (torch.log(safe_hi) - torch.log(safe_lo)))
    # exp(log(x)) can land a rounding error outside the range; the promise is "in range".
    return torch.minimum(torch.maximum(torch.where(is_log, log, lin), lo), hi)


def song_features(vocal, backing, sr: int, settings: FeatureSettings | None = None,
                  device: str | torch.device | None = None) -> torch.Tensor:
    """Feature blocks ``(n_blocks, 2, 128, 64)`` of a whole song, for inference.

    ``vocal`` ``(1, T)`` and ``backing`` ``(2 or 1, T)`` numpy or torch at ``sr`` Hz (resampled
    to the feature rate if different; a shorter input is padded with silence to the longer).
    The pipeline is exactly the one the dataset build uses. A song with fewer than 64 frames
    of vocal above the gate gives zero blocks.
    """
    settings = settings or _settings_or_default(None)
    vocal = _to_numpy_2d(vocal)
    backing = _to_numpy_2d(backing)
    if sr != settings.sample_rate:
        from vocalmix.audio import resample

        vocal = resample(vocal, sr, settings.sample_rate)
        backing = resample(backing, sr, settings.sample_rate)
    n = max(vocal.shape[-1], backing.shape[-1])
    vocal = np.pad(vocal, ((0, 0), (0, n - vocal.shape[-1])))
    backing = np.pad(backing, ((0, 0), (0, n - backing.shape[-1])))
    return clip_features(vocal.mean(0), backing.mean(0), settings, device=device or "cpu")


def _to_numpy_2d(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"expected (channels, samples), got shape {x.shape}")
    return x


def _settings_or_default(manifest: dict | None) -> FeatureSettings:
    if manifest and "features" in manifest:
        return FeatureSettings.from_dict(manifest["features"])
    return DEFAULT_FEATURES


def make_synthetic_dataset(out_dir: str | Path, n_songs: int = 6, seconds: float = 8.0, seed: int = 0,
                           eq_per_song: int = 4) -> Path:
    """Build a small, valid dataset of synthetic songs with known targets (for tests).

    Songs are harmonic "vocals" (vibrato, syllable envelopes) over drums + bass + chords,
    mixed at known relative loudness, with a known amount of level riding (LRA) and
    reverberated by FdnReverb with known random settings, so every task's target is known
    by construction (see :mod:`vocalmix.training.synthesis`). Splits are by song. Takes a
    few seconds on a CPU. Returns ``out_dir``.
    """
    from .build import build_synthetic

    return build_synthetic(Path(out_dir), n_songs=n_songs, seconds=seconds, seed=seed, eq_per_song=eq_per_song)
