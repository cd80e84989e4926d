"""Peak memory of `vocalmix render` against song length (issue 19 item 9).

Writes the synthesised demo vocal and backing (vocalmix.demo) at each length to a
temporary folder, renders them with the default rules in a fresh process, and reports
that process's peak resident set size (``ru_maxrss`` of the child) and wall time:

    python scripts/bench_render_memory.py --minutes 10 20

The peer is the input itself: the report also gives the size of the two inputs as float32
at 44.1 kHz (vocal mono + backing stereo), so the peak reads as a multiple of the audio held.
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

import soundfile as sf

from vocalmix.demo import demo_backing, demo_vocal

SR = 44100


def measure(minutes: float, folder: Path) -> dict:
    seconds = minutes * 60.0
    vocal, backing = folder / f"vocal-{minutes:g}.wav", folder / f"backing-{minutes:g}.wav"
    sf.write(vocal, demo_vocal(SR, seconds).T, SR, subtype="FLOAT")
    sf.write(backing, demo_backing(SR, seconds).T, SR, subtype="FLOAT")
    out = folder / f"mix-{minutes:g}.wav"
    start = time.perf_counter()
    # A fresh child per length, waited for before the next, so RUSAGE_CHILDREN's maximum is its own
    # (ru_maxrss of children is the largest of them; lengths run shortest first).
    proc = subprocess.run(
        [sys.executable, "-m", "vocalmix", "render", str(vocal), str(backing), "-o", str(out), "-q", "--force"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"render of {minutes:g} min failed: {proc.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    audio = int(seconds * SR) * 3 * 4
    for path in (vocal, backing, out, out.with_suffix(".settings.json")):
        path.unlink(missing_ok=True)
    return {
        "minutes": minutes,
        "peak_gb": round(peak / 1e9, 2),
        "inputs_float32_gb": round(audio / 1e9, 3),
        "peak_over_inputs": round(peak / audio, 1),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 20.0])
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="vocalmix-bench-") as tmp:
        for minutes in sorted(args.minutes):
            print(json.dumps(measure(minutes, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
