"""``--method cnn-e2e``: every setting from one predictor trained end to end through the chain.

The predictor (:class:`~vocalmix.nets.mixing_cnn.MixingCNN` with one output per decided
setting, :mod:`vocalmix.nets.e2e_outputs`) is trained by :mod:`vocalmix.training.e2e`.
At inference its outputs are averaged (in unit space) over the song's gated mel blocks;
the compressor threshold is placed against the EQ'd vocal's sample peak and the level by
the level rule at the predicted relative loudness, then everything is snapped to the
plug-ins' grids.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from vocalmix import analysis
from vocalmix.errors import InputError
from vocalmix.features import song_features
from vocalmix.mixing import process_vocal
from vocalmix.nets import e2e_outputs
from vocalmix.nets.checkpoints import file_sha256, load_checkpoint, model_from_checkpoint
from vocalmix.nets.mixing_cnn import MixingCNN
from vocalmix.rules.level import decide_level
from vocalmix.settings import SCHEMA_VERSION, MixSettings

from . import MODELS_DIR, Decision
from .cnn import FALLBACK_VOCAL_LUFS, at_loudness

#: The ``task`` a cnn-e2e checkpoint names, and its file name in a model folder.
TASK = "cnn-e2e"
CHECKPOINT_NAME = "cnn_e2e.pt"


def default_model_dir() -> Path:
    """The checkpoint shipped with the package (``vocalmix/models/cnn_e2e``)."""
    return MODELS_DIR / "cnn_e2e"


def load_predictor(model_dir: str | os.PathLike | None = None) -> tuple[MixingCNN, dict, Path]:
    """(network in eval mode, checkpoint payload, checkpoint path); ``model_dir`` a folder or the file."""
    folder = Path(model_dir) if model_dir is not None else default_model_dir()
    path = folder / CHECKPOINT_NAME if folder.is_dir() or not folder.suffix else folder
    if not folder.exists():
        raise InputError(f"{folder}: model folder not found")
    payload = load_checkpoint(path)
    if payload["task"] != TASK or list(payload["target_names"]) != list(e2e_outputs.NAMES):
        raise InputError(f"{path}: not a cnn-e2e checkpoint for this vocalmix's settings; retrain it")
    if payload.get("search_ranges") != [[d.low, d.high, d.scale] for d in e2e_outputs.DECIDED]:
        raise InputError(f"{path}: trained with other search ranges than this vocalmix uses; retrain it")
    if payload.get("settings_schema_version") != SCHEMA_VERSION:
        raise InputError(f"{path}: trained for settings schema {payload.get('settings_schema_version')!r}; retrain it")
    model = model_from_checkpoint(payload, path)
    if not isinstance(model, MixingCNN):
        raise InputError(f"{path}: holds a {payload['model_config'].get('architecture')} network, not a cnn-e2e CNN")
    return model, payload, path


def predict_units(model: MixingCNN, blocks: torch.Tensor) -> torch.Tensor:
    """The predictor's outputs in (0, 1), ``(blocks, N_OUTPUTS)``."""
    return torch.sigmoid(model(blocks))


class CnnE2EMethod:
    """``--method cnn-e2e`` behind the :class:`~vocalmix.methods.Method` interface.

    ``model_dir`` holds ``cnn_e2e.pt`` (or is that file); ``None`` means the shipped one.
    """

    name = "cnn-e2e"

    def __init__(self, model_dir: str | os.PathLike | None = None):
        self.model, self.payload, self.path = load_predictor(model_dir)
        self.sha256 = file_sha256(self.path)

    @torch.no_grad()
    def decide_units(self, vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> tuple[torch.Tensor, int]:
        blocks = song_features(vocal, backing, sample_rate)
        if blocks.shape[0] == 0:
            louder = at_loudness(vocal, sample_rate, FALLBACK_VOCAL_LUFS)
            if louder is not None:
                blocks = song_features(louder, backing, sample_rate)
        if blocks.shape[0] == 0:
            raise InputError("vocal: the cnn-e2e method needs at least 1.5 s of audible singing")
        return predict_units(self.model, blocks.float()).mean(dim=0), int(blocks.shape[0])

    def decide(self, vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> Decision:
        vocal = np.asarray(vocal, dtype=np.float32)
        backing = np.asarray(backing, dtype=np.float32)
        u, n_blocks = self.decide_units(vocal, backing, sample_rate)
        values = {k: float(v[0]) for k, v in e2e_outputs.to_physical(u[None].double()).items()}
        return Decision(
            *settings_from_values(
                values,
                vocal,
                backing,
                sample_rate,
                report={
                    "method": self.name,
                    "model": str(self.path.resolve()),
                    "checkpoint_sha256": self.sha256,
                    "dataset_manifest_sha256": self.payload.get("dataset_manifest_sha256"),
                    "n_blocks": n_blocks,
                },
            )
        )


def settings_from_values(
    values: dict[str, float], vocal: np.ndarray, backing: np.ndarray, sample_rate: int, report: dict | None = None
) -> tuple[MixSettings, dict]:
    """(MixSettings snapped to the plug-in grids, report) from one row of physical e2e values."""
    report = dict(report or {})
    draft = e2e_outputs.to_mix_settings(values, input_peak_db=0.0)
    eq_out = process_vocal(vocal, sample_rate, draft, upto="eq")
    peak_db = analysis.sample_peak(eq_out)
    settings = e2e_outputs.to_mix_settings(values, input_peak_db=peak_db)
    wet = process_vocal(eq_out, sample_rate, settings, start="compressor", upto="reverb")
    level, level_report = decide_level(wet, backing, sample_rate, values["level.relative_loudness_lu"])
    settings = e2e_outputs.to_mix_settings(values, input_peak_db=peak_db, vocal_gain_db=level.vocal_gain_db)
    report.update({"predicted": values, "compressor_input_peak_db": peak_db, "level": level_report})
    return settings, report
