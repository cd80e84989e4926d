#!/usr/bin/env python
"""EQ-model ablations behind the default models' model card (research aid, not shipped).

Generates EQ examples in memory from one vocal source, trains the EQ CNN, and scores it
on held-out synthetic songs, the held-out last quarter of the CC BY dry vocals, and the
real songs and karaoke clips (the dataset `scripts/evaluate_real_clips.py` builds; run
that first). One JSON line per run is appended to ``--results``::

    python scripts/ablate_eq_cnn.py syn-paper --train syn --loss paper --val syn
    python scripts/ablate_eq_cnn.py dry-paper --train dry --loss paper
    python scripts/ablate_eq_cnn.py dry-var-mse --train dry --loss mse --augment variation

The model card's last two EQ rows (recording variations with L1 and with MSE) were
measured on the default models' own EQ dataset instead (``vocalmix train eq
<work>/data-eq-12x100 --loss l1|mse``, then ``scripts/evaluate_real_clips.py --models``).
The first rows were measured with a draft of this script whose per-source generators
were seeded by Python's salted ``hash``; reruns draw other degradations, so their MAEs
differ somewhat from the quoted ones (not re-measured).

Examples are cached in ``--work`` (default ``/tmp/vocalmix-eq-ablation``).
"""
import argparse
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import torch

from vocalmix.training.build import BuildConfig, _eq_examples, song_seed
from vocalmix.nets.checkpoints import load_checkpoint, model_from_checkpoint
from vocalmix.training.train import Arrays, TrainConfig, fit, load_arrays, denormalise, predict_normalised
from vocalmix.training.synthesis import synthetic_song, synthetic_backing
from vocalmix.training.targets import integrated_loudness
from vocalmix.audio import load_audio
from vocalmix.training.synthesis import recording_variation

AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"

REAL = "/tmp/vocalmix-real-clips/real-test-seed0-eq200"
DRY = ["vocadito_1", "vocalset_male1_vibrato", "vocalset_female1_straight", "vocalset_female1_vibrato", "vocalset_male1_spoken"]

def dry_sources(part):  # part: 'train' (first 75 %) or 'val' (last 25 %)
    out = []
    for i, name in enumerate(DRY):
        v = load_audio(AUDIO / "dry" / f"{name}.flac").samples.mean(0)
        v = v * 10 ** ((-20 - integrated_loudness(v[None], 44100)) / 20)
        cut = int(0.75 * len(v))
        v = v[:cut] if part == "train" else v[cut:]
        rng = np.random.default_rng([7, i, part == "val"])
        b = synthetic_backing(len(v) / 44100, 44100, rng)[:, :len(v)].mean(0)
        bal = rng.uniform(-6, 2)
        b = b * 10 ** ((-20 - bal - integrated_loudness(b[None], 44100)) / 20)
        out.append((name, v.astype(np.float32), b.astype(np.float32)))
    return out

def synth_sources(n, seconds=10, seed=0):
    out = []
    for i in range(n):
        s = synthetic_song(seed * 100003 + i, seconds)
        out.append((f"syn{i}", s["vocal"].mean(0).astype(np.float32), s["backing"].mean(0).astype(np.float32)))
    return out

def examples(sources, per_source, seed=0, augment=None):
    feats, tg, ch, songs = [], [], [], []
    for j, (name, v, b) in enumerate(sources):
        cfg = BuildConfig(seed=seed, eq_per_song=per_source)
        g = torch.Generator().manual_seed(song_seed(seed, name))
        if augment is None:
            f, t, c = _eq_examples(v, b, cfg, g)
            feats.append(f.float().numpy()); tg.append(t.numpy()); ch.append(c.numpy()); songs += [name] * len(f)
            continue
        k = 20
        cfg = BuildConfig(seed=seed, eq_per_song=max(1, per_source // k))
        for r in range(k):
            vv = augment(v, np.random.default_rng([seed, j, r]))
            f, t, c = _eq_examples(vv, b, cfg, g)
            feats.append(f.float().numpy()); tg.append(t.numpy()); ch.append(c.numpy()); songs += [name] * len(f)
    return Arrays(np.concatenate(feats), np.concatenate(tg).astype(np.float64), songs, np.concatenate(ch))

def real_eq():
    return load_arrays(REAL, "eq", "test")

def score(ckpt, data):
    p = load_checkpoint(ckpt); m = model_from_checkpoint(p)
    u = predict_normalised(m, data.features)
    pred = denormalise("eq", u)
    err = np.abs(pred - data.targets).mean()
    base = np.abs(np.asarray(p["train_mean"])[None] - data.targets).mean()
    return float(err), float(base), np.abs(pred - data.targets).mean(0)

torch.set_num_threads(1)
p = argparse.ArgumentParser(description="EQ-model ablations")
p.add_argument("name"); p.add_argument("--train", default="dry")
p.add_argument("--lr", type=float, default=1e-3); p.add_argument("--epochs", type=int, default=10)
p.add_argument("--augment", choices=("none", "variation"), default="none")
p.add_argument("--loss", default="paper")
p.add_argument("--work", default="/tmp/vocalmix-eq-ablation"); p.add_argument("--n", type=int, default=8000)
p.add_argument("--val", default="dry"); p.add_argument("--batch", type=int, default=30)
p.add_argument("--patience", type=int, default=4)
a = p.parse_args()

def cached(name, make):
    path = f"{a.work}/cache-{name}.pkl"
    if os.path.exists(path):
        return pickle.load(open(path, "rb"))
    t = time.time(); obj = make(); print(f"made {name} in {time.time()-t:.0f}s", flush=True)
    pickle.dump(obj, open(path, "wb")); return obj

os.makedirs(a.work, exist_ok=True)
aug = None if a.augment == "none" else (lambda v, rng: recording_variation(v, 44100, rng))
parts = []
if a.train in ("syn", "both"):
    k = a.n if a.train == "syn" else a.n // 2
    parts.append(cached(f"syn-train-{k}-{a.augment}", lambda: examples(synth_sources(40), k // 40, augment=aug)))
if a.train in ("dry", "both"):
    k = a.n if a.train == "dry" else a.n // 2
    parts.append(cached(f"dry-train-{k}-{a.augment}", lambda: examples(dry_sources("train"), k // 5, seed=1, augment=aug)))
train = Arrays.concat(parts)
vals = {"dry": cached("dry-val", lambda: examples(dry_sources("val"), 80, seed=2)),
        "syn": cached("syn-val", lambda: examples(synth_sources(8, seed=9), 50, seed=2))}
cfg = TrainConfig(task="eq", epochs=a.epochs, lr=a.lr, loss=a.loss, patience=a.patience, batch_size=a.batch)
t = time.time()
r = fit(cfg, train, vals[a.val], f"{a.work}/models-{a.name}", progress=True)
ck = f"{a.work}/models-{a.name}/eq.pt"
res = {"name": a.name, "args": vars(a), "minutes": (time.time()-t)/60, "best_epoch": r.best_epoch, "n_train": len(train)}
for k, d in [("dry_val", vals["dry"]), ("syn_val", vals["syn"]), ("real", real_eq())]:
    e, b, bands = score(ck, d)
    res[k] = {"cnn": round(e, 3), "mean": round(b, 3), "ratio": round(e / b, 3), "bands": [round(float(x), 2) for x in bands]}
print(json.dumps(res), flush=True)
open(f"{a.work}/results.jsonl", "a").write(json.dumps(res) + "\n")
