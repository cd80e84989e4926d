"""Speed of the vocal chain against pedalboard's closest equivalent, in one run on this machine.

    python scripts/bench_chain.py [--seconds 180] [--repeats 3]

1. One 3-minute mono vocal at 44.1 kHz through EQ (4 peak bands) -> compressor ->
   reverb -> gain: vocalmix.dsp vs pedalboard [PeakFilter x4, Compressor, Reverb, Gain].
   Reported as wall time and CPU time (user + sys of this process, all threads), each the
   best of --repeats, and their ratios vocalmix / pedalboard, with the load average: on a
   shared machine the CPU times are far less disturbed than the wall times.
2. Batch throughput: 64 different random settings on 10 s clips, seconds of audio per second.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from vocalmix.demo import demo_vocal
from vocalmix.dsp.chain import vocal_chain
from vocalmix.mixing import settings_to_params
from vocalmix.settings import EQBand, MixSettings

SR = 44100


def chain_settings(rng: np.random.Generator) -> MixSettings:
    s = MixSettings()
    for slot, centre in zip(range(1, 5), rng.choice([125, 250, 500, 1000, 2000, 4000, 8000], 4, replace=False)):
        s.eq.bands[slot] = EQBand(
            enabled=True, type="peak", frequency_hz=float(centre), q=1.0, gain_db=float(rng.uniform(-12, 12))
        )
    s.compressor.threshold_db = float(rng.uniform(-30, -10))
    s.compressor.ratio = float(rng.uniform(2, 6))
    s.reverb.reverb_time_s = float(rng.uniform(0.5, 3.0))
    s.reverb.dry_wet_pct = float(rng.uniform(10, 40))
    s.level.vocal_gain_db = float(rng.uniform(-6, 6))
    return s


def best_of(repeats: int, fn) -> tuple[float, float]:
    """(best wall time, best CPU time) over ``repeats`` calls of ``fn``."""
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="reuse freed memory as the vocalmix command does (vocalmix/memory.py), for both chains",
    )
    args = parser.parse_args()
    if args.keep_freed_memory:
        from vocalmix.memory import keep_freed_memory

        keep_freed_memory()
    import pedalboard

    torch.set_num_threads(max(1, torch.get_num_threads()))
    rng = np.random.default_rng(0)
    clip = demo_vocal(SR, seconds=16.0)
    vocal = np.tile(clip, (1, int(np.ceil(args.seconds / 16.0))))[:, : int(args.seconds * SR)]
    settings = chain_settings(rng)
    params = settings_to_params([settings])
    x = torch.from_numpy(vocal).unsqueeze(0)

    def ours():
        with torch.no_grad():
            vocal_chain(x, SR, params)

    bands = [b for b in settings.eq.bands if b.enabled]
    board = pedalboard.Pedalboard(
        [pedalboard.PeakFilter(cutoff_frequency_hz=b.frequency_hz, gain_db=b.gain_db, q=b.q) for b in bands]
        + [
            pedalboard.Compressor(
                threshold_db=settings.compressor.threshold_db,
                ratio=settings.compressor.ratio,
                attack_ms=settings.compressor.attack_ms,
                release_ms=settings.compressor.release_ms,
            ),
            pedalboard.Reverb(
                room_size=0.5,
                wet_level=settings.reverb.dry_wet_pct / 100,
                dry_level=1 - settings.reverb.dry_wet_pct / 100,
            ),
            pedalboard.Gain(gain_db=settings.level.vocal_gain_db),
        ]
    )

    def theirs():
        board(vocal, SR, reset=True)  # mono, like our input (our reverb also makes it stereo)

    ours()  # compile numba kernels and warm caches before timing
    theirs()
    t_ours, c_ours = best_of(args.repeats, ours)
    t_theirs, c_theirs = best_of(args.repeats, theirs)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"threads: torch {torch.get_num_threads()}; {os.cpu_count()} CPUs, load average {load} (1/5/15 min); "
        f"freed memory {'kept' if args.keep_freed_memory else 'returned (glibc default)'}"
    )
    print(f"single chain, {args.seconds:.0f} s mono vocal at {SR} Hz (best of {args.repeats}):")
    print(f"  vocalmix.dsp  {t_ours:7.3f} s wall  {c_ours:7.3f} s CPU  ({args.seconds / t_ours:7.1f}x real time)")
    print(f"  pedalboard    {t_theirs:7.3f} s wall  {c_theirs:7.3f} s CPU  ({args.seconds / t_theirs:7.1f}x real time)")
    print(f"  ratio vocalmix/pedalboard = {t_ours / t_theirs:.2f} (wall), {c_ours / c_theirs:.2f} (CPU)")

    clip_s = 10.0
    batch = [chain_settings(rng) for _ in range(args.batch)]
    clips = torch.from_numpy(np.tile(clip[:, : int(clip_s * SR)], (args.batch, 1, 1)))
    batch_params = settings_to_params(batch)

    def ours_batch():
        with torch.no_grad():
            vocal_chain(clips, SR, batch_params)

    ours_batch()
    t_batch, _ = best_of(max(1, args.repeats - 1), ours_batch)
    print(f"batch of {args.batch} different settings on {clip_s:.0f} s clips:")
    print(f"  vocalmix.dsp  {t_batch:7.3f} s  = {args.batch * clip_s / t_batch:9.1f} s of audio per second")


if __name__ == "__main__":
    main()
