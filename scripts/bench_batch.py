"""Catalogue throughput: ``vocalmix batch -j N`` against one ``vocalmix render`` process per song.

Writes N synthetic songs (the demo generator, ``--minutes`` long each), then in one run
times (a) a shell loop of ``vocalmix render`` calls, one process per song, and (b)
``vocalmix batch MANIFEST -j JOBS``, and prints songs per minute for both and their
ratio. Run on an idle machine::

    python scripts/bench_batch.py --songs 4 --minutes 3 --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from vocalmix.demo import demo_backing, demo_vocal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-peer", action="store_true", help="Only time the batch command.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = root / "songs.csv"
        with open(manifest, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["vocal", "backing"])
            for i in range(args.songs):
                song = root / f"song{i:02d}"
                song.mkdir()
                sf.write(song / "vocal.wav", demo_vocal(seconds=args.minutes * 60, seed=2 * i).T, 44100)
                sf.write(song / "backing.wav", demo_backing(seconds=args.minutes * 60, seed=2 * i + 1).T, 44100)
                writer.writerow([f"{song.name}/vocal.wav", f"{song.name}/backing.wav"])
        print(f"{args.songs} songs of {args.minutes:g} min; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")

        peer_s = None
        if not args.skip_peer:
            (root / "peer").mkdir()
            start = time.perf_counter()
            for i in range(args.songs):
                song = root / f"song{i:02d}"
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "vocalmix",
                        "render",
                        str(song / "vocal.wav"),
                        str(song / "backing.wav"),
                        "-o",
                        str(root / "peer" / f"{song.name}.wav"),
                        "-q",
                    ],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            peer_s = time.perf_counter() - start
            print(f"vocalmix render, one process per song: {peer_s:7.1f} s  {args.songs / peer_s * 60:6.2f} songs/min")

        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "vocalmix",
                "batch",
                str(manifest),
                "--out",
                str(root / "batch"),
                "-j",
                str(args.jobs),
                "-q",
            ],
            check=True,
        )
        batch_s = time.perf_counter() - start
        print(
            f"vocalmix batch -j {args.jobs}:                 {batch_s:7.1f} s  "
            f"{args.songs / batch_s * 60:6.2f} songs/min"
        )
        if peer_s is not None:
            print(f"speed-up of batch over one process per song: x{peer_s / batch_s:.2f}")
        print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
