"""``--method cnn``: settings from the four CNN regressors.

The models run in signal-chain order, each on the vocal as processed by the
effects decided before it (as in Li & Lerch), and each model's outputs are
averaged over all feature blocks of the song:

1. **EQ** on the raw vocal: the 9 octave-band gains; the 4 with the largest
   |gain| become peak filters, Q = 1, at their octave centres, in MultiEQ bands
   1-4 (sorted by frequency); bands 0 and 5 stay off.
2. **Compression** on the EQ'd vocal: the predicted loudness range (LU) is the
   target of the rules' threshold/ratio search (:func:`vocalmix.rules.compression.search_compression`).
3. **Reverb** on the compressed vocal: the 10 FdnReverb settings, used directly
   (clamped to the settings' ranges, room size rounded).
4. **Level** on the reverberated vocal: the predicted vocal-minus-backing loudness
   (LU) is the target of :func:`vocalmix.rules.level.decide_level`.

Each stage is rendered once, on the output of the stage before it (the compressor
search's chosen step is the compressor stage), exactly as the whole chain renders it.

The report holds the method, the model folder, each checkpoint's SHA-256 and the
raw predictions (mean and spread over blocks, physical units).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocalmix import analysis
from vocalmix.errors import InputError
from vocalmix.features import DEFAULT_FEATURES, FeatureSettings, song_features
from vocalmix.mixing import process_vocal
from vocalmix.nets.checkpoints import check_compatible, file_sha256, load_checkpoint, model_from_checkpoint
from vocalmix.nets.cnn_targets import OCTAVE_CENTRES_HZ, denormalise_targets
from vocalmix.nets.mixing_cnn import TASK_OUTPUTS, MixingCNN
from vocalmix.nets.spectrum_mlp import SpectrumMLP
from vocalmix.rules.compression import search_compression
from vocalmix.rules.level import decide_level
from vocalmix.rules.method import on_plugin_grids
from vocalmix.settings import EQBand, EQSettings, MixSettings, ReverbSettings, spec_of

from . import MODELS_DIR, Decision

#: Peak-filter Q of the EQ model's bands (the data generator's Q).
EQ_Q = 1.0
EQ_BANDS_KEPT = 4
#: Gain range the EQ model was trained on (dB).
EQ_GAIN_LIMIT_DB = 15.0
#: When a vocal is too quiet for the -30 LUFS frame gate, features are retried with
#: the vocal at this integrated loudness. The blocks are max-normalised, so only the
#: gate (which frames count) changes, not what a kept block looks like.
FALLBACK_VOCAL_LUFS = -20.0

TASK_ORDER = ("eq", "compression", "reverb", "level")


def default_model_dir() -> Path:
    """The checkpoints shipped with the package (``vocalmix/models/cnn``)."""
    return MODELS_DIR / "cnn"


class CnnModels:
    """The four loaded checkpoints of a model folder (``level.pt``, ``compression.pt``, ``eq.pt``, ``reverb.pt``)."""

    def __init__(self, model_dir: str | os.PathLike | None = None):
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if not self.model_dir.is_dir():
            raise InputError(f"{self.model_dir}: model folder not found")
        self.models: dict[str, MixingCNN | SpectrumMLP] = {}
        self.payloads: dict[str, dict] = {}
        self.hashes: dict[str, str] = {}
        for task in TASK_ORDER:
            path = self.model_dir / f"{task}.pt"
            payload = load_checkpoint(path)  # InputError naming the file if missing or corrupt
            if payload["task"] != task:
                raise InputError(f"{path}: holds a '{payload['task']}' model, not '{task}'")
            if payload["model_config"].get("n_outputs") != TASK_OUTPUTS[task]:
                raise InputError(
                    f"{path}: has {payload['model_config'].get('n_outputs')} outputs, "
                    f"a {task} model needs {TASK_OUTPUTS[task]}"
                )
            check_compatible(payload, path)
            self.models[task] = model_from_checkpoint(payload, path)
            self.payloads[task] = payload
            self.hashes[task] = file_sha256(path)

    def feature_settings(self, task: str) -> FeatureSettings:
        """The feature settings the task's model was trained with."""
        record = dict(self.payloads[task].get("feature_settings") or {})
        record.pop("shape", None)
        if not record:
            return DEFAULT_FEATURES
        try:
            return FeatureSettings.from_dict(record)
        except TypeError:
            raise InputError(f"{self.model_dir / (task + '.pt')}: unknown feature settings in the checkpoint") from None

    @torch.no_grad()
    def predict(self, task: str, vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> dict[str, Any]:
        """Block-averaged prediction of ``task`` for ``vocal`` ``(C, T)`` and ``backing`` ``(C, T)``.

        Returns ``{"values": {target: physical}, "block_std": {target: physical spread},
        "n_blocks": int, "gain_normalised": bool}``.
        """
        settings = self.feature_settings(task)
        blocks = song_features(vocal, backing, sample_rate, settings=settings)
        gain_normalised = False
        if blocks.shape[0] == 0:
            louder = at_loudness(vocal, sample_rate, FALLBACK_VOCAL_LUFS)
            if louder is not None:
                blocks = song_features(louder, backing, sample_rate, settings=settings)
                gain_normalised = True
        if blocks.shape[0] == 0:
            seconds = settings.block_samples / settings.sample_rate
            raise InputError(
                f"vocal: the cnn method needs at least {seconds:.1f} s of audible singing "
                f"(none found above the {settings.gate_lufs:g} LUFS frame gate)"
            )
        outputs = self.models[task](blocks.to(torch.float32))
        mean_u = outputs.mean(dim=0)
        names = list(self.payloads[task]["target_names"])
        values = denormalise_targets(task, mean_u[None])[0].numpy().astype(np.float64)
        per_block = denormalise_targets(task, outputs).numpy().astype(np.float64)
        spread = per_block.std(axis=0) if len(per_block) > 1 else np.zeros(len(names))
        return {
            "values": {n: float(v) for n, v in zip(names, values)},
            "block_std": {n: float(v) for n, v in zip(names, spread)},
            "n_blocks": int(blocks.shape[0]),
            "gain_normalised": gain_normalised,
        }


def at_loudness(vocal: np.ndarray, sample_rate: int, lufs: float) -> np.ndarray | None:
    """``vocal`` scaled to integrated loudness ``lufs``; None if it is silent."""
    loudness = analysis.integrated_loudness(vocal, sample_rate)
    if not np.isfinite(loudness) or loudness <= analysis.SILENCE_LUFS:
        return None
    return (vocal * 10 ** ((lufs - loudness) / 20)).astype(np.float32)


def eq_from_gains(
    gains_db: dict[str, float], centres_hz: tuple[float, ...] = OCTAVE_CENTRES_HZ
) -> tuple[EQSettings, dict]:
    """MultiEQ settings from 9 octave-band gains: the 4 largest |gain| as peak filters in bands 1-4."""
    names = list(gains_db)
    gains = np.array([gains_db[n] for n in names], dtype=np.float64)
    # Stable sort on -|gain| so ties resolve to the lower band, deterministically.
    chosen = sorted(np.argsort(-np.abs(gains), kind="stable")[:EQ_BANDS_KEPT].tolist())
    eq = EQSettings()
    gain_spec = spec_of(EQBand, "gain_db")
    for slot, i in enumerate(chosen, start=1):
        gain = float(
            np.clip(gains[i], max(gain_spec.minimum, -EQ_GAIN_LIMIT_DB), min(gain_spec.maximum, EQ_GAIN_LIMIT_DB))
        )
        eq.bands[slot] = EQBand(enabled=True, type="peak", frequency_hz=float(centres_hz[i]), q=EQ_Q, gain_db=gain)
    report = {
        "kept_bands_hz": [float(centres_hz[i]) for i in chosen],
        "kept_gains_db": [eq.bands[s].gain_db for s in range(1, 1 + len(chosen))],
    }
    return eq, report


def reverb_from_values(values: dict[str, float], base: ReverbSettings | None = None) -> ReverbSettings:
    """FdnReverb settings from the reverb model's 10 physical values, clamped to the settings' ranges."""
    base = base or ReverbSettings()
    fields: dict[str, Any] = {}
    for name, value in values.items():
        spec = spec_of(ReverbSettings, name)
        v = float(np.clip(value, spec.minimum, spec.maximum))
        fields[name] = float(round(v)) if spec.integer else v
    return replace(base, **fields)


class CnnMethod:
    """Li & Lerch's deep-learning system behind the :class:`~vocalmix.methods.Method` interface.

    ``model_dir`` holds ``level.pt``, ``compression.pt``, ``eq.pt`` and ``reverb.pt``;
    ``None`` means the checkpoints shipped in the package. Checkpoints are loaded
    here, so a missing or corrupt file fails before any audio is processed.
    """

    name = "cnn"

    def __init__(self, model_dir: str | os.PathLike | None = None, base: MixSettings | None = None):
        self.models = CnnModels(model_dir)
        self.base = base or MixSettings()

    def decide(self, vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> Decision:
        """Settings for ``vocal`` ``(1, T)`` float32 and ``backing`` ``(2, T)`` at ``sample_rate`` Hz."""
        vocal = np.asarray(vocal, dtype=np.float32)
        backing = np.asarray(backing, dtype=np.float32)
        if vocal.ndim != 2 or backing.ndim != 2:
            raise InputError("vocal and backing must be (channels, samples) arrays")
        settings = replace(self.base)
        predictions: dict[str, Any] = {}
        report: dict[str, Any] = {
            "method": self.name,
            "model_dir": str(self.models.model_dir.resolve()),
            "checkpoints_sha256": dict(self.models.hashes),
            "predictions": predictions,
        }
        timings: dict[str, float] = {}

        start = time.perf_counter()
        predictions["eq"] = self.models.predict("eq", vocal, backing, sample_rate)
        settings.eq, report["eq"] = eq_from_gains(predictions["eq"]["values"])
        # Each stage goes on the plug-ins' grids as it is decided, so the later models (and the
        # level, decided last) see the chain exactly as it is rendered.
        settings = on_plugin_grids(settings)
        eq_out = process_vocal(vocal, sample_rate, settings, upto="eq")
        timings["eq"] = time.perf_counter() - start

        start = time.perf_counter()
        predictions["compression"] = self.models.predict("compression", eq_out, backing, sample_rate)
        target_lra = predictions["compression"]["values"]["loudness_range_lu"]
        search = search_compression(eq_out, sample_rate, target_lra)
        settings.compressor, report["compressor"] = search.settings, search.report
        compressed = search.audio  # the chosen step's render is the chain's compressor stage
        if compressed is None:  # no compression needed: the stage still runs, at ratio 1
            compressed = process_vocal(eq_out, sample_rate, settings, start="compressor", upto="compressor")
        timings["compressor"] = time.perf_counter() - start

        start = time.perf_counter()
        predictions["reverb"] = self.models.predict("reverb", compressed, backing, sample_rate)
        settings.reverb = reverb_from_values(predictions["reverb"]["values"], settings.reverb)
        report["reverb"] = {"used_directly": True}
        settings = on_plugin_grids(settings)
        reverb_out = process_vocal(compressed, sample_rate, settings, start="reverb", upto="reverb")
        timings["reverb"] = time.perf_counter() - start

        start = time.perf_counter()
        predictions["level"] = self.models.predict("level", reverb_out, backing, sample_rate)
        target_rel = predictions["level"]["values"]["relative_loudness_lu"]
        settings.level, report["level"] = decide_level(reverb_out, backing, sample_rate, target_rel)
        timings["level"] = time.perf_counter() - start

        report["timings_s"] = timings
        return Decision(settings.validate(), report)
