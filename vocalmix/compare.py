"""``vocalmix compare``: every method mixes every song; the mixes are described and compared.

Layout of the output folder ``DIR``::

    DIR/compare.json              what was rendered, from which inputs, and what was not available
    DIR/<song>/<method>.wav       each method's mix (+ .settings.json, and .vocal/.backing stems when it has them)
    DIR/<song>/reference.txt      where the song's reference mix is (never copied; a symlink sits next to it)
    DIR/descriptors.csv           one row per song x method (and the reference), columns COLUMNS
    DIR/statistics.csv            one-way ANOVA and Tukey-Kramer pairs per descriptor, across songs
    DIR/plots/*.png, DIR/report.md

Mixes are made by :func:`vocalmix.render.run_render`, the same code as ``vocalmix render``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from . import __version__
from .errors import InputError
from .files import write_atomic

log = logging.getLogger("vocalmix")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
REFERENCE = "reference"
SAMPLE_RATE = 44100

#: The CSV's columns, in order; names are stable (scripts read them).
COLUMNS = [
    "song",
    "method",
    "integrated_lufs",
    "lra_lu",
    "true_peak_dbtp",
    "relative_loudness_lu",
    "mrstft_to_reference",
    "ssm_similarity",
    "ssm_rmse",
    "rms_dbfs",
    "rms_envelope_median_db",
    "rms_envelope_iqr_db",
    "odd_even_ratio_db",
    "harmonic_energy_db",
    "noisiness",
    "vocal_centroid_hz",
    "vocal_tilt_db_per_oct",
    "relative_loudness_source",
    "mix_path",
]
#: Descriptors the statistics and plots cover (the numeric columns).
DESCRIPTORS = [c for c in COLUMNS if c not in ("song", "method", "relative_loudness_source", "mix_path")]
#: Descriptors measured against the reference: the reference itself is left out of their statistics.
REFERENCE_RELATIVE = ("mrstft_to_reference", "ssm_similarity", "ssm_rmse")


@dataclass
class Song:
    name: str
    folder: Path
    vocal: Path
    backing: Path
    reference: Optional[Path]


@dataclass
class CompareRequest:
    song_dirs: list[Path]
    methods: list[str]
    out_dir: Path
    csv_path: Optional[Path] = None
    jobs: int = 1
    force: bool = False
    plots: bool = True


@dataclass
class CompareResult:
    rows: list[dict]
    statistics: list[dict]
    unavailable: dict[str, str]
    failures: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def _one_file(folder: Path, stem: str) -> Optional[Path]:
    found = sorted(p for p in folder.iterdir() if p.stem == stem and p.suffix.lower() in AUDIO_SUFFIXES)
    if len(found) > 1:
        raise InputError(f"{folder}: several {stem}.* files ({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


def _required_file(folder: Path, stem: str) -> Path:
    found = _one_file(folder, stem)
    if found is None:
        raise InputError(
            f"{folder}: no {stem}.* audio file (a song folder holds vocal.*, backing.* and optionally mix.*)"
        )
    return found


def find_songs(song_dirs: list[Path]) -> list[Song]:
    songs: list[Song] = []
    for folder in song_dirs:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder (give song folders holding vocal.* and backing.*)")
        songs.append(
            Song(
                folder.name,
                folder,
                _required_file(folder, "vocal"),
                _required_file(folder, "backing"),
                _one_file(folder, "mix"),
            )
        )
    names = [s.name for s in songs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"two song folders are both named '{duplicates[0]}'; song names must differ")
    return songs


def check_methods(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """Methods that can run now, and a reason for each requested one that cannot."""
    from . import methods

    if not names:
        raise InputError("--methods: name at least one method")
    usable, unavailable = [], {}
    known = set(methods.available()) | set(getattr(methods, "PLANNED", {}))
    for name in names:
        if name == REFERENCE:
            raise InputError(f"--methods: '{REFERENCE}' is the song's own mix; it is always included when present")
        if name not in known:
            raise InputError(f"--methods: unknown method '{name}'; known: {', '.join(sorted(known))}")
        try:
            methods.get_method(name)
        except Exception as exc:  # noqa: BLE001 - a method that cannot load is reported, not fatal
            unavailable[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        else:
            usable.append(name)
    return usable, unavailable


def _link_reference(song: Song, folder: Path) -> dict:
    """A note (and, where the file system allows, a symlink) pointing at the reference; never a copy."""
    note = folder / "reference.txt"
    text = (
        f"The reference mix of '{song.name}' is {song.reference.resolve()}\n"
        if song.reference
        else f"'{song.name}' has no reference mix (no mix.* in {song.folder.resolve()}).\n"
    )
    _write_text_atomic(note, text)
    info = {"note": str(note)}
    if song.reference:
        link = folder / f"{REFERENCE}{song.reference.suffix.lower()}"
        try:
            if link.is_symlink() or link.exists():
                if link.is_symlink() and Path(os.readlink(link)) == song.reference.resolve():
                    info["link"] = str(link)
                    return info
                link.unlink()
            link.symlink_to(song.reference.resolve())
            info["link"] = str(link)
        except OSError as exc:
            log.info("%s: no symlink to the reference (%s); see %s", link, exc.strerror, note)
    return info


def _render(song: Song, method: str, folder: Path, force: bool) -> dict:
    """Render one song with one method (reusing an earlier render unless ``force``); the written paths."""
    from .render import RenderRequest, output_paths, run_render

    mix_path = folder / f"{method}.wav"
    with_stems = output_paths(mix_path, stems=True)
    if not force and mix_path.exists() and with_stems["settings"].exists():
        return {
            "mix": mix_path,
            "settings": with_stems["settings"],
            "reused": True,
            **{k: with_stems[k] for k in ("vocal", "backing") if with_stems[k].exists()},
        }
    from . import methods

    if method not in getattr(methods, "AUDIO_METHODS", {}):
        request = RenderRequest(
            vocal_path=song.vocal,
            backing_path=song.backing,
            output=mix_path,
            method=method,
            stems=True,
            rate="working",
            force=True,
        )
        try:
            run_render(request)
            return {**with_stems, "reused": False}
        except InputError as exc:
            if "stem" not in str(exc).lower():
                raise
    # A method that outputs only the mix (waveunet) has no stems: render the mix alone.
    run_render(
        RenderRequest(
            vocal_path=song.vocal,
            backing_path=song.backing,
            output=mix_path,
            method=method,
            stems=False,
            rate="working",
            force=True,
        )
    )
    plain = output_paths(mix_path, stems=False)
    return {**plain, "reused": False}


def _load(path: Path) -> np.ndarray:
    from .audio import load_audio

    return load_audio(path, SAMPLE_RATE).samples.astype(np.float64)


def _projected_relative_loudness(mix: np.ndarray, vocal: np.ndarray, backing: np.ndarray) -> float:
    """Vocal minus backing loudness of the least-squares fit mix ~ g_v * vocal + g_b * backing.

    For a method that returns only the mix this reads the balance it chose, exactly when it
    only changed the levels of the two inputs, approximately when it also processed them."""
    from . import analysis

    n = min(mix.shape[-1], vocal.shape[-1], backing.shape[-1])
    v = np.broadcast_to(vocal[:, :n], mix[:, :n].shape).ravel()
    b = np.broadcast_to(backing[:, :n], mix[:, :n].shape).ravel()
    gains, *_ = np.linalg.lstsq(np.stack([v, b], axis=1), mix[:, :n].ravel(), rcond=None)
    vocal_lufs = analysis.integrated_loudness(gains[0] * vocal[:, :n], SAMPLE_RATE)
    backing_lufs = analysis.integrated_loudness(gains[1] * backing[:, :n], SAMPLE_RATE)
    if min(vocal_lufs, backing_lufs) <= analysis.SILENCE_LUFS or gains[0] <= 0 or gains[1] <= 0:
        return float("nan")
    return vocal_lufs - backing_lufs


def describe_mix(song: dict, method: str, paths: dict) -> dict:
    """One CSV row (and the mix's SSM) for ``method``'s mix of ``song``; runs in a worker process."""
    from . import descriptors as d

    mix = _load(Path(paths["mix"]))
    row: dict = {"song": song["name"], "method": method, "mix_path": str(paths["mix"])}
    summary, frames = d.mix_descriptors_and_frames(mix, SAMPLE_RATE)
    row.update(summary)
    nan = float("nan")
    if paths.get("vocal") and paths.get("backing"):
        row.update(d.vocal_descriptors(_load(Path(paths["vocal"])), _load(Path(paths["backing"])), SAMPLE_RATE))
        row["relative_loudness_source"] = "song stems" if method == REFERENCE else "stems"
    else:
        inputs = [_load(Path(song["vocal"])), _load(Path(song["backing"]))]
        row.update(
            relative_loudness_lu=_projected_relative_loudness(mix, *inputs),
            vocal_centroid_hz=nan,
            vocal_tilt_db_per_oct=nan,
            relative_loudness_source="projection",
        )
    ssm = None
    if method == REFERENCE:
        # Distances of the reference to itself are 0 and 1 by definition.
        row.update(mrstft_to_reference=0.0, ssm_similarity=1.0, ssm_rmse=0.0)
        ssm = d.self_similarity(d.chromagram(mix, SAMPLE_RATE))
    elif song.get("reference"):
        reference = _load(Path(song["reference"]))
        row["mrstft_to_reference"] = d.mrstft_distance(mix, reference, SAMPLE_RATE)
        comparison = d.ssm_comparison(mix, reference, SAMPLE_RATE)
        row.update(ssm_similarity=comparison["ssm_similarity"], ssm_rmse=comparison["ssm_rmse"])
        ssm = comparison["ssm"]
    else:
        row.update(mrstft_to_reference=nan, ssm_similarity=nan, ssm_rmse=nan)
        ssm = d.self_similarity(d.chromagram(mix, SAMPLE_RATE))
    return {"row": row, "ssm": ssm, "frames": frames}


def _job(task: dict) -> dict:
    """Render (unless it is the reference) and describe; errors come back as text, not exceptions."""
    import torch

    torch.set_num_threads(1)
    info = task["song"]
    reference = Path(info["reference"]) if info["reference"] is not None else None
    song = Song(info["name"], Path(info["folder"]), Path(info["vocal"]), Path(info["backing"]), reference)
    paths: dict[str, Any]
    try:
        if task["method"] == REFERENCE:
            paths = {"mix": song.reference, "vocal": song.vocal, "backing": song.backing}
            reused = False
        else:
            paths = _render(song, task["method"], Path(task["folder"]), task["force"])
            reused = paths.pop("reused")
        described = describe_mix(task["song"], task["method"], {k: str(v) for k, v in paths.items()})
        return {**described, "paths": {k: str(v) for k, v in paths.items()}, "reused": reused}
    except InputError as exc:
        return {"error": f"{song.name} / {task['method']}: {exc}"}
    except Exception as exc:  # noqa: BLE001 - one method failing on one song must not stop the others
        return {"error": f"{song.name} / {task['method']}: internal error {type(exc).__name__}: {exc}"}


def run_compare(req: CompareRequest, progress: Callable[[str], None] = lambda m: None) -> CompareResult:
    if req.jobs < 1:
        raise InputError(f"-j {req.jobs}: use 1 or more worker processes")
    songs = find_songs(req.song_dirs)
    usable, unavailable = check_methods(req.methods)
    for name, reason in unavailable.items():
        progress(f"method '{name}' is not available: {reason}")
    csv_path = req.csv_path or req.out_dir / "descriptors.csv"
    if not req.out_dir.parent.exists():
        raise InputError(f"{req.out_dir}: folder {req.out_dir.parent} does not exist")
    if req.csv_path is not None:
        if req.csv_path.suffix.lower() != ".csv":
            raise InputError(f"--csv {req.csv_path}: the file name must end in .csv")
        if not req.csv_path.parent.is_dir():
            raise InputError(f"--csv {req.csv_path}: folder {req.csv_path.parent} does not exist")
    req.out_dir.mkdir(exist_ok=True)
    tasks: list[dict[str, Any]] = []
    manifest_songs: list[dict[str, Any]] = []
    for song in songs:
        folder = (req.out_dir / song.name).resolve()  # absolute: compare.json is read from other folders
        folder.mkdir(exist_ok=True)
        reference_info = _link_reference(song, folder)
        song_info = {
            "name": song.name,
            "folder": str(song.folder.resolve()),
            "vocal": str(song.vocal.resolve()),
            "backing": str(song.backing.resolve()),
            "reference": str(song.reference.resolve()) if song.reference else None,
        }
        manifest_songs.append({**song_info, "reference_note": reference_info, "mixes": {}})
        for method in usable + ([REFERENCE] if song.reference else []):
            tasks.append({"song": song_info, "method": method, "folder": str(folder), "force": req.force})

    results: list[dict] = []
    if req.jobs == 1 or len(tasks) == 1:
        for number, task in enumerate(tasks, start=1):
            progress(f"{task['song']['name']}: {task['method']} ({number} of {len(tasks)})")
            results.append(_job(task))
    else:
        import multiprocessing

        progress(f"{len(tasks)} mixes to render and describe in {req.jobs} processes")
        with ProcessPoolExecutor(max_workers=req.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for number, (task, result) in enumerate(zip(tasks, pool.map(_job, tasks)), start=1):
                progress(f"{task['song']['name']}: {task['method']} done ({number} of {len(tasks)})")
                results.append(result)

    rows: list[dict] = []
    failures: list[str] = []
    ssms: dict[str, dict[str, tuple[np.ndarray, float]]] = {}
    frames: dict[str, dict[str, dict]] = {}
    for task, result in zip(tasks, results):
        if "error" in result:
            failures.append(result["error"])
            progress(f"failed: {result['error']}")
            continue
        rows.append(result["row"])
        ssms.setdefault(task["song"]["name"], {})[task["method"]] = (result["ssm"], result["row"]["ssm_similarity"])
        frames.setdefault(task["song"]["name"], {})[task["method"]] = result["frames"]
        entry = next(s for s in manifest_songs if s["name"] == task["song"]["name"])
        entry["mixes"][task["method"]] = result["paths"]
    statistics = descriptor_statistics(rows)
    per_song = frame_statistics(frames)
    written = [_write_csv_atomic(csv_path, rows, COLUMNS)]
    written.append(_write_csv_atomic(req.out_dir / "statistics.csv", statistics, STAT_COLUMNS))
    written.append(_write_csv_atomic(req.out_dir / "statistics_per_song.csv", per_song, ["song", *STAT_COLUMNS]))
    manifest = {
        "vocalmix_version": __version__,
        "sample_rate_hz": SAMPLE_RATE,
        "methods": usable,
        "unavailable": unavailable,
        "failures": failures,
        "songs": manifest_songs,
        "descriptors_csv": str(csv_path.resolve()),
    }
    manifest_path = req.out_dir / "compare.json"
    _write_text_atomic(manifest_path, json.dumps(manifest, indent=2))
    written.insert(0, manifest_path)
    plot_files: dict = {}
    if req.plots and rows:
        progress("plotting")
        plot_dir = req.out_dir / "plots"
        plot_dir.mkdir(exist_ok=True)
        plot_files["descriptors"] = plot_descriptors(rows, DESCRIPTORS, plot_dir / "descriptors.png")
        plot_files["ssm"] = {
            song: plot_ssms(song, by_method, plot_dir / f"ssm_{song}.png") for song, by_method in ssms.items()
        }
        written += [plot_files["descriptors"], *plot_files["ssm"].values()]
    report = req.out_dir / "report.md"
    _write_text_atomic(
        report, markdown_report(rows, statistics, unavailable, failures, plot_files, req.out_dir, csv_path, per_song)
    )
    written.append(report)
    return CompareResult(rows, statistics, unavailable, failures, written)


STAT_COLUMNS = [
    "descriptor",
    "test",
    "group_a",
    "group_b",
    "n",
    "statistic",
    "mean_difference",
    "ci_low",
    "ci_high",
    "p_value",
    "note",
]


def _anova_and_tukey(descriptor: str, groups: dict, alpha: float) -> list[dict]:
    """One-way ANOVA over ``groups`` (name -> values) and Tukey-Kramer pairs; a note where untestable."""
    from scipy import stats

    base = {
        "descriptor": descriptor,
        "test": "anova",
        "group_a": "",
        "group_b": "",
        "n": "",
        "statistic": "",
        "mean_difference": "",
        "ci_low": "",
        "ci_high": "",
        "p_value": "",
        "note": "",
    }
    if len(groups) < 2:
        return [{**base, "note": "fewer than two methods with two or more values"}]
    if all(np.ptp(g) == 0 for g in groups.values()):
        return [{**base, "note": "no variation within methods"}]
    anova = stats.f_oneway(*groups.values())
    out = [
        {
            **base,
            "n": min(len(g) for g in groups.values()),
            "statistic": float(anova.statistic),
            "p_value": float(anova.pvalue),
        }
    ]
    tukey = stats.tukey_hsd(*groups.values())
    ci = tukey.confidence_interval(1 - alpha)
    names = list(groups)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            out.append(
                {
                    **base,
                    "test": "tukey",
                    "group_a": names[i],
                    "group_b": names[j],
                    "n": min(len(groups[names[i]]), len(groups[names[j]])),
                    "statistic": float(tukey.statistic[i, j]),
                    "mean_difference": float(tukey.statistic[i, j]),
                    "ci_low": float(ci.low[i, j]),
                    "ci_high": float(ci.high[i, j]),
                    "p_value": float(tukey.pvalue[i, j]),
                }
            )
    return out


def frame_statistics(frames: dict, alpha: float = 0.05) -> list[dict]:
    """The paper's per-song analysis (its Table 3): for each song and frame-wise descriptor, one-way
    ANOVA and Tukey-Kramer across the mixes with the analysis frames as observations.

    Frames overlap and music is autocorrelated, so the frames are not independent and these
    p-values are optimistic; they reproduce the paper's procedure, the across-song test is the
    conservative one."""
    from .descriptors import FRAME_DESCRIPTORS

    out = []
    for song, by_method in frames.items():
        for descriptor in FRAME_DESCRIPTORS:
            groups = {
                m: np.asarray(v[descriptor], float)
                for m, v in by_method.items()
                if descriptor in v and np.asarray(v[descriptor]).size >= 2
            }
            groups = {m: g[np.isfinite(g)] for m, g in groups.items()}
            out += [{"song": song, **r} for r in _anova_and_tukey(descriptor, groups, alpha)]
    return out


def descriptor_statistics(rows: list[dict], alpha: float = 0.05) -> list[dict]:
    """Per descriptor: one-way ANOVA across methods (songs as observations) and Tukey-Kramer pairs.

    As Koszewski et al.: ``scipy.stats.f_oneway`` then ``scipy.stats.tukey_hsd`` (Tukey-Kramer for
    unequal group sizes). A descriptor is skipped, with a note, where fewer than two methods have
    two finite values each or no method's values vary."""
    out = []
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for descriptor in DESCRIPTORS:
        groups = {}
        for method in methods:
            if method == REFERENCE and descriptor in REFERENCE_RELATIVE:
                continue
            values = [float(r[descriptor]) for r in rows if r["method"] == method and _finite(r.get(descriptor))]
            if len(values) >= 2:
                groups[method] = np.asarray(values)
        out += _anova_and_tukey(descriptor, groups, alpha)
    return out


def _finite(value) -> bool:
    try:
        return value is not None and value != "" and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return "" if value is None else str(value)


def _write_csv_atomic(path: Path, rows: list[dict], columns: list[str]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    _write_text_atomic(path, buffer.getvalue())
    return path


def _write_text_atomic(path: Path, text: str) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    return write_atomic(path, text if text.endswith("\n") else text + "\n")


TABLE_COLUMNS = [
    ("song", "song", 26, None),
    ("method", "method", 10, None),
    ("integrated_lufs", "LUFS", 7, 1),
    ("lra_lu", "LRA", 5, 1),
    ("true_peak_dbtp", "dBTP", 6, 1),
    ("relative_loudness_lu", "voc-bk", 6, 1),
    ("mrstft_to_reference", "MRSTFT", 6, 2),
    ("ssm_similarity", "SSM", 5, 2),
    ("odd_even_ratio_db", "O/E dB", 6, 1),
    ("harmonic_energy_db", "HE dB", 6, 1),
    ("noisiness", "noisy", 5, 2),
    ("vocal_centroid_hz", "cent Hz", 7, 0),
]


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of the main columns."""

    def fmt(value, width, digits):
        if digits is None:
            text = str(value)
            return text if len(text) <= width else text[: width - 1] + "~"
        return f"{value:.{digits}f}" if _finite(value) else "-"

    header = " ".join(f"{title:<{w}}" if d is None else f"{title:>{w}}" for _, title, w, d in TABLE_COLUMNS)
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            " ".join(
                f"{fmt(r.get(k), w, d):<{w}}" if d is None else f"{fmt(r.get(k), w, d):>{w}}"
                for k, _, w, d in TABLE_COLUMNS
            )
        )
    return "\n".join(lines)


def _markdown_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, int | None]]) -> str:
    head = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = []
    for r in rows:
        cells = []
        for key, _, digits in columns:
            value: Any = r.get(key)
            if digits is None:
                cells.append(str(value) if value not in (None, "") else "")
            elif _finite(value):
                cells.append(f"{float(value):.{digits}f}" if digits >= 0 else f"{float(value):.3g}")
            else:
                cells.append("-")
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *body])


def markdown_report(
    rows, statistics, unavailable, failures, plot_files, out_dir: Path, csv_path: Path, per_song: Sequence[dict] = ()
) -> str:
    def rel(path: Path) -> str:
        return os.path.relpath(path, out_dir)

    columns = [
        ("song", "song", None),
        ("method", "method", None),
        ("integrated_lufs", "LUFS", 1),
        ("lra_lu", "LRA LU", 1),
        ("true_peak_dbtp", "dBTP", 1),
        ("relative_loudness_lu", "vocal-backing LU", 1),
        ("mrstft_to_reference", "MR-STFT", 2),
        ("ssm_similarity", "SSM SSIM", 2),
        ("odd_even_ratio_db", "odd/even dB", 1),
        ("harmonic_energy_db", "harm. energy dB", 1),
        ("noisiness", "noisiness", 2),
        ("vocal_centroid_hz", "vocal centroid Hz", 0),
        ("vocal_tilt_db_per_oct", "vocal tilt dB/oct", 2),
    ]
    parts = [
        "# vocalmix compare",
        "",
        f"Descriptors per song and method: [{rel(csv_path)}]({rel(csv_path)}); statistics: "
        "[statistics.csv](statistics.csv); definitions: docs/compare.md in the vocalmix sources.",
        "",
    ]
    if unavailable:
        parts += ["Methods not available: " + "; ".join(f"`{k}` ({v})" for k, v in unavailable.items()), ""]
    if failures:
        parts += ["Failed:", *[f"- {f}" for f in failures], ""]
    parts += ["## Descriptors", "", _markdown_table(rows, columns), ""]
    anova = [s for s in statistics if s["test"] == "anova"]
    parts += [
        "## One-way ANOVA across songs (Tukey-Kramer pairs in statistics.csv)",
        "",
        _markdown_table(
            anova,
            [
                ("descriptor", "descriptor", None),
                ("n", "songs per method", None),
                ("statistic", "F", 2),
                ("p_value", "p", -1),
                ("note", "note", None),
            ],
        ),
        "",
    ]
    significant = [s for s in statistics if s["test"] == "tukey" and _finite(s["p_value"]) and s["p_value"] < 0.05]
    if significant:
        parts += ["Tukey-Kramer pairs with p < 0.05:", ""]
        parts += [
            f"- {s['descriptor']}: {s['group_a']} vs {s['group_b']}, difference {s['mean_difference']:.3g} "
            f"(95 % CI {s['ci_low']:.3g} to {s['ci_high']:.3g}), p = {s['p_value']:.3g}"
            for s in significant
        ]
        parts.append("")
    song_anova = [s for s in per_song if s["test"] == "anova"]
    if song_anova:
        parts += [
            "## Per song, frames as observations (the paper's Table 3; optimistic p-values, see docs)",
            "",
            _markdown_table(
                song_anova,
                [
                    ("song", "song", None),
                    ("descriptor", "descriptor", None),
                    ("n", "frames (fewest)", None),
                    ("statistic", "F", 2),
                    ("p_value", "p", -1),
                    ("note", "note", None),
                ],
            ),
            "",
            "Tukey-Kramer pairs: [statistics_per_song.csv](statistics_per_song.csv).",
            "",
        ]
    if plot_files:
        parts += ["## Plots", "", f"![descriptors per method]({rel(plot_files['descriptors'])})", ""]
        for song, path in plot_files["ssm"].items():
            parts += [f"- chroma self-similarity matrices, {song}: [{rel(path)}]({rel(path)})"]
        parts.append("")
    return "\n".join(parts)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported only when plotting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Path) -> Path:
    # savefig infers the format from the name, so the temporary file is written as PNG explicitly.
    return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def plot_descriptors(rows: list[dict], descriptors: list[str], path: Path) -> Path:
    """One panel per descriptor: each song's value per method (markers) and the method's mean (red line)."""
    plt = pyplot()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    shown = [d for d in descriptors if any(_finite(r.get(d)) for r in rows)]
    columns = 4
    lines = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.0 * columns, 2.9 * lines), squeeze=False)
    songs = list(dict.fromkeys(r["song"] for r in rows))
    markers = "osD^v<>ph*"
    for ax, descriptor in zip(axes.ravel(), shown):
        for x, method in enumerate(methods):
            values = [
                (r["song"], float(r[descriptor])) for r in rows if r["method"] == method and _finite(r.get(descriptor))
            ]
            if not values:
                continue
            ax.hlines(np.mean([v for _, v in values]), x - 0.3, x + 0.3, color="#c0392b", linewidth=2)
            for song, value in values:
                ax.plot(x, value, markers[songs.index(song) % len(markers)], color="#1f4e89", markersize=5)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=20, fontsize=8)
        ax.set_title(descriptor, fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.grid(axis="y", linewidth=0.3)
    for ax in axes.ravel()[len(shown) :]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], marker=markers[i % len(markers)], linestyle="", color="#1f4e89", label=s)
        for i, s in enumerate(songs)
    ]
    fig.legend(handles=handles, loc="lower right", fontsize=8, title="songs (red line: mean)", title_fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    try:
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_ssms(song: str, by_method: dict, path: Path) -> Path:
    """The chroma SSMs of one song side by side (reference first), titled with their SSIM to the reference."""
    plt = pyplot()
    order = ([REFERENCE] if REFERENCE in by_method else []) + [m for m in by_method if m != REFERENCE]
    fig, axes = plt.subplots(1, len(order), figsize=(3.2 * len(order), 3.9), squeeze=False)
    for ax, method in zip(axes[0], order):
        ssm, similarity = by_method[method]
        ax.imshow(ssm, cmap="gray", vmin=-1, vmax=1, origin="lower", interpolation="nearest")
        label = method if method == REFERENCE or not _finite(similarity) else f"{method} (SSIM {similarity:.2f})"
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("frame", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("frame", fontsize=8)
    fig.suptitle(f"{song}: chroma self-similarity (white = same chroma)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    try:
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


def compare_command(
    song_dirs: list[Path] = typer.Argument(
        ...,
        metavar="SONG_DIR...",
        help="Song folders, each with vocal.*, backing.* and optionally mix.* (the reference).",
    ),
    methods: str = typer.Option(
        "rules,cnn",
        "--methods",
        "-m",
        help="Comma-separated methods to compare (unavailable ones are reported and skipped).",
    ),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the mixes, descriptors, statistics, plots and report."
    ),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Descriptor CSV (default DIR/descriptors.csv)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes."),
    force: bool = typer.Option(False, "--force", "-f", help="Re-render mixes that an earlier run left in DIR."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
):
    """Mix every song with every method, measure the mixes (Koszewski et al.'s descriptors, MR-STFT and chroma-SSM
    distance to the reference) and compare the methods (one-way ANOVA, Tukey-Kramer)."""
    from .progress import Progress

    request = CompareRequest(
        song_dirs=list(song_dirs),
        methods=[m.strip() for m in methods.split(",") if m.strip()],
        out_dir=out_dir,
        csv_path=csv_path,
        jobs=jobs,
        force=force,
        plots=not no_plots,
    )
    result = run_compare(request, progress=Progress(quiet))
    typer.echo(format_table(result.rows))
    for name, reason in result.unavailable.items():
        typer.echo(f"not available: {name} ({reason})")
    for failure in result.failures:
        typer.echo(f"failed: {failure}")
    typer.echo(f"report: {out_dir / 'report.md'}")
    if result.failures:
        raise typer.Exit(1)
