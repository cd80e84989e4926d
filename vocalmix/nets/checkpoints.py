"""Reading and checking the checkpoint files of the shipped (and user-trained) networks.

A checkpoint is a ``torch.save`` dict of tensors and plain values (read with
``weights_only=True``, so a file cannot run code): its ``format`` names the kind,
``format_version`` the layout, ``model_config`` rebuilds the network and ``state_dict``
holds its weights. A missing, truncated or foreign file raises an ``InputError`` naming
it, before any audio is processed. Training writes these files
(:mod:`vocalmix.training.train`, :mod:`vocalmix.training.waveunet_train`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from vocalmix.errors import InputError
from vocalmix.settings import SCHEMA_VERSION

from .cnn_targets import TASKS, target_ranges_record
from .mixing_cnn import MixingCNN, network_from_config
from .model_config import ModelConfig
from .spectrum_mlp import SpectrumMLP
from .waveunet import WaveUNet, WaveUNetConfig

#: The parameter CNNs (``--method cnn``) and the cnn-e2e predictor.
CNN_CHECKPOINT_FORMAT = "vocalmix-cnn-checkpoint"
CNN_CHECKPOINT_VERSION = 1
#: The Wave-U-Net mixer (``--method waveunet``).
WAVEUNET_CHECKPOINT_FORMAT = "vocalmix-waveunet-checkpoint"
WAVEUNET_CHECKPOINT_VERSION = 1
WAVEUNET_SAMPLE_RATE = 44100


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _torch_load(path: Path, kind: str, readable_kind: str) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: {kind} checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch reports truncation, bad zips and pickles with several types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: not a readable {readable_kind} checkpoint ({first[:160]})") from None
    return payload


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a CNN checkpoint (tensors and plain values only); a bad file raises InputError naming it."""
    path = Path(path)
    payload = _torch_load(path, "model", "vocalmix model")
    _check_payload(
        path,
        payload,
        "model",
        CNN_CHECKPOINT_FORMAT,
        CNN_CHECKPOINT_VERSION,
        ("task", "model_config", "state_dict", "target_names"),
    )
    return payload


def _check_payload(
    path: Path, payload: object, kind: str, checkpoint_format: str, version: int, keys: tuple[str, ...]
) -> None:
    """InputError naming ``path`` unless ``payload`` is a ``kind`` checkpoint of this format version with ``keys``."""
    if not isinstance(payload, dict) or payload.get("format") != checkpoint_format:
        raise InputError(f"{path}: not a vocalmix {kind} checkpoint")
    if payload.get("format_version") != version:
        raise InputError(
            f"{path}: {kind} checkpoint format version {payload.get('format_version')!r} "
            f"is not supported (expected {version})"
        )
    for key in keys:
        if key not in payload:
            raise InputError(f"{path}: checkpoint lacks '{key}'")


def model_from_checkpoint(payload: dict, path: str | os.PathLike = "checkpoint") -> MixingCNN | SpectrumMLP:
    """Rebuild the model of a loaded checkpoint in eval mode, float32, on the CPU."""
    try:
        model = network_from_config(ModelConfig.from_dict(payload["model_config"]))
        state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{path}: checkpoint does not match its model ({str(exc).splitlines()[0][:160]})") from None
    assert isinstance(model, (MixingCNN, SpectrumMLP))  # network_from_config builds nothing else
    model.eval()
    return model


def check_compatible(payload: dict, path: str | os.PathLike = "checkpoint") -> None:
    """InputError unless a parameter CNN's targets, ranges and settings schema match this vocalmix.

    Outputs are denormalised with the current ranges, so a checkpoint trained with
    other ranges would silently give wrong settings; refuse it instead.
    """
    task = payload["task"]
    if payload.get("settings_schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"{path}: trained for settings schema {payload.get('settings_schema_version')!r}, "
            f"this vocalmix uses {SCHEMA_VERSION}; retrain the model"
        )
    if list(payload["target_names"]) != TASKS[task]:
        raise InputError(
            f"{path}: its {task} targets {payload['target_names']} differ from this vocalmix's; retrain the model"
        )
    if "target_ranges" in payload and payload["target_ranges"] != target_ranges_record(task):
        raise InputError(f"{path}: trained with other {task} target ranges than this vocalmix uses; retrain the model")


def load_waveunet_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    payload = _torch_load(path, "Wave-U-Net", "Wave-U-Net")
    _check_payload(
        path,
        payload,
        "Wave-U-Net",
        WAVEUNET_CHECKPOINT_FORMAT,
        WAVEUNET_CHECKPOINT_VERSION,
        ("model_config", "state_dict", "sample_rate_hz"),
    )
    if payload["sample_rate_hz"] != WAVEUNET_SAMPLE_RATE:
        raise InputError(
            f"{path}: trained at {payload['sample_rate_hz']} Hz; vocalmix mixes at {WAVEUNET_SAMPLE_RATE} Hz"
        )
    return payload


def waveunet_from_checkpoint(payload: dict, path: str | os.PathLike = "checkpoint") -> WaveUNet:
    """The checkpoint's network in eval mode, float32, on the CPU."""
    try:
        model = WaveUNet(WaveUNetConfig.from_dict(payload["model_config"]))
        model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise InputError(f"{path}: checkpoint does not match its network ({str(exc).splitlines()[0][:160]})") from None
    return model.eval()
