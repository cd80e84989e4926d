"""Held-out evaluation of the CNN regressors against the "mean" baseline.

Mean absolute error per target, in physical units, on songs the models never
saw, laid out like the table of Li & Lerch: level (dB), loudness range (dB), EQ
gain (dB, averaged over the 9 bands, all of them, as in the paper: with 4 of 9
bands altered by U[-15, 15] dB, predicting 0 dB everywhere scores 3.33 dB), and
the 10 FdnReverb settings. The baseline predicts the training-set mean of each
target (the mean over the examples the checkpoint was trained on). A third row,
"start", scores the untrained CNN, whose output is the training mean in
normalised space (for log-scaled settings the geometric mean, which alone beats
the arithmetic mean on frequencies): only CNN below "start" is learned.

Aggregation: by default each (song, target vector) group counts once, with the
model's outputs averaged over the group's blocks before denormalising, which
is exactly what inference does with a whole song (``aggregate="song"``).
``aggregate="block"`` scores every block on its own.

Where songs are few, :func:`cross_validate` pools all splits and runs k-fold
cross-validation by song: each fold's songs are scored by models trained on the
other songs only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocalmix.errors import InputError
from vocalmix.files import write_atomic
from vocalmix.nets.checkpoints import check_compatible, load_checkpoint, model_from_checkpoint
from vocalmix.nets.mixing_cnn import TASK_OUTPUTS

from .data import read_manifest
from .train import Arrays, TrainConfig, denormalise, fit, load_arrays, manifest_sha256, predict_normalised

#: Columns of the research's table: (label, unit, task, target names averaged into it).
COLUMNS: list[tuple[str, str, str, tuple[str, ...] | None]] = [
    ("Level", "LU", "level", ("relative_loudness_lu",)),
    ("LRA", "LU", "compression", ("loudness_range_lu",)),
    ("EQ gain", "dB", "eq", None),  # None = all of the task's targets
    ("DW", "%", "reverb", ("dry_wet_pct",)),
    ("RT", "s", "reverb", ("reverb_time_s",)),
    ("FT", "s", "reverb", ("fade_in_s",)),
    ("RS", "", "reverb", ("room_size",)),
    ("LCF", "Hz", "reverb", ("low_cutoff_hz",)),
    ("LCG", "dB/s", "reverb", ("low_gain_db_per_s",)),
    ("LCQ", "", "reverb", ("low_q",)),
    ("HCF", "Hz", "reverb", ("high_cutoff_hz",)),
    ("HCG", "dB/s", "reverb", ("high_gain_db_per_s",)),
    ("HCQ", "", "reverb", ("high_q",)),
]

#: Fewer held-out songs than this per task and the table gets a warning: an MAE over a
#: handful of songs is dominated by which songs they are.
MIN_SONGS_FOR_COMPARISON = 5

#: What the rows mean, printed under the table.
ROW_LEGEND = (
    "CNN: the trained model, its outputs averaged over each song's blocks (as inference does)",
    "mean: predicts the training-set mean of each target for every song (the research's baseline)",
    "start: the untrained network, whose output is the training mean in normalised space "
    "(the geometric mean for log-scaled settings); CNN below start is what training learned",
    "paper CNN / paper mean: Li & Lerch's published figures (other data), for reference; "
    "loudness errors are in LU (1 LU = 1 dB of loudness)",
)

#: The published validation MAEs (MUSDB18-HQ test songs; level/LRA on separated MSD clips).
PUBLISHED = {
    "paper CNN": [1.64, 2.63, 4.48, 6.13, 1.006, 0.401, 7.30, 41.55, 3.62, 0.355, 3390, 5.01, 0.14],
    "paper mean": [2.13, 2.88, 3.33, 7.16, 1.007, 0.403, 7.31, 40.26, 3.65, 0.360, 3462, 5.35, 0.17],
}


@dataclass
class TaskScores:
    """Per-target MAE (physical units) of one task for the CNN and the mean baseline."""

    task: str
    names: list[str]
    cnn: np.ndarray
    mean: np.ndarray
    n_songs: int
    n_items: int
    checkpoint: str = ""
    start: np.ndarray | None = None  # the untrained CNN: mean in normalised space


@dataclass
class EvaluationResult:
    """Scores of every evaluated task; ``rows()`` gives the table, ``to_csv`` writes it."""

    scores: dict[str, TaskScores] = field(default_factory=dict)
    description: str = ""
    include_published: bool = True
    notes: list[str] = field(default_factory=list)

    def column_value(self, label: str, method: str) -> float | None:
        for col_label, _, task, names in COLUMNS:
            if col_label != label:
                continue
            s = self.scores.get(task)
            if s is None:
                return None
            values = {"CNN": s.cnn, "mean": s.mean, "start": s.start}[method]
            if values is None:
                return None
            wanted = s.names if names is None else [n for n in names if n in s.names]
            if not wanted:
                return None
            return float(np.mean([values[s.names.index(n)] for n in wanted]))
        raise KeyError(label)

    def rows(self) -> list[tuple[str, list[float | None]]]:
        rows = [(m, [self.column_value(c[0], m) for c in COLUMNS]) for m in ("CNN", "mean")]
        if any(s.start is not None for s in self.scores.values()):
            rows.append(("start", [self.column_value(c[0], "start") for c in COLUMNS]))
        if self.include_published:
            rows += [(name, list(values)) for name, values in PUBLISHED.items()]
        return rows

    def format_table(self) -> str:
        headers = ["", *[f"{c[0]} ({c[1]})" if c[1] else c[0] for c in COLUMNS]]
        body = [[name, *[_fmt(v) for v in values]] for name, values in self.rows()]
        widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]
        lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in body]
        songs = ", ".join(f"{t}: {s.n_songs} songs / {s.n_items} items" for t, s in self.scores.items())
        if self.description or songs:
            lines.append(f"{self.description}{' — ' if self.description and songs else ''}{songs}")
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"  {line}" for line in ROW_LEGEND if self.include_published or not line.startswith("paper")]
        lines += [f"warning: {w}" for w in self.warnings()]
        return "\n".join(lines)

    def warnings(self) -> list[str]:
        """One line per task scored on fewer than :data:`MIN_SONGS_FOR_COMPARISON` songs."""
        return [
            f"{t}: only {s.n_songs} song(s) scored; with fewer than {MIN_SONGS_FOR_COMPARISON} songs "
            "the comparison with the mean says little"
            for t, s in self.scores.items()
            if s.n_songs < MIN_SONGS_FOR_COMPARISON
        ]

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """Wide CSV, one row per method (CNN, mean, start, then the published rows); returns the text."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["method", *[f"{c[0]} ({c[1]})" if c[1] else c[0] for c in COLUMNS]])
        for name, values in self.rows():
            writer.writerow([name, *["" if v is None else f"{v:.6g}" for v in values]])
        text = out.getvalue()
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text)
        return text

    def per_target(self) -> list[dict]:
        """Every target of every task: task, target, CNN MAE, mean MAE (for detailed reports)."""
        return [
            {
                "task": s.task,
                "target": n,
                "cnn_mae": float(s.cnn[i]),
                "mean_mae": float(s.mean[i]),
                "n_songs": s.n_songs,
            }
            for s in self.scores.values()
            for i, n in enumerate(s.names)
        ]


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def group_predictions(data: Arrays, u_pred: np.ndarray, aggregate: str = "song") -> tuple[np.ndarray, np.ndarray]:
    """Average the normalised outputs per (song, target vector) group.

    Returns ``(u_pred, targets)`` with one row per group (``aggregate="song"``) or the
    inputs unchanged (``"block"``).
    """
    if aggregate == "block":
        return u_pred, data.targets
    if aggregate != "song":
        raise InputError(f"unknown aggregation '{aggregate}'; use song or block")
    groups: dict[tuple, list[int]] = {}
    for i, (song, target) in enumerate(zip(data.songs, data.targets)):
        groups.setdefault((song, tuple(np.round(target, 9))), []).append(i)
    keys = list(groups)
    return (
        np.stack([u_pred[groups[k]].mean(axis=0) for k in keys]),
        np.stack([data.targets[groups[k][0]] for k in keys]),
    )


def score_task(
    task: str,
    data: Arrays,
    u_pred: np.ndarray,
    train_mean: Sequence[float],
    names: list[str],
    aggregate: str = "song",
    checkpoint: str = "",
    train_mean_normalised: Sequence[float] | None = None,
) -> TaskScores:
    """MAE per target of CNN outputs ``u_pred`` (normalised) and of the constant ``train_mean`` (physical).

    With ``train_mean_normalised`` also the MAE of that constant (the untrained CNN's
    output), which separates what training learned from what the log-scale mean gives.
    """
    u_grouped, targets = group_predictions(data, u_pred, aggregate)
    physical = denormalise(task, u_grouped)
    cnn = np.abs(physical - targets).mean(axis=0)
    mean = np.abs(np.asarray(train_mean, dtype=np.float64)[None, :] - targets).mean(axis=0)
    start = None
    if train_mean_normalised is not None:
        start_physical = denormalise(task, np.asarray(train_mean_normalised, dtype=np.float64)[None, :])
        start = np.abs(start_physical - targets).mean(axis=0)
    return TaskScores(task, list(names), cnn, mean, len(set(data.songs)), len(targets), checkpoint, start)


def evaluate(
    dataset_dir: str | os.PathLike,
    models_dir: str | os.PathLike,
    tasks: Sequence[str] | None = None,
    split: str = "test",
    aggregate: str = "song",
) -> EvaluationResult:
    """Score the checkpoints ``models_dir/<task>.pt`` on the dataset's ``split``.

    Tasks without a checkpoint, absent from the dataset or without examples in the
    split are left out (their columns print as "-"); if none is left, InputError.
    """
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise InputError(f"{models_dir}: model directory not found")
    available = set(read_manifest(dataset_dir).get("tasks", {}))
    tasks = [t for t in (tasks or TASK_OUTPUTS) if t in available]
    result = EvaluationResult(description=f"{split} split of {dataset_dir}, aggregate={aggregate}")
    for task in tasks:
        path = models_dir / f"{task}.pt"
        if not path.is_file():
            continue
        payload = load_checkpoint(path)
        if payload["task"] != task:
            raise InputError(f"{path}: holds a '{payload['task']}' model, not '{task}'")
        data = load_arrays(dataset_dir, task, split)
        if len(data) == 0:
            continue
        trained_on = set(payload.get("train_songs", []))
        leaked = trained_on & set(data.songs)
        if leaked:
            raise InputError(f"{path}: was trained on {sorted(leaked)[0]}, which is in the {split} split")
        check_compatible(payload, path)
        model = model_from_checkpoint(payload, path)
        u_pred = predict_normalised(model, data.features)
        result.scores[task] = score_task(
            task,
            data,
            u_pred,
            payload["train_mean"],
            list(payload["target_names"]),
            aggregate,
            str(path),
            payload.get("train_mean_normalised"),
        )
    if not result.scores:
        raise InputError(f"{models_dir}: no checkpoint had examples to score in the {split} split of {dataset_dir}")
    return result


def load_all_splits(dataset_dir: str | os.PathLike, task: str) -> Arrays:
    """Every split of a task pooled (for cross-validation)."""
    manifest = json.loads((Path(dataset_dir) / "manifest.json").read_text())
    split_names = list(manifest.get("splits", {"train": None, "val": None, "test": None}))
    parts = [load_arrays(dataset_dir, task, s) for s in split_names]
    return Arrays.concat(parts)


def song_folds(songs: Sequence[str], folds: int, seed: int) -> list[list[str]]:
    """Distinct songs shuffled with ``seed`` and dealt round-robin into ``folds`` groups."""
    unique = sorted(set(songs))
    if folds < 2:
        raise InputError("cross-validation needs at least 2 folds")
    if len(unique) < folds:
        raise InputError(f"{folds} folds need at least {folds} songs; the data has {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    return [[unique[j] for j in order[i::folds]] for i in range(folds)]


def cross_validate(
    dataset_dir: str | os.PathLike,
    folds: int = 5,
    tasks: Sequence[str] | None = None,
    epochs: int = 30,
    seed: int = 0,
    device: str = "cpu",
    aggregate: str = "song",
    work_dir: str | os.PathLike | None = None,
    progress: bool = True,
    **train_options,
) -> EvaluationResult:
    """k-fold cross-validation by song over all splits pooled.

    For each fold, models are trained on the other folds' songs (one of those songs,
    or about 15 % of them, held out for early stopping when there are at least 4)
    and score the fold's songs; scores are pooled over folds. The mean baseline of
    each fold is the mean of that fold's training data. A task with fewer songs than
    ``folds`` uses one fold per song (and is skipped, with a note, below two songs).
    ``train_options`` go to
    :class:`~vocalmix.training.train.TrainConfig` (patience, lr, hidden, ...).
    """
    tasks = list(tasks or TASK_OUTPUTS)
    result = EvaluationResult(
        description=f"{folds}-fold cross-validation by song over {dataset_dir}, aggregate={aggregate}"
    )
    holder = tempfile.TemporaryDirectory(prefix="vocalmix-cv-") if work_dir is None else None
    root = Path(holder.name if holder else work_dir)
    try:
        for task in tasks:
            pooled = load_all_splits(dataset_dir, task)
            n_songs = len(set(pooled.songs))
            task_folds = min(folds, n_songs)
            if task_folds < 2:
                result.notes.append(f"{task}: skipped, {n_songs} song(s) cannot be cross-validated")
                continue
            if task_folds < folds:
                result.notes.append(f"{task}: {task_folds} folds (only {n_songs} songs)")
            grouped_pred, grouped_targets, mean_rows, start_rows = [], [], [], []
            names = None
            for k, test_songs in enumerate(song_folds(pooled.songs, task_folds, seed)):
                test_mask = np.isin(pooled.songs, test_songs)
                rest = pooled.subset(~test_mask)
                rest_songs = sorted(set(rest.songs))
                val_songs = []
                if len(rest_songs) >= 4:
                    n_val = max(1, round(0.15 * len(rest_songs)))
                    rng = np.random.default_rng([seed, k])
                    val_songs = [rest_songs[i] for i in rng.permutation(len(rest_songs))[:n_val]]
                val_mask = np.isin(rest.songs, val_songs)
                train_part, val_part = rest.subset(~val_mask), rest.subset(val_mask)
                config = TrainConfig(task=task, epochs=epochs, seed=seed, device=device, **train_options)
                fit_result = fit(
                    config,
                    train_part,
                    val_part,
                    root / f"fold{k}",
                    progress=progress,
                    metadata={"data_manifest_sha256": manifest_sha256(dataset_dir), "fold": k},
                )
                payload = load_checkpoint(fit_result.checkpoint)
                names = list(payload["target_names"])
                test = pooled.subset(test_mask)
                u_pred = predict_normalised(model_from_checkpoint(payload), test.features)
                u_g, t_g = group_predictions(test, u_pred, aggregate)
                grouped_pred.append(u_g)
                grouped_targets.append(t_g)
                mean_rows.append(np.repeat(np.asarray(payload["train_mean"])[None, :], len(t_g), axis=0))
                start_rows.append(np.repeat(np.asarray(payload["train_mean_normalised"])[None, :], len(t_g), axis=0))
            u_all, t_all, m_all = (
                np.concatenate(grouped_pred),
                np.concatenate(grouped_targets),
                np.concatenate(mean_rows),
            )
            cnn = np.abs(denormalise(task, u_all) - t_all).mean(axis=0)
            mean = np.abs(m_all - t_all).mean(axis=0)
            start = np.abs(denormalise(task, np.concatenate(start_rows)) - t_all).mean(axis=0)
            result.scores[task] = TaskScores(task, names, cnn, mean, len(set(pooled.songs)), len(t_all), start=start)
    finally:
        if holder is not None:
            holder.cleanup()
    return result
