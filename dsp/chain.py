"""The vocal chain: EQ -> compressor -> reverb -> level, mono vocal in, stereo out.

Each stage takes its effect's parameters (:mod:`.params`); :func:`vocal_chain` takes
them together as :class:`.params.ChainParams` (built from settings by
``vocalmix.mixing.settings_to_params``), one row per batch item, so one call renders a
batch of different settings and gradients reach every continuous parameter.
"""

from __future__ import annotations

import torch
from torch import nn

from .compressor import compressor
from .eq import multi_eq
from .params import ChainParams, CompressorParams, EQParams, LevelParams, ReverbParams
from .reverb import fdn_reverb

__all__ = ["STAGES", "vocal_chain", "VocalChain", "apply_eq", "apply_compressor", "apply_reverb", "apply_level", "gain"]

STAGES = ("eq", "compressor", "reverb", "level")


def gain(x: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """Scale each batch item of ``x`` ``(batch, channels, samples)`` by ``gain_db`` ``(batch,)``."""
    return x * torch.pow(10.0, gain_db / 20.0).to(x.dtype).view(-1, 1, 1)


def apply_eq(x: torch.Tensor, sample_rate: float, params: EQParams) -> torch.Tensor:
    """MultiEQ (:func:`.eq.multi_eq`) on ``x`` ``(batch, channels, samples)``."""
    return multi_eq(x, sample_rate, **params.arguments())


def apply_compressor(
    x: torch.Tensor, sample_rate: float, params: CompressorParams, *, training: bool = False, backend: str = "auto"
) -> torch.Tensor:
    """OmniCompressor (:func:`.compressor.compressor`) on ``x`` ``(batch, channels, samples)``."""
    return compressor(x, sample_rate, **params.arguments(), backend=backend, training=training)


def apply_reverb(
    x: torch.Tensor, sample_rate: float, params: ReverbParams, *, training: bool = False, backend: str = "auto"
) -> torch.Tensor:
    """FdnReverb (:func:`.reverb.fdn_reverb`) on ``x`` ``(batch, 1 or 2, samples)``; stereo out."""
    return fdn_reverb(x, sample_rate, **params.arguments(), backend=backend, training=training)


def apply_level(x: torch.Tensor, params: LevelParams) -> torch.Tensor:
    """The vocal fader on ``x`` ``(batch, channels, samples)``."""
    return gain(x, params.vocal_gain_db)


def vocal_chain(
    vocal: torch.Tensor,
    sample_rate: float,
    params: ChainParams,
    *,
    upto: str = "level",
    start: str = "eq",
    training: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Render ``vocal`` through the stages from ``start`` up to and including ``upto``.

    ``vocal`` is ``(batch, 1, samples)`` (``(batch, 2, samples)`` when starting at the
    level stage, after the reverb), with ``params.batch_size == batch``. Returns
    ``(batch, 1, samples)`` before the reverb and ``(batch, 2, samples)`` from it on.
    Starting later than ``"eq"`` lets a caller that already holds the output of the
    earlier stages avoid rendering them again.

    ``training=True`` selects the training-time effects: the reverb's IR ends 80 instead
    of 90 dB down (:func:`.reverb.fdn_reverb`; the output differs from a render by less
    than -80 dB), and the compressor renders exactly but gives its settings surrogate
    gradients without dead zones (:func:`.compressor.compressor`). ``backend``
    (``"auto"``, ``"numba"``, ``"torch"``) is passed to the compressor and the reverb.
    """
    for name in (start, upto):
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; one of {STAGES}")
    first, last = STAGES.index(start), STAGES.index(upto)
    if first > last:
        raise ValueError(f"stage {start!r} comes after {upto!r}")
    if not isinstance(params, ChainParams):
        raise TypeError(f"params must be ChainParams, got {type(params).__name__}")
    expected_channels = 2 if start == "level" else 1
    if vocal.dim() != 3 or vocal.shape[1] != expected_channels:
        raise ValueError(
            f"input to the {start} stage must be (batch, {expected_channels}, samples), got {tuple(vocal.shape)}"
        )
    if vocal.shape[0] != params.batch_size:
        raise ValueError(f"{vocal.shape[0]} signals but parameters for {params.batch_size}")
    y = vocal
    for stage in STAGES[first : last + 1]:
        if stage == "eq":
            y = apply_eq(y, sample_rate, params.eq)
        elif stage == "compressor":
            y = apply_compressor(y, sample_rate, params.compressor, training=training, backend=backend)
        elif stage == "reverb":
            y = apply_reverb(y, sample_rate, params.reverb, training=training, backend=backend)
        else:
            y = apply_level(y, params.level)
    return y


class VocalChain(nn.Module):
    """``nn.Module`` form of :func:`vocal_chain` for a fixed sample rate."""

    def __init__(self, sample_rate: float = 44100, training: bool = False, backend: str = "auto"):
        super().__init__()
        self.sample_rate = sample_rate
        self.training_effects = bool(training)
        self.backend = backend

    def forward(self, vocal: torch.Tensor, params: ChainParams, upto: str = "level", start: str = "eq") -> torch.Tensor:
        return vocal_chain(
            vocal,
            self.sample_rate,
            params,
            upto=upto,
            start=start,
            training=self.training_effects,
            backend=self.backend,
        )
