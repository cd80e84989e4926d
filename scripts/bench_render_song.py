"""Wall and CPU time of `vocalmix render` (rules) on a 3-minute song, process start to exit, by stage.

    python scripts/bench_render_song.py [--seconds 180] [--keep DIR] [--rounds N] [--against NAME=VALUE ...]
        [--against-tree DIR]

The song is the built-in demo material looped to the length asked for. The
stage times come from the timings the render writes into its settings file;
the total is measured around the whole command, process start included, with the
CPU time it used (a figure that holds up better than wall time on a shared machine).

``--against NAME=VALUE`` also runs the command with those environment variables set,
alternating with the plain run in each of ``--rounds`` rounds, so both variants see the
same load; e.g. ``--against NUMPY_MADVISE_HUGEPAGE=1`` puts back numpy's huge-page advice
that the command turns off. ``--against-tree DIR`` runs the code of another source tree
(an unpacked ``git archive`` of an earlier commit) the same way, for a before/after in one
run. Medians over the rounds are printed per variant.
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


def timed_run(cmd: list[str], env: dict[str, str], cwd: Path | None) -> tuple[float, float, float]:
    """Wall, user and system seconds of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
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
    parser.add_argument(
        "--against-tree",
        type=Path,
        default=None,
        metavar="DIR",
        help="Also run the vocalmix source tree in DIR (e.g. `git archive REV | tar -x -C DIR`), alternately.",
    )
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="vocalmix-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    n = int(args.seconds * SR)
    vocal = np.tile(demo_vocal(SR), (1, int(np.ceil(args.seconds / 16)) + 1))[:, :n]
    backing = np.tile(demo_backing(SR), (1, int(np.ceil(args.seconds / 16)) + 1))[:, :n]
    sf.write(folder / "vocal.wav", vocal.T, SR, subtype="PCM_24")
    sf.write(folder / "backing.wav", backing.T, SR, subtype="PCM_24")
    # Measured as installed: pip byte-compiles a package, so the warm-up run may write the bytecode an
    # editable checkout lacks (with PYTHONDONTWRITEBYTECODE every run compiled ~40 modules, ~0.4 s CPU).
    plain = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    variants: list[tuple[str, dict[str, str], Path | None]] = [("as installed", plain, None)]
    if args.against:
        variants.append((" ".join(args.against), {**plain, **dict(item.split("=", 1) for item in args.against)}, None))
    if args.against_tree is not None:
        tree = args.against_tree.resolve()
        link = tree / "vocalmix" / "dsp"  # the installed layout: dsp/ is vocalmix.dsp
        if not link.exists():
            link.symlink_to(tree / "dsp", target_is_directory=True)
        variants.append((f"tree {args.against_tree}", {**plain, "PYTHONPATH": str(tree)}, tree))

    def command(index: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "vocalmix",
            "render",
            str(folder / "vocal.wav"),
            str(folder / "backing.wav"),
            "-o",
            str(folder / f"mix-{index}.wav"),
            "--force",
            "-q",
        ]

    # One warm-up run each, so numba's on-disk cache is filled, as it is after a first use.
    for index, (_, env, cwd) in enumerate(variants):
        subprocess.run(command(index), check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    load = os.getloadavg()[0]
    times: list[list[tuple[float, float, float]]] = [[] for _ in variants]
    for _ in range(args.rounds):
        for index, (_, env, cwd) in enumerate(variants):
            times[index].append(timed_run(command(index), env, cwd))
    print(f"vocalmix render, rules, {args.seconds:.0f} s stereo song at {SR} Hz")
    print(
        f"process start to exit, median of {args.rounds} "
        f"(load average {load:.2f} before, {os.getloadavg()[0]:.2f} after):"
    )
    for index, (name, _, _) in enumerate(variants):
        wall, user, system = (statistics.median(r[i] for r in times[index]) for i in range(3))
        print(f"  {name:<32} wall {wall:7.3f} s   CPU {user + system:6.3f} s (user {user:.3f}, system {system:.3f})")
        report = json.loads((folder / f"mix-{index}.settings.json").read_text())["report"]
        stages = "  ".join(
            f"{stage.removesuffix('_s')} {seconds:.2f}" for stage, seconds in report["timings_s"].items()
        )
        rules = "  ".join(f"{stage} {seconds:.2f}" for stage, seconds in (report.get("rule_timings_s") or {}).items())
        print(f"    stages of its last run (wall s): {stages}; rules: {rules}")
        outside = times[index][-1][0] - sum(report["timings_s"].values())
        # Between "load" and "decide" the render also measures both inputs' loudness (numba's first kernel load).
        print(
            f"    outside the stages in that run (imports, the first loudness measurement, exit): {outside:.2f} s wall"
        )


if __name__ == "__main__":
    main()
