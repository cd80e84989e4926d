"""Throughput of the batch renderer against pedalboard, in seconds of audio per second.

Usage::

    python scripts/bench_render.py [--clips 64] [--seconds 5] [--workers 2] [--batch 16] [--repeats 3]
                                   [--kinds eq,chain] [--reverb-bank N] [--json out.json]

Both renderers process the *same* clips (synthetic vocals, mono, 44.1 kHz) with the *same*
random settings, drawn once by :class:`vocalmix.training.synthesis.BatchRenderer`, with the
same number of worker processes (one torch/numba thread each), in the same run.
With ``--reverb-bank N`` the reverb settings are drawn from a seeded bank of N (as a
data-set build with ``BatchRenderer(reverb_bank=N)`` draws them) and our renderer computes
each distinct setting's impulse responses once per timed pass (a new renderer, so an
empty cache, every pass; ``--keep-cache`` instead keeps one renderer per worker, its cache
filled by an untimed pass: the steady state of a long data-set build); pedalboard renders
the same settings:

- ``eq``: 4 random peak filters (4 of the 9 octave centres, ±15 dB, Q 1) per clip: our
  batched MultiEQ versus four ``pedalboard.PeakFilter`` in a ``Pedalboard``.
- ``chain``: our full vocal chain (MultiEQ 6 bands, OmniCompressor, FdnReverb 64 lines,
  gain) versus pedalboard's closest equivalent (high-pass, 4 peaks, high shelf,
  Compressor, Reverb (Freeverb, not an FDN), Gain).

Each worker generates its share of clips, renders one small warm-up (numba compilation,
FFT plans), then, ``--repeats`` times, waits at a barrier and renders its share; a pass's
throughput is all audio divided by the time from the first start to the last finish, and
the best pass is reported. The CPU time of that pass (all workers, all threads) is
reported too, as seconds of audio per CPU second: when other processes share the cores it
is far less disturbed than wall time, so compare both columns and the load average
printed first. The script also reports how close our EQ output is to pedalboard's (both
are JUCE/RBJ peak filters).

On the CPU our EQ runs the plug-in's recursion (``vocalmix.dsp.sosfilt.sosfilt_rows``, scipy's
``sosfilt`` arithmetic in float64, the clips side by side), as ``vocalmix.dsp.eq.multi_eq`` does
for renders that need no gradient; the GPU arithmetic below is for the frequency-sampling path
the renderer uses on CUDA.

GPU arithmetic (the design target: at least 50,000 s of audio per second on one modern GPU)
-------------------------------------------------------------------------------------------
The EQ is frequency sampling: per clip of T samples one rFFT and one inverse rFFT of length
N ≈ T + padding (the padding is the slowest pole's decay, a few thousand samples for Q 1
octave peaks), and a product with the band responses evaluated on the N/2 bins.

- Arithmetic per audio sample: two real FFTs ≈ 2 · 2.5 · log2(N) ≈ 90 flops at N ≈ 2^18
  (a 6-s clip); the band responses, 4 biquads evaluated per bin ≈ 4 · 40 / 2 ≈ 80 flops per
  sample; the complex product ≈ 3 flops. About 175 flops per sample.
- Memory traffic per sample: read x (4 B), write y (4 B), and the complex64 spectra
  (N/2 bins · 8 B = 4 B per sample) written and read about 4 times across the FFT passes
  and the product: ≈ 30-50 B per sample.
- 50,000 s/s at 44.1 kHz is 2.2e9 samples/s: 0.39 TFLOP/s and 66-110 GB/s. One modern
  data-centre GPU (e.g. A100: 19.5 TFLOP/s fp32, 1.5 TB/s; even a consumer RTX 4090:
  82 TFLOP/s, 1 TB/s) has 10-50x that, so the EQ degradation is bound by how fast batches
  are fed, not by the device; batches of ≥ 64 clips of a few seconds keep kernels large
  (≥ 10^7 samples per launch, a few dozen launches per batch).
- The full chain is not all on the device: the FdnReverb's impulse responses come from a
  per-sample numba recursion on the CPU (≈ 64 lines · ~30 flops per IR sample), and the
  OmniCompressor's ballistics are a numba scan on the CPU. On a GPU machine the chain's
  throughput is bounded by those CPU parts; for training data the renderer therefore
  reuses each impulse response for several clips (see
  ``vocalmix.training.reverb_estimation.make_estimator_data``).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np

SR = 44100


def _clips(first: int, count: int, seconds: float, seed: int) -> np.ndarray:
    from vocalmix.training.synthesis import synthetic_vocal

    return np.stack(
        [synthetic_vocal(seconds, SR, np.random.default_rng(seed + i)) for i in range(first, first + count)]
    )


def _settings(n: int, seed: int, reverb_bank: int | None = None) -> dict:
    """Every random draw, made once in the parent and shared by both renderers."""
    from vocalmix.training.synthesis import BatchRenderer

    r = BatchRenderer(SR, device="cpu", seed=seed, reverb_bank=reverb_bank)
    d = r.sample_eq_degradation(n)
    chain = r.sample_chain_params(n)
    return {
        "eq": {"applied_db": d.applied_db.numpy(), "bands": d.bands.numpy()},
        "chain": chain,  # ChainParams (pickled to the workers)
    }


_KEPT: dict = {}  # with --keep-cache: the worker's one renderer


def _ours(kind, clips, settings, batch, reverb_bank=None, keep_cache=False):
    import torch

    from vocalmix.training.synthesis import BatchRenderer, EqDegradation

    if keep_cache:
        r = _KEPT.setdefault("renderer", BatchRenderer(SR, device="cpu", reverb_bank=reverb_bank))
    else:
        r = BatchRenderer(SR, device="cpu", reverb_bank=reverb_bank)
    out = []
    with torch.no_grad():
        for i in range(0, clips.shape[0], batch):
            x = torch.from_numpy(clips[i : i + batch])
            if kind == "eq":
                applied = torch.from_numpy(settings["applied_db"][i : i + batch])
                bands = torch.from_numpy(settings["bands"][i : i + batch])
                d = EqDegradation(applied, applied != 0, bands)
                out.append(r.eq_degrade(x, d)[0].numpy())
            else:
                out.append(r.render_chain(x, settings[i : i + batch])[0].numpy())
    return out


def _pedalboard(kind, clips, settings, batch, reverb_bank=None):
    import pedalboard as pb

    from vocalmix.nets.cnn_targets import OCTAVE_CENTRES_HZ

    out = []
    for i in range(clips.shape[0]):
        if kind == "eq":
            bands = settings["bands"][i]
            board = pb.Pedalboard(
                [
                    pb.PeakFilter(
                        cutoff_frequency_hz=float(OCTAVE_CENTRES_HZ[b]),
                        gain_db=float(settings["applied_db"][i, b]),
                        q=1.0,
                    )
                    for b in bands
                ]
            )
        else:
            s = {k: v[i].numpy() for k, v in settings.named_tensors()}
            f, g, q = s["eq.frequency_hz"], s["eq.gain_db"], s["eq.q"]
            board = pb.Pedalboard(
                [pb.HighpassFilter(cutoff_frequency_hz=float(f[0]))]
                + [
                    pb.PeakFilter(cutoff_frequency_hz=float(f[k]), gain_db=float(g[k]), q=float(q[k]))
                    for k in range(1, 5)
                ]
                + [
                    pb.HighShelfFilter(cutoff_frequency_hz=float(f[5]), gain_db=float(g[5]), q=0.7),
                    pb.Compressor(
                        threshold_db=float(s["compressor.threshold_db"]),
                        ratio=float(s["compressor.ratio"]),
                        attack_ms=max(float(s["compressor.attack_ms"]), 0.01),
                        release_ms=max(float(s["compressor.release_ms"]), 1.0),
                    ),
                    pb.Reverb(
                        room_size=min(1.0, float(s["reverb.reverb_time_s"]) / 9.0),
                        wet_level=float(s["reverb.dry_wet"]),
                        dry_level=1.0 - float(s["reverb.dry_wet"]),
                    ),
                    pb.Gain(gain_db=float(s["level.vocal_gain_db"])),
                ]
            )
        out.append(board(clips[i], SR))
    return out


def _worker(
    method,
    kind,
    first,
    count,
    seconds,
    seed,
    settings,
    batch,
    repeats,
    barrier,
    queue,
    reverb_bank,
    keep_memory=False,
    keep_cache=False,
):
    import torch

    if keep_memory:
        from vocalmix.memory import keep_freed_memory, skip_huge_page_advice

        keep_freed_memory()
        skip_huge_page_advice()

    torch.set_num_threads(1)
    os.environ["NUMBA_NUM_THREADS"] = "1"
    clips = _clips(first, count, seconds, seed)
    if kind == "chain":  # ChainParams selects batch items itself
        part = settings[kind][first : first + count]
        warm = part[:1]
    else:
        part = {k: v[first : first + count] for k, v in settings[kind].items()}
        warm = {k: v[:1] for k, v in part.items()}
    if method == "vocalmix":
        render = functools.partial(_ours, keep_cache=keep_cache)
    else:
        render = _pedalboard
    render(kind, clips[:1, :, : SR // 2], warm, batch, reverb_bank)  # compile / warm caches
    if keep_cache and method == "vocalmix":
        render(kind, clips, part, batch, reverb_bank)  # steady state: every IR of the share cached
    passes = []
    for _ in range(repeats):
        barrier.wait()
        t0, c0 = time.time(), time.process_time()
        out = render(kind, clips, part, batch, reverb_bank)
        passes.append((t0, time.time(), time.process_time() - c0))
    sample = np.asarray(out[0] if method == "pedalboard" else out[0][0])
    queue.put((first, passes, sample))


def run(
    method,
    kind,
    n_clips,
    seconds,
    workers,
    seed,
    settings,
    batch,
    repeats=1,
    reverb_bank=None,
    keep_memory=False,
    keep_cache=False,
):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    queue = ctx.Queue()
    share = [n_clips // workers + (1 if w < n_clips % workers else 0) for w in range(workers)]
    starts = np.cumsum([0] + share[:-1])
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                method,
                kind,
                int(s),
                c,
                seconds,
                seed,
                settings,
                batch,
                repeats,
                barrier,
                queue,
                reverb_bank,
                keep_memory,
                keep_cache,
            ),
        )
        for s, c in zip(starts, share)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    # Pass k of every worker started after the same barrier: its wall time runs from the
    # first start to the last finish; the best pass is kept, with its total CPU time.
    wall, cpu = min(
        (max(r[1][k][1] for r in results) - min(r[1][k][0] for r in results), sum(r[1][k][2] for r in results))
        for k in range(repeats)
    )
    first_clip = min(results, key=lambda r: r[0])[2]
    audio_s = n_clips * seconds
    return {
        "method": method,
        "kind": kind,
        "workers": workers,
        "clips": n_clips,
        "audio_s": audio_s,
        "wall_s": wall,
        "audio_s_per_s": audio_s / wall,
        "cpu_s": cpu,
        "audio_s_per_cpu_s": audio_s / cpu,
        "first_clip": first_clip,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch", type=int, default=16, help="clips per call of our renderer")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes; the best is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default="eq,chain")
    ap.add_argument(
        "--reverb-bank",
        type=int,
        default=None,
        help="draw reverb settings from a seeded bank of this many (IRs computed once per setting)",
    )
    ap.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="every worker sets up memory as the vocalmix command does (vocalmix/memory.py: freed memory kept"
        " for reuse, no transparent-huge-page advice from numpy)",
    )
    ap.add_argument(
        "--keep-cache",
        action="store_true",
        help="steady state of a data-set build: each worker keeps one renderer (its reverb IR cache filled by an"
        " untimed pass) instead of a new one per pass",
    )
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    settings = _settings(args.clips, args.seed, args.reverb_bank)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    bank = f"a bank of {args.reverb_bank} reverb settings" if args.reverb_bank else "every reverb setting drawn anew"
    if args.keep_cache:
        bank += " (renderer and its IR cache kept across passes)"
    memory = (
        "freed memory kept, no huge-page advice"
        if args.keep_freed_memory
        else "freed memory returned, numpy's huge-page advice (defaults)"
    )
    print(
        f"{os.cpu_count()} CPUs, load average {load} (1/5/15 min); best of {args.repeats} passes; {bank}; {memory}",
        flush=True,
    )
    rows = []
    for kind in args.kinds.split(","):
        res = {
            m: run(
                m,
                kind,
                args.clips,
                args.seconds,
                args.workers,
                args.seed,
                settings,
                args.batch,
                args.repeats,
                args.reverb_bank,
                args.keep_freed_memory,
                args.keep_cache,
            )
            for m in ("vocalmix", "pedalboard")
        }
        for m, r in res.items():
            rows.append({k: v for k, v in r.items() if k != "first_clip"})
            print(
                f"{kind:<6} {m:<11} {args.workers} workers: {r['audio_s']:.0f} s of audio in {r['wall_s']:.2f} s"
                f" = {r['audio_s_per_s']:,.0f} s/s ({r['audio_s_per_s'] / args.workers:,.0f} s/s per worker);"
                f" CPU {r['cpu_s']:.2f} s = {r['audio_s_per_cpu_s']:,.0f} s of audio per CPU second",
                flush=True,
            )
        if kind == "eq":
            a = res["vocalmix"]["first_clip"].reshape(-1)
            b = res["pedalboard"]["first_clip"].reshape(-1)[: a.size]
            diff_db = 10 * np.log10(np.sum((a - b) ** 2) / max(np.sum(b**2), 1e-30) + 1e-30)
            print(f"eq     difference vocalmix vs pedalboard on clip 0: {diff_db:.1f} dB (relative energy)")
            rows[-1]["eq_difference_db"] = float(diff_db)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
