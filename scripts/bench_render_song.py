"""Wall and CPU time of `vocalmix render` (rules) on a 3-minute song, process start to exit, by stage.

    python scripts/bench_render_song.py [--seconds 180] [--keep DIR] [--rounds N] [--against NAME=VALUE ...]

The song is the built-in demo material looped to the length asked for. The
stage times come from the timings the render writes into its settings file;
the total is measured around the whole command, process start included, with the
CPU time it used (a figure that holds up better than wall time on a shared machine).

``--against NAME=VALUE`` also runs the command with those environment variables set,
alternating with the plain run in each of ``--rounds`` rounds, so both variants see the
same load; e.g. ``--against NUMPY_MADVISE_HUGEPAGE=1`` puts back numpy's huge-page advice
that the command turns off. Medians over the rounds are printed per variant.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from vocalmix.demo import demo_backing, demo_vocal

SR = 44100


def timed_run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall, user and system seconds of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--keep", type=Path, default=None, help="Folder to keep the files in.")
    parser.add_argument("--rounds", type=int, default=1, help="Timed runs per variant (medians are reported).")
    parser.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Environment of a second variant, run alternately with the plain one.",
    )
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="vocalmix-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    n = int(args.seconds * SR)
    vocal = np.tile(demo_vocal(SR), (1, int(np.ceil(args.seconds / 16)) + 1))[:, :n]
    backing = np.tile(demo_backing(SR), (1, int(np.ceil(args.seconds / 16)) + 1))[:, :n]
    sf.write(folder / "vocal.wav", vocal.T, SR, subtype="PCM_24")
    sf.write(folder / "backing.wav", backing.T, SR, subtype="PCM_24")
    out = folder / "mix.wav"
    cmd = [
        sys.executable,
        "-m",
        "vocalmix",
        "render",
        str(folder / "vocal.wav"),
        str(folder / "backing.wav"),
        "-o",
        str(out),
        "--force",
        "-q",
    ]
    # Measured as installed: pip byte-compiles a package, so the warm-up run may write the bytecode an
    # editable checkout lacks (with PYTHONDONTWRITEBYTECODE every run compiled ~40 modules, ~0.4 s CPU).
    plain = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    variants = {"as installed": plain}
    if args.against:
        other = dict(plain)
        other.update(item.split("=", 1) for item in args.against)
        variants[" ".join(args.against)] = other
    # One warm-up run so numba's on-disk cache is filled, as it is after a first use.
    subprocess.run(cmd, check=True, env=plain, stdout=subprocess.DEVNULL)
    load = os.getloadavg()[0]
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, env in variants.items():
            times[name].append(timed_run(cmd, env))
    report = json.loads((folder / "mix.settings.json").read_text())["report"]
    print(f"vocalmix render, rules, {args.seconds:.0f} s stereo song at {SR} Hz")
    print(f"stages of the last run ({list(variants)[-1]}):")
    for stage, seconds in report["timings_s"].items():
        print(f"  {stage:<12} {seconds:7.3f} s")
    for stage, seconds in (report.get("rule_timings_s") or {}).items():
        print(f"    rule {stage:<8} {seconds:7.3f} s")
    print(
        f"process start to exit, median of {args.rounds} "
        f"(load average {load:.2f} before, {os.getloadavg()[0]:.2f} after):"
    )
    for name, runs in times.items():
        wall, user, system = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"  {name:<32} wall {wall:7.3f} s   CPU {user + system:6.3f} s (user {user:.3f}, system {system:.3f})")


if __name__ == "__main__":
    main()
