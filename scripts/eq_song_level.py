#!/usr/bin/env python
"""Song-level EQ-undo decisions on the real clips (research aid behind the model card).

``render --method cnn`` decides one EQ per song from all of the song's feature blocks
(``CnnMethod`` averages the model's outputs over them). The real-clip evaluation
(``scripts/evaluate_real_clips.py``) scores one degraded 1.5-s block per example; this
script scores what render does: each of that evaluation's seeded degradations (the same
undo gains, song by song) is applied to the **whole** real vocal, the degraded song's
feature blocks are cut as render cuts them, and one decision is made per degraded song.
Rows (MAE over the 9 octave bands, / the shipped model's training-mean MAE, and / the
MAE of 0 dB everywhere)::

    python scripts/eq_song_level.py                      # every row
    python scripts/eq_song_level.py --rows zero,estimator,oracle,shipped

The first full run takes about 12 min on a shared 2-core CPU (8.5 of them making the
licence-clean training songs); both the real cases and the training songs are cached.

- ``zero``, ``mean``: 0 dB on every band; the shipped EQ model's training mean;
- ``estimator``: no learning: the song's average block spectrum minus a fixed reference
  (the mean block spectrum of the shipped model's licence-clean training vocals), least
  squares onto the 9 peak filters' responses plus an offset, at several ridge strengths
  and shrinkages toward 0 dB (the best of them is chosen on the test songs themselves, so
  it is an upper bound for this estimator);
- ``oracle``: the same with each real song's own undegraded average spectrum as the
  reference (not realisable: it shows whether the degradation can be read from the song at
  all once the singer's own spectrum is known);
- ``others``: the reference from the *other* real songs (leave one song out; real but not
  licence-clean vocals), and a linear-Gaussian posterior whose singer prior is those songs'
  spectra (mean and covariance): how far a prior from more real singers would get;
- ``shipped``: the shipped EQ model's outputs averaged over the song's blocks, exactly as
  ``CnnMethod.predict`` does (mean in normalised space, then to dB);
- ``trained``: ridge and MLP models trained on song-level features (the average block
  spectrum of a whole degraded take) from licence-clean vocals only: the CC BY dry vocals'
  first 75 % as augmented takes (``augment_vocal``) and source-filter synthetic voices
  (``synthetic_voice``); never the real songs or karaoke clips. Validation: the dry vocals'
  last quarter as recorded.

Needs the real-clip dataset of ``scripts/evaluate_real_clips.py`` (built on first use, in
``/tmp/vocalmix-real-clips``). Training songs are cached in ``--work``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SR = 44100
DB_RANGE = 80.0
#: (ridge strength, shrinkage toward 0 dB) pairs the estimator rows try.
ESTIMATOR_GRID = ((0.0, 1.0), (0.05, 1.0), (0.2, 1.0), (0.05, 0.5), (0.2, 0.5), (0.5, 0.3), (2.0, 0.3))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` written atomically (an interrupted run leaves no half-written cache)."""
    from vocalmix.files import write_atomic

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: savez would add ".npz" to a bare name
            np.savez(fh, **arrays)

    write_atomic(path, write)


def degraded_song_blocks(
    vocal: np.ndarray,
    applied_db: np.ndarray,
    changed: np.ndarray,
    seed: int,
    backing: np.ndarray | None = None,
    batch: int = 16,
):
    """Each row of ``applied_db`` ``(K, 9)`` applied to the whole mono ``vocal`` ``(T,)``, ``batch``
    degradations at a time.

    Yields ``(first, blocks, owner)``: the feature blocks ``(n, 2, 128, 64)`` float32 of
    degraded songs ``first, first + 1, ...`` and, per block, which of them (0 = ``first``).
    Blocks are cut as ``song_features`` cuts them (the gate reads the degraded vocal's frame
    loudness); ``backing`` (mono, as long as ``vocal``; silence if None) fills channel 1. The
    peak filters are ``BatchRenderer``'s (the data-set build's), run from the file's first sample.
    """
    from vocalmix.features import clip_features
    from vocalmix.training.synthesis import BatchRenderer

    renderer = BatchRenderer(SR, device="cpu", seed=seed)
    x = torch.from_numpy(np.ascontiguousarray(vocal, dtype=np.float32))
    back = torch.zeros_like(x) if backing is None else torch.from_numpy(np.ascontiguousarray(backing, np.float32))
    for i in range(0, len(applied_db), batch):
        gains = torch.as_tensor(applied_db[i : i + batch], dtype=torch.float32)
        bands = torch.stack([torch.nonzero(torch.as_tensor(c))[:, 0] for c in changed[i : i + batch]])
        clips = x[None, None].expand(len(gains), 1, -1).contiguous()
        with torch.no_grad():
            degraded = renderer.apply_octave_gains(clips, gains, bands)
            blocks, owner = clip_features(
                degraded, back[None, None].expand_as(degraded), return_owner=True, device="cpu"
            )
        yield i, blocks, owner.numpy()


def degraded_song_spectra(
    vocal: np.ndarray, applied_db: np.ndarray, changed: np.ndarray, seed: int, batch: int = 16
) -> list[np.ndarray]:
    """Per degradation of :func:`degraded_song_blocks`, the vocal channel of every block of the
    degraded song averaged over the block's frames, ``(n_blocks, 128)`` in the features' [0, 1]
    units (what ``SpectrumMLP.spectrum`` reads)."""
    out: list[np.ndarray] = []
    for first, blocks, owner in degraded_song_blocks(vocal, applied_db, changed, seed, batch=batch):
        spectra = blocks[:, 0].mean(-1).numpy().astype(np.float64)
        out += [spectra[owner == k] for k in range(min(batch, len(applied_db) - first))]
    return out


def undegraded_spectra(vocal: np.ndarray) -> np.ndarray:
    """Block spectra ``(n_blocks, 128)`` of the vocal as it is (the oracle's reference)."""
    from vocalmix.features import clip_features

    x = np.ascontiguousarray(vocal, dtype=np.float32)
    with torch.no_grad():
        blocks = clip_features(x, np.zeros_like(x), device="cpu")
    return blocks[:, 0].mean(-1).numpy().astype(np.float64)


def real_song_cases(audio: Path, seed: int = 0) -> dict:
    """The real clips' degradations applied to whole songs: ``{"spectra": [(n_blocks, 128)],
    "targets" (N, 9), "songs", "own" {song: (128,) dB}}`` (spectra in [0, 1] units)."""
    real_clips = _script("evaluate_real_clips")
    from vocalmix.training.build import song_seed
    from vocalmix.training.train import load_arrays

    dataset = real_clips.build_real_test(audio, real_clips.DEFAULT_WORK / f"real-test-seed{seed}-eq200", seed)
    data = load_arrays(dataset, "eq", "test")
    songs = np.array(data.songs)
    spectra: list[np.ndarray] = []
    targets, names, own = [], [], {}
    for song in real_clips.real_clip_songs(audio):
        pick = songs == song.id
        if not pick.any():
            continue
        vocal, _ = song.load(SR)
        mono = vocal.mean(0).astype(np.float32)
        own[song.id] = _to_db(undegraded_spectra(mono)).mean(0)
        t0 = time.monotonic()
        spectra += degraded_song_spectra(
            mono, -data.targets[pick], data.changed[pick], song_seed(seed, song.id + "\0song-level")
        )
        targets.append(data.targets[pick])
        names += [song.id] * int(pick.sum())
        log(
            f"{song.id}: {int(pick.sum())} degraded songs ({len(spectra[-1])} blocks in the last), "
            f"{time.monotonic() - t0:.1f} s"
        )
    return {"spectra": spectra, "targets": np.concatenate(targets), "songs": names, "own": own}


def _to_db(spectra: np.ndarray) -> np.ndarray:
    """[0, 1] feature units -> dB below the block maximum."""
    return (np.asarray(spectra, dtype=np.float64) - 1.0) * DB_RANGE


def song_average_db(spectra: list[np.ndarray]) -> np.ndarray:
    """``(N, 128)``: each song's block spectra averaged (dB); a song with no block gives NaN."""
    return np.stack([_to_db(s).mean(0) if len(s) else np.full(128, np.nan) for s in spectra])


def least_squares_undo(
    song_db: np.ndarray,
    reference: np.ndarray,
    response: np.ndarray,
    lam: float,
    shrink: float,
    floor: float = -70.0,
    observable: float = 0.5,
    changed_bands: int | None = None,
) -> np.ndarray:
    """Per song: fit ``song_db - reference = response @ applied + offset`` over the mel bands
    where both are above ``floor`` dB; the undo is ``-shrink * applied``, clipped to +-15 dB.

    ``lam`` is a ridge on the gains (times the number of bands kept). An octave band whose
    response has less than ``observable`` of its energy in the kept mel bands (the 8 and
    16 kHz bands of a 16 kHz recording) cannot be read from the spectrum and stays at 0 dB
    instead of being fitted to noise. A song with no block gives 0 dB everywhere.
    ``changed_bands``: fit every subset of that many observable bands (no ridge) and keep
    the one with the smallest residual, the others at 0 dB (the degradation changes 4).
    """
    out = np.zeros((len(song_db), response.shape[1]))
    energy = (response**2).sum(0)
    for i, s in enumerate(song_db):
        if not np.isfinite(s).all():
            continue
        ref = reference[i] if reference.ndim == 2 else reference
        keep = (s > floor) & (ref > floor)
        bands = np.nonzero((response[keep] ** 2).sum(0) >= observable * energy)[0]
        if changed_bands is not None:
            out[i] = -shrink * _best_subset_fit(response[keep], (s - ref)[keep], bands, changed_bands)
            continue
        x = np.c_[response[keep][:, bands], np.ones(int(keep.sum()))]
        gram = x.T @ x + lam * keep.sum() * np.diag([1.0] * len(bands) + [0.0])
        out[i, bands] = -shrink * np.linalg.solve(gram, x.T @ (s - ref)[keep])[: len(bands)]
    return np.clip(out, -15, 15)


def _best_subset_fit(response: np.ndarray, diff: np.ndarray, bands: np.ndarray, size: int) -> np.ndarray:
    """Least squares of ``diff`` on an offset plus ``size`` of ``bands``' responses, the subset
    with the smallest residual; ``(9,)`` gains, 0 outside the subset."""
    best, gains = np.inf, np.zeros(response.shape[1])
    for subset in itertools.combinations(bands.tolist(), min(size, len(bands))):
        x = np.c_[response[:, subset], np.ones(len(diff))]
        coef, *_ = np.linalg.lstsq(x, diff, rcond=None)
        residual = float(((x @ coef - diff) ** 2).sum())
        if residual < best:
            best = residual
            gains = np.zeros(response.shape[1])
            gains[list(subset)] = coef[:-1]
    return gains


def gaussian_prior_undo(song_db: np.ndarray, references: list[np.ndarray], response: np.ndarray, noise_db2: float):
    """Posterior-mean undo under a linear-Gaussian model: ``song_db = singer + response @ applied +
    offset``, the singer's spectrum ``~ N(mean, covariance)`` of the spectra in ``references[i]``
    ``(k, 128)`` plus ``noise_db2`` dB^2 per band, the gains ``~ N(0, 4/9 * 75)`` (4 of 9 bands
    changed, U[-15, 15]); the offset is projected out. ``(N, 9)`` dB, clipped to +-15."""
    prior_var = 4 / 9 * 15.0**2 / 3
    out = np.zeros((len(song_db), response.shape[1]))
    for i, (y, others) in enumerate(zip(song_db, references)):
        mu = others.mean(0)
        keep = (y > -70.0) & (mu > -70.0)
        n = int(keep.sum())
        centre = np.eye(n) - 1.0 / n
        r, dev = response[keep], others[:, keep] - mu[keep]
        cov = dev.T @ dev / max(len(others) - 1, 1)
        total = centre @ (prior_var * r @ r.T + cov + noise_db2 * np.eye(n)) @ centre
        applied = prior_var * r.T @ centre @ np.linalg.pinv(total, rcond=1e-8) @ centre @ (y[keep] - mu[keep])
        out[i] = np.clip(-applied, -15, 15)
    return out


def apparent_eq(own: dict, reference: np.ndarray, response: np.ndarray) -> dict:
    """What the least-squares estimator reads from each *undegraded* real song against ``reference``:
    the EQ the song's own spectrum looks like (every dB of it is an error of the fixed-reference
    estimator). ``{song: (9,) dB}``."""
    names = list(own)
    gains = least_squares_undo(np.stack([own[n] for n in names]), reference, response, 0.0, 1.0)
    return {n: g for n, g in zip(names, gains)}


def training_songs(audio: Path, work: Path, seed: int, takes: int, voices: int, per_song: int) -> dict:
    """Licence-clean degraded songs: ``{"train": {...}, "val": {...}}``, each ``{"spectra" (N, 128) dB
    song averages, "targets" (N, 9), "songs"}`` (cached in ``work``).

    Train: ``takes`` augmented versions (``augment_vocal``) of the first 75 % of each CC BY dry
    vocal and ``voices`` synthetic voices of 8 s (``synthetic_voice``, recording variation on
    80 %), each degraded ``per_song`` times as a whole (``sample_eq_degradation``'s 4 random
    peaks of U[-15, 15] dB). Val: the last quarter of each dry vocal as recorded, 100 times.
    """
    path = work / f"song-level-{takes}x{per_song}-voices{voices}-seed{seed}.npz"
    if path.is_file():
        d = np.load(path)
        return {
            part: {"spectra": d[f"{part}_spectra"], "targets": d[f"{part}_targets"], "songs": list(d[f"{part}_songs"])}
            for part in ("train", "val")
        }
    default_models = _script("train_default_models")
    from vocalmix.training.build import song_seed
    from vocalmix.training.datasets import CC_BY_DRY_VOCALS
    from vocalmix.training.eq_voices import augment_vocal, synthetic_voice
    from vocalmix.training.synthesis import BatchRenderer, recording_variation

    share = default_models.EQ_TRAIN_SHARE
    dry = {}
    for name in CC_BY_DRY_VOCALS:
        vocal = default_models._load_dry(audio / "dry" / f"{name}.flac")[0].astype(np.float32)
        dry[name] = (vocal[: int(share * len(vocal))], vocal[int(share * len(vocal)) :])
    renderer = BatchRenderer(SR, device="cpu", seed=seed)
    train = [
        (f"{name}/take-{k:02d}", augment_vocal(part, np.random.default_rng([seed, i, k]), renderer))
        for i, (name, (part, _)) in enumerate(dry.items())
        for k in range(takes)
    ]
    for k in range(voices):
        rng = np.random.default_rng([seed, 1000 + k])
        v = synthetic_voice(8.0, rng)
        if rng.random() < 0.8:
            v = recording_variation(v, SR, rng)
        train.append((f"synthetic-voice/{k:04d}", augment_vocal(v, rng, renderer) if rng.random() < 0.3 else v))
    val = [(f"{name}/val", rest) for name, (_, rest) in dry.items()]

    def make(vocals, count, salt):
        spectra, targets, names = [], [], []
        for name, vocal in vocals:
            draw = BatchRenderer(SR, device="cpu", seed=song_seed(seed, name + salt)).sample_eq_degradation(count)
            s = degraded_song_spectra(vocal, draw.applied_db.numpy(), draw.changed.numpy(), seed)
            keep = [j for j in range(count) if len(s[j])]
            spectra.append(song_average_db([s[j] for j in keep]))
            targets.append(draw.target_db.numpy()[keep].astype(np.float64))
            names += [name] * len(keep)
        return {"spectra": np.concatenate(spectra), "targets": np.concatenate(targets), "songs": names}

    t0 = time.monotonic()
    out = {"train": make(train, per_song, "\0train"), "val": make(val, 100, "\0val")}
    log(
        f"training songs: {len(out['train']['songs'])} + {len(out['val']['songs'])} validation, "
        f"{(time.monotonic() - t0) / 60:.1f} min"
    )
    work.mkdir(parents=True, exist_ok=True)
    save_npz(path, **{f"{p}_{k}": np.asarray(v) for p, d in out.items() for k, v in d.items()})
    return out


def fit_mlp(train: dict, val: dict, seed: int, loss: str, epochs: int = 60, hidden: int = 64) -> torch.nn.Module:
    """A 128-64-64-9 MLP on song-averaged spectra (dB / 80), early-stopped on ``val``'s MAE."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(128, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 9),
    )
    x = torch.tensor(train["spectra"] / DB_RANGE, dtype=torch.float32)
    y = torch.tensor(train["targets"] / 15.0, dtype=torch.float32)
    xv = torch.tensor(val["spectra"] / DB_RANGE, dtype=torch.float32)
    yv = torch.tensor(val["targets"] / 15.0, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    criterion = torch.nn.L1Loss() if loss == "l1" else torch.nn.MSELoss()
    best, best_state = float("inf"), None
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=generator).split(128):
            opt.zero_grad()
            criterion(net(x[idx]), y[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            score = float((net(xv) - yv).abs().mean())
        if score < best:
            best, best_state = score, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return net


def shipped_training_reference(audio: Path, work: Path, seed: int) -> np.ndarray:
    """The shipped EQ model's training blocks' mean vocal spectrum (dB, ``(128,)``): 5 dry vocals x 40
    augmented takes x 48 stretches + 500 synthetic voices x 8, as ``scripts/train_default_models.py``
    makes and caches them in ``work`` (made here, about 10 min, when the cache is absent)."""
    parts = [work / f"eq-dry-40x48-seed{seed}.npz", work / f"eq-voices-500-seed{seed}.npz"]
    if not all(p.is_file() for p in parts):
        work.mkdir(parents=True, exist_ok=True)
        _script("train_default_models").eq_examples(audio, work, seed, 40, 500, 48)
    return np.concatenate([_to_db(np.load(p)["features"][:, 0].astype(np.float32).mean(-1)) for p in parts]).mean(0)


def mlp_undo(net: torch.nn.Module, spectra_db: np.ndarray) -> np.ndarray:
    """:func:`fit_mlp`'s undo gains (dB, clipped to +-15) for song-averaged spectra ``(N, 128)`` in dB."""
    with torch.no_grad():
        u = net(torch.tensor(spectra_db / DB_RANGE, dtype=torch.float32)).numpy()
    return np.clip(u.astype(np.float64) * 15.0, -15, 15)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="zero,mean,estimator,oracle,others,shipped,trained")
    p.add_argument("--audio", type=Path, default=REPO.parent / "shared" / "audio")
    p.add_argument("--models", type=Path, default=REPO / "vocalmix" / "models" / "cnn")
    p.add_argument("--work", type=Path, default=Path("/tmp/vocalmix-eq-song-level"))
    p.add_argument(
        "--default-models-work",
        type=Path,
        default=Path("/tmp/vocalmix-default-models"),
        help="train_default_models.py's EQ example cache (the fixed reference's source)",
    )
    p.add_argument("--takes", type=int, default=16, help="augmented takes per CC BY dry vocal (trained rows)")
    p.add_argument("--voices", type=int, default=250, help="synthetic voices (trained rows)")
    p.add_argument("--per-song", type=int, default=16, help="whole-song degradations per training vocal")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", type=Path, default=None, help="append one JSON line per row here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    wanted = args.rows.split(",")
    from vocalmix.nets.checkpoints import load_checkpoint, model_from_checkpoint
    from vocalmix.nets.cnn_targets import denormalise_targets

    ablate = _script("ablate_eq_cnn")
    args.work.mkdir(parents=True, exist_ok=True)
    cache = args.work / f"real-song-cases-seed{args.seed}.npz"
    if cache.is_file():
        d = np.load(cache, allow_pickle=False)
        counts = d["counts"]
        flat = d["spectra"]
        edges = np.r_[0, np.cumsum(counts)]
        real = {
            "spectra": [flat[a:b] for a, b in zip(edges[:-1], edges[1:])],
            "targets": d["targets"],
            "songs": [str(s) for s in d["songs"]],
            "own": {str(k): v for k, v in zip(d["own_songs"], d["own"])},
        }
    else:
        real = real_song_cases(args.audio, args.seed)
        save_npz(
            cache,
            spectra=np.concatenate(real["spectra"]),
            counts=np.array([len(s) for s in real["spectra"]]),
            targets=real["targets"],
            songs=np.array(real["songs"]),
            own_songs=np.array(list(real["own"])),
            own=np.stack(list(real["own"].values())),
        )
    targets = real["targets"]
    songs = np.array(real["songs"])
    part = np.array([s.split("/")[0] for s in songs])
    song_db = song_average_db(real["spectra"])
    n_blocks = np.array([len(s) for s in real["spectra"]])
    payload = load_checkpoint(args.models / "eq.pt")
    train_mean = np.asarray(payload["train_mean"], dtype=np.float64)
    mean_mae = np.abs(train_mean[None] - targets).mean()
    zero_mae = np.abs(targets).mean()
    log(
        f"{len(targets)} degraded songs of {len(set(real['songs']))} real clips; blocks per song "
        f"{n_blocks.min()}-{n_blocks.max()} (median {np.median(n_blocks):g}); no block: {(n_blocks == 0).sum()}"
    )
    rows = []

    def emit(name: str, pred: np.ndarray, **extra) -> None:
        err = np.abs(pred - targets)
        row = {
            "row": name,
            "mae_db": round(float(err.mean()), 3),
            "over_mean": round(float(err.mean() / mean_mae), 3),
            "over_zero": round(float(err.mean() / zero_mae), 3),
            **{
                p_: round(float(err[part == p_].mean() / np.abs(train_mean - targets[part == p_]).mean()), 3)
                for p_ in ("songs", "karaoke")
            },
            **extra,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    if "zero" in wanted:
        emit("0 dB on every band", np.zeros_like(targets))
    if "mean" in wanted:
        emit("training mean of the shipped EQ model", np.broadcast_to(train_mean, targets.shape))
    response = ablate.peak_response_matrix()
    if "estimator" in wanted:
        reference = shipped_training_reference(args.audio, args.default_models_work, args.seed)
        for lam, shrink in ESTIMATOR_GRID:
            emit(
                f"estimator, fixed licence-clean reference, lam={lam} shrink={shrink}",
                least_squares_undo(song_db, reference, response, lam, shrink),
            )
        emit(
            "estimator, fixed licence-clean reference, best 4 of the 9 bands",
            least_squares_undo(song_db, reference, response, 0.0, 1.0, changed_bands=4),
        )
        seeming = apparent_eq(real["own"], reference, response)
        table = np.stack(list(seeming.values()))
        print(
            json.dumps(
                {
                    "apparent EQ of the undegraded real songs against the fixed reference (dB, per octave band)": {
                        n: [round(float(v), 1) for v in g] for n, g in seeming.items()
                    },
                    "rms over songs per band": [round(float(v), 1) for v in np.sqrt((table**2).mean(0))],
                    "rms of the applied degradation per band": round(float(np.sqrt((targets**2).mean())), 1),
                }
            ),
            flush=True,
        )
    if "oracle" in wanted:
        reference = np.stack([real["own"][s] for s in songs])
        for lam, shrink in ESTIMATOR_GRID[:3]:
            emit(
                f"estimator, ORACLE own undegraded song reference, lam={lam} shrink={shrink}",
                least_squares_undo(song_db, reference, response, lam, shrink),
            )
        emit(
            "estimator, ORACLE own undegraded song reference, best 4 of the 9 bands",
            least_squares_undo(song_db, reference, response, 0.0, 1.0, changed_bands=4),
        )
    if "others" in wanted:
        own = real["own"]
        reference = np.stack([np.mean([v for k, v in own.items() if k != s], axis=0) for s in songs])
        for lam, shrink in ESTIMATOR_GRID:
            emit(
                f"estimator, mean of the other real songs as reference, lam={lam} shrink={shrink}",
                least_squares_undo(song_db, reference, response, lam, shrink),
            )
        references = [np.stack([v for k, v in own.items() if k != s]) for s in songs]
        for noise in (1.0, 16.0, 64.0):
            emit(
                f"linear-Gaussian posterior, prior = the other real songs' spectra, noise {noise:g} dB^2",
                gaussian_prior_undo(song_db, references, response, noise),
            )
    if "shipped" in wanted:
        model = model_from_checkpoint(payload, args.models / "eq.pt").eval()
        pred = np.zeros_like(targets)
        with torch.no_grad():
            for i, s in enumerate(real["spectra"]):
                if len(s):
                    u = model.head(torch.tensor(s, dtype=torch.float32)).mean(0, keepdim=True)
                    pred[i] = denormalise_targets("eq", u)[0].numpy()
        emit("shipped EQ model, outputs averaged over the song's blocks (render)", pred)
        emit("shipped EQ model, same, x 3 (is the direction right?)", np.clip(3 * pred, -15, 15))
    if "trained" in wanted:
        data = training_songs(args.audio, args.work, args.seed, args.takes, args.voices, args.per_song)
        train, val = data["train"], data["val"]
        ok = np.isfinite(song_db).all(1)
        x_real = np.nan_to_num(song_db / DB_RANGE)
        x = np.c_[train["spectra"] / DB_RANGE, np.ones(len(train["spectra"]))]
        zero_val, zero_train = np.abs(val["targets"]).mean(), np.abs(train["targets"]).mean()
        for lam in (1.0, 10.0, 100.0, 1000.0):
            w = np.linalg.solve(x.T @ x + lam * np.diag([1.0] * 128 + [0.0]), x.T @ train["targets"])
            pred = np.where(ok[:, None], np.clip(np.c_[x_real, np.ones(len(x_real))] @ w, -15, 15), 0.0)
            val_mae = np.abs(np.c_[val["spectra"] / DB_RANGE, np.ones(len(val["spectra"]))] @ w - val["targets"]).mean()
            train_mae = np.abs(x @ w - train["targets"]).mean()
            emit(
                f"ridge lam={lam:g} on licence-clean song averages",
                pred,
                n_train=len(train["targets"]),
                train_over_zero=round(float(train_mae / zero_train), 3),
                val_over_zero=round(float(val_mae / zero_val), 3),
            )
        reference = train["spectra"].mean(0)
        for lam, shrink in ESTIMATOR_GRID[:3]:
            emit(
                f"estimator, reference = licence-clean training songs' average, lam={lam} shrink={shrink}",
                least_squares_undo(song_db, reference, response, lam, shrink),
            )
        for loss in ("l1", "mse"):
            net = fit_mlp(train, val, args.seed, loss)
            undo = functools.partial(mlp_undo, net)
            emit(
                f"MLP {loss} on licence-clean song averages",
                np.where(ok[:, None], undo(np.nan_to_num(song_db)), 0.0),
                n_train=len(train["targets"]),
                train_over_zero=round(float(np.abs(undo(train["spectra"]) - train["targets"]).mean() / zero_train), 3),
                val_over_zero=round(float(np.abs(undo(val["spectra"]) - val["targets"]).mean() / zero_val), 3),
            )
    if args.results:
        with open(args.results, "a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
