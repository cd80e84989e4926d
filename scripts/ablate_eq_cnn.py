#!/usr/bin/env python
"""EQ-model ablations behind the default models' model card (research aid, not shipped).

Every row is scored on the real songs and karaoke clips (the dataset
``scripts/evaluate_real_clips.py`` builds; run that first), as MAE / the training-mean MAE::

    python scripts/ablate_eq_cnn.py                       # every row
    python scripts/ablate_eq_cnn.py --rows estimator,ridge

Rows: 0 dB everywhere (always), ``estimator`` (no learning: the block's time-averaged vocal spectrum minus the mean
spectrum of the training vocals, least squares onto the 9 peak filters' responses plus an
offset, with several shrinkages toward 0 dB; and, as an unrealisable oracle, each real
song's own undegraded mean spectrum as the reference), ``ridge`` (ridge regression on the
128-band spectrum), ``mlp`` (``SpectrumMLP`` trained by ``vocalmix.training.train.fit``,
MSE and L1), ``cnn`` (the Li & Lerch CNN, MSE and L1, 4 epochs), each on the dry vocals as
recorded (``dry``: their first 75 %, 480 degraded stretches each), augmented (``aug``) and with
the synthetic voices (``aug+voices``). Training examples come
from ``scripts/train_default_models.py``'s generator and cache (``--work``).

The model card's estimator, ridge and MLP rows are this script's output with the defaults
(``--rows estimator,ridge,mlp``, about 3 min once the examples are cached); its two CNN rows
and the shrunk-MSE row were measured by draft code on the shipped model's larger training
set (5 x 40 augmented takes, 500 voices), so ``--rows cnn`` here gives other numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CENTRES_HZ = np.array([63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000], dtype=float)


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def block_spectra(features: np.ndarray, db_range: float = 80.0) -> np.ndarray:
    """``(N, 2, 128, 64)`` blocks -> the vocal's time-averaged spectrum in dB below the block maximum."""
    return (features[:, 0].astype(np.float64) - 1.0).mean(-1) * db_range


def peak_response_matrix() -> np.ndarray:
    """dB change per dB of gain of each octave peak filter (RBJ, Q 1) in each of the 128 mel bands."""
    from vocalmix.features import mel_filterbank

    fb = mel_filterbank(44100, 2048, 128).double().numpy()
    z = np.exp(-2j * np.pi * np.arange(1025) / 2048)
    out = np.zeros((128, 9))
    for k, f0 in enumerate(CENTRES_HZ):
        a_, w0 = 10 ** (10 / 40), 2 * np.pi * f0 / 44100
        alpha = np.sin(w0) / 2
        h = ((1 + alpha * a_) - 2 * np.cos(w0) * z + (1 - alpha * a_) * z * z) / (
            (1 + alpha / a_) - 2 * np.cos(w0) * z + (1 - alpha / a_) * z * z
        )
        out[:, k] = 10 * np.log10((fb @ np.abs(h) ** 2) / fb.sum(1)) / 10
    return out


def least_squares_undo(spectra, reference, response, lam, shrink, floor=-70.0):
    """Per block: fit spectrum - reference = response @ applied + offset (bands above ``floor``); undo = -applied."""
    design = np.c_[response, np.ones(len(response))]
    out = np.zeros((len(spectra), 9))
    for i, s in enumerate(spectra):
        ref = reference[i] if reference.ndim == 2 else reference
        keep = (s > floor) & (ref > floor)
        x, d = design[keep], (s - ref)[keep]
        gram = x.T @ x + lam * keep.sum() * np.diag([1.0] * 9 + [0.0])
        out[i] = -shrink * np.linalg.solve(gram, x.T @ d)[:9]
    return np.clip(out, -15, 15)


def ratio(pred, real, mean) -> dict:
    err, base = np.abs(pred - real.targets), np.abs(mean - real.targets)
    part = np.array([s.split("/")[0] for s in real.songs])
    return {
        "real": round(float(err.mean() / base.mean()), 3),
        **{p: round(float(err[part == p].mean() / base[part == p].mean()), 3) for p in ("songs", "karaoke")},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="estimator,ridge,mlp,cnn")
    p.add_argument("--audio", type=Path, default=REPO.parent / "shared" / "audio")
    p.add_argument("--work", type=Path, default=Path("/tmp/vocalmix-default-models"))
    p.add_argument("--takes", type=int, default=16)
    p.add_argument("--voices", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", type=Path, default=None, help="append one JSON line per row here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from vocalmix.nets.checkpoints import load_checkpoint, model_from_checkpoint
    from vocalmix.training.train import TrainConfig, denormalise, fit, load_arrays, predict_normalised

    real_clips = _script("evaluate_real_clips")
    real = load_arrays(
        real_clips.build_real_test(args.audio, real_clips.DEFAULT_WORK / "real-test-seed0-eq200"), "eq", "test"
    )
    default_models = _script("train_default_models")
    args.work.mkdir(parents=True, exist_ok=True)
    aug_voices, val = default_models.eq_examples(args.audio, args.work, args.seed, args.takes, args.voices, 48)
    is_voice = np.array([s.startswith("synthetic-voice/") for s in aug_voices.songs])
    aug = aug_voices.subset(~is_voice)
    from vocalmix.training.datasets import CC_BY_DRY_VOCALS
    from vocalmix.training.eq_voices import eq_examples_from_vocals

    dry = []
    for name in CC_BY_DRY_VOCALS:
        vocal = default_models._load_dry(args.audio / "dry" / f"{name}.flac")[0].astype(np.float32)
        dry.append((f"eq/{name}/plain", vocal[: int(default_models.EQ_TRAIN_SHARE * len(vocal))]))
    sets = {"dry": eq_examples_from_vocals(dry, 480, args.seed + 100), "aug": aug, "aug+voices": aug_voices}
    rows = []

    def emit(name, pred, train):
        row = {"row": name, "n_train": len(train), **ratio(pred, real, train.targets.mean(0))}
        rows.append(row)
        print(json.dumps(row), flush=True)

    s_real = block_spectra(real.features)
    emit("no model: 0 dB on every band (the targets' median)", np.zeros_like(real.targets), aug)
    wanted = args.rows.split(",")
    if "estimator" in wanted:
        response = peak_response_matrix()
        reference = block_spectra(aug.features).mean(0)
        for lam, shrink in ((0.0, 1.0), (0.05, 1.0), (0.1, 0.6), (0.5, 0.3), (2.0, 0.3)):
            emit(
                f"estimator CC BY mean ref lam={lam} shrink={shrink}",
                least_squares_undo(s_real, reference, response, lam, shrink),
                aug,
            )
        from vocalmix.features import song_features

        own = {}
        for song in real_clips.real_clip_songs(args.audio):
            vocal, backing = song.load(44100)
            own[song.id] = block_spectra(song_features(vocal, backing, 44100).numpy()).mean(0)
        reference = np.stack([own[s] for s in real.songs])
        for lam, shrink in ((0.05, 0.5), (0.2, 1.0)):
            emit(
                f"estimator ORACLE own-song ref lam={lam} shrink={shrink}",
                least_squares_undo(s_real, reference, response, lam, shrink),
                aug,
            )
    for set_name, train in sets.items():
        x = np.c_[block_spectra(train.features) / 80, np.ones(len(train))]
        if "ridge" in wanted:
            for lam in (100.0, 1000.0):
                w = np.linalg.solve(x.T @ x + lam * np.diag([1.0] * 128 + [0.0]), x.T @ train.targets)
                emit(
                    f"ridge lam={lam:g} on {set_name}",
                    np.clip(np.c_[s_real / 80, np.ones(len(real))] @ w, -15, 15),
                    train,
                )
        for arch in ("mlp", "cnn"):
            if arch not in wanted or (arch == "cnn" and set_name != "aug"):
                continue
            for loss in ("mse", "l1"):
                t0 = time.monotonic()
                mlp = arch == "mlp"
                config = TrainConfig(
                    task="eq",
                    loss=loss,
                    seed=args.seed,
                    patience=10,
                    epochs=40 if mlp else 4,
                    architecture="spectrum-mlp" if mlp else "li-lerch-cnn",
                    lr=3e-3 if mlp else None,
                    batch_size=128 if mlp else None,
                    dropout=0.1 if mlp else 0.3,
                )
                out = args.work / f"ablation-{arch}-{loss}-{set_name}"
                result = fit(config, train, val, out, progress=False)
                model = model_from_checkpoint(load_checkpoint(result.checkpoint))
                emit(
                    f"{arch} {loss} on {set_name} (best epoch {result.best_epoch}, "
                    f"{(time.monotonic() - t0) / 60:.1f} min)",
                    denormalise("eq", predict_normalised(model, real.features)),
                    train,
                )
    if args.results:
        with open(args.results, "a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
