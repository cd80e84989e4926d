"""The training side of the ``cnn-e2e`` parameterisation (:mod:`vocalmix.nets.e2e_outputs`).

The predictor's outputs, their ranges and the mapping to ``MixSettings`` live with the
runtime method in :mod:`vocalmix.nets.e2e_outputs` (its docstring says why each setting is
parameterised as it is). Here: what only training needs, namely the tensors the
differentiable chain takes (:func:`chain_params`), the ratio cap that keeps training off the
compressor's "infinite" switch, and the gradient-balancing groups.
"""

from __future__ import annotations

import torch

from vocalmix.dsp.params import ChainParams, CompressorParams, EQParams, LevelParams, ReverbParams
from vocalmix.nets.e2e_outputs import BAND_TYPES, DECIDED, FIXED_FILTER_Q, GROUPS, NAMES, physical_threshold_db
from vocalmix.settings import FILTER_TYPES, ReverbSettings

#: Ratios above this are the compressor's "infinite" switch (dsp/compressor.py); training stays below.
TRAINING_RATIO_CAP = 15.9


def group_index() -> torch.Tensor:
    """``(N_OUTPUTS,)`` long: the group number of each output (order of :data:`GROUPS`)."""
    return torch.tensor([GROUPS.index(d.group) for d in DECIDED], dtype=torch.long)


def chain_params(
    phys: dict[str, torch.Tensor],
    input_peak_db: torch.Tensor,
    vocal_gain_db: torch.Tensor | None,
    fdn_lines: int = 64,
    training: bool = True,
) -> ChainParams:
    """The parameters :func:`vocalmix.dsp.chain.vocal_chain` takes, from :func:`to_physical`'s output.

    ``input_peak_db`` ``(batch,)`` is the sample peak (dBFS) of the compressor's input;
    ``vocal_gain_db`` ``(batch,)`` the level stage's gain (``None``: 0 dB, for renders up to the reverb).
    """
    batch = phys[NAMES[0]].shape[0]
    like = phys[NAMES[0]]

    def full(value):
        return torch.full((batch,), float(value), dtype=like.dtype, device=like.device)

    hp = phys["eq.highpass.frequency_hz"]
    freqs = [hp] + [phys[f"eq.peak{k}.frequency_hz"] for k in range(1, 5)] + [phys["eq.high_shelf.frequency_hz"]]
    gains = [full(0.0)] + [phys[f"eq.peak{k}.gain_db"] for k in range(1, 5)] + [phys["eq.high_shelf.gain_db"]]
    qs = [full(FIXED_FILTER_Q)] + [phys[f"eq.peak{k}.q"] for k in range(1, 5)] + [full(FIXED_FILTER_Q)]
    types = torch.tensor([FILTER_TYPES[t] for t in BAND_TYPES], dtype=torch.long, device=like.device)
    ratio = phys["compressor.ratio"]
    if training:
        ratio = torch.clamp(ratio, max=TRAINING_RATIO_CAP)
    reverb_defaults = ReverbSettings()
    eq = EQParams(
        frequency_hz=torch.stack(freqs, dim=1),
        gain_db=torch.stack(gains, dim=1),
        q=torch.stack(qs, dim=1),
        filter_type=types.expand(batch, -1),
        enabled=torch.ones(batch, len(BAND_TYPES), dtype=torch.bool, device=like.device),
    )
    compressor = CompressorParams(
        threshold_db=physical_threshold_db(phys["compressor.threshold_relative_db"], input_peak_db),
        ratio=ratio,
        knee_db=phys["compressor.knee_db"],
        attack_ms=phys["compressor.attack_ms"],
        release_ms=phys["compressor.release_ms"],
        makeup_db=full(0.0),
        lookahead=torch.zeros(batch, dtype=torch.bool, device=like.device),
    )
    reverb = ReverbParams(
        room_size=full(reverb_defaults.room_size),
        reverb_time_s=phys["reverb.reverb_time_s"],
        low_cutoff_hz=phys["reverb.low_cutoff_hz"],
        low_q=phys["reverb.low_q"],
        low_gain_db_per_s=phys["reverb.low_gain_db_per_s"],
        high_cutoff_hz=phys["reverb.high_cutoff_hz"],
        high_q=phys["reverb.high_q"],
        high_gain_db_per_s=phys["reverb.high_gain_db_per_s"],
        dry_wet=phys["reverb.dry_wet_pct"] / 100.0,
        fade_in_s=full(0.0),
        fdn_lines=fdn_lines,
    )
    level = LevelParams(vocal_gain_db=full(0.0) if vocal_gain_db is None else vocal_gain_db)
    return ChainParams(eq, compressor, reverb, level)
