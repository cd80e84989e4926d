"""Evidence for cnn-e2e: undo real vocals that no model was trained on.

Each held-out vocal stem (``shared/audio/songs/*/vocal.flac``, folded to mono) is degraded
by seeded random known processing (:func:`vocalmix.training.e2e.degrade`) and given a
target: the clean stem rendered through the chain with settings drawn from the e2e target
prior, at a drawn loudness against the song's own backing. Every method sees the degraded
vocal and the backing, decides settings, and its render (the plug-in-grid ``MixSettings``,
64 FDN lines, as ``vocalmix render`` would) is compared with the target:

* MR-STFT distance (auraloss, the training loss's resolutions) to the target vocal;
* per-setting errors against the target chain: EQ response error (RMS over 100 Hz-10 kHz,
  dB, of the method's EQ times the degradation's EQ against the target's EQ), compressor
  ratio, reverb time (octaves), dry/wet (%), and the reached vocal-to-backing loudness (LU,
  BS.1770 integrated, the measure the level rule uses; the target is levelled by it too);
* whether every decision validates and exports to the plug-ins without a warning.

Methods: mean settings (the target prior's centre, threshold and level placed as cnn-e2e
places them), rules, the shipped parameter-trained CNN, and cnn-e2e. Two bounds, not
methods, rendered from the *clean* (undegraded) vocal, say how much of the distance any
predictor can remove: "clean vocal + target settings" (the measurement's own floor: snapping
to the plug-in grids and the level rule's gated loudness) and "clean vocal + mean settings"
(the floor for a predictor that undoes every degradation perfectly but, seeing only the
degraded vocal, cannot know the target's own draw from the prior).

``--degradation eq|dynamics|room|none`` keeps only that part of the degradation (none: only the gain) (the random draws
and so the targets stay the same), to show which part a method leaves undone.

    python scripts/evaluate_e2e.py [--model DIR] [--cases-per-song 4] [--seed 1234] [--json out.json]
                                   [--methods NAME,...] [--degradation all|eq|dynamics|room|none]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SONGS = ROOT.parent / "shared" / "audio" / "songs"


CLEAN_TARGET = "bound: clean vocal + target settings"
CLEAN_MEAN = "bound: clean vocal + mean settings"
MEAN = "mean settings"
CNN = "cnn (parameter-trained)"
E2E = "cnn-e2e"
ALL_METHODS = (CLEAN_TARGET, CLEAN_MEAN, MEAN, "rules", CNN, E2E)


class _CountWarnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        self.count += 1


def eq_response_db(settings_list, sr: int, n_fft: int = 8192) -> np.ndarray:
    from vocalmix.dsp.eq import multi_eq_response
    from vocalmix.mixing import settings_to_params

    eq = settings_to_params(settings_list).eq
    h = multi_eq_response(
        sr, n_fft, eq.frequency_hz.double(), eq.gain_db.double(), eq.q.double(), eq.filter_type, eq.enabled
    )
    return 20 * np.log10(np.abs(h.numpy()) + 1e-12)


def _relative(vocal: np.ndarray, backing: np.ndarray, sr: int) -> float:
    from vocalmix import analysis

    return analysis.integrated_loudness(vocal, sr) - analysis.integrated_loudness(backing, sr)


def main(argv=None) -> int:
    from vocalmix.training import e2e

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="cnn-e2e model folder (default: shipped)")
    ap.add_argument("--cases-per-song", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--methods", default=None, help=f"comma-separated subset of: {', '.join(ALL_METHODS)} (default: all)"
    )
    ap.add_argument(
        "--degradation",
        choices=e2e.DEGRADATION_PARTS,
        default="all",
        help="keep only this part of the degradation (EQ resonances and tilt, expansion, room); gain always",
    )
    args = ap.parse_args(argv)
    chosen = ALL_METHODS if args.methods is None else tuple(m.strip() for m in args.methods.split(","))
    unknown = [m for m in chosen if m not in ALL_METHODS]
    if unknown:
        print(f"--methods: unknown {', '.join(unknown)} (choose from {', '.join(ALL_METHODS)})", file=sys.stderr)
        return 2
    torch.set_num_threads(1)

    from vocalmix.audio import load_audio
    from vocalmix.dsp.eq import multi_eq_response
    from vocalmix.export import export_files
    from vocalmix.methods import get_method
    from vocalmix.methods.cnn_e2e import settings_from_values
    from vocalmix.mixing import process_vocal
    from vocalmix.nets import e2e_outputs
    from vocalmix.plugins import plugin_states, snap_to_plugin_grids
    from vocalmix.settings import FILTER_TYPES
    from vocalmix.training.losses import MultiResolutionSTFT

    if not SONGS.is_dir():
        print(f"{SONGS}: held-out songs not found", file=sys.stderr)
        return 2
    sr = e2e.SAMPLE_RATE
    stft = MultiResolutionSTFT()
    gen = torch.Generator().manual_seed(args.seed)
    counter = _CountWarnings()
    logging.getLogger("vocalmix").addHandler(counter)

    makers = {
        CLEAN_TARGET: lambda: None,
        CLEAN_MEAN: lambda: None,
        MEAN: lambda: None,
        "rules": lambda: get_method("rules"),
        CNN: lambda: get_method("cnn"),
        E2E: lambda: get_method("cnn-e2e", **({"model_dir": args.model} if args.model else {})),
    }
    methods = {name: makers[name]() for name in ALL_METHODS if name in chosen}
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    centre = e2e.prior_centre()
    degradation = e2e.degradation_part(args.degradation)
    grid = None
    for song in sorted(SONGS.iterdir()):
        vocal = load_audio(song / "vocal.flac", sr).samples.mean(axis=0, keepdims=True).astype(np.float32)
        backing = load_audio(song / "backing.flac", sr).samples.astype(np.float32)
        if backing.shape[0] == 1:
            backing = np.repeat(backing, 2, axis=0)
        n = min(vocal.shape[-1], backing.shape[-1])
        vocal, backing = vocal[:, :n], backing[:, :n]
        for case in range(args.cases_per_song):
            clean = torch.from_numpy(vocal)[None]
            bak = torch.from_numpy(backing)[None]
            phys = e2e.sample_prior(1, gen)
            with torch.no_grad():
                target, _ = e2e.render(clean, bak, phys, sr, fdn_lines=64, training=False)
            # Methods set the level by BS.1770 integrated (gated) loudness, as `vocalmix render`
            # does; the target is put at its drawn relative loudness by the same measure (the
            # training clips' ungated measure differs by several LU on songs with pauses).
            rel_target = phys["level.relative_loudness_lu"].item()
            target = target * 10 ** ((rel_target - _relative(target[0].numpy(), backing, sr)) / 20)
            degraded, record = e2e.degrade(clean, sr, gen, degradation)
            target_values = {k: float(v[0]) for k, v in phys.items()}
            target_settings = e2e_outputs.to_mix_settings(target_values, 0.0, snap=False)
            # The degradation's EQ as a response on the same grid.
            n_fft = 8192
            h_deg = multi_eq_response(
                sr,
                n_fft,
                record["eq_frequency_hz"].double(),
                record["eq_gain_db"].double(),
                record["eq_q"].double(),
                torch.tensor(
                    [
                        [FILTER_TYPES["low_shelf"]]
                        + [FILTER_TYPES["peak"]] * (record["eq_frequency_hz"].shape[1] - 2)
                        + [FILTER_TYPES["high_shelf"]]
                    ]
                ),
            )
            deg_db = 20 * np.log10(np.abs(h_deg.numpy()[0]) + 1e-12)
            target_db = eq_response_db([target_settings], sr, n_fft)[0]
            if grid is None:
                f = np.arange(n_fft // 2 + 1) * sr / n_fft
                grid = (f >= 100) & (f <= 10000)
            deg_np = degraded[0].numpy()
            clean_np = vocal
            for name, method in methods.items():
                start = time.perf_counter()
                heard = clean_np if name in (CLEAN_TARGET, CLEAN_MEAN) else deg_np
                if name == CLEAN_TARGET:
                    settings, _ = settings_from_values(target_values, heard, backing, sr)
                elif name in (CLEAN_MEAN, MEAN):
                    settings, _ = settings_from_values(centre, heard, backing, sr)
                else:
                    settings = method.decide(heard, backing, sr).settings
                settings = snap_to_plugin_grids(settings)
                decide_s = time.perf_counter() - start
                valid = True
                try:
                    settings.validate()
                except Exception:  # noqa: BLE001 - the table counts invalid decisions
                    valid = False
                before = counter.count
                plugin_states(settings)
                export_files(settings)
                warnings = counter.count - before
                out = torch.from_numpy(process_vocal(heard, sr, settings))[None]
                dist = float(stft(out, target, per_item=True)[0])
                method_db = eq_response_db([settings], sr, n_fft)[0]
                heard_db = 0.0 if heard is clean_np else deg_db
                eq_err = float(np.sqrt(np.mean((method_db + heard_db - target_db)[grid] ** 2)))
                rel = _relative(out[0].numpy(), backing, sr)
                c, r = settings.compressor, settings.reverb
                rows[name].append(
                    {
                        "song": song.name,
                        "case": case,
                        "mr_stft": dist,
                        "eq_response_db": eq_err,
                        "ratio_error": abs(c.ratio - target_values["compressor.ratio"]),
                        "reverb_time_octaves": abs(math.log2(r.reverb_time_s / target_values["reverb.reverb_time_s"])),
                        "dry_wet_pct_error": abs(r.dry_wet_pct - target_values["reverb.dry_wet_pct"]),
                        "relative_loudness_lu_error": abs(rel - rel_target),
                        "valid": valid,
                        "export_warnings": warnings,
                        "decide_s": decide_s,
                    }
                )
            print(
                f"{song.name} case {case}: " + ", ".join(f"{m} {rows[m][-1]['mr_stft']:.3f}" for m in methods),
                file=sys.stderr,
                flush=True,
            )

    keys = [
        "mr_stft",
        "eq_response_db",
        "ratio_error",
        "reverb_time_octaves",
        "dry_wet_pct_error",
        "relative_loudness_lu_error",
    ]
    summary = {}
    for name, rs in rows.items():
        summary[name] = {k: float(np.mean([r[k] for r in rs])) for k in keys}
        summary[name]["mr_stft_std"] = float(np.std([r["mr_stft"] for r in rs]))
        summary[name]["all_valid"] = all(r["valid"] for r in rs)
        summary[name]["export_warnings"] = int(sum(r["export_warnings"] for r in rs))
        summary[name]["cases"] = len(rs)
    n_cases = len(next(iter(rows.values())))
    print(
        f"\nHeld-out real vocals ({n_cases} degraded cases from {SONGS}), seed {args.seed}, "
        f"degradation: {args.degradation}:\n"
    )
    print(
        "| method | MR-STFT to target | EQ response error dB | ratio error | reverb time error (oct) | "
        "dry/wet error % | level error LU | valid | export warnings |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, s in summary.items():
        print(
            f"| {name} | {s['mr_stft']:.3f} ± {s['mr_stft_std']:.3f} | {s['eq_response_db']:.2f} | "
            f"{s['ratio_error']:.2f} | {s['reverb_time_octaves']:.2f} | {s['dry_wet_pct_error']:.1f} | "
            f"{s['relative_loudness_lu_error']:.2f} | {'all' if s['all_valid'] else 'NO'} | {s['export_warnings']} |"
        )
    if E2E in summary:
        e2e_d = summary[E2E]["mr_stft"]
        for ref in (CNN, MEAN):
            if ref in summary:
                print(f"cnn-e2e vs {ref}: {100 * (1 - e2e_d / summary[ref]['mr_stft']):+.1f} % lower MR-STFT distance")
        if MEAN in summary and CLEAN_MEAN in summary:
            removable = summary[MEAN]["mr_stft"] - summary[CLEAN_MEAN]["mr_stft"]
            if removable > 0:
                print(
                    f"cnn-e2e removes {100 * (summary[MEAN]['mr_stft'] - e2e_d) / removable:.0f} % of the distance "
                    f"a perfect undo of the degradation would remove ({removable:.3f})"
                )
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "cases": rows, "seed": args.seed}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
