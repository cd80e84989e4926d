"""Reading built datasets: the stable interface between the data pipeline and the models.

A dataset folder made by ``vocalmix dataset build`` (or :func:`vocalmix.training.build.build_synthetic`)
holds

- ``manifest.json``: format version, vocalmix version, feature settings, seed, the
  song splits ``{"train": [...], "val": [...], "test": [...]}``, per task the shard
  files and block counts per split, and the songs dropped as outliers;
- ``shards/<task>-<split>-<NNNN>.pt``: ``torch.save`` dicts with ``features``
  ``(N, 2, 128, 64)`` (stored as float16 to halve the disk; read back as float32),
  ``targets`` ``(N, k)`` float32 in physical units, ``songs`` (song id per block)
  and, for the EQ task, ``changed`` ``(N, 9)`` bool.

The tasks, their targets and ranges are defined with the networks, in
:mod:`vocalmix.nets.cnn_targets` (inference reads them too); the feature blocks in
:mod:`vocalmix.features`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from vocalmix.errors import InputError
from vocalmix.features import DEFAULT_FEATURES
from vocalmix.nets.cnn_targets import TASKS, check_task

__all__ = [
    "FORMAT_VERSION",
    "FEATURE_SHAPE",
    "SPLITS",
    "TaskData",
    "read_manifest",
    "load_split",
]

FORMAT_VERSION = 1
FEATURE_SHAPE = DEFAULT_FEATURES.block_shape  # (2, 128, 64)
SPLITS = ("train", "val", "test")


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
        raise InputError(
            f"{path}: dataset format {manifest.get('format_version')!r} is not supported "
            f"(expected {FORMAT_VERSION}); rebuild it"
        )
    return manifest


def load_split(dataset_dir: str | Path, task: str, split: str) -> TaskData:
    """Every block of ``task`` in ``split`` ("train", "val" or "test") of a built dataset."""
    check_task(task)
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
