"""Cost of one end-to-end training step through the vocal chain, per stage, on this machine.

    python scripts/bench_train_step.py [--batch 16] [--seconds 5] [--repeats 2]
                                       [--modes exact,training] [--backend auto]

One step is what end-to-end training does per batch: the chain EQ -> compressor ->
reverb -> level renders ``--batch`` vocal clips of ``--seconds`` with per-item settings
that require gradients, a multi-resolution STFT loss (auraloss, its defaults) compares
the stereo result with targets rendered beforehand with other settings, and the loss
is back-propagated to every setting. Each stage runs on the detached output of the
previous one, so forward and backward of every stage are timed separately; their sum is
the chain's forward + backward.

Each mode runs in its own subprocess, so the peak memory (the process's peak resident
set size, which includes about 0.4 GB of imported libraries) belongs to that mode
alone. Modes:

- ``exact``: ``vocal_chain`` as a render uses it (the reference).
- ``peer``: the render path of an earlier vocalmix (``--peer-path``, a directory whose
  ``vocalmix`` package is imported first), e.g. the commit before issue 18's work.
- ``training``: the same chain with ``training=True`` (the training-time reverb of
  :mod:`vocalmix.dsp.reverb`, IRs ending 80 instead of 90 dB down, and the
  compressor's surrogate gradients, :func:`vocalmix.dsp.compressor.compressor`). The
  output and the gradients are compared with the first mode's: the worst item's error
  energy relative to its output energy, in dB. The compressor settings' gradients
  differ by design in training mode (surrogates without dead zones); the others
  differ only through the shorter reverb tails.

Clips are cut from the CC BY dry vocals in /work/shared/audio/dry when present, else
from the synthetic demo vocal. Settings: four peak bands of up to +-12 dB, compressor
threshold -35..-10 dB with ratio 1.5-8, and reverbs drawn from the lead-vocal prior of
:data:`vocalmix.training.synthesis.VOCAL_REVERB_PRIOR` (seeded; the same in every mode).
Reported: the step with the least CPU time of ``--repeats`` (wall and process CPU
seconds per stage, forward and backward; CPU can exceed wall with 2 threads, and wall
far exceeds CPU when other jobs hold the cores), the 1-minute
load average before and after (other jobs share the cores), and the peak memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SR = 44100
DRY_DIR = Path("/work/shared/audio/dry")
STAGES = ("eq", "compressor", "reverb", "level")


def load_clips(batch: int, seconds: float, seed: int) -> torch.Tensor:
    """(batch, 1, n) float32 clips of the dry vocals (or the demo vocal), peak-normalised to -1 dBFS."""
    n = int(seconds * SR)
    rng = np.random.default_rng(seed)
    sources = []
    if DRY_DIR.is_dir():
        import soundfile as sf
        from scipy.signal import resample_poly

        for path in sorted(DRY_DIR.glob("*.flac")):
            audio, sr = sf.read(path, dtype="float32", always_2d=True)
            mono = audio.mean(axis=1)
            if sr != SR:
                mono = resample_poly(mono, SR, sr).astype(np.float32)
            if len(mono) >= n:
                sources.append(mono)
    if not sources:
        from vocalmix.demo import demo_vocal

        sources = [demo_vocal(SR, seconds=max(16.0, 2 * seconds))[0]]
    clips = np.empty((batch, 1, n), dtype=np.float32)
    for i in range(batch):
        src = sources[i % len(sources)]
        start = int(rng.integers(0, len(src) - n + 1))
        clip = src[start : start + n]
        clips[i, 0] = clip / max(float(np.abs(clip).max()), 1e-6) * 10 ** (-1 / 20)
    return torch.from_numpy(clips)


def draw_params(batch: int, seed: int) -> dict:
    """Per-item chain settings, ``{"eq.frequency_hz": tensor, ...}`` as ``ChainParams.named_tensors`` names
    them (see the module docstring); :func:`chain_params` makes what the imported vocalmix takes."""
    from vocalmix.dsp.biquads import FilterType
    from vocalmix.training.synthesis import VOCAL_REVERB_PRIOR

    g = torch.Generator().manual_seed(seed)

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(shape or (batch,), generator=g)

    params = {
        "eq.frequency_hz": torch.exp(uniform(math.log(100.0), math.log(10000.0), batch, 6)),
        "eq.gain_db": uniform(-12.0, 12.0, batch, 6),
        "eq.q": uniform(0.5, 3.0, batch, 6),
        "eq.filter_type": torch.full((batch, 6), int(FilterType.PEAK)),
        "eq.enabled": torch.tensor([False, True, True, True, True, False]).repeat(batch, 1),
        "compressor.threshold_db": uniform(-35.0, -10.0),
        "compressor.ratio": uniform(1.5, 8.0),
        "compressor.knee_db": uniform(0.0, 12.0),
        "compressor.attack_ms": uniform(1.0, 50.0),
        "compressor.release_ms": uniform(30.0, 300.0),
        "compressor.makeup_db": uniform(0.0, 10.0),
        "compressor.lookahead": torch.rand(batch, generator=g) < 0.5,
        "level.vocal_gain_db": uniform(-6.0, 6.0),
    }
    for name, (kind, lo, hi) in VOCAL_REVERB_PRIOR.items():
        if kind == "log":
            value = torch.exp(uniform(math.log(lo), math.log(hi)))
        elif kind == "int":
            value = torch.randint(int(lo), int(hi) + 1, (batch,), generator=g).float()
        elif kind == "zero_or_uniform":
            value = torch.where(torch.rand(batch, generator=g) < 0.8, 0.0, uniform(lo, hi))
        else:
            value = uniform(lo, hi)
        params[f"reverb.{name}"] = value
    params["reverb.dry_wet"] = params.pop("reverb.dry_wet_pct") / 100.0
    return params


FDN_LINES = 64


def chain_params(flat: dict):
    """``flat`` (:func:`draw_params`) as the imported vocalmix's ``vocal_chain`` takes it: ``ChainParams``
    holding the same tensors, or for a peer from before that type, the flat dict it took then (section
    prefixes dropped, ``eq_`` kept)."""
    try:
        from vocalmix.dsp import params as P
    except ImportError:  # a peer older than vocalmix.dsp.params
        legacy = {(k.replace(".", "_") if k.startswith("eq.") else k.split(".", 1)[1]): v for k, v in flat.items()}
        return {**legacy, "fdn_lines": FDN_LINES}

    def section(name: str) -> dict:
        return {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith(name + ".")}

    return P.ChainParams(
        P.EQParams(**section("eq")),
        P.CompressorParams(**section("compressor")),
        P.ReverbParams(**section("reverb"), fdn_lines=FDN_LINES),
        P.LevelParams(**section("level")),
    )


def learnable(params: dict) -> list[str]:
    return [k for k, v in params.items() if v.is_floating_point() and k != "reverb.room_size"]


def run_step(clips, params, target, loss_fn, chain_kwargs) -> tuple[dict, torch.Tensor, dict]:
    """One forward + backward, stage by stage. Returns (wall/CPU times, output, gradients)."""
    from vocalmix.dsp.chain import vocal_chain

    p = {k: (v.clone().requires_grad_(True) if k in learnable(params) else v) for k, v in params.items()}
    chain = chain_params(p)
    times = {}
    outs, ins = {}, {}

    def timed(name, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        times[name] = (time.perf_counter() - wall, time.process_time() - cpu)
        return result

    y = clips
    for stage in STAGES:
        ins[stage] = y.detach().requires_grad_(stage != "eq")
        outs[stage] = timed(
            f"{stage} forward",
            lambda stage=stage: vocal_chain(ins[stage], SR, chain, upto=stage, start=stage, **chain_kwargs),
        )
        y = outs[stage]
    loss = timed("loss forward", lambda: loss_fn(y, target))
    timed("loss+level backward", lambda: loss.backward(inputs=[ins["level"], p["level.vocal_gain_db"]]))
    for stage, previous in (("reverb", "level"), ("compressor", "reverb"), ("eq", "compressor")):
        timed(
            f"{stage} backward",
            lambda stage=stage, previous=previous: torch.autograd.backward(outs[stage], ins[previous].grad),
        )
    chain = [k for k in times if not k.startswith("loss")]
    times["chain (no loss)"] = tuple(sum(times[k][i] for k in chain) for i in range(2))
    times["total"] = tuple(sum(times[k][i] for k in chain + ["loss forward", "loss+level backward"]) for i in range(2))
    # A setting no item uses (fade-in 0 everywhere) gets no gradient at all.
    grads = {
        k: (p[k].grad.detach().clone() if p[k].grad is not None else torch.zeros_like(p[k])) for k in learnable(params)
    }
    return times, y.detach(), grads


def worker(args) -> None:
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    import auraloss

    import vocalmix
    from vocalmix.dsp.chain import vocal_chain

    print(f"{args.mode}: vocalmix from {Path(vocalmix.__file__).parent}", file=sys.stderr)

    clips = load_clips(args.batch, args.seconds, args.seed)
    params = draw_params(args.batch, args.seed)
    chain_kwargs = {"training": True} if args.mode == "training" else {}
    if args.backend != "auto":
        chain_kwargs["backend"] = args.backend
    with torch.no_grad():
        target = vocal_chain(clips, SR, chain_params(draw_params(args.batch, args.seed + 1)))
    loss_fn = auraloss.freq.MultiResolutionSTFTLoss()
    # Warm-up (JIT caches, allocator) on a short batch of two.
    run_step(
        clips[:2, :, : SR // 2], {k: v[:2] for k, v in params.items()}, target[:2, :, : SR // 2], loss_fn, chain_kwargs
    )
    best = None
    for _ in range(args.repeats):
        times, out, grads = run_step(clips, params, target, loss_fn, chain_kwargs)
        if best is None or times["total"][1] < best["total"][1]:
            best = times
    best["peak memory GB"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,) * 2  # kB on Linux
    torch.save({"times": best, "out": out, "grads": grads}, args.result)


def error_db(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Worst item's error energy relative to its reference energy, dB."""
    x, ref = x.double().flatten(1), ref.double().flatten(1)
    err = (x - ref).square().sum(1) / ref.square().sum(1).clamp(min=1e-300)
    return float(10 * torch.log10(err.max().clamp(min=1e-30)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="exact,training", help="comma-separated: exact, training, peer")
    parser.add_argument("--backend", default="auto", choices=["auto", "numba", "torch"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--peer-path",
        help="a directory holding an earlier vocalmix package (e.g. from "
        "`git archive`); mode 'peer' runs the render path from there",
    )
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        worker(args)
        return

    modes = args.modes.split(",")
    load_before = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            result = Path(tmp) / f"{mode}.pt"
            cmd = [sys.executable, __file__, "--mode", mode, "--result", str(result)] + [
                f"--{k}={getattr(args, k)}" for k in ("batch", "seconds", "repeats", "seed", "backend", "threads")
            ]
            env = dict(os.environ)
            if mode == "peer":
                if not args.peer_path:
                    parser.error("mode 'peer' needs --peer-path")
                env["PYTHONPATH"] = os.pathsep.join([args.peer_path, env.get("PYTHONPATH", "")])
                cmd[cmd.index("peer")] = "exact"
            subprocess.run(cmd, check=True, env=env)
            results[mode] = torch.load(result)
    load_after = os.getloadavg()[0]

    print(
        f"batch {args.batch} x {args.seconds:g} s at {SR} Hz, backend {args.backend}, "
        f"torch threads {args.threads or torch.get_num_threads()}, best of {args.repeats}; "
        f"load average {load_before:.2f} before, {load_after:.2f} after ({os.cpu_count()} cores)"
    )
    rows = list(results[modes[0]]["times"])
    print(f"{'seconds (wall / CPU)':<22}" + "".join(f"{m:>20}" for m in modes))
    for row in rows:
        cells = [results[m]["times"][row] for m in modes]
        print(f"{row:<22}" + "".join(f"{c[0]:>10.3f}{c[1]:>10.3f}" for c in cells))
    ref = results[modes[0]]
    for mode in modes[1:]:
        r = results[mode]
        print(
            f"{mode} vs {modes[0]}: chain speed-up "
            f"{ref['times']['chain (no loss)'][0] / r['times']['chain (no loss)'][0]:.1f}x "
            f"(wall), {ref['times']['chain (no loss)'][1] / r['times']['chain (no loss)'][1]:.1f}x (CPU); "
            f"output error {error_db(r['out'], ref['out']):.1f} dB"
        )
        grad_errors = {k: error_db(r["grads"][k][None], ref["grads"][k][None]) for k in ref["grads"]}
        print(
            "  gradient error (dB, relative to the reference gradient's energy): "
            + ", ".join(f"{k} {v:.0f}" for k, v in grad_errors.items())
        )
    print(json.dumps({m: results[m]["times"] for m in modes}))


if __name__ == "__main__":
    main()
