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


def vocal_chain(vocal: torch.Tensor, sample_rate: int, params: dict, upto: str = "level") -> torch.Tensor:
    """Render ``vocal`` ``(batch, 1, samples)`` through the chain up to and including ``upto``.

    Returns ``(batch, 1, samples)`` before the reverb and ``(batch, 2, samples)`` from it on.
    """
    if upto not in STAGES:
        raise ValueError(f"unknown stage {upto!r}; one of {STAGES}")
    if vocal.dim() != 3 or vocal.shape[1] != 1:
        raise ValueError(f"vocal must be (batch, 1, samples), got {tuple(vocal.shape)}")
    y = multi_eq(
        vocal, sample_rate, params["eq_frequency_hz"], params["eq_gain_db"], params["eq_q"],
        params["eq_filter_type"], params["eq_enabled"],
    )
    if upto == "eq":
        return y
    y = compressor(
        y, sample_rate, params["threshold_db"], params["ratio"], params["knee_db"], params["attack_ms"],
        params["release_ms"], params["makeup_db"], params["lookahead"],
    )
    if upto == "compressor":
        return y
    y = fdn_reverb(
        y, sample_rate, params["room_size"], params["reverb_time_s"], params["low_cutoff_hz"], params["low_q"],
        params["low_gain_db_per_s"], params["high_cutoff_hz"], params["high_q"], params["high_gain_db_per_s"],
        params["dry_wet"], params["fade_in_s"], fdn_lines=params["fdn_lines"],
    )
    if upto == "reverb":
        return y
    return gain(y, params["vocal_gain_db"])


class VocalChain(nn.Module):
    """``nn.Module`` form of :func:`vocal_chain` for a fixed sample rate."""

    def __init__(self, sample_rate: int = 44100):
        super().__init__()
        self.sample_rate = sample_rate

    def forward(self, vocal: torch.Tensor, params: dict, upto: str = "level") -> torch.Tensor:
        return vocal_chain(vocal, self.sample_rate, params, upto)
