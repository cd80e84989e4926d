"""The vocal chain: EQ -> compressor -> reverb -> level, mono vocal in, stereo out.

Parameters arrive as a flat dict of tensors in physical units (see
``vocalmix.mixing.settings_to_params``), one row per batch item, so one call
renders a batch of different settings and gradients reach every continuous
parameter.
"""

from __future__ import annotations

import torch
from torch import nn

from .compressor import compressor
from .eq import multi_eq
from .reverb import fdn_reverb

STAGES = ("eq", "compressor", "reverb", "level")


def gain(x: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """Scale each batch item of ``x`` ``(batch, channels, samples)`` by ``gain_db`` ``(batch,)``."""
    return x * torch.pow(10.0, gain_db / 20.0).to(x.dtype).view(-1, 1, 1)


def vocal_chain(vocal: torch.Tensor, sample_rate: int, params: dict, upto: str = "level",
                start: str = "eq", *, training: bool = False, backend: str = "auto") -> torch.Tensor:
    """Render ``vocal`` through the stages from ``start`` up to and including ``upto``.

    ``vocal`` is ``(batch, 1, samples)`` (``(batch, 2, samples)`` when starting at the
    level stage, after the reverb). Returns ``(batch, 1, samples)`` before the reverb
    and ``(batch, 2, samples)`` from it on. Starting later than ``"eq"`` lets a caller
    that already holds the output of the earlier stages avoid rendering them again.

    ``training=True`` selects the training-time effects: the reverb's IR ends 80 instead
    of 90 dB down (:func:`.reverb.fdn_reverb`; the output differs from a render by less
    than -80 dB), and the compressor renders exactly but gives its settings surrogate
    gradients without dead zones (:func:`.compressor.compressor`). ``backend`` (``"auto"``, ``"numba"``, ``"torch"``) is passed to
    the compressor and the reverb.
    """
    for name in (start, upto):
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; one of {STAGES}")
    first, last = STAGES.index(start), STAGES.index(upto)
    if first > last:
        raise ValueError(f"stage {start!r} comes after {upto!r}")
    expected_channels = 2 if start == "level" else 1
    if vocal.dim() != 3 or vocal.shape[1] != expected_channels:
        raise ValueError(f"input to the {start} stage must be (batch, {expected_channels}, samples), "
                         f"got {tuple(vocal.shape)}")
    y = vocal
    for stage in STAGES[first: last + 1]:
        y = _STAGE_FUNCTIONS[stage](y, sample_rate, params, training, backend)
    return y


def _eq_stage(y, sample_rate, params, training, backend):
    return multi_eq(y, sample_rate, params["eq_frequency_hz"], params["eq_gain_db"], params["eq_q"],
                    params["eq_filter_type"], params["eq_enabled"])


def _compressor_stage(y, sample_rate, params, training, backend):
    return compressor(y, sample_rate, params["threshold_db"], params["ratio"], params["knee_db"],
                      params["attack_ms"], params["release_ms"], params["makeup_db"], params["lookahead"],
                      backend=backend, training=training)


def _reverb_stage(y, sample_rate, params, training, backend):
    return fdn_reverb(y, sample_rate, params["room_size"], params["reverb_time_s"], params["low_cutoff_hz"],
                      params["low_q"], params["low_gain_db_per_s"], params["high_cutoff_hz"], params["high_q"],
                      params["high_gain_db_per_s"], params["dry_wet"], params["fade_in_s"],
                      fdn_lines=params["fdn_lines"], backend=backend, training=training)


def _level_stage(y, sample_rate, params, training, backend):
    return gain(y, params["vocal_gain_db"])


_STAGE_FUNCTIONS = {"eq": _eq_stage, "compressor": _compressor_stage, "reverb": _reverb_stage,
                    "level": _level_stage}


class VocalChain(nn.Module):
    """``nn.Module`` form of :func:`vocal_chain` for a fixed sample rate."""

    def __init__(self, sample_rate: int = 44100, training: bool = False, backend: str = "auto"):
        super().__init__()
        self.sample_rate = sample_rate
        self.training_effects = bool(training)
        self.backend = backend

    def forward(self, vocal: torch.Tensor, params: dict, upto: str = "level", start: str = "eq") -> torch.Tensor:
        return vocal_chain(vocal, self.sample_rate, params, upto, start, training=self.training_effects,
                           backend=self.backend)
