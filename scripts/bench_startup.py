"""Start-up cost of `vocalmix render`, layer by layer: what a process pays before any audio is touched.

    python scripts/bench_startup.py [--rounds 5]

Each layer is a fresh interpreter that imports (or first calls) one more thing than the
layer before; the rounds alternate the layers, so all of them see the same load. CPU
time (user + system of the child) is the figure to read on a shared machine; wall time
is printed beside it. The last layer, the render module with everything it imports, is
what `vocalmix render` pays before reading its inputs; the difference between layers is
what each dependency costs on top of the ones before it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

# name -> code run in a fresh interpreter; each layer includes the one before it.
LAYERS = {
    "python": "pass",
    "+ numpy, soundfile": "import numpy, soundfile",
    "+ vocalmix.cli (typer, settings, plug-in tables)": "import numpy, soundfile, vocalmix.cli",
    "+ numba, first cached kernel (K-weighting)": (
        "import numpy as np, soundfile, vocalmix.cli\n"
        "from vocalmix.dsp.sosfilt import sosfilt\n"
        "from vocalmix.analysis import k_weighting_sos\n"
        "sosfilt(k_weighting_sos(44100), np.zeros((1, 64), np.float32))"
    ),
    "+ scipy.fft": (
        "import numpy as np, soundfile, vocalmix.cli, scipy.fft\n"
        "from vocalmix.dsp.sosfilt import sosfilt\n"
        "from vocalmix.analysis import k_weighting_sos\n"
        "sosfilt(k_weighting_sos(44100), np.zeros((1, 64), np.float32))"
    ),
    "+ torch": (
        "import numpy as np, soundfile, vocalmix.cli, scipy.fft, torch\n"
        "from vocalmix.dsp.sosfilt import sosfilt\n"
        "from vocalmix.analysis import k_weighting_sos\n"
        "sosfilt(k_weighting_sos(44100), np.zeros((1, 64), np.float32))"
    ),
    "+ vocalmix.render and all it imports": (
        "import numpy as np, soundfile, vocalmix.cli, scipy.fft, torch, vocalmix.render\n"
        "from vocalmix.dsp.sosfilt import sosfilt\n"
        "from vocalmix.analysis import k_weighting_sos\n"
        "sosfilt(k_weighting_sos(44100), np.zeros((1, 64), np.float32))"
    ),
}


def timed(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of a fresh interpreter running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # As installed: bytecode may be written (pip byte-compiles an installed package).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for code in LAYERS.values():  # warm-up: bytecode and numba's cache written, files in the page cache
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
    load = os.getloadavg()[0]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in LAYERS}
    for _ in range(args.rounds):
        for name, code in LAYERS.items():
            runs[name].append(timed(code, env))
    print(
        f"start-up by layer, median of {args.rounds} (load average {load:.2f} before, {os.getloadavg()[0]:.2f} after)"
    )
    print(f"  {'layer':<52}{'CPU s':>8}{'step':>8}{'wall s':>9}")
    previous = 0.0
    for name, times in runs.items():
        cpu = statistics.median(t[1] for t in times)
        wall = statistics.median(t[0] for t in times)
        print(f"  {name:<52}{cpu:8.3f}{cpu - previous:+8.3f}{wall:9.3f}")
        previous = cpu


if __name__ == "__main__":
    main()
