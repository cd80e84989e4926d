#!/usr/bin/env python
"""Train, measure and ship the default Wave-U-Net checkpoint (``vocalmix/models/waveunet/``).

Usage (from the repository root; about 15 minutes on one busy CPU core)::

    OMP_NUM_THREADS=1 python scripts/train_waveunet_default.py --audio ../shared/audio
    OMP_NUM_THREADS=1 python scripts/train_waveunet_default.py --audio ../shared/audio --evaluate-only

1. **Data that may be redistributed.** The CC BY 4.0 dry vocals in ``<audio>/dry``
   (vocadito, VocalSet), cut into 10-s pieces, each paired with
   :data:`BACKINGS_PER_VOCAL` synthetic backings (``vocalmix.training.synthesis``) at a
   random vocal gain. There is no reference mix for such pairs, so the target is the
   **rules method's mix** (``--target rules``): the shipped network imitates the rules
   mixer. One singer's clip (VocalSet female1, vibrato) is the validation song.
2. **Training** through ``vocalmix.training.waveunet_train`` (the code behind ``vocalmix
   train waveunet``), with the research's recipe except where the time budget forces a
   change, each listed in :data:`SHIPPED` and in the model card.
3. **Measurements** on clips the network never saw: the real songs of ``<audio>/songs``
   (with their released mixes) and the karaoke clips of ``<audio>/karaoke`` (no mix):
   L2 and MR-STFT distance to the reference mix and the relative vocal loudness, for
   waveunet, the rules method and the plain sum of the stems; speed, parameters and
   the peak memory of ``vocalmix render --method waveunet`` on a 5-minute song.
4. **Shipping**: float16 weights, ``MODEL_CARD.md`` and ``evaluation.json`` in ``--out``.

Work files (songs, the prepared cache, full-precision checkpoints) go to ``--work``,
never into the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from vocalmix.training.datasets import CC_BY_DRY_VOCALS

REPO = Path(__file__).resolve().parents[1]
SR = 44100
SEGMENT_SECONDS = 10.0
BACKINGS_PER_VOCAL = 4
VOCAL_GAIN_DB = (-8.0, 8.0)
VAL_CLIP = "vocalset_female1_vibrato"


#: The shipped network and the changes to the research's recipe the ~15-min CPU budget forces.
SHIPPED = {
    "layers": 10,  # the research's depth, kept
    "filters_per_layer": 4,  # research: 24 (6.2 M parameters); 4 gives 0.17 M, 0.35 MB in float16
    "output_window": 4096,  # research (Wave-U-Net): 16389; the 32 k-sample context dominates a step anyway
    "lr": 1e-3,  # research: 1e-4, far too slow for the few hundred steps the budget allows
    "finetune_lr": 1e-4,  # research: 1e-5 (the same tenfold drop)
    "steps_per_epoch": 25,  # research: 200
    "patience": 4,  # research: 20
    "batch_size": 16,  # as the research
    "finetune_batch_size": 32,  # as Wave-U-Net's fine-tuning (doubled batch)
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_songs(audio: Path, work: Path, seed: int) -> Path:
    """Write the dry-vocal + synthetic-backing songs and a CSV listing them (split column set)."""
    from vocalmix.audio import load_audio
    from vocalmix.training.synthesis import synthetic_backing

    folder = work / "songs"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    seg = int(SEGMENT_SECONDS * SR)
    for c, name in enumerate(CC_BY_DRY_VOCALS):
        vocal = load_audio(audio / "dry" / f"{name}.flac", SR).samples[:1]
        for p in range(max(1, vocal.shape[-1] // seg)):
            piece = vocal[:, p * seg : (p + 1) * seg]
            for b in range(BACKINGS_PER_VOCAL):
                rng = np.random.default_rng([seed, c, p, b])
                song_id = f"{name}-{p}-{b}"
                backing = synthetic_backing(piece.shape[-1] / SR, SR, rng)[:, : piece.shape[-1]]
                gain = 10 ** (rng.uniform(*VOCAL_GAIN_DB) / 20)
                d = folder / song_id
                d.mkdir(exist_ok=True)
                sf.write(d / "vocal.flac", (piece[0] * gain).clip(-1, 1), SR, subtype="PCM_24")
                sf.write(d / "backing.flac", backing.T, SR, subtype="PCM_24")
                rows.append(
                    {
                        "id": song_id,
                        "vocal": str(d / "vocal.flac"),
                        "backing": str(d / "backing.flac"),
                        "split": "val" if name == VAL_CLIP else "train",
                    }
                )
    path = work / "songs.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "vocal", "backing", "split"])
        writer.writeheader()
        writer.writerows(rows)
    log(f"{len(rows)} songs in {path}")
    return path


def train(csv_path: Path, work: Path, minutes: float, seed: int) -> Path:
    from vocalmix.training.waveunet_train import WaveUNetTrainConfig, train_waveunet

    config = WaveUNetTrainConfig(**SHIPPED, seed=seed, device="cpu", max_minutes=minutes)
    result = train_waveunet(csv_path, work / "run", config, target="rules", resume=True)
    log(f"best {result.best_phase} epoch {result.best_epoch}, validation L2 {result.best_val_loss:.4g}")
    return result.checkpoint


# -- measurements ---------------------------------------------------------------------------------
def mrstft(x: np.ndarray, y: np.ndarray) -> float:
    """auraloss's MultiResolutionSTFTLoss (FFT 1024/2048/512; spectral convergence + log-magnitude L1),
    channels as batch, on the signals as they are (no level matching: the level is part of the mix)."""
    import torch
    from auraloss.freq import MultiResolutionSTFTLoss

    with torch.no_grad():
        return float(
            MultiResolutionSTFTLoss()(
                torch.from_numpy(x[:, None].astype(np.float32)), torch.from_numpy(y[:, None].astype(np.float32))
            )
        )


def measure(audio: Path, model_dir: Path) -> dict:
    """Distances to the reference mix and relative vocal loudness on clips never trained on."""
    from dataclasses import replace

    from vocalmix import analysis
    from vocalmix.methods import get_method
    from vocalmix.mixing import output_gain, render_mix
    from vocalmix.plugins import snap_to_plugin_grids
    from vocalmix.render import load_pair
    from vocalmix.settings import OutputSettings

    waveunet = get_method("waveunet", model_dir=model_dir)
    rules = get_method("rules")

    def rel_lu(v, b):
        lv, lb = analysis.integrated_loudness(v, SR), analysis.integrated_loudness(b, SR)
        return float(lv - lb)

    def finish(mix):  # the render's output stage with its defaults (ceiling -1 dBTP, no loudness target)
        gain, _ = output_gain(mix.astype(np.float64), SR, -1.0, None)
        return (mix * gain).astype(np.float32), gain

    rows = []
    clips = [("song", d) for d in sorted((audio / "songs").iterdir()) if d.is_dir()]
    clips += [("karaoke", d) for d in sorted((audio / "karaoke").iterdir()) if d.is_dir()]
    for kind, d in clips:
        vocal, backing = load_pair(d / "vocal.flac", d / "backing.flac")[:2]
        mixes, rel = {}, {}
        # rules: settings decided and rendered as `vocalmix render` does; stems give the balance.
        decision = rules.decide(vocal, backing, SR)
        settings = snap_to_plugin_grids(replace(decision.settings, output=OutputSettings()))
        m = render_mix(vocal, backing, SR, settings)
        mixes["rules"], rel["rules"] = m.mix, rel_lu(m.vocal, m.backing)
        # waveunet: the vocal's share is the network's mix minus its mix of the backing alone.
        full = waveunet.decide(vocal, backing, SR).mix
        alone = waveunet.decide(np.zeros_like(vocal), backing, SR).mix
        mixes["waveunet"], gain = finish(full)
        rel["waveunet"] = rel_lu(full - alone, alone)
        # plain sum of the stems as given
        mixes["sum"], _ = finish(np.repeat(vocal, 2, axis=0) + backing)
        rel["sum"] = rel_lu(np.repeat(vocal, 2, axis=0), backing)  # the mono vocal as it sits in the mix
        row = {
            "clip": d.name,
            "kind": kind,
            "seconds": round(vocal.shape[-1] / SR, 2),
            "relative_vocal_loudness_lu": rel,
        }
        if kind == "song":
            from vocalmix.audio import load_audio

            ref = load_audio(d / "mix.flac", SR).samples
            ref = ref[:, : vocal.shape[-1]]
            row["reference_relative_vocal_loudness_lu"] = rel_lu(
                load_audio(d / "vocal.flac", SR).samples, load_audio(d / "backing.flac", SR).samples
            )
            row["l2_to_reference"] = {k: float(np.mean((v[:, : ref.shape[-1]] - ref) ** 2)) for k, v in mixes.items()}
            row["mrstft_to_reference"] = {k: mrstft(v[:, : ref.shape[-1]], ref) for k, v in mixes.items()}
        row["l2_waveunet_to_rules"] = float(np.mean((mixes["waveunet"] - mixes["rules"]) ** 2))
        row["mrstft_waveunet_to_rules"] = mrstft(mixes["waveunet"], mixes["rules"])
        rows.append(row)
        log(f"{d.name}: {json.dumps({k: v for k, v in row.items() if k not in ('clip', 'kind')})}")
    return {"clips": rows}


def speed_and_memory(model_dir: Path, work: Path) -> dict:
    """Network seconds per minute of audio (one thread) and peak memory of a 5-minute CLI render."""
    import torch

    from vocalmix.methods import get_method
    from vocalmix.training.synthesis import synthetic_backing, synthetic_vocal

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    method = get_method("waveunet", model_dir=model_dir)
    vocal, backing = synthetic_vocal(60, SR, rng), synthetic_backing(60, SR, rng)
    load_before = os.getloadavg()[0]
    best = min(_timed(lambda: method.decide(vocal, backing, SR)) for _ in range(3))
    out = {
        "network_seconds_per_minute": best,
        "load_average_1min": round(load_before, 1),
        "n_parameters": method.model.n_parameters(),
        "checkpoint_bytes": (model_dir / "waveunet.pt").stat().st_size,
    }
    # 5-minute song through the CLI, peak resident memory of the child process, waveunet vs rules.
    long_dir = work / "five-minutes"
    long_dir.mkdir(parents=True, exist_ok=True)
    sf.write(long_dir / "vocal.wav", np.tile(vocal[0], 5), SR, subtype="FLOAT")
    sf.write(long_dir / "backing.wav", np.tile(backing, 5).T, SR, subtype="FLOAT")
    # The network's own share: peak memory added by mixing a 5-minute song, inputs already in memory.
    probe = (
        "import resource, sys, numpy as np; from vocalmix.methods import get_method; "
        "m = get_method('waveunet', model_dir=sys.argv[1]); n = 300 * 44100; r = np.random.default_rng(0); "
        "v = (0.1 * r.standard_normal((1, n))).astype(np.float32); "
        "b = (0.1 * r.standard_normal((2, n))).astype(np.float32); "
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; m.decide(v, b, 44100); "
        "print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(model_dir)],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", **_env()},
        check=True,
    )
    before_kb, after_kb = map(int, done.stdout.split())
    out["network_5min_added_peak_mb"] = round((after_kb - before_kb) / 1024, 1)
    for method_name in ("waveunet", "rules"):
        cmd = [
            sys.executable,
            "-c",
            "import resource, sys; from vocalmix.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)",
            "render",
            str(long_dir / "vocal.wav"),
            str(long_dir / "backing.wav"),
            "-o",
            str(long_dir / f"mix-{method_name}.wav"),
            "--method",
            method_name,
            "--force",
            "-q",
        ]
        if method_name == "waveunet":
            cmd += ["--model", str(model_dir)]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **_env()})
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        out[f"render_5min_{method_name}_seconds"] = round(time.perf_counter() - t0, 1)
        out[f"render_5min_{method_name}_peak_rss_mb"] = round(int(done.stderr.strip().splitlines()[-1]) / 1024, 1)
    return out


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _fmt(v, digits=2):
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def write_card(evaluation: dict, out: Path) -> Path:
    """MODEL_CARD.md from the measurements (every number in it comes from ``evaluation.json``)."""
    t = evaluation["training"]
    cfg, tc, metrics = t["model_config"], t["train_config"], t["metrics"]
    songs = [r for r in evaluation["clips"] if r["kind"] == "song"]
    karaoke = [r for r in evaluation["clips"] if r["kind"] == "karaoke"]
    methods = ("waveunet", "rules", "sum")

    def mean(rows, key, m):
        return float(np.mean([r[key][m] for r in rows]))

    lines = [
        "# Default Wave-U-Net mixer (`--method waveunet`)",
        "",
        "A Wave-U-Net (Stoller et al. 2018) that mixes a lead vocal (mono) and a backing (stereo) into a stereo mix",
        "directly, with no effect settings, as the end-to-end system of Koszewski et al. (2023).",
        "**It imitates vocalmix's rules mixer**: the only material whose licence allows shipping weights has no",
        "reference mixes, so its training targets are mixes rendered by `vocalmix render --method rules` (render",
        "defaults). It is a small, working default and a baseline for comparisons, not a professional mixer; train",
        "your own on songs with reference mixes (`vocalmix train waveunet /data/musdb18hq --out DIR`).",
        "",
        "## Network",
        "",
        f"- {cfg['layers']} U-Net levels, down-sampling convolutions of {cfg['down_kernel']} taps, up-sampling "
        f"convolutions of {cfg['up_kernel']}, linear up-sampling, linear 1x1 output layer, valid convolutions, "
        f"LeakyReLU 0.2 (the research's settings); **{cfg['filters_per_layer']} filters per level** "
        "(research: 24) to fit the training budget.",
        f"- {t['n_parameters']:,} parameters; `waveunet.pt` {evaluation['checkpoint_bytes'] / 1024:.0f} KB "
        "(float16 weights).",
        f"- Training windows: {t['input_length']} input samples for {t['output_length']} output samples "
        f"(context {(t['input_length'] - t['output_length']) // 2} samples = "
        f"{(t['input_length'] - t['output_length']) / 2 / SR * 1000:.0f} ms on each side, at 44.1 kHz).",
        "",
        "## Training data (all redistributable)",
        "",
        f"The CC BY 4.0 dry vocals below, cut into {SEGMENT_SECONDS:g}-s pieces, each paired with "
        f"{BACKINGS_PER_VOCAL} synthetic backings (drums, bass, chords; `vocalmix.training.synthesis`) at a random "
        f"vocal gain of {VOCAL_GAIN_DB[0]:+g} to {VOCAL_GAIN_DB[1]:+g} dB: {len(t['train_songs'])} training songs and "
        f"{len(t['val_songs'])} validation songs (all pieces of `{VAL_CLIP}`; that singer also sings a training clip, "
        "so validation is not singer-independent; the clips measured below are entirely unseen).",
        "",
        *[f"- {credit}" for credit in CC_BY_DRY_VOCALS.values()],
        "",
        "## Training",
        "",
        "L2 loss, Adam (beta1 0.9, beta2 0.999), early stopping on the validation loss, then a fine-tuning step",
        "(doubled batch, learning rate / 10) from the best model; the model with the lowest validation loss is kept.",
        "The ~15-minute single-core budget forces these departures from the research's recipe:",
        "",
        "| setting | research | shipped |",
        "|---|---|---|",
        f"| filters per level | 24 | {tc['filters_per_layer']} |",
        f"| output samples per window | 16389 | {t['output_length']} |",
        f"| learning rate (fine-tuning) | 1e-4 (1e-5) | {tc['lr']:g} ({tc['finetune_lr']:g}) |",
        f"| update steps per epoch | 200 | {tc['steps_per_epoch']} |",
        f"| early-stopping patience | 20 | {tc['patience']} |",
        f"| wall-time cap per step | none | {tc['max_minutes']:g} min |",
        f"| batch (fine-tuning) | 16 (32) | {tc['batch_size']} ({tc['finetune_batch_size']}) |",
        "",
        f"Best model: {metrics['phase']} epoch {metrics['epoch']}, validation L2 {metrics['val_loss']:.3g} "
        f"(the untrained network, which outputs vocal + backing, scores {evaluation['untrained_val_loss']:.3g} "
        "on the same validation windows).",
        "",
        "## Measured on clips never trained on",
        "",
        "`songs/` of the project's test audio (MUSDB18 excerpts with their released mixes; research use only, never",
        "trained on). *waveunet* is this network, *rules* is `vocalmix render` with the rules method, *sum* is vocal +",
        "backing unprocessed; each mix goes through the render's output stage (-1 dBTP ceiling). "
        "L2 is the mean squared",
        "sample difference to the released mix; MR-STFT is auraloss's multi-resolution STFT loss (FFT 1024/2048/512,",
        "spectral convergence + log-magnitude L1) on the signals as they are. Relative vocal loudness is vocal minus",
        "backing integrated loudness (BS.1770): for the reference, of its vocal and backing stems; for rules, of its",
        "processed vocal and backing; for waveunet, of (network(vocal, backing) - network(0, backing)) and",
        "network(0, backing). Note that these stems are already mixed stems of the released mix, so the plain sum is",
        "almost the reference itself (the stems sum to the mix up to coding noise).",
        "",
        "| clip | L2 waveunet | L2 rules | L2 sum | MR-STFT waveunet | MR-STFT rules | MR-STFT sum | rel. LU waveunet |"
        " rel. LU rules | rel. LU reference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in songs:
        lines.append(
            f"| {r['clip']} | "
            + " | ".join(f"{r['l2_to_reference'][m]:.2e}" for m in methods)
            + " | "
            + " | ".join(_fmt(r["mrstft_to_reference"][m]) for m in methods)
            + " | "
            + " | ".join(_fmt(r["relative_vocal_loudness_lu"][m], 1) for m in ("waveunet", "rules"))
            + f" | {_fmt(r['reference_relative_vocal_loudness_lu'], 1)} |"
        )
    if songs:
        lines.append(
            "| **mean** | "
            + " | ".join(f"{mean(songs, 'l2_to_reference', m):.2e}" for m in methods)
            + " | "
            + " | ".join(_fmt(mean(songs, "mrstft_to_reference", m)) for m in methods)
            + " | "
            + " | ".join(_fmt(mean(songs, "relative_vocal_loudness_lu", m), 1) for m in ("waveunet", "rules"))
            + f" | {_fmt(float(np.mean([r['reference_relative_vocal_loudness_lu'] for r in songs])), 1)} |"
        )
    if songs:
        l2 = {m: mean(songs, "l2_to_reference", m) for m in methods}
        st = {m: mean(songs, "mrstft_to_reference", m) for m in methods}
        lines += [
            "",
            "In words: against the released mixes, waveunet's L2 is "
            f"{'lower' if l2['waveunet'] < l2['rules'] else 'higher'}"
            f" than the rules' ({l2['waveunet']:.2e} vs {l2['rules']:.2e} mean) and its MR-STFT distance "
            f"{'lower' if st['waveunet'] < st['rules'] else 'higher'} ({st['waveunet']:.2f} vs {st['rules']:.2f}); the "
            f"unprocessed sum is closest on both ({l2['sum']:.2e}, {st['sum']:.2f}) because these stems are the "
            "released mix's own."
            + (
                " The network changes the inputs less than the rules do (smaller L2) but in "
                "ways the spectrum shows (larger MR-STFT)."
                if l2["waveunet"] < l2["rules"] and st["waveunet"] > st["rules"]
                else ""
            ),
        ]
    lines += [
        "",
        "MIR-1K karaoke clips (no released mix; research use only, never trained on): how closely the network",
        "imitates the rules mixer it was trained to imitate, and the balances.",
        "",
        "| clip | L2 waveunet vs rules | MR-STFT waveunet vs rules | rel. LU waveunet | rel. LU rules | rel. LU sum |",
        "|---|---|---|---|---|---|",
    ]
    for r in karaoke:
        rel = r["relative_vocal_loudness_lu"]
        lines.append(
            f"| {r['clip']} | {r['l2_waveunet_to_rules']:.2e} | {_fmt(r['mrstft_waveunet_to_rules'])} | "
            f"{_fmt(rel['waveunet'], 1)} | {_fmt(rel['rules'], 1)} | {_fmt(rel['sum'], 1)} |"
        )
    lines += [
        "",
        "## Speed and memory (this project's 2-core machine, shared with other jobs while measured)",
        "",
        "`vocalmix render --method waveunet` processes the whole song through the network; the rules method, the",
        "peer below, measures the song and renders the effect chain.",
        "",
        f"- Network alone, one thread: {evaluation['network_seconds_per_minute']:.1f} s per minute of audio (best of "
        f"3; 1-minute load average {evaluation['load_average_1min']:g} on the 2 cores when measured, so an idle "
        "machine is faster).",
        f"- `vocalmix render --method waveunet` of a 5-minute song, start to exit: "
        f"{evaluation['render_5min_waveunet_seconds']:g} s, "
        f"peak memory {evaluation['render_5min_waveunet_peak_rss_mb']:g} MB "
        f"(rules, same song and run: {evaluation['render_5min_rules_seconds']:g} s, "
        f"{evaluation['render_5min_rules_peak_rss_mb']:g} MB). Most of that is shared by every method: the audio "
        "itself and the output stage's 4x-oversampled true-peak measure.",
        f"- The network's own share, mixing a 5-minute song already in memory: "
        f"+{evaluation['network_5min_added_peak_mb']:g} MB peak. Songs are processed in windows of 2^17 output "
        "samples, so this does not grow with the song beyond the song's own input and output arrays.",
        "",
        "## Limitations",
        "",
        "- Trained on 4 singers' dry takes over synthetic backings for minutes of CPU time: it learns a balance and",
        "  a little colouring of the rules' mixes, not the rules' song-level decisions (level from integrated",
        "  loudness, compression from the loudness range, reverb from the tempo): its receptive field is "
        f"{(t['input_length'] - t['output_length']) / SR:.2f} s.",
        "- No effect settings: nothing to export to plug-ins, no stems.",
        "",
        f"Measured {evaluation['measured']}. Reproduce: `OMP_NUM_THREADS=1 python scripts/train_waveunet_default.py "
        "--audio ../shared/audio` (measurements only: add `--evaluate-only`); numbers in `evaluation.json`.",
        "",
    ]
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path


def untrained_val_loss(work: Path) -> float:
    """Validation L2 of vocal + backing (what the untrained, sum-initialised network outputs)."""
    from vocalmix.nets.waveunet import WaveUNet, WaveUNetConfig, lengths_for_output
    from vocalmix.training.waveunet_data import SongCache, discover_mix_songs, prepare_songs
    from vocalmix.training.waveunet_train import Windows, init_as_sum, validation_loss

    manifest = json.loads((work / "run" / "manifest.json").read_text())
    items = [i for i in discover_mix_songs(work / "songs.csv", target="rules") if i.id in manifest["splits"]["val"]]
    cache = SongCache(prepare_songs(items, work / "run" / "audio"))
    model = WaveUNet(WaveUNetConfig(layers=SHIPPED["layers"], filters_per_layer=SHIPPED["filters_per_layer"]))
    init_as_sum(model)
    n_in, n_out = lengths_for_output(model.config, SHIPPED["output_window"])
    windows = Windows(cache, n_in, n_out, model.context)
    return validation_loss(model, windows, windows.fixed(manifest["splits"]["val"], 64), "cpu")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, default=REPO.parent / "shared" / "audio")
    parser.add_argument("--work", type=Path, default=Path("/tmp/vocalmix-waveunet-default"))
    parser.add_argument("--out", type=Path, default=REPO / "vocalmix" / "models" / "waveunet")
    parser.add_argument("--minutes", type=float, default=6.0, help="Wall-time budget per step (training, fine-tuning).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluate-only", action="store_true", help="Re-measure the checkpoint in --out.")
    parser.add_argument("--card-only", action="store_true", help="Rewrite MODEL_CARD.md from --out/evaluation.json.")
    args = parser.parse_args()

    if args.card_only:
        log(f"wrote {write_card(json.loads((args.out / 'evaluation.json').read_text()), args.out)}")
        return 0
    import torch

    torch.set_num_threads(1)
    if not args.evaluate_only:
        songs_csv = build_songs(args.audio, args.work, args.seed)
        best = train(songs_csv, args.work, args.minutes, args.seed)
        from vocalmix.training.waveunet_train import shrink_waveunet_checkpoint

        args.out.mkdir(parents=True, exist_ok=True)
        shrink_waveunet_checkpoint(best, args.out / "waveunet.pt")
        log(f"wrote {args.out / 'waveunet.pt'}")
    evaluation = {
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **measure(args.audio, args.out),
        **speed_and_memory(args.out, args.work),
    }
    from vocalmix.nets.checkpoints import load_waveunet_checkpoint

    payload = load_waveunet_checkpoint(args.out / "waveunet.pt")
    evaluation["training"] = {
        k: payload.get(k)
        for k in (
            "model_config",
            "train_config",
            "metrics",
            "n_parameters",
            "input_length",
            "output_length",
            "train_songs",
            "val_songs",
        )
    }
    evaluation["untrained_val_loss"] = untrained_val_loss(args.work)
    (args.out / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    log(f"wrote {args.out / 'evaluation.json'}")
    log(f"wrote {write_card(evaluation, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
