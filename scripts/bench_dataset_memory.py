"""Peak memory of one `dataset build` worker task, for the estimate in training/build.py.

Each measurement runs in a fresh process (so peaks do not carry over) and reports its
peak resident set size (``ru_maxrss``): part 0 of a synthetic song (the whole-song
feature blocks and targets of every task, plus one part of EQ examples) for each song
length, and one later EQ part on its own.

    python scripts/bench_dataset_memory.py --seconds 30 120 --eq 512

The worker model in training/build.py (``WORKER_BASE_BYTES + WORKER_BYTES_PER_SONG_SECOND
x longest song``) is fitted to these numbers, rounded up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

_TASK = """
import json, resource, sys, time, torch
from vocalmix.training import build as B
from vocalmix.training.datasets import synthetic_songs

seconds, eq, part = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
song = synthetic_songs(1, seconds, seed=0)[0]
config = B.BuildConfig(seed=0, eq_per_song=eq * (part + 1), eq_part_examples=eq)
start = time.perf_counter()
result = B.process_song(song, config) if part == 0 else B.process_eq_part(song, config, part)
print(json.dumps({"seconds": seconds, "eq_examples": int(result["eq"]["features"].shape[0]), "part": part,
                  "wall_s": round(time.perf_counter() - start, 1),
                  "peak_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 3)}))
"""


def measure(seconds: float, eq: int, part: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _TASK, str(seconds), str(eq), str(part)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 120.0], help="Song lengths to measure.")
    parser.add_argument("--eq", type=int, default=512, help="EQ examples per part (the build's default is 512).")
    args = parser.parse_args()
    for seconds in args.seconds:
        print(json.dumps(measure(seconds, args.eq, 0)), flush=True)
    print(json.dumps(measure(args.seconds[0], args.eq, 1)), flush=True)


if __name__ == "__main__":
    main()
