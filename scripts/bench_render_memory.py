"""Peak memory of `vocalmix render` against song length (issue 19 item 9).

Writes the synthesised demo vocal and backing (vocalmix.demo) at each length to a
temporary folder, renders them with the default rules in a fresh process, and reports
that process's peak resident set size (``ru_maxrss`` of the child, read in the child; the songs are
synthesised in another child, so this process stays small: a child's ``ru_maxrss`` starts from
its parent's resident size at the fork) and wall time:

    python scripts/bench_render_memory.py --minutes 10 20
    python scripts/bench_render_memory.py --minutes 10 20 --against 505469c   # and an older commit, same run
    python scripts/bench_render_memory.py --minutes 10 --backing-rate 48000   # a backing resampled for the analysis
    ... --inputs DIR   # keep the synthesised songs in DIR and reuse them (they take minutes to make)

The peer is the input itself: the report also gives the size of the two inputs as float32
at 44.1 kHz (vocal mono + backing stereo), so the peak reads as a multiple of the audio held,
and the mono vocal alone (the one song-long signal the render keeps in memory).
``--against REV`` renders the same files with the code of commit ``REV`` too (``git archive``
into a temporary folder, put first on the child's ``PYTHONPATH``), alternating per length.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SR = 44100
REPO = Path(__file__).resolve().parents[1]


def write_inputs(minutes: float, folder: Path, backing_rate: int) -> tuple[Path, Path]:
    seconds = minutes * 60.0
    vocal, backing = folder / f"vocal-{minutes:g}.wav", folder / f"backing-{minutes:g}-{backing_rate}.wav"
    if vocal.exists() and backing.exists():  # kept from an earlier run (--inputs)
        return vocal, backing
    # In a child: a child's ru_maxrss starts from its parent's resident size when it was forked, so
    # this process holds no audio (the songs take GBs to synthesise).
    code = (
        "import sys, soundfile as sf\n"
        "from vocalmix.audio import resample\n"
        "from vocalmix.demo import demo_backing, demo_vocal\n"
        "seconds, rate, vocal, backing = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]\n"
        f"sf.write(vocal, demo_vocal({SR}, seconds).T, {SR}, subtype='FLOAT')\n"
        f"stereo = demo_backing({SR}, seconds)\n"
        f"stereo = stereo if rate == {SR} else resample(stereo, {SR}, rate)\n"
        "sf.write(backing, stereo.T, rate, subtype='FLOAT')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(seconds), str(backing_rate), str(vocal), str(backing)], check=True)
    return vocal, backing


def checkout(rev: str, folder: Path) -> Path:
    """The tree of ``rev`` laid out as the installed package (``vocalmix``, ``vocalmix.dsp``, ``vocalmix.training``)."""
    tree = folder / f"tree-{rev}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    (tree / "vocalmix" / "dsp").symlink_to(tree / "dsp")
    (tree / "vocalmix" / "training").symlink_to(tree / "training")
    return tree


def measure(vocal: Path, backing: Path, folder: Path, tree: Path | None) -> dict:
    out = folder / "mix.wav"
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    code = (
        "import resource, runpy, sys, json\n"
        "sys.argv = ['vocalmix'] + sys.argv[1:]\n"
        "try:\n"
        "    runpy.run_module('vocalmix', run_name='__main__')\n"
        "finally:\n"
        "    import vocalmix\n"
        "    print(json.dumps({'peak': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,\n"
        "                      'code': vocalmix.__file__}), file=sys.stderr)\n"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, "render", str(vocal), str(backing), "-o", str(out), "-q", "--force"],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,  # not the repository: `python -c` puts the working folder first on sys.path
    )
    wall = time.perf_counter() - start
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        raise SystemExit(f"render of {vocal.name} failed: {proc.stderr.strip()}")
    for path in (out, out.with_suffix(".settings.json")):
        path.unlink(missing_ok=True)
    return {"peak_gb": round(report["peak"] / 1e9, 2), "wall_s": round(wall, 1), "code": report["code"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 20.0])
    parser.add_argument("--against", metavar="REV", help="also render with the code of this commit")
    parser.add_argument("--backing-rate", type=int, default=SR, help="sample rate of the backing file")
    parser.add_argument("--inputs", type=Path, help="folder to keep the synthesised inputs in and reuse them from")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="vocalmix-bench-") as tmp:
        folder = Path(tmp)
        trees: dict[str, Path | None] = {"working tree": None}
        if args.against:
            trees[args.against] = checkout(args.against, folder)
        if args.inputs is not None:
            args.inputs.mkdir(parents=True, exist_ok=True)
        for minutes in sorted(args.minutes):
            vocal, backing = write_inputs(minutes, args.inputs or folder, args.backing_rate)
            samples = int(minutes * 60.0 * SR)
            for name, tree in trees.items():
                row = {"minutes": minutes, "code": name, "backing_rate": args.backing_rate}
                row.update(measure(vocal, backing, folder, tree))
                row["inputs_float32_gb"] = round(samples * 3 * 4 / 1e9, 3)
                row["mono_vocal_float32_gb"] = round(samples * 4 / 1e9, 3)
                row["peak_over_inputs"] = round(row["peak_gb"] * 1e9 / (samples * 3 * 4), 1)
                print(json.dumps(row), flush=True)
            if args.inputs is None:
                vocal.unlink()
                backing.unlink()


if __name__ == "__main__":
    main()
