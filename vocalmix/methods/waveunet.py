"""``--method waveunet``: the Wave-U-Net network mixes the audio itself.

Unlike the other methods it decides no effect settings: :meth:`WaveUNetMethod.decide`
returns a :class:`~vocalmix.methods.Decision` whose ``mix`` is the network's stereo
mix of the whole song (computed in exact overlapping windows, see
:func:`~vocalmix.nets.waveunet.mix_windowed`); ``vocalmix render`` then applies only
the output stage (true-peak ceiling, optional loudness target).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from vocalmix.errors import InputError
from vocalmix.nets.checkpoints import (
    WAVEUNET_SAMPLE_RATE,
    file_sha256,
    load_waveunet_checkpoint,
    waveunet_from_checkpoint,
)
from vocalmix.nets.waveunet import mix_windowed
from vocalmix.settings import MixSettings

from . import MODELS_DIR, Decision

#: The checkpoint's file name in a model folder (what ``vocalmix train waveunet`` keeps as the best).
CHECKPOINT_NAME = "waveunet.pt"

#: Output samples per inference window (about 3 s; memory stays bounded for any song length).
WINDOW_OUTPUT = 2**17


def default_model_dir() -> Path:
    """The checkpoint shipped with the package (``vocalmix/models/waveunet``)."""
    return MODELS_DIR / "waveunet"


def checkpoint_path(model: str | os.PathLike | None) -> Path:
    """``model`` may be a folder holding ``waveunet.pt`` or the checkpoint file itself."""
    path = Path(model) if model is not None else default_model_dir()
    if path.is_dir():
        return path / CHECKPOINT_NAME
    if not path.exists():
        raise InputError(f"{path}: model folder not found")
    return path


class WaveUNetMethod:
    name = "waveunet"

    def __init__(self, model_dir: str | os.PathLike | None = None):
        self.path = checkpoint_path(model_dir)
        self.payload = load_waveunet_checkpoint(self.path)
        self.model = waveunet_from_checkpoint(self.payload, self.path)
        self.sha256 = file_sha256(self.path)

    def decide(self, vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> Decision:
        if sample_rate != WAVEUNET_SAMPLE_RATE:
            raise InputError(f"the waveunet method mixes at {WAVEUNET_SAMPLE_RATE} Hz, got {sample_rate} Hz")
        start = time.perf_counter()
        with torch.inference_mode():
            mix = mix_windowed(self.model, vocal.astype(np.float32), backing.astype(np.float32), WINDOW_OUTPUT)
        if not np.all(np.isfinite(mix)):
            raise InputError(f"{self.path}: the network produced non-finite samples")
        report = {
            "method": self.name,
            "effect_settings": "none: the network outputs the mix directly",
            "model": {
                "path": str(self.path),
                "sha256": self.sha256,
                "architecture": self.payload["model_config"],
                "n_parameters": int(self.payload.get("n_parameters", self.model.n_parameters())),
                "trained_on": self.payload.get("source"),
                "target": self.payload.get("target"),
            },
            "receptive_field_samples": 2 * self.model.context + 1,
            "network_s": time.perf_counter() - start,
        }
        return Decision(settings=MixSettings(), report=report, mix=mix)
