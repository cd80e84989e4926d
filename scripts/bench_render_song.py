"""Wall time of `vocalmix render` (rules) on a 3-minute song, broken down by stage.

    python scripts/bench_render_song.py [--seconds 180] [--keep DIR]

The song is the built-in demo material looped to the length asked for. The
stage times come from the timings the render writes into its settings file;
the total is measured around the whole command, process start included, with the
CPU time it used (a figure that holds up better than wall time on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from vocalmix.demo import demo_backing, demo_vocal

SR = 44100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--keep", type=Path, default=None, help="Folder to keep the files in.")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="vocalmix-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    n = int(args.seconds * SR)
    vocal = np.tile(demo_vocal(SR), (1, int(np.ceil(args.seconds / 16)) + 1))[:, :n]
    backing = np.tile(demo_backing(SR), (1, int(np.ceil(args.seconds / 16)) + 1))[:, :n]
    sf.write(folder / "vocal.wav", vocal.T, SR, subtype="PCM_24")
    sf.write(folder / "backing.wav", backing.T, SR, subtype="PCM_24")
    out = folder / "mix.wav"
    # One warm-up run so numba's on-disk cache is filled, as it is after a first use.
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
    subprocess.run(cmd, check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    total = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    report = json.loads((folder / "mix.settings.json").read_text())["report"]
    print(f"vocalmix render, rules, {args.seconds:.0f} s stereo song at {SR} Hz")
    for stage, seconds in report["timings_s"].items():
        print(f"  {stage:<12} {seconds:7.3f} s")
    rule_times = report.get("rule_timings_s") or {}
    for stage, seconds in rule_times.items():
        print(f"    rule {stage:<8} {seconds:7.3f} s")
    print(f"  total (process start to exit) {total:7.3f} s")
    print(
        f"  CPU time {user + system:.3f} s (user {user:.3f}, system {system:.3f}); load average before "
        f"{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
