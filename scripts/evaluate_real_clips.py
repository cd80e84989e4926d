#!/usr/bin/env python
"""Score CNN checkpoints on the real songs and karaoke clips that no model trains on.

Usage (from the repository root)::

    python scripts/evaluate_real_clips.py                   # the shipped models
    python scripts/evaluate_real_clips.py --models DIR      # any model folder

It does what a new user would do with ``vocalmix dataset build`` (song folders, every
song in the test split) and ``vocalmix evaluate``, on ``<audio>/songs/*`` and
``<audio>/karaoke/*`` together:

- **level**: the relative loudness (vocal minus backing, LU) of each real song;
- **compression**: the loudness range of each real vocal (songs outside 5-30 LU are
  dropped as the dataset build drops them, so few of these short clips remain);
- **EQ**: each real vocal degraded by ``--eq-per-song`` seeded random 4-band peak EQs,
  with the exact undo gains as labels (the degradation is ours, so the label is exact),
  scored per degraded block (``vocalmix evaluate``) and, as *EQ gain per song*, with each
  degradation applied to the whole song and one decision from all its blocks, as render
  decides (:func:`song_level_eq`).

It prints the ``vocalmix evaluate`` table, then CNN / mean per target, the EQ error per
octave band and per source (songs, karaoke), and how much the CNN's outputs vary from
song to song (a model whose level, LRA or reverb outputs do not vary has collapsed to a
constant). ``--json`` writes all of it for the model card.

The dataset goes to ``--work`` (default ``/tmp/vocalmix-real-clips``) and is reused when
its settings match.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL_PARTS = ("songs", "karaoke")
REAL_TASKS = ("level", "compression", "eq")
DEFAULT_WORK = Path("/tmp/vocalmix-real-clips")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def real_clip_songs(audio_dir: Path, split: str | None = "test"):
    """The real songs and karaoke clips (folders with vocal.* + backing.*), ids ``<part>/<folder>``."""
    from vocalmix.training.datasets import discover_songs

    songs = []
    for part in REAL_PARTS:
        if (audio_dir / part).is_dir():
            songs += [replace(s, id=f"{part}/{s.id}", split=split) for s in discover_songs(audio_dir / part, "folders")]
    return songs


def build_real_test(audio_dir: Path, out: Path, seed: int = 0, eq_per_song: int = 200, jobs: int = 1) -> Path:
    """The real clips as a dataset with every song in the test split (reused if already built)."""
    from vocalmix.training.build import BuildConfig, build_dataset

    songs = real_clip_songs(audio_dir, "test")
    if not songs:
        raise SystemExit(f"{audio_dir}: no songs/ or karaoke/ folders with vocal and backing files")
    config = BuildConfig(
        seed=seed,
        tasks=REAL_TASKS,
        split_fractions=(0.0, 0.0, 1.0),
        eq_per_song=eq_per_song,
        random_gain_db=0.0,
        shard_blocks=4096,
    )
    if not (out / "manifest.json").is_file():
        build_dataset(
            songs,
            out,
            config,
            executor="process" if jobs > 1 else "serial",
            jobs=jobs,
            progress=False,
            source_info={"layout": "real-clips", "n_songs": len(songs)},
        )
    return out


def _song_spread(models_dir: Path, dataset: Path) -> dict:
    """Per task, the spread (std over songs) of the CNN's song-averaged outputs, and the outputs."""
    from vocalmix.nets.checkpoints import load_checkpoint, model_from_checkpoint
    from vocalmix.training.evaluate import group_predictions
    from vocalmix.training.train import denormalise, load_arrays, predict_normalised

    out = {}
    for task in ("level", "compression"):
        path = models_dir / f"{task}.pt"
        data = load_arrays(dataset, task, "test")
        if not path.is_file() or len(data) == 0:
            continue
        payload = load_checkpoint(path)
        u = predict_normalised(model_from_checkpoint(payload, path), data.features)
        grouped, targets = group_predictions(data, u, "song")
        pred = denormalise(task, grouped)[:, 0]
        out[task] = {
            "std_over_songs": float(pred.std()),
            "predictions": [round(float(v), 3) for v in pred],
            "targets": [round(float(v), 3) for v in targets[:, 0]],
        }
    return out


def _reverb_spread(models_dir: Path, audio_dir: Path) -> dict | None:
    """The reverb model's settings for each real clip (raw vocal), and their spread over the clips."""
    path = models_dir / "reverb.pt"
    if not path.is_file():
        return None
    import torch

    from vocalmix.features import song_features
    from vocalmix.nets.checkpoints import load_checkpoint, model_from_checkpoint
    from vocalmix.nets.cnn_targets import denormalise_targets

    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload, path)
    names = list(payload["target_names"])
    rows = []
    for song in real_clip_songs(audio_dir):
        vocal, backing = song.load(44100)
        blocks = song_features(vocal, backing, 44100)
        if blocks.shape[0] == 0:
            continue
        with torch.no_grad():
            u = model(blocks).mean(0, keepdim=True)
        rows.append(denormalise_targets("reverb", u)[0].numpy())
    if not rows:
        return None
    values = np.stack(rows)
    spans = {"room_size": 29.0, "reverb_time_s": 10.0, "dry_wet_pct": 100.0}
    return {
        "songs": len(rows),
        "std_over_songs": {n: float(values[:, i].std()) for i, n in enumerate(names)},
        "mean_over_songs": {n: float(values[:, i].mean()) for i, n in enumerate(names)},
        "note": "std in physical units; spans for scale: " + json.dumps(spans),
    }


def song_level_eq(models_dir: Path, audio_dir: Path, dataset: Path, work: Path, seed: int = 0) -> dict:
    """The EQ model scored as render uses it: one decision per degraded *song*.

    Each of the dataset's EQ degradations (the same undo gains, song by song) is applied to
    the whole real vocal (``scripts/eq_song_level.py``), the degraded song is cut into
    feature blocks with its real backing, and the model's outputs are averaged over the
    blocks in normalised space, as ``CnnMethod.predict`` does. ``{"cnn", "mean", "zero"}``
    MAE (dB), ``"songs"``, ``"items"``; cached in ``work`` by the checkpoint's SHA-256.
    """
    import importlib.util

    import torch

    from vocalmix.files import write_atomic
    from vocalmix.nets.checkpoints import file_sha256, load_checkpoint, model_from_checkpoint
    from vocalmix.training.build import song_seed
    from vocalmix.training.train import denormalise, load_arrays

    path = models_dir / "eq.pt"
    cache = work / f"song-level-eq-seed{seed}-{file_sha256(path)[:16]}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    spec = importlib.util.spec_from_file_location("eq_song_level", REPO / "scripts" / "eq_song_level.py")
    song_level = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(song_level)
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload, path).eval()
    data = load_arrays(dataset, "eq", "test")
    names = np.array(data.songs)
    predictions, targets = [], []
    for song in real_clip_songs(audio_dir):
        pick = names == song.id
        if not pick.any():
            continue
        vocal, backing = song.load(44100)
        n = min(vocal.shape[-1], backing.shape[-1])
        u = np.zeros((int(pick.sum()), data.targets.shape[1]))
        batches = song_level.degraded_song_blocks(
            vocal[:, :n].mean(0),
            -data.targets[pick],
            data.changed[pick],
            song_seed(seed, song.id + "\0song-level"),
            backing=backing[:, :n].mean(0),
        )
        for first, blocks, owner in batches:
            with torch.no_grad():
                out = model(blocks).numpy().astype(np.float64)
            for k in np.unique(owner):
                u[first + k] = out[owner == k].mean(0)
        predictions.append(denormalise("eq", u))
        targets.append(data.targets[pick])
    pred, target = np.concatenate(predictions), np.concatenate(targets)
    mean = np.asarray(payload["train_mean"], dtype=np.float64)
    result = {
        "cnn": float(np.abs(pred - target).mean()),
        "mean": float(np.abs(mean[None] - target).mean()),
        "zero": float(np.abs(target).mean()),
        "songs": len(predictions),
        "items": len(target),
    }
    write_atomic(cache, json.dumps(result) + "\n")
    return result


def evaluate_real(
    models_dir: Path, audio_dir: Path, work: Path, seed: int = 0, eq_per_song: int = 200, jobs: int = 1
) -> dict:
    """Everything the script prints, as a dict (also what the model card quotes)."""
    from vocalmix.nets.checkpoints import load_checkpoint, model_from_checkpoint
    from vocalmix.training.evaluate import evaluate
    from vocalmix.training.train import denormalise, load_arrays, predict_normalised

    dataset = build_real_test(audio_dir, work / f"real-test-seed{seed}-eq{eq_per_song}", seed, eq_per_song, jobs)
    result = evaluate(dataset, models_dir, tasks=list(REAL_TASKS), split="test")
    summary: dict = {"table": result.format_table(), "dataset": str(dataset), "models": str(models_dir), "targets": {}}
    labels = {"level": "Level", "compression": "LRA", "eq": "EQ gain"}
    for task, label in labels.items():
        if task not in result.scores:
            continue
        s = result.scores[task]
        cnn, mean = result.column_value(label, "CNN"), result.column_value(label, "mean")
        summary["targets"][label] = {
            "cnn": cnn,
            "mean": mean,
            "ratio": cnn / mean if mean else None,
            "songs": s.n_songs,
            "items": s.n_items,
        }
    if "eq" in result.scores:
        path = models_dir / "eq.pt"
        payload = load_checkpoint(path)
        data = load_arrays(dataset, "eq", "test")
        u = predict_normalised(model_from_checkpoint(payload, path), data.features)
        pred = denormalise("eq", u)
        err = np.abs(pred - data.targets)
        base = np.abs(np.asarray(payload["train_mean"])[None] - data.targets)
        names = list(payload["target_names"])
        summary["eq_bands"] = {
            n: {
                "cnn": float(err[:, i].mean()),
                "mean": float(base[:, i].mean()),
                "mean_prediction_db": float(pred[:, i].mean()),
            }
            for i, n in enumerate(names)
        }
        part = np.array([s.split("/")[0] for s in data.songs])
        summary["eq_by_source"] = {
            p: {
                "cnn": float(err[part == p].mean()),
                "mean": float(base[part == p].mean()),
                "items": int((part == p).sum()),
            }
            for p in REAL_PARTS
            if (part == p).any()
        }
        per_song = song_level_eq(models_dir, audio_dir, dataset, work, seed)
        summary["targets"]["EQ gain per song"] = {
            "cnn": per_song["cnn"],
            "mean": per_song["mean"],
            "ratio": per_song["cnn"] / per_song["mean"],
            "songs": per_song["songs"],
            "items": per_song["items"],
        }
    summary["spread"] = _song_spread(models_dir, dataset)
    summary["reverb_spread"] = _reverb_spread(models_dir, audio_dir)
    return summary


def format_summary(summary: dict) -> str:
    lines = [summary["table"], "", "CNN MAE vs mean MAE on the real clips (ratio < 1: better than the mean):"]
    for label, t in summary["targets"].items():
        lines.append(
            f"  {label:<17} CNN {t['cnn']:6.2f}  mean {t['mean']:6.2f}  CNN/mean {t['ratio']:.2f}"
            f"  ({t['songs']} songs, {t['items']} items)"
        )
    if "eq_bands" in summary:
        lines.append("EQ per octave band (dB): band, CNN MAE, mean MAE, average CNN output")
        for n, b in summary["eq_bands"].items():
            lines.append(f"  {n:<13} {b['cnn']:6.2f} {b['mean']:6.2f} {b['mean_prediction_db']:+7.2f}")
        for p, b in summary["eq_by_source"].items():
            lines.append(f"  {p:<13} {b['cnn']:6.2f} {b['mean']:6.2f}  ({b['items']} items)")
    for task, s in summary["spread"].items():
        lines.append(
            f"{task}: CNN output std over songs {s['std_over_songs']:.3f} LU; "
            f"outputs {s['predictions']} targets {s['targets']}"
        )
    if summary.get("reverb_spread"):
        r = summary["reverb_spread"]
        lines.append(
            f"reverb: std of each setting over {r['songs']} real clips: "
            + ", ".join(f"{n} {v:.3g}" for n, v in r["std_over_songs"].items())
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--audio", type=Path, default=REPO.parent / "shared" / "audio")
    p.add_argument("--models", type=Path, default=REPO / "vocalmix" / "models" / "cnn")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    p.add_argument("--eq-per-song", type=int, default=200, help="seeded random EQ degradations per real vocal")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if not args.audio.is_dir():
        print(f"{args.audio}: audio folder not found", file=sys.stderr)
        return 2
    summary = evaluate_real(args.models, args.audio, args.work, args.seed, args.eq_per_song, args.jobs)
    print(format_summary(summary))
    if args.json:
        from vocalmix.files import write_atomic

        write_atomic(args.json, json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
