"""``vocalmix listening-test build``: excerpts, loudness normalisation and the test page.

The test follows Koszewski et al.: a 15 s excerpt of the loudest passage of each song, every
mix normalised to -14 LUFS, ratings from 1 to 5 in the categories below, the mixes of a song
playing in sync so the listener switches between them without a gap, the order randomised per
listener (in the page), the method names hidden (files carry random names; the key is kept in
``private/``, which the server never serves). Optionally the reference mix is hidden among the
mixes and a low anchor (the reference low-passed at 3.5 kHz, as ITU-R BS.1534's anchor) is added.
"""

from __future__ import annotations

import functools
import json
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from .. import __version__
from ..errors import InputError
from ..files import write_atomic

SAMPLE_RATE = 44100
EXCERPT_SECONDS = 15.0
LOUDNESS_LUFS = -14.0
CEILING_DBTP = -1.0
FADE_SECONDS = 0.02
ANCHOR_CUTOFF_HZ = 3500.0
REFERENCE = "reference"
ANCHOR = "anchor"
STATIC_FILES = ("index.html", "app.js", "style.css")

#: Rating categories and the definition shown next to each (the paper gave definitions too).
CATEGORIES = [
    ("balance", "Balance", "Levels of the vocal and the instruments relative to each other."),
    ("clarity", "Clarity", "How distinct the vocal and the instruments are: intelligible, not muddy or masked."),
    ("panning", "Panning", "Placement and width of the sources in the stereo image."),
    ("space", "Space", "Sense of room and depth: amount and character of the reverb."),
    ("dynamics", "Dynamics", "Control of loudness changes: neither squashed nor jumpy."),
    (
        "overall",
        "Overall",
        "The mix as a whole: free of distortion and artefacts, controlled dynamics, good frequency balance.",
    ),
]
SCALE = {"min": 1, "max": 5, "labels": {"1": "bad", "2": "poor", "3": "fair", "4": "good", "5": "excellent"}}


@dataclass
class BuildRequest:
    compare_dir: Path
    out_dir: Path
    excerpt_seconds: float = EXCERPT_SECONDS
    loudness_lufs: float = LOUDNESS_LUFS
    include_reference: bool = True
    anchor: bool = False
    seed: Optional[int] = None
    force: bool = False


def read_compare(compare_dir: Path) -> dict:
    manifest_path = Path(compare_dir) / "compare.json"
    if not manifest_path.is_file():
        raise InputError(f"{compare_dir}: no compare.json (give a folder written by 'vocalmix compare')")
    try:
        manifest = json.loads(manifest_path.read_text())
        songs = manifest["songs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{manifest_path}: not a vocalmix compare manifest ({exc})") from None
    return {"songs": songs, "methods": manifest.get("methods", [])}


def loudest_start(x: np.ndarray, sr: int, seconds: float) -> int:
    """First sample of the ``seconds``-long window with the most K-weighted energy (BS.1770 blocks)."""
    from .. import analysis

    n = x.shape[-1]
    length = int(round(seconds * sr))
    if n <= length:
        return 0
    hop = int(round(analysis.LOUDNESS_HOP_S * sr))
    power = 10 ** (analysis.momentary_loudness(x, sr) / 10)  # block i covers [i*hop, i*hop + 4*hop)
    blocks_per_window = max(1, int((length - 4 * hop) // hop) + 1)
    if power.size <= blocks_per_window:
        return 0
    sums = np.convolve(power, np.ones(blocks_per_window), mode="valid")
    return min(int(np.argmax(sums)) * hop, n - length)


def _fade(x: np.ndarray, sr: int) -> np.ndarray:
    n = min(int(FADE_SECONDS * sr), x.shape[-1] // 2)
    if n == 0:
        return x
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, n))
    y = x.copy()
    y[:, :n] *= ramp
    y[:, -n:] *= ramp[::-1]
    return y


def normalise(x: np.ndarray, sr: int, target_lufs: float) -> tuple[np.ndarray, dict]:
    """Drive to ``target_lufs`` with vocalmix's output stage (true-peak limiter at -1 dBTP if needed)."""
    from .. import analysis
    from ..mixing import output_gain

    gain, report = output_gain(x, sr, CEILING_DBTP, target_lufs)
    y = (x * gain).astype(np.float32)
    return y, {
        "achieved_lufs": analysis.integrated_loudness(y, sr),
        "limiter": report.get("limiter"),
        "gain_db": report.get("gain_db"),
        "max_gain_reduction_db": report.get("max_gain_reduction_db", 0.0),
    }


def _anchor(x: np.ndarray, sr: int) -> np.ndarray:
    from scipy import signal

    sos = signal.butter(8, ANCHOR_CUTOFF_HZ, btype="low", fs=sr, output="sos")
    return signal.sosfiltfilt(sos, x, axis=-1)


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InputError(f"{out_dir}: exists and is not a folder")
        leftovers = [p for p in out_dir.iterdir() if p.name not in ("responses",)]
        if leftovers and not force:
            raise InputError(f"{out_dir}: not empty (use --force to rebuild the test; responses/ is kept)")
        for name in ("audio", "private"):
            if (out_dir / name).is_dir():
                shutil.rmtree(out_dir / name)
    elif not out_dir.parent.is_dir():
        raise InputError(f"{out_dir}: folder {out_dir.parent} does not exist")
    out_dir.mkdir(exist_ok=True)
    (out_dir / "audio").mkdir()
    (out_dir / "private").mkdir()
    (out_dir / "responses").mkdir(exist_ok=True)


def write_json_atomic(path: Path, document) -> Path:
    return write_atomic(path, json.dumps(document, indent=2) + "\n")


def build_test(req: BuildRequest, progress: Callable[[str], None] = lambda m: None) -> dict:
    from ..audio import load_audio, write_audio

    compare = read_compare(req.compare_dir)
    if not 3.0 <= req.excerpt_seconds <= 60.0:
        raise InputError(f"--seconds {req.excerpt_seconds:g} is outside [3, 60]")
    if not -40.0 <= req.loudness_lufs <= -6.0:
        raise InputError(f"--loudness {req.loudness_lufs:g} LUFS is outside [-40, -6]")
    _prepare_out_dir(req.out_dir, req.force)
    rng = random.Random(req.seed)
    public_songs, key, songs_info = [], {}, []
    for number, song in enumerate(compare["songs"], start=1):
        mixes = {m: paths["mix"] for m, paths in song.get("mixes", {}).items() if m != REFERENCE}
        reference = song.get("reference")
        sources = dict(mixes)
        if req.include_reference and reference:
            sources[REFERENCE] = reference
        if len(sources) < 2:
            progress(f"{song['name']}: skipped (fewer than two mixes)")
            continue
        progress(f"{song['name']}: {len(sources)} mixes")
        audio = {m: load_audio(p, SAMPLE_RATE).samples.astype(np.float64) for m, p in sources.items()}
        if req.anchor:
            audio[ANCHOR] = _anchor(
                load_audio(reference, SAMPLE_RATE).samples.astype(np.float64)
                if reference
                else next(iter(audio.values())),
                SAMPLE_RATE,
            )
        length = min(a.shape[-1] for a in audio.values())
        audio = {m: (np.repeat(a, 2, axis=0) if a.shape[0] == 1 else a)[:, :length] for m, a in audio.items()}
        basis = audio.get(REFERENCE)
        if basis is None:
            basis = functools.reduce(np.add, (audio[m] for m in mixes))  # the passage loudest across the mixes
        start = loudest_start(basis, SAMPLE_RATE, req.excerpt_seconds)
        stop = min(length, start + int(round(req.excerpt_seconds * SAMPLE_RATE)))
        song_id = f"s{number}"
        stimuli, levels = [], {}
        for method, samples in audio.items():
            excerpt, level = normalise(_fade(samples[:, start:stop], SAMPLE_RATE), SAMPLE_RATE, req.loudness_lufs)
            stimulus_id = f"{song_id}-{rng.getrandbits(48):012x}"
            write_audio(req.out_dir / "audio" / f"{stimulus_id}.wav", excerpt, SAMPLE_RATE, "pcm16", force=True)
            stimuli.append({"id": stimulus_id, "src": f"audio/{stimulus_id}.wav"})
            key[stimulus_id] = {"song": song["name"], "method": method}
            levels[method] = level
        rng.shuffle(stimuli)  # file order says nothing; the page shuffles again per listener
        public_songs.append({"id": song_id, "stimuli": stimuli})
        songs_info.append(
            {
                "song": song["name"],
                "id": song_id,
                "excerpt_start_s": start / SAMPLE_RATE,
                "excerpt_seconds": (stop - start) / SAMPLE_RATE,
                "levels": levels,
            }
        )
    if not public_songs:
        raise InputError(f"{req.compare_dir}: no song has two or more mixes to compare")
    test = {
        "vocalmix_version": __version__,
        "title": "Vocal mix listening test",
        "test_id": f"{rng.getrandbits(64):016x}",
        "categories": [{"id": c, "label": label, "definition": text} for c, label, text in CATEGORIES],
        "scale": SCALE,
        "loudness_lufs": req.loudness_lufs,
        "songs": public_songs,
    }
    write_json_atomic(req.out_dir / "test.json", test)
    write_json_atomic(
        req.out_dir / "private" / "key.json",
        {
            "test_id": test["test_id"],
            "stimuli": key,
            "songs": songs_info,
            "compare_dir": str(Path(req.compare_dir).resolve()),
            "anchor": req.anchor,
            "hidden_reference": req.include_reference,
            "anchor_cutoff_hz": ANCHOR_CUTOFF_HZ if req.anchor else None,
        },
    )
    static = resources.files("vocalmix.listening") / "static"
    for name in STATIC_FILES:
        write_atomic(req.out_dir / name, (static / name).read_bytes())
    return test
